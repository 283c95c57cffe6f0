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
//! The conversion is a streaming pass (`stream`) that writes the JSON text
//! as it reads the XML, and tells the version from the same evidence the
//! JSON path uses while it writes the R4 form (`DocumentReference.context.
//! encounter` repeats in R4, not in STU3, so the version decides the
//! tables); an STU3 resource is written again with the STU3 tables. Input
//! that pass does not handle (every error, and rare shapes such as a repeat
//! apart from its siblings) goes to the tree-building converter (`convert`),
//! which reads it the way it always has: so errors, hostile input included,
//! are reported by one piece of code, and the streaming pass can be checked
//! against the tree one (see the tests). docs/fhir-xml.md tells more.
//!
//! The tree converter tells the version the old way: the R4 form is made
//! first and the version told from it by the JSON path's own rules; should
//! those call for STU3, the STU3 form is made. The one element whose JSON
//! shape is itself evidence and whose XML is not is left out for that
//! decision (see [`convert::Mode::Detect`]).

mod convert;
mod stream;
mod types;

use thiserror::Error;
use tocsin_event::InterfaceEvent;

use crate::version::{self, Version};
use crate::{FhirConfig, FhirError};
use convert::{Mode, convert};
use types::Table;

/// The FHIR XML namespace (the same for STU3 and R4).
const FHIR_NS: &str = "http://hl7.org/fhir";

/// What an attribute named `key` declares: `Some(None)` the default
/// namespace (`xmlns`), `Some(Some(p))` prefix `p` (`xmlns:p`), `None` no
/// namespace (an ordinary attribute). Both converters read declarations
/// through it.
fn declared_prefix(key: &str) -> Option<Option<&str>> {
    match key.strip_prefix("xmlns") {
        Some("") => Some(None),
        Some(rest) => rest.strip_prefix(':').map(Some),
        None => None,
    }
}

/// Why a FHIR XML input was rejected: an XML reason, or (`Fhir`) whatever
/// the JSON path rejects the same resource for. Positions are `line:column`
/// in the XML. Messages never quote values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// Larger than `xml_max_bytes`.
    #[error("FHIR XML of {size} bytes exceeds the limit of {limit} bytes ([fhir] xml_max_bytes)")]
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
    /// Every reason [`XmlError::reason_code`] gives of its own (the JSON
    /// path's, through [`XmlError::Fhir`], are [`FhirError::REASON_CODES`]).
    pub const REASON_CODES: [&'static str; 6] = [
        "oversized",
        "xml_dtd_refused",
        "xml_entity_refused",
        "xml_too_deep",
        "malformed_xml",
        "not_fhir",
    ];

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
    match fast_json(bytes, cfg)? {
        Some(text) => Ok(crate::normalise_text(&text, bytes, cfg)?),
        None => Ok(crate::normalise_value(to_json(bytes, cfg)?, bytes, cfg)?),
    }
}

