//! The PostgreSQL backend.
//!
//! One connection, through the synchronous `postgres` crate (it runs a small
//! runtime of its own, so it must be called from a plain thread or
//! `spawn_blocking`, never from inside an async task). Each commit is one
//! transaction of a few array (`unnest`) statements, whatever the batch size.
//!
//! Reconnection: an operation that fails because the connection was lost
//! returns a transient error and drops the connection; the next operation
//! connects again. The caller retries (a commit is idempotent).

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config, Statement};
use tocsin_tracker::compliance::ReportFacts;
use tocsin_tracker::{Alert, Expectation, StateRecord};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::migrate::{self, Migration};
use crate::pg_tls;
use crate::query::{Cursor, Paging, check_limit};
use crate::rows::{self, UNSETTLED, limit_param};
use crate::{
    AlertQuery, Batch, ExpectationQuery, OutboxMessage, Page, PendingOutbox, Store, StoreError,
    redact_url,
};

/// Key of the advisory lock that serialises migrations between gateways
/// starting at once ("tocsin" in ASCII).
const MIGRATION_LOCK: i64 = 0x746f_6373_696e;
/// Key of the session advisory lock a store's one writer holds
/// ([`Store::claim_writer`]): "tocsinW".
const WRITER_LOCK: i64 = 0x0074_6f63_7369_6e57;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Expectation ids looked up in one query by `visit_expectations_by_id`.
const BY_ID_CHUNK: usize = 1_000;

const UPSERT_EXPECTATIONS: &str = "INSERT INTO expectations \
    (id, status, document_kind, encounter_kind, site, deadline, ended_at, body, delay_seconds, \
    specialty, gp_practice, delivery) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
    $6::timestamptz[], $7::timestamptz[], $8::text[], $9::bigint[], $10::text[], $11::text[], \
    $12::text[]) \
    ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
    document_kind = EXCLUDED.document_kind, encounter_kind = EXCLUDED.encounter_kind, \
    site = EXCLUDED.site, deadline = EXCLUDED.deadline, ended_at = EXCLUDED.ended_at, \
    body = EXCLUDED.body, delay_seconds = EXCLUDED.delay_seconds, \
    specialty = EXCLUDED.specialty, gp_practice = EXCLUDED.gp_practice, \
    delivery = EXCLUDED.delivery";
const INSERT_ALERTS: &str = "INSERT INTO alerts \
    (alert_id, kind, raised_at, document_kind, encounter_kind, site, body, specialty) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::text[]) ON CONFLICT (alert_id) DO NOTHING";
const DELETE_STATE: &str = "DELETE FROM state s USING unnest($1::text[], $2::text[]) AS d(ns, k) \
    WHERE s.namespace = d.ns AND s.key = d.k";
/// Keys are lowercase hex and ASCII names, which sort alike in every
/// collation, so the primary key's index serves the range.
const DELETE_STATE_RANGE: &str =
    "DELETE FROM state WHERE namespace = $1 AND key >= $2 AND key < $3";
const PUT_STATE: &str = "INSERT INTO state (namespace, key, value) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) \
    ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value";
const INSERT_OUTBOX: &str = "INSERT INTO outbox (id, exchange, routing_key, content_type, body) \
    SELECT id, ex, rk, ct, body FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
    $5::bytea[]) WITH ORDINALITY AS t(id, ex, rk, ct, body, ord) ORDER BY ord \
    ON CONFLICT (id) DO NOTHING";
// The last record of an id in the batch wins, as a later commit's does:
// an id twice in one statement would make `DO UPDATE` fail.
const UPSERT_INPUTS: &str = "INSERT INTO inputs (id, outcome, reason) \
    SELECT DISTINCT ON (id) id, outcome, reason \
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(id, outcome, reason, ord) \
    ORDER BY id, ord DESC \
    ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, \
    processed_at = now()";

/// A query's parameters, built up with its conditions.
type Params = Vec<Box<dyn ToSql + Sync>>;

