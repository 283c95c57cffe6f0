//! HL7 v2 normalisation: ADT, MDM, ORU, SIU and ACK messages (versions 2.3
//! to 2.6, ER7 encoding) to [`tocsin_event::InterfaceEvent`]s.
//!
//! [`split_messages`] cuts a file or body into messages (MLLP frames, batch
//! envelopes, several messages, any line ending); [`normalise_message`] turns
//! one into an event or a typed [`Hl7Error`]. Structure parsing is the
//! hl7-parser crate's; the work-arounds for what it lacks are described in
//! the `message`, `escape` and `time` modules. The crate does no I/O.

mod config;
mod context;
mod document;
mod error;
mod escape;
mod header;
mod message;
mod normalise;
mod patient;
mod raw;
mod split;
mod time;
mod visit;

pub use config::{ConfigError, Hl7Config};
pub use error::Hl7Error;
pub use normalise::normalise_message;
pub use raw::{RAW_FIELDS, raw_fields};
pub use split::{RawMessage, split_messages};
pub use time::{ClockChange, TimestampError, parse_noting, parse_timestamp};
