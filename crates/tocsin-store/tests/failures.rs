//! Failure handling: which errors are transient, reconnection after a lost
//! PostgreSQL connection, a locked SQLite database, bad URLs, and passwords
//! kept out of error messages.

mod common;

use std::time::Duration;

use common::{Backend, Postgres, Sqlite, expect_err, open_batch, open_expectation, unsettled_ids};
use tocsin_store::{Batch, PostgresStore, SqliteStore, Store, StoreError};
use tocsin_tracker::Effect;

#[test]
fn postgres_connection_terminated_is_transient_and_the_store_reconnects() {
    let db = Postgres::new();
    let mut store = PostgresStore::connect(&db.url()).expect("connect");
    store.commit(&open_batch("before")).unwrap();
    let pid = store.backend_pid().unwrap();

    db.terminate(pid);
    let e = expect_err(
        store.commit(&open_batch("after")),
        "commit on a dead connection",
    );
    assert!(
        e.is_transient(),
        "terminated connection must be transient: {e}"
    );
    assert!(matches!(e, StoreError::Postgres { .. }), "{e}");

    // The caller retries: the store connects again and the batch goes in.
    store
        .commit(&open_batch("after"))
        .expect("retry after reconnect");
    assert_ne!(store.backend_pid().unwrap(), pid, "a new connection");
    assert_eq!(unsettled_ids(&mut store), ["after", "before"]);

    // Readiness reports the drop once, then recovers.
    let pid = store.backend_pid().unwrap();
    db.terminate(pid);
    assert!(store.ping().unwrap_err().is_transient());
    store.ping().expect("ping after reconnect");
}

#[test]
fn sqlite_locked_by_another_writer_is_transient() {
    let s = Sqlite::new();
    let mut store = SqliteStore::open(&s.path).expect("open");
    store.set_busy_timeout(Duration::from_millis(20)).unwrap();
    let locker = rusqlite::Connection::open(&s.path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let e = expect_err(store.commit(&open_batch("x")), "commit while locked");
    assert!(e.is_transient(), "busy must be transient: {e}");
    assert!(matches!(e, StoreError::Sqlite { .. }), "{e}");

    locker.execute_batch("COMMIT").unwrap();
    store.commit(&open_batch("x")).expect("retry once unlocked");
    assert_eq!(unsettled_ids(&mut store), ["x"]);
}

#[test]
fn unreachable_postgres_is_transient_and_the_password_is_not_shown() {
    let e = expect_err(
        tocsin_store::open("postgres://tocsin:hunter2@127.0.0.1:1/tocsin?connect_timeout=5")
            .map(|_| ()),
        "connect to a closed port",
    );
    assert!(matches!(e, StoreError::PostgresConnect { .. }), "{e}");
    assert!(e.is_transient(), "{e}");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("tocsin:***@127.0.0.1:1"), "{shown}");
}