/// The JSON text of a FHIR XML resource from the streaming pass, or `None`
/// where that pass gives up (the tree converter then reads it).
fn fast_json(bytes: &[u8], cfg: &FhirConfig) -> Result<Option<String>, XmlError> {
    if bytes.len() > cfg.xml_max_bytes {
        return Err(XmlError::Oversized {
            size: bytes.len(),
            limit: cfg.xml_max_bytes,
        });
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    Ok(stream::to_json_text(body, cfg.xml_max_depth).ok())
}

/// The JSON form of a FHIR XML resource, in the tables of its version, as
/// a tree (the tree converter: the fallback and the streaming pass's
/// reference).
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every variant's reason is listed (a new variant fails to compile
    /// here until it is added below and to `REASON_CODES`).
    #[test]
    fn every_reason_code_is_listed() {
        let all = [
            XmlError::Oversized { size: 2, limit: 1 },
            XmlError::DtdRefused { line: 1, column: 1 },
            XmlError::EntityRefused { line: 1, column: 1 },
            XmlError::TooDeep {
                limit: 1,
                line: 1,
                column: 1,
            },
            XmlError::Malformed {
                line: 1,
                column: 1,
                message: String::new(),
            },
            XmlError::NotFhir {
                reason: String::new(),
                line: 1,
                column: 1,
            },
            XmlError::Fhir(FhirError::XmlNotSupported),
        ];
        for e in &all {
            let own = match e {
                XmlError::Oversized { .. }
                | XmlError::DtdRefused { .. }
                | XmlError::EntityRefused { .. }
                | XmlError::TooDeep { .. }
                | XmlError::Malformed { .. }
                | XmlError::NotFhir { .. } => XmlError::REASON_CODES.as_slice(),
                XmlError::Fhir(_) => FhirError::REASON_CODES.as_slice(),
            };
            assert!(own.contains(&e.reason_code()), "{e:?}");
        }
    }

    fn json_of(xml: &str) -> serde_json::Value {
        to_json(xml.as_bytes(), &FhirConfig::default()).expect("converts")
    }

    #[test]
    fn primitives_extensions_and_lists_follow_the_json_rules() {
        let v = json_of(
            r#"<?xml version="1.0"?><Patient xmlns="http://hl7.org/fhir">
              <id value="p1"/>
              <meta><profile value="https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"/></meta>
              <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>A &amp; B</p></div></text>
              <contained><Organization><id value="o1"/><active value="true"/></Organization></contained>
              <extension url="https://example.org/x"><valueDecimal value="1.5"/></extension>
              <active value="false"/>
              <name id="n1"><family value="Smith"/><given value="Ann"/>
                <given value="Marie"><extension url="https://example.org/y"><valueInteger value="2"/></extension></given>
              </name>
              <birthDate><extension url="https://example.org/absent"><valueCode value="unknown"/></extension></birthDate>
              <multipleBirthInteger value="2"/>
            </Patient>"#,
        );
        assert_eq!(
            v,
            json!({
                "resourceType": "Patient",
                "id": "p1",
                "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]},
                "text": {"status": "generated",
                         "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>A &amp; B</p></div>"},
                "contained": [{"resourceType": "Organization", "id": "o1", "active": true}],
                "extension": [{"url": "https://example.org/x", "valueDecimal": 1.5}],
                "active": false,
                "name": [{"id": "n1", "family": "Smith", "given": ["Ann", "Marie"],
                          "_given": [null, {"extension": [
                              {"url": "https://example.org/y", "valueInteger": 2}]}]}],
                "_birthDate": {"extension": [{"url": "https://example.org/absent", "valueCode": "unknown"}]},
                "multipleBirthInteger": 2
            })
        );
    }

    #[test]
    fn the_version_decides_which_elements_repeat() {
        let docref = |extra: &str| {
            format!(
                r#"<DocumentReference xmlns="http://hl7.org/fhir"><status value="current"/>{extra}
                <context><encounter><reference value="Encounter/e1"/></encounter></context></DocumentReference>"#
            )
        };
        // R4 (no STU3 evidence): context.encounter is a list.
        let r4 = json_of(&docref(r#"<date value="2024-01-15T10:00:00Z"/>"#));
        assert_eq!(
            r4["context"]["encounter"],
            json!([{"reference": "Encounter/e1"}])
        );
        // STU3 (indexed): one reference, as STU3 JSON has it.
        let stu3 = json_of(&docref(r#"<indexed value="2024-01-15T10:00:00Z"/>"#));
        assert_eq!(
            stu3["context"]["encounter"],
            json!({"reference": "Encounter/e1"})
        );
        // No evidence either way: R4, as for JSON.
        let none = json_of(&docref(""));
        assert!(none["context"]["encounter"].is_array());
    }

    #[test]
    fn unknown_elements_are_kept_by_shape_for_the_json_path_to_judge() {
        let v = json_of(
            r#"<Encounter xmlns="http://hl7.org/fhir"><status value="finished"/>
               <class value="inpatient"/><patient><reference value="Patient/1"/></patient></Encounter>"#,
        );
        assert_eq!(v["class"], json!("inpatient"));
        assert_eq!(v["patient"], json!({"reference": "Patient/1"}));
    }
}
