//! Fixture loading shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use tocsin_event::InterfaceEvent;
use tocsin_fhir::{FhirConfig, FhirError, normalise_json};

/// Path of a file under `tests/fixtures/fhir/`.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/fhir")
        .join(rel)
}

/// The bytes of a fixture.
pub fn load(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// Normalises a fixture with the checked-in configuration.
pub fn events(rel: &str) -> Vec<InterfaceEvent> {
    normalise_json(&load(rel), &FhirConfig::default())
        .unwrap_or_else(|e| panic!("fixture {rel} should normalise: {e}"))
}

/// The single event of a fixture.
pub fn one(rel: &str) -> InterfaceEvent {
    let mut ev = events(rel);
    assert_eq!(ev.len(), 1, "{rel} should give one event: {ev:#?}");
    ev.remove(0)
}

/// The single event of a fixture changed by `edit` (given the parsed JSON).
pub fn edited(rel: &str, edit: impl FnOnce(&mut Value)) -> InterfaceEvent {
    let mut json: Value = serde_json::from_slice(&load(rel)).unwrap();
    edit(&mut json);
    let bytes = serde_json::to_vec(&json).unwrap();
    let mut ev = normalise_json(&bytes, &FhirConfig::default())
        .unwrap_or_else(|e| panic!("edited {rel} should normalise: {e}"));
    assert_eq!(ev.len(), 1, "edited {rel} should give one event: {ev:#?}");
    ev.remove(0)
}

/// The resource of the first entry of `bundle` of type `rtype`.
pub fn entry_of<'a>(bundle: &'a mut Value, rtype: &str) -> &'a mut Value {
    bundle["entry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|e| &mut e["resource"])
        .find(|r| r["resourceType"] == rtype)
        .unwrap_or_else(|| panic!("no {rtype} entry"))
}

/// The error of a fixture that must be rejected.
pub fn rejected(rel: &str) -> FhirError {
    match normalise_json(&load(rel), &FhirConfig::default()) {
        Ok(ev) => panic!("fixture {rel} should be rejected, got {ev:#?}"),
        Err(e) => e,
    }
}

/// A UTC time from RFC 3339 text.
pub fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}
