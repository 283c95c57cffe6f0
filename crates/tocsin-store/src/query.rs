//! Read queries for the HTTP API: filters, limits and keyset-pagination
//! cursors.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_tracker::{AlertKind, ExpectationStatus};

use crate::StoreError;

/// Filters for listing expectations. Results come in deadline order (then
/// id), so the most urgent come first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectationQuery {
    /// Only this status.
    pub status: Option<ExpectationStatus>,
    /// Only this document kind.
    pub document_kind: Option<DocumentKind>,
    /// Only this encounter kind.
    pub encounter_kind: Option<EncounterKind>,
    /// Only this site.
    pub site: Option<String>,
    /// Only this specialty (treatment function code), as the encounter
    /// gave it.
    pub specialty: Option<String>,
    /// Only patients of this GP practice (ODS code): what a practice asking
    /// after its letters, or a contract manager, looks for.
    pub gp_practice: Option<String>,
    /// Only encounters that ended at or after this time.
    pub ended_from: Option<DateTime<Utc>>,
    /// Only encounters that ended before this time.
    pub ended_to: Option<DateTime<Utc>>,
    /// Only this patient. The store keeps no index by patient (tracking
    /// would pay for it on every write): this reads the bodies of the
    /// expectations the other filters leave, so give it an `ended_*`
    /// window.
    pub nhs_number: Option<String>,
    /// Only this encounter (visit number), read as `nhs_number` is.
    pub encounter_id: Option<String>,
    /// At most this many (at least 1).
    pub limit: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

impl Default for ExpectationQuery {
    fn default() -> Self {
        Self {
            status: None,
            document_kind: None,
            encounter_kind: None,
            site: None,
            specialty: None,
            gp_practice: None,
            ended_from: None,
            ended_to: None,
            nhs_number: None,
            encounter_id: None,
            limit: 100,
            cursor: None,
        }
    }
}

impl ExpectationQuery {
    /// The filters that are a column equal to a value, as (column, value),
    /// those given only: each backend binds them in its own way.
    pub(crate) fn equalities(&self) -> Vec<(&'static str, Equality<'_>)> {
        given([
            ("status", self.status.map(ExpectationStatus::as_str)),
            (
                "document_kind",
                self.document_kind.map(DocumentKind::as_str),
            ),
            (
                "encounter_kind",
                self.encounter_kind.map(EncounterKind::as_str),
            ),
            ("site", self.site.as_deref()),
            ("specialty", self.specialty.as_deref()),
            ("gp_practice", self.gp_practice.as_deref()),
        ])
    }

    /// How a page of this query is read: its cursors are bound to every
    /// filter (not to `limit`, which may change from page to page).
    pub(crate) fn paging(&self) -> Paging<'_> {
        let mut scope = Scope::of(&self.equalities());
        scope.time("ended_from", self.ended_from);
        scope.time("ended_to", self.ended_to);
        scope.text("nhs_number", self.nhs_number.as_deref());
        scope.text("encounter_id", self.encounter_id.as_deref());
        Paging::new(List::Expectations, scope, self.cursor.as_deref())
    }
}

/// The value of a site, specialty or GP practice filter that asks for the
/// rows that have none: what the compliance report groups them under, so
/// that a report row or an Alertmanager group of an unknown site can be
/// drilled into (before, no value could select them, and a link left the
/// site out and listed every site's cases).
pub const NONE: &str = tocsin_tracker::compliance::UNKNOWN;

/// One filter of a list: a column equal to a value, or without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Equality<'a> {
    /// `column = value`.
    Is(&'a str),
    /// `column IS NULL` (the filter's value was [`NONE`]).
    Missing,
}

impl Equality<'_> {
    /// The SQL condition on `column`, ` AND ...`; `bind` binds the value
    /// and returns its placeholder (`?3`, `$3`), each backend its own way.
    pub(crate) fn condition(self, column: &str, bind: impl FnOnce(&str) -> String) -> String {
        match self {
            Self::Is(v) => format!(" AND {column} = {}", bind(v)),
            Self::Missing => format!(" AND {column} IS NULL"),
        }
    }
}

