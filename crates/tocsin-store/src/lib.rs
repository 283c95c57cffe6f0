//! Durable state for tocsin.
//!
//! The tracker is pure; this crate keeps what it must not lose: expectations
//! (with their deadlines), alerts, the tracker's auxiliary state records, the
//! outbox of events and alerts to publish, and the ids of processed inputs.
//! Each batch of inputs' effects is committed as one transaction together
//! with its outbox messages, before the inputs are acknowledged.
//!
//! Two backends share one synchronous [`Store`] trait:
//! - SQLite (`sqlite://PATH`, the default; `sqlite::memory:` for tests), in WAL
//!   mode with `synchronous=NORMAL`;
//! - PostgreSQL (`postgres://...`), through the synchronous `postgres` crate.
//!
//! The trait is synchronous on purpose: the gateway calls it from a dedicated
//! thread (or `spawn_blocking`). The PostgreSQL backend runs its own small
//! runtime internally and must not be called from inside an async task.

mod batch;
mod build;
mod checkpoint;
mod deliveries;
mod error;
mod held;
pub mod migrate;
mod pg;
mod pg_tls;
mod query;
mod rows;
mod sqlite;
mod sqlite_file;

use chrono::{DateTime, Utc};
use tocsin_tracker::compliance::ReportFacts;
use tocsin_tracker::{Alert, Expectation, StateRecord};

pub use batch::{
    Batch, BatchIndex, InputOutcome, InputRecord, JSON_CONTENT_TYPE, OutboxMessage, PendingOutbox,
};
pub use deliveries::{
    AlertGroup, DeliveryCounts, DeliveryOutcome, Grouping, PendingDelivery, QueuedDelivery,
    SubscriberBacklog,
};
pub use error::{ParseFailure, StoreError, redact_url};
pub use held::HeldState;
pub use pg::PostgresStore;
pub use query::{AlertOrder, AlertQuery, ExpectationQuery, NONE, Page, time_in_range};
pub use sqlite::{SqliteStore, Synchronous};

/// A SQLite store's files on disk ([`Store::files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFiles {
    /// The database file's size in bytes.
    pub database_bytes: u64,
    /// The write-ahead log's (`-wal`) size in bytes: kept near its limit by
    /// checkpoints, growing while they fail.
    pub wal_bytes: u64,
    /// Whether WAL checkpoints are failing (from the first failure until
    /// one copies the whole log back into the database).
    pub checkpoints_failing: bool,
}

