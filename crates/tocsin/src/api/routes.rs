//! The `/api/v1` handlers: each reads its parameters strictly, asks the
//! store on a blocking thread, and answers JSON (or CSV for the report).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_store::{AlertOrder, AlertQuery, ExpectationQuery};
use tocsin_tracker::compliance::{self, ComplianceRow, GroupBy};
use tocsin_tracker::{Alert, AlertKind, Expectation, ExpectationStatus, alert_id};

use crate::internal_events::labels::alert_kinds;

use super::Api;
use super::error::ApiError;
use super::params::Params;

/// Every route, relative to `/api/v1`. The OpenAPI test checks each is
/// documented.
pub const ROUTES: [&str; 4] = [
    "/expectations",
    "/expectations/{id}",
    "/alerts",
    "/compliance",
];

const STATUSES: &str = "open, overdue, on_time, late, cancelled";
const DOCUMENT_KINDS: &str = "discharge_summary, clinic_letter, other";
const ENCOUNTER_KINDS: &str = "inpatient, day_case, emergency, outpatient, mental_health, other";
const ALERT_KINDS: &str =
    "due_soon, overdue, late, resolved, delivery_failed, unconfirmed, cancelled";
const DEFAULT_LIMIT: usize = 100;

/// The routes, before authorisation and state are attached.
pub fn router() -> Router<Api> {
    Router::new()
        .route(ROUTES[0], get(expectations))
        .route(ROUTES[1], get(expectation))
        .route(ROUTES[2], get(alerts))
        .route(ROUTES[3], get(report))
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn params(q: Pairs, allowed: &[&str]) -> Result<Params, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::bad("(query string)", e.body_text()))?;
    Params::new(pairs, allowed)
}

/// A page of expectations.
#[derive(Serialize)]
struct ExpectationPage {
    items: Vec<Expectation>,
    next_cursor: Option<String>,
}

