//! Hand-written FHIR XML modelled on the published UK Core and ITK3
//! examples (tests/fixtures/fhir/xml/examples): tabs, comments, narrative
//! with entities and character references, nested extensions with boolean
//! values, documents inside messages. Each gives the events tocsin needs.

mod common;

use common::{load, t};
use tocsin_event::{DocumentKind, EncounterKind, EventType, Format, InterfaceEvent};
use tocsin_fhir::{FhirConfig, normalise_xml};

fn one(rel: &str) -> InterfaceEvent {
    let mut ev = normalise_xml(
        &load(&format!("xml/examples/{rel}")),
        &FhirConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(ev.len(), 1, "{rel}: {ev:#?}");
    let e = ev.remove(0);
    assert!(e.warnings.is_empty(), "{rel}: {:?}", e.warnings);
    e
}

#[test]
fn uk_core_emergency_encounter() {
    let e = one("encounter-ukcore-emergency.xml");
    assert_eq!(e.event_type, EventType::EncounterEnded);
    assert_eq!(e.source.format, Format::FhirR4);
    assert_eq!(e.source.message_type, "Encounter");
    assert_eq!(
        e.source.message_id,
        "Encounter/UKCore-Encounter-ED-Example/_history/3#end=2024-03-02T05:58:00Z"
    );
    assert_eq!(e.occurred_at, t("2024-03-02T05:58:00Z"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9876543210"));
    let enc = e.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("ED240301-0457"));
    assert_eq!(enc.kind, Some(EncounterKind::Emergency));
    assert_eq!(enc.started_at, Some(t("2024-03-01T22:41:00Z")));
    assert_eq!(enc.site.as_deref(), Some("RXX01"));
}

#[test]
fn uk_core_clinic_letter_document_reference() {
    let e = one("documentreference-ukcore-clinic-letter.xml");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.source.format, Format::FhirR4);
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    let d = e.document.expect("document");
    assert_eq!(d.id, "CL-2024-031877");
    assert_eq!(d.kind, DocumentKind::ClinicLetter);
    assert_eq!(d.issued_at, t("2024-03-08T16:20:00Z"));
    // One context.encounter element: read as R4's list of one.
    let enc = e.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("OP240305-1120"));
}

#[test]
fn uk_core_discharge_summary_document_bundle() {
    let e = one("bundle-document-discharge-summary-ukcore.xml");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.source.format, Format::FhirR4);
    assert_eq!(e.source.message_type, "Bundle/document");
    assert_eq!(e.source.message_id, "7f3a1c52-9f1e-4b8e-a3b0-0d5c2a7e9001");
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9876543210"));
    assert_eq!(e.gp_practice.as_deref(), Some("Y12345"));
    let enc = e.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("IP240229-1410"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(enc.ended_at, Some(t("2024-03-04T09:30:00Z")));
    let d = e.document.expect("document");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.issued_at, t("2024-03-04T10:05:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-03-04T09:50:00Z")));
}

#[test]
fn itk3_edischarge_message_with_handling_extensions() {
    let e = one("itk3-ITK003D-edischarge.xml");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.source.format, Format::FhirStu3);
    assert_eq!(e.source.message_type, "ITK003D");
    assert_eq!(e.source.message_id, "b1c2d3e4-0000-4000-8000-00000000a010");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.occurred_at, t("2024-03-04T10:12:00Z"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9876543210"));
    assert_eq!(e.gp_practice.as_deref(), Some("Y12345"));
    let enc = e.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("IP240229-1410"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    let d = e.document.expect("document");
    assert_eq!(d.id, "b1c2d3e4-0000-4000-8000-00000000a031");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.recipient.as_deref(), Some("Y12345"));
}

#[test]
fn itk3_response_acknowledges_the_edischarge() {
    let e = one("itk3-ITK008M-response-transient-error.xml");
    assert_eq!(e.event_type, EventType::DeliveryFailed);
    assert_eq!(e.source.format, Format::FhirStu3);
    assert_eq!(e.source.message_type, "ITK008M");
    assert_eq!(e.source.sending_facility.as_deref(), Some("Y12345"));
    let ack = e.ack.expect("ack");
    // The response names the eDischarge's MessageHeader id.
    let sent = one("itk3-ITK003D-edischarge.xml");
    assert_eq!(ack.of_message_id, sent.source.message_id);
    assert_eq!(ack.code, "transient-error");
    assert_eq!(
        ack.text.as_deref(),
        Some("Message queue full - retry later")
    );
}
