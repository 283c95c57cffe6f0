//! Why a message could not be normalised.

/// A message that cannot be normalised, with the reason and (where there is
/// one) the segment and field.
///
/// Display is the human reason. It never holds patient data (no field values
/// other than codes such as the HL7 version), so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    /// Larger than `max_message_bytes`.
    #[error(
        "message is {size} bytes, over the configured limit of {limit} bytes ([hl7] max_message_bytes)"
    )]
    Oversized {
        /// Size of the message in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Nothing but whitespace and framing.
    #[error("message is empty")]
    Empty,
    /// Holds control bytes that never occur in HL7 text.
    #[error("binary data: control byte 0x{byte:02X} at byte {offset}")]
    Binary {
        /// The offending byte.
        byte: u8,
        /// Its offset within the message.
        offset: usize,
    },
    /// The last message of an MLLP frame whose end block (0x1C) never
    /// came: the input ended, or the next frame's start block came, inside
    /// the frame, so the message may be cut short (a discharge time lost
    /// with the end of PV1).
    #[error(
        "MLLP frame has no end block (0x1C): the input ended, or the next frame began, inside it, so the message may be cut short"
    )]
    UnterminatedFrame,
    /// Does not start with an MSH segment.
    #[error("not an HL7 v2 message: it does not start with an MSH segment")]
    NotHl7,
    /// The MSH segment ends before a required field.
    #[error("MSH segment is truncated: it ends before {location}")]
    TruncatedMsh {
        /// The first missing field, e.g. `MSH-2` or `MSH-9`.
        location: String,
    },
    /// MSH-1/MSH-2 do not declare five distinct separator characters.
    #[error("MSH-1/MSH-2 do not declare usable separators: {detail}")]
    BadSeparators {
        /// What is wrong with them.
        detail: &'static str,
    },
    /// MSH-12 names a version outside the supported range.
    #[error("HL7 version {version:?} is not supported (supported: {supported})")]
    UnsupportedVersion {
        /// MSH-12 as sent.
        version: String,
        /// The configured versions, comma-separated.
        supported: String,
    },
    /// A segment after MSH could not be parsed.
    #[error("segment {index} ({name}) cannot be parsed: {detail}")]
    MalformedSegment {
        /// 1-based position of the segment in the message (MSH is 1).
        index: usize,
        /// The first three characters of the line, printable ASCII only.
        name: String,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// A segment the message type requires is absent.
    #[error("{message_type} message has no {segment} segment")]
    MissingSegment {
        /// The missing segment, e.g. `PID`.
        segment: &'static str,
        /// The message type, e.g. `ADT^A03`.
        message_type: String,
    },
    /// A field the message type requires is empty or absent.
    #[error("required field {location} is empty")]
    MissingField {
        /// The field, e.g. `MSH-10` or `TXA-12`.
        location: String,
    },
    /// A required timestamp cannot be read.
    #[error("timestamp in {location} cannot be read: {reason}")]
    BadTimestamp {
        /// The field, e.g. `MSH-7`.
        location: String,
        /// Why it cannot be read.
        reason: String,
    },
}

impl Hl7Error {
    /// Every reason [`Hl7Error::reason_code`] gives, so that a metric's
    /// series can exist at zero before the first rejection (an alert rule
    /// on its rate sees nothing of a series that appears already counting).
    pub const REASON_CODES: [&'static str; 12] = [
        "oversized",
        "empty",
        "unterminated_frame",
        "binary",
        "not_hl7",
        "truncated_msh",
        "bad_separators",
        "unsupported_version",
        "malformed_segment",
        "missing_segment",
        "missing_field",
        "bad_timestamp",
    ];

    /// A short snake_case reason, fit for a metric label.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Empty => "empty",
            Self::UnterminatedFrame => "unterminated_frame",
            Self::Binary { .. } => "binary",
            Self::NotHl7 => "not_hl7",
            Self::TruncatedMsh { .. } => "truncated_msh",
            Self::BadSeparators { .. } => "bad_separators",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::MalformedSegment { .. } => "malformed_segment",
            Self::MissingSegment { .. } => "missing_segment",
            Self::MissingField { .. } => "missing_field",
            Self::BadTimestamp { .. } => "bad_timestamp",
        }
    }

    /// Where in the message the problem is (`PID`, `PV1-45`, `MSH-7`,
    /// `segment 4`, `byte 17`), when there is such a place.
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Oversized { .. } | Self::Empty | Self::NotHl7 | Self::UnterminatedFrame => None,
            Self::Binary { offset, .. } => Some(format!("byte {offset}")),
            Self::TruncatedMsh { location } => Some(location.clone()),
            Self::BadSeparators { .. } => Some("MSH-2".to_owned()),
            Self::UnsupportedVersion { .. } => Some("MSH-12".to_owned()),
            Self::MalformedSegment { index, .. } => Some(format!("segment {index}")),
            Self::MissingSegment { segment, .. } => Some((*segment).to_owned()),
            Self::MissingField { location } | Self::BadTimestamp { location, .. } => {
                Some(location.clone())
            }
        }
    }
}

#[cfg(test)]
mod reason_tests {
    use super::Hl7Error;

    /// Every variant's reason is listed (a new variant fails to compile
    /// here until it is added to the list below and to `REASON_CODES`).
    #[test]
    fn every_reason_code_is_listed() {
        let all = [
            Hl7Error::Oversized { size: 2, limit: 1 },
            Hl7Error::Empty,
            Hl7Error::Binary { byte: 0, offset: 0 },
            Hl7Error::UnterminatedFrame,
            Hl7Error::NotHl7,
            Hl7Error::TruncatedMsh {
                location: String::new(),
            },
            Hl7Error::BadSeparators { detail: "" },
            Hl7Error::UnsupportedVersion {
                version: String::new(),
                supported: String::new(),
            },
            Hl7Error::MalformedSegment {
                index: 0,
                name: String::new(),
                detail: "",
            },
            Hl7Error::MissingSegment {
                segment: "PID",
                message_type: String::new(),
            },
            Hl7Error::MissingField {
                location: String::new(),
            },
            Hl7Error::BadTimestamp {
                location: String::new(),
                reason: String::new(),
            },
        ];
        for e in &all {
            match e {
                Hl7Error::Oversized { .. }
                | Hl7Error::Empty
                | Hl7Error::Binary { .. }
                | Hl7Error::UnterminatedFrame
                | Hl7Error::NotHl7
                | Hl7Error::TruncatedMsh { .. }
                | Hl7Error::BadSeparators { .. }
                | Hl7Error::UnsupportedVersion { .. }
                | Hl7Error::MalformedSegment { .. }
                | Hl7Error::MissingSegment { .. }
                | Hl7Error::MissingField { .. }
                | Hl7Error::BadTimestamp { .. } => {}
            }
            assert!(Hl7Error::REASON_CODES.contains(&e.reason_code()), "{e:?}");
        }
        assert_eq!(all.len(), Hl7Error::REASON_CODES.len());
    }
}