async fn expectations(State(api): State<Api>, q: Pairs) -> Result<Json<ExpectationPage>, ApiError> {
    let p = params(
        q,
        &[
            "status",
            "document_kind",
            "encounter_kind",
            "site",
            "specialty",
            "gp_practice",
            "ended_from",
            "ended_to",
            "nhs_number",
            "encounter_id",
            "limit",
            "cursor",
        ],
    )?;
    let (ended_from, ended_to) = p.range("ended_from", "ended_to", &api.policy.timezone())?;
    let nhs_number = p.text("nhs_number").map(nhs_number).transpose()?;
    let encounter_id = p.text("encounter_id").map(str::to_string);
    if nhs_number.is_some() || encounter_id.is_some() {
        lookup_window(ended_from, ended_to)?;
    }
    let query = ExpectationQuery {
        status: p.closed::<ExpectationStatus>("status", STATUSES)?,
        document_kind: p.closed::<DocumentKind>("document_kind", DOCUMENT_KINDS)?,
        encounter_kind: p.closed::<EncounterKind>("encounter_kind", ENCOUNTER_KINDS)?,
        site: p.text("site").map(str::to_string),
        specialty: p.text("specialty").map(str::to_string),
        gp_practice: p.text("gp_practice").map(str::to_string),
        ended_from,
        ended_to,
        nhs_number,
        encounter_id,
        limit: p.limit(DEFAULT_LIMIT, api.max_limit)?,
        cursor: p.text("cursor").map(str::to_string),
    };
    let page = api.read(move |s| s.expectations(&query)).await?;
    Ok(Json(ExpectationPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// The longest window of encounter ends a lookup by patient or encounter
/// may read: the store keeps no index by either (tracking would pay for it
/// on every write), so such a lookup reads the bodies of the window.
const LOOKUP_WINDOW_DAYS: i64 = 92;

/// Refuses a lookup by patient or encounter without a bounded window.
fn lookup_window(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    let why = format!(
        "a lookup by nhs_number or encounter_id needs ended_from and ended_to at most \
         {LOOKUP_WINDOW_DAYS} days apart (when the encounter ended, roughly)"
    );
    match (from, to) {
        (None, _) => Err(ApiError::bad("ended_from", why)),
        (_, None) => Err(ApiError::bad("ended_to", why)),
        (Some(f), Some(t)) if t - f > chrono::TimeDelta::days(LOOKUP_WINDOW_DAYS) => {
            Err(ApiError::bad("ended_to", why))
        }
        _ => Ok(()),
    }
}

/// An NHS number as stored: ten digits, spaces and hyphens (as people
/// write it) dropped. One that fails the modulus-11 check is refused, not
/// looked up: the normalisers never keep such a number, so it would match
/// nothing and a mistyped number would look like a patient with no
/// expectations.
fn nhs_number(v: &str) -> Result<String, ApiError> {
    tocsin_event::validate_nhs_number(v)
        .map_err(|e| ApiError::bad("nhs_number", format!("expected an NHS number: {e}")))
}

/// One expectation and every alert raised about it: what a discharge
/// co-ordinator following an alert, or a trust answering a GP's "where is
/// the summary?", needs in one answer.
#[derive(Serialize)]
struct ExpectationDetail {
    expectation: Expectation,
    alerts: Vec<Alert>,
}

async fn expectation(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    q: Pairs,
) -> Result<Json<ExpectationDetail>, ApiError> {
    // A path that does not decode (`%FF`) is answered in the API's own
    // error shape, not axum's plain text.
    let Path(id) = path.map_err(|e| ApiError::bad("(path)", e.body_text()))?;
    params(q, &[])?;
    // No expectation's id holds a NUL, and PostgreSQL refuses one in a
    // parameter.
    if id.contains('\0') {
        return Err(ApiError::NoSuchItem("no expectation with that id".into()));
    }
    let wanted = id.clone();
    let detail = api
        .read(move |s| {
            let mut found = None;
            s.visit_expectations_by_id(std::slice::from_ref(&wanted), &mut |e| {
                found = Some(e);
                Ok(())
            })?;
            let Some(expectation) = found else {
                return Ok(None);
            };
            // Alert ids are the expectation's id and the kind: read by key.
            let ids: Vec<String> = alert_kinds()
                .iter()
                .map(|k| alert_id(&expectation.id, *k))
                .collect();
            let alerts = s.alerts_by_id(&ids)?;
            Ok(Some(ExpectationDetail {
                expectation,
                alerts,
            }))
        })
        .await?;
    detail
        .map(Json)
        .ok_or_else(|| ApiError::NoSuchItem(format!("no expectation `{id}`")))
}

/// A page of alerts, in the order they were raised or, with
/// `order=recorded`, the order the store recorded them.
#[derive(Serialize)]
struct AlertPage {
    items: Vec<Alert>,
    next_cursor: Option<String>,
    /// With `order=recorded` only: the cursor to poll with later.
    #[serde(skip_serializing_if = "Option::is_none")]
    resume_cursor: Option<String>,
}

async fn alerts(State(api): State<Api>, q: Pairs) -> Result<Json<AlertPage>, ApiError> {
    let p = params(
        q,
        &[
            "order",
            "since",
            "kind",
            "document_kind",
            "encounter_kind",
            "site",
            "specialty",
            "limit",
            "cursor",
        ],
    )?;
    let query = AlertQuery {
        order: p
            .closed::<AlertOrder>("order", "raised, recorded")?
            .unwrap_or_default(),
        since: p.time("since", &api.policy.timezone())?,
        kind: p.closed::<AlertKind>("kind", ALERT_KINDS)?,
        document_kind: p.closed::<DocumentKind>("document_kind", DOCUMENT_KINDS)?,
        encounter_kind: p.closed::<EncounterKind>("encounter_kind", ENCOUNTER_KINDS)?,
        site: p.text("site").map(str::to_string),
        specialty: p.text("specialty").map(str::to_string),
        limit: p.limit(DEFAULT_LIMIT, api.max_limit)?,
        cursor: p.text("cursor").map(str::to_string),
    };
    let page = api.read(move |s| s.alerts(&query)).await?;
    Ok(Json(AlertPage {
        items: page.items,
        next_cursor: page.next_cursor,
        resume_cursor: page.resume_cursor,
    }))
}

/// The compliance report as JSON.
#[derive(Serialize)]
struct Report {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    group_by: Vec<GroupBy>,
    rows: Vec<ComplianceRow>,
}

async fn report(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Pairs,
) -> Result<Response, ApiError> {
    let p = params(q, &["from", "to", "group_by"])?;
    let zone = api.policy.timezone();
    let (from, to) = p.range("from", "to", &zone)?;
    let group_by = p.group_by()?;
    // No bound: the range `tocsin replay` reports on too.
    let whole = compliance::whole_range();
    let (lo, hi) = (from.unwrap_or(whole.start), to.unwrap_or(whole.end));
    // The same figures as `tocsin replay --report`: expectations whose
    // encounter ended in [from, to), months in the policy's zone.
    // Streamed through a builder on the store's thread: the range may hold
    // a million expectations, about a gigabyte as values. (The report reads
    // no patient keys, and no expectation outlives its row.)
    let by = group_by.clone();
    let rows = api
        .read(move |s| {
            let mut report = compliance::ReportBuilder::new(&by, zone);
            s.visit_report_facts(lo, hi, &mut |e| {
                report.add_facts(e);
                Ok(())
            })?;
            Ok(report.finish())
        })
        .await?;
    // The representation follows `Accept`, so a cache must key on it: both
    // say so, or a cache could hand a CSV to a client that asked for JSON.
    let vary = [(header::VARY, "Accept")];
    if wants_csv(&headers) {
        return Ok((
            vary,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            compliance::to_csv(&rows, &group_by),
        )
            .into_response());
    }
    Ok((
        vary,
        Json(Report {
            from,
            to,
            group_by,
            rows,
        }),
    )
        .into_response())
}

/// Whether `Accept` prefers CSV (`text/csv` listed, `application/json` not
/// listed before it).
fn wants_csv(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // A media type's weight (`q`, 1 when absent) and its place in the list.
    let weight = |name: &str| -> Option<(f32, usize)> {
        accept.split(',').enumerate().find_map(|(i, range)| {
            let mut parts = range.split(';');
            if !parts.next()?.trim().eq_ignore_ascii_case(name) {
                return None;
            }
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, i))
        })
    };
    match (weight("text/csv"), weight("application/json")) {
        (Some((csv, _)), _) if csv <= 0.0 => false,
        (Some((csv, c)), Some((json, j))) => csv > json || (csv == json && c < j),
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn csv_only_when_asked_for_first() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_csv(&h)
        };
        assert!(with("text/csv"));
        assert!(with("text/csv;q=0.9, application/json;q=0.5"));
        assert!(!with("application/json, text/csv"));
        // Weights decide before order; an equal weight goes by order.
        assert!(!with("text/csv;q=0.1, application/json"));
        assert!(with("application/json;q=0.5, text/csv"));
        assert!(!with("text/csv;q=0"));
        assert!(!with("*/*"));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
