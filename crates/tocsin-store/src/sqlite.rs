//! The embedded SQLite backend (the default).
//!
//! One connection in WAL mode with `synchronous=NORMAL` (and a second that
//! checkpoints the WAL beside it, see `checkpoint.rs`): a commit is atomic
//! and survives a crash of the process, but the last commits before a power
//! failure or OS crash can be lost (they are in the WAL, not yet synced). The
//! inputs of such commits were acknowledged, so the broker will not redeliver
//! them; see docs/performance.md ("Store") for the trade-off and how to choose
//! `synchronous=FULL` instead.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use tocsin_tracker::compliance::ReportFacts;
use tocsin_tracker::{Alert, Expectation, StateRecord};

use crate::build::Building;
use crate::checkpoint::{self, Checkpointer};
use crate::migrate::{self, Migration};
use crate::query::{Cursor, Paging, check_limit};
use crate::rows::{self, UNSETTLED, limit_param, micros};
use crate::sqlite_file::{self, FileId, WriterLock, create_parent};
use crate::{
    AlertQuery, Batch, ExpectationQuery, OutboxMessage, Page, PendingOutbox, Store, StoreError,
};

/// How long a writer waits for another connection's lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard SQLite works to make a commit survive a power failure
/// (`PRAGMA synchronous`). Chosen with `?synchronous=` on the store URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The default: a commit survives a crash of tocsin, but the last commits
    /// before a power failure or OS crash may be lost (the database stays
    /// consistent). Syncs only at WAL checkpoints.
    #[default]
    Normal,
    /// Every commit is synced to disk before it returns: nothing acknowledged
    /// is lost on power failure, at the cost of an fsync per commit.
    Full,
    /// Never syncs. Only for throwaway databases (a one-off `tocsin replay`):
    /// an OS crash can corrupt the file.
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Off => "OFF",
        }
    }

    /// Reads `normal`, `full` or `off` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Some(Self::Normal),
            "full" => Some(Self::Full),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// How a connection journals its commits.
#[derive(Debug, Clone, Copy)]
enum Journal {
    /// Write-ahead log: the store's normal mode.
    Wal,
    /// SQLite's own default (in-memory databases keep theirs in memory).
    Default,
    /// None: a store built aside ([`crate::build`]), where a crash loses
    /// only the partial file.
    Off,
}

impl Journal {
    fn pragma(self) -> Option<&'static str> {
        match self {
            Self::Wal => Some("wal"),
            Self::Default => None,
            Self::Off => Some("off"),
        }
    }
}

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    /// Checkpoints a file store's WAL beside the commits; `None` for the
    /// in-memory store and a store built aside, which have no WAL.
    checkpointer: Option<Checkpointer>,
    /// For a store built aside: where it goes when [`Store::close`]d.
    /// Declared after `conn`, so that a store dropped unclosed closes its
    /// connection before the unfinished file is removed.
    building: Option<Building>,
    /// A file store's path, for [`Store::claim_writer`], and the file it
    /// named when opened: checked before each commit and at each ping.
    path: Option<(std::path::PathBuf, FileId)>,
    /// The writer's claim ([`WriterLock`]), once [`Store::claim_writer`]
    /// took it.
    writer_lock: Option<WriterLock>,
}

fn sq(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { op, source }
}

const UPSERT_EXPECTATION: &str = "INSERT INTO expectations \
    (id, status, document_kind, encounter_kind, site, deadline, ended_at, body, delay_seconds, \
    specialty, gp_practice, delivery) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
    document_kind = excluded.document_kind, encounter_kind = excluded.encounter_kind, \
    site = excluded.site, deadline = excluded.deadline, ended_at = excluded.ended_at, \
    body = excluded.body, delay_seconds = excluded.delay_seconds, \
    specialty = excluded.specialty, gp_practice = excluded.gp_practice, \
    delivery = excluded.delivery";
