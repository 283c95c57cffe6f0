//! Deterministic synthetic trust traffic for benchmarks and replay tests.
//!
//! Issue 8 asks whether the gateway keeps up with the broker on realistic
//! traffic, and issue 4 whether a year of a large trust's archive replays in
//! minutes; both need traffic that looks like a trust's: admissions,
//! transfers, discharges and outpatient attendances (HL7 v2 ADT), discharge
//! summaries and clinic letters (HL7 MDM^T02, FHIR R4 document bundles, ITK3
//! messages), and their acknowledgements (HL7 ACK, ITK3 responses), with a
//! chosen share of late and missing documents.
//!
//! [`Generator`] is an iterator of [`Message`]s in event-time order. The
//! same seed, profile and options give byte-identical output on every
//! platform (the random generator is written out here). Identifiers (message
//! ids, visit and document numbers, UUIDs) are distinct within a run and
//! carry a tag from the seed and the first day, so that runs of other
//! seeds or months do not clash; NHS numbers come from the 999 test range with
//! valid check digits. Every figure (volumes, shares, timings, codes) comes
//! from the [`Profile`], by default `config/loadgen.toml`.
//!
//! The crate does no I/O: `tocsin loadgen` writes the messages to files
//! (one each, or packed per time window with [`Chunker`]) or publishes them.

/// The Encounter.class system of the R4 documents generated (STU3's differs
/// in its address only), for a caller checking the code tables read them.
pub const R4_CLASS_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

mod context;
mod error;
mod fhir;
mod files;
mod generator;
mod hl7;
mod ids;
mod model;
mod plan;
mod profile;
mod rng;

pub use error::ProfileError;
pub use files::{Chunker, FileChunk};
pub use generator::{Generator, Options, OptionsError};
pub use ids::{MAX_PATIENTS, nhs_check_digit};
pub use model::{EncounterKind, Message, MessageFormat, MessageKind, Outcome, Stats};
pub use profile::{Acks, DEFAULT_PROFILE_TOML, Discharges, Documents, Names, Profile, Volumes};