/// One page of a list: its rows that pass `filters` (SQL conditions, each
/// starting ` AND `, over `params`), after `cursor`, in the list's key
/// order, with the cursor of the next page.
fn keyset_page<T: serde::de::DeserializeOwned>(
    store: &mut PostgresStore,
    paging: Paging<'_>,
    mut filters: String,
    mut params: Params,
    limit: usize,
) -> Result<Page<T>, StoreError> {
    let limit = check_limit(limit)?;
    let list = paging.list;
    let (position, id) = list.keys();
    let given = paging.place()?;
    if let Some(c) = &given {
        if c.names_a_recorded_alert(list) {
            let id = c.id.clone();
            let seq: Option<i64> = store.with_conn(|conn| {
                conn.client
                    .query_opt("SELECT seq FROM alerts WHERE alert_id = $1", &[&id])
                    .map(|row| row.map(|r| r.get(0)))
                    .map_err(pg(list.ops().0))
            })?;
            c.check_recorded_place(seq)?;
        }
        if list.position_is_time() {
            params.push(Box::new(cursor_time(c)?));
        } else {
            params.push(Box::new(c.position_us));
        }
        params.push(Box::new(c.id.clone()));
        filters.push_str(&format!(
            " AND ({position}, {id}) > (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    // One row more than the page: whether another page follows.
    params.push(Box::new(limit + 1));
    let sql = format!(
        "SELECT {id}, body, {position} FROM {} WHERE true{filters} \
         ORDER BY {position}, {id} LIMIT ${}",
        list.table(),
        params.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    store.with_conn(|c| {
        let st = prepare(&mut c.client, &mut c.statements, &sql)?;
        let found = c.client.query(&st, &refs).map_err(pg(list.ops().0))?;
        page_of_rows(&found, limit, &paging, given.as_ref())
    })
}

/// A `LIKE` pattern that every body as tocsin writes it (compact JSON)
/// matches when its `key` holds `value`, and few others do; `None` when
/// the value would be escaped in JSON (a quote, a backslash, a control
/// character), where no plain pattern is sure to match.
fn body_pattern(key: &str, value: &str) -> Option<String> {
    if value
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return None;
    }
    let mut pattern = format!("%\"{key}\":\"");
    for c in value.chars() {
        if matches!(c, '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("\"%");
    Some(pattern)
}

/// The page of at most `limit` of `found`, and the cursor of the next
/// when there are more.
fn page_of_rows<T: serde::de::DeserializeOwned>(
    found: &[postgres::Row],
    limit: i64,
    paging: &Paging<'_>,
    given: Option<&Cursor>,
) -> Result<Page<T>, StoreError> {
    let list = paging.list;
    let more = found.len() as i64 > limit;
    let mut items = Vec::with_capacity(found.len().min(limit as usize));
    let mut last = None;
    for row in found.iter().take(limit as usize) {
        let id: String = row.get(0);
        let body: &str = row.get(1);
        let position_us = if list.position_is_time() {
            row.get::<_, DateTime<Utc>>(2).timestamp_micros()
        } else {
            row.get(2)
        };
        items.push(rows::parse(body, list.table(), &id)?);
        last = Some(Cursor { position_us, id });
    }
    Ok(paging.page(items, last, more, given))
}

/// A cursor's position as the timestamp the keyset compares with.
fn cursor_time(c: &Cursor) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_micros(c.position_us).ok_or(StoreError::InvalidCursor {
        reason: "cursor position out of range",
    })
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| StoreError::Postgres { op, source }
}

/// A live connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// The PostgreSQL store.
pub struct PostgresStore {
    config: Config,
    /// TLS as the URL's `sslmode` asks (see `pg_tls`).
    tls: MakeRustlsConnect,
    url: String,
    conn: Option<Conn>,
    /// Whether this store is the database's writer: each connection it
    /// makes takes the writer lock first.
    writer: bool,
}

/// The synchronous client closes its connection by blocking on a runtime of
/// its own, which panics on a thread that is driving an async runtime (the
/// gateway's main thread, where the last handle of its store may be
/// dropped at exit). It is closed on a thread of its own instead, which
/// works wherever the store is dropped.
impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let closed = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(conn))
                .map(|t| t.join());
            if let Ok(Err(_)) = closed {
                tracing::debug!("closing a PostgreSQL connection panicked");
            }
        }
    }
}

