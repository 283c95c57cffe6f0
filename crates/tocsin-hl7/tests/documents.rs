//! MDM, ORU, SIU and ACK fixtures.

mod common;

use common::{ok, utc};
use tocsin_event::{DocumentKind, EncounterKind, EventType, WarningCode};

#[test]
fn mdm_t02_discharge_summary_every_field() {
    let ev = ok("mdm_t02_discharge_summary.hl7");
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    assert_eq!(ev.source.message_type, "MDM^T02");
    assert_eq!(ev.occurred_at, utc("2024-01-16T09:30:00Z"));
    let doc = ev.document.expect("document");
    assert_eq!(doc.id, "DOC-1001");
    assert_eq!(doc.kind, DocumentKind::DischargeSummary);
    assert_eq!(doc.type_code.as_deref(), Some("DS"));
    // MSH-7 of the transmitting message.
    assert_eq!(doc.issued_at, utc("2024-01-16T09:30:00Z"));
    // TXA-6 origination 16:30 (TXA-4 17:00 is only the fallback).
    assert_eq!(doc.authored_at, Some(utc("2024-01-15T16:30:00Z")));
    // MSH-6 B86001 looks like an ODS code.
    assert_eq!(doc.recipient.as_deref(), Some("B86001"));
    assert_eq!(doc.replaces, None);
    // The visit, so the tracker can match by visit number.
    let enc = ev.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("V0001234"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.gp_practice.as_deref(), Some("B86001"));
    assert!(ev.warnings.is_empty());
}

/// HL7 v2.3 MDM may give its trigger only in EVN-1, as ADT may: a summary
/// sent as `MDM` with `EVN|T02` is a document, not `other` (which left its
/// discharge overdue and counted missing).
#[test]
fn a_v23_mdm_takes_its_trigger_from_evn() {
    let text = String::from_utf8(common::load("mdm_t02_discharge_summary.hl7"))
        .unwrap()
        .replace("MDM^T02^MDM_T02", "MDM")
        .replace("|P|2.4|", "|P|2.3|");
    let ev =
        tocsin_hl7::normalise_message(text.as_bytes(), &tocsin_hl7::Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    assert_eq!(ev.source.message_type, "MDM^T02");
    assert_eq!(ev.document.unwrap().kind, DocumentKind::DischargeSummary);
}

/// A document whose TXA-17 completion status is a draft's has not left the
/// trust: its message is `other`, with a warning at TXA-17, and carries the
/// document for whoever reads the events. Authenticated (AU, LA) or empty
/// is final.
#[test]
fn a_draft_completion_status_is_no_transmission() {
    let bytes = common::load("mdm_t02_discharge_summary.hl7");
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains("DOC-1001^RXX|||||AU\r"),
        "the fixture's TXA-17 is AU"
    );
    let with = |status: &str| {
        let edited = text.replace("DOC-1001^RXX|||||AU", &format!("DOC-1001^RXX|||||{status}"));
        tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default()).unwrap()
    };
    for status in ["IP", "DI", "IN", "ip"] {
        let ev = with(status);
        assert_eq!(ev.event_type, EventType::Other, "{status}");
        assert_eq!(ev.document.as_ref().unwrap().id, "DOC-1001");
        assert_eq!(ev.warnings.len(), 1, "{status}");
        let w = &ev.warnings[0];
        assert_eq!(
            (w.code, w.location.as_deref(), w.raw.as_deref()),
            (WarningCode::Other, Some("TXA-17"), Some(status))
        );
    }
    // DO (documented) and PA (pre-authenticated) count as final unless a
    // trust lists them.
    for status in ["AU", "LA", "DO", "PA", ""] {
        let ev = with(status);
        assert_eq!(ev.event_type, EventType::DocumentIssued, "{status:?}");
        assert!(ev.warnings.is_empty(), "{status:?}");
    }
    // Configured otherwise, a trust's own list decides.
    let cfg = tocsin_hl7::Hl7Config {
        draft_statuses: vec![],
        ..Default::default()
    };
    let edited = text.replace("DOC-1001^RXX|||||AU", "DOC-1001^RXX|||||IP");
    let ev = tocsin_hl7::normalise_message(edited.as_bytes(), &cfg).unwrap();
    assert_eq!(ev.event_type, EventType::DocumentIssued);
}