#[test]
fn postgres_not_accepting_connections_is_transient_until_it_does() {
    let db = Postgres::new();
    db.allow_connections(false);
    let e = expect_err(
        tocsin_store::open(&db.url()).map(|_| ()),
        "connect while the database refuses connections",
    );
    assert!(matches!(e, StoreError::PostgresConnect { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("not currently accepting connections"),
        "{e}"
    );
    assert!(e.is_transient(), "maintenance passes: {e}");

    db.allow_connections(true);
    let mut store = tocsin_store::open(&db.url()).expect("connect once allowed");
    store.commit(&open_batch("x")).unwrap();
    assert_eq!(unsettled_ids(store.as_mut()), ["x"]);
}

#[test]
fn missing_postgres_database_is_not_transient() {
    let db = Postgres::new();
    let url = format!("{}_missing", db.url());
    let e = expect_err(tocsin_store::open(&url).map(|_| ()), "missing database");
    assert!(!e.is_transient(), "{e}");
}

#[test]
fn bad_urls_are_refused_with_the_reason() {
    for (url, needle) in [
        ("mysql://u:hunter2@h/d", "expected sqlite://"),
        ("sqlite://", "no file path"),
        (
            "sqlite:///tmp/x.db?synchronous=sometimes",
            "normal, full or off",
        ),
        (
            "sqlite:///tmp/x.db?cache=shared",
            "unknown option `cache=shared`",
        ),
        ("sqlite://~/tocsin.sqlite", "`~` is not expanded here"),
        ("postgres://u:hunter2@h:notaport/d", "invalid"),
    ] {
        let e = expect_err(tocsin_store::open(url).map(|_| ()), url);
        assert!(matches!(e, StoreError::InvalidUrl { .. }), "{url}: {e}");
        let shown = e.to_string();
        assert!(shown.contains(needle), "{url}: {shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!e.is_transient());
    }
}

#[test]
fn sqlite_url_creates_parent_directories_and_memory_works() {
    let s = Sqlite::new();
    assert!(!s.path.parent().unwrap().exists());
    let mut store = tocsin_store::open(&s.url()).expect("open");
    store.commit(&open_batch("x")).unwrap();
    assert!(s.path.exists());
    let journal: String = rusqlite::Connection::open(&s.path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    drop(store);
    // synchronous is per connection: check the store's own setting.
    let mut full = SqliteStore::open_with(&s.path, tocsin_store::Synchronous::Full).unwrap();
    assert_eq!(full.synchronous().unwrap(), 2, "FULL");
    let mut normal = SqliteStore::open(&s.path).unwrap();
    assert_eq!(normal.synchronous().unwrap(), 1, "NORMAL");
    let url = format!("{}?synchronous=full", s.url());
    let mut via_url = tocsin_store::open(&url).unwrap();
    assert_eq!(
        unsettled_ids(via_url.as_mut()),
        ["x"],
        "same file via options URL"
    );

    let mut mem = tocsin_store::open("sqlite::memory:").expect("memory store");
    mem.commit(&open_batch("m")).unwrap();
    assert_eq!(unsettled_ids(mem.as_mut()), ["m"]);
}

/// A file store's WAL is checkpointed by a thread of its own, not by the
/// commit that happens to cross SQLite's threshold: the database file takes
/// the committed pages while nothing else touches the store.
#[test]
fn file_store_checkpoints_its_wal_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let mut store = SqliteStore::open(&path).expect("open");
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(
        store.cache_kib().unwrap(),
        8 * 1024,
        "a kept store's cache holds the B-trees' interior pages, not the table"
    );
    let batch = Batch::from_effects((0..200).map(|i| {
        let mut e = open_expectation("e", i);
        e.id = tocsin_tracker::ExpectationId(format!("e{i:03}"));
        Effect::ExpectationChanged(e)
    }));
    store.commit(&batch).unwrap();
    // 200 expectations and the schema are far more than this many pages,
    // and far fewer than the 10,000 past which the writer checkpoints.
    let pages = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len()) / 4096;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pages(&path) < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint: the database file has {} pages, the WAL {}",
            pages(&path),
            pages(&dir.path().join("store.sqlite-wal"))
        );
        std::thread::yield_now();
    }
    assert_eq!(unsettled_ids(&mut store).len(), 200);
    // What the gateway's metrics show of the files: their sizes, and that
    // checkpoints succeed. An in-memory store has no files.
    let files = store.files().expect("a file store's files");
    assert!(files.database_bytes >= 40 * 4096, "{files:?}");
    assert!(files.wal_bytes > 0, "{files:?}");
    assert!(!files.checkpoints_failing, "{files:?}");
    assert_eq!(SqliteStore::open_in_memory().unwrap().files(), None);
}

/// A `statement_timeout` set for the database or the role (usual for
/// service accounts) shorter than a migration that rewrites every row does
/// not cancel the migration: it lifts the timeout for its own transaction.
/// Before, the upgrade was cancelled at every start and retried for ever,
/// rewriting the table each time.
#[test]
fn a_statement_timeout_does_not_cancel_a_long_migration() {
    let db = Postgres::new();
    {
        let mut store = PostgresStore::connect(&db.url()).expect("connect");
        let mut batch = Batch::default();
        for i in 0..20_000 {
            let mut e = open_expectation("bulk", i);
            e.id = tocsin_tracker::ExpectationId(format!("bulk-{i}"));
            e.encounter.specialty = Some("300".into());
            batch.push_expectation(e);
        }
        store.commit(&batch).unwrap();
    }
    // Back to version 5: migrations 6 to 10 run again at the next open, and
    // 6 rewrites all 20,000 rows.
    db.raw_execute(
        "DELETE FROM schema_version WHERE version > 5; \
         ALTER TABLE expectations DROP COLUMN specialty, DROP COLUMN gp_practice, \
         DROP COLUMN delivery; \
         ALTER TABLE alerts DROP COLUMN specialty, DROP COLUMN seq; \
         DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', \
         current_database(), '5ms'); END $$",
    );
    let store = PostgresStore::connect(&db.url());
    assert!(store.is_ok(), "{:?}", store.err());
    db.raw_execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET statement_timeout', \
         current_database()); END $$",
    );
    assert_eq!(
        db.raw_i64("SELECT count(*) FROM expectations WHERE specialty = '300'"),
        20_000
    );
}

