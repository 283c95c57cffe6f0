//! The `[fhir]` section of `config/mappings.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;
use tocsin_event::{DocumentKind, EncounterKind, EventType};

/// The checked-in code tables, compiled in as the default configuration.
const CHECKED_IN: &str = include_str!("../../../config/mappings.toml");

/// Section `[fhir]` of `config/mappings.toml`: every code table and limit the
/// FHIR normaliser uses, so that no mapping lives in code.
///
/// Keys of the code tables are `"system|code"` or a bare `"code"`; the
/// `system|code` form is tried first, so a trust can map one system's code
/// without capturing the same code in another system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirConfig {
    /// Zone for date-only values and for date-times sent without an offset.
    pub timezone: chrono_tz::Tz,
    /// Largest accepted resource (a whole Bundle counts as one), in bytes.
    pub max_resource_bytes: usize,
    /// Largest accepted FHIR XML resource, in bytes (XML is wordier than
    /// JSON). Absent from older mappings files: 16 MiB.
    #[serde(default = "default_xml_max_bytes")]
    pub xml_max_bytes: usize,
    /// Deepest accepted nesting of FHIR XML elements (narrative markup
    /// included). Absent from older mappings files: 100.
    #[serde(default = "default_xml_max_depth")]
    pub xml_max_depth: usize,
    /// Identifier system of the NHS number.
    pub nhs_number_system: String,
    /// Older identifier systems that senders still use for the NHS number
    /// (GP Connect 0.x's `http://fhir.nhs.net/Id/nhs-number`, the HL7 v3
    /// OID), read as it: one left a local id never met the HL7 side's NHS
    /// number. Absent from older mappings files: those two.
    #[serde(default = "default_legacy_nhs_number_systems")]
    pub legacy_nhs_number_systems: Vec<String>,
    /// Identifier systems whose values are ODS codes.
    pub ods_systems: Vec<String>,
    /// Reference prefixes after which a patient reference carries the NHS
    /// number (the Spine's PDS URLs that NRL pointers and other national
    /// services name a patient by, with no identifier). Absent from older
    /// mappings files: PDS's STU3 one.
    #[serde(default = "default_nhs_number_reference_prefixes")]
    pub nhs_number_reference_prefixes: Vec<String>,
    /// Reference prefixes after which an organisation reference carries an
    /// ODS code (the Spine's directory URLs). Absent from older mappings
    /// files: the STU3 one.
    #[serde(default = "default_ods_reference_prefixes")]
    pub ods_reference_prefixes: Vec<String>,
    /// Endpoint prefixes after which an ITK address carries an ODS code.
    pub ods_endpoint_prefixes: Vec<String>,
    /// Identifier systems of the visit number (the value an HL7 feed sends
    /// in PV1-19), in order of preference: an Encounter is known by the
    /// first of these it carries, whatever order its identifiers come in.
    /// Absent or empty (or none carried): by its first identifier.
    #[serde(default)]
    pub encounter_identifier_systems: Vec<String>,
    /// `Encounter.status` code to event type.
    pub encounter_status: BTreeMap<String, EventType>,
    /// `Encounter.class` code to encounter kind.
    pub encounter_class: BTreeMap<String, EncounterKind>,
    /// Document type code (SNOMED CT or local) to document kind.
    pub document_type: BTreeMap<String, DocumentKind>,
    /// Message event code (ITK3 `ITK003D`...) of a document message to kind.
    pub itk_event: BTreeMap<String, DocumentKind>,
    /// `MessageHeader.response.code` to event type.
    pub response_code: BTreeMap<String, EventType>,
    /// ITK3 response code (an ITK008M's OperationOutcome issue details) to
    /// event type, overriding `response_code` for the codes listed: a
    /// `fatal-error` that says "duplicate message received" is no failed
    /// delivery. Absent from older mappings files: those two duplicates.
    #[serde(default = "default_itk_response_code")]
    pub itk_response_code: BTreeMap<String, EventType>,
}

/// The ITK3 duplicates (ITK3 Messaging Distribution, response codes
/// 20007 and 20008, in both code systems): the recipient already holds
/// the message, so its answer to the first copy stands.
fn default_itk_response_code() -> BTreeMap<String, EventType> {
    let mut t = BTreeMap::new();
    for system in [
        "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1",
        "https://fhir.hl7.org.uk/CodeSystem/UKCore-ITKResponseCode",
    ] {
        for code in ["20007", "20008"] {
            t.insert(format!("{system}|{code}"), EventType::Other);
        }
    }
    t
}

fn default_nhs_number_reference_prefixes() -> Vec<String> {
    vec!["https://demographics.spineservices.nhs.uk/STU3/Patient/".to_owned()]
}

fn default_ods_reference_prefixes() -> Vec<String> {
    vec!["https://directory.spineservices.nhs.uk/STU3/Organization/".to_owned()]
}

