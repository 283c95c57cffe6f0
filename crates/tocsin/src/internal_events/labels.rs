//! The closed sets that metric label values come from.
//!
//! A label value is either a fixed code from the domain model (document
//! kind, encounter kind, alert kind, outcome) or, for site and specialty,
//! a value the configuration lists; anything else is `other` and a missing
//! value `unknown`. So no identifier or free text from a message can reach a
//! label, and the number of series stays bounded.

use serde::Deserialize;
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_tracker::AlertKind;

/// `[metrics]` in `config/tocsin.toml`: optional site and specialty labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricLabels {
    /// Add a `site` label to `tocsin_documents_total` and
    /// `tocsin_document_delay_seconds`.
    pub site_label: bool,
    /// The sites that get their own label value (ODS site codes); others are
    /// `other`, none `unknown`.
    pub sites: Vec<String>,
    /// Add a `specialty` label to the same two metrics.
    pub specialty_label: bool,
    /// The specialties that get their own label value; others are `other`,
    /// none `unknown`.
    pub specialties: Vec<String>,
}

/// Label value for a site or specialty: listed, `other` or `unknown`.
fn listed<'a>(allowed: &'a [String], value: Option<&str>) -> &'a str {
    match value {
        None => "unknown",
        Some(v) => allowed
            .iter()
            .find(|a| a.as_str() == v)
            .map_or("other", String::as_str),
    }
}

