//! Conversions shared by both backends: the indexed columns of stored
//! values, times as microseconds, and JSON bodies.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::de::value::StrDeserializer;
use tocsin_tracker::compliance::{EncounterFacts, ReportFacts, SettlementFacts};
use tocsin_tracker::{Alert, DeliveryStatus, Expectation};

use crate::StoreError;

/// Statuses that still wait for a document.
pub(crate) const UNSETTLED: [&str; 2] = ["open", "overdue"];

/// Microseconds since the epoch (the SQLite column form).
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A row limit as SQL's 64-bit integer (saturating: `usize::MAX` is "no limit").
pub(crate) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// An expectation's JSON body.
pub(crate) fn expectation_body(e: &Expectation) -> Result<String, StoreError> {
    tocsin_tracker::json_string(e).map_err(|source| StoreError::Serialise {
        what: "expectation",
        id: e.id.0.clone(),
        source,
    })
}

/// An alert's JSON body.
pub(crate) fn alert_body(a: &Alert) -> Result<String, StoreError> {
    tocsin_tracker::json_string(a).map_err(|source| StoreError::Serialise {
        what: "alert",
        id: a.alert_id.clone(),
        source,
    })
}

/// A state record's JSON value, as the tracker wrote it.
pub(crate) fn state_body(r: &tocsin_tracker::StateRecord) -> &str {
    r.value.as_str()
}

/// A stored state row as the tracker's record (the same for both backends).
pub(crate) fn state_record(
    namespace: String,
    key: String,
    value: String,
) -> Result<tocsin_tracker::StateRecord, StoreError> {
    let value = tocsin_tracker::JsonText::parse(value).map_err(|e| StoreError::Corrupt {
        table: "state",
        id: format!("{namespace}/{key}"),
        source: e.into(),
    })?;
    Ok(tocsin_tracker::StateRecord {
        namespace,
        key,
        value,
    })
}

/// Parses a stored body.
pub(crate) fn parse<T: DeserializeOwned>(
    body: &str,
    table: &'static str,
    id: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        table,
        id: id.to_string(),
        source: e.into(),
    })
}

/// The settling document's delay, for the `delay_seconds` column (`None`
/// while no document has settled the expectation).
pub(crate) fn delay_seconds(e: &Expectation) -> Option<i64> {
    e.settlement.as_ref().map(|s| s.delay_seconds)
}

/// A time column (microseconds since the epoch) as a time.
pub(crate) fn time_column(
    us: i64,
    table: &'static str,
    id: &str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::InvalidColumn {
        table,
        id: id.to_string(),
        column,
    })
}

/// The settling transmission's delivery state, for the `delivery` column
/// (`None` while nothing was sent).
pub(crate) fn delivery(e: &Expectation) -> Option<&'static str> {
    e.delivery.map(DeliveryStatus::as_str)
}

/// An expectation's report facts from its columns (both backends): the
/// names in `[status, document_kind, encounter_kind]` and `delivery` are
/// the snake_case ones the store writes; another is reported as a corrupt
/// row. The texts are `[site, specialty, gp_practice]`.
pub(crate) fn report_facts<'a>(
    id: &str,
    [status, document_kind, encounter_kind]: [&str; 3],
    [site, specialty, gp_practice]: [Option<&'a str>; 3],
    ended_at: DateTime<Utc>,
    delay_seconds: Option<i64>,
    delivery: Option<&str>,
) -> Result<ReportFacts<'a>, StoreError> {
    Ok(ReportFacts {
        status: named(status, id)?,
        document_kind: named(document_kind, id)?,
        encounter: EncounterFacts {
            kind: named(encounter_kind, id)?,
            ended_at,
            site: site.map(Cow::Borrowed),
            specialty: specialty.map(Cow::Borrowed),
        },
        gp_practice: gp_practice.map(Cow::Borrowed),
        settlement: delay_seconds.map(|delay_seconds| SettlementFacts { delay_seconds }),
        delivery: delivery.map(|d| named(d, id)).transpose()?,
    })
}

/// A stored snake_case name as its enum (by the type's own `Deserialize`).
fn named<T: DeserializeOwned>(name: &str, id: &str) -> Result<T, StoreError> {
    T::deserialize(StrDeserializer::<serde_json::Error>::new(name)).map_err(|e| {
        StoreError::Corrupt {
            table: "expectations",
            id: id.to_string(),
            source: e.into(),
        }
    })
}
