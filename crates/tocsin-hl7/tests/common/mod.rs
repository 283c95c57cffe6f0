//! Helpers shared by the integration tests (included with `mod common`).
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use tocsin_event::InterfaceEvent;
use tocsin_hl7::{Hl7Config, Hl7Error, normalise_message, split_messages};

/// The fixture folder at the repository root.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hl7")
}

/// Every fixture file (`*.hl7`, `*.bin`), sorted by name.
pub fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture folder exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7" || e == "bin"))
        .collect();
    files.sort();
    files
}

pub fn load(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Normalises a fixture that holds exactly one message.
pub fn one(name: &str) -> Result<InterfaceEvent, Hl7Error> {
    let bytes = load(name);
    let msgs = split_messages(&bytes);
    assert_eq!(msgs.len(), 1, "{name} holds one message");
    normalise_message(msgs[0].bytes, &Hl7Config::default())
}

pub fn ok(name: &str) -> InterfaceEvent {
    one(name).unwrap_or_else(|e| panic!("{name} normalises: {e}"))
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test timestamp")
        .with_timezone(&Utc)
}
