//! FHIR XML over the broker (issue 9): the live gateway (`tocsin run`, the
//! real binary, real broker and store) reads `application/fhir+xml`
//! messages, and XML sent without a content type, as it reads FHIR JSON: a
//! discharge summary sent as XML settles the HL7 discharge it names, an
//! emergency encounter sent as XML goes overdue like any other; XML with a
//! DTD is dead-lettered intact with its reason, never expanded.

mod common;

use common::{HL7, Tuning, World, fixture, input};

/// The FHIR XML content type.
const FHIR_XML: &str = "application/fhir+xml";

/// A DTD declaring an external entity: refused at the DTD.
const EXTERNAL_ENTITY: &[u8] = br#"<?xml version="1.0"?>
<!DOCTYPE Encounter [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Encounter xmlns="http://hl7.org/fhir"><id value="&secret;"/></Encounter>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_xml_over_the_broker_settles_and_raises_like_json() {
    let world = World::sqlite("fhir-xml", Tuning::default()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;

    world
        .publish(&[
            input(
                "in-a03",
                Some(HL7),
                fixture("cross-format/adt-a03-V123456.hl7"),
            ),
            input(
                "in-bundle-xml",
                Some(FHIR_XML),
                fixture("fhir/xml/twins/cross-format/discharge-summary-bundle-V123456.xml"),
            ),
            input(
                "in-encounter-xml-untyped",
                None,
                fixture("fhir/xml/examples/encounter-ukcore-emergency.xml"),
            ),
            input("in-dtd", Some("application/xml"), EXTERNAL_ENTITY.to_vec()),
        ])
        .await;

    events.until("three events", |s| s.len() >= 3).await;
    dead.until("the DTD dead-lettered", |s| !s.is_empty()).await;
    alerts.until("the overdue alert", |s| !s.is_empty()).await;
    world.wait_empty("tocsin.inbound").await;

    let mut keys: Vec<String> = events.seen.iter().map(|s| s.routing_key.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "fhir-r4.document_issued",
            "fhir-r4.encounter_ended",
            "hl7v2.encounter_ended"
        ]
    );
    // The XML document names the HL7 discharge's visit: the two meet.
    let encounter_of = |key: &str| {
        let e = events.seen.iter().find(|s| s.routing_key == key).unwrap();
        e.json()["encounter"]["id"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        encounter_of("fhir-r4.document_issued"),
        encounter_of("hl7v2.encounter_ended")
    );

    // Only the emergency encounter, whose summary never came, goes overdue:
    // the discharge documented in XML raised nothing.
    alerts.take().await;
    assert_eq!(alerts.seen.len(), 1, "{:?}", alerts.seen);
    let alert = alerts.seen[0].json();
    assert_eq!(alert["kind"], "overdue");
    assert_eq!(alert["encounter"]["id"], "ED240301-0457", "{alert}");
    assert_eq!(alert["encounter"]["kind"], "emergency", "{alert}");

    // The DTD: dead-lettered byte for byte, with the XML reason.
    dead.take().await;
    assert_eq!(dead.seen.len(), 1);
    let got = &dead.seen[0];
    assert_eq!(got.message_id, "in-dtd");
    assert_eq!(got.body, EXTERNAL_ENTITY);
    let error = &got.headers["x-tocsin-error"];
    assert!(error.starts_with("xml_dtd_refused:"), "{error}");
    assert_eq!(
        world.store.count("inputs WHERE outcome = 'rejected'").await,
        1
    );
    assert_eq!(
        world
            .store
            .count("inputs WHERE outcome = 'rejected' AND id LIKE 'amqp:in-dtd#%'")
            .await,
        1
    );
    assert_eq!(world.store.count("inputs WHERE outcome = 'ok'").await, 3);
    drop(gateway);
}
