//! Format detection, splitting and dispatch, on the project's fixtures.

use std::path::PathBuf;

use tocsin_event::{EventType, Format};
use tocsin_ingest::{ContentHint, IngestConfig, IngestError, Position, detect, ingest};

fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn only_events(bytes: &[u8], hint: Option<ContentHint>) -> Vec<tocsin_event::InterfaceEvent> {
    ingest(bytes, hint, &IngestConfig::default())
        .into_iter()
        .flat_map(|u| u.outcome.unwrap_or_else(|e| panic!("{}: {e}", u.position)))
        .collect()
}

#[test]
fn an_hl7_discharge_and_a_fhir_document_for_the_same_visit_share_the_encounter_id() {
    let hl7 = only_events(&fixture("cross-format/adt-a03-V123456.hl7"), None);
    let fhir = only_events(
        &fixture("fhir/cross-format/discharge-summary-bundle-V123456.json"),
        None,
    );
    assert_eq!(hl7.len(), 1);
    assert_eq!(fhir.len(), 1);
    assert_eq!(hl7[0].event_type, EventType::EncounterEnded);
    assert_eq!(hl7[0].source.format, Format::Hl7v2);
    assert_eq!(fhir[0].event_type, EventType::DocumentIssued);
    assert_eq!(fhir[0].source.format, Format::FhirR4);
    let hl7_id = hl7[0].encounter.as_ref().and_then(|e| e.id.clone());
    let fhir_id = fhir[0].encounter.as_ref().and_then(|e| e.id.clone());
    assert_eq!(hl7_id.as_deref(), Some("V123456"));
    assert_eq!(hl7_id, fhir_id);
    assert_eq!(hl7[0].patient.nhs_number, fhir[0].patient.nhs_number);
}

#[test]
fn content_decides_the_format_whatever_the_file_is_called() {
    assert_eq!(
        detect(&fixture("hl7/adt_a03_discharge.hl7")).unwrap(),
        ContentHint::Hl7
    );
    assert_eq!(
        detect(&fixture("hl7/framing_mllp.hl7")).unwrap(),
        ContentHint::Hl7
    );
    assert_eq!(
        detect(&fixture("hl7/framing_batch_fhs_bhs.hl7")).unwrap(),
        ContentHint::Hl7
    );
    assert_eq!(
        detect(&fixture("fhir/r4/encounter-finished-inpatient.json")).unwrap(),
        ContentHint::FhirJson
    );
    assert_eq!(
        detect(&fixture("fhir/ndjson/mixed-resources.ndjson")).unwrap(),
        ContentHint::Ndjson
    );
    assert_eq!(
        detect(b"\xEF\xBB\xBF  {\"resourceType\":\"Patient\"}").unwrap(),
        ContentHint::FhirJson
    );
    assert_eq!(
        detect(b"<Encounter xmlns=\"http://hl7.org/fhir\"/>").unwrap(),
        ContentHint::FhirXml
    );
    assert!(matches!(detect(b"   \n"), Err(IngestError::Empty)));
    assert!(matches!(
        detect(b"\x00\x01binary"),
        Err(IngestError::Unrecognised { looks_like: None })
    ));
    // What an archive holds instead of text is named, with what to do.
    for (bytes, says) in [
        (
            &b"\x1f\x8b\x08\x00\x00\x00\x00\x00"[..],
            "gzip-compressed: decompress it first",
        ),
        (b"PK\x03\x04\x14\x00", "a zip archive"),
        (b"\xFF\xFEM\x00S\x00H\x00", "UTF-16 text"),
        (b"M\x00S\x00H\x00|\x00^\x00", "UTF-16 text"),
        (b"\x00{\x00\"\x00r\x00e", "UTF-16 text"),
        (b"[{\"resourceType\":\"Patient\"}]", "a JSON array"),
    ] {
        let e = detect(bytes).unwrap_err();
        assert_eq!(e.reason_code(), "unrecognised_format");
        assert!(e.to_string().contains(says), "{e}");
    }
    // A tar archive (a .tar.gz arrives decompressed) says so.
    let mut tar = vec![0u8; 512];
    tar[..10].copy_from_slice(b"01-a03.hl7");
    tar[257..263].copy_from_slice(b"ustar\0");
    let e = detect(&tar).unwrap_err();
    assert!(
        e.to_string().contains("a tar archive: unpack it first"),
        "{e}"
    );
    // NDJSON whose first line is cut short is still NDJSON: its other
    // lines are read.
    let cut = b"{\"resourceType\":\"Enc\n{\"resourceType\":\"Patient\",\"id\":\"p\"}\n";
    assert_eq!(detect(cut).unwrap(), ContentHint::Ndjson);
    // A Bundle whose one entry sits on a line of its own is one document.
    let laid_out = b"{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[\n{\"resource\":{\"resourceType\":\"Patient\"}}\n]}\n";
    assert_eq!(detect(laid_out).unwrap(), ContentHint::FhirJson);
    // A pretty-printed resource is one document.
    let pretty = b"{\n  \"resourceType\": \"Patient\",\n  \"id\": \"p\"\n}\n";
    assert_eq!(detect(pretty).unwrap(), ContentHint::FhirJson);
}

