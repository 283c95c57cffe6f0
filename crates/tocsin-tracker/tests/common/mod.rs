//! Builders of interface events and a minimal in-memory model of the store,
//! shared by the scenario, restore and property tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;
use tocsin_event::{
    Ack, Document, DocumentKind, Encounter, EncounterKind, EventId, EventType, Format, Identifier,
    InterfaceEvent, Merge, Patient, Source,
};
use tocsin_tracker::{
    Alert, AlertKind, ConfigDuration, Effect, Expectation, Policy, StateRecord, Tracker,
    TrackerConfig,
};

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn h(n: i64) -> Duration {
    Duration::hours(n)
}

/// Settings with no allowed lateness, so deadlines are exact in tests.
pub fn strict() -> TrackerConfig {
    TrackerConfig {
        allowed_lateness: ConfigDuration::from_secs(0).unwrap(),
        ..TrackerConfig::default()
    }
}

pub fn base(msg: &str, ty: EventType, at: DateTime<Utc>, nhs: Option<&str>) -> InterfaceEvent {
    InterfaceEvent {
        event_id: EventId::derive(Format::Hl7v2, msg.as_bytes(), 0),
        event_type: ty,
        occurred_at: at,
        source: Source {
            format: Format::Hl7v2,
            message_id: msg.to_string(),
            message_type: "test".into(),
            sending_facility: None,
            sending_application: None,
            sequence: 0,
        },
        patient: Patient {
            nhs_number: nhs.map(str::to_string),
            local_ids: vec![],
        },
        encounter: None,
        document: None,
        appointment: None,
        gp_practice: Some("A81001".into()),
        ack: None,
        merge: None,
        warnings: vec![],
    }
}

/// An encounter-end event (A03 / FHIR Encounter finished).
pub fn end(
    msg: &str,
    visit: &str,
    kind: EncounterKind,
    at: DateTime<Utc>,
    nhs: &str,
) -> InterfaceEvent {
    let mut e = base(msg, EventType::EncounterEnded, at, Some(nhs));
    e.encounter = Some(Encounter {
        id: Some(visit.into()),
        kind: Some(kind),
        ended_at: Some(at),
        site: Some("RXX01".into()),
        ..Encounter::default()
    });
    e
}

/// A document-issued event naming its encounter by visit number (or not).
pub fn doc(
    msg: &str,
    visit: Option<&str>,
    kind: DocumentKind,
    at: DateTime<Utc>,
    nhs: Option<&str>,
) -> InterfaceEvent {
    let mut e = base(msg, EventType::DocumentIssued, at, nhs);
    e.encounter = visit.map(|v| Encounter {
        id: Some(v.into()),
        ..Encounter::default()
    });
    e.document = Some(Document {
        id: format!("DOC-{msg}"),
        kind,
        type_code: None,
        issued_at: at,
        authored_at: None,
        recipient: None,
        replaces: None,
    });
    e
}

pub fn cancel(msg: &str, ty: EventType, visit: &str, at: DateTime<Utc>) -> InterfaceEvent {
    let mut e = base(msg, ty, at, None);
    e.encounter = Some(Encounter {
        id: Some(visit.into()),
        ..Encounter::default()
    });
    e
}

pub fn ack(msg: &str, of: &str, failed: bool, at: DateTime<Utc>) -> InterfaceEvent {
    let ty = if failed {
        EventType::DeliveryFailed
    } else {
        EventType::DeliveryAcknowledged
    };
    let mut e = base(msg, ty, at, None);
    e.ack = Some(Ack {
        of_message_id: of.into(),
        code: if failed { "AE" } else { "AA" }.into(),
        // ERR-3's "unknown key identifier", with a free text that quotes
        // the patient (as a GP system's may).
        detail_code: failed.then(|| "204".into()),
        text: failed.then(|| "patient 4010232137 not registered here".into()),
    });
    e
}

pub fn merge(msg: &str, survivor: &str, prior: &str, at: DateTime<Utc>) -> InterfaceEvent {
    let mut e = base(msg, EventType::PatientMerged, at, Some(survivor));
    e.merge = Some(Merge {
        prior_nhs_number: Some(prior.into()),
        prior_local_ids: vec![],
        ..Merge::default()
    });
    e
}

pub fn with_local(mut e: InterfaceEvent, system: &str, value: &str) -> InterfaceEvent {
    e.patient.local_ids.push(Identifier {
        system: system.into(),
        value: value.into(),
    });
    e
}

/// The failure a refusal made by [`ack`] carries to its alert.
pub fn ack_failure() -> tocsin_tracker::DeliveryFailure {
    tocsin_tracker::DeliveryFailure {
        code: "AE".into(),
        detail_code: Some("204".into()),
    }
}

pub fn alerts(fx: &[Effect]) -> Vec<Alert> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::AlertRaised(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

pub fn kinds(fx: &[Effect]) -> Vec<AlertKind> {
    alerts(fx).into_iter().map(|a| a.kind).collect()
}

pub fn changed(fx: &[Effect]) -> Vec<Expectation> {
    fx.iter()
        .filter_map(|f| match f {
            Effect::ExpectationChanged(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// What the store would hold after committing effects.
#[derive(Default, Clone)]
pub struct Store {
    pub expectations: BTreeMap<String, Expectation>,
    pub state: BTreeMap<(String, String), tocsin_tracker::JsonText>,
    pub alerts: BTreeMap<String, Alert>,
}

impl Store {
    pub fn commit(&mut self, fx: &[Effect]) {
        for f in fx {
            match f {
                Effect::ExpectationChanged(e) => {
                    self.expectations.insert(e.id.0.clone(), e.clone());
                }
                Effect::AlertRaised(a) => {
                    self.alerts.entry(a.alert_id.clone()).or_insert(a.clone());
                }
                Effect::StatePut(r) => {
                    self.state
                        .insert((r.namespace.clone(), r.key.clone()), r.value.clone());
                }
                Effect::StateDeleted { namespace, key } => {
                    self.state.remove(&(namespace.clone(), key.clone()));
                }
                Effect::StateRangeDeleted(r) => {
                    self.state.retain(|(ns, key), _| !r.contains(ns, key));
                }
            }
        }
    }

    pub fn unsettled(&self) -> Vec<Expectation> {
        self.expectations
            .values()
            .filter(|e| e.status.is_unsettled())
            .cloned()
            .collect()
    }

    /// Every stored expectation.
    pub fn all(&self) -> Vec<Expectation> {
        self.expectations.values().cloned().collect()
    }

    /// A tracker rebuilt from this store under the contract policy, as
    /// after a restart: from every stored expectation (the unsettled ones
    /// and those its transmission records name) and every state record.
    pub fn restored(&self) -> Tracker {
        Tracker::restore(
            Policy::default_contract(),
            strict(),
            self.all(),
            self.records(),
        )
        .expect("restores")
    }

    pub fn records(&self) -> Vec<StateRecord> {
        self.state
            .iter()
            .map(|((n, k), v)| StateRecord {
                namespace: n.clone(),
                key: k.clone(),
                value: v.clone(),
            })
            .collect()
    }
}

/// Applies events in order and returns every effect.
pub fn run(tr: &mut Tracker, events: &[InterfaceEvent]) -> Vec<Effect> {
    events.iter().flat_map(|e| tr.apply(e)).collect()
}
