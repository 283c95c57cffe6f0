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
        EventIdSeed::new(format, message).derive(sequence)
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

/// The hash state of one message, from which the ids of all its events are
/// derived.
///
/// It exists because a FHIR bundle yields several events and the message can
/// be large: the message is hashed once and each event's id only finishes
/// the hash with its sequence number. `EventIdSeed::new(f, m).derive(s)` is
/// exactly `EventId::derive(f, m, s)`.
#[derive(Clone)]
pub struct EventIdSeed(Sha256);

impl EventIdSeed {
    /// Hashes the message's identifying bytes.
    pub fn new(format: Format, message: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(format.as_str().as_bytes());
        h.update([0]);
        h.update(message);
        h.update([0]);
        Self(h)
    }

    /// The id of the `sequence`-th event of the message.
    pub fn derive(&self, sequence: u32) -> EventId {
        let mut h = self.0.clone();
        h.update(sequence.to_be_bytes());
        let digest = h.finalize();
        // Into a fixed buffer (a table lookup a byte) rather than
        // `hex::encode`'s char-by-char iterator: once for every event.
        let mut hexed = [0u8; 32];
        // Cannot fail: 16 bytes always make 32 hex digits.
        let _ = hex::encode_to_slice(&digest[..16], &mut hexed);
        EventId(hexed.iter().map(|&b| char::from(b)).collect())
    }
}

impl fmt::Debug for EventIdSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventIdSeed(..)")
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

    #[test]
    fn ids_are_the_first_128_bits_of_sha256_over_format_message_and_sequence() {
        // Independent of the implementation: the digest of the documented
        // byte layout, computed in one go.
        let mut bytes = b"hl7v2\0MSH|^~\\&|A\0".to_vec();
        bytes.extend_from_slice(&7u32.to_be_bytes());
        let expected = hex::encode(&Sha256::digest(&bytes)[..16]);
        assert_eq!(Format::Hl7v2.as_str(), "hl7v2");
        assert_eq!(
            EventId::derive(Format::Hl7v2, b"MSH|^~\\&|A", 7).as_str(),
            expected
        );
    }

    #[test]
    fn a_seed_gives_the_same_ids_as_deriving_each_from_the_message() {
        let msg = br#"{"resourceType":"Bundle","type":"document"}"#;
        let seed = EventIdSeed::new(Format::FhirR4, msg);
        for sequence in [0, 1, 2, 9, u32::MAX] {
            assert_eq!(
                seed.derive(sequence),
                EventId::derive(Format::FhirR4, msg, sequence)
            );
        }
    }
}