#[test]
fn ndjson_gives_one_unit_per_line_with_line_numbers() {
    let bytes = fixture("fhir/ndjson/mixed-resources.ndjson");
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .count();
    let units = ingest(&bytes, None, &IngestConfig::default());
    assert_eq!(units.len(), lines);
    assert_eq!(units[0].position, Position::Line(1));
}

#[test]
fn a_bad_line_in_ndjson_is_reported_and_the_rest_still_normalise() {
    let good = std::str::from_utf8(&fixture("fhir/r4/encounter-finished-inpatient.json"))
        .unwrap()
        .replace('\n', "");
    let input = format!("{good}\n{{not json\n{good}\n");
    let units = ingest(
        input.as_bytes(),
        Some(ContentHint::Ndjson),
        &IngestConfig::default(),
    );
    assert_eq!(units.len(), 3);
    assert!(units[0].outcome.is_ok());
    let err = units[1].outcome.as_ref().unwrap_err();
    assert_eq!(units[1].position, Position::Line(2));
    assert_eq!(err.reason_code(), "malformed_json");
    assert!(units[2].outcome.is_ok());
}

#[test]
fn several_hl7_messages_keep_their_order_and_positions() {
    let units = ingest(
        &fixture("hl7/framing_several_messages.hl7"),
        None,
        &IngestConfig::default(),
    );
    assert!(units.len() > 1);
    for (i, u) in units.iter().enumerate() {
        match u.position {
            Position::Message { index, .. } => assert_eq!(index, i + 1),
            other => panic!("unexpected position {other:?}"),
        }
        assert!(u.outcome.is_ok(), "{}", u.position);
    }
}

#[test]
fn fhir_xml_is_read_by_content_or_hint_and_gives_the_events_of_its_json_form() {
    let json = only_events(
        &fixture("fhir/cross-format/discharge-summary-bundle-V123456.json"),
        None,
    );
    let xml_bytes = fixture("fhir/xml/twins/cross-format/discharge-summary-bundle-V123456.xml");
    for hint in [None, Some(ContentHint::FhirXml)] {
        let xml = only_events(&xml_bytes, hint);
        assert_eq!(xml.len(), 1);
        assert_eq!(xml[0].event_type, EventType::DocumentIssued);
        assert_eq!(xml[0].source.format, Format::FhirR4);
        assert_eq!(xml[0].encounter, json[0].encounter);
        assert_eq!(xml[0].document, json[0].document);
        assert_eq!(xml[0].patient, json[0].patient);
        assert_eq!(xml[0].occurred_at, json[0].occurred_at);
        assert_ne!(xml[0].event_id, json[0].event_id, "ids identify the bytes");
    }
}

