//! One error type for every way an input can fail to normalise.

use thiserror::Error;

/// Why a unit of input could not be normalised.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The input is empty (or only white space).
    #[error("the input is empty")]
    Empty,
    /// The input is larger than the configured limit.
    #[error(
        "the input is {size} bytes, over the configured limit of {limit} bytes ([ingest] max_input_bytes)"
    )]
    Oversized {
        /// Size of the input in bytes.
        size: usize,
        /// The configured limit (`[ingest] max_input_bytes`).
        limit: usize,
    },
    /// Neither HL7 v2 nor FHIR JSON nor FHIR XML.
    #[error(
        "not a recognised format{}: expected HL7 v2 (starting MSH, FHS or BHS), FHIR JSON, NDJSON or FHIR XML",
        .looks_like.map(|l| format!(" ({l})")).unwrap_or_default()
    )]
    Unrecognised {
        /// What the input looks like instead, when detection can tell (a
        /// compressed archive, UTF-16 text, a JSON array), so that the
        /// reader knows what to do with it.
        looks_like: Option<&'static str>,
    },
    /// The HL7 normaliser refused the message.
    #[error("HL7 v2: {0}")]
    Hl7(#[from] tocsin_hl7::Hl7Error),
    /// The FHIR normaliser refused the resource.
    #[error("FHIR: {0}")]
    Fhir(#[from] tocsin_fhir::FhirError),
    /// The FHIR XML reader refused the resource (hostile or malformed XML,
    /// or whatever the JSON form would be refused for).
    #[error("FHIR XML: {0}")]
    FhirXml(#[from] tocsin_fhir::XmlError),
}

impl IngestError {
    /// Every reason [`IngestError::reason_code`] can give, each once: the
    /// gateway creates `tocsin_messages_rejected_total`'s series at zero
    /// with them, so that an alert rule on its rate sees the first burst
    /// of rejections (a series that appears already counting shows no
    /// increase).
    pub fn reason_codes() -> Vec<&'static str> {
        let mut all: Vec<&'static str> = ["empty", "oversized", "unrecognised_format"]
            .into_iter()
            .chain(tocsin_hl7::Hl7Error::REASON_CODES)
            .chain(tocsin_fhir::FhirError::REASON_CODES)
            .chain(tocsin_fhir::XmlError::REASON_CODES)
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// A short snake_case reason, fit for a metric label or a dead-letter
    /// header (never carries patient data).
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Oversized { .. } => "oversized",
            Self::Unrecognised { .. } => "unrecognised_format",
            Self::Hl7(e) => e.reason_code(),
            Self::Fhir(e) => e.reason_code(),
            Self::FhirXml(e) => e.reason_code(),
        }
    }

    /// Where in the unit the problem lies (`PID-3`, `Bundle.entry[2]`), when known.
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Hl7(e) => e.location(),
            Self::Fhir(e) => e.location(),
            Self::FhirXml(e) => e.location(),
            _ => None,
        }
    }
}