impl PostgresStore {
    /// Connects to the database a `postgres://` URL names and migrates it.
    /// TLS follows the URL's `sslmode` and `sslrootcert`, as in libpq
    /// (`prefer` by default; `verify-full` authenticates the server).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None)
    }

    /// As [`PostgresStore::connect`], with the password given apart from
    /// the URL (it replaces one the URL holds).
    pub fn connect_with(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let (config, tls) = client_config(url, password)?;
        let tls = pg_tls::connector(&tls).map_err(|reason| StoreError::InvalidUrl {
            url: redact_url(url),
            reason,
        })?;
        let mut store = Self {
            config,
            tls,
            url: redact_url(url),
            conn: None,
            writer: false,
        };
        store.migrate(migrate::POSTGRES)?;
        Ok(store)
    }

    /// The server process id of the current connection (lets tests and
    /// operators find it in `pg_stat_activity`).
    pub fn backend_pid(&mut self) -> Result<i32, StoreError> {
        self.with_conn(|c| {
            c.client
                .query_one("SELECT pg_backend_pid()", &[])
                .map(|r| r.get(0))
                .map_err(pg("read backend pid"))
        })
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.with_conn(|c| {
            c.client
                .query_one(
                    "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_version",
                    &[],
                )
                .map(|r| r.get(0))
                .map_err(pg("read schema version"))
        })
    }

    fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.is_none() {
            let mut client = self.config.connect(self.tls.clone()).map_err(|source| {
                StoreError::PostgresConnect {
                    url: self.url.clone(),
                    source,
                }
            })?;
            // A writer's lock lives with its session: a new connection
            // takes it again, and finds it taken if another writer came in
            // meanwhile (or the server still keeps the old session).
            if self.writer {
                let taken: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
                    .map_err(pg("take the writer lock"))?
                    .get(0);
                if !taken {
                    return Err(StoreError::InUse {
                        store: self.url.clone(),
                        how: "another session holds its writer advisory lock".into(),
                    });
                }
            }
            self.conn = Some(Conn {
                client,
                statements: HashMap::new(),
            });
        }
        Ok(self.conn.as_mut().expect("connection set above"))
    }

    /// Runs `f` on the connection; if it fails because the connection is
    /// gone, drops it so that the next operation reconnects.
    fn with_conn<T>(
        &mut self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn()?;
        let result = f(conn);
        if let Err(e) = &result {
            let closed = self.conn.as_ref().is_none_or(|c| c.client.is_closed());
            if closed || e.is_transient() {
                tracing::warn!(store = %self.url, error = %e, "PostgreSQL connection dropped; will reconnect");
                self.conn = None;
            }
        }
        result
    }

    fn migrate(&mut self, migrations: &'static [Migration]) -> Result<(), StoreError> {
        self.with_conn(|c| {
            let mut tx = c.client.transaction().map_err(pg("begin migration"))?;
            // A migration that rewrites every row takes minutes on a large
            // store: a `statement_timeout` set for the role or the database
            // (ordinary for service accounts) would cancel it every time, and
            // every retry would rewrite the table again. Within this
            // transaction only.
            tx.batch_execute("SET LOCAL statement_timeout = 0")
                .map_err(pg("lift the statement timeout for migration"))?;
            tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(pg("lock for migration"))?;
            migrate::apply_pending(&mut PgSchema(&mut tx), migrations, "postgresql")?;
            tx.commit().map_err(pg("commit migration"))
        })
    }

    fn visit_expectations(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
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
        params: &[&(dyn ToSql + Sync)],
        f: &mut dyn FnMut(&str, &str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| {
            let st = prepare(&mut c.client, &mut c.statements, sql)?;
            let mut cursor = c
                .client
                .query_raw(&st, params.iter().copied())
                .map_err(pg("query expectations"))?;
            while let Some(row) = cursor.next().map_err(pg("read expectations"))? {
                f(row.get(0), row.get(1))?;
            }
            Ok(())
        })
    }
}

/// PostgreSQL's side of [`migrate::apply_pending`].
struct PgSchema<'a, 'b>(&'a mut postgres::Transaction<'b>);

impl migrate::SchemaTx for PgSchema<'_, '_> {
    fn current_version(&mut self) -> Result<i64, StoreError> {
        self.0
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version bigint PRIMARY KEY, \
                 name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .map_err(pg("create schema_version"))?;
        Ok(self
            .0
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::bigint FROM schema_version",
                &[],
            )
            .map_err(pg("read schema version"))?
            .get(0))
    }

    fn apply(&mut self, m: &Migration) -> Result<(), StoreError> {
        self.0.batch_execute(m.sql).map_err(pg("apply"))
    }

    fn record(&mut self, m: &Migration) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .map(drop)
            .map_err(pg("record"))
    }
}

/// A prepared statement for `sql`, from the cache when there is one.
fn prepare(
    client: &mut impl postgres::GenericClient,
    cache: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(st) = cache.get(sql) {
        return Ok(st.clone());
    }
    let st = client.prepare(sql).map_err(pg("prepare"))?;
    cache.insert(sql.to_string(), st.clone());
    Ok(st)
}

/// Checks a PostgreSQL URL's settings without connecting ([`crate::check_url`]).
pub(crate) fn check_url(url: &str) -> Result<(), StoreError> {
    client_config(url, None).map(|_| ())
}