#[test]
fn fhir_xml_is_judged_like_json_and_hostile_xml_is_refused_with_its_reason() {
    let cfg = IngestConfig::default();
    // Read, then refused for what the resource lacks, as its JSON form would be.
    let units = ingest(&fixture("fhir/rejected/encounter.xml"), None, &cfg);
    let err = units[0].outcome.as_ref().unwrap_err();
    assert!(matches!(err, IngestError::FhirXml(_)), "{err:?}");
    let json = ingest(
        br#"{"resourceType": "Encounter", "status": "finished"}"#,
        None,
        &cfg,
    );
    let json_err = json[0].outcome.as_ref().unwrap_err();
    assert_eq!(err.reason_code(), "invalid_resource");
    assert_eq!(err.reason_code(), json_err.reason_code());
    assert_eq!(err.location().as_deref(), Some("Encounter"));
    assert_eq!(err.location(), json_err.location());
    let dtd = b"<?xml version=\"1.0\"?>\n<!DOCTYPE Encounter [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<Encounter xmlns=\"http://hl7.org/fhir\"><status value=\"&x;\"/></Encounter>";
    let units = ingest(dtd, None, &cfg);
    let err = units[0].outcome.as_ref().unwrap_err();
    assert_eq!(err.reason_code(), "xml_dtd_refused");
    assert_eq!(err.location().as_deref(), Some("2:1"));
    assert!(err.to_string().starts_with("FHIR XML: "), "{err}");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let json = fixture("fhir/r4/encounter-finished-inpatient.json");
    let cfg = IngestConfig {
        max_input_bytes: json.len() - 1,
        ..IngestConfig::default()
    };
    let units = ingest(&json, None, &cfg);
    assert_eq!(units.len(), 1);
    assert_eq!(
        units[0].outcome.as_ref().unwrap_err().reason_code(),
        "oversized"
    );
}