/// The filters of a list that were given; [`NONE`] asks for no value.
fn given<'a, const N: usize>(
    filters: [(&'static str, Option<&'a str>); N],
) -> Vec<(&'static str, Equality<'a>)> {
    filters
        .into_iter()
        .filter_map(|(column, value)| {
            value.map(|v| {
                let e = if v == NONE {
                    Equality::Missing
                } else {
                    Equality::Is(v)
                };
                (column, e)
            })
        })
        .collect()
}

/// The order an alert list comes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOrder {
    /// By `raised_at` (then `alert_id`): the time the messages give, for
    /// looking alerts up. Alerts are recorded out of this order (a backlog
    /// brings alerts raised hours ago), so a poller cannot follow it.
    #[default]
    Raised,
    /// In the order the store recorded them: for a system that polls the
    /// list and must see every alert once. Each page carries a
    /// [`Page::resume_cursor`] to ask later for what was recorded since.
    Recorded,
}

/// Filters for listing alerts, in `raised_at` order (then `alert_id`)
/// unless [`AlertOrder::Recorded`] is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// The order of the list.
    pub order: AlertOrder,
    /// Only alerts raised at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// Only this document kind.
    pub document_kind: Option<DocumentKind>,
    /// Only this encounter kind.
    pub encounter_kind: Option<EncounterKind>,
    /// Only this site: with the two above, one Alertmanager group's alerts.
    pub site: Option<String>,
    /// Only this specialty (the encounter's): with the three above, one
    /// group's alerts when Alertmanager's groups are split by specialty.
    pub specialty: Option<String>,
    /// At most this many (at least 1).
    pub limit: usize,
    /// Continue after the page that returned this cursor. Alerts raised at
    /// the same instant (every deadline of one minute) are many, so a page
    /// cannot be continued by time alone.
    pub cursor: Option<String>,
}

impl Default for AlertQuery {
    fn default() -> Self {
        Self {
            order: AlertOrder::Raised,
            since: None,
            kind: None,
            document_kind: None,
            encounter_kind: None,
            site: None,
            specialty: None,
            limit: 100,
            cursor: None,
        }
    }
}

impl AlertQuery {
    /// The filters that are a column equal to a value, as (column, value),
    /// those given only (`since` is a range, not among them).
    pub(crate) fn equalities(&self) -> Vec<(&'static str, Equality<'_>)> {
        given([
            ("kind", self.kind.map(AlertKind::as_str)),
            (
                "document_kind",
                self.document_kind.map(DocumentKind::as_str),
            ),
            (
                "encounter_kind",
                self.encounter_kind.map(EncounterKind::as_str),
            ),
            ("site", self.site.as_deref()),
            ("specialty", self.specialty.as_deref()),
        ])
    }

    /// How a page of this query is read: its cursors are bound to its
    /// order and every filter (not to `limit`).
    pub(crate) fn paging(&self) -> Paging<'_> {
        let mut scope = Scope::of(&self.equalities());
        scope.time("since", self.since);
        Paging::new(List::of_alerts(self.order), scope, self.cursor.as_deref())
    }
}

/// The filters of a request, written out unambiguously (each name and value
/// with its length) to be digested into the cursors its pages hand out.
struct Scope(String);

impl Scope {
    fn of(equalities: &[(&'static str, Equality<'_>)]) -> Self {
        let mut scope = Self(String::new());
        for (column, value) in equalities {
            match value {
                Equality::Is(v) => scope.text(column, Some(v)),
                // No text has a length of -1: `(none)` is told from a value.
                Equality::Missing => scope.0.push_str(&format!("{}:{column}-1;", column.len())),
            }
        }
        scope
    }

