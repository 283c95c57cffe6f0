//! Why a FHIR input was rejected.

use thiserror::Error;

/// Why a FHIR input could not be normalised. `Display` is the human reason;
/// [`FhirError::reason_code`] the metric label; [`FhirError::location`] where.
///
/// Messages never carry patient data: values quoted by the JSON decoder are
/// redacted before they get here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FhirError {
    /// The input is larger than `max_resource_bytes`.
    #[error(
        "FHIR resource of {size} bytes exceeds the limit of {limit} bytes ([fhir] max_resource_bytes)"
    )]
    Oversized {
        /// Size of the input.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// XML handed to the JSON reader ([`crate::normalise_json`]); FHIR XML is
    /// read by [`crate::normalise_xml`], where `tocsin_ingest` sends it.
    #[error("this is XML, not FHIR JSON: read FHIR XML with normalise_xml")]
    XmlNotSupported,
    /// The input is not well-formed JSON.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// The decoder's explanation.
        message: String,
    },
    /// Well-formed JSON that is not a FHIR resource.
    #[error("not a FHIR resource: {reason}")]
    NotFhir {
        /// What is missing or wrong.
        reason: String,
        /// Where, for nested content (e.g. a bundle entry).
        location: Option<String>,
    },
    /// A FHIR version other than R4 (read with R4B models) or STU3.
    #[error("unsupported FHIR version: {detail}")]
    UnsupportedVersion {
        /// The evidence for the version.
        detail: String,
        /// Where the evidence was found.
        location: Option<String>,
    },
    /// A resource tocsin uses that does not conform to its FHIR model.
    #[error("invalid {resource_type} at {location}: {message}")]
    InvalidResource {
        /// The resource type.
        resource_type: String,
        /// Where, e.g. `Bundle.entry[2].resource`.
        location: String,
        /// What the model rejected (values redacted).
        message: String,
    },
    /// A resource carries none of the times an event needs.
    #[error("{resource_type} at {location} has no usable time: {what}")]
    MissingTimestamp {
        /// The resource type.
        resource_type: String,
        /// Where.
        location: String,
        /// Which elements were tried.
        what: String,
    },
}

impl FhirError {
    /// Every reason [`FhirError::reason_code`] gives, so that a metric's
    /// series can exist at zero before the first rejection.
    pub const REASON_CODES: [&'static str; 7] = [
        "oversized",
        "fhir_xml_unsupported",
        "malformed_json",
        "not_fhir",
        "unsupported_fhir_version",
        "invalid_resource",
        "missing_timestamp",
    ];

    /// The snake_case reason, for metric labels and dead-letter headers.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::XmlNotSupported => "fhir_xml_unsupported",
            Self::MalformedJson { .. } => "malformed_json",
            Self::NotFhir { .. } => "not_fhir",
            Self::UnsupportedVersion { .. } => "unsupported_fhir_version",
            Self::InvalidResource { .. } => "invalid_resource",
            Self::MissingTimestamp { .. } => "missing_timestamp",
        }
    }

    /// Where in the input the problem is: a FHIR path such as
    /// `Bundle.entry[2].resource`, or `line:column` for malformed JSON.
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Oversized { .. } | Self::XmlNotSupported => None,
            Self::MalformedJson { line, column, .. } => Some(format!("{line}:{column}")),
            Self::NotFhir { location, .. } | Self::UnsupportedVersion { location, .. } => {
                location.clone()
            }
            Self::InvalidResource { location, .. } | Self::MissingTimestamp { location, .. } => {
                Some(location.clone())
            }
        }
    }

    /// Wraps a model deserialisation failure, redacting quoted values.
    pub(crate) fn invalid(
        resource_type: &str,
        location: &dyn std::fmt::Display,
        err: &serde_json::Error,
    ) -> Self {
        let mut message = redact(&err.to_string());
        if is_time_error(&message) {
            message.push_str(TIME_HINT);
        }
        Self::InvalidResource {
            resource_type: resource_type.to_owned(),
            location: location.to_string(),
            message,
        }
    }
}

/// What a date-time parser's refusal means, said after it: its own words
/// (`the 'separator' component could not be parsed`) name no element, and
/// an integration team read them as a fault in tocsin. The usual cause is
/// a DocumentReference.date or meta.lastUpdated (an `instant`) sent as a
/// date alone.
const TIME_HINT: &str = " (a date or time is malformed: an `instant` (DocumentReference.date, \
                         meta.lastUpdated, Bundle.timestamp) needs a date, a time and an \
                         offset, as 2024-01-15T14:00:00Z)";

/// Whether a model's refusal comes from its date-time parser (the `time`
/// crate's messages).
fn is_time_error(message: &str) -> bool {
    message.contains("component could not be parsed") || message.contains(" was not in range")
}