impl MetricLabels {
    /// The label names of the per-document metrics, in order.
    pub fn document_label_names(&self, first: &[&'static str]) -> Vec<&'static str> {
        let mut names = first.to_vec();
        if self.site_label {
            names.push("site");
        }
        if self.specialty_label {
            names.push("specialty");
        }
        names
    }

    /// Appends the site and specialty label values the configuration asks
    /// for.
    pub fn push_document_values<'a>(
        &'a self,
        values: &mut Vec<&'a str>,
        site: Option<&str>,
        specialty: Option<&str>,
    ) {
        if self.site_label {
            values.push(listed(&self.sites, site));
        }
        if self.specialty_label {
            values.push(listed(&self.specialties, specialty));
        }
    }

    /// Every combination of site and specialty label values the
    /// configuration allows (each list, then `other` and `unknown`), one
    /// empty combination without those labels; none when there are more
    /// than `max`.
    pub fn document_label_tails(&self, max: usize) -> Vec<Vec<&str>> {
        fn values(list: &[String]) -> Vec<&str> {
            list.iter()
                .map(String::as_str)
                .chain(["other", "unknown"])
                .collect()
        }
        let mut tails: Vec<Vec<&str>> = vec![Vec::new()];
        for (_, list, _, on) in self.lists() {
            if !on {
                continue;
            }
            let vs = values(list);
            if tails.len().saturating_mul(vs.len()) > max {
                return Vec::new();
            }
            tails = tails
                .iter()
                .flat_map(|t| {
                    vs.iter().map(move |v| {
                        let mut t = t.clone();
                        t.push(*v);
                        t
                    })
                })
                .collect();
        }
        tails
    }

    /// Each optional label: its list's key, the list, the label's key,
    /// whether it is on.
    fn lists(&self) -> [(&'static str, &[String], &'static str, bool); 2] {
        [
            ("sites", &self.sites, "site_label", self.site_label),
            (
                "specialties",
                &self.specialties,
                "specialty_label",
                self.specialty_label,
            ),
        ]
    }

    /// What is valid but tells nothing: a label asked for with nothing
    /// listed gives every site (specialty) the one value `other` (or
    /// `unknown`).
    pub fn notes(&self) -> Vec<String> {
        self.lists()
            .into_iter()
            .filter(|(_, list, _, on)| *on && list.is_empty())
            .map(|(what, _, label, _)| {
                format!(
                    "[metrics] {label} is on but {what} lists none: every value is `other` (or \
                     `unknown`); list the {what} that should have their own"
                )
            })
            .collect()
    }

    /// Checks the lists hold usable label values.
    pub fn validate(&self) -> Result<(), String> {
        // A list without its label was silently ignored: the operator
        // expected per-site figures and got none.
        for (what, list, label, on) in self.lists() {
            if !list.is_empty() && !on {
                return Err(format!(
                    "[metrics] {what} is set but {label} is false: set {label} = true for the label, or empty {what}"
                ));
            }
        }
        for (what, list, _, _) in self.lists() {
            for v in list {
                if v.is_empty() || v == "other" || v == "unknown" {
                    return Err(format!(
                        "[metrics] {what}: {v:?} is not usable as a label value (empty, `other` and `unknown` are reserved)"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Every interface event type, for `tocsin_events_total{type}` at zero from
/// the start.
pub fn event_types() -> [tocsin_event::EventType; 15] {
    use tocsin_event::EventType as T;
    let all = [
        T::EncounterStarted,
        T::EncounterUpdated,
        T::EncounterEnded,
        T::EncounterDischargeCancelled,
        T::EncounterCancelled,
        T::PatientMerged,
        T::AppointmentBooked,
        T::AppointmentCancelled,
        T::AppointmentMissed,
        T::DocumentIssued,
        T::DocumentReplaced,
        T::DocumentCancelled,
        T::DeliveryAcknowledged,
        T::DeliveryFailed,
        T::Other,
    ];
    // A type added to the model fails to compile here until listed above.
    for t in all {
        match t {
            T::EncounterStarted
            | T::EncounterUpdated
            | T::EncounterEnded
            | T::EncounterDischargeCancelled
            | T::EncounterCancelled
            | T::PatientMerged
            | T::AppointmentBooked
            | T::AppointmentCancelled
            | T::AppointmentMissed
            | T::DocumentIssued
            | T::DocumentReplaced
            | T::DocumentCancelled
            | T::DeliveryAcknowledged
            | T::DeliveryFailed
            | T::Other => {}
        }
    }
    all
}

/// Every document kind. A new kind fails to compile here until it is listed.
pub fn document_kinds() -> [DocumentKind; 3] {
    let all = [
        DocumentKind::DischargeSummary,
        DocumentKind::ClinicLetter,
        DocumentKind::Other,
    ];
    for k in all {
        match k {
            DocumentKind::DischargeSummary | DocumentKind::ClinicLetter | DocumentKind::Other => {}
        }
    }
    all
}

/// Every encounter kind. A new kind fails to compile here until it is listed.
pub fn encounter_kinds() -> [EncounterKind; 6] {
    let all = [
        EncounterKind::Inpatient,
        EncounterKind::DayCase,
        EncounterKind::Emergency,
        EncounterKind::Outpatient,
        EncounterKind::MentalHealth,
        EncounterKind::Other,
    ];
    for k in all {
        match k {
            EncounterKind::Inpatient
            | EncounterKind::DayCase
            | EncounterKind::Emergency
            | EncounterKind::Outpatient
            | EncounterKind::MentalHealth
            | EncounterKind::Other => {}
        }
    }
    all
}

/// Every alert kind. A new kind fails to compile here until it is listed.
pub fn alert_kinds() -> [AlertKind; 7] {
    let all = [
        AlertKind::DueSoon,
        AlertKind::Overdue,
        AlertKind::Late,
        AlertKind::Resolved,
        AlertKind::DeliveryFailed,
        AlertKind::Unconfirmed,
        AlertKind::Cancelled,
    ];
    for k in all {
        match k {
            AlertKind::DueSoon
            | AlertKind::Overdue
            | AlertKind::Late
            | AlertKind::Resolved
            | AlertKind::DeliveryFailed
            | AlertKind::Unconfirmed
            | AlertKind::Cancelled => {}
        }
    }
    all
}

/// Input formats counted by `tocsin_messages_received_total`.
pub const FORMATS: [&str; 5] = ["hl7v2", "fhir-json", "ndjson", "fhir-xml", "unknown"];

/// Results counted by `tocsin_deliveries_total`.
pub const DELIVERY_RESULTS: [&str; 2] = ["amqp_confirmed", "amqp_failed"];

/// Tables counted by `tocsin_store_pruned_rows_total`.
pub const PRUNED_TABLES: [&str; 2] = ["outbox", "inputs"];

/// Reasons counted by `tocsin_restore_skipped_total`: the codes
/// `tocsin_tracker::RestoreError::code` gives for a state record the
/// restore went on without.
pub const RESTORE_SKIPS: [&str; 3] = ["missing_expectation", "bad_record", "unknown_namespace"];

/// A stage of the gateway's pipeline, timed by
/// `tocsin_pipeline_stage_seconds{stage}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStage {
    /// Waiting for a batch of input from the broker.
    Receive,
    /// Normalising and applying a batch (and dead-lettering what failed).
    Process,
    /// The store transaction of a batch, on the store's thread, while the
    /// next batch is received and processed.
    Commit,
    /// Waiting for the previous batch's commit to land, then acknowledging
    /// its inputs.
    Settle,
}

impl PipelineStage {
    /// Every stage, for pre-registering the label values.
    pub const ALL: [Self; 4] = [Self::Receive, Self::Process, Self::Commit, Self::Settle];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receive => "receive",
            Self::Process => "process",
            Self::Commit => "commit",
            Self::Settle => "settle",
        }
    }
}

/// Outcomes counted by `tocsin_documents_total`.
pub const OUTCOMES: [&str; 2] = ["on_time", "late"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error a state record can give at restore has its series.
    #[test]
    fn restore_skip_reasons_are_the_record_error_codes() {
        use tocsin_tracker::RestoreError;
        let (namespace, key) = ("n".to_string(), "k".to_string());
        let errors = [
            RestoreError::MissingExpectation {
                message_id: key.clone(),
                expectation: key.clone(),
            },
            RestoreError::BadRecord {
                namespace: namespace.clone(),
                key: key.clone(),
                reason: String::new(),
            },
            RestoreError::UnknownNamespace { namespace, key },
        ];
        let codes: Vec<&str> = errors.iter().map(|e| e.code()).collect();
        assert_eq!(codes, RESTORE_SKIPS);
        assert!(errors.iter().all(|e| e.record().is_some()));
    }

    #[test]
    fn unlisted_and_missing_values_never_reach_a_label() {
        let labels = MetricLabels {
            site_label: true,
            sites: vec!["RXX01".into()],
            specialty_label: true,
            specialties: vec![],
        };
        let mut v = Vec::new();
        labels.push_document_values(&mut v, Some("RXX01"), Some("Cardiology Ward 7"));
        assert_eq!(v, ["RXX01", "other"]);
        let mut v = Vec::new();
        labels.push_document_values(&mut v, None, None);
        assert_eq!(v, ["unknown", "unknown"]);
    }

    #[test]
    fn reserved_values_are_refused() {
        let labels = MetricLabels {
            site_label: true,
            sites: vec!["other".into()],
            ..MetricLabels::default()
        };
        assert!(labels.validate().unwrap_err().contains("reserved"));
    }

    /// A list whose label is off is refused, not ignored.
    #[test]
    fn a_list_without_its_label_is_refused() {
        let labels = MetricLabels {
            specialties: vec!["320".into()],
            ..MetricLabels::default()
        };
        let e = labels.validate().unwrap_err();
        assert!(e.contains("specialty_label is false"), "{e}");
        let on = MetricLabels {
            specialty_label: true,
            ..labels
        };
        assert_eq!(on.validate(), Ok(()));
    }
}