/// A document whose TXA-19 availability status says it is not there for
/// patient care (deleted, obsolete, unavailable) is no transmission, as a
/// draft is not: it settled the discharge on time.
#[test]
fn an_unavailable_document_is_no_transmission() {
    let text = String::from_utf8(common::load("mdm_t02_discharge_summary.hl7")).unwrap();
    let with = |status: &str| {
        let edited = text.replace(
            "DOC-1001^RXX|||||AU\r",
            &format!("DOC-1001^RXX|||||AU||{status}\r"),
        );
        assert_ne!(edited, text);
        tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default()).unwrap()
    };
    for status in ["CA", "OB", "UN", "un"] {
        let ev = with(status);
        assert_eq!(ev.event_type, EventType::Other, "{status}");
        let w: Vec<_> = ev
            .warnings
            .iter()
            .map(|w| (w.location.as_deref(), w.raw.as_deref()))
            .collect();
        assert_eq!(w, [(Some("TXA-19"), Some(status))]);
    }
    for status in ["AV", ""] {
        let ev = with(status);
        assert_eq!(ev.event_type, EventType::DocumentIssued, "{status:?}");
        assert!(ev.warnings.is_empty(), "{status:?}");
    }
}

#[test]
fn mdm_t04_clinic_letter_without_ods_recipient() {
    let ev = ok("mdm_t04_clinic_letter.hl7");
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    let doc = ev.document.unwrap();
    assert_eq!(doc.kind, DocumentKind::ClinicLetter);
    assert_eq!(doc.id, "DOC-2001");
    // MSH-6 "TOCSIN" is an application name, not an ODS code.
    assert_eq!(doc.recipient, None);
}

#[test]
fn replacements_name_their_parent() {
    for (name, id) in [
        ("mdm_t06_addendum.hl7", "DOC-1002"),
        ("mdm_t08_edit.hl7", "DOC-1003"),
        ("mdm_t10_replace.hl7", "DOC-1004"),
    ] {
        let ev = ok(name);
        assert_eq!(ev.event_type, EventType::DocumentReplaced, "{name}");
        let doc = ev.document.unwrap();
        assert_eq!(doc.id, id);
        assert_eq!(doc.replaces.as_deref(), Some("DOC-1001"));
        assert_eq!(doc.kind, DocumentKind::DischargeSummary, "{name}");
    }
    // Document numbers that are GUIDs are read in lowercase, as the FHIR
    // reader writes them: a resend or replacement that writes one in
    // capitals names the same document.
    let text = String::from_utf8(common::load("mdm_t10_replace.hl7")).unwrap();
    let edited = text.replace(
        "|DOC-1004|DOC-1001|",
        "|9A1B0000-0000-4000-8000-00000000ABCD|9A1B0000-0000-4000-8000-00000000ABCE|",
    );
    assert_ne!(edited, text);
    let doc = tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
        .unwrap()
        .document
        .unwrap();
    assert_eq!(doc.id, "9a1b0000-0000-4000-8000-00000000abcd");
    assert_eq!(
        doc.replaces.as_deref(),
        Some("9a1b0000-0000-4000-8000-00000000abce")
    );
}

#[test]
fn t11_cancels_the_document() {
    let ev = ok("mdm_t11_cancel.hl7");
    assert_eq!(ev.event_type, EventType::DocumentCancelled);
    assert_eq!(ev.document.unwrap().id, "DOC-1001");
}

#[test]
fn unmapped_document_type_is_other_with_warning() {
    let ev = ok("mdm_t02_unmapped_type.hl7");
    let doc = ev.document.unwrap();
    assert_eq!(doc.kind, DocumentKind::Other);
    assert_eq!(doc.type_code.as_deref(), Some("XRAY"));
    assert_eq!(ev.warnings.len(), 1);
    assert_eq!(ev.warnings[0].code, WarningCode::UnmappedCode);
    assert_eq!(ev.warnings[0].location.as_deref(), Some("TXA-2"));
}

#[test]
fn oru_with_text_obx_is_a_document() {
    let ev = ok("oru_r01_document_in_obx.hl7");
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    let doc = ev.document.unwrap();
    assert_eq!(doc.id, "FL-77");
    assert_eq!(doc.kind, DocumentKind::DischargeSummary);
    assert_eq!(doc.type_code.as_deref(), Some("DS"));
    assert_eq!(doc.issued_at, utc("2024-01-17T10:15:00Z"));
    assert_eq!(doc.authored_at, Some(utc("2024-01-17T09:00:00Z")));
    assert_eq!(doc.recipient.as_deref(), Some("B86001"));
}

