//! Happenings of the tracker as operations teams see them: documents
//! settling expectations, and the open and overdue counts.

use tocsin_tracker::{AlertKind, DeliveryStatus, Expectation, ExpectationStatus, Tracker};

use super::Metrics;
use super::labels;

/// A document settled an expectation (on time or late).
///
/// Derived from the tracker's effects: an `ExpectationChanged` whose status
/// is `on_time` or `late` is the settlement only when it carries the fresh
/// transmission's state (delivery pending, no `unconfirmed` or
/// `delivery_failed` alert yet); later changes to a settled expectation (an
/// acknowledgement, a failure, the unconfirmed check, a refused document
/// sent again, pending once more) carry a different state and are not
/// counted again.
pub struct DocumentSettled<'a> {
    /// The expectation as settled.
    pub expectation: &'a Expectation,
}

impl DocumentSettled<'_> {
    /// Recognises the settlement among a tracker's effects.
    pub fn from_change(expectation: &Expectation) -> Option<DocumentSettled<'_>> {
        let settled = matches!(
            expectation.status,
            ExpectationStatus::OnTime | ExpectationStatus::Late
        );
        let fresh = expectation.delivery == Some(DeliveryStatus::Pending)
            && !expectation
                .alerts_raised
                .iter()
                .any(|k| matches!(k, AlertKind::Unconfirmed | AlertKind::DeliveryFailed));
        (settled && fresh && expectation.settlement.is_some())
            .then_some(DocumentSettled { expectation })
    }

    /// Logs it at debug (ids are the expectation's hash, no patient data)
    /// and counts it with its delay.
    pub fn emit(self, m: &Metrics) {
        let e = self.expectation;
        let Some(s) = &e.settlement else {
            return;
        };
        let outcome = e.status.as_str();
        tracing::debug!(
            expectation_id = %e.id.0,
            document_kind = e.document_kind.as_str(),
            outcome,
            delay_seconds = s.delay_seconds,
            "document settled an expectation"
        );
        let site = e.encounter.site.as_deref();
        let specialty = e.encounter.specialty.as_deref();
        let mut values = vec![e.document_kind.as_str(), outcome];
        m.labels.push_document_values(&mut values, site, specialty);
        m.documents.with_label_values(&values).inc();
        let mut values = vec![e.document_kind.as_str()];
        m.labels.push_document_values(&mut values, site, specialty);
        // A document issued before the encounter's end was not late by any
        // amount: it counts in the first bucket.
        m.document_delay_seconds
            .with_label_values(&values)
            .observe(s.delay_seconds.max(0) as f64);
    }
}

/// The tracker's open and overdue counts and what it has tolerated, after
/// a restore or a commit.
pub struct TrackerObserved<'a> {
    /// The tracker.
    pub tracker: &'a Tracker,
}

impl TrackerObserved<'_> {
    /// Sets `tocsin_expectations_open` and `tocsin_expectations_overdue` for
    /// every document kind and encounter kind (zero where the tracker has
    /// none, so a count that drops to nothing is seen to), and brings
    /// `tocsin_tracker_notices_total` up to the tracker's own counters.
    pub fn emit(self, m: &Metrics) {
        // The tracker's counters only grow, from zero when it was built at
        // start, as the metric's do: the difference is what is new.
        for (notice, count) in self.tracker.counters().named() {
            let c = m.tracker_notices.with_label_values(&[notice]);
            c.inc_by(count.saturating_sub(c.get()));
        }
        let mut counts = std::collections::BTreeMap::new();
        for (d, e, g) in self.tracker.gauges() {
            counts.insert((d, e), g);
        }
        for d in labels::document_kinds() {
            for e in labels::encounter_kinds() {
                let g = counts.get(&(d, e)).copied().unwrap_or_default();
                let l = [d.as_str(), e.as_str()];
                m.expectations_open
                    .with_label_values(&l)
                    .set(i64::try_from(g.open).unwrap_or(i64::MAX));
                m.expectations_overdue
                    .with_label_values(&l)
                    .set(i64::try_from(g.overdue).unwrap_or(i64::MAX));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tocsin_ingest::{ContentHint, IngestConfig, ingest};
    use tocsin_tracker::{Effect, Policy, Tracker, TrackerConfig};

    use super::DocumentSettled;

    /// A summary refused, sent again and accepted settled one expectation
    /// once: the resend (delivery pending again) is not a second
    /// settlement in `tocsin_documents_total`.
    #[test]
    fn a_resend_after_a_refusal_is_not_counted_settled_again() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/scenarios/delivery-resent"
        );
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 5, "{files:?}");
        let mut tracker = Tracker::new(Policy::default_contract(), TrackerConfig::default());
        let mut settled = Vec::new();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            for unit in ingest(&bytes, Some(ContentHint::Hl7), &IngestConfig::default()) {
                for ev in unit.outcome.unwrap() {
                    for fx in tracker.apply(&ev) {
                        if let Effect::ExpectationChanged(e) = fx
                            && DocumentSettled::from_change(&e).is_some()
                        {
                            settled.push(e.id);
                        }
                    }
                }
            }
        }
        assert_eq!(tracker.counters().deliveries_resent, 1);
        assert_eq!(settled.len(), 1, "{settled:?}");
    }
}
