//! Bad input: each rejection has its reason code, location and a message
//! that says why, and holds no patient data.

mod common;

use common::{load, rejected};
use tocsin_fhir::{FhirConfig, FhirError, normalise_json};

#[test]
fn malformed_json_names_line_and_column() {
    let e = rejected("rejected/malformed.json");
    assert_eq!(e.reason_code(), "malformed_json");
    assert!(
        matches!(e, FhirError::MalformedJson { line: 5, .. }),
        "{e:?}"
    );
    assert_eq!(e.location().as_deref(), Some("5:0"));
    assert!(e.to_string().contains("EOF while parsing"), "{e}");
}

#[test]
fn json_without_resource_type_is_not_fhir() {
    let e = rejected("rejected/not-fhir.json");
    assert_eq!(e.reason_code(), "not_fhir");
    assert!(e.to_string().contains("no resourceType"), "{e}");
    for (body, why) in [
        (&b"[1,2]"[..], "JSON object"),
        (b"{\"resourceType\": 7}", "not a string"),
        (b"{\"resourceType\": \"encounter\"}", "resource type name"),
    ] {
        let e = normalise_json(body, &FhirConfig::default()).unwrap_err();
        assert_eq!(e.reason_code(), "not_fhir");
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn r5_and_dstu2_are_unsupported_versions() {
    let e = rejected("rejected/r5-encounter.json");
    assert_eq!(e.reason_code(), "unsupported_fhir_version");
    assert!(e.to_string().contains("R5"), "{e}");
    assert_eq!(e.location().as_deref(), Some("Encounter"));
    let e = rejected("rejected/dstu2-encounter.json");
    assert_eq!(e.reason_code(), "unsupported_fhir_version");
    assert!(e.to_string().contains("DSTU2"), "{e}");
}

/// A date-time the model's parser refuses (a DocumentReference.date, an
/// `instant`, sent as a date alone) is named as such: the parser's own
/// words name no element.
#[test]
fn a_malformed_instant_says_what_an_instant_needs() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/documentreference-current-clinic-letter.json")).unwrap();
    for date in ["2024-01-15", "2024-01-15T14:00:61Z"] {
        v["date"] = date.into();
        let e = normalise_json(v.to_string().as_bytes(), &FhirConfig::default()).unwrap_err();
        assert_eq!(e.reason_code(), "invalid_resource", "{date}");
        let text = e.to_string();
        assert!(
            text.contains("a date or time is malformed") && text.contains("2024-01-15T14:00:00Z"),
            "{date}: {text}"
        );
    }
    // Other refusals carry no such hint.
    let e = rejected("rejected/invalid-encounter-status.json");
    assert!(!e.to_string().contains("date or time"), "{e}");
}

#[test]
fn resource_the_model_rejects_is_invalid_with_its_location() {
    let e = rejected("rejected/invalid-encounter-status.json");
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Encounter"));
    assert!(e.to_string().contains("discharged"), "{e}");
}

#[test]
fn document_bundle_must_start_with_a_composition() {
    let e = rejected("rejected/document-bundle-without-composition.json");
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Bundle.entry[0].resource"));
    assert!(e.to_string().contains("Composition"), "{e}");
}

/// An entry without a resource first: the Composition (or MessageHeader)
/// after it is not the bundle's first entry, so the bundle is refused.
#[test]
fn a_resourceless_first_entry_does_not_let_the_second_stand_first() {
    for (fixture, first) in [
        ("r4/bundle-document-discharge-summary.json", "Composition"),
        ("r4/bundle-message-itk003d.json", "MessageHeader"),
    ] {
        let mut v: serde_json::Value = serde_json::from_slice(&load(fixture)).unwrap();
        v["entry"]
            .as_array_mut()
            .unwrap()
            .insert(0, serde_json::json!({"fullUrl": "urn:uuid:empty"}));
        let e =
            normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default()).unwrap_err();
        assert_eq!(e.reason_code(), "invalid_resource", "{fixture}: {e}");
        assert_eq!(
            e.location().as_deref(),
            Some("Bundle.entry[0].resource"),
            "{fixture}"
        );
        assert!(e.to_string().contains(first), "{e}");
    }
}

#[test]
fn invalid_entry_deep_in_a_bundle_is_located() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-transaction.json")).unwrap();
    v["entry"][1]["resource"]["status"] = "bogus".into();
    let e = normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default()).unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Bundle.entry[1].resource"));
}