/// An ORU^R01 letter without TXA is judged by its result status: OBR-25,
/// else OBX-11 of the OBX holding its text. A preliminary one has not been
/// sent as final and settles nothing; a correction amends; a cancelled,
/// deleted or wrong-patient one withdraws the document.
#[test]
fn an_oru_document_follows_its_result_status() {
    let text = String::from_utf8(common::load("oru_r01_document_in_obx.hl7")).unwrap();
    let obr = "OBR|1|PL-77|FL-77|DS^Discharge summary|||20240117090000";
    let obx_final = "Line two||||||F";
    assert!(text.contains(obr) && text.contains(obx_final));
    // OBR-25 is the 25th field: eighteen more bars after OBR-7.
    let with_obr25 = |status: &str| text.replace(obr, &format!("{obr}{}{status}", "|".repeat(18)));
    let with_obx11 = |status: &str| text.replace(obx_final, &format!("Line two||||||{status}"));
    let run = |edited: String| {
        tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default()).unwrap()
    };
    for (status, location) in [
        (with_obr25("P"), "OBR-25"),
        (with_obr25("r"), "OBR-25"),
        (with_obr25("A"), "OBR-25"),
        (with_obx11("P"), "OBX-11"),
        (with_obx11("S"), "OBX-11"),
    ] {
        let ev = run(status);
        assert_eq!(ev.event_type, EventType::Other, "{location}");
        assert_eq!(ev.document.as_ref().unwrap().id, "FL-77");
        assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
        assert_eq!(ev.warnings[0].code, WarningCode::Other);
        assert_eq!(ev.warnings[0].location.as_deref(), Some(location));
    }
    // OBR-25 decides over OBX-11: a final report whose OBX says otherwise.
    let both = with_obr25("F").replace(obx_final, "Line two||||||P");
    assert_eq!(run(both).event_type, EventType::DocumentIssued);
    for (edited, ty) in [
        (with_obr25("F"), EventType::DocumentIssued),
        (with_obx11("U"), EventType::DocumentIssued),
        (with_obr25("C"), EventType::DocumentReplaced),
        (with_obx11("C"), EventType::DocumentReplaced),
        (with_obr25("X"), EventType::DocumentCancelled),
        (with_obx11("W"), EventType::DocumentCancelled),
        (with_obx11("D"), EventType::DocumentCancelled),
    ] {
        let ev = run(edited);
        assert_eq!(ev.event_type, ty);
        assert_eq!(ev.document.as_ref().unwrap().id, "FL-77");
        assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    }
    // A trust's own list decides what is preliminary.
    let cfg = tocsin_hl7::Hl7Config {
        draft_result_statuses: vec![],
        ..Default::default()
    };
    let ev = tocsin_hl7::normalise_message(with_obr25("P").as_bytes(), &cfg).unwrap();
    assert_eq!(ev.event_type, EventType::DocumentIssued);
}

#[test]
fn oru_with_txa_uses_txa() {
    let ev = ok("oru_r01_with_txa.hl7");
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    let doc = ev.document.unwrap();
    assert_eq!(doc.id, "DOC-4001");
    assert_eq!(doc.kind, DocumentKind::ClinicLetter);
}

#[test]
fn oru_lab_result_is_other_without_document() {
    let ev = ok("oru_r01_lab_result.hl7");
    assert_eq!(ev.event_type, EventType::Other);
    assert!(ev.document.is_none());
}