    fn text(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.0
                .push_str(&format!("{}:{name}{}:{v};", name.len(), v.len()));
        }
    }

    fn time(&mut self, name: &str, value: Option<DateTime<Utc>>) {
        let micros = value.map(|t| t.timestamp_micros().to_string());
        self.text(name, micros.as_deref());
    }

    /// The first 8 bytes of the SHA-256 of the filters, in hex: enough
    /// that a cursor reused with other filters is told (a mistake, not an
    /// attack: a cursor grants nothing its request's filters do not).
    fn digest(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

/// How one page of a list is read: the list, the digest of the request's
/// filters, which the page's cursors carry and a cursor given back must
/// match, and the cursor given.
pub(crate) struct Paging<'a> {
    /// The list read.
    pub list: List,
    scope: String,
    /// The cursor the request continues from, as the client sent it.
    pub cursor: Option<&'a str>,
}

impl<'a> Paging<'a> {
    fn new(list: List, scope: Scope, cursor: Option<&'a str>) -> Self {
        Self {
            list,
            scope: scope.digest(),
            cursor,
        }
    }

    /// The place the request continues from, if it gave a cursor.
    pub fn place(&self) -> Result<Option<Cursor>, StoreError> {
        self.cursor
            .map(|c| Cursor::decode(c, self.list, &self.scope))
            .transpose()
    }

    /// The page of `items` ending at `last` (`given` is [`Self::place`]):
    /// its next cursor, and in the recorded order its resume cursor (the
    /// last row's, else the request's, else the start), all bound to this
    /// request's filters.
    pub fn page<T>(
        &self,
        items: Vec<T>,
        last: Option<Cursor>,
        more: bool,
        given: Option<&Cursor>,
    ) -> Page<T> {
        let encode = |c: &Cursor| c.encode(self.list, &self.scope);
        let resume_cursor = (self.list == List::AlertsRecorded).then(|| {
            let place = last.as_ref().or(given);
            place.map_or_else(
                || {
                    encode(&Cursor {
                        position_us: 0,
                        id: String::new(),
                    })
                },
                encode,
            )
        });
        Page {
            items,
            next_cursor: last.filter(|_| more).as_ref().map(encode),
            resume_cursor,
        }
    }
}

/// The first second every backend can hold a time in: 0001-01-01T00:00:00Z.
const EARLIEST_SECOND: i64 = -62_135_596_800;
/// The last second every backend can hold a time in: 9999-12-31T23:59:59Z.
const LATEST_SECOND: i64 = 253_402_300_799;

/// Whether every backend can hold and compare `t`: the years 0001 to 9999,
/// UTC (the four-digit years of RFC 3339).
///
/// SQLite keeps times as microseconds in an integer and answers for any
/// time chrono holds, but PostgreSQL's timestamps end at 4713 BC and
/// 294276 AD and it fails a query that names a time outside them. Callers
/// refuse a time outside this range before it reaches a query (the API, as
/// a bad parameter; a cursor, as [`StoreError::InvalidCursor`]), so both
/// backends give the same answer to the same request.
pub fn time_in_range(t: &DateTime<Utc>) -> bool {
    (EARLIEST_SECOND..=LATEST_SECOND).contains(&t.timestamp())
}

/// [`time_in_range`] of a time as microseconds since the epoch.
fn micros_in_range(us: i64) -> bool {
    (EARLIEST_SECOND..=LATEST_SECOND).contains(&us.div_euclid(1_000_000))
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The results.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Only in an alert list in [`AlertOrder::Recorded`], and there always:
    /// pass as `cursor` later to get the alerts recorded since this page
    /// (after its last item, or where the request's cursor was when the
    /// page is empty).
    pub resume_cursor: Option<String>,
}

/// Where a page ended: the sort key of its last row, a time in
/// microseconds (an expectation's deadline, an alert's `raised_at`) or an
/// alert's recorded sequence number, then an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub position_us: i64,
    pub id: String,
}

/// Which list a cursor belongs to, and the version of its form: a cursor
/// of one list is refused by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    Expectations,
    Alerts,
    AlertsRecorded,
}

