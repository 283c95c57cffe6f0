//! The tracking engine.
//!
//! A pure state machine in the manner of quinn-proto: it takes an interface
//! event and the current time and returns [`Effect`]s (state changes and
//! alerts), and it says when its next deadline falls. It has no clock, no
//! I/O and no threads of its own, so replay and live mode share it and its
//! tests need no broker.
//!
//! - [`Policy`]: the effective-dated contract rules (`config/policies/`).
//! - [`TrackerConfig`]: the `[tracker]` settings (lateness, windows, horizons).
//! - [`Tracker`]: the state machine ([`Tracker::apply`], [`Tracker::advance_to`],
//!   [`Tracker::restore`]).
//! - [`compliance`]: the pure compliance report over expectations.

mod alert;
mod compact;
pub mod compliance;
mod config;
mod duration;
mod model;
mod policy;
mod tracker;

pub use alert::{
    Alert, AlertDocument, AlertEncounter, AlertKind, AlertPatient, json_schema as alert_json_schema,
};
pub use config::TrackerConfig;
pub use duration::{ConfigDuration, DurationError};
pub use model::{
    DeliveryStatus, Effect, EncounterSummary, Expectation, ExpectationId, ExpectationStatus,
    MatchMethod, PatientKeys, RuleRef, Settlement, StateRecord,
};
pub use policy::{Applicability, EncounterFacts, Exclusion, Policy, PolicyError, Rule};
pub use tracker::{Counters, Gauge, RestoreError, Tracker, alert_id, expectation_id, namespaces};
