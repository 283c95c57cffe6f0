//! The compliance report: a pure summary of expectations, used by
//! `tocsin replay --report` and the HTTP API.
//!
//! Per group (any of month of encounter end, document kind, encounter kind,
//! site, specialty, GP practice): `expected` (every expectation not cancelled), `on_time`, `late`,
//! `missing` (overdue: deadline passed, no document), `pending` (open, not
//! yet due), `cancelled`, `pct_on_time` = on_time / (on_time + late +
//! missing), and the median and 90th-centile delay (nearest rank, in seconds
//! from the encounter's end to the document's first issue) over settled ones,
//! and `delivery_failed`: of those settled (on time or late), the ones whose
//! transmission the recipient refused or that failed, and that no later
//! acceptance has cleared (sent, but not received).

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use tocsin_event::{DocumentKind, EncounterKind};

use crate::model::{DeliveryStatus, Expectation, ExpectationStatus};

/// The encounter ends a report covers when not given a range: 1900 to the
/// year 10,000, every date a message could carry and every store can hold
/// (PostgreSQL's timestamps stop far short of chrono's extremes). `tocsin
/// replay` and the API's report use the same, so that a typing slip in a
/// year (1924 for 2024) counts alike in both.
pub fn whole_range() -> std::ops::Range<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone as _;
    let new_year = |y| {
        chrono::Utc
            .with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .earliest()
            .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
    };
    new_year(1900)..new_year(10_000)
}

mod latest;
pub use latest::LatestFacts;

/// A dimension to group the report by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Calendar month (`YYYY-MM`) of the encounter's end.
    Month,
    /// Document kind expected.
    DocumentKind,
    /// Encounter kind.
    EncounterKind,
    /// Site of the encounter.
    Site,
    /// Specialty (treatment function code) of the encounter.
    Specialty,
    /// ODS code of the patient's GP practice: which practices are let down.
    GpPractice,
}

impl GroupBy {
    /// Every dimension, in the order of a report's columns.
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Month,
        GroupBy::DocumentKind,
        GroupBy::EncounterKind,
        GroupBy::Site,
        GroupBy::Specialty,
        GroupBy::GpPractice,
    ];

    /// The report's usual dimensions (issue 4's: per month, document kind,
    /// encounter kind and site): `tocsin replay --report`'s, and the API's
    /// when it is given no `group_by`.
    pub const STANDARD: [GroupBy; 4] = [
        GroupBy::Month,
        GroupBy::DocumentKind,
        GroupBy::EncounterKind,
        GroupBy::Site,
    ];

    /// A comma-separated list of column names (`site,month`), returned in
    /// the report's column order whatever order it was written in, each
    /// once: one reading for `tocsin replay --group-by` and the API's
    /// `group_by`, so that both accept and refuse the same lists.
    pub fn parse_list(list: &str) -> Result<Vec<GroupBy>, UnknownGroupBy> {
        let chosen = list
            .split(',')
            .map(|part| part.trim().parse())
            .collect::<Result<Vec<GroupBy>, _>>()?;
        Ok(GroupBy::ALL
            .into_iter()
            .filter(|g| chosen.contains(g))
            .collect())
    }

    /// The column name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::DocumentKind => "document_kind",
            Self::EncounterKind => "encounter_kind",
            Self::Site => "site",
            Self::Specialty => "specialty",
            Self::GpPractice => "gp_practice",
        }
    }
}

/// An unknown grouping name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown report grouping `{0}` (use month, document_kind, encounter_kind, site, specialty \
     or gp_practice)"
)]
pub struct UnknownGroupBy(pub String);

impl FromStr for GroupBy {
    type Err = UnknownGroupBy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| UnknownGroupBy(s.to_string()))
    }
}

