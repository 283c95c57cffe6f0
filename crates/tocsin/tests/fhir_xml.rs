//! FHIR XML through the real binary: `tocsin normalise` prints the same
//! events for a document's XML and JSON forms (bar `event_id`, which
//! identifies the bytes received), refuses hostile XML on stderr, and
//! `tocsin replay` settles an HL7 discharge with an XML discharge summary
//! exactly as with the JSON one.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod cli_support;

use cli_support::{fixture, replay_json, tocsin};

/// The printed events with `event_id` blanked.
fn events_without_ids(out: &Output) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::str::from_utf8(&out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("a JSON event per line");
            assert!(v["event_id"].is_string(), "{v}");
            v["event_id"] = Value::Null;
            v
        })
        .collect()
}

#[test]
fn normalise_prints_the_same_events_for_the_xml_and_json_forms() {
    for (json, xml) in [
        (
            "fhir/cross-format/discharge-summary-bundle-V123456.json",
            "fhir/xml/twins/cross-format/discharge-summary-bundle-V123456.xml",
        ),
        (
            "fhir/stu3/itk3-response-fatal-error-ITK008M.json",
            "fhir/xml/twins/stu3/itk3-response-fatal-error-ITK008M.xml",
        ),
    ] {
        let from_json =
            events_without_ids(&tocsin(&["normalise", fixture(json).to_str().unwrap()]));
        let from_xml = events_without_ids(&tocsin(&["normalise", fixture(xml).to_str().unwrap()]));
        assert_eq!(from_json.len(), 1);
        assert_eq!(from_json, from_xml, "{xml}");
    }
    // A directory of XML examples: one event per file, nothing rejected.
    let dir = tocsin(&["normalise", fixture("fhir/xml/examples").to_str().unwrap()]);
    let events = events_without_ids(&dir);
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["source"]["format"], "fhir-r4");
    assert_eq!(events[3]["source"]["message_type"], "ITK003D");
}

#[test]
fn normalise_refuses_hostile_xml_on_stderr_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("xxe.xml");
    std::fs::write(
        &evil,
        "<?xml version=\"1.0\"?>\n<!DOCTYPE Encounter [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n\
         <Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"&x;\"/></Encounter>\n",
    )
    .unwrap();
    let good = fixture("fhir/xml/examples/encounter-ukcore-emergency.xml");
    let out = tocsin(&["normalise", evil.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("xxe.xml"), "{stderr}");
    assert!(stderr.contains("DTDs) are refused"), "{stderr}");
    assert!(!stderr.contains("root:"), "{stderr}");
    // The good file after it is still normalised.
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.lines().count(), 1);
    assert!(printed.contains("ED240301-0457"));
}

/// Replays an HL7 discharge and one discharge summary file; returns the
/// alerts and the report.
fn replay_with(document: &str) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(
        fixture("cross-format/adt-a03-V123456.hl7"),
        input.join("1-adt-a03.hl7"),
    )
    .unwrap();
    let name = PathBuf::from(document);
    let ext = name.extension().unwrap().to_str().unwrap();
    std::fs::copy(fixture(document), input.join(format!("2-summary.{ext}"))).unwrap();
    let r = replay_json(&input, "2024-06-01T00:00:00Z", &[]);
    assert!(r.stderr.contains(" 0 rejected input(s)"), "{}", r.stderr);
    (r.alerts, r.report)
}

#[test]
fn replay_settles_an_hl7_discharge_with_an_xml_discharge_summary_as_with_json() {
    let (xml_alerts, xml_report) =
        replay_with("fhir/xml/twins/cross-format/discharge-summary-bundle-V123456.xml");
    assert_eq!(xml_alerts.trim(), "", "no alert: the summary was on time");
    let rows = xml_report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{xml_report}");
    assert_eq!(rows[0]["expected"], 1);
    assert_eq!(rows[0]["on_time"], 1);
    let (json_alerts, json_report) =
        replay_with("fhir/cross-format/discharge-summary-bundle-V123456.json");
    assert_eq!(json_alerts, xml_alerts);
    assert_eq!(json_report["rows"], xml_report["rows"]);
}
