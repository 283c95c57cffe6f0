//! The delivery queue behind webhooks, and the grouped views behind
//! Alertmanager.
//!
//! A commit that stores an alert also stores one [`QueuedDelivery`] per
//! subscriber whose filters match it (the `deliveries` table, migration 2),
//! so an alert committed is an alert that will be delivered, crash or not.
//! A worker per subscriber reads its due rows ([`crate::Store::deliveries_due`]),
//! tries them and records each attempt ([`crate::Store::delivery_record`]):
//! delivered and failed rows are never returned again, so a subscriber that
//! accepted an alert is never sent it twice by the queue.
//!
//! Alertmanager is level-triggered instead: it is told what is true now
//! ([`crate::Store::overdue_groups`],
//! [`crate::Store::failed_delivery_groups`]), so it needs no queue of its
//! own.

use chrono::{DateTime, Utc};

/// An expectation's `delivery` once its document was accepted, as its body
/// holds it: a failure it had is then no longer firing.
const ACKNOWLEDGED: &str = "acknowledged";

/// A delivery to write in the same commit as its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDelivery {
    /// The subscriber's configured name.
    pub subscriber: String,
    /// The alert delivered; with the subscriber, unique (a repeat is
    /// ignored at commit).
    pub alert_id: String,
    /// Exactly the bytes to POST.
    pub body: Vec<u8>,
}

/// A delivery waiting for (another) attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// Its row, to pass to [`crate::Store::delivery_record`].
    pub seq: i64,
    /// The subscriber's configured name.
    pub subscriber: String,
    /// The alert.
    pub alert_id: String,
    /// The bytes to POST.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was committed (the retry limit counts from here).
    pub created_at: DateTime<Utc>,
}

/// What became of one attempt, or of a delivery not attempted again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The subscriber accepted it (2xx): never sent again.
    Delivered,
    /// Not accepted; try again at `at`.
    Retry {
        /// When to try next.
        at: DateTime<Utc>,
        /// Why this attempt failed (status code or transport error; never
        /// the body).
        error: String,
    },
    /// Not accepted and too old to try again: given up.
    Failed {
        /// Why the last attempt failed.
        error: String,
    },
    /// Given up without an attempt (stored `failed` as well): it reached
    /// its maximum age while the subscriber was refusing others, or it is
    /// no longer to be sent. Its attempts stay as they were.
    GivenUp {
        /// Why.
        error: String,
    },
}

impl DeliveryOutcome {
    /// The status stored for it.
    pub(crate) fn status(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry { .. } => "pending",
            Self::Failed { .. } | Self::GivenUp { .. } => "failed",
        }
    }

    /// Attempts it adds: one, unless it was given up without one.
    fn attempts(&self) -> i32 {
        match self {
            Self::GivenUp { .. } => 0,
            _ => 1,
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered => None,
            Self::Retry { error, .. } | Self::Failed { error } | Self::GivenUp { error } => {
                Some(error)
            }
        }
    }

    fn settled(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Retry { .. } => None,
            _ => Some(now),
        }
    }

    fn next_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Retry { at, .. } => *at,
            _ => now,
        }
    }
}

/// How many deliveries of one subscriber stand where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Waiting for an attempt.
    pub pending: u64,
    /// Accepted.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}

/// One subscriber's deliveries still waiting: what tells its operators
/// that it has stopped taking alerts long before any is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberBacklog {
    /// The subscriber's name, as queued (perhaps no longer configured).
    pub subscriber: String,
    /// Deliveries pending (never zero: subscribers with none are left out).
    pub pending: u64,
    /// When the oldest of them was committed.
    pub oldest: DateTime<Utc>,
}

/// Expectations or alerts sharing Alertmanager's labels: what one
/// Alertmanager alert stands for (no patient in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertGroup {
    /// `discharge_summary`, `clinic_letter`...
    pub document_kind: String,
    /// `inpatient`, `outpatient`...
    pub encounter_kind: String,
    /// The site, when known.
    pub site: Option<String>,
    /// The encounter's specialty, when known and the groups were asked to
    /// be split by it ([`Grouping::by_specialty`]).
    pub specialty: Option<String>,
    /// How many.
    pub count: u64,
    /// Earliest deadline (overdue groups) or raise time (alert groups).
    pub first: DateTime<Utc>,
    /// Latest deadline or raise time.
    pub last: DateTime<Utc>,
}

