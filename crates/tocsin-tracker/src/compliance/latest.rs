//! The report's facts of expectations handed over more than once, each kept
//! by its latest state.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tocsin_event::{DocumentKind, EncounterKind};

use super::{EncounterFacts, GroupBy, ReportFacts, SettlementFacts};
use crate::compact::{FxBuild, Sym, Symbols, pack_hex};
use crate::model::{DeliveryStatus, Expectation, ExpectationId, ExpectationStatus};

/// What a report reads of each expectation, held in memory by expectation
/// id; a later state of the same expectation replaces the earlier.
///
/// It exists for `tocsin replay` without a store: the tracker hands over a
/// settled expectation when it settles and again whenever it changes after
/// (acknowledged, delivery failed, re-keyed by a merge), and the report
/// must count each expectation once, by its last state. A throwaway SQLite
/// file did that by upserting every change and reading all back, at a
/// tenth to a sixth of the replay's CPU and a report phase on one core
/// (docs/performance.md, "Thirteenth session"); here each costs one hash
/// map entry of some 48 bytes and no serialising.
///
/// Specialty and GP practice are kept only for a report that groups by
/// them, so that the usual report does not pay for their interning.
#[derive(Default)]
pub struct LatestFacts {
    /// By the tracker's own ids (32 lowercase hex digits), packed.
    packed: HashMap<[u8; 16], Fact, FxBuild>,
    /// By any other id (never made by this tracker; kept for correctness).
    other: HashMap<Box<str>, Fact>,
    /// Sites, specialties and practices, interned (a trust has a few
    /// hundred of each at most).
    names: Symbols,
    specialty: bool,
    gp_practice: bool,
}

/// One expectation's facts, in 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Fact {
    /// The encounter's end, in microseconds since 1970 (as the stores keep
    /// it: month boundaries fall on whole seconds, so the report's months
    /// are the same).
    ended_at_micros: i64,
    /// The settling document's delay, when `settled`.
    delay_seconds: i64,
    site: Option<Sym>,
    specialty: Option<Sym>,
    gp_practice: Option<Sym>,
    status: ExpectationStatus,
    document_kind: DocumentKind,
    encounter_kind: EncounterKind,
    settled: Settled,
}

// Kept at 32 bytes: a year of a large trust's traffic keeps 1.4 million.
const _: () = assert!(std::mem::size_of::<Fact>() == 32);

/// Whether a document settled the expectation and, if so, whether its
/// delivery failed: one byte for what two flags would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// No document yet.
    No,
    /// Settled; delivered, waiting for an acknowledgement, or never told.
    Yes,
    /// Settled, and the recipient refused it or it failed.
    DeliveryFailed,
}

impl LatestFacts {
    /// No facts yet, to be reported by `group_by`: what no dimension there
    /// reads is not kept.
    pub fn new(group_by: &[GroupBy]) -> Self {
        Self {
            specialty: group_by.contains(&GroupBy::Specialty),
            gp_practice: group_by.contains(&GroupBy::GpPractice),
            ..Self::default()
        }
    }

    /// Keeps `e`'s facts as its latest, replacing any kept before.
    pub fn keep(&mut self, e: &Expectation) {
        let fact = Fact {
            ended_at_micros: e.encounter.ended_at.timestamp_micros(),
            delay_seconds: e.settlement.as_ref().map_or(0, |s| s.delay_seconds),
            site: e.encounter.site.as_deref().map(|s| self.names.intern(s)),
            specialty: self
                .specialty
                .then(|| {
                    e.encounter
                        .specialty
                        .as_deref()
                        .map(|s| self.names.intern(s))
                })
                .flatten(),
            gp_practice: self
                .gp_practice
                .then(|| e.gp_practice.as_deref().map(|s| self.names.intern(s)))
                .flatten(),
            status: e.status,
            document_kind: e.document_kind,
            encounter_kind: e.encounter.kind,
            settled: match (&e.settlement, e.delivery) {
                (None, _) => Settled::No,
                (Some(_), Some(DeliveryStatus::Failed)) => Settled::DeliveryFailed,
                (Some(_), _) => Settled::Yes,
            },
        };
        match pack_hex(&e.id.0) {
            Some(id) => {
                self.packed.insert(id, fact);
            }
            None => {
                self.other.insert(e.id.0.as_str().into(), fact);
            }
        }
    }

    /// Forgets an expectation's facts (its last state is counted elsewhere);
    /// whether any were kept.
    pub fn forget(&mut self, id: &ExpectationId) -> bool {
        match pack_hex(&id.0) {
            Some(packed) => self.packed.remove(&packed).is_some(),
            None => self.other.remove(id.0.as_str()).is_some(),
        }
    }

