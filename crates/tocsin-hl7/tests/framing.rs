//! Framings, line endings, separators, escapes and encodings.

mod common;

use common::{load, ok, utc};
use tocsin_event::EventType;
use tocsin_hl7::{Hl7Config, normalise_message, split_messages};

fn all(name: &str) -> Vec<(usize, tocsin_event::InterfaceEvent)> {
    let bytes = load(name);
    split_messages(&bytes)
        .into_iter()
        .map(|m| {
            let ev = normalise_message(m.bytes, &Hl7Config::default())
                .unwrap_or_else(|e| panic!("{name}@{}: {e}", m.offset));
            (m.offset, ev)
        })
        .collect()
}

fn ids(events: &[(usize, tocsin_event::InterfaceEvent)]) -> Vec<&str> {
    events
        .iter()
        .map(|(_, e)| e.source.message_id.as_str())
        .collect()
}

#[test]
fn mllp_frames() {
    let evs = all("framing_mllp.hl7");
    assert_eq!(ids(&evs), ["MSG-A01", "MSG-A03"]);
    assert_eq!(evs[0].0, 1, "offset after the 0x0B start byte");
    // Framing does not change the event: same id as the unframed A03.
    assert_eq!(evs[1].1.event_id, ok("adt_a03_discharge.hl7").event_id);
}

#[test]
fn batch_envelope_dropped() {
    let evs = all("framing_batch_fhs_bhs.hl7");
    assert_eq!(ids(&evs), ["MSG-A01", "MSG-A03"]);
    assert_eq!(evs[1].1.event_type, EventType::EncounterEnded);
}

#[test]
fn several_messages_in_order() {
    let evs = all("framing_several_messages.hl7");
    assert_eq!(ids(&evs), ["MSG-A01", "MSG-A03", "MSG-A08"]);
    assert!(evs.windows(2).all(|w| w[0].0 < w[1].0));
}

/// `cat` of files each written with a byte-order mark, and a message
/// indented after them: each message read on its own. They were one
/// message, refused as "segment 5 (?MS) cannot be parsed".
#[test]
fn byte_order_marks_and_indentation_before_msh_start_messages() {
    let evs = all("framing_cat_files_with_bom.hl7");
    assert_eq!(ids(&evs), ["MSG-A01", "MSG-A03", "MSG-A08"]);
    let bytes = load("framing_cat_files_with_bom.hl7");
    for (offset, _) in &evs {
        assert!(bytes[*offset..].starts_with(b"MSH|"), "offset {offset}");
    }
    // The mark is no part of the message: same event as without it.
    assert_eq!(evs[1].1.event_id, ok("adt_a03_discharge.hl7").event_id);
}

#[test]
fn line_endings_give_the_same_event_content() {
    let cr = ok("adt_a03_discharge.hl7");
    for name in [
        "line_endings_lf.hl7",
        "line_endings_crlf.hl7",
        "blank_lines_between_segments.hl7",
    ] {
        let ev = ok(name);
        assert_eq!(ev.encounter, cr.encounter, "{name}");
        assert_eq!(ev.patient, cr.patient, "{name}");
        assert_eq!(ev.source, cr.source, "{name}");
        assert_eq!(ev.occurred_at, cr.occurred_at, "{name}");
        assert_eq!(ev.gp_practice, cr.gp_practice, "{name}");
    }
}

/// LF-ended messages with segments that are only their name: they were
/// glued onto the segment before, so the first was refused as "HL7
/// version not supported" (MSH-12 `2.4\nEVN`) and the second took its
/// discharge time from EVN-6 (PV1-45 `...\nZU1` unreadable), silently.
#[test]
fn bare_segment_names_in_lf_ended_messages_are_segments() {
    for name in [
        "line_endings_lf_bare_evn.hl7",
        "line_endings_lf_bare_zsegment.hl7",
    ] {
        let ev = ok(name);
        assert_eq!(ev.event_type, EventType::EncounterEnded, "{name}");
        assert_eq!(
            ev.encounter.and_then(|e| e.ended_at),
            Some(utc("2024-01-15T14:00:00Z")),
            "{name}: PV1-45, not EVN-6"
        );
    }
}

#[test]
fn custom_separators_from_msh() {
    let ev = ok("separators_custom.hl7");
    assert_eq!(ev.source.message_type, "ADT^A03");
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.patient.local_ids.len(), 1);
    assert_eq!(ev.patient.local_ids[0].value, "RXX1234567");
    // "$F$" is the escaped field separator "#".
    assert_eq!(ev.encounter.unwrap().id.as_deref(), Some("V#77"));
}

#[test]
fn escape_sequences_are_decoded() {
    let ev = ok("escapes.hl7");
    assert_eq!(ev.source.message_id, "MSG|ESC");
    assert_eq!(ev.patient.local_ids[0].value, "RXX~99");
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("V^12&3\\"));
    assert_eq!(enc.specialty.as_deref(), Some("GEN MED"));
}

#[test]
fn latin1_bytes_are_read() {
    let ev = ok("encoding_latin1.hl7");
    assert_eq!(ev.source.message_id, "MSG-LATIN1");
    assert_eq!(ev.patient.local_ids[0].value, "RXX1234567");
    // MSH-18 empty (ASCII, by HL7's default): the reading is a guess, and
    // said; declared 8859/1 it is what the sender meant, and not warned of;
    // declared UTF-8 (one stray byte), said.
    let latin1 = |w: &tocsin_event::Warning| w.location.as_deref() == Some("MSH-18");
    assert_eq!(
        ev.warnings.iter().filter(|w| latin1(w)).count(),
        1,
        "{:?}",
        ev.warnings
    );
    let bytes = common::load("encoding_latin1.hl7");
    let with = |charset: &str| {
        let text: Vec<u8> = bytes
            .split(|&b| b == b'\r')
            .enumerate()
            .flat_map(|(i, seg)| {
                let mut seg = seg.to_vec();
                if i == 0 {
                    seg.extend_from_slice(format!("|{charset}").as_bytes());
                }
                seg.push(b'\r');
                seg
            })
            .collect();
        tocsin_hl7::normalise_message(&text, &tocsin_hl7::Hl7Config::default()).unwrap()
    };
    let declared = with("8859/1");
    assert!(
        !declared.warnings.iter().any(latin1),
        "{:?}",
        declared.warnings
    );
    let utf8 = with("UNICODE UTF-8");
    let w: Vec<_> = utf8.warnings.iter().filter(|w| latin1(w)).collect();
    assert_eq!(w.len(), 1, "{:?}", utf8.warnings);
    assert_eq!(w[0].raw.as_deref(), Some("UNICODE UTF-8"));
}