/// How [`AlertGroup`]s are formed: always by document kind, encounter
/// kind and site; by specialty too when asked, so that Alertmanager can
/// route a specialty's clinic letters to the team that writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Split each group by the encounter's specialty.
    pub by_specialty: bool,
}

impl Grouping {
    /// The query of one backend: groups of `from` (a table and its `WHERE`
    /// clause), first and last by `time`; without the split, the specialty
    /// column is `null` (that backend's typed null).
    fn sql(self, from: &str, time: &str, null: &str) -> String {
        let specialty = if self.by_specialty { "specialty" } else { null };
        format!(
            "SELECT document_kind, encounter_kind, site, {specialty}, count(*), min({time}), \
             max({time}) FROM {from} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
    }
}

/// The SQLite side.
pub(crate) mod sqlite {
    use chrono::{DateTime, Utc};
    use rusqlite::{Connection, OptionalExtension, params};

    use super::{
        ACKNOWLEDGED, AlertGroup, DeliveryCounts, DeliveryOutcome, Grouping, PendingDelivery,
        QueuedDelivery, SubscriberBacklog,
    };
    use crate::StoreError;
    use crate::rows::micros;

    fn sq(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { op, source }
    }

    fn time(us: i64, table: &'static str, id: &str) -> Result<DateTime<Utc>, StoreError> {
        crate::rows::time_column(us, table, id, "time")
    }

    /// Inserts the deliveries of a commit (inside its transaction).
    pub(crate) fn insert(
        tx: &Connection,
        rows: &[QueuedDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO deliveries (subscriber, alert_id, body, created_at, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (subscriber, alert_id) DO NOTHING",
            )
            .map_err(sq("prepare"))?;
        for d in rows {
            st.execute(params![d.subscriber, d.alert_id, d.body, now])
                .map_err(sq("insert delivery"))?;
        }
        Ok(())
    }

    pub(crate) fn due(
        conn: &Connection,
        subscriber: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let mut st = conn
            .prepare_cached(
                "SELECT seq, subscriber, alert_id, body, attempts, created_at FROM deliveries \
                 WHERE status = 'pending' AND subscriber = ?1 AND next_attempt_at <= ?2 \
                 ORDER BY seq LIMIT ?3",
            )
            .map_err(sq("prepare"))?;
        let rows = st
            .query_map(params![subscriber, micros(now), limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(sq("query deliveries"))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, subscriber, alert_id, body, attempts, created) =
                row.map_err(sq("read deliveries"))?;
            out.push(PendingDelivery {
                seq,
                subscriber,
                alert_id,
                body,
                attempts: attempts.clamp(0, u32::MAX as i64) as u32,
                created_at: time(created, "deliveries", &seq.to_string())?,
            });
        }
        Ok(out)
    }

    pub(crate) fn next_due(
        conn: &Connection,
        subscriber: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let us: Option<i64> = conn
            .prepare_cached(
                "SELECT min(next_attempt_at) FROM deliveries \
                 WHERE status = 'pending' AND subscriber = ?1",
            )
            .map_err(sq("prepare"))?
            .query_row([subscriber], |r| r.get(0))
            .optional()
            .map_err(sq("query deliveries"))?
            .flatten();
        us.map(|t| time(t, "deliveries", subscriber)).transpose()
    }

    pub(crate) fn record(
        conn: &Connection,
        seq: i64,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        conn.prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = attempts + ?6, \
             next_attempt_at = ?3, settled_at = ?4, last_error = ?5 \
             WHERE seq = ?1 AND status = 'pending'",
        )
        .map_err(sq("prepare"))?
        .execute(params![
            seq,
            outcome.status(),
            micros(outcome.next_at(now)),
            outcome.settled(now).map(micros),
            outcome.error(),
            outcome.attempts()
        ])
        .map_err(sq("record delivery"))?;
        Ok(())
    }

    pub(crate) fn counts(
        conn: &Connection,
        subscriber: &str,
    ) -> Result<DeliveryCounts, StoreError> {
        let mut st = conn
            .prepare_cached(
                "SELECT status, count(*) FROM deliveries WHERE subscriber = ?1 GROUP BY status",
            )
            .map_err(sq("prepare"))?;
        let rows = st
            .query_map([subscriber], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sq("count deliveries"))?;
        let mut c = DeliveryCounts::default();
        for row in rows {
            let (status, n) = row.map_err(sq("count deliveries"))?;
            super::add_count(&mut c, &status, n);
        }
        Ok(c)
    }