#[test]
fn xml_given_to_the_json_reader_is_refused_with_where_to_send_it() {
    let e = rejected("rejected/encounter.xml");
    assert_eq!(e.reason_code(), "fhir_xml_unsupported");
    assert!(e.to_string().contains("normalise_xml"), "{e}");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let cfg = FhirConfig {
        max_resource_bytes: 100,
        ..FhirConfig::default()
    };
    let e = normalise_json(&load("r4/encounter-finished-inpatient.json"), &cfg).unwrap_err();
    assert_eq!(e.reason_code(), "oversized");
    assert!(e.to_string().contains("limit of 100 bytes"), "{e}");
}

#[test]
fn missing_times_are_a_typed_error() {
    let body = br#"{"resourceType":"Encounter","status":"finished","class":{"code":"IMP"}}"#;
    let e = normalise_json(body, &FhirConfig::default()).unwrap_err();
    assert_eq!(e.reason_code(), "missing_timestamp");
    assert_eq!(e.location().as_deref(), Some("Encounter"));
}

#[test]
fn error_messages_do_not_carry_patient_values() {
    let bodies: [&[u8]; 4] = [
        br#"{"resourceType":"Encounter","status":"finished","class":{"code":"IMP"},
        "period":{"end":"2024-01-01T00:00:00Z"},"subject":"9434765919 TESTER"}"#,
        // A quote escaped inside the value.
        br#"{"resourceType":"Encounter","status":"finished","class":{"code":"IMP"},
        "period":{"end":"2024-01-01T00:00:00Z"},"subject":"Patient \"9434765919\" TESTER"}"#,
        // A number where a string belongs: serde writes it in backticks.
        br#"{"resourceType":"Encounter","status":"finished","class":{"code":"IMP"},
        "period":{"end":"2024-01-01T00:00:00Z"},
        "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":9434765919}]}"#,
        // A code the model does not know: fhir-sdk writes it unquoted.
        br#"{"resourceType":"Encounter","status":"9434765919 TESTER","class":{"code":"IMP"},
        "period":{"end":"2024-01-01T00:00:00Z"}}"#,
    ];
    for body in bodies {
        let e = normalise_json(body, &FhirConfig::default()).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.reason_code(), "invalid_resource", "{text}");
        assert!(
            !text.contains("9434765919") && !text.contains("TESTER"),
            "{text}"
        );
    }
}

/// A minimal document bundle: a Composition whose subject is
/// `urn:uuid:p1`, then a Patient entry with the `fullUrl` given (JSON text).
fn document_with_patient_full_url(full_url: &str) -> String {
    format!(
        r#"{{"resourceType":"Bundle","type":"document","timestamp":"2024-01-01T10:00:00Z",
        "entry":[
          {{"fullUrl":"urn:uuid:c1","resource":{{"resourceType":"Composition",
            "status":"final","type":{{"coding":[{{"code":"x"}}]}},
            "subject":{{"reference":"urn:uuid:p1"}},"date":"2024-01-01T10:00:00Z",
            "author":[{{"display":"a"}}],"title":"t"}}}},
          {{"fullUrl":{full_url},"resource":{{"resourceType":"Patient",
            "identifier":[{{"system":"https://fhir.nhs.uk/Id/nhs-number",
            "value":"9434765919"}}]}}}}]}}"#
    )
}

#[test]
fn entry_full_urls_are_read_as_the_bundle_model_reads_them() {
    let cfg = FhirConfig::default();
    // Escaped or not, the fullUrl is the string it encodes.
    for full_url in [r#""urn:uuid:p1""#, r#""urn:uuid:p\u0031""#] {
        let events = normalise_json(document_with_patient_full_url(full_url).as_bytes(), &cfg)
            .unwrap_or_else(|e| panic!("{full_url}: {e}"));
        assert_eq!(
            events[0].patient.nhs_number.as_deref(),
            Some("9434765919"),
            "{full_url}"
        );
    }
    // A null fullUrl names nothing.
    let events = normalise_json(document_with_patient_full_url("null").as_bytes(), &cfg).unwrap();
    assert_eq!(events[0].patient.nhs_number, None);
    // A repeated one is refused (see duplicate_json_members_are_refused).
    let twice = r#""urn:uuid:p2","fullUrl":"urn:uuid:p1""#;
    let e = normalise_json(document_with_patient_full_url(twice).as_bytes(), &cfg).unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Bundle.entry[1].fullUrl"));
    // A fullUrl that is not a string fails the model.
    let e = normalise_json(document_with_patient_full_url("7").as_bytes(), &cfg).unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Bundle"));
}