/// A laboratory result is no letter, whatever its codes: OBR-4 names the
/// test, and `CL` (chloride) or `DS` (drug screen) were looked up in the
/// TXA-2 table, so a result whose comment is a TX OBX was a clinic letter
/// (or a summary) and settled the patient's expectation. Only OBR-4 codes
/// or texts in `[hl7.oru_document_type]` make an ORU without TXA a document.
#[test]
fn a_lab_result_with_a_comment_is_no_document() {
    let lab = |obr4: &str| {
        format!(
            "MSH|^~\\&|WINPATH|RX1|ICE|B86001|20240612101500||ORU^R01|LAB-1|P|2.4\r\
             PID|1||9434765919^^^NHS^NH\r\
             OBR|1|ORD123|LAB555|{obr4}|||20240612090000||||||||||||||||||F\r\
             OBX|1|NM|CL^Chloride||101|mmol/L|||||F\r\
             OBX|2|TX|COM^Comment||Sample slightly haemolysed||||||F\r"
        )
    };
    for obr4 in ["CL^Chloride^WINPATH", "DS^Drug screen (urine)", "cl"] {
        let ev = normalise(&lab(obr4));
        assert_eq!(ev.event_type, EventType::Other, "{obr4}");
        assert!(ev.document.is_none(), "{obr4}");
        assert!(ev.warnings.is_empty(), "{obr4}: {:?}", ev.warnings);
    }
    // A letter sent as a result is known by its OBR-4 text, or by a code
    // the trust lists.
    let ev = normalise(&lab("DS^Discharge Summary"));
    assert_eq!(ev.event_type, EventType::DocumentIssued);
    assert_eq!(ev.document.unwrap().kind, DocumentKind::DischargeSummary);
    let mut cfg = tocsin_hl7::Hl7Config::default();
    cfg.oru_document_type
        .insert("DISSUM".into(), DocumentKind::DischargeSummary);
    let ev = tocsin_hl7::normalise_message(lab("DISSUM^Summary").as_bytes(), &cfg).unwrap();
    assert_eq!(ev.document.unwrap().kind, DocumentKind::DischargeSummary);
    // Without the table (an older mappings file), the two texts still are.
    let older = tocsin_hl7::Hl7Config::from_mappings_toml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/mappings.toml"
        ))
        .unwrap()
        .replace("[hl7.oru_document_type]", "[unused_table]"),
    )
    .unwrap();
    let ev = tocsin_hl7::normalise_message(lab("CL^Clinic letter").as_bytes(), &older).unwrap();
    assert_eq!(ev.document.unwrap().kind, DocumentKind::ClinicLetter);
}

#[test]
fn siu_appointments() {
    for (name, ty) in [
        ("siu_s12_booked.hl7", EventType::AppointmentBooked),
        ("siu_s15_cancelled.hl7", EventType::AppointmentCancelled),
        ("siu_s26_missed.hl7", EventType::AppointmentMissed),
    ] {
        let ev = ok(name);
        assert_eq!(ev.event_type, ty, "{name}");
        let appt = ev.appointment.expect("appointment");
        assert_eq!(appt.id.as_deref(), Some("APPT-5566"));
        // SCH-11.4 09:30 GMT.
        assert_eq!(appt.starts_at, Some(utc("2024-02-20T09:30:00Z")));
        assert_eq!(ev.encounter.unwrap().id.as_deref(), Some("OP5566"));
        assert_eq!(ev.occurred_at, utc("2024-02-01T09:00:00Z"));
    }
}

/// A refusal's reason in an ERR segment is kept: from v2.5 ERR-3 (code,
/// text) and ERR-8 or ERR-7 (user message, diagnostic information), before
/// v2.5 ERR-1's fourth component.
/// MSA-3, when sent, stays the text. Both were lost.
#[test]
fn an_acks_err_segment_gives_its_code_and_reason() {
    let text = String::from_utf8(common::load("ack_ae.hl7")).unwrap();
    let no_msa3 = text.replace("|MSG-T02|Unknown patient", "|MSG-T02");
    assert_ne!(no_msa3, text);
    let read = |base: &str, err: &str| {
        let edited = format!("{}\r{err}\r", base.trim_end_matches(['\r', '\n']));
        let ev =
            tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
                .unwrap();
        assert_eq!(ev.event_type, EventType::DeliveryFailed);
        let ack = ev.ack.unwrap();
        (ack.detail_code, ack.text)
    };
    let owned = |c: &str, t: &str| (Some(c.to_owned()), Some(t.to_owned()));
    let v25 = "ERR||PID^1^3|204^Unknown key identifier^HL70357|E|||Patient not registered here";
    assert_eq!(
        read(&no_msa3, v25),
        owned("204", "Patient not registered here")
    );
    let user = "ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||For the user|";
    assert_eq!(read(&no_msa3, user), owned("204", "For the user"));
    let v25_no_user_text = "ERR||PID^1^3|204^Unknown key identifier^HL70357|E";
    assert_eq!(
        read(&no_msa3, v25_no_user_text),
        owned("204", "Unknown key identifier")
    );
    let v24 = "ERR|PID^1^3^204&Unknown key identifier&HL70357";
    assert_eq!(read(&no_msa3, v24), owned("204", "Unknown key identifier"));
    assert_eq!(read(&text, v25), owned("204", "Unknown patient"));
}