/// Whether a name from the input is shaped like a FHIR element's (a
/// lower-case letter, then letters and digits, at most 64), and so safe to
/// show in a reason: a broken or hostile sender may put a patient's name
/// where a name belongs (`PRIVAZOOK`, `Smith`).
pub(crate) fn element_shaped(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Removes values from a serde message, which could hold patient data,
/// keeping its shape and the field names:
/// - strings in double quotes (`invalid type: string "…"`), escapes within
///   them included;
/// - numbers, booleans, characters and enum variants, which serde writes in
///   backticks (`invalid type: integer `…``), where a field name in
///   backticks (`missing field `status``) is kept;
/// - the code after fhir-sdk's `Unknown value: `, which has no quotes,
///   unless it is a word of letters, `-`, `_` or `.` (`discharged`): such a
///   code says what was wrong, and a number or text with spaces could be
///   about a patient.
pub(crate) fn redact(message: &str) -> String {
    /// Words after which serde writes a value in backticks.
    const VALUE_WORDS: [&str; 6] = [
        "integer ",
        "floating point ",
        "boolean ",
        "character ",
        "variant ",
        "value ",
    ];
    const UNKNOWN: &str = "Unknown value: ";
    let mut out = String::with_capacity(message.len());
    let mut chars = message.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                out.push_str("\"…\"");
                let mut escaped = false;
                for (_, q) in chars.by_ref() {
                    match (q, escaped) {
                        ('\\', false) => escaped = true,
                        ('"', false) => break,
                        _ => escaped = false,
                    }
                }
            }
            '`' if VALUE_WORDS.iter().any(|w| out.ends_with(w)) => {
                out.push_str("`…`");
                for (_, q) in chars.by_ref() {
                    if q == '`' {
                        break;
                    }
                }
            }
            _ if message[i..].starts_with(UNKNOWN) => {
                let rest = &message[i + UNKNOWN.len()..];
                let skip = rest.find(" at line ").unwrap_or(rest.len());
                let code = &rest[..skip];
                out.push_str(UNKNOWN);
                // FHIR codes are lower case (`finished`, `in-progress`);
                // a word with a capital may be a name put where a code
                // belongs (`PRIVAZOOK`, `Smith`) and is not quoted.
                if !code.is_empty()
                    && code.len() <= 64
                    && code
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || matches!(c, '-' | '_' | '.'))
                {
                    out.push_str(code);
                } else {
                    out.push('…');
                }
                let resume = i + UNKNOWN.len() + skip;
                while chars.peek().is_some_and(|(j, _)| *j < resume) {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_quoted_values_but_keeps_field_names() {
        for (message, redacted) in [
            (
                "invalid type: string \"9434765919\", expected u32 for `total`",
                "invalid type: string \"…\", expected u32 for `total`",
            ),
            (
                "invalid type: integer `9434765919`, expected a string",
                "invalid type: integer `…`, expected a string",
            ),
            (
                "invalid type: string \"Patient \\\"9434765919\\\" TESTER\", expected a map",
                "invalid type: string \"…\", expected a map",
            ),
            (
                "Unknown value: 9434765919 TESTER at line 1 column 40",
                "Unknown value: … at line 1 column 40",
            ),
            ("Unknown value: 9434765919", "Unknown value: …"),
            // A name where a code belongs: codes are lower case.
            ("Unknown value: PRIVAZOOK", "Unknown value: …"),
            (
                "Unknown value: Smith at line 1 column 9",
                "Unknown value: … at line 1 column 9",
            ),
            (
                "Unknown value: no-such-status at line 1 column 9",
                "Unknown value: no-such-status at line 1 column 9",
            ),
            (
                "unknown variant `TESTER`, expected one of `a`, `b`",
                "unknown variant `…`, expected one of `a`, `b`",
            ),
            ("missing field `status`", "missing field `status`"),
        ] {
            assert_eq!(redact(message), redacted, "{message}");
        }
    }

    /// Every variant's reason is listed (a new variant fails to compile
    /// here until it is added below and to `REASON_CODES`).
    #[test]
    fn every_reason_code_is_listed() {
        let s = String::new;
        let all = [
            FhirError::Oversized { size: 2, limit: 1 },
            FhirError::XmlNotSupported,
            FhirError::MalformedJson {
                line: 1,
                column: 1,
                message: s(),
            },
            FhirError::NotFhir {
                reason: s(),
                location: None,
            },
            FhirError::UnsupportedVersion {
                detail: s(),
                location: None,
            },
            FhirError::InvalidResource {
                resource_type: s(),
                location: s(),
                message: s(),
            },
            FhirError::MissingTimestamp {
                resource_type: s(),
                location: s(),
                what: s(),
            },
        ];
        for e in &all {
            match e {
                FhirError::Oversized { .. }
                | FhirError::XmlNotSupported
                | FhirError::MalformedJson { .. }
                | FhirError::NotFhir { .. }
                | FhirError::UnsupportedVersion { .. }
                | FhirError::InvalidResource { .. }
                | FhirError::MissingTimestamp { .. } => {}
            }
            assert!(FhirError::REASON_CODES.contains(&e.reason_code()), "{e:?}");
        }
        assert_eq!(all.len(), FhirError::REASON_CODES.len());
    }

    #[test]
    fn reason_codes_and_locations() {
        let e = FhirError::MalformedJson {
            line: 3,
            column: 7,
            message: "EOF".into(),
        };
        assert_eq!(e.reason_code(), "malformed_json");
        assert_eq!(e.location().as_deref(), Some("3:7"));
        assert!(e.to_string().contains("line 3, column 7"));
    }
}