/// The durable store, whichever backend holds it.
///
/// Every method is one transaction or one read. Methods take `&mut self`
/// because a backend owns a single connection.
pub trait Store: Send {
    /// Writes a batch atomically: expectations and state puts are upserts,
    /// state deletes remove (deletes before puts), alerts, outbox messages and
    /// inputs are inserted unless their id is already stored (a replayed
    /// input never queues the same alert twice). Idempotent, so a batch whose
    /// commit failed transiently can be committed again.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Closes the store once its writer is done. A store built aside
    /// ([`open_for_build`]) is synced and moved into place here, and is
    /// discarded if dropped instead; for any other store this is a drop.
    fn close(self: Box<Self>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Calls `f` for every unsettled (open or overdue) expectation.
    fn visit_unsettled(
        &mut self,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Every unsettled (open or overdue) expectation, to rebuild the tracker.
    fn load_unsettled(&mut self) -> Result<Vec<Expectation>, StoreError> {
        let mut out = Vec::new();
        self.visit_unsettled(&mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` for each stored expectation among `ids`, whatever its
    /// status, in no set order; an id not stored is skipped. A restart
    /// needs the settled expectations that transmissions awaiting
    /// acknowledgement name (`tocsin_tracker::Restoring::wanted`, a few
    /// tens of thousands within the acknowledgement horizon): read by
    /// primary key, not with every settled expectation in the store.
    fn visit_expectations_by_id(
        &mut self,
        ids: &[String],
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Calls `f` for every auxiliary state record, in namespace and key
    /// order, without holding them all in memory (a store behind a million
    /// open expectations holds millions of seen keys).
    fn visit_state(
        &mut self,
        f: &mut dyn FnMut(StateRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Every auxiliary state record, to rebuild the tracker.
    fn load_state(&mut self) -> Result<Vec<StateRecord>, StoreError> {
        let mut out = Vec::new();
        self.visit_state(&mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Up to `limit` messages not yet confirmed by the broker, in commit
    /// (`seq`) order.
    fn outbox_pending(&mut self, limit: usize) -> Result<Vec<PendingOutbox>, StoreError> {
        self.outbox_pending_except(limit, &[])
    }

    /// As [`Store::outbox_pending`], leaving out the messages for
    /// `exchanges`: the relay skips an exchange the broker is refusing (a
    /// subscriber's queue at its length limit), so that what waits for it
    /// does not hold back the others' (alerts behind events).
    fn outbox_pending_except(
        &mut self,
        limit: usize,
        exchanges: &[String],
    ) -> Result<Vec<PendingOutbox>, StoreError>;

    /// Marks messages as confirmed by the broker: they are not returned by
    /// [`Store::outbox_pending`] again. Published rows are kept (their ids
    /// still deduplicate) until [`Store::outbox_prune`].
    fn outbox_mark_published(&mut self, seqs: &[i64]) -> Result<(), StoreError>;

    /// How many messages wait to be published.
    fn outbox_len(&mut self) -> Result<u64, StoreError>;

    /// Deletes up to `limit` messages published before `before`, returning
    /// how many. After this, a message with one of their ids would be queued
    /// again. Bounded so that housekeeping never holds the store for long:
    /// callers repeat while a call deletes `limit` rows.
    fn outbox_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;

    /// Deletes up to `limit` processed-input records committed before
    /// `before`, returning how many. After this, a redelivery of one of
    /// those inputs is processed again (the tracker's duplicate keys still
    /// recognise its events within their own horizon).
    fn inputs_prune(&mut self, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;

    /// Of the given input ids, those already committed as applied (to
    /// recognise a redelivery of an input whose effects are stored but
    /// whose acknowledgement was lost). An id whose latest record is a
    /// rejection is not among them: the same id may come back mended (a
    /// redrive), and its redelivery must then be processed, not taken for
    /// the rejection; a rejection redelivered is only dead-lettered again.
    fn inputs_processed(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// One page of expectations, in deadline order, filtered.
    fn expectations(&mut self, q: &ExpectationQuery) -> Result<Page<Expectation>, StoreError>;

    /// One page of alerts raised since a time, optionally of one kind, in
    /// `raised_at` order (then id).
    fn alerts(&mut self, q: &AlertQuery) -> Result<Page<Alert>, StoreError>;

    /// The stored alerts among `ids`, in `raised_at` order (then id); an
    /// id not stored is skipped. An expectation's alerts have ids known in
    /// advance (`tocsin_tracker::alert_id`, one a kind), so they are read
    /// by primary key.
    fn alerts_by_id(&mut self, ids: &[String]) -> Result<Vec<Alert>, StoreError>;

    /// Calls `f` for every expectation whose encounter ended in
    /// `[from, to)`, in order of encounter end, without holding them all in
    /// memory.
    fn visit_ended_between(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut dyn FnMut(Expectation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Calls `f` with what a compliance report reads ([`ReportFacts`]) of
    /// every expectation whose encounter ended in `[from, to)`, in no set
    /// order (the report's figures do not depend on it): the report without
    /// rebuilding each whole expectation from its body or sorting them.
    fn visit_report_facts(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        f: &mut dyn FnMut(&ReportFacts<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Every expectation whose encounter ended in `[from, to)`, for
    /// compliance reports.
    fn expectations_ended_between(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Expectation>, StoreError> {
        let mut out = Vec::new();
        self.visit_ended_between(from, to, &mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Claims the store for this connection's process as its one writer,
    /// for as long as the store is open: a second writer (another `tocsin
    /// run`, `replay --store` on a gateway's store) is refused with
    /// [`StoreError::InUse`]. Readers (the API's connection) do not claim.
    /// A SQLite file is claimed by an exclusive lock on `PATH.lock` beside
    /// it; PostgreSQL by a session advisory lock, taken again whenever the
    /// connection is made again. A private in-memory store has no other
    /// writer.
    fn claim_writer(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Checks the store answers (readiness).
    fn ping(&mut self) -> Result<(), StoreError>;

    /// The store's own files on disk, for the gateway's metrics: `None`
    /// for PostgreSQL (its disk is the server's to watch) and an in-memory
    /// store. A SQLite store grows with the traffic kept, and its WAL
    /// without bound while checkpoints fail: nothing but a log line said
    /// so before the disk was full.
    fn files(&mut self) -> Option<StoreFiles> {
        None
    }

    /// Up to `limit` pending webhook deliveries of `subscriber` due by
    /// `now`, oldest due first (see [`deliveries`](crate::QueuedDelivery)).
    fn deliveries_due(
        &mut self,
        subscriber: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// When the next pending delivery of `subscriber` falls due, if any.
    fn delivery_next_due(&mut self, subscriber: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records an attempt on a pending delivery at `now`: delivered and
    /// failed rows are settled for good (never due again); a retry is due
    /// again at its time. A row already settled is left as it is.
    fn delivery_record(
        &mut self,
        seq: i64,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many deliveries of `subscriber` are pending, delivered, failed.
    fn delivery_counts(&mut self, subscriber: &str) -> Result<DeliveryCounts, StoreError>;

    /// Each subscriber's pending deliveries, by name, and when the oldest
    /// was committed: a subscriber refusing everything shows here hours
    /// before its first delivery is given up, and a name that is no longer
    /// configured (no worker) would otherwise wait unseen.
    fn delivery_backlog(&mut self) -> Result<Vec<SubscriberBacklog>, StoreError>;

    /// Overdue expectations grouped by document kind, encounter kind and
    /// site, and by specialty when `grouping` says so (what Alertmanager is
    /// told is firing).
    fn overdue_groups(&mut self, grouping: Grouping) -> Result<Vec<AlertGroup>, StoreError>;

    /// `delivery_failed` alerts raised since a time, grouped the same way,
    /// leaving out those whose expectation's delivery has since been
    /// acknowledged (the document sent again and accepted): what
    /// Alertmanager is told is still failing.
    fn failed_delivery_groups(
        &mut self,
        since: DateTime<Utc>,
        grouping: Grouping,
    ) -> Result<Vec<AlertGroup>, StoreError>;
}

/// Opens the store a URL names, creating and migrating it as needed:
/// `sqlite://PATH` (parent directories are created; `?synchronous=full` or
/// `?synchronous=off` changes the durability setting, see [`Synchronous`]),
/// `sqlite::memory:`, or `postgres://...` / `postgresql://...`.
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, None)
}

/// As [`open`], with a PostgreSQL password given apart from the URL
/// (`[store] password_file`), so that it is never part of a string that
/// could be logged. A password for a SQLite store is refused.
pub fn open_with(url: &str, password: Option<&str>) -> Result<Box<dyn Store>, StoreError> {
    if password.is_some() && !is_postgres(url) {
        return Err(StoreError::InvalidUrl {
            url: redact_url(url),
            reason: "a password (password_file) applies to a postgres:// store only".into(),
        });
    }
    if url == "sqlite::memory:" {
        return Ok(Box::new(SqliteStore::open_in_memory()?));
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, sync) = sqlite_options(url, rest)?;
        return Ok(Box::new(SqliteStore::open_with(path, sync)?));
    }
    if is_postgres(url) {
        return Ok(Box::new(PostgresStore::connect_with(url, password)?));
    }
    Err(StoreError::InvalidUrl {
        url: redact_url(url),
        reason: "expected sqlite://PATH, sqlite::memory: or postgres://...".into(),
    })
}

/// How [`open_for_build`] opened its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// A new SQLite file, built aside: nothing reads it before
    /// [`Store::close`] puts it in place, so its commits need not be states
    /// a gateway could carry on from, only its end. The loader may hold back
    /// what would be written and replaced again (state records in a
    /// [`HeldState`], unsettled expectations) and write it once, last.
    Aside,
    /// An existing SQLite file, PostgreSQL or memory, written in place:
    /// every commit must be a state a gateway could carry on from.
    InPlace,
}

/// Opens the store a URL names for one writer that loads it in bulk
/// (`tocsin replay --store`): a SQLite file that does not exist yet is
/// built aside and appears only when [`Store::close`] completes it (see
/// [`SqliteStore::build`]); any other store opens as with [`open`]. The
/// `?synchronous=` option does not apply to a build, which syncs once, at
/// the end.
pub fn open_for_build(
    url: &str,
    password: Option<&str>,
) -> Result<(Box<dyn Store>, BuildMode), StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite://")
        && password.is_none()
    {
        let (path, _) = sqlite_options(url, rest)?;
        if !std::path::Path::new(path).exists() {
            return Ok((Box::new(SqliteStore::build(path)?), BuildMode::Aside));
        }
    }
    Ok((open_with(url, password)?, BuildMode::InPlace))
}

/// Checks a store URL without opening anything: its scheme, a SQLite
/// URL's path and options, a PostgreSQL URL's settings. `check-config`
/// and start-up call it, so that a URL that can never work is refused
/// with its reason at once rather than retried as if the store were down.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    if url == "sqlite::memory:" {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return sqlite_options(url, rest).map(|_| ());
    }
    if is_postgres(url) {
        return pg::check_url(url);
    }
    Err(StoreError::InvalidUrl {
        url: redact_url(url),
        reason: "expected sqlite://PATH, sqlite::memory: or postgres://...".into(),
    })
}

/// The file a `sqlite://PATH[?options]` URL names, for a command that must
/// keep its own store out of what it reads (`replay --store` inside the
/// archive directory). `None` for any other URL.
pub fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    (!path.is_empty()).then(|| std::path::Path::new(path))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Splits `PATH[?synchronous=normal|full|off]`.
fn sqlite_options<'a>(url: &str, rest: &'a str) -> Result<(&'a str, Synchronous), StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid("no file path after sqlite://".into()));
    }
    // No shell reads the URL: `~` would be a directory of that name.
    if path == "~" || path.starts_with("~/") {
        return Err(invalid(
            "`~` is not expanded here (no shell reads the URL): give the full path".into(),
        ));
    }
    let mut sync = Synchronous::Normal;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("synchronous", v)) => {
                sync = Synchronous::parse(v).ok_or_else(|| {
                    invalid(format!(
                        "synchronous must be normal, full or off, not `{v}`"
                    ))
                })?
            }
            _ => return Err(invalid(format!("unknown option `{pair}`"))),
        }
    }
    Ok((path, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_a_sqlite_url_names() {
        let file = |u| sqlite_file(u).map(|p| p.to_str().unwrap().to_owned());
        assert_eq!(file("sqlite://a/b.db").as_deref(), Some("a/b.db"));
        assert_eq!(
            file("sqlite:///var/t.db?synchronous=full").as_deref(),
            Some("/var/t.db")
        );
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://"), None);
        assert_eq!(file("postgres://h/db"), None);
    }

    #[test]
    fn a_url_that_can_never_work_is_refused_unopened() {
        for ok in [
            "sqlite::memory:",
            "sqlite:///var/lib/tocsin/t.db?synchronous=full",
            "postgres://tocsin@db.trust.nhs.uk:5432/tocsin?sslmode=require",
        ] {
            check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("mysql://x", "expected sqlite://PATH"),
            ("sqlite://", "no file path"),
            ("sqlite://t.db?synchronous=sometimes", "synchronous"),
            ("postgres://u:s3cret@h:notaport/db", ""),
        ] {
            let e = check_url(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