/// The client's settings from the URL and a password given apart (which
/// replaces the URL's), with tocsin's defaults, and the TLS options.
fn client_config(
    url: &str,
    password: Option<&str>,
) -> Result<(Config, pg_tls::TlsOptions), StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let (client_url, tls) = pg_tls::split_url(url).map_err(invalid)?;
    let mut config = Config::from_str(&client_url).map_err(|e| invalid(e.to_string()))?;
    if let Some(p) = password {
        config.password(p);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tocsin");
    }
    // The server's notices (`relation "schema_version" already exists, skipping`
    // at every start) are informational: the driver logs them at info,
    // where operators read them as something to act on. Debug instead.
    config.notice_callback(|n| {
        tracing::debug!(
            severity = n.severity(),
            "PostgreSQL notice: {}",
            n.message()
        )
    });
    // A connection the network dropped without a word (a failover, a
    // firewall forgetting it) would hold the one shared connection, and
    // with it the pipeline and the API, for as long as the kernel waits:
    // hours by default. Unless the URL says otherwise, keepalives find it
    // within a minute of silence, and data left unacknowledged for half a
    // minute ends it; the next operation then connects again.
    // Each only where the URL left it alone (`keepalives=0` turns them off).
    if config.get_keepalives() {
        if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVES_RETRIES);
        }
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    Ok((config, tls))
}

/// The PostgreSQL client's own keepalive idle time (two hours), which
/// tells that the URL left it alone.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// Silence on the connection before the first keepalive probe.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
/// Between probes.
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
/// Probes unanswered before the connection is given up.
const KEEPALIVES_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A value from a message as PostgreSQL's `text` can hold it. It cannot
/// hold NUL (U+0000), which a message can carry (HL7 `\X00\`, a JSON
/// `\u0000`, an AMQP message id), and refuses the whole commit with an
/// error that is not transient: the gateway would stop, and stop again at
/// every redelivery. NUL is written as U+FFFD instead (SQLite keeps it).
/// Bodies need nothing: JSON escapes it.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// [`text`] of an optional value, owned for a column array.
fn owned_text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|v| text(v).into_owned())
}

/// The batch as column arrays, built before the transaction starts.
struct Columns {
    e_id: Vec<String>,
    e_status: Vec<&'static str>,
    e_document_kind: Vec<&'static str>,
    e_encounter_kind: Vec<&'static str>,
    e_site: Vec<Option<String>>,
    e_deadline: Vec<DateTime<Utc>>,
    e_ended_at: Vec<DateTime<Utc>>,
    e_body: Vec<String>,
    e_delay: Vec<Option<i64>>,
    e_specialty: Vec<Option<String>>,
    e_gp_practice: Vec<Option<String>>,
    e_delivery: Vec<Option<&'static str>>,
    a_id: Vec<String>,
    a_kind: Vec<&'static str>,
    a_raised_at: Vec<DateTime<Utc>>,
    a_document_kind: Vec<&'static str>,
    a_encounter_kind: Vec<&'static str>,
    a_site: Vec<Option<String>>,
    a_body: Vec<String>,
    a_specialty: Vec<Option<String>>,
}

impl Columns {
    fn of(batch: &Batch) -> Result<Self, StoreError> {
        let exps = batch.distinct_expectations();
        let mut c = Columns {
            e_id: Vec::with_capacity(exps.len()),
            e_status: Vec::with_capacity(exps.len()),
            e_document_kind: Vec::with_capacity(exps.len()),
            e_encounter_kind: Vec::with_capacity(exps.len()),
            e_site: Vec::with_capacity(exps.len()),
            e_deadline: Vec::with_capacity(exps.len()),
            e_ended_at: Vec::with_capacity(exps.len()),
            e_body: Vec::with_capacity(exps.len()),
            e_delay: Vec::with_capacity(exps.len()),
            e_specialty: Vec::with_capacity(exps.len()),
            e_gp_practice: Vec::with_capacity(exps.len()),
            e_delivery: Vec::with_capacity(exps.len()),
            a_id: Vec::with_capacity(batch.alerts.len()),
            a_kind: Vec::with_capacity(batch.alerts.len()),
            a_raised_at: Vec::with_capacity(batch.alerts.len()),
            a_document_kind: Vec::with_capacity(batch.alerts.len()),
            a_encounter_kind: Vec::with_capacity(batch.alerts.len()),
            a_site: Vec::with_capacity(batch.alerts.len()),
            a_body: Vec::with_capacity(batch.alerts.len()),
            a_specialty: Vec::with_capacity(batch.alerts.len()),
        };
        for e in exps {
            c.e_body.push(rows::expectation_body(e)?);
            c.e_id.push(e.id.0.clone());
            c.e_status.push(e.status.as_str());
            c.e_document_kind.push(e.document_kind.as_str());
            c.e_encounter_kind.push(e.encounter.kind.as_str());
            c.e_site.push(owned_text(&e.encounter.site));
            c.e_deadline.push(e.deadline);
            c.e_ended_at.push(e.encounter.ended_at);
            c.e_delay.push(rows::delay_seconds(e));
            c.e_specialty.push(owned_text(&e.encounter.specialty));
            c.e_gp_practice.push(owned_text(&e.gp_practice));
            c.e_delivery.push(rows::delivery(e));
        }
        for a in &batch.alerts {
            c.a_body.push(rows::alert_body(a)?);
            c.a_id.push(a.alert_id.clone());
            c.a_kind.push(a.kind.as_str());
            c.a_raised_at.push(a.raised_at);
            c.a_document_kind.push(a.document_kind.as_str());
            c.a_encounter_kind.push(a.encounter.kind.as_str());
            c.a_site.push(owned_text(&a.encounter.site));
            c.a_specialty.push(owned_text(&a.encounter.specialty));
        }
        Ok(c)
    }
}

