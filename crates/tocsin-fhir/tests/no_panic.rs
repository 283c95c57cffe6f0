//! Whatever the input, normalisation returns events or a typed error.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};
use tocsin_fhir::{FhirConfig, normalise_json};

const FIXTURES: &[&str] = &[
    "r4/bundle-document-discharge-summary.json",
    "r4/bundle-message-itk003d.json",
    "r4/bundle-transaction.json",
    "r4/documentreference-replaces.json",
    "r4/encounter-finished-inpatient.json",
    "stu3/itk3-edischarge-ITK003D.json",
    "stu3/itk3-response-ok-ITK008M.json",
];

/// Arbitrary JSON whose objects often look like FHIR.
fn fhirish() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9:/#.-]{0,12}".prop_map(Value::from),
        Just(Value::from("2024-01-01T10:00")),
        Just(Value::from("urn:uuid:1")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let key = prop_oneof![
            Just("resourceType".to_owned()),
            Just("type".to_owned()),
            Just("entry".to_owned()),
            Just("resource".to_owned()),
            Just("fullUrl".to_owned()),
            Just("status".to_owned()),
            Just("class".to_owned()),
            Just("subject".to_owned()),
            Just("reference".to_owned()),
            Just("focus".to_owned()),
            Just("event".to_owned()),
            Just("contained".to_owned()),
            "[a-z]{1,8}",
        ];
        let rtype = prop_oneof![
            Just("Bundle"),
            Just("Encounter"),
            Just("DocumentReference"),
            Just("Composition"),
            Just("MessageHeader"),
            Just("Patient"),
            Just("Organization"),
            Just("Observation"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            (prop::collection::btree_map(key, inner, 0..6), rtype).prop_map(|(m, t)| {
                let mut o: serde_json::Map<String, Value> = m.into_iter().collect();
                o.entry("resourceType").or_insert_with(|| json!(t));
                Value::Object(o)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = normalise_json(&bytes, &FhirConfig::default());
    }

    #[test]
    fn arbitrary_fhirish_json(v in fhirish()) {
        let _ = normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default());
    }

    #[test]
    fn mutated_fixtures(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = common::load(FIXTURES[which]);
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = normalise_json(&bytes, &FhirConfig::default());
    }

    #[test]
    fn fixtures_with_values_swapped_for_fhirish_json(which in 0..FIXTURES.len(), v in fhirish(), path in 0usize..6) {
        let mut doc: Value = serde_json::from_slice(&common::load(FIXTURES[which])).unwrap();
        let targets = ["/entry/0/resource", "/entry/1/resource", "/entry/0/resource/subject",
            "/period", "/entry/3/resource/entry/0/resource", "/entry/0/resource/focus"];
        if let Some(slot) = doc.pointer_mut(targets[path]) {
            *slot = v;
        }
        let _ = normalise_json(&serde_json::to_vec(&doc).unwrap(), &FhirConfig::default());
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = normalise_json(deep.as_bytes(), &FhirConfig::default()).unwrap_err();
    assert_eq!(e.reason_code(), "malformed_json");
    // Bundles nested in bundles beyond the limit.
    let mut v = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
    for _ in 0..10 {
        v = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": v}]});
    }
    let e = normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default()).unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
}

/// A bundle of more entries than are read in one (100,000) is refused
/// with the count and what to do, before its entries are modelled: an 8 MB
/// bundle of 2.7 million empty entries, under the size limit, took 6.6 GB.
/// One at the limit is read.
#[test]
fn a_bundle_of_too_many_entries_is_refused_before_it_is_read() {
    let bundle = |n: usize| {
        format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
            vec!["{}"; n].join(",")
        )
    };
    let e = normalise_json(bundle(100_001).as_bytes(), &FhirConfig::default()).unwrap_err();
    assert_eq!(e.reason_code(), "invalid_resource");
    assert!(e.to_string().contains("100001 entries"), "{e}");
    let events = normalise_json(bundle(100_000).as_bytes(), &FhirConfig::default()).unwrap();
    assert_eq!(events.len(), 1);
}
