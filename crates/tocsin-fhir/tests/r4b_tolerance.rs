//! R4 JSON that fhir-sdk's R4B models (or their strict date parsing) would
//! refuse, and which tocsin accepts as documented in the crate README.

mod common;

use common::{load, t};
use serde_json::json;
use tocsin_event::EventType;
use tocsin_fhir::{FhirConfig, normalise_json};

fn run(v: &serde_json::Value) -> Vec<tocsin_event::InterfaceEvent> {
    normalise_json(&serde_json::to_vec(v).unwrap(), &FhirConfig::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn r4_only_resource_types_in_entries_and_contained_are_tolerated() {
    // MedicinalProduct exists in R4 but not R4B: fhir-sdk's Bundle (through
    // its Resource enum) would reject the whole bundle.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-document-discharge-summary.json")).unwrap();
    doc["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:ffff0000-0000-4000-8000-000000000001",
        "resource": {"resourceType": "MedicinalProduct", "id": "mp"}
    }));
    doc["entry"][0]["resource"]["contained"] =
        json!([{"resourceType": "SubstanceSpecification", "id": "ss"}]);
    let ev = run(&doc);
    assert_eq!(ev[0].event_type, EventType::DocumentIssued);
    assert!(ev[0].warnings.is_empty(), "{:?}", ev[0].warnings);
}

#[test]
fn offsetless_instants_are_local_time() {
    // Bundle.timestamp is an instant: fhir-sdk requires an offset.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-document-discharge-summary.json")).unwrap();
    doc["timestamp"] = "2024-06-15T14:30:00".into();
    doc["meta"]["lastUpdated"] = "2024-06-15T14:30".into();
    let ev = run(&doc);
    assert_eq!(ev[0].occurred_at, t("2024-06-15T13:30:00Z"));
    // A guess (a sender on UTC is an hour out all summer): each event of
    // the input says so, with how many and the first, and is counted.
    for e in &ev {
        let w: Vec<_> = e
            .warnings
            .iter()
            .filter(|w| w.code == tocsin_event::WarningCode::BadTimestamp)
            .collect();
        assert_eq!(w.len(), 1, "{:?}", e.warnings);
        assert!(
            w[0].message.starts_with(
                "2 date-time(s) without a UTC offset read as local time in Europe/London"
            ),
            "{}",
            w[0].message
        );
        assert_eq!(w[0].raw.as_deref(), Some("2024-06-15T14:30"));
    }
    // Only the seconds missing, the offset given: read exactly, no warning.
    doc["timestamp"] = "2024-06-15T14:30+01:00".into();
    doc["meta"]["lastUpdated"] = "2024-06-15T14:30:00Z".into();
    let ev = run(&doc);
    assert_eq!(ev[0].occurred_at, t("2024-06-15T13:30:00Z"));
    assert!(
        ev.iter().all(|e| e.warnings.is_empty()),
        "{:?}",
        ev[0].warnings
    );
}

/// A date-only period end includes the whole day (FHIR's reading of a
/// period): its last second, local time. Taken as the midnight at its
/// start, a summary sent the next evening after a morning discharge was
/// judged late.
#[test]
fn date_only_period_end_is_the_end_of_that_day() {
    let mut enc: serde_json::Value =
        serde_json::from_slice(&load("r4/encounter-finished-inpatient.json")).unwrap();
    enc["period"]["end"] = "2024-07-02".into();
    let ev = run(&enc);
    assert_eq!(ev[0].occurred_at, t("2024-07-02T22:59:59Z"));
    // Said, since the deadline may end up to a day late.
    let w: Vec<_> = ev[0]
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref(), w.raw.as_deref()))
        .collect();
    assert_eq!(
        w,
        [(
            tocsin_event::WarningCode::BadTimestamp,
            Some("Encounter.period.end"),
            Some("2024-07-02")
        )]
    );
    // A time of day is no such case.
    assert!(
        run(&serde_json::from_slice(&load("r4/encounter-finished-inpatient.json")).unwrap())[0]
            .warnings
            .is_empty()
    );
}