#[test]
fn acknowledgements() {
    for (code, ty, text) in [
        ("AA", EventType::DeliveryAcknowledged, None),
        ("CA", EventType::DeliveryAcknowledged, None),
        ("AE", EventType::DeliveryFailed, Some("Unknown patient")),
        ("AR", EventType::DeliveryFailed, Some("Unknown patient")),
        ("CE", EventType::DeliveryFailed, Some("Unknown patient")),
        ("CR", EventType::DeliveryFailed, Some("Unknown patient")),
    ] {
        let ev = ok(&format!("ack_{}.hl7", code.to_lowercase()));
        assert_eq!(ev.event_type, ty, "{code}");
        let ack = ev.ack.expect("ack");
        assert_eq!(ack.of_message_id, "MSG-T02");
        assert_eq!(ack.code, code);
        assert_eq!(ack.text.as_deref(), text);
        assert_eq!(ev.source.message_id, format!("ACK-{code}"));
        assert_eq!(ev.source.sending_facility.as_deref(), Some("B86001"));
    }
    // MSA-1 in lower case (some engines) is read as its capitals; one that
    // is no acknowledgement code is warned of, not passed over in silence.
    let text = String::from_utf8(common::load("ack_aa.hl7")).unwrap();
    for (code, ty, warned) in [
        ("aa", EventType::DeliveryAcknowledged, false),
        (" ae", EventType::DeliveryFailed, false),
        ("OK", EventType::Other, true),
    ] {
        let edited = text.replace("MSA|AA|", &format!("MSA|{code}|"));
        let ev =
            tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
                .unwrap();
        assert_eq!(ev.event_type, ty, "{code}");
        let warning = ev.warnings.iter().find(|w| {
            w.code == WarningCode::UnmappedCode && w.location.as_deref() == Some("MSA-1")
        });
        assert_eq!(warning.is_some(), warned, "{code}: {:?}", ev.warnings);
    }
    // Ids that are GUIDs are read in lowercase, MSH-10 and MSA-2 alike, as
    // the FHIR reader writes them: an ITK3 response to an HL7 message
    // numbered by a GUID in capitals names it in either case.
    let guid = "9A1B0000-0000-4000-8000-00000000ABCD";
    let edited = text
        .replace("MSA|AA|MSG-T02", &format!("MSA|AA|{guid}"))
        .replace("|ACK-AA|", &format!("|{guid}|"));
    assert_ne!(edited, text);
    let ev = tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
        .unwrap();
    assert_eq!(ev.source.message_id, guid.to_ascii_lowercase());
    assert_eq!(ev.ack.unwrap().of_message_id, guid.to_ascii_lowercase());
    let ev = ok("ack_bare_type.hl7");
    assert_eq!(ev.source.message_type, "ACK");
    assert_eq!(ev.event_type, EventType::DeliveryAcknowledged);
    assert_eq!(ev.ack.unwrap().of_message_id, "MSG-T04");
    // An ACK of an ADT or scheduling message acknowledges no document,
    // though its MSA-2 may repeat a document's message id by chance.
    let text = String::from_utf8(common::load("ack_ae.hl7")).unwrap();
    for trigger in ["A03", "S12", "A08"] {
        let edited = text.replace("ACK^T02^ACK", &format!("ACK^{trigger}^ACK"));
        let ev =
            tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
                .unwrap();
        assert_eq!(ev.event_type, EventType::Other, "{trigger}");
    }
    for trigger in ["R01", "T10", "ACK"] {
        let edited = text.replace("ACK^T02^ACK", &format!("ACK^{trigger}^ACK"));
        let ev =
            tocsin_hl7::normalise_message(edited.as_bytes(), &tocsin_hl7::Hl7Config::default())
                .unwrap();
        assert_eq!(ev.event_type, EventType::DeliveryFailed, "{trigger}");
    }
}

