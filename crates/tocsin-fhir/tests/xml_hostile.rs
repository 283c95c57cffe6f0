//! Hostile and broken FHIR XML is refused with its own reason, quickly and
//! without expanding anything: DTDs (external entities, billion laughs),
//! undeclared entities, deep nesting and oversized input, per configuration.

mod common;

use common::load;
use tocsin_fhir::{FhirConfig, XmlError, normalise_xml};

fn refuse(xml: &[u8], cfg: &FhirConfig) -> XmlError {
    match normalise_xml(xml, cfg) {
        Ok(ev) => panic!("should be refused, got {ev:#?}"),
        Err(e) => e,
    }
}

#[test]
fn an_external_entity_is_refused_at_its_dtd_and_never_read() {
    let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Encounter [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<Encounter xmlns="http://hl7.org/fhir"><status value="&xxe;"/></Encounter>"#;
    let e = refuse(xml, &FhirConfig::default());
    assert_eq!(e.reason_code(), "xml_dtd_refused");
    assert_eq!(e.location().as_deref(), Some("2:1"));
    assert!(!e.to_string().contains("root:"), "{e}");
    // Without its DTD the reference is refused too, not resolved.
    let bare = br#"<Encounter xmlns="http://hl7.org/fhir"><status value="&xxe;"/></Encounter>"#;
    let e = refuse(bare, &FhirConfig::default());
    assert_eq!(e.reason_code(), "xml_entity_refused");
    assert!(
        matches!(e, XmlError::EntityRefused { line: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn billion_laughs_is_refused_without_expansion() {
    let mut xml =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        xml.push_str(&format!(
            " <!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    xml.push_str(
        "]>\n<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"&lol9;\"/></Encounter>",
    );
    let e = refuse(xml.as_bytes(), &FhirConfig::default());
    assert_eq!(e.reason_code(), "xml_dtd_refused");
    // The same reference in narrative text, without the DTD.
    let div = br#"<Encounter xmlns="http://hl7.org/fhir"><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">&lol9;</div></text></Encounter>"#;
    assert_eq!(
        refuse(div, &FhirConfig::default()).reason_code(),
        "xml_entity_refused"
    );
}

#[test]
fn deep_nesting_is_refused_at_the_configured_depth() {
    let mut xml = String::from(r#"<Encounter xmlns="http://hl7.org/fhir">"#);
    xml.push_str(&"<extension url=\"x\">".repeat(100_000));
    let e = refuse(xml.as_bytes(), &FhirConfig::default());
    assert_eq!(e.reason_code(), "xml_too_deep");
    assert!(matches!(e, XmlError::TooDeep { limit: 100, .. }), "{e:?}");
    // Deep narrative markup counts as well.
    let mut div = String::from(
        r#"<Encounter xmlns="http://hl7.org/fhir"><text><div xmlns="http://www.w3.org/1999/xhtml">"#,
    );
    div.push_str(&"<span>".repeat(500));
    assert_eq!(
        refuse(div.as_bytes(), &FhirConfig::default()).reason_code(),
        "xml_too_deep"
    );
    // The limit comes from configuration: a real encounter nests 5 deep
    // (Encounter.location.location.identifier.system).
    let real = load("xml/twins/r4/encounter-finished-inpatient.xml");
    assert!(normalise_xml(&real, &FhirConfig::default()).is_ok());
    let shallow = FhirConfig {
        xml_max_depth: 4,
        ..FhirConfig::default()
    };
    let e = refuse(&real, &shallow);
    assert!(matches!(e, XmlError::TooDeep { limit: 4, .. }), "{e:?}");
    let five = FhirConfig {
        xml_max_depth: 5,
        ..FhirConfig::default()
    };
    assert!(normalise_xml(&real, &five).is_ok());
}

#[test]
fn oversized_xml_is_refused_before_it_is_read() {
    let real = load("xml/twins/r4/encounter-finished-inpatient.xml");
    let cfg = FhirConfig {
        xml_max_bytes: 1000,
        ..FhirConfig::default()
    };
    let e = refuse(&real, &cfg);
    assert_eq!(e.reason_code(), "oversized");
    assert_eq!(
        e,
        XmlError::Oversized {
            size: real.len(),
            limit: 1000
        }
    );
    // Not even well-formedness is looked at.
    let mut junk = vec![b'<'; 2000];
    junk[0] = b'<';
    assert_eq!(refuse(&junk, &cfg).reason_code(), "oversized");
}

#[test]
fn malformed_and_non_fhir_xml_say_why_and_where() {
    let cfg = FhirConfig::default();
    let cases: [(&[u8], &str, &str); 7] = [
        (
            b"<Encounter xmlns=\"http://hl7.org/fhir\">\n  <status value=\"finished\">\n</Encounter>",
            "malformed_xml",
            "expected `</status>`",
        ),
        (
            b"<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"finished\"/>",
            "malformed_xml",
            "ends inside",
        ),
        (
            b"<Encounter><status value=\"finished\"/></Encounter>",
            "not_fhir",
            "FHIR namespace",
        ),
        (
            b"<Encounter xmlns=\"http://hl7.org/fhir\">finished</Encounter>",
            "not_fhir",
            "text outside",
        ),
        (
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Encounter xmlns=\"http://hl7.org/fhir\"/>",
            "not_fhir",
            "UTF-8",
        ),
        (
            b"<Bundle xmlns=\"http://hl7.org/fhir\"><entry><resource><Patient/><Patient/></resource></entry></Bundle>",
            "not_fhir",
            "more than one resource",
        ),
        (
            b"<Encounter xmlns=\"http://hl7.org/fhir\"/><Encounter xmlns=\"http://hl7.org/fhir\"/>",
            "malformed_xml",
            "after the root",
        ),
    ];
    for (xml, code, says) in cases {
        let e = refuse(xml, &cfg);
        assert_eq!(e.reason_code(), code, "{e}");
        let text = format!("{} {}", e, e.location().unwrap_or_default());
        assert!(text.contains(says), "{text}");
    }
}