/// A member given twice in one object is refused, as FHIR XML giving one
/// element twice is (`invalid_resource`): which value the sender meant is
/// unknown. The error names the member and where, never a value.
#[test]
fn duplicate_json_members_are_refused() {
    let cfg = FhirConfig::default();
    let encounter = |members: &str| {
        format!(
            r#"{{"resourceType":"Encounter","id":"e1","meta":{{"lastUpdated":"2024-01-15T14:00:00Z"}},
            "class":{{"code":"IMP"}},"period":{{"start":"2024-01-10T09:00:00Z"}},{members}}}"#
        )
    };
    let cases = [
        // A standalone resource's own member.
        (
            encounter(r#""status":"in-progress","status":"finished""#),
            "Encounter.status",
        ),
        // The repeated member holds patient data: only its name is told.
        (
            encounter(
                r#""status":"finished","subject":{"reference":"Patient/9434765919"},
                "subject":{"reference":"Patient/9434765918"}"#,
            ),
            "Encounter.subject",
        ),
        // A bundle's own member, an entry's member and an entry's resource's.
        (
            r#"{"resourceType":"Bundle","type":"collection","type":"document","entry":[]}"#
                .to_owned(),
            "Bundle.type",
        ),
        (
            document_with_patient_full_url(
                r#""urn:uuid:p1","resource":{"resourceType":"Patient"}"#,
            ),
            "Bundle.entry[1].resource",
        ),
        (
            document_with_patient_full_url(r#""urn:uuid:p1""#).replace(
                r#""status":"final","#,
                r#""status":"preliminary","status":"final","#,
            ),
            "Bundle.entry[0].resource.status",
        ),
        // A contained resource's member.
        (
            encounter(
                r#""status":"finished","contained":[{"resourceType":"Patient","id":"p",
                "gender":"male","gender":"female"}]"#,
            ),
            "Encounter.contained[0].gender",
        ),
    ];
    for (text, location) in &cases {
        let e = normalise_json(text.as_bytes(), &cfg).unwrap_err();
        assert_eq!(e.reason_code(), "invalid_resource", "{text}: {e}");
        assert_eq!(e.location().as_deref(), Some(*location), "{text}");
        let shown = e.to_string();
        assert!(shown.contains("more than once"), "{shown}");
        for value in ["9434765919", "9434765918", "finished", "female", "document"] {
            assert!(!shown.contains(value), "{shown}");
        }
    }
    // A member not shaped like an element's name may be a patient's name:
    // not shown, here or in the location.
    let e = normalise_json(
        encounter(r#""status":"finished","PRIVAZOOK":1,"PRIVAZOOK":2"#).as_bytes(),
        &cfg,
    )
    .unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
    assert_eq!(e.location().as_deref(), Some("Encounter"));
    assert!(!e.to_string().contains("PRIVAZOOK"), "{e}");
    // The same resource without repeats is read.
    let ok = normalise_json(encounter(r#""status":"finished""#).as_bytes(), &cfg).unwrap();
    assert_eq!(ok.len(), 1);
}

/// NDJSON whose lines end in CR alone reaches the reader as one line of
/// several values: refused as malformed JSON, as before, and now told why
/// (the bare "trailing characters" did not point at line endings).
#[test]
fn resources_separated_by_carriage_returns_alone_say_so() {
    let one = r#"{"resourceType":"Observation","id":"a","status":"final","code":{"text":"x"}}"#;
    let err = tocsin_fhir::normalise_json(
        format!("{one}\r{one}\r").as_bytes(),
        &tocsin_fhir::FhirConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason_code(), "malformed_json");
    assert!(err.to_string().contains("carriage returns alone"), "{err}");
    // Another syntax error says nothing of line endings.
    let err =
        tocsin_fhir::normalise_json(b"{\"resourceType\":}", &tocsin_fhir::FhirConfig::default())
            .unwrap_err();
    assert!(!err.to_string().contains("carriage"), "{err}");
}
