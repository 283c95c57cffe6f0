//! Deterministic event identifiers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::Format;

/// A deterministic event identifier: 32 lowercase hex digits (the first 128
/// bits of a SHA-256).
///
/// It exists so that the same input message always yields the same id: a
/// redelivered or replayed message produces events that downstream consumers
/// (and the AMQP `message_id`) recognise as repeats.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Derives the id of the `sequence`-th event of a message from the
    /// message's identifying bytes (normalisers pass the raw message, so that
    /// the same message always gives the same id).
    pub fn derive(format: Format, message: &[u8], sequence: u32) -> Self {
        let mut h = Sha256::new();
        h.update(format.as_str().as_bytes());
        h.update([0]);
        h.update(message);
        h.update([0]);
        h.update(sequence.to_be_bytes());
        let digest = h.finalize();
        Self(hex::encode(&digest[..16]))
    }

    /// Wraps an id read back from storage or the wire.
    pub fn from_string(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_id_and_position_matters() {
        let a = EventId::derive(Format::Hl7v2, b"MSH|^~\\&|A", 0);
        assert_eq!(a, EventId::derive(Format::Hl7v2, b"MSH|^~\\&|A", 0));
        assert_ne!(a, EventId::derive(Format::Hl7v2, b"MSH|^~\\&|A", 1));
        assert_ne!(a, EventId::derive(Format::FhirR4, b"MSH|^~\\&|A", 0));
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }
}