impl Store for PostgresStore {
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let c = Columns::of(batch)?;
        let puts = batch.distinct_state_puts();
        let put_ns: Vec<&str> = puts.iter().map(|r| r.namespace.as_str()).collect();
        let put_keys: Vec<Cow<'_, str>> = puts.iter().map(|r| text(&r.key)).collect();
        let put_key: Vec<&str> = put_keys.iter().map(AsRef::as_ref).collect();
        let put_value: Vec<&str> = puts.iter().map(|r| rows::state_body(r)).collect();
        let del_ns: Vec<&str> = batch.state_deletes.iter().map(|d| d.0.as_str()).collect();
        let del_keys: Vec<Cow<'_, str>> = batch.state_deletes.iter().map(|d| text(&d.1)).collect();
        let del_key: Vec<&str> = del_keys.iter().map(AsRef::as_ref).collect();
        let o = &batch.outbox;
        let o_id: Vec<&str> = o.iter().map(|m| m.id.as_str()).collect();
        let o_ex: Vec<&str> = o.iter().map(|m| m.exchange.as_str()).collect();
        let o_rk: Vec<&str> = o.iter().map(|m| m.routing_key.as_str()).collect();
        let o_ct: Vec<&str> = o.iter().map(|m| m.content_type.as_str()).collect();
        let o_body: Vec<&[u8]> = o.iter().map(|m| m.body.as_slice()).collect();
        let i = &batch.inputs;
        let i_ids: Vec<Cow<'_, str>> = i.iter().map(|r| text(&r.id)).collect();
        let i_id: Vec<&str> = i_ids.iter().map(AsRef::as_ref).collect();
        let i_outcome: Vec<&str> = i.iter().map(|r| r.outcome.as_str()).collect();
        let i_reasons: Vec<Option<Cow<'_, str>>> =
            i.iter().map(|r| r.reason.as_deref().map(text)).collect();
        let i_reason: Vec<Option<&str>> = i_reasons.iter().map(|r| r.as_deref()).collect();