/// An alert takes the next recorded sequence number (`order=recorded`):
/// the store has one writer, so the highest so far is this commit's to
/// extend.
const INSERT_ALERT: &str = "INSERT INTO alerts \
    (alert_id, kind, raised_at, document_kind, encounter_kind, site, body, specialty, seq) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT COALESCE(MAX(seq), 0) + 1 FROM alerts)) \
    ON CONFLICT (alert_id) DO NOTHING";
const DELETE_STATE: &str = "DELETE FROM state WHERE namespace = ?1 AND key = ?2";
const DELETE_STATE_RANGE: &str =
    "DELETE FROM state WHERE namespace = ?1 AND key >= ?2 AND key < ?3";
const PUT_STATE: &str = "INSERT INTO state (namespace, key, value) VALUES (?1, ?2, ?3) \
    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value";
const INSERT_OUTBOX: &str = "INSERT INTO outbox \
    (id, exchange, routing_key, content_type, body, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING";
const UPSERT_INPUT: &str = "INSERT INTO inputs (id, outcome, reason, processed_at) \
    VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, \
    reason = excluded.reason, processed_at = excluded.processed_at";

/// One page of a list: its rows that pass `filters` (SQL conditions, each
/// starting ` AND `, over `params`), after `cursor`, in the list's key
/// order, with the cursor of the next page.
fn keyset_page<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    paging: Paging<'_>,
    index: Option<&str>,
    mut filters: String,
    mut params: Vec<Value>,
    limit: usize,
) -> Result<Page<T>, StoreError> {
    let limit = check_limit(limit)?;
    let list = paging.list;
    let (position, id) = list.keys();
    let given = paging.place()?;
    if let Some(c) = &given {
        if c.names_a_recorded_alert(list) {
            let seq: Option<i64> = conn
                .prepare_cached("SELECT seq FROM alerts WHERE alert_id = ?1")
                .and_then(|mut st| st.query_row([&c.id], |r| r.get(0)).optional())
                .map_err(sq(list.ops().0))?;
            c.check_recorded_place(seq)?;
        }
        params.push(Value::Integer(c.position_us));
        params.push(Value::Text(c.id.clone()));
        filters.push_str(&format!(
            " AND ({position}, {id}) > (?{}, ?{})",
            params.len() - 1,
            params.len()
        ));
    }
    // One row more than the page: whether another page follows.
    params.push(Value::Integer(limit + 1));
    let indexed_by = index.map_or_else(String::new, |i| format!(" INDEXED BY {i}"));
    let sql = format!(
        "SELECT {id}, body, {position} FROM {}{indexed_by} WHERE 1 = 1{filters} \
         ORDER BY {position}, {id} LIMIT ?{}",
        list.table(),
        params.len()
    );
    let (query_op, read_op) = list.ops();
    let mut st = conn.prepare_cached(&sql).map_err(sq("prepare"))?;
    let mut found = st
        .query(params_from_iter(params.iter()))
        .map_err(sq(query_op))?;
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    while let Some(row) = found.next().map_err(sq(read_op))? {
        if items.len() as i64 == limit {
            more = true;
            break;
        }
        let id: String = row.get(0).map_err(sq(read_op))?;
        let body: String = row.get(1).map_err(sq(read_op))?;
        let position_us: i64 = row.get(2).map_err(sq(read_op))?;
        items.push(rows::parse(&body, list.table(), &id)?);
        last = Some(Cursor { position_us, id });
    }
    Ok(paging.page(items, last, more, given.as_ref()))
}

/// The page cache of a kept store (the gateway's, or `replay --store`), in
/// KiB. Its writes land at random in the expectations table, which the OS
/// caches anyway; what must stay in SQLite's cache are the B-trees' interior
/// pages, about 4 MB at a million expectations. The gateway's page cache
/// fills as it reads every open expectation at start, so this is resident
/// from the first minute: at 32 MB it was a tenth of the gateway's memory
/// with a million open expectations (docs/performance.md, ninth session).
const KEPT_CACHE_KIB: u32 = 8 * 1024;

