//! The `[hl7]` section of `config/mappings.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;
use tocsin_event::{DocumentKind, EncounterKind};

/// The checked-in code tables, compiled in so that the default configuration
/// and the file a trust copies can never drift apart.
const CHECKED_IN_MAPPINGS: &str = include_str!("../../../config/mappings.toml");

/// How HL7 v2 messages are read: the local time zone, limits and the code
/// tables that map a trust's codes onto tocsin's vocabulary.
///
/// It exists so that every trust-specific choice lives in configuration
/// (`[hl7]` of `config/mappings.toml`), never in code. [`Default`] is the
/// checked-in file's section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hl7Config {
    /// Zone of timestamps that carry no UTC offset (England: Europe/London).
    pub timezone: chrono_tz::Tz,
    /// A message larger than this many bytes is rejected as oversized.
    pub max_message_bytes: usize,
    /// HL7 versions (MSH-12) accepted; others are rejected as unsupported.
    pub supported_versions: Vec<String>,
    /// PID-3 identifier types (component 5) that mark an NHS number.
    pub nhs_identifier_types: Vec<String>,
    /// PID-3 assigning authorities (component 4, namespace or universal id)
    /// that mark an NHS number.
    pub nhs_assigning_authorities: Vec<String>,
    /// Whether PID-2 (v2.3's "external patient id", where some older PAS
    /// feeds send the NHS number) is read as the NHS number when PID-3
    /// holds none. Off by default: elsewhere PID-2 may hold a local number
    /// that passes the check digit by chance.
    #[serde(default)]
    pub nhs_number_in_pid2: bool,
    /// OBX-2 value types that carry document content, making an ORU^R01 a
    /// document transmission.
    pub document_value_types: Vec<String>,
    /// PV1-2 patient class to encounter kind.
    pub patient_class: BTreeMap<String, EncounterKind>,
    /// TXA-2 document type to document kind (an ORU with a TXA included).
    pub document_type: BTreeMap<String, DocumentKind>,
    /// OBR-4 universal service identifier (its code, else its text) of an
    /// ORU^R01 without TXA that is a document, to document kind. Its own
    /// table, not `document_type`'s: OBR-4 names the test or service
    /// ordered, and laboratory codes meet TXA-2's (`CL` chloride, `DS` drug
    /// screen), so a lab result with a comment (an OBX of type TX) was
    /// taken for a clinic letter and settled one. An ORU without TXA whose
    /// OBR-4 is not here is a result (`other`), not a document. Absent
    /// from an older copy of the mappings file: the two names below.
    #[serde(default = "default_oru_document_type")]
    pub oru_document_type: BTreeMap<String, DocumentKind>,
    /// TXA-17 completion statuses of a document that is not final (HL7
    /// table 0271: dictated, incomplete, in progress by default): such a
    /// document has not left the trust, so its message is `other`, with a
    /// warning, and settles nothing. Absent from an older copy of the
    /// mappings file: these three.
    #[serde(default = "default_draft_statuses")]
    pub draft_statuses: Vec<String>,
    /// TXA-19 availability statuses of a document not there for patient
    /// care (HL7 table 0273: deleted, obsolete, unavailable by default):
    /// as with `draft_statuses`, the message is `other`, with a warning,
    /// and settles nothing. Absent from an older copy of the mappings
    /// file: these three.
    #[serde(default = "default_unavailable_statuses")]
    pub unavailable_statuses: Vec<String>,
    /// Result statuses of an ORU^R01 document without TXA (OBR-25, else the
    /// content OBX's OBX-11) that are not final: preliminary, unverified,
    /// partial, pending (HL7 tables 0123 and 0085: A, I, O, P, R, S by
    /// default). As with `draft_statuses`, such a message is `other`, with
    /// a warning, and settles nothing. `C` (correction) is always an
    /// amendment and `X`, `D`, `W` (cancelled, deleted, wrong patient) a
    /// withdrawal; `F` and anything else are final.
    #[serde(default = "default_draft_result_statuses")]
    pub draft_result_statuses: Vec<String>,
    /// PV1-2 patient classes for which an ADT^A04 (registration) marks the
    /// attendance itself, an `encounter_ended`, for a trust whose PAS sends
    /// no A03 when an outpatient leaves clinic. Empty by default: where A03
    /// follows, the attendance ends with it.
    #[serde(default)]
    pub a04_attendance_classes: Vec<String>,
}

/// Why a mappings file could not be read as HL7 configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML.
    #[error("mappings file is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The file has no `[hl7]` table.
    #[error("mappings file has no [hl7] section")]
    MissingSection,
}