    pub(crate) fn backlog(conn: &Connection) -> Result<Vec<SubscriberBacklog>, StoreError> {
        let mut st = conn.prepare_cached(super::BACKLOG).map_err(sq("prepare"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(sq("count pending deliveries"))?;
        let mut out = Vec::new();
        for row in rows {
            let (subscriber, n, oldest) = row.map_err(sq("count pending deliveries"))?;
            out.push(SubscriberBacklog {
                oldest: time(oldest, "deliveries", &subscriber)?,
                subscriber,
                pending: n.max(0) as u64,
            });
        }
        Ok(out)
    }

    fn groups(
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<AlertGroup>, StoreError> {
        let mut st = conn.prepare_cached(sql).map_err(sq("prepare"))?;
        let rows = st
            .query_map(params, |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })
            .map_err(sq("query groups"))?;
        let mut out = Vec::new();
        for row in rows {
            let (document_kind, encounter_kind, site, specialty, count, first, last) =
                row.map_err(sq("read groups"))?;
            let first = time(first, "groups", &document_kind)?;
            let last = time(last, "groups", &document_kind)?;
            out.push(AlertGroup {
                document_kind,
                encounter_kind,
                site,
                specialty,
                count: count.max(0) as u64,
                first,
                last,
            });
        }
        Ok(out)
    }

    pub(crate) fn overdue_groups(
        conn: &Connection,
        grouping: Grouping,
    ) -> Result<Vec<AlertGroup>, StoreError> {
        groups(
            conn,
            &grouping.sql("expectations WHERE status = 'overdue'", "deadline", "NULL"),
            [],
        )
    }

    pub(crate) fn failed_delivery_groups(
        conn: &Connection,
        since: DateTime<Utc>,
        grouping: Grouping,
    ) -> Result<Vec<AlertGroup>, StoreError> {
        let from = format!(
            "alerts WHERE kind = 'delivery_failed' AND raised_at >= ?1 AND NOT EXISTS \
             (SELECT 1 FROM expectations e WHERE e.id = json_extract(alerts.body, \
             '$.expectation_id') AND json_extract(e.body, '$.delivery') = '{ACKNOWLEDGED}')"
        );
        groups(
            conn,
            &grouping.sql(&from, "raised_at", "NULL"),
            params![micros(since)],
        )
    }
}

/// The PostgreSQL side.
pub(crate) mod pg {
    use chrono::{DateTime, Utc};
    use postgres::GenericClient;

    use super::{
        ACKNOWLEDGED, AlertGroup, DeliveryCounts, DeliveryOutcome, Grouping, PendingDelivery,
        QueuedDelivery, SubscriberBacklog,
    };
    use crate::StoreError;

    fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
        move |source| StoreError::Postgres { op, source }
    }

    /// Inserts the deliveries of a commit (inside its transaction), due
    /// at `now`: the gateway's clock, which the workers compare with, not
    /// the database server's, which may differ by minutes.
    pub(crate) fn insert(
        tx: &mut impl GenericClient,
        rows: &[QueuedDelivery],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let subscriber: Vec<&str> = rows.iter().map(|d| d.subscriber.as_str()).collect();
        let alert_id: Vec<&str> = rows.iter().map(|d| d.alert_id.as_str()).collect();
        let body: Vec<&[u8]> = rows.iter().map(|d| d.body.as_slice()).collect();
        tx.execute(
            "INSERT INTO deliveries (subscriber, alert_id, body, created_at, next_attempt_at) \
             SELECT s, a, b, $4, $4 FROM unnest($1::text[], $2::text[], $3::bytea[]) \
             WITH ORDINALITY AS t(s, a, b, ord) ORDER BY ord \
             ON CONFLICT (subscriber, alert_id) DO NOTHING",
            &[&subscriber, &alert_id, &body, &now],
        )
        .map_err(pg("insert deliveries"))?;
        Ok(())
    }

    pub(crate) fn due(
        c: &mut impl GenericClient,
        subscriber: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = c
            .query(
                "SELECT seq, subscriber, alert_id, body, attempts, created_at FROM deliveries \
                 WHERE status = 'pending' AND subscriber = $1 AND next_attempt_at <= $2 \
                 ORDER BY seq LIMIT $3",
                &[&subscriber, &now, &limit],
            )
            .map_err(pg("query deliveries"))?;
        Ok(rows
            .iter()
            .map(|r| PendingDelivery {
                seq: r.get(0),
                subscriber: r.get(1),
                alert_id: r.get(2),
                body: r.get(3),
                attempts: r.get::<_, i32>(4).max(0) as u32,
                created_at: r.get(5),
            })
            .collect())
    }

    pub(crate) fn next_due(
        c: &mut impl GenericClient,
        subscriber: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = c
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries \
                 WHERE status = 'pending' AND subscriber = $1",
                &[&subscriber],
            )
            .map_err(pg("query deliveries"))?;
        Ok(row.get(0))
    }