/// The page cache of a store built aside, in KiB. A build commits
/// transactions of 100,000 events, which dirty tens of megabytes of pages:
/// with the kept store's 8 MB SQLite wrote dirty pages out in the middle of
/// each transaction, many of them again and again. A build is a batch job,
/// not a service that must stay small: 64 MB took a year's replay from
/// 62 to 63 s to 58 to 62 s read cold (docs/performance.md, "Fourteenth
/// session").
const BUILD_CACHE_KIB: u32 = 64 * 1024;

/// What a kept store's WAL file is cut back to once a checkpoint has
/// emptied it. The file otherwise stays at its largest: after a migration
/// that rewrites every row (one transaction the size of the table, gigabytes
/// for a year) or a backlog drained while a long read held checkpoints
/// back, until the gateway stopped.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// The page cache limit of an in-memory store (tests, `check-config`), in KiB.
const MEMORY_CACHE_KIB: u32 = 32_000;

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`, creating its
    /// parent directories, and migrates it; `synchronous=NORMAL`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Synchronous::Normal)
    }

    /// As [`SqliteStore::open`], with the given durability setting.
    pub fn open_with(path: impl AsRef<Path>, sync: Synchronous) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_parent(path)?;
        sqlite_file::prepare(path)?;
        let at_file = |e| match e {
            e @ StoreError::Sqlite { .. } => StoreError::AtFile {
                path: path.display().to_string(),
                source: Box::new(e),
            },
            e => e,
        };
        let conn = Connection::open(path)
            .map_err(sq("open"))
            .map_err(at_file)?;
        let id = FileId::of(path).map_err(|source| StoreError::Build {
            op: "read the metadata of",
            path: path.display().to_string(),
            source,
        })?;
        // SQLite falls back to reading a file it may not write, and the
        // first commit would fail: refused here, the gateway waits.
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(sq("open"))
            .map_err(at_file)?
        {
            return Err(StoreError::ReadOnly {
                path: path.display().to_string(),
            });
        }
        let mut store =
            Self::init(conn, Journal::Wal, sync, KEPT_CACHE_KIB).map_err(|e| match e {
                StoreError::NotATocsinStore { tables, .. } => StoreError::NotATocsinStore {
                    path: path.display().to_string(),
                    tables,
                },
                e => at_file(e),
            })?;
        store.path = Some((path.to_path_buf(), id));
        match Checkpointer::start(path, BUSY_TIMEOUT) {
            Ok(c) => {
                store
                    .conn
                    .execute_batch(&format!(
                        "PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                        checkpoint::WRITER_PAGES,
                        WAL_SIZE_LIMIT_BYTES
                    ))
                    .map_err(sq("configure"))?;
                store.checkpointer = Some(c);
            }
            Err(reason) => tracing::warn!(
                %reason,
                "SQLite store without background WAL checkpoints: commits will checkpoint it themselves"
            ),
        }
        Ok(store)
    }

    /// Builds a new store for `path` aside, at `path` + `.partial`, with no
    /// journal and no syncs; [`Store::close`] syncs it and renames it to
    /// `path`, and dropping it unclosed removes it: a crash or an error
    /// leaves `path` as it was. While it is built, another build of the same
    /// `path` is refused ([`StoreError::BuildInProgress`]), and a file that
    /// appears at `path` meanwhile is not overwritten
    /// ([`StoreError::BuildTargetTaken`]).
    /// For a bulk load into a store that does not exist yet
    /// ([`crate::open_for_build`]).
    pub fn build(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        create_parent(path)?;
        // Dropped on an error below, the build removes its partial file.
        let building = Building::new(path)?;
        let conn = Connection::open(building.partial()).map_err(sq("open"))?;
        let mut store = Self::init(conn, Journal::Off, Synchronous::Off, BUILD_CACHE_KIB)?;
        store.building = Some(building);
        Ok(store)
    }

    /// A private in-memory database (tests, `check-config`).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(sq("open"))?;
        Self::init(
            conn,
            Journal::Default,
            Synchronous::Normal,
            MEMORY_CACHE_KIB,
        )
    }

    fn init(
        conn: Connection,
        journal: Journal,
        sync: Synchronous,
        cache_kib: u32,
    ) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sq("configure"))?;
        if let Some(want) = journal.pragma() {
            let mode: String = conn
                .query_row(&format!("PRAGMA journal_mode = {want}"), [], |r| r.get(0))
                .map_err(sq("set the journal mode"))?;
            if !mode.eq_ignore_ascii_case(want) {
                tracing::warn!(journal_mode = %mode, wanted = want, "SQLite store could not switch its journal mode");
            }
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};",
            sync.pragma()
        ))
        .map_err(sq("configure"))?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Self {
            conn,
            checkpointer: None,
            building: None,
            path: None,
            writer_lock: None,
        };
        store.migrate(migrate::SQLITE)?;
        Ok(store)
    }

    /// Fails when the store's path no longer names the file opened (deleted,
    /// or another moved over it): a commit into it would be acknowledged
    /// and lost; or when the writer's lock file was deleted and another
    /// writer has claimed the store since. A `stat` or two per commit.
    fn check_file(&mut self) -> Result<(), StoreError> {
        let Some((path, id)) = &self.path else {
            return Ok(());
        };
        id.check(path)?;
        match &mut self.writer_lock {
            Some(lock) => lock.check(path),
            None => Ok(()),
        }
    }

    /// Applies the migrations newer than the database, in one transaction.
    fn migrate(&mut self, migrations: &'static [Migration]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("begin migration"))?;
        migrate::apply_pending(&mut SqliteSchema(&tx), migrations, "sqlite")?;
        tx.commit().map_err(sq("commit migration"))
    }

    /// How long a write waits for another connection's lock before failing
    /// with a transient "database is locked" error (default 5 s).
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout).map_err(sq("configure"))
    }

    /// The connection's `PRAGMA journal_mode` (`wal`, `off`, `memory`...).
    pub fn journal_mode(&mut self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(sq("read journal_mode"))
    }

    /// The connection's `PRAGMA synchronous` (0 off, 1 normal, 2 full).
    pub fn synchronous(&mut self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(sq("read synchronous"))
    }

    /// The connection's page cache limit in KiB (`PRAGMA cache_size`, set
    /// as a size, not a page count).
    pub fn cache_kib(&mut self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA cache_size", [], |r| r.get::<_, i64>(0))
            .map(|n| -n)
            .map_err(sq("read cache_size"))
    }

    /// The schema version of the open database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(sq("read schema version"))
    }

    fn visit_expectations(
        &mut self,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.visit_bodies(sql, params, &mut |id, body| {
            f(rows::parse(body, "expectations", id)?)
        })
    }

    /// Calls `f` with the id and body of each row `sql` selects (`id, body`
    /// from `expectations`), borrowed from the row.
    fn visit_bodies(
        &mut self,
        sql: &str,
        params: &[Value],
        f: &mut dyn FnMut(&str, &str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut st = self.conn.prepare_cached(sql).map_err(sq("prepare"))?;
        let mut cursor = st
            .query(params_from_iter(params.iter()))
            .map_err(sq("query expectations"))?;
        while let Some(row) = cursor.next().map_err(sq("read expectations"))? {
            let id = str_at(row, 0);
            let body = str_at(row, 1);
            f(
                id.map_err(sq("read expectations"))?,
                body.map_err(sq("read expectations"))?,
            )?;
        }
        Ok(())
    }
}

/// Column `i` of a row as text, borrowed from the row.
fn str_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    Ok(row.get_ref(i)?.as_str()?)
}

impl Store for SqliteStore {
    fn close(mut self: Box<Self>) -> Result<(), StoreError> {
        let Some(building) = self.building.take() else {
            return Ok(());
        };
        // The connection closes here; nothing is left to write (every
        // commit has returned), so the file is complete.
        drop(self);
        building.finish()
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check_file()?;
        let now = micros(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("begin"))?;
        if !batch.expectations.is_empty() {
            let mut st = tx
                .prepare_cached(UPSERT_EXPECTATION)
                .map_err(sq("prepare"))?;
            for e in &batch.expectations {
                let body = rows::expectation_body(e)?;
                st.execute(params![
                    e.id.0,
                    e.status.as_str(),
                    e.document_kind.as_str(),
                    e.encounter.kind.as_str(),
                    e.encounter.site,
                    micros(e.deadline),
                    micros(e.encounter.ended_at),
                    body,
                    rows::delay_seconds(e),
                    e.encounter.specialty,
                    e.gp_practice,
                    rows::delivery(e)
                ])
                .map_err(sq("upsert expectation"))?;
            }
        }
        if !batch.alerts.is_empty() {
            let mut st = tx.prepare_cached(INSERT_ALERT).map_err(sq("prepare"))?;
            for a in &batch.alerts {
                let body = rows::alert_body(a)?;
                st.execute(params![
                    a.alert_id,
                    a.kind.as_str(),
                    micros(a.raised_at),
                    a.document_kind.as_str(),
                    a.encounter.kind.as_str(),
                    a.encounter.site,
                    body,
                    a.encounter.specialty
                ])
                .map_err(sq("insert alert"))?;
            }
        }
        for r in &batch.state_range_deletes {
            let mut st = tx
                .prepare_cached(DELETE_STATE_RANGE)
                .map_err(sq("prepare"))?;
            st.execute(params![r.namespace, r.from, r.to])
                .map_err(sq("delete a range of state"))?;
        }
        if !batch.state_deletes.is_empty() {
            let mut st = tx.prepare_cached(DELETE_STATE).map_err(sq("prepare"))?;
            for (ns, key) in &batch.state_deletes {
                st.execute(params![ns, key]).map_err(sq("delete state"))?;
            }
        }
        if !batch.state_puts.is_empty() {
            let mut st = tx.prepare_cached(PUT_STATE).map_err(sq("prepare"))?;
            for r in &batch.state_puts {
                st.execute(params![r.namespace, r.key, rows::state_body(r)])
                    .map_err(sq("put state"))?;
            }
        }
        if !batch.outbox.is_empty() {
            let mut st = tx.prepare_cached(INSERT_OUTBOX).map_err(sq("prepare"))?;
            for m in &batch.outbox {
                st.execute(params![
                    m.id,
                    m.exchange,
                    m.routing_key,
                    m.content_type,
                    m.body,
                    now
                ])
                .map_err(sq("insert outbox message"))?;
            }
        }
        if !batch.inputs.is_empty() {
            let mut st = tx.prepare_cached(UPSERT_INPUT).map_err(sq("prepare"))?;
            for i in &batch.inputs {
                st.execute(params![i.id, i.outcome.as_str(), i.reason, now])
                    .map_err(sq("insert input"))?;
            }
        }
        crate::deliveries::sqlite::insert(&tx, &batch.deliveries, now)?;
        tx.commit().map_err(sq("commit"))
    }

    fn visit_unsettled(
        &mut self,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let params: Vec<Value> = UNSETTLED
            .iter()
            .map(|s| Value::Text(s.to_string()))
            .collect();
        self.visit_expectations(
            "SELECT id, body FROM expectations WHERE status IN (?1, ?2)",
            &params,
            f,
        )
    }

    fn visit_expectations_by_id(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for id in ids {
            self.visit_expectations(
                "SELECT id, body FROM expectations WHERE id = ?1",
                &[Value::Text(id.clone())],
                f,
            )?;
        }
        Ok(())
    }

    fn visit_state(
        &mut self,
        f: &mut dyn FnMut(StateRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT namespace, key, value FROM state ORDER BY namespace, key")
            .map_err(sq("prepare"))?;
        let mut cursor = st.query([]).map_err(sq("query state"))?;
        while let Some(row) = cursor.next().map_err(sq("read state"))? {
            let namespace: String = row.get(0).map_err(sq("read state"))?;
            let key: String = row.get(1).map_err(sq("read state"))?;
            let value: String = row.get(2).map_err(sq("read state"))?;
            f(rows::state_record(namespace, key, value)?)?;
        }
        Ok(())
    }

    fn outbox_pending_except(
        &mut self,
        limit: usize,
        exchanges: &[String],
    ) -> Result<Vec<PendingOutbox>, StoreError> {
        let limit = check_limit(limit)?;
        // One placeholder an exchange left out (one or two at most).
        let except: String = (0..exchanges.len())
            .map(|i| format!(" AND exchange <> ?{}", i + 2))
            .collect();
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, id, exchange, routing_key, content_type, body FROM outbox \
                 WHERE published_at IS NULL{except} ORDER BY seq LIMIT ?1"
            ))
            .map_err(sq("prepare"))?;
        let params: Vec<&dyn rusqlite::ToSql> = std::iter::once(&limit as &dyn rusqlite::ToSql)
            .chain(exchanges.iter().map(|e| e as &dyn rusqlite::ToSql))
            .collect();
        let mapped = st
            .query_map(params.as_slice(), |r| {
                Ok(PendingOutbox {
                    seq: r.get(0)?,
                    message: OutboxMessage {
                        id: r.get(1)?,
                        exchange: r.get(2)?,
                        routing_key: r.get(3)?,
                        content_type: r.get(4)?,
                        body: r.get(5)?,
                    },
                })
            })
            .map_err(sq("query outbox"))?;
        mapped.collect::<Result<_, _>>().map_err(sq("read outbox"))
    }

    fn outbox_mark_published(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let now = micros(Utc::now());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sq("begin"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE outbox SET published_at = ?1 WHERE seq = ?2 AND published_at IS NULL",
                )
                .map_err(sq("prepare"))?;
            for seq in seqs {
                st.execute(params![now, seq])
                    .map_err(sq("mark outbox published"))?;
            }
        }
        tx.commit().map_err(sq("commit"))
    }

    fn outbox_len(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .map_err(sq("prepare"))?
            .query_row([], |r| r.get(0))
            .map_err(sq("count outbox"))?;
        Ok(n.max(0) as u64)
    }

    fn outbox_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
                 WHERE published_at IS NOT NULL AND published_at < ?1 LIMIT ?2)",
                params![micros(before), limit_param(limit)],
            )
            .map_err(sq("prune outbox"))?;
        Ok(n as u64)
    }

    fn inputs_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM inputs WHERE id IN (SELECT id FROM inputs \
                 WHERE processed_at < ?1 LIMIT ?2)",
                params![micros(before), limit_param(limit)],
            )
            .map_err(sq("prune inputs"))?;
        Ok(n as u64)
    }

    fn inputs_processed(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM inputs WHERE id = ?1 AND outcome = 'ok'")
            .map_err(sq("prepare"))?;
        let mut out = Vec::new();
        for id in ids {
            if st.exists([id]).map_err(sq("query inputs"))? {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    fn alerts_by_id(&mut self, ids: &[String]) -> Result<Vec<Alert>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT raised_at, body FROM alerts WHERE alert_id = ?1")
            .map_err(sq("prepare"))?;
        let mut found = Vec::new();
        for id in ids {
            let mut rows = st.query([id]).map_err(sq("query alerts"))?;
            if let Some(row) = rows.next().map_err(sq("read alerts"))? {
                let raised_at: i64 = row.get(0).map_err(sq("read alerts"))?;
                let body: String = row.get(1).map_err(sq("read alerts"))?;
                found.push((raised_at, id.clone(), rows::parse(&body, "alerts", id)?));
            }
        }
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(found.into_iter().map(|(_, _, a)| a).collect())
    }

    fn expectations(&mut self, q: &ExpectationQuery) -> Result<Page<Expectation>, StoreError> {
        let mut filters = String::new();
        let mut params: Vec<Value> = Vec::new();
        for (column, value) in q.equalities() {
            filters.push_str(&value.condition(column, |v| {
                params.push(Value::Text(v.into()));
                format!("?{}", params.len())
            }));
        }
        let mut filter = |filters: &mut String, column: &str, value: Value| {
            params.push(value);
            filters.push_str(&format!(" AND {column} = ?{}", params.len()));
        };
        for (value, path) in [
            (&q.nhs_number, "$.patient.nhs_number"),
            (&q.encounter_id, "$.encounter.id"),
        ] {
            if let Some(v) = value {
                let column = format!("json_extract(body, '{path}')");
                filter(&mut filters, &column, Value::Text(v.clone()));
            }
        }
        for (bound, op) in [(q.ended_from, ">="), (q.ended_to, "<")] {
            if let Some(t) = bound {
                params.push(Value::Integer(micros(t)));
                filters.push_str(&format!(" AND ended_at {op} ?{}", params.len()));
            }
        }
        // A lookup by patient or visit reads its window of encounter ends
        // through that index and sorts it, rather than the whole table in
        // deadline order: it must not read every body in the store. Other
        // filters are left to the planner: forced through the window, a
        // year's `status=open` page read and sorted the whole year (0.6 to
        // 1.1 s a page on 1.4 million expectations, against 3 ms).
        let windowed = q.ended_from.is_some() || q.ended_to.is_some();
        let by_body = q.nhs_number.is_some() || q.encounter_id.is_some();
        keyset_page(
            &self.conn,
            q.paging(),
            (windowed && by_body).then_some("expectations_ended_at"),
            filters,
            params,
            q.limit,
        )
    }

    fn alerts(&mut self, q: &AlertQuery) -> Result<Page<Alert>, StoreError> {
        let mut filters = String::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(since) = q.since {
            params.push(Value::Integer(micros(since)));
            filters.push_str(&format!(" AND raised_at >= ?{}", params.len()));
        }
        for (column, value) in q.equalities() {
            filters.push_str(&value.condition(column, |v| {
                params.push(Value::Text(v.into()));
                format!("?{}", params.len())
            }));
        }
        keyset_page(&self.conn, q.paging(), None, filters, params, q.limit)
    }

    fn visit_ended_between(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.visit_expectations(
            "SELECT id, body FROM expectations WHERE ended_at >= ?1 AND ended_at < ?2 \
             ORDER BY ended_at, id",
            &[Value::Integer(micros(from)), Value::Integer(micros(to))],
            f,
        )
    }

    fn visit_report_facts(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut dyn FnMut(&ReportFacts<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // Columns only: no body is parsed.
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, status, document_kind, encounter_kind, site, ended_at, delay_seconds, \
                 specialty, gp_practice, delivery FROM expectations \
                 WHERE ended_at >= ?1 AND ended_at < ?2",
            )
            .map_err(sq("prepare"))?;
        let mut cursor = st
            .query(params![micros(from), micros(to)])
            .map_err(sq("query expectations"))?;
        while let Some(row) = cursor.next().map_err(sq("read expectations"))? {
            let columns = (|| {
                Ok((
                    str_at(row, 0)?,
                    str_at(row, 1)?,
                    str_at(row, 2)?,
                    str_at(row, 3)?,
                    row.get_ref(4)?.as_str_or_null()?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, Option<i64>>(6)?,
                    row.get_ref(7)?.as_str_or_null()?,
                    row.get_ref(8)?.as_str_or_null()?,
                    row.get_ref(9)?.as_str_or_null()?,
                ))
            })();
            let (id, status, document_kind, encounter_kind, site, ended_at, delay, sp, gp, sent) =
                columns.map_err(sq("read expectations"))?;
            f(&rows::report_facts(
                id,
                [status, document_kind, encounter_kind],
                [site, sp, gp],
                rows::time_column(ended_at, "expectations", id, "ended_at")?,
                delay,
                sent,
            )?)?;
        }
        Ok(())
    }

    fn claim_writer(&mut self) -> Result<(), StoreError> {
        let Some((path, _)) = &self.path else {
            // In memory, or built aside under a lock of its own.
            return Ok(());
        };
        if self.writer_lock.is_none() {
            self.writer_lock = Some(WriterLock::take(path)?);
        }
        Ok(())
    }

    fn files(&mut self) -> Option<crate::StoreFiles> {
        let (path, _) = self.path.as_ref()?;
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        Some(crate::StoreFiles {
            database_bytes: size(path),
            wal_bytes: size(Path::new(&wal)),
            checkpoints_failing: self
                .checkpointer
                .as_ref()
                .is_some_and(Checkpointer::failing),
        })
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.check_file()?;
        self.conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(sq("ping"))
    }

    fn deliveries_due(
        &mut self,
        subscriber: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::PendingDelivery>, StoreError> {
        crate::deliveries::sqlite::due(&self.conn, subscriber, now, check_limit(limit)?)
    }

    fn delivery_next_due(&mut self, subscriber: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        crate::deliveries::sqlite::next_due(&self.conn, subscriber)
    }

    fn delivery_record(
        &mut self,
        seq: i64,
        outcome: &crate::DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::deliveries::sqlite::record(&self.conn, seq, outcome, now)
    }

    fn delivery_counts(&mut self, subscriber: &str) -> Result<crate::DeliveryCounts, StoreError> {
        crate::deliveries::sqlite::counts(&self.conn, subscriber)
    }

    fn delivery_backlog(&mut self) -> Result<Vec<crate::SubscriberBacklog>, StoreError> {
        crate::deliveries::sqlite::backlog(&self.conn)
    }

    fn overdue_groups(
        &mut self,
        grouping: crate::Grouping,
    ) -> Result<Vec<crate::AlertGroup>, StoreError> {
        crate::deliveries::sqlite::overdue_groups(&self.conn, grouping)
    }

    fn failed_delivery_groups(
        &mut self,
        since: DateTime<Utc>,
        grouping: crate::Grouping,
    ) -> Result<Vec<crate::AlertGroup>, StoreError> {
        crate::deliveries::sqlite::failed_delivery_groups(&self.conn, since, grouping)
    }
}

/// SQLite's side of [`migrate::apply_pending`].
struct SqliteSchema<'a, 'b>(&'a rusqlite::Transaction<'b>);

impl migrate::SchemaTx for SqliteSchema<'_, '_> {
    fn current_version(&mut self) -> Result<i64, StoreError> {
        // Another application's database: migrating would add tocsin's
        // tables to it.
        let others: Vec<String> = self
            .0
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'schema_version') \
                 ORDER BY name LIMIT 4",
            )
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .map_err(sq("list tables"))?;
        if !others.is_empty() {
            return Err(StoreError::NotATocsinStore {
                path: String::new(),
                tables: others.join(", "),
            });
        }
        self.0
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (\
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )
            .map_err(sq("create schema_version"))?;
        self.0
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(sq("read schema version"))
    }

    fn apply(&mut self, m: &Migration) -> Result<(), StoreError> {
        self.0.execute_batch(m.sql).map_err(sq("apply"))
    }

    fn record(&mut self, m: &Migration) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, micros(Utc::now())],
            )
            .map(drop)
            .map_err(sq("record"))
    }
}