impl List {
    /// The list an alert query reads.
    pub fn of_alerts(order: AlertOrder) -> Self {
        match order {
            AlertOrder::Raised => List::Alerts,
            AlertOrder::Recorded => List::AlertsRecorded,
        }
    }

    /// The tag of the list's cursors, which carry the filters' digest.
    fn tag(self) -> &'static str {
        match self {
            List::Expectations => "e2",
            List::Alerts => "a2",
            List::AlertsRecorded => "r2",
        }
    }

    /// The tag of the list's cursors from before cursors were bound to
    /// their filters (December 2026), still taken, unbound, so that a
    /// poller's kept recorded-order cursor survives the upgrade.
    fn tag_unbound(self) -> &'static str {
        match self {
            List::Expectations => "e1",
            List::Alerts => "a1",
            List::AlertsRecorded => "r1",
        }
    }

    /// The table the list reads.
    pub fn table(self) -> &'static str {
        match self {
            List::Expectations => "expectations",
            List::Alerts | List::AlertsRecorded => "alerts",
        }
    }

    /// The columns the list is ordered by, and a page continued after: the
    /// position (a time, or the recorded sequence) and the id.
    pub fn keys(self) -> (&'static str, &'static str) {
        match self {
            List::Expectations => ("deadline", "id"),
            List::Alerts => ("raised_at", "alert_id"),
            List::AlertsRecorded => ("seq", "alert_id"),
        }
    }

    /// Whether the position is a time (the other kind is a plain number).
    pub fn position_is_time(self) -> bool {
        !matches!(self, List::AlertsRecorded)
    }

    /// What the store was doing, for errors: querying, reading rows.
    pub fn ops(self) -> (&'static str, &'static str) {
        match self {
            List::Expectations => ("query expectations", "read expectations"),
            List::Alerts | List::AlertsRecorded => ("query alerts", "read alerts"),
        }
    }
}

/// Why a recorded-order cursor is refused when the alert it names is not
/// in the store at its place.
const RECORDED_CURSOR_GONE: &str = "the alert this cursor names is not in this store at \
     its place: the store was restored from a backup, replaced, or pruned since the cursor was \
     issued, so alerts after it could be missed; read the list again from the start (no cursor) \
     and drop repeats by alert_id";

impl Cursor {
    /// Whether this recorded-order cursor names an alert (the start's
    /// names none), which the store must then still hold at that place:
    /// after a restore, sequence numbers the poller passed are given again
    /// to new alerts, which a bare position would skip without a word.
    pub fn names_a_recorded_alert(&self, list: List) -> bool {
        list == List::AlertsRecorded && self.position_us > 0
    }

    /// Checks the alert this recorded-order cursor names is still at its
    /// place: `found` is the sequence number the store holds for the
    /// cursor's alert id, if it holds that alert.
    pub fn check_recorded_place(&self, found: Option<i64>) -> Result<(), StoreError> {
        if found == Some(self.position_us) {
            Ok(())
        } else {
            Err(StoreError::InvalidCursor {
                reason: RECORDED_CURSOR_GONE,
            })
        }
    }

    /// The opaque text handed to clients: the list's tag, the digest of
    /// the request's filters, the position and the id.
    fn encode(&self, list: List, scope: &str) -> String {
        hex::encode(format!(
            "{}|{scope}|{}|{}",
            list.tag(),
            self.position_us,
            self.id
        ))
    }

