//! Inputs the ingest crate hands over: NDJSON lines one at a time, and the
//! FHIR side of the HL7/FHIR cross-format pair.

mod common;

use common::{events, fixture_path, one};
use tocsin_event::{DocumentKind, EventType};
use tocsin_fhir::{FhirConfig, normalise_json};

#[test]
fn each_ndjson_line_is_one_resource() {
    let text = std::fs::read_to_string(fixture_path("ndjson/mixed-resources.ndjson")).unwrap();
    let cfg = FhirConfig::default();
    let types: Vec<EventType> = text
        .lines()
        .flat_map(|l| normalise_json(l.as_bytes(), &cfg).unwrap())
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        vec![
            EventType::EncounterEnded,
            EventType::DocumentIssued,
            EventType::Other,
            EventType::DocumentIssued
        ]
    );
}

#[test]
fn cross_format_bundle_names_the_visit_and_patient() {
    let e = one("cross-format/discharge-summary-bundle-V123456.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.encounter.as_ref().unwrap().id.as_deref(), Some("V123456"));
    assert_eq!(
        e.document.as_ref().unwrap().kind,
        DocumentKind::DischargeSummary
    );
    // The standalone Encounter and the ITK3 message for the same visit agree.
    for other in [
        "r4/encounter-finished-inpatient.json",
        "stu3/itk3-edischarge-ITK003D.json",
    ] {
        let o = &events(other)[0];
        assert_eq!(
            o.encounter.as_ref().unwrap().id,
            e.encounter.as_ref().unwrap().id
        );
        assert_eq!(o.patient.nhs_number, e.patient.nhs_number);
    }
}