#[test]
fn a_batch_or_bulk_export_over_the_limit_is_read_unit_by_unit() {
    // An NDJSON export larger than the limit: each line within it is read,
    // a line over it is refused alone.
    let line = String::from_utf8(fixture("fhir/r4/encounter-finished-inpatient.json"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let long = format!(
        "{{\"resourceType\":\"Basic\",\"id\":\"{}\"}}",
        "x".repeat(line.len())
    );
    let export = format!("{line}\n{long}\n{line}\n");
    let cfg = IngestConfig {
        max_input_bytes: line.len() + 1,
        ..IngestConfig::default()
    };
    let units = ingest(export.as_bytes(), None, &cfg);
    let outcomes: Vec<_> = units
        .iter()
        .map(|u| {
            (
                u.position,
                u.outcome.as_ref().map_err(|e| e.reason_code()).is_ok(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (Position::Line(1), true),
            (Position::Line(2), false),
            (Position::Line(3), true)
        ]
    );
    assert_eq!(
        units[1].outcome.as_ref().unwrap_err().reason_code(),
        "oversized"
    );
    // An HL7 batch larger than the limit: every message is read (each has
    // its own `[hl7] max_message_bytes`).
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    let batch = [&a03[..], b"\r", &a03[..]].concat();
    let cfg = IngestConfig {
        max_input_bytes: a03.len(),
        ..IngestConfig::default()
    };
    let units = ingest(&batch, None, &cfg);
    assert_eq!(units.len(), 2);
    assert!(units.iter().all(|u| u.outcome.is_ok()), "{units:?}");
}

#[test]
fn checked_in_mappings_file_loads() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/mappings.toml"),
    )
    .unwrap();
    let cfg = IngestConfig::from_mappings_toml(&text, 1024).unwrap();
    assert_eq!(cfg.max_input_bytes, 1024);
    let bad = text.replace("I = \"inpatient\"", "I = \"in-patient\"");
    let err = IngestConfig::from_mappings_toml(&bad, 1024)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line"), "{err}");
}

/// What an archive's HL7 files really hold before their first message (a
/// header line, an end block left over from the file before, a frame start
/// on a line of its own) is a rejected unit of its own, and the messages
/// after it are read: the whole file was refused, every message with it.
#[test]
fn text_before_the_first_hl7_message_does_not_hide_the_messages() {
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    let framed = |prefix: &[u8]| [prefix, &a03, b"\x1c\r"].concat();
    for (input, junk_units) in [
        (
            [&b"archived by engine 2024-01-15\r\n"[..], &a03].concat(),
            1,
        ),
        (framed(b"\x1c\r\x0b"), 1),
        (framed(b"\x0b\r\n"), 0),
    ] {
        assert_eq!(detect(&input).unwrap(), ContentHint::Hl7);
        let units = ingest(&input, None, &IngestConfig::default());
        let rejected = units.iter().filter(|u| u.outcome.is_err()).count();
        let events: usize = units
            .iter()
            .filter_map(|u| u.outcome.as_ref().ok())
            .map(Vec::len)
            .sum();
        assert_eq!(
            (rejected, events),
            (junk_units, 1),
            "{:?}",
            String::from_utf8_lossy(&input[..12])
        );
    }
    // Text with no message start anywhere is still no format at all.
    assert!(matches!(
        detect(b"hello\r\nworld\r\n"),
        Err(IngestError::Unrecognised { looks_like: None })
    ));
}

/// An MLLP frame whose payload opens with a byte-order mark, and files each
/// written with one put end to end (`cat`): HL7, every message read. The
/// frame made the whole input "not a recognised format"; the files were
/// read as one message, refused, the second never mentioned.
#[test]
fn byte_order_marks_before_hl7_messages_hide_none_of_them() {
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    let bom = &b"\xEF\xBB\xBF"[..];
    for (input, messages) in [
        ([&b"\x0b"[..], bom, &a03, b"\x1c\r"].concat(), 1),
        ([bom, &a03, bom, &a03].concat(), 2),
        ([&a03[..], b"\r\n  ", &a03].concat(), 2),
    ] {
        assert_eq!(detect(&input).unwrap(), ContentHint::Hl7);
        let units = ingest(&input, None, &IngestConfig::default());
        assert_eq!(
            units.len(),
            messages,
            "{:?}",
            String::from_utf8_lossy(&input[..8])
        );
        for u in &units {
            assert_eq!(
                u.outcome.as_ref().map(Vec::len).ok(),
                Some(1),
                "{:?}",
                u.position
            );
        }
    }
}

/// NDJSON whose first lines are damaged, whose lines are indented, or
/// where `cat` of files written with byte-order marks left one at a line's
/// start: each good line is read, each bad one reported by its number.
#[test]
fn damaged_ndjson_is_still_read_line_by_line() {
    let good = std::str::from_utf8(&fixture("fhir/r4/encounter-finished-inpatient.json"))
        .unwrap()
        .replace('\n', "");
    for (input, bad) in [
        (
            format!("{{\"cut\n{{\"also cut\n{good}\n{good}\n{good}\n"),
            vec![1, 2],
        ),
        (format!("{{\"cut\n  {good}\n"), vec![1]),
        (format!("{{\"cut\n\u{feff}{good}\n"), vec![1]),
    ] {
        assert_eq!(
            detect(input.as_bytes()).unwrap(),
            ContentHint::Ndjson,
            "{input:.30}"
        );
        let units = ingest(input.as_bytes(), None, &IngestConfig::default());
        let refused: Vec<Position> = units
            .iter()
            .filter(|u| u.outcome.is_err())
            .map(|u| u.position)
            .collect();
        assert_eq!(
            refused,
            bad.into_iter().map(Position::Line).collect::<Vec<_>>()
        );
        assert!(units.iter().any(|u| u.outcome.is_ok()));
    }
}

/// A file name's hint does not stop an archive, UTF-16 text or an empty
/// file being named for what it is, once: a gzip file named `.ndjson` was
/// refused line by line as malformed JSON, an empty `.xml` as not FHIR.
#[test]
fn a_hint_does_not_hide_what_the_content_is() {
    let gzip = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\n\n\n\n";
    for hint in [ContentHint::Ndjson, ContentHint::Hl7, ContentHint::FhirXml] {
        let units = ingest(gzip, Some(hint), &IngestConfig::default());
        assert_eq!(units.len(), 1, "{hint:?}");
        let e = units[0].outcome.as_ref().unwrap_err();
        assert!(e.to_string().contains("gzip-compressed"), "{e}");
        for empty in [&b""[..], b" \n\t", b"\xEF\xBB\xBF\n"] {
            let units = ingest(empty, Some(hint), &IngestConfig::default());
            assert_eq!(units.len(), 1);
            assert!(
                matches!(units[0].outcome, Err(IngestError::Empty)),
                "{hint:?}"
            );
        }
    }
}

/// An MLLP frame the input ends inside (a file rotated mid-frame) is
/// refused, not read as a message that lost its end; a stray 0x0B inside an
/// unframed message refuses that message whole, instead of cutting it
/// short and accepting the rest.
#[test]
fn a_frame_without_its_end_and_a_stray_start_byte_are_refused() {
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    // Cut inside PV1, before its discharge time (PV1-45).
    let cut = a03.windows(9).position(|w| w == b"|||||2024").unwrap();
    let truncated = [&b"\x0b"[..], &a03[..cut]].concat();
    let units = ingest(&truncated, None, &IngestConfig::default());
    assert_eq!(units.len(), 1);
    let e = units[0].outcome.as_ref().unwrap_err();
    assert_eq!(e.reason_code(), "unterminated_frame", "{e}");
    // A complete frame before it is read.
    let two = [&b"\x0b"[..], &a03, b"\x1c\r", &truncated].concat();
    let units = ingest(&two, None, &IngestConfig::default());
    assert_eq!(units.len(), 2);
    assert!(units[0].outcome.is_ok());
    assert_eq!(
        units[1].outcome.as_ref().unwrap_err().reason_code(),
        "unterminated_frame"
    );

    let text = String::from_utf8(a03.clone()).unwrap();
    let stray = text.replace("DG1|1|", "NTE|1||see\u{b}note\rDG1|1|");
    assert_ne!(stray, text);
    let units = ingest(stray.as_bytes(), None, &IngestConfig::default());
    assert_eq!(units.len(), 1, "one message, not cut in two");
    assert_eq!(
        units[0].outcome.as_ref().unwrap_err().reason_code(),
        "binary"
    );
}

/// Two discharges whose writer left out the terminator between them (the
/// first's last segment runs into the second's `MSH`): both are read, the
/// second with a warning. Read as one, the second's segments repeated the
/// first's, and the second patient's discharge was lost with no word.
#[test]
fn two_messages_run_together_are_both_read() {
    let one = String::from_utf8(fixture("hl7/adt_a03_discharge.hl7")).unwrap();
    let one = one.trim_end_matches(['\r', '\n']);
    let two = one
        .replace("MSG-A03", "MSG-A03-2")
        .replace("V0001234", "V0009999");
    let glued = format!("{one}\rZUK|X{two}\r");
    let events = only_events(glued.as_bytes(), None);
    let visits: Vec<_> = events
        .iter()
        .map(|e| e.encounter.as_ref().and_then(|c| c.id.as_deref()))
        .collect();
    assert_eq!(visits, [Some("V0001234"), Some("V0009999")]);
    assert!(events[0].warnings.is_empty(), "{:?}", events[0].warnings);
    assert_eq!(events[1].warnings.len(), 1, "{:?}", events[1].warnings);
    assert!(events[1].warnings[0].message.contains("terminator"));
}