/// A summary's MSH-7 (its issue time, by which it is on time or late)
/// given without an offset in the hour the clocks repeat in October is
/// read as the first pass, as other fields are, and now warned of at
/// MSH-7 as they are: before, the guess there was silent.
#[test]
fn a_local_msh_7_in_a_clock_change_hour_is_warned_of() {
    let text = String::from_utf8(common::load("mdm_t02_discharge_summary.hl7")).unwrap();
    for (local, utc_reading, warned) in [
        ("20241027013000", "2024-10-27T00:30:00Z", true),
        ("20241027023000", "2024-10-27T02:30:00Z", false),
        ("20241027013000+0000", "2024-10-27T01:30:00Z", false),
    ] {
        let edited = text.replacen("|20240116093000|", &format!("|{local}|"), 1);
        let ev = tocsin_hl7::normalise_message(edited.as_bytes(), &Default::default()).unwrap();
        assert_eq!(ev.document.unwrap().issued_at, utc(utc_reading));
        let at: Vec<_> = ev
            .warnings
            .iter()
            .filter(|w| w.location.as_deref() == Some("MSH-7"))
            .collect();
        assert_eq!(at.len(), usize::from(warned), "{local}: {:?}", ev.warnings);
        if warned {
            assert_eq!(at[0].code, WarningCode::BadTimestamp);
            assert!(at[0].message.contains("repeat"), "{}", at[0].message);
            assert_eq!(at[0].raw.as_deref(), Some(local));
        }
    }
}

/// Fixture text with segments ended by CR, for editing.
fn text(name: &str) -> String {
    String::from_utf8(common::load(name)).unwrap()
}

fn normalise(text: &str) -> tocsin_event::InterfaceEvent {
    tocsin_hl7::normalise_message(text.as_bytes(), &Default::default()).unwrap()
}

/// An engine that sends the message type or the acknowledgement code in
/// lower case (`ack^t02`, `aa`) has them read as in capitals: the ACK was
/// `other`, never applied, and said by nothing.
#[test]
fn a_lower_case_message_type_and_ack_code_are_read() {
    let ack = text("ack_aa.hl7")
        .replace("ACK^T02^ACK", "ack^t02^ack")
        .replace("MSA|AA|", "MSA|aa|");
    let ev = normalise(&ack);
    assert_eq!(ev.event_type, EventType::DeliveryAcknowledged);
    assert_eq!(ev.source.message_type, "ACK^T02");
    let a = ev.ack.unwrap();
    assert_eq!(
        (a.code.as_str(), a.of_message_id.as_str()),
        ("AA", "MSG-T02")
    );
}

/// A summary whose TXA-2 gives only the type's text is looked up by it
/// (as OBR-4.2 is), and one with no type at all is `other` with an
/// `unmapped_code` warning, as an unmapped code is: before, both were
/// `other` without a word and their discharges went overdue.
#[test]
fn a_txa_2_without_a_code_is_read_by_its_text_or_warned_of() {
    let base = text("mdm_t02_discharge_summary.hl7");
    let txa2 = |v: &str| base.replace("TXA|1|DS|", &format!("TXA|1|{v}|"));
    let ev = normalise(&txa2("^DS"));
    let doc = ev.document.unwrap();
    assert_eq!(doc.kind, DocumentKind::DischargeSummary);
    assert_eq!(doc.type_code.as_deref(), Some("DS"));
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    for (v, location) in [("^Not a mapped text", "TXA-2.2"), ("", "TXA-2")] {
        let ev = normalise(&txa2(v));
        assert_eq!(ev.document.unwrap().kind, DocumentKind::Other, "{v}");
        let w: Vec<_> = ev
            .warnings
            .iter()
            .map(|w| (w.code, w.location.as_deref()))
            .collect();
        assert_eq!(w, [(WarningCode::UnmappedCode, Some(location))], "{v}");
    }
}

/// One message gives one document: an ORU whose second OBR group is a
/// document too is warned of at that group (it was lost without a word);
/// a second group that is no document (a result panel) is not.
#[test]
fn a_second_document_in_an_oru_is_warned_of() {
    let base = text("oru_r01_document_in_obx.hl7");
    let two = format!(
        "{}OBR|2|PL-78|FL-78|CL^Clinic letter|||20240117090000\rOBX|1|FT|CL||Text||||||F\r",
        base.trim_end_matches(['\r', '\n']).to_owned() + "\r"
    );
    let ev = normalise(&two);
    assert_eq!(ev.document.as_ref().unwrap().id, "FL-77");
    let w: Vec<_> = ev
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref(), w.raw.as_deref()))
        .collect();
    assert_eq!(w, [(WarningCode::Other, Some("OBR[2]-4"), Some("CL"))]);
    let panel = two.replace("CL^Clinic letter", "FBC^Full blood count");
    assert!(normalise(&panel).warnings.is_empty());
}