impl Hl7Config {
    /// Reads the `[hl7]` section from the full text of a mappings file (the
    /// checked-in `config/mappings.toml` or a trust's copy of it).
    pub fn from_mappings_toml(text: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            hl7: Option<Hl7Config>,
        }
        let file: File = toml::from_str(text)?;
        file.hl7.ok_or(ConfigError::MissingSection)
    }

    /// The encounter kind for a PV1-2 code: exact match first, then ignoring
    /// ASCII case. `None` when the table has no entry.
    pub fn encounter_kind(&self, code: &str) -> Option<EncounterKind> {
        lookup(&self.patient_class, code)
    }

    /// Whether an A04 of this PV1-2 patient class marks an attendance
    /// (`a04_attendance_classes`, ignoring ASCII case).
    pub fn a04_is_attendance(&self, class: &str) -> bool {
        self.a04_attendance_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }

    /// The document kind for a TXA-2 code: exact match first, then
    /// ignoring ASCII case. `None` when the table has no entry.
    pub fn document_kind(&self, code: &str) -> Option<DocumentKind> {
        lookup(&self.document_type, code)
    }

    /// The document kind of an ORU without TXA whose OBR-4 gives `code`
    /// (component 1) and `text` (component 2): the code's entry in
    /// `oru_document_type`, else the text's (as for `document_kind`).
    pub fn oru_document_kind(
        &self,
        code: Option<&str>,
        text: Option<&str>,
    ) -> Option<DocumentKind> {
        [code, text]
            .into_iter()
            .flatten()
            .find_map(|c| lookup(&self.oru_document_type, c))
    }
}

fn default_oru_document_type() -> BTreeMap<String, DocumentKind> {
    [
        ("DISCHARGE SUMMARY", DocumentKind::DischargeSummary),
        ("CLINIC LETTER", DocumentKind::ClinicLetter),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into()
}

fn default_draft_statuses() -> Vec<String> {
    ["DI", "IN", "IP"].map(String::from).to_vec()
}

fn default_unavailable_statuses() -> Vec<String> {
    ["CA", "OB", "UN"].map(String::from).to_vec()
}

fn default_draft_result_statuses() -> Vec<String> {
    ["A", "I", "O", "P", "R", "S"].map(String::from).to_vec()
}

fn lookup<T: Copy>(table: &BTreeMap<String, T>, code: &str) -> Option<T> {
    table.get(code).copied().or_else(|| {
        table
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(code))
            .map(|(_, v)| *v)
    })
}

impl Default for Hl7Config {
    /// The `[hl7]` section of the checked-in `config/mappings.toml`.
    fn default() -> Self {
        // The file is compiled in and covered by tests, so failure here is a
        // build defect, not an input error.
        Self::from_mappings_toml(CHECKED_IN_MAPPINGS)
            .expect("checked-in config/mappings.toml has a valid [hl7] section")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_defaults_match_the_issue() {
        let cfg = Hl7Config::default();
        assert_eq!(cfg.timezone, chrono_tz::Europe::London);
        assert_eq!(cfg.encounter_kind("I"), Some(EncounterKind::Inpatient));
        assert_eq!(cfg.encounter_kind("D"), Some(EncounterKind::DayCase));
        assert_eq!(cfg.encounter_kind("E"), Some(EncounterKind::Emergency));
        assert_eq!(cfg.encounter_kind("O"), Some(EncounterKind::Outpatient));
        // Obstetrics (HL7 table 0004): a maternity discharge needs its summary.
        assert_eq!(cfg.encounter_kind("B"), Some(EncounterKind::Inpatient));
        assert_eq!(cfg.encounter_kind("Q"), None);
        assert_eq!(
            cfg.document_kind("DS"),
            Some(DocumentKind::DischargeSummary)
        );
        assert_eq!(
            cfg.document_kind("clinic letter"),
            Some(DocumentKind::ClinicLetter)
        );
        assert!(cfg.supported_versions.iter().any(|v| v == "2.5.1"));
    }

    #[test]
    fn missing_section_and_unknown_keys_are_errors() {
        assert!(matches!(
            Hl7Config::from_mappings_toml("[fhir]\n"),
            Err(ConfigError::MissingSection)
        ));
        let mut text = CHECKED_IN_MAPPINGS.replace("[hl7]\n", "[hl7]\nbogus = 1\n");
        assert!(Hl7Config::from_mappings_toml(&text).is_err());
        text = CHECKED_IN_MAPPINGS.replace("Europe/London", "Mars/Olympus");
        assert!(Hl7Config::from_mappings_toml(&text).is_err());
    }
}