/// A kept store's WAL file is cut back once a checkpoint has emptied it:
/// after one very large transaction (a migration rewriting every row, a
/// backlog drained while a read held checkpoints back) it no longer stays
/// at its largest until the gateway stops.
#[test]
fn a_wal_grown_by_a_large_transaction_is_cut_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let wal = dir.path().join("store.sqlite-wal");
    let mut store = SqliteStore::open(&path).expect("open");
    let mut batch = Batch::default();
    for i in 0..120_000 {
        let mut e = open_expectation("big", i);
        e.id = tocsin_tracker::ExpectationId(format!("big{i:06}"));
        batch.push_expectation(e);
    }
    store.commit(&batch).unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let limit = 64 * 1024 * 1024;
    assert!(size(&wal) > limit, "the WAL reached {} bytes", size(&wal));
    // The background checkpointer copies it into the database; the next
    // commit then starts the log over and cuts the file back.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while size(&wal) > limit {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL stayed at {} bytes",
            size(&wal)
        );
        std::thread::sleep(Duration::from_millis(50));
        n += 1;
        let mut e = open_expectation("small", 0);
        e.id = tocsin_tracker::ExpectationId(format!("small{n}"));
        let mut small = Batch::default();
        small.push_expectation(e);
        store.commit(&small).unwrap();
    }
    assert_eq!(unsettled_ids(&mut store).len(), 120_000 + n);
}

/// The store file deleted, or another moved over it, while a store has it
/// open: commits and pings fail (transient: nothing is written into a file
/// no one will read, and the gateway waits, not ready) until the file is
/// put back.
#[test]
fn a_sqlite_file_deleted_or_replaced_while_open_takes_no_commit() {
    let s = Sqlite::new();
    let mut store = SqliteStore::open(&s.path).expect("open");
    store.commit(&open_batch("a")).unwrap();
    let aside = s.path.with_extension("aside");
    std::fs::rename(&s.path, &aside).unwrap();
    let e = expect_err(store.commit(&open_batch("b")), "commit while deleted");
    assert!(
        matches!(e, StoreError::FileGone { how: "deleted", .. }),
        "{e}"
    );
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains(&s.path.display().to_string()), "{e}");
    assert!(store.ping().is_err());
    // Another file moved into its place is not it either.
    std::fs::copy(&aside, s.path.with_extension("copy")).unwrap();
    std::fs::rename(s.path.with_extension("copy"), &s.path).unwrap();
    let e = expect_err(store.commit(&open_batch("b")), "commit while replaced");
    assert!(
        matches!(
            e,
            StoreError::FileGone {
                how: "replaced by another file",
                ..
            }
        ),
        "{e}"
    );
    // Put back, the store carries on with nothing lost.
    std::fs::rename(&aside, &s.path).unwrap();
    store.ping().expect("ping once put back");
    store
        .commit(&open_batch("b"))
        .expect("commit once put back");
    assert_eq!(unsettled_ids(&mut store), ["a", "b"]);
}

/// A store file missing (or empty) while its write-ahead log holds data is
/// a store deleted or moved: refused at open, not started afresh. An empty
/// file with no log beside it is a new store.
#[test]
fn a_missing_sqlite_file_beside_its_log_is_refused() {
    let s = Sqlite::new();
    std::fs::create_dir_all(s.path.parent().unwrap()).unwrap();
    let mut wal = s.path.clone().into_os_string();
    wal.push("-wal");
    std::fs::write(&wal, b"frames of a store that was here").unwrap();
    for present in ["missing", "empty"] {
        if present == "empty" {
            std::fs::write(&s.path, b"").unwrap();
        }
        let e = expect_err(SqliteStore::open(&s.path).map(drop), present);
        assert!(matches!(e, StoreError::Orphaned { .. }), "{present}: {e}");
        assert!(e.to_string().contains("restore it from a backup"), "{e}");
    }
    std::fs::remove_file(&wal).unwrap();
    let mut store = SqliteStore::open(&s.path).expect("an empty file with no log is new");
    assert_eq!(
        store.schema_version().unwrap(),
        tocsin_store::migrate::latest(tocsin_store::migrate::SQLITE)
    );
}