    /// How many expectations' facts are kept.
    pub fn len(&self) -> usize {
        self.packed.len() + self.other.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each kept expectation's facts, in no set order (a
    /// report's figures do not depend on it).
    pub fn visit(&self, f: &mut dyn FnMut(&ReportFacts<'_>)) {
        for fact in self.packed.values().chain(self.other.values()) {
            f(&self.facts(fact));
        }
    }

    fn facts(&self, fact: &Fact) -> ReportFacts<'_> {
        ReportFacts {
            status: fact.status,
            document_kind: fact.document_kind,
            encounter: EncounterFacts {
                kind: fact.encounter_kind,
                // Every value `keep` took from a DateTime converts back.
                ended_at: DateTime::<Utc>::from_timestamp_micros(fact.ended_at_micros)
                    .unwrap_or_default(),
                site: fact.site.map(|s| Cow::Borrowed(self.names.name(s))),
                specialty: fact.specialty.map(|s| Cow::Borrowed(self.names.name(s))),
            },
            gp_practice: fact.gp_practice.map(|s| Cow::Borrowed(self.names.name(s))),
            settlement: (fact.settled != Settled::No).then_some(SettlementFacts {
                delay_seconds: fact.delay_seconds,
            }),
            // Only a failure is counted; which other state it was in the
            // report does not read.
            delivery: (fact.settled == Settled::DeliveryFailed).then_some(DeliveryStatus::Failed),
        }
    }
}

impl std::fmt::Debug for LatestFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestFacts")
            .field("expectations", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::{GroupBy, ReportBuilder, report_in_zone};
    use crate::model::{EncounterSummary, MatchMethod, PatientKeys, RuleRef, Settlement};
    use chrono::TimeZone;
    use chrono_tz::Tz;
    use tocsin_event::EventId;

    /// An expectation of a discharge ending at `ended` (hours after
    /// midnight on 31 March 2025, UTC), settled `delay` seconds after.
    fn expectation(
        id: &str,
        status: ExpectationStatus,
        ended_hours: i64,
        site: Option<&str>,
        delay: Option<i64>,
    ) -> Expectation {
        let ended_at = Utc.with_ymd_and_hms(2025, 3, 31, 0, 0, 0).unwrap()
            + chrono::Duration::hours(ended_hours)
            + chrono::Duration::nanoseconds(123_456_789);
        Expectation {
            id: ExpectationId(id.to_string()),
            status,
            document_kind: DocumentKind::DischargeSummary,
            encounter: EncounterSummary {
                id: Some("V1".into()),
                reference: None,
                kind: EncounterKind::Inpatient,
                ended_at,
                site: site.map(str::to_string),
                specialty: None,
            },
            patient: PatientKeys::default(),
            gp_practice: None,
            rule: RuleRef {
                id: "r".into(),
                clause: "c".into(),
            },
            deadline: ended_at + chrono::Duration::hours(24),
            due_soon_at: None,
            created_by: EventId::from_string("e".into()),
            settlement: delay.map(|d| Settlement {
                document_id: "D".into(),
                issued_at: ended_at + chrono::Duration::seconds(d),
                delay_seconds: d,
                matched_by: MatchMethod::EncounterId,
                message_id: "M".into(),
                event_id: EventId::from_string("e2".into()),
            }),
            delivery: None,
            alerts_raised: Vec::new(),
        }
    }

    fn hex(n: u8) -> String {
        format!("{n:032x}")
    }

    fn rows_of(latest: &LatestFacts) -> Vec<crate::compliance::ComplianceRow> {
        rows_by(latest, &GroupBy::STANDARD)
    }

    fn rows_by(
        latest: &LatestFacts,
        group_by: &[GroupBy],
    ) -> Vec<crate::compliance::ComplianceRow> {
        let mut b = ReportBuilder::new(group_by, Tz::Europe__London);
        latest.visit(&mut |f| b.add_facts(f));
        b.finish()
    }

    #[test]
    fn each_expectation_counts_once_by_its_latest_state() {
        use ExpectationStatus::*;
        let mut latest = LatestFacts::new(&GroupBy::STANDARD);
        // Settled, then handed over again (acknowledged): counted once.
        latest.keep(&expectation(&hex(1), OnTime, 1, Some("RX1"), Some(3_600)));
        latest.keep(&expectation(&hex(1), OnTime, 1, Some("RX1"), Some(3_600)));
        // Late, then cancelled: counted as cancelled, its delay dropped.
        latest.keep(&expectation(&hex(2), Late, 2, Some("RX1"), Some(90_000)));
        latest.keep(&expectation(
            &hex(2),
            Cancelled,
            2,
            Some("RX1"),
            Some(90_000),
        ));
        // An id this tracker would not make, kept all the same.
        latest.keep(&expectation("visit-3", Late, 3, None, Some(100_000)));
        latest.keep(&expectation("visit-3", Late, 3, None, Some(86_401)));
        // Ends at 23:00 UTC on 31 March = 00:00 BST on 1 April: April.
        latest.keep(&expectation(&hex(4), OnTime, 23, Some("RX2"), Some(60)));
        // Kept, then forgotten (its last state is counted elsewhere).
        latest.keep(&expectation(&hex(5), OnTime, 5, Some("RX1"), Some(1)));
        assert!(latest.forget(&ExpectationId(hex(5))));
        assert!(!latest.forget(&ExpectationId(hex(5))));
        assert!(!latest.forget(&ExpectationId("visit-6".into())));
        assert_eq!(latest.len(), 4);

        let expected = [
            expectation(&hex(1), OnTime, 1, Some("RX1"), Some(3_600)),
            expectation(&hex(2), Cancelled, 2, Some("RX1"), Some(90_000)),
            expectation("visit-3", Late, 3, None, Some(86_401)),
            expectation(&hex(4), OnTime, 23, Some("RX2"), Some(60)),
        ];
        let rows = rows_of(&latest);
        assert_eq!(
            rows,
            report_in_zone(&expected, &GroupBy::STANDARD, Tz::Europe__London)
        );
        let months: Vec<_> = rows.iter().filter_map(|r| r.month.as_deref()).collect();
        assert_eq!(months, ["2025-03", "2025-03", "2025-04"]);
        let none_site = rows.iter().find(|r| r.site.as_deref() == Some("(none)"));
        assert_eq!(
            none_site.map(|r| r.median_delay_seconds),
            Some(Some(86_401))
        );
    }

    #[test]
    fn a_failed_delivery_counts_by_the_latest_state() {
        use ExpectationStatus::*;
        let sent = |id: u8, status, delay, delivery| {
            let mut e = expectation(&hex(id), status, 1, Some("RX1"), Some(delay));
            e.delivery = Some(delivery);
            e
        };
        let last = [
            sent(1, OnTime, 600, DeliveryStatus::Failed),
            // Refused, then accepted when resent: delivered.
            sent(2, OnTime, 600, DeliveryStatus::Acknowledged),
            sent(3, Late, 90_000, DeliveryStatus::Failed),
            sent(4, OnTime, 600, DeliveryStatus::Pending),
            // Withdrawn after its refusal: not counted at all.
            sent(5, Cancelled, 600, DeliveryStatus::Failed),
        ];
        let mut latest = LatestFacts::new(&GroupBy::STANDARD);
        latest.keep(&sent(2, OnTime, 600, DeliveryStatus::Failed));
        latest.keep(&sent(5, OnTime, 600, DeliveryStatus::Failed));
        for e in &last {
            latest.keep(e);
        }
        let rows = rows_of(&latest);
        assert_eq!(
            rows,
            report_in_zone(&last, &GroupBy::STANDARD, Tz::Europe__London)
        );
        let r = &rows[0];
        assert_eq!(
            (r.on_time, r.late, r.cancelled, r.delivery_failed),
            (3, 1, 1, 2)
        );
    }

    #[test]
    fn ends_far_from_1970_keep_their_month() {
        let mut latest = LatestFacts::new(&GroupBy::STANDARD);
        let mut old = expectation(&hex(7), ExpectationStatus::Overdue, 0, None, None);
        old.encounter.ended_at = Utc.with_ymd_and_hms(1965, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(999_999_999);
        latest.keep(&old);
        let rows = rows_of(&latest);
        assert_eq!(rows[0].month.as_deref(), Some("1965-12"));
        assert_eq!(rows[0].missing, 1);
        assert!(LatestFacts::new(&GroupBy::STANDARD).is_empty());
    }

    /// An expectation at `specialty` for a patient of `practice`.
    fn at(
        id: u8,
        status: ExpectationStatus,
        specialty: &str,
        practice: Option<&str>,
    ) -> Expectation {
        let mut e = expectation(&hex(id), status, 1, Some("RX1"), Some(600));
        e.encounter.specialty = Some(specialty.into());
        e.gp_practice = practice.map(str::to_string);
        e
    }

    #[test]
    fn specialty_and_practice_are_kept_for_a_report_that_groups_by_them() {
        use ExpectationStatus::*;
        let kept = [
            at(1, OnTime, "300", Some("B86001")),
            at(2, Late, "300", Some("B86001")),
            at(3, OnTime, "430", Some("B86002")),
            at(4, OnTime, "430", None),
        ];
        let mut all = LatestFacts::new(&GroupBy::ALL);
        let mut usual = LatestFacts::new(&GroupBy::STANDARD);
        for e in &kept {
            all.keep(e);
            usual.keep(e);
        }
        let expected = report_in_zone(&kept, &GroupBy::ALL, Tz::Europe__London);
        assert_eq!(rows_by(&all, &GroupBy::ALL), expected);
        let practices: Vec<_> = expected
            .iter()
            .map(|r| (r.specialty.as_deref(), r.gp_practice.as_deref(), r.expected))
            .collect();
        assert_eq!(
            practices,
            [
                (Some("300"), Some("B86001"), 2),
                (Some("430"), Some("(none)"), 1),
                (Some("430"), Some("B86002"), 1),
            ]
        );
        // Not asked for, not kept: the usual report's facts carry neither.
        usual.visit(&mut |f| {
            assert_eq!(
                (f.encounter.specialty.as_deref(), f.gp_practice.as_deref()),
                (None, None)
            );
        });
        assert_eq!(rows_of(&usual), rows_of(&all));
    }
}