    /// Reads a cursor a client sent back for `list`, with a request whose
    /// filters digest to `scope`.
    fn decode(s: &str, list: List, scope: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(s).map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (not hex)",
        })?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (not UTF-8)",
        })?;
        let wrong_shape = || StoreError::InvalidCursor {
            reason: "not a cursor this server issued (wrong shape)",
        };
        let (tag, rest) = text.split_once('|').ok_or_else(wrong_shape)?;
        let rest = if tag == list.tag() {
            let (bound_to, rest) = rest.split_once('|').ok_or_else(wrong_shape)?;
            if bound_to != scope {
                return Err(StoreError::InvalidCursor {
                    reason: "this cursor continues a request with other filters: send it with \
                         the same filters as the request that returned it (only limit may \
                         change), or read from the start without one",
                });
            }
            rest
        } else if tag == list.tag_unbound() {
            rest
        } else {
            return Err(StoreError::InvalidCursor {
                reason: "cursor of another list, or from another version of tocsin",
            });
        };
        let (position, id) = rest.split_once('|').ok_or_else(wrong_shape)?;
        let position_us = position.parse().map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (bad position)",
        })?;
        // No row holds a time outside the range, so no cursor this server
        // issued does; PostgreSQL would fail the query rather than answer.
        if list.position_is_time() && !micros_in_range(position_us) {
            return Err(StoreError::InvalidCursor {
                reason: "not a cursor this server issued (time outside the years 0001 to 9999)",
            });
        }
        if id.contains('\0') {
            return Err(StoreError::InvalidCursor {
                reason: "not a cursor this server issued (NUL in its id)",
            });
        }
        Ok(Self {
            position_us,
            id: id.to_string(),
        })
    }
}