/// Another application's SQLite file is refused, and left unchanged.
#[test]
fn another_applications_sqlite_file_is_not_taken_over() {
    let s = Sqlite::new();
    std::fs::create_dir_all(s.path.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&s.path)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    let e = expect_err(SqliteStore::open(&s.path).map(drop), "a foreign database");
    assert!(matches!(e, StoreError::NotATocsinStore { .. }), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains("customers") && shown.contains(&s.path.display().to_string()),
        "{shown}"
    );
    let tables: i64 = rusqlite::Connection::open(&s.path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1, "nothing added to it");
}

/// A second writer naming the store through a linked directory meets the
/// first's lock; the store's files are not world-readable whatever the
/// umask.
#[test]
fn a_sqlite_store_named_by_another_path_has_one_writer_and_private_files() {
    use std::os::unix::fs::PermissionsExt;

    let s = Sqlite::new();
    let mut first = SqliteStore::open(&s.path).expect("open");
    first.claim_writer().unwrap();
    let dir = s.path.parent().unwrap();
    let alias = dir.parent().unwrap().join("alias");
    std::os::unix::fs::symlink(dir, &alias).unwrap();
    let mut second = SqliteStore::open(alias.join("tocsin.db")).expect("open by the link");
    let e = expect_err(second.claim_writer(), "a second writer by the link");
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    first.commit(&open_batch("a")).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = s.path.clone().into_os_string();
        name.push(suffix);
        let mode = std::fs::metadata(&name).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{name:?} is {mode:o}");
    }
    let mode = std::fs::metadata(dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "{dir:?} is {mode:o}");
}

/// A store file with a second name (a hard link: `cp -l`, `ln`) is
/// refused to a writer by either name: SQLite keeps its log and lock
/// beside the name, so a writer through each would corrupt the store, and
/// the second met no writer lock either.
#[test]
fn a_hard_linked_sqlite_store_is_refused_to_a_writer() {
    let s = Sqlite::new();
    let mut first = SqliteStore::open(&s.path).expect("open");
    first.claim_writer().unwrap();
    first.commit(&open_batch("a")).unwrap();
    drop(first);
    let other = s.path.with_file_name("copy.db");
    std::fs::hard_link(&s.path, &other).unwrap();
    for name in [&s.path, &other] {
        let mut store = SqliteStore::open(name).expect("open to read");
        let e = expect_err(store.claim_writer(), "a writer of a linked file");
        assert!(
            matches!(e, StoreError::HardLinked { links: 2, .. }),
            "{name:?}: {e}"
        );
        assert!(!e.is_transient(), "{e}");
        assert!(e.to_string().contains("-samefile"), "{e}");
    }
    std::fs::remove_file(&other).unwrap();
    let mut store = SqliteStore::open(&s.path).expect("open");
    store.claim_writer().expect("one name again");
    assert_eq!(unsettled_ids(&mut store), ["a"]);
}

/// The writer's lock file deleted while it holds the store: with no other
/// writer, the next commit claims it again; when a second writer has
/// claimed the store meanwhile (it found no lock), the first stops
/// writing (transient `InUse`: it waits, not ready) rather than both
/// writing.
#[test]
fn a_writer_whose_lock_file_was_deleted_stops_when_another_has_claimed_the_store() {
    let s = Sqlite::new();
    let mut lock = s.path.clone().into_os_string();
    lock.push(".lock");
    let mut first = SqliteStore::open(&s.path).expect("open");
    first.claim_writer().unwrap();
    std::fs::remove_file(&lock).unwrap();
    first.commit(&open_batch("a")).expect("claimed again");
    assert!(
        std::path::Path::new(&lock).exists(),
        "the lock file is back"
    );
    let mut second = SqliteStore::open(&s.path).expect("open");
    let e = expect_err(second.claim_writer(), "the first holds it again");
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");

    std::fs::remove_file(&lock).unwrap();
    second.claim_writer().expect("no lock to meet");
    let e = expect_err(first.commit(&open_batch("b")), "the second writer holds it");
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    assert!(e.is_transient(), "{e}");
    assert!(first.ping().is_err());
    second.commit(&open_batch("c")).unwrap();
    assert_eq!(unsettled_ids(&mut second), ["a", "c"]);
}
