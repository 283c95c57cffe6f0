//! The gateway's store as the tests see it: a temporary SQLite file or a
//! PostgreSQL database created for the test and dropped after it, read with
//! plain SQL (on a thread of its own, off the async runtime, since the
//! synchronous PostgreSQL client runs a runtime of its own).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where PostgreSQL is for the tests: a database they may connect to in
/// order to create and drop their own.
fn admin_url() -> String {
    std::env::var("TOCSIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The test's store.
pub enum TestStore {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, dropped with the value.
    Postgres {
        /// Its name.
        db: String,
    },
}

fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("store helper thread")
}

impl TestStore {
    /// A SQLite file in `dir`.
    pub fn sqlite(dir: &Path) -> Self {
        Self::Sqlite(dir.join("store").join("tocsin.sqlite"))
    }

    /// A fresh PostgreSQL database; panics when PostgreSQL is unreachable.
    pub async fn postgres() -> Self {
        let db = format!(
            "tocsin_gateway_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_micros())
                .unwrap_or(0)
        );
        let name = db.clone();
        off_runtime(move || {
            let admin = admin_url();
            let mut client =
                postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is unreachable ({e}); these tests need it on 127.0.0.1:5432 \
                         with trust authentication (or TOCSIN_TEST_POSTGRES_URL) and do not skip"
                    )
                });
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create test database");
        });
        Self::Postgres { db }
    }

    /// The URL for `TOCSIN_STORE_URL`.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite://{}", p.display()),
            Self::Postgres { db } => {
                let base = admin_url();
                let cut = base.rfind('/').expect("admin URL names a database");
                format!("{}/{db}", &base[..cut])
            }
        }
    }

    /// Runs a query returning rows of one text column.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let sql = sql.to_owned();
        match self {
            Self::Sqlite(p) => {
                let p = p.clone();
                off_runtime(move || {
                    if !p.exists() {
                        return Vec::new();
                    }
                    let conn = rusqlite::Connection::open(&p).expect("open SQLite store");
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .expect("busy timeout");
                    let mut st = match conn.prepare(&sql) {
                        Ok(st) => st,
                        // Not migrated yet: no tables, no rows.
                        Err(e) if e.to_string().contains("no such table") => return Vec::new(),
                        Err(e) => panic!("{sql}: {e}"),
                    };
                    st.query_map([], |r| r.get::<_, String>(0))
                        .expect("query")
                        .map(|r| r.expect("row"))
                        .collect()
                })
            }
            Self::Postgres { .. } => {
                let url = self.url();
                off_runtime(move || {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls)
                        .expect("connect to the test database");
                    match c.query(&sql, &[]) {
                        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
                        // Not migrated yet: no tables, no rows.
                        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
                            Vec::new()
                        }
                        Err(e) => panic!("{sql}: {e:?}"),
                    }
                })
            }
        }
    }

    /// `count(*)` of `from` (a table and an optional `WHERE` clause).
    pub async fn count(&self, from: &str) -> usize {
        let rows = self
            .strings(&format!("SELECT CAST(count(*) AS TEXT) FROM {from}"))
            .await;
        rows.first().map_or(0, |n| n.parse().expect("a count"))
    }

    /// Terminates every server connection to the test's PostgreSQL
    /// database (a store outage, as the gateway sees it); returns how many.
    pub async fn terminate_connections(&self) -> usize {
        let Self::Postgres { db } = self else {
            panic!("only a PostgreSQL store has connections to terminate");
        };
        let db = db.clone();
        off_runtime(move || {
            let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls)
                .expect("admin PostgreSQL connection");
            c.query(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .expect("pg_terminate_backend")
            .len()
        })
    }

    /// Lets new connections to the test's PostgreSQL database in, or keeps
    /// them out (with [`TestStore::terminate_connections`]: the database
    /// gone, as the gateway sees it).
    pub async fn allow_connections(&self, allowed: bool) {
        self.alter_database(&format!("WITH ALLOW_CONNECTIONS {allowed}"))
            .await;
    }

    /// Makes the test's PostgreSQL database refuse writes to new sessions
    /// (`default_transaction_read_only`), as a replica promoted the wrong
    /// way round or a maintenance window does, or accept them again. Existing
    /// sessions keep what they had: terminate them to make it bite.
    pub async fn read_only(&self, on: bool) {
        self.alter_database(&format!("SET default_transaction_read_only = {on}"))
            .await;
    }

    /// `ALTER DATABASE <the test's database> <change>`, as the administrator.
    async fn alter_database(&self, change: &str) {
        let Self::Postgres { db } = self else {
            panic!("only a PostgreSQL store is a database to alter");
        };
        let sql = format!("ALTER DATABASE \"{db}\" {change}");
        off_runtime(move || {
            let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls)
                .expect("admin PostgreSQL connection");
            c.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    }

    /// Takes an `ACCESS EXCLUSIVE` lock on `table` in a transaction of
    /// the test's own and holds it until the returned guard is dropped: the
    /// gateway's commits wait on it, as on a store that has stopped
    /// answering.
    pub fn lock_table(&self, table: &str) -> HeldLock {
        let url = self.url();
        let sql = format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE");
        let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls)
                .expect("connect to the test database");
            c.batch_execute(&sql).expect("lock the table");
            let _ = locked_tx.send(());
            let _ = release_rx.recv();
            let _ = c.batch_execute("ROLLBACK");
        });
        locked_rx
            .recv_timeout(super::WAIT)
            .expect("the table lock is taken");
        HeldLock {
            release: Some(release_tx),
            thread: Some(thread),
        }
    }

    /// Waits until a server process on the test's database waits for a
    /// lock (one a [`TestStore::lock_table`] holds): `who` names the one
    /// expected to, for the failure message.
    pub async fn wait_for_lock_waiter(&self, who: &str) {
        super::poll(
            &format!("{who} to wait on the lock"),
            super::WAIT,
            || async {
                match self.waiting_on_locks().await {
                    0 => Err("no backend waiting".to_string()),
                    _ => Ok(()),
                }
            },
        )
        .await;
    }

    /// Server processes on the test's database waiting for a lock.
    async fn waiting_on_locks(&self) -> usize {
        let Self::Postgres { db } = self else {
            return 0;
        };
        let db = db.clone();
        off_runtime(move || {
            let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls)
                .expect("admin PostgreSQL connection");
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = $1 AND wait_event_type = 'Lock'",
                    &[&db],
                )
                .expect("pg_stat_activity")
                .get(0);
            usize::try_from(n).unwrap_or(0)
        })
    }

    /// Ids in the `inputs` audit table.
    pub async fn input_ids(&self) -> Vec<String> {
        self.strings("SELECT id FROM inputs").await
    }

    /// Outbox messages not yet confirmed by the broker.
    pub async fn outbox_pending(&self) -> usize {
        self.count("outbox WHERE published_at IS NULL").await
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Self::Postgres { db } = self {
            let db = db.clone();
            off_runtime(
                move || match postgres::Client::connect(&admin_url(), postgres::NoTls) {
                    Ok(mut c) => {
                        if let Err(e) =
                            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        {
                            eprintln!("could not drop test database {db}: {e}");
                        }
                    }
                    Err(e) => eprintln!("could not drop test database {db}: {e}"),
                },
            );
        }
    }
}

/// A table lock held by the test; released when dropped.
pub struct HeldLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