/// Checks a limit and returns it as a SQL parameter.
pub(crate) fn check_limit(limit: usize) -> Result<i64, StoreError> {
    if limit == 0 {
        return Err(StoreError::InvalidQuery {
            reason: "limit must be at least 1",
        });
    }
    i64::try_from(limit).map_err(|_| StoreError::InvalidQuery {
        reason: "limit too large",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_ids_with_separators() {
        let c = Cursor {
            position_us: -5,
            id: "a|b|c".into(),
        };
        for list in [List::Expectations, List::Alerts, List::AlertsRecorded] {
            assert_eq!(Cursor::decode(&c.encode(list, "s"), list, "s").unwrap(), c);
        }
    }

    #[test]
    fn a_cursor_of_one_list_is_refused_by_the_other() {
        let c = Cursor {
            position_us: 7,
            id: "x".into(),
        };
        for (from, to) in [
            (List::Expectations, List::Alerts),
            (List::Alerts, List::Expectations),
            (List::Alerts, List::AlertsRecorded),
            (List::AlertsRecorded, List::Alerts),
        ] {
            assert!(matches!(
                Cursor::decode(&c.encode(from, "s"), to, "s"),
                Err(StoreError::InvalidCursor { .. })
            ));
        }
    }

    #[test]
    fn foreign_cursors_are_refused_with_a_reason() {
        for bad in [
            "zz",
            &hex::encode("e1|x"),
            &hex::encode("e9|1|a"),
            &hex::encode("e1|one|a"),
            &hex::encode("e1|1|a\0b"),
            &hex::encode("e2|s|1"),
            &hex::encode("e2|s"),
        ] {
            assert!(
                matches!(
                    Cursor::decode(bad, List::Expectations, "s"),
                    Err(StoreError::InvalidCursor { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cursor_times_outside_the_years_every_backend_holds_are_refused() {
        let at = |position_us: i64, list: List| {
            Cursor::decode(
                &Cursor {
                    position_us,
                    id: "x".into(),
                }
                .encode(list, "s"),
                list,
                "s",
            )
        };
        let first = EARLIEST_SECOND * 1_000_000;
        let last = LATEST_SECOND * 1_000_000 + 999_999;
        for list in [List::Expectations, List::Alerts] {
            for ok in [first, 0, last] {
                assert!(at(ok, list).is_ok(), "{list:?} {ok}");
            }
            for bad in [
                first - 1,
                last + 1,
                -250_000_000_000_000_000,
                i64::MIN,
                i64::MAX,
            ] {
                assert!(
                    matches!(at(bad, list), Err(StoreError::InvalidCursor { .. })),
                    "{list:?} {bad}"
                );
            }
        }
        // The recorded order's position is a sequence number, not a time.
        assert!(at(i64::MAX, List::AlertsRecorded).is_ok());
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(time_in_range(&t("0001-01-01T00:00:00Z")));
        assert!(time_in_range(&t("9999-12-31T23:59:59.999999Z")));
        assert!(!time_in_range(&t("0000-12-31T23:59:59.999999Z")));
        let after = DateTime::from_timestamp(LATEST_SECOND + 1, 0).unwrap();
        assert!(!time_in_range(&after));
    }

    #[test]
    fn zero_limit_is_refused() {
        assert!(check_limit(0).is_err());
        assert_eq!(check_limit(5).unwrap(), 5);
    }

    /// A cursor continues the request that returned it: sent with other
    /// filters it is refused, not taken as a place in another list (which
    /// skipped, without a word, what that list held before it); a new
    /// limit is no new request.
    #[test]
    fn a_cursor_is_bound_to_its_requests_filters() {
        let first = ExpectationQuery {
            site: Some("RX1".into()),
            limit: 2,
            ..Default::default()
        };
        let c = Cursor {
            position_us: 9,
            id: "x".into(),
        };
        let paging = first.paging();
        let issued = paging
            .page(vec![()], Some(c.clone()), true, None)
            .next_cursor
            .unwrap();
        let again =
            |q: ExpectationQuery| Cursor::decode(&issued, List::Expectations, &q.paging().scope);
        assert_eq!(again(first.clone()).unwrap(), c);
        let more = ExpectationQuery {
            limit: 50,
            cursor: Some(issued.clone()),
            ..first.clone()
        };
        assert_eq!(again(more).unwrap(), c);
        for other in [
            ExpectationQuery {
                site: Some("RX2".into()),
                ..first.clone()
            },
            ExpectationQuery {
                site: Some(NONE.into()),
                ..first.clone()
            },
            ExpectationQuery {
                site: None,
                ..first.clone()
            },
            ExpectationQuery {
                specialty: Some("RX1".into()),
                site: None,
                ..first.clone()
            },
            ExpectationQuery {
                nhs_number: Some("9434765919".into()),
                ..first.clone()
            },
            ExpectationQuery {
                ended_from: Some(DateTime::UNIX_EPOCH),
                ..first.clone()
            },
        ] {
            let e = again(other.clone()).unwrap_err();
            assert!(e.to_string().contains("other filters"), "{other:?}: {e}");
        }
        // Alerts: the order is its own list; `since` is a filter.
        let alerts = AlertQuery {
            order: AlertOrder::Recorded,
            ..Default::default()
        };
        let resume = alerts
            .paging()
            .page(Vec::<()>::new(), None, false, None)
            .resume_cursor
            .unwrap();
        let scope = |q: &AlertQuery| q.paging().scope;
        assert!(Cursor::decode(&resume, List::AlertsRecorded, &scope(&alerts)).is_ok());
        let since = AlertQuery {
            since: Some(DateTime::UNIX_EPOCH),
            ..alerts.clone()
        };
        assert!(Cursor::decode(&resume, List::AlertsRecorded, &scope(&since)).is_err());
    }

    /// A cursor issued before cursors were bound to their filters (a
    /// poller's kept recorded-order one) is still taken after the upgrade,
    /// whatever the filters; an empty page's resume cursor is then issued
    /// in the bound form.
    #[test]
    fn a_cursor_from_before_binding_is_still_taken() {
        let old = hex::encode("r1|42|alert-x");
        let q = AlertQuery {
            order: AlertOrder::Recorded,
            kind: Some(AlertKind::Overdue),
            cursor: Some(old.clone()),
            ..Default::default()
        };
        let paging = q.paging();
        let place = paging.place().unwrap().unwrap();
        assert_eq!((place.position_us, place.id.as_str()), (42, "alert-x"));
        let resume = paging
            .page(Vec::<()>::new(), None, false, Some(&place))
            .resume_cursor
            .unwrap();
        assert_ne!(resume, old);
        assert_eq!(
            Cursor::decode(&resume, List::AlertsRecorded, &paging.scope).unwrap(),
            place
        );
    }
}