    pub(crate) fn record(
        c: &mut impl GenericClient,
        seq: i64,
        outcome: &DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        c.execute(
            "UPDATE deliveries SET status = $2, attempts = attempts + $6, \
             next_attempt_at = $3, settled_at = $4, last_error = $5 \
             WHERE seq = $1 AND status = 'pending'",
            &[
                &seq,
                &outcome.status(),
                &outcome.next_at(now),
                &outcome.settled(now),
                &outcome.error(),
                &outcome.attempts(),
            ],
        )
        .map_err(pg("record delivery"))?;
        Ok(())
    }

    pub(crate) fn counts(
        c: &mut impl GenericClient,
        subscriber: &str,
    ) -> Result<DeliveryCounts, StoreError> {
        let rows = c
            .query(
                "SELECT status, count(*) FROM deliveries WHERE subscriber = $1 GROUP BY status",
                &[&subscriber],
            )
            .map_err(pg("count deliveries"))?;
        let mut out = DeliveryCounts::default();
        for r in &rows {
            super::add_count(&mut out, r.get(0), r.get(1));
        }
        Ok(out)
    }

    pub(crate) fn backlog(
        c: &mut impl GenericClient,
    ) -> Result<Vec<SubscriberBacklog>, StoreError> {
        let rows = c
            .query(super::BACKLOG, &[])
            .map_err(pg("count pending deliveries"))?;
        Ok(rows
            .iter()
            .map(|r| SubscriberBacklog {
                subscriber: r.get(0),
                pending: r.get::<_, i64>(1).max(0) as u64,
                oldest: r.get(2),
            })
            .collect())
    }

    fn groups(rows: Vec<postgres::Row>) -> Vec<AlertGroup> {
        rows.iter()
            .map(|r| AlertGroup {
                document_kind: r.get(0),
                encounter_kind: r.get(1),
                site: r.get(2),
                specialty: r.get(3),
                count: r.get::<_, i64>(4).max(0) as u64,
                first: r.get(5),
                last: r.get(6),
            })
            .collect()
    }

    pub(crate) fn overdue_groups(
        c: &mut impl GenericClient,
        grouping: Grouping,
    ) -> Result<Vec<AlertGroup>, StoreError> {
        let sql = grouping.sql(
            "expectations WHERE status = 'overdue'",
            "deadline",
            "NULL::text",
        );
        let rows = c
            .query(sql.as_str(), &[])
            .map_err(pg("query overdue groups"))?;
        Ok(groups(rows))
    }

    pub(crate) fn failed_delivery_groups(
        c: &mut impl GenericClient,
        since: DateTime<Utc>,
        grouping: Grouping,
    ) -> Result<Vec<AlertGroup>, StoreError> {
        // A body may hold the JSON escape of NUL, which jsonb refuses: read
        // as tocsin's other lookups do, with U+FFFD in its place.
        let json = |table: &str| format!("replace({table}.body, '\\u0000', '\\ufffd')::jsonb");
        let from = format!(
            "alerts WHERE kind = 'delivery_failed' AND raised_at >= $1 AND NOT EXISTS \
             (SELECT 1 FROM expectations e WHERE e.id = {} ->> 'expectation_id' \
             AND {} ->> 'delivery' = '{ACKNOWLEDGED}')",
            json("alerts"),
            json("e")
        );
        let sql = grouping.sql(&from, "raised_at", "NULL::text");
        let rows = c
            .query(sql.as_str(), &[&since])
            .map_err(pg("query failed delivery groups"))?;
        Ok(groups(rows))
    }
}

/// Pending deliveries by subscriber, the same text on both backends.
/// Pending rows only (the `deliveries_due` index holds just those), so its
/// cost follows the backlog, not the table's history.
const BACKLOG: &str = "SELECT subscriber, count(*), min(created_at) FROM deliveries \
     WHERE status = 'pending' GROUP BY subscriber ORDER BY subscriber";

fn add_count(c: &mut DeliveryCounts, status: &str, n: i64) {
    let n = n.max(0) as u64;
    match status {
        "pending" => c.pending += n,
        "delivered" => c.delivered += n,
        _ => c.failed += n,
    }
}