/// One row of the report. Dimension fields not grouped by are `None` (and
/// omitted from JSON); a grouped site, specialty or GP practice that is
/// unknown is [`UNKNOWN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceRow {
    /// `YYYY-MM` of the encounter's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    /// Document kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_kind: Option<DocumentKind>,
    /// Encounter kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter_kind: Option<EncounterKind>,
    /// Site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Specialty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    /// GP practice (ODS code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gp_practice: Option<String>,
    /// Expectations not cancelled.
    pub expected: u64,
    /// Settled by the deadline.
    pub on_time: u64,
    /// Settled after the deadline.
    pub late: u64,
    /// Deadline passed, still missing.
    pub missing: u64,
    /// Open, not yet due.
    pub pending: u64,
    /// Withdrawn.
    pub cancelled: u64,
    /// Percentage on time of those decided (on time, late or missing).
    pub pct_on_time: Option<f64>,
    /// Median delay in seconds (settled ones).
    pub median_delay_seconds: Option<i64>,
    /// 90th-centile delay in seconds (settled ones).
    pub p90_delay_seconds: Option<i64>,
    /// Of those settled (on time or late), how many the recipient refused
    /// or failed to receive, with no later acceptance: sent, and counted
    /// on time or late by when they were sent, but not received.
    #[serde(default)]
    pub delivery_failed: u64,
}

type Key = (
    Option<String>,
    Option<DocumentKind>,
    Option<EncounterKind>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[derive(Debug, Default)]
struct Acc {
    on_time: u64,
    late: u64,
    missing: u64,
    pending: u64,
    cancelled: u64,
    delivery_failed: u64,
    delays: Vec<i64>,
}

/// The report with months in UTC.
pub fn report<'a>(
    expectations: impl IntoIterator<Item = &'a Expectation>,
    group_by: &[GroupBy],
) -> Vec<ComplianceRow> {
    report_in_zone(expectations, group_by, Tz::UTC)
}

/// The report with months taken in a zone (the policy's, so that a
/// discharge at 00:30 BST on 1 April counts in April).
pub fn report_in_zone<'a>(
    expectations: impl IntoIterator<Item = &'a Expectation>,
    group_by: &[GroupBy],
    zone: Tz,
) -> Vec<ComplianceRow> {
    let mut builder = ReportBuilder::new(group_by, zone);
    for e in expectations {
        builder.add(e);
    }
    builder.finish()
}

/// What the report reads of an expectation: its status, kinds, encounter
/// end, site and specialty, GP practice, and the settling delay.
///
/// It exists so that a report over a store need not rebuild whole
/// expectations: deserialised from a stored body, it skips the patient,
/// rule, document and alert fields unread, parses one time instead of
/// five, and borrows the site, where a whole [`Expectation`] was about
/// half of a replay's report phase (docs/performance.md, "Eleventh
/// session"). Field names follow [`Expectation`]'s JSON, so either reads
/// the same body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReportFacts<'a> {
    /// Where the expectation stands.
    pub status: ExpectationStatus,
    /// The document kind expected.
    pub document_kind: DocumentKind,
    /// The encounter's kind, end, site and specialty.
    #[serde(borrow)]
    pub encounter: EncounterFacts<'a>,
    /// The patient's GP practice, when known.
    #[serde(borrow, default)]
    pub gp_practice: Option<std::borrow::Cow<'a, str>>,
    /// The settling document's delay, once there is one.
    pub settlement: Option<SettlementFacts>,
    /// Delivery state of the settling transmission, once there is one.
    #[serde(default)]
    pub delivery: Option<DeliveryStatus>,
}

/// The encounter facts a report groups by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EncounterFacts<'a> {
    /// Encounter kind.
    pub kind: EncounterKind,
    /// When the encounter ended (its month groups the report).
    pub ended_at: chrono::DateTime<chrono::Utc>,
    /// Site, when known (borrowed from the body unless it holds escapes).
    #[serde(borrow)]
    pub site: Option<std::borrow::Cow<'a, str>>,
    /// Specialty, when known.
    #[serde(borrow, default)]
    pub specialty: Option<std::borrow::Cow<'a, str>>,
}

/// The settlement fact a report measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SettlementFacts {
    /// Seconds from the encounter's end to the document's first issue.
    pub delay_seconds: i64,
}

impl<'a> ReportFacts<'a> {
    /// The facts of an expectation held as a value.
    pub fn of(e: &'a Expectation) -> Self {
        Self {
            status: e.status,
            document_kind: e.document_kind,
            encounter: EncounterFacts {
                kind: e.encounter.kind,
                ended_at: e.encounter.ended_at,
                site: e.encounter.site.as_deref().map(std::borrow::Cow::Borrowed),
                specialty: e
                    .encounter
                    .specialty
                    .as_deref()
                    .map(std::borrow::Cow::Borrowed),
            },
            gp_practice: e.gp_practice.as_deref().map(std::borrow::Cow::Borrowed),
            settlement: e.settlement.as_ref().map(|s| SettlementFacts {
                delay_seconds: s.delay_seconds,
            }),
            delivery: e.delivery,
        }
    }
}