        self.with_conn(|conn| {
            let mut tx = conn.client.transaction().map_err(pg("begin"))?;
            let cache = &mut conn.statements;
            if !c.e_id.is_empty() {
                let st = prepare(&mut tx, cache, UPSERT_EXPECTATIONS)?;
                tx.execute(
                    &st,
                    &[
                        &c.e_id,
                        &c.e_status,
                        &c.e_document_kind,
                        &c.e_encounter_kind,
                        &c.e_site,
                        &c.e_deadline,
                        &c.e_ended_at,
                        &c.e_body,
                        &c.e_delay,
                        &c.e_specialty,
                        &c.e_gp_practice,
                        &c.e_delivery,
                    ],
                )
                .map_err(pg("upsert expectations"))?;
            }
            if !c.a_id.is_empty() {
                let st = prepare(&mut tx, cache, INSERT_ALERTS)?;
                tx.execute(
                    &st,
                    &[
                        &c.a_id,
                        &c.a_kind,
                        &c.a_raised_at,
                        &c.a_document_kind,
                        &c.a_encounter_kind,
                        &c.a_site,
                        &c.a_body,
                        &c.a_specialty,
                    ],
                )
                .map_err(pg("insert alerts"))?;
            }
            for r in &batch.state_range_deletes {
                let st = prepare(&mut tx, cache, DELETE_STATE_RANGE)?;
                tx.execute(&st, &[&r.namespace, &r.from, &r.to])
                    .map_err(pg("delete a range of state"))?;
            }
            if !del_ns.is_empty() {
                let st = prepare(&mut tx, cache, DELETE_STATE)?;
                tx.execute(&st, &[&del_ns, &del_key])
                    .map_err(pg("delete state"))?;
            }
            if !put_ns.is_empty() {
                let st = prepare(&mut tx, cache, PUT_STATE)?;
                tx.execute(&st, &[&put_ns, &put_key, &put_value])
                    .map_err(pg("put state"))?;
            }
            if !o_id.is_empty() {
                let st = prepare(&mut tx, cache, INSERT_OUTBOX)?;
                tx.execute(&st, &[&o_id, &o_ex, &o_rk, &o_ct, &o_body])
                    .map_err(pg("insert outbox messages"))?;
            }
            if !i_id.is_empty() {
                let st = prepare(&mut tx, cache, UPSERT_INPUTS)?;
                tx.execute(&st, &[&i_id, &i_outcome, &i_reason])
                    .map_err(pg("insert inputs"))?;
            }
            crate::deliveries::pg::insert(&mut tx, &batch.deliveries, Utc::now())?;
            tx.commit().map_err(pg("commit"))
        })
    }

    fn visit_unsettled(
        &mut self,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let statuses: Vec<&str> = UNSETTLED.to_vec();
        self.visit_expectations(
            "SELECT id, body FROM expectations WHERE status = ANY($1)",
            &[&statuses],
            f,
        )
    }

    fn visit_expectations_by_id(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // In chunks, so that no one query carries an unbounded array.
        for chunk in ids.chunks(BY_ID_CHUNK) {
            self.visit_expectations(
                "SELECT id, body FROM expectations WHERE id = ANY($1)",
                &[&chunk],
                f,
            )?;
        }
        Ok(())
    }

    fn visit_state(
        &mut self,
        f: &mut dyn FnMut(StateRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT namespace, key, value FROM state ORDER BY namespace, key",
            )?;
            let no_params: [&(dyn ToSql + Sync); 0] = [];
            let mut cursor = c
                .client
                .query_raw(&st, no_params.iter().copied())
                .map_err(pg("query state"))?;
            while let Some(row) = cursor.next().map_err(pg("read state"))? {
                let namespace: String = row.get(0);
                let key: String = row.get(1);
                f(rows::state_record(namespace, key, row.get(2))?)?;
            }
            Ok(())
        })
    }

    fn outbox_pending_except(
        &mut self,
        limit: usize,
        exchanges: &[String],
    ) -> Result<Vec<PendingOutbox>, StoreError> {
        let limit = check_limit(limit)?;
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT seq, id, exchange, routing_key, content_type, body FROM outbox \
                 WHERE published_at IS NULL AND exchange <> ALL($2::text[]) \
                 ORDER BY seq LIMIT $1",
            )?;
            let found_rows = c
                .client
                .query(&st, &[&limit, &exchanges])
                .map_err(pg("query outbox"))?;
            Ok(found_rows
                .iter()
                .map(|r| PendingOutbox {
                    seq: r.get(0),
                    message: OutboxMessage {
                        id: r.get(1),
                        exchange: r.get(2),
                        routing_key: r.get(3),
                        content_type: r.get(4),
                        body: r.get(5),
                    },
                })
                .collect())
        })
    }

    fn outbox_mark_published(&mut self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "UPDATE outbox SET published_at = now() \
                 WHERE seq = ANY($1) AND published_at IS NULL",
            )?;
            c.client
                .execute(&st, &[&seqs])
                .map(|_| ())
                .map_err(pg("mark outbox published"))
        })
    }

    fn outbox_len(&mut self) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )?;
            let n: i64 = c
                .client
                .query_one(&st, &[])
                .map_err(pg("count outbox"))?
                .get(0);
            Ok(n.max(0) as u64)
        })
    }

    fn outbox_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            c.client
                .execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
                     WHERE published_at IS NOT NULL AND published_at < $1 LIMIT $2)",
                    &[&before, &limit_param(limit)],
                )
                .map_err(pg("prune outbox"))
        })
    }

    fn inputs_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        self.with_conn(|c| {
            c.client
                .execute(
                    "DELETE FROM inputs WHERE id IN (SELECT id FROM inputs \
                     WHERE processed_at < $1 LIMIT $2)",
                    &[&before, &limit_param(limit)],
                )
                .map_err(pg("prune inputs"))
        })
    }

    fn inputs_processed(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT id FROM inputs WHERE id = ANY($1) AND outcome = 'ok'",
            )?;
            let stored: Vec<Cow<'_, str>> = ids.iter().map(|id| text(id)).collect();
            let wanted: Vec<&str> = stored.iter().map(AsRef::as_ref).collect();
            let found_rows = c
                .client
                .query(&st, &[&wanted])
                .map_err(pg("query inputs"))?;
            let found: std::collections::HashSet<String> =
                found_rows.iter().map(|r| r.get(0)).collect();
            Ok(ids
                .iter()
                .zip(&wanted)
                .filter(|(_, w)| found.contains(**w))
                .map(|(id, _)| id.clone())
                .collect())
        })
    }

    fn alerts_by_id(&mut self, ids: &[String]) -> Result<Vec<Alert>, StoreError> {
        let mut out = Vec::new();
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT alert_id, body FROM alerts WHERE alert_id = ANY($1) \
                 ORDER BY raised_at, alert_id",
            )?;
            // In chunks, so that no one query carries an unbounded array.
            for chunk in ids.chunks(BY_ID_CHUNK) {
                for row in c.client.query(&st, &[&chunk]).map_err(pg("query alerts"))? {
                    let id: String = row.get(0);
                    out.push(rows::parse(row.get(1), "alerts", &id)?);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn expectations(&mut self, q: &ExpectationQuery) -> Result<Page<Expectation>, StoreError> {
        let mut filters = String::new();
        let mut params: Params = Vec::new();
        for (column, value) in q.equalities() {
            filters.push_str(&value.condition(column, |v| {
                params.push(Box::new(v.to_string()));
                format!("${}", params.len())
            }));
        }
        // Casting each body of the window to jsonb is what such a lookup
        // costs; a plain substring test, which PostgreSQL runs first as the
        // cheaper condition, leaves it a few rows (a month's window: 1.16 s
        // to 0.31 s; docs/performance.md, "Twenty-first session").
        for (value, key, path) in [
            (&q.nhs_number, "nhs_number", "{patient,nhs_number}"),
            (&q.encounter_id, "id", "{encounter,id}"),
        ] {
            if let Some(v) = value {
                if let Some(pattern) = body_pattern(key, v) {
                    params.push(Box::new(pattern));
                    filters.push_str(&format!(" AND body LIKE ${}", params.len()));
                }
                params.push(Box::new(v.clone()));
                // A body may hold the JSON escape of NUL, which jsonb
                // refuses: the whole query would fail for that one row.
                filters.push_str(&format!(
                    " AND replace(body, '\\u0000', '\\ufffd')::jsonb #>> '{path}' = ${}",
                    params.len()
                ));
            }
        }
        for (bound, op) in [(q.ended_from, ">="), (q.ended_to, "<")] {
            if let Some(t) = bound {
                params.push(Box::new(t));
                filters.push_str(&format!(" AND ended_at {op} ${}", params.len()));
            }
        }
        keyset_page(self, q.paging(), filters, params, q.limit)
    }

    fn alerts(&mut self, q: &AlertQuery) -> Result<Page<Alert>, StoreError> {
        let mut filters = String::new();
        let mut params: Params = Vec::new();
        if let Some(since) = q.since {
            params.push(Box::new(since));
            filters.push_str(&format!(" AND raised_at >= ${}", params.len()));
        }
        for (column, value) in q.equalities() {
            filters.push_str(&value.condition(column, |v| {
                params.push(Box::new(v.to_string()));
                format!("${}", params.len())
            }));
        }
        keyset_page(self, q.paging(), filters, params, q.limit)
    }

    fn visit_ended_between(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.visit_expectations(
            "SELECT id, body FROM expectations WHERE ended_at >= $1 AND ended_at < $2 \
             ORDER BY ended_at, id",
            &[&from, &to],
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
        self.with_conn(|c| {
            let st = prepare(
                &mut c.client,
                &mut c.statements,
                "SELECT id, status, document_kind, encounter_kind, site, ended_at, delay_seconds, \
                 specialty, gp_practice, delivery FROM expectations \
                 WHERE ended_at >= $1 AND ended_at < $2",
            )?;
            let params: [&(dyn ToSql + Sync); 2] = [&from, &to];
            let mut cursor = c
                .client
                .query_raw(&st, params.iter().copied())
                .map_err(pg("query expectations"))?;
            while let Some(row) = cursor.next().map_err(pg("read expectations"))? {
                let id: &str = row.get(0);
                f(&rows::report_facts(
                    id,
                    [row.get(1), row.get(2), row.get(3)],
                    [row.get(4), row.get(7), row.get(8)],
                    row.get(5),
                    row.get(6),
                    row.get(9),
                )?)?;
            }
            Ok(())
        })
    }

    fn claim_writer(&mut self) -> Result<(), StoreError> {
        if self.writer {
            return Ok(());
        }
        // The connection made at open took no lock: the next one does.
        self.writer = true;
        self.conn = None;
        match self.conn() {
            Ok(_) => Ok(()),
            Err(e) => {
                self.writer = false;
                Err(e)
            }
        }
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.with_conn(|c| c.client.is_valid(PING_TIMEOUT).map_err(pg("ping")))
    }

    fn deliveries_due(
        &mut self,
        subscriber: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<crate::PendingDelivery>, StoreError> {
        let limit = check_limit(limit)?;
        self.with_conn(|c| crate::deliveries::pg::due(&mut c.client, subscriber, now, limit))
    }

    fn delivery_next_due(&mut self, subscriber: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_conn(|c| crate::deliveries::pg::next_due(&mut c.client, subscriber))
    }

    fn delivery_record(
        &mut self,
        seq: i64,
        outcome: &crate::DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_conn(|c| crate::deliveries::pg::record(&mut c.client, seq, outcome, now))
    }

    fn delivery_counts(&mut self, subscriber: &str) -> Result<crate::DeliveryCounts, StoreError> {
        self.with_conn(|c| crate::deliveries::pg::counts(&mut c.client, subscriber))
    }

    fn delivery_backlog(&mut self) -> Result<Vec<crate::SubscriberBacklog>, StoreError> {
        self.with_conn(|c| crate::deliveries::pg::backlog(&mut c.client))
    }

    fn overdue_groups(
        &mut self,
        grouping: crate::Grouping,
    ) -> Result<Vec<crate::AlertGroup>, StoreError> {
        self.with_conn(|c| crate::deliveries::pg::overdue_groups(&mut c.client, grouping))
    }

    fn failed_delivery_groups(
        &mut self,
        since: DateTime<Utc>,
        grouping: crate::Grouping,
    ) -> Result<Vec<crate::AlertGroup>, StoreError> {
        self.with_conn(|c| {
            crate::deliveries::pg::failed_delivery_groups(&mut c.client, since, grouping)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Cow, body_pattern, client_config, text};

    /// `[store] password_file`'s password reaches the client as given, any
    /// characters at all, replacing one in the URL; without it the URL's
    /// stands.
    #[test]
    fn a_password_given_apart_is_the_one_used() {
        let (c, _) = client_config("postgres://tocsin@db/tocsin", Some("s3cr/t?x@y")).unwrap();
        assert_eq!(c.get_password(), Some(&b"s3cr/t?x@y"[..]));
        let (c, _) = client_config("postgres://tocsin:old@db/tocsin", Some("new")).unwrap();
        assert_eq!(c.get_password(), Some(&b"new"[..]));
        let (c, _) = client_config("postgres://tocsin:old@db/tocsin", None).unwrap();
        assert_eq!(c.get_password(), Some(&b"old"[..]));
        assert_eq!(c.get_application_name(), Some("tocsin"));
    }

    /// A dead connection is found within a minute, unless the URL chooses.
    #[test]
    fn keepalives_and_a_user_timeout_unless_the_url_sets_them() {
        let (c, _) = client_config("postgres://tocsin@db/tocsin", None).unwrap();
        assert_eq!(c.get_keepalives_idle(), std::time::Duration::from_secs(30));
        assert_eq!(
            c.get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(30))
        );
        let (c, _) = client_config(
            "postgres://tocsin@db/tocsin?keepalives_idle=600&tcp_user_timeout=5",
            None,
        )
        .unwrap();
        assert_eq!(c.get_keepalives_idle(), std::time::Duration::from_secs(600));
        assert_eq!(
            c.get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        let (c, _) = client_config("postgres://tocsin@db/tocsin?keepalives=0", None).unwrap();
        assert!(!c.get_keepalives());
        assert_eq!(c.get_keepalives_interval(), None);
    }

    #[test]
    fn nul_is_replaced_only_where_it_is() {
        assert!(matches!(text("RXX01"), Cow::Borrowed("RXX01")));
        assert_eq!(text("R\0X"), "R\u{FFFD}X");
    }

    #[test]
    fn body_patterns_escape_wildcards_and_give_up_on_json_escapes() {
        assert_eq!(
            body_pattern("nhs_number", "9434765919").as_deref(),
            Some(r#"%"nhs_number":"9434765919"%"#)
        );
        assert_eq!(
            body_pattern("id", "V_1%x").as_deref(),
            Some(r#"%"id":"V\_1\%x"%"#)
        );
        for escaped_in_json in ["a\"b", "a\\b", "a\nb"] {
            assert_eq!(body_pattern("id", escaped_in_json), None);
        }
    }
}