fn default_legacy_nhs_number_systems() -> Vec<String> {
    vec![
        "http://fhir.nhs.net/Id/nhs-number".to_owned(),
        "urn:oid:2.16.840.1.113883.2.1.4.1".to_owned(),
    ]
}

fn default_xml_max_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_xml_max_depth() -> usize {
    100
}

/// The file layout: only `[fhir]` is read, other sections belong to others.
#[derive(Deserialize)]
struct MappingsFile {
    fhir: FhirConfig,
}

impl FhirConfig {
    /// Reads the `[fhir]` section of a mappings file (a trust's copy of
    /// `config/mappings.toml`).
    pub fn from_mappings_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str::<MappingsFile>(text).map(|f| f.fhir)
    }

    /// The encounter kind `[fhir.encounter_class]` gives an Encounter.class
    /// coding, as the normaliser reads it (`system|code`, then `code`).
    pub fn encounter_kind(&self, system: Option<&str>, code: &str) -> Option<EncounterKind> {
        Self::lookup(&self.encounter_class, system, code).copied()
    }

    /// Looks a coding up in a `system|code` / `code` keyed table.
    pub(crate) fn lookup<'a, T>(
        table: &'a BTreeMap<String, T>,
        system: Option<&str>,
        code: &str,
    ) -> Option<&'a T> {
        if let Some(system) = system {
            let key = format!("{system}|{code}");
            if let Some(v) = table.get(&key) {
                return Some(v);
            }
        }
        table.get(code)
    }

    /// Whether an identifier system holds NHS numbers: the current one or
    /// a legacy one.
    pub(crate) fn is_nhs_number_system(&self, system: Option<&str>) -> bool {
        system.is_some_and(|s| {
            s == self.nhs_number_system || self.legacy_nhs_number_systems.iter().any(|l| l == s)
        })
    }

    /// What a reference carries after one of `prefixes` (a whole path
    /// segment, nothing after it).
    pub(crate) fn after_prefix<'a>(prefixes: &[String], reference: &'a str) -> Option<&'a str> {
        prefixes
            .iter()
            .find_map(|p| reference.strip_prefix(p.as_str()))
            .filter(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#']))
    }

    /// Whether an identifier system holds ODS codes.
    pub(crate) fn is_ods_system(&self, system: Option<&str>) -> bool {
        system.is_some_and(|s| self.ods_systems.iter().any(|o| o == s))
    }

    /// The ODS code carried by an ITK endpoint address, if it has one.
    pub(crate) fn ods_from_endpoint<'a>(&self, endpoint: &'a str) -> Option<&'a str> {
        self.ods_endpoint_prefixes
            .iter()
            .find_map(|p| endpoint.strip_prefix(p.as_str()))
            .filter(|s| !s.is_empty())
    }
}

impl Default for FhirConfig {
    /// The checked-in `config/mappings.toml` `[fhir]` section.
    fn default() -> Self {
        Self::from_mappings_toml(CHECKED_IN)
            .expect("the checked-in config/mappings.toml has a valid [fhir] section")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_section_parses_with_the_documented_defaults() {
        let cfg = FhirConfig::default();
        assert_eq!(cfg.timezone, chrono_tz::Europe::London);
        assert_eq!(cfg.encounter_class["IMP"], EncounterKind::Inpatient);
        assert_eq!(cfg.encounter_class["SS"], EncounterKind::DayCase);
        assert_eq!(cfg.encounter_class["VR"], EncounterKind::Outpatient);
        assert_eq!(
            FhirConfig::lookup(
                &cfg.document_type,
                Some("http://snomed.info/sct"),
                "823701000000103"
            ),
            Some(&DocumentKind::DischargeSummary)
        );
        assert_eq!(
            FhirConfig::lookup(
                &cfg.document_type,
                Some("http://snomed.info/sct"),
                "373942005"
            ),
            Some(&DocumentKind::DischargeSummary)
        );
        // A bare SNOMED code from another system is not captured.
        assert_eq!(
            FhirConfig::lookup(&cfg.document_type, Some("urn:other"), "373942005"),
            None
        );
        assert_eq!(cfg.itk_event["ITK006D"], DocumentKind::ClinicLetter);
        assert_eq!(cfg.response_code["fatal-error"], EventType::DeliveryFailed);
        // What an older mappings file without the table gets is what the
        // checked-in file says.
        assert_eq!(cfg.itk_response_code, default_itk_response_code());
        assert_eq!(cfg.itk_response_code.len(), 4);
        assert_eq!(
            cfg.legacy_nhs_number_systems,
            default_legacy_nhs_number_systems()
        );
        assert_eq!(
            cfg.nhs_number_reference_prefixes,
            default_nhs_number_reference_prefixes()
        );
        assert_eq!(cfg.ods_reference_prefixes, default_ods_reference_prefixes());
    }

    #[test]
    fn unknown_keys_in_the_section_are_rejected() {
        let text = CHECKED_IN.replace("[fhir]\n", "[fhir]\nsurprise = 1\n");
        assert!(FhirConfig::from_mappings_toml(&text).is_err());
    }
}
