//! The tracking engine.
//!
//! A pure state machine in the manner of quinn-proto: it takes an interface
//! event and the current time and returns [`Effect`]s (state changes and
//! alerts), and it says when its next deadline falls. It has no clock, no
//! I/O and no threads of its own, so replay and live mode share it and its
//! tests need no broker.

mod alert;
mod model;

pub use alert::{
    Alert, AlertDocument, AlertEncounter, AlertKind, AlertPatient, json_schema as alert_json_schema,
};
pub use model::{
    DeliveryStatus, Effect, EncounterSummary, Expectation, ExpectationId, ExpectationStatus,
    MatchMethod, PatientKeys, RuleRef, Settlement, StateRecord,
};