/// The report built one expectation at a time, so that a caller streaming
/// expectations from the store (`Store::visit_report_facts`) never holds
/// them all: a million expectations as values take about a gigabyte, the
/// builder a few counters a group and one delay per settled expectation.
/// [`report_in_zone`] is this over an iterator; the rows are the same.
#[derive(Debug)]
pub struct ReportBuilder {
    month: bool,
    document_kind: bool,
    encounter_kind: bool,
    site: bool,
    specialty: bool,
    gp_practice: bool,
    zone: Tz,
    groups: BTreeMap<Key, Acc>,
}

impl ReportBuilder {
    /// An empty report grouped by `group_by`, months taken in `zone`.
    pub fn new(group_by: &[GroupBy], zone: Tz) -> Self {
        Self {
            month: group_by.contains(&GroupBy::Month),
            document_kind: group_by.contains(&GroupBy::DocumentKind),
            encounter_kind: group_by.contains(&GroupBy::EncounterKind),
            site: group_by.contains(&GroupBy::Site),
            specialty: group_by.contains(&GroupBy::Specialty),
            gp_practice: group_by.contains(&GroupBy::GpPractice),
            zone,
            groups: BTreeMap::new(),
        }
    }

    /// Counts one expectation.
    pub fn add(&mut self, e: &Expectation) {
        self.add_facts(&ReportFacts::of(e));
    }

    /// Counts one expectation from the facts the report reads.
    pub fn add_facts(&mut self, e: &ReportFacts<'_>) {
        let key: Key = (
            self.month.then(|| {
                e.encounter
                    .ended_at
                    .with_timezone(&self.zone)
                    .format("%Y-%m")
                    .to_string()
            }),
            self.document_kind.then_some(e.document_kind),
            self.encounter_kind.then_some(e.encounter.kind),
            self.site.then(|| known(e.encounter.site.as_deref())),
            self.specialty
                .then(|| known(e.encounter.specialty.as_deref())),
            self.gp_practice.then(|| known(e.gp_practice.as_deref())),
        );
        let acc = self.groups.entry(key).or_default();
        match e.status {
            ExpectationStatus::OnTime => acc.on_time += 1,
            ExpectationStatus::Late => acc.late += 1,
            ExpectationStatus::Overdue => acc.missing += 1,
            ExpectationStatus::Open => acc.pending += 1,
            ExpectationStatus::Cancelled => acc.cancelled += 1,
        }
        if let (ExpectationStatus::OnTime | ExpectationStatus::Late, Some(s)) =
            (e.status, &e.settlement)
        {
            // A document issued before the encounter's recorded end (a
            // summary written before PV1-45 was stamped) came with no
            // delay: counted as 0, as the delay histogram counts it, not as
            // a negative that pulls the median below what anyone waited.
            acc.delays.push(s.delay_seconds.max(0));
            if e.delivery == Some(DeliveryStatus::Failed) {
                acc.delivery_failed += 1;
            }
        }
    }

    /// The rows, in group order.
    pub fn finish(self) -> Vec<ComplianceRow> {
        self.groups
            .into_iter()
            .map(
                |((month, document_kind, encounter_kind, site, specialty, gp_practice), mut a)| {
                    a.delays.sort_unstable();
                    let decided = a.on_time + a.late + a.missing;
                    ComplianceRow {
                        month,
                        document_kind,
                        encounter_kind,
                        site,
                        specialty,
                        gp_practice,
                        expected: decided + a.pending,
                        on_time: a.on_time,
                        late: a.late,
                        missing: a.missing,
                        pending: a.pending,
                        cancelled: a.cancelled,
                        pct_on_time: (decided > 0)
                            .then(|| 100.0 * a.on_time as f64 / decided as f64),
                        median_delay_seconds: nearest_rank(&a.delays, 50),
                        p90_delay_seconds: nearest_rank(&a.delays, 90),
                        delivery_failed: a.delivery_failed,
                    }
                },
            )
            .collect()
    }
}

