//! The XML and JSON forms of each FHIR JSON fixture give the same events.
//!
//! Every fixture under tests/fixtures/fhir has an XML twin under
//! tests/fixtures/fhir/xml/twins (written by make_twins.py there). Both
//! forms are normalised and the events compared whole, except `event_id`,
//! which identifies the received bytes (EventId::derive over the raw input),
//! and `source.message_id` when it is the fallback `sha256:` of those bytes
//! (a resource without its own identifier): the bytes differ, so they must.
//! Rejected fixtures must be rejected for the same reason at the same place.

mod common;

use std::path::Path;

use common::fixture_path;
use tocsin_event::InterfaceEvent;
use tocsin_fhir::{FhirConfig, normalise_json, normalise_xml};

/// Every JSON fixture with an XML twin, as paths relative to fixtures/fhir.
fn twins() -> Vec<String> {
    let root = fixture_path("xml/twins");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("twins directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "xml") {
                let rel = path.strip_prefix(&root).expect("under root");
                out.push(rel.with_extension("").to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The events as JSON with the two byte-derived identifiers blanked.
fn comparable(events: &[InterfaceEvent]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).expect("events serialise");
            v["event_id"] = serde_json::Value::Null;
            let mid = &mut v["source"]["message_id"];
            if mid.as_str().is_some_and(|m| m.starts_with("sha256:")) {
                *mid = serde_json::Value::Null;
            }
            v
        })
        .collect()
}

#[test]
fn every_json_fixture_has_an_xml_twin_giving_the_same_events() {
    let cfg = FhirConfig::default();
    let names = twins();
    assert!(names.len() >= 24, "twins found: {names:?}");
    let mut compared_events = 0;
    for name in &names {
        let json = std::fs::read(fixture_path(&format!("{name}.json"))).expect("JSON fixture");
        let xml = std::fs::read(fixture_path(&format!("xml/twins/{name}.xml"))).expect("twin");
        match (normalise_json(&json, &cfg), normalise_xml(&xml, &cfg)) {
            (Ok(j), Ok(x)) => {
                assert_eq!(comparable(&j), comparable(&x), "{name}: events differ");
                for (a, b) in j.iter().zip(&x) {
                    assert_ne!(a.event_id, b.event_id, "{name}: ids come from the bytes");
                }
                compared_events += j.len();
            }
            (Err(j), Err(x)) => {
                assert_eq!(j.reason_code(), x.reason_code(), "{name}: {j} / {x}");
                assert_eq!(j.location(), x.location(), "{name}: {j} / {x}");
                assert_eq!(j.to_string(), x.to_string(), "{name}");
            }
            (j, x) => panic!("{name}: JSON gave {j:?}, XML gave {x:?}"),
        }
    }
    assert!(
        compared_events >= 20,
        "only {compared_events} events compared"
    );
    assert!(Path::new(&fixture_path("xml/twins/stu3/itk3-edischarge-ITK003D.xml")).exists());
}
