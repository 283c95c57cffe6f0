//! FHIR XML (R4 and STU3) into interface events, through the JSON path.
//!
//! The XML is converted, in one streaming pass (quick-xml), into the JSON
//! form of the same resource, using tables of which elements repeat and
//! which primitives are numbers or booleans (`types`); the JSON then goes
//! through exactly the code FHIR JSON goes through. So the XML and JSON
//! forms of a resource give the same events, except `event_id` (derived from
//! the received bytes) and a `source.message_id` that falls back to a hash
//! of those bytes. docs/fhir-xml.md tells why this means was chosen.
//!
//! The version decides the tables (`DocumentReference.context.encounter`
//! repeats in R4, not in STU3), and XML, like JSON, does not name it. So the
//! R4 form is made first and the version told from it by the JSON path's own
//! rules; should those call for STU3, the STU3 form is made. The one element
//! whose JSON shape is itself evidence and whose XML is not is left out for
//! that decision (see [`convert::Mode::Detect`]).

mod convert;
mod types;

use thiserror::Error;
use tocsin_event::InterfaceEvent;

use crate::version::{self, Version};
use crate::{FhirConfig, FhirError};
use convert::{Mode, convert};
use types::Table;

/// Why a FHIR XML input was rejected: an XML reason, or (`Fhir`) whatever
/// the JSON path rejects the same resource for. Positions are `line:column`
/// in the XML. Messages never quote values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// Larger than `xml_max_bytes`.
    #[error("FHIR XML of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Size of the input.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A document type declaration: refused, since FHIR XML has none and a
    /// DTD is how external entities and entity expansion attacks come in.
    #[error("XML document type declarations (DTDs) are refused, at line {line}, column {column}")]
    DtdRefused {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A reference to an entity other than the five XML predefines.
    #[error(
        "XML entity references other than &lt; &gt; &amp; &apos; &quot; are refused, at line {line}, column {column}"
    )]
    EntityRefused {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Elements nested deeper than `xml_max_depth`.
    #[error("XML nested deeper than {limit} elements, at line {line}, column {column}")]
    TooDeep {
        /// The configured limit.
        limit: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Not well-formed XML.
    #[error("malformed XML at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// Well-formed XML that is not FHIR XML.
    #[error("not FHIR XML at line {line}, column {column}: {reason}")]
    NotFhir {
        /// What is wrong.
        reason: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The resource, read, is rejected as its JSON form would be.
    #[error(transparent)]
    Fhir(#[from] FhirError),
}

impl XmlError {
    /// The snake_case reason, for metric labels and dead-letter headers.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::DtdRefused { .. } => "xml_dtd_refused",
            Self::EntityRefused { .. } => "xml_entity_refused",
            Self::TooDeep { .. } => "xml_too_deep",
            Self::Malformed { .. } => "malformed_xml",
            Self::NotFhir { .. } => "not_fhir",
            Self::Fhir(e) => e.reason_code(),
        }
    }

    /// Where: `line:column` in the XML, or the FHIR path of the JSON path's
    /// error (`Bundle.entry[2].resource`).
    pub fn location(&self) -> Option<String> {
        match self {
            Self::Oversized { .. } => None,
            Self::DtdRefused { line, column }
            | Self::EntityRefused { line, column }
            | Self::TooDeep { line, column, .. }
            | Self::Malformed { line, column, .. }
            | Self::NotFhir { line, column, .. } => Some(format!("{line}:{column}")),
            Self::Fhir(e) => e.location(),
        }
    }
}

/// See [`crate::normalise_xml`].
pub(crate) fn normalise(bytes: &[u8], cfg: &FhirConfig) -> Result<Vec<InterfaceEvent>, XmlError> {
    let value = to_json(bytes, cfg)?;
    Ok(crate::normalise_value(value, bytes, cfg)?)
}

/// The JSON form of a FHIR XML resource, in the tables of its version.
pub(crate) fn to_json(bytes: &[u8], cfg: &FhirConfig) -> Result<serde_json::Value, XmlError> {
    if bytes.len() > cfg.xml_max_bytes {
        return Err(XmlError::Oversized {
            size: bytes.len(),
            limit: cfg.xml_max_bytes,
        });
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let depth = cfg.xml_max_depth;
    let r4 = convert(body, Table::r4(), Mode::Read, depth)?;
    let detect_form = match r4.ambiguous {
        true => Some(convert(body, Table::r4(), Mode::Detect, depth)?.value),
        false => None,
    };
    let evidence = detect_form.as_ref().unwrap_or(&r4.value);
    let root = evidence
        .get("resourceType")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("$");
    if matches!(version::detect(evidence, root), Ok(Version::Stu3)) {
        Ok(convert(body, Table::stu3(), Mode::Read, depth)?.value)
    } else {
        Ok(r4.value)
    }
}