/// What a site, specialty or GP practice that is not known is called in
/// the report, the API's filters and Alertmanager's labels. A value sent
/// with this text counts as none ([`Tracker`](crate::Tracker) drops it
/// when it opens an expectation): kept, it was a second group under the
/// same name, and one group's resolution withdrew the other's alert.
pub const UNKNOWN: &str = "(none)";

/// A grouped text dimension's value: [`UNKNOWN`] when unknown.
fn known(v: Option<&str>) -> String {
    v.unwrap_or(UNKNOWN).to_string()
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// How to render the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    /// Aligned text columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header.
    Csv,
    /// A JSON array of row objects.
    Json,
}

impl FromStr for ReportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown report format `{s}` (use table, csv or json)"
            )),
        }
    }
}

/// Renders rows in a format; the columns follow `group_by`.
pub fn render(rows: &[ComplianceRow], group_by: &[GroupBy], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => to_json(rows),
        ReportFormat::Csv => to_csv(rows, group_by),
        ReportFormat::Table => to_table(rows, group_by),
    }
}

/// A JSON array of the rows.
pub fn to_json(rows: &[ComplianceRow]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into()) + "\n"
}

const MEASURES: [&str; 10] = [
    "expected",
    "on_time",
    "late",
    "missing",
    "pending",
    "cancelled",
    "pct_on_time",
    "median_delay_seconds",
    "p90_delay_seconds",
    "delivery_failed",
];

fn cells(r: &ComplianceRow, group_by: &[GroupBy]) -> Vec<String> {
    let mut out: Vec<String> = GroupBy::ALL
        .into_iter()
        .filter(|g| group_by.contains(g))
        .map(|g| match g {
            GroupBy::Month => r.month.clone().unwrap_or_default(),
            GroupBy::DocumentKind => r
                .document_kind
                .map(|k| k.as_str().to_string())
                .unwrap_or_default(),
            GroupBy::EncounterKind => r
                .encounter_kind
                .map(|k| k.as_str().to_string())
                .unwrap_or_default(),
            GroupBy::Site => r.site.clone().unwrap_or_default(),
            GroupBy::Specialty => r.specialty.clone().unwrap_or_default(),
            GroupBy::GpPractice => r.gp_practice.clone().unwrap_or_default(),
        })
        .collect();
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    out.extend([
        r.expected.to_string(),
        r.on_time.to_string(),
        r.late.to_string(),
        r.missing.to_string(),
        r.pending.to_string(),
        r.cancelled.to_string(),
        r.pct_on_time.map(pct_text).unwrap_or_default(),
        opt(r.median_delay_seconds),
        opt(r.p90_delay_seconds),
        r.delivery_failed.to_string(),
    ]);
    out
}

/// A percentage to one decimal, rounded down: rounded to the nearest,
/// 1,999 on time of 2,000 (99.95 %) would read "100.0", which says every
/// one was on time; rounded down it reads "99.9".
fn pct_text(p: f64) -> String {
    format!("{:.1}", (p * 10.0).floor() / 10.0)
}

fn header(group_by: &[GroupBy]) -> Vec<String> {
    GroupBy::ALL
        .into_iter()
        .filter(|g| group_by.contains(g))
        .map(|g| g.as_str().to_string())
        .chain(MEASURES.iter().map(|m| m.to_string()))
        .collect()
}

/// CSV with a header row; fields quoted when they need it, and the
/// grouping columns (text from messages) kept from running as formulas
/// ([`csv_text`]).
pub fn to_csv(rows: &[ComplianceRow], group_by: &[GroupBy]) -> String {
    let texts = header(group_by).len() - MEASURES.len();
    let mut out = String::new();
    for line in std::iter::once(header(group_by)).chain(rows.iter().map(|r| cells(r, group_by))) {
        let fields: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i < texts {
                    csv_text(f)
                } else {
                    csv_quoted(f)
                }
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// One CSV cell of text that came from messages (a site, a specialty, a GP
/// practice, a file name). Contract teams open these reports in a
/// spreadsheet, which runs a cell beginning `=`, `+`, `-`, `@`, a tab or a
/// carriage return as a formula: a PV1-39 of `=HYPERLINK(...)` would run
/// on their machine. Such a cell is prefixed with `'` (OWASP's advice for
/// CSV injection), then quoted when it needs it.
pub fn csv_text(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_quoted(&format!("'{text}"))
    } else {
        csv_quoted(text)
    }
}

/// A CSV cell quoted when it holds a separator, a quote or a line break.
fn csv_quoted(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// Text from messages made safe for a terminal: control characters (an
/// escape sequence an HL7 `\X1B\` decodes to, a newline, a tab) are
/// written as Rust escapes (`\u{1b}`, `\n`, `\t`), so that a sender's
/// text can neither drive the operator's terminal nor forge rows or
/// columns. Other text is unchanged.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Aligned columns for a terminal (cells through [`printable`]).
pub fn to_table(rows: &[ComplianceRow], group_by: &[GroupBy]) -> String {
    let lines: Vec<Vec<String>> = std::iter::once(header(group_by))
        .chain(rows.iter().map(|r| {
            cells(r, group_by)
                .into_iter()
                .map(|c| printable(&c).into_owned())
                .collect()
        }))
        .collect();
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, (cell, w)) in l.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let _ = write!(line, "{cell:<w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ComplianceRow, GroupBy, nearest_rank, to_csv};

    #[test]
    fn text_from_messages_never_runs_as_a_formula_and_numbers_stay_numbers() {
        let row = ComplianceRow {
            month: Some("2025-01".into()),
            document_kind: None,
            encounter_kind: None,
            site: Some("=HYPERLINK(\"http://x\",\"y\")".into()),
            specialty: Some("-2+3".into()),
            gp_practice: Some("@SUM(A1)".into()),
            expected: 2,
            on_time: 1,
            late: 1,
            missing: 0,
            pending: 0,
            cancelled: 0,
            pct_on_time: Some(50.0),
            median_delay_seconds: Some(-5),
            p90_delay_seconds: Some(-5),
            delivery_failed: 1,
        };
        let group_by = [
            GroupBy::Month,
            GroupBy::Site,
            GroupBy::Specialty,
            GroupBy::GpPractice,
        ];
        let csv = to_csv(&[row], &group_by);
        let line = csv.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "2025-01,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'-2+3,'@SUM(A1),2,1,1,0,0,0,50.0,-5,-5,1"
        );
    }

    #[test]
    fn text_from_messages_cannot_drive_a_terminal_or_forge_table_rows() {
        let row = ComplianceRow {
            month: Some("2025-01".into()),
            document_kind: None,
            encounter_kind: None,
            site: Some("\u{1b}[31mSITE\nINFO fake".into()),
            specialty: Some("\u{1b}[2J\r\tSPEC".into()),
            gp_practice: Some("B86001".into()),
            expected: 1,
            on_time: 1,
            late: 0,
            missing: 0,
            pending: 0,
            cancelled: 0,
            pct_on_time: Some(100.0),
            median_delay_seconds: Some(5),
            p90_delay_seconds: Some(5),
            delivery_failed: 0,
        };
        let group_by = [
            GroupBy::Month,
            GroupBy::Site,
            GroupBy::Specialty,
            GroupBy::GpPractice,
        ];
        let table = super::to_table(&[row], &group_by);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(table.contains(r"\u{1b}[31mSITE\nINFO fake"), "{table}");
        assert!(table.contains(r"\u{1b}[2J\r\tSPEC"), "{table}");
        assert!(table.contains("B86001"));
    }

    #[test]
    fn a_group_by_list_comes_back_in_column_order_each_once() {
        assert_eq!(
            GroupBy::parse_list("gp_practice, month,site,month"),
            Ok(vec![GroupBy::Month, GroupBy::Site, GroupBy::GpPractice])
        );
        assert_eq!(
            GroupBy::parse_list("month,document_kind,encounter_kind,site").as_deref(),
            Ok(&GroupBy::STANDARD[..])
        );
        let e = GroupBy::parse_list("month,ward").unwrap_err();
        assert_eq!(e.0, "ward");
        assert!(e.to_string().contains("gp_practice"), "{e}");
        assert_eq!(GroupBy::parse_list("month,").unwrap_err().0, "");
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(5));
        assert_eq!(nearest_rank(&v, 90), Some(9));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
    }
}
