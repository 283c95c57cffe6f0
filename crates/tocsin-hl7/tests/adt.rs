//! ADT fixtures, asserted field by field.

mod common;

use common::{load, ok, utc};
use tocsin_event::{
    EncounterKind, EventId, EventType, Format, Identifier, MergeScope, WarningCode,
};
use tocsin_hl7::{Hl7Config, normalise_message, split_messages};

fn rxx(value: &str) -> Identifier {
    Identifier {
        system: "RXX".into(),
        value: value.into(),
    }
}

#[test]
fn a03_discharge_every_field() {
    let ev = ok("adt_a03_discharge.hl7");
    let bytes = load("adt_a03_discharge.hl7");
    let raw = split_messages(&bytes)[0].bytes;
    assert_eq!(ev.event_id, EventId::derive(Format::Hl7v2, raw, 0));
    assert_eq!(ev.event_type, EventType::EncounterEnded);
    // Discharge time PV1-45 14:00 GMT (January): the A03 occurred then.
    assert_eq!(ev.occurred_at, utc("2024-01-15T14:00:00Z"));
    assert_eq!(ev.source.format, Format::Hl7v2);
    assert_eq!(ev.source.message_id, "MSG-A03");
    assert_eq!(ev.source.message_type, "ADT^A03");
    assert_eq!(ev.source.sending_facility.as_deref(), Some("RXX01"));
    assert_eq!(ev.source.sending_application.as_deref(), Some("PAS"));
    assert_eq!(ev.source.sequence, 0);
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.patient.local_ids, vec![rxx("RXX1234567")]);
    assert_eq!(ev.gp_practice.as_deref(), Some("B86001"));
    let enc = ev.encounter.expect("encounter");
    assert_eq!(enc.id.as_deref(), Some("V0001234"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(enc.started_at, Some(utc("2024-01-10T09:15:00Z")));
    assert_eq!(enc.ended_at, Some(utc("2024-01-15T14:00:00Z")));
    // PV1-36, for a policy exclusion by discharge disposition.
    assert_eq!(enc.discharge_disposition.as_deref(), Some("01"));
    assert_eq!(enc.site.as_deref(), Some("RXX01"));
    assert_eq!(enc.specialty.as_deref(), Some("430"));
    assert!(ev.document.is_none() && ev.ack.is_none() && ev.merge.is_none());
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
}

/// A maternity stay (PV1-2 `B`, obstetrics in HL7 table 0004) is an
/// inpatient stay by default: its discharge needs a summary to the GP.
#[test]
fn an_obstetric_discharge_is_an_inpatient_one() {
    let bytes = load("adt_a03_discharge.hl7");
    let text = String::from_utf8(split_messages(&bytes)[0].bytes.to_vec()).unwrap();
    let maternity = text.replace("PV1|1|I|", "PV1|1|B|");
    assert_ne!(maternity, text);
    let ev = normalise_message(maternity.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::EncounterEnded);
    assert_eq!(ev.encounter.unwrap().kind, Some(EncounterKind::Inpatient));
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
}

/// A PV1-45 that gives only the date: the event's own time on that day
/// (EVN-6, else EVN-2) is the discharge time, not midnight, which would
/// start the 24 hours up to a day early. On another day it is not taken.
#[test]
fn a_date_only_discharge_takes_the_event_time_of_that_day() {
    let bytes = load("adt_a03_discharge.hl7");
    let text = String::from_utf8(split_messages(&bytes)[0].bytes.to_vec()).unwrap();
    assert!(
        text.contains("|20240115140000\r")
            && text.contains("EVN|A03|20240115143000|||U123^WARD^CLERK|20240115142500\r")
    );
    let date_only = text.replace("|20240115140000\r", "|20240115\r");
    let ev = normalise_message(date_only.as_bytes(), &Hl7Config::default()).unwrap();
    // EVN-6 14:25 GMT on 15 January.
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:25:00Z"))
    );
    assert_eq!(ev.occurred_at, utc("2024-01-15T14:25:00Z"));
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    // EVN-6 on the next day: the date stands, at midnight, said (it was
    // silent, where FHIR's date-only end was warned of).
    let other_day = date_only.replace("|20240115142500\r", "|20240116002500\r");
    let ev = normalise_message(other_day.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T00:00:00Z"))
    );
    assert!(
        ev.warnings
            .iter()
            .any(|w| w.code == WarningCode::BadTimestamp
                && w.location.as_deref() == Some("PV1-45")
                && w.message.contains("up to a day early")),
        "{:?}",
        ev.warnings
    );
    // A precise PV1-45 is kept whatever EVN-6 says.
    let ev = normalise_message(text.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:00:00Z"))
    );
}

#[test]
fn a03_discharge_time_fallbacks() {
    // No PV1-45: EVN-6 (14:25), else EVN-2 (14:30).
    let ev = ok("adt_a03_discharge_time_from_evn6.hl7");
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:25:00Z"))
    );
    assert_eq!(ev.occurred_at, utc("2024-01-15T14:25:00Z"));
    let ev = ok("adt_a03_discharge_time_from_evn2.hl7");
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:30:00Z"))
    );
}

#[test]
fn v23_trigger_from_evn_and_day_case() {
    let ev = ok("adt_a03_v23_trigger_in_evn.hl7");
    assert_eq!(ev.event_type, EventType::EncounterEnded);
    assert_eq!(ev.source.message_type, "ADT^A03");
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.kind, Some(EncounterKind::DayCase));
    assert_eq!(enc.ended_at, Some(utc("2024-01-15T12:00:00Z")));
}

#[test]
fn event_types_per_trigger() {
    let cases = [
        ("adt_a01_admit.hl7", EventType::EncounterStarted),
        ("adt_a02_transfer.hl7", EventType::EncounterUpdated),
        ("adt_a04_register_v25.hl7", EventType::EncounterStarted),
        ("adt_a08_update.hl7", EventType::EncounterUpdated),
        ("adt_a11_cancel_admit.hl7", EventType::EncounterCancelled),
        (
            "adt_a13_cancel_discharge.hl7",
            EventType::EncounterDischargeCancelled,
        ),
        ("adt_a31_update_person.hl7", EventType::EncounterUpdated),
        ("adt_a34_merge.hl7", EventType::PatientMerged),
        ("adt_a40_merge.hl7", EventType::PatientMerged),
        ("adt_a28_unknown_trigger.hl7", EventType::Other),
        ("zzz_unknown_message_type.hl7", EventType::Other),
    ];
    for (name, expected) in cases {
        assert_eq!(ok(name).event_type, expected, "{name}");
    }
}

#[test]
fn a01_summer_event_time_and_a02_site() {
    let ev = ok("adt_a01_admit.hl7");
    // EVN-2 09:15 BST = 08:15 UTC.
    assert_eq!(ev.occurred_at, utc("2024-07-10T08:15:00Z"));
    assert_eq!(ev.encounter.unwrap().ended_at, None);
    let enc = ok("adt_a02_transfer.hl7").encounter.unwrap();
    assert_eq!(enc.site.as_deref(), Some("RXX01"));
}

#[test]
fn a04_v25_outpatient_with_gp_in_xon_component_10_and_site_from_pv1_3() {
    let ev = ok("adt_a04_register_v25.hl7");
    assert_eq!(ev.gp_practice.as_deref(), Some("B86002"));
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("OP998877"));
    assert_eq!(enc.kind, Some(EncounterKind::Outpatient));
    assert_eq!(enc.specialty.as_deref(), Some("CARDIO"));
    // PV1-39 empty: facility of the assigned location (PV1-3.4).
    assert_eq!(enc.site.as_deref(), Some("RXX01"));
}

/// A trust whose PAS sends no A03 when an outpatient leaves clinic lists
/// the class in `a04_attendance_classes`: its A04 is then the attendance
/// (`encounter_ended` at PV1-44, the clinic time, when PV1-45 is empty),
/// and the clinic letter is expected from it. By default, and for other
/// classes, an A04 stays a registration.
#[test]
fn an_a04_of_a_configured_class_is_the_attendance() {
    let bytes = load("adt_a04_register_v25.hl7");
    let raw = split_messages(&bytes)[0].bytes;
    let by_default = normalise_message(raw, &Hl7Config::default()).unwrap();
    assert_eq!(by_default.event_type, EventType::EncounterStarted);
    let cfg = Hl7Config {
        a04_attendance_classes: vec!["o".into()],
        ..Hl7Config::default()
    };
    let ev = normalise_message(raw, &cfg).unwrap();
    assert_eq!(ev.event_type, EventType::EncounterEnded);
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.kind, Some(EncounterKind::Outpatient));
    // PV1-44 10:00 GMT (March, before the change to summer time).
    assert_eq!(enc.ended_at, Some(utc("2024-03-12T10:00:00Z")));
    assert_eq!(ev.occurred_at, utc("2024-03-12T10:00:00Z"));
    // Without PV1-44: EVN-2, the registration's time.
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let no_pv1_44 = text.replace("||20240312100000|", "|||");
    assert_ne!(no_pv1_44, text);
    let ev = normalise_message(no_pv1_44.as_bytes(), &cfg).unwrap();
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-03-12T10:15:00Z"))
    );
    // An inpatient registration is no attendance.
    let inpatient = text.replace("PV1|1|O|", "PV1|1|I|");
    let ev = normalise_message(inpatient.as_bytes(), &cfg).unwrap();
    assert_eq!(ev.event_type, EventType::EncounterStarted);
    assert_eq!(ev.encounter.unwrap().ended_at, None);
}

/// A placeholder of ten of one digit passes the check digit, but every
/// untraced patient sent with it would share it: it is no NHS number.
#[test]
fn a_placeholder_nhs_number_is_null_with_warning() {
    let bytes = load("adt_a04_register_v25.hl7");
    let text = String::from_utf8(split_messages(&bytes)[0].bytes.to_vec()).unwrap();
    let placeholder = text.replace("9434765919^^^NHS^NH", "0000000000^^^NHS^NH");
    assert_ne!(placeholder, text);
    let ev = normalise_message(placeholder.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.patient.nhs_number, None);
    assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
    assert_eq!(ev.warnings[0].code, WarningCode::InvalidNhsNumber);
    assert_eq!(ev.warnings[0].raw.as_deref(), Some("0000000000"));
}

/// Two different valid NHS numbers in PID-3: the first is kept and the
/// second is warned of (it was dropped without a word); the same number
/// twice is no conflict.
#[test]
fn a_second_different_nhs_number_is_warned_of() {
    let bytes = load("adt_a04_register_v25.hl7");
    let text = String::from_utf8(split_messages(&bytes)[0].bytes.to_vec()).unwrap();
    let two = text.replace(
        "9434765919^^^NHS^NH",
        "9434765919^^^NHS^NH~4010232137^^^NHS^NH",
    );
    assert_ne!(two, text);
    let ev = normalise_message(two.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
    let w = &ev.warnings[0];
    assert_eq!(w.code, WarningCode::InvalidNhsNumber);
    assert_eq!(w.raw.as_deref(), Some("4010232137"));
    assert_eq!(w.location.as_deref(), Some("PID-3"));
    assert!(!w.message.contains("4010232137"), "message is patient-free");
    let same = text.replace(
        "9434765919^^^NHS^NH",
        "9434765919^^^NHS^NH~943 476 5919^^^NHS^NH",
    );
    let ev = normalise_message(same.as_bytes(), &Hl7Config::default()).unwrap();
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
}

#[test]
fn a31_has_no_encounter() {
    let ev = ok("adt_a31_update_person.hl7");
    assert!(ev.encounter.is_none());
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
}

#[test]
fn merges_carry_the_retired_identifiers() {
    let m = ok("adt_a34_merge.hl7").merge.expect("merge");
    assert_eq!(m.prior_nhs_number, None);
    assert_eq!(m.prior_local_ids, vec![rxx("RXX7654321")]);
    assert_eq!(m.prior_encounter_id, None);
    let m = ok("adt_a40_merge.hl7").merge.expect("merge");
    assert_eq!(m.prior_nhs_number.as_deref(), Some("4010232137"));
    assert_eq!(m.prior_local_ids, vec![rxx("RXX7654321")]);
    assert_eq!(m.prior_encounter_id.as_deref(), Some("V0009999"));
}

/// A visit renumbered (A50) or merged into another (A42) re-keys it: MRG-5
/// names the old number, PV1-19 the new. A changed patient identifier
/// (A47) re-keys the patient as a merge does. A moved account (A44) stays
/// `other`: tocsin does not key by account number.
#[test]
fn visit_renumbering_and_identifier_changes_are_merges() {
    let text = String::from_utf8(load("adt_a40_merge.hl7")).unwrap();
    let pv1 = "PV1|1|I|WARD1||||||||||||||||V0001234^^^RXX^VN";
    for trigger in ["A50", "A42"] {
        let msg = text.replace("A40", trigger) + pv1 + "\r";
        let ev = normalise_message(msg.as_bytes(), &Hl7Config::default()).unwrap();
        assert_eq!(ev.event_type, EventType::PatientMerged, "{trigger}");
        let m = ev.merge.expect("merge");
        assert_eq!(m.prior_encounter_id.as_deref(), Some("V0009999"));
        assert_eq!(ev.encounter.unwrap().id.as_deref(), Some("V0001234"));
        // Without PV1 the new visit number is unknown: refused, not ignored.
        let without = text.replace("A40", trigger);
        assert!(
            normalise_message(without.as_bytes(), &Hl7Config::default()).is_err(),
            "{trigger}"
        );
    }
    for trigger in ["A47", "A46", "A39", "A36"] {
        let msg = text.replace("A40", trigger);
        let ev = normalise_message(msg.as_bytes(), &Hl7Config::default()).unwrap();
        assert_eq!(ev.event_type, EventType::PatientMerged, "{trigger}");
        assert_eq!(ev.merge.unwrap().prior_local_ids, vec![rxx("RXX7654321")]);
    }
    let msg = text.replace("A40", "A44");
    let ev = normalise_message(msg.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::Other);
    assert!(ev.merge.is_none());
}

/// A visit moved to another patient (A45) is a merge of one visit: MRG-1
/// the patient it was filed under, MRG-5 the visit, PID the right patient.
/// Without MRG-5 the visit is PV1-19's; naming no visit, it is refused, a
/// move of nothing.
#[test]
fn a_visit_moved_to_another_patient_is_a_merge_of_one_visit() {
    let text = String::from_utf8(load("adt_a40_merge.hl7"))
        .unwrap()
        .replace("A40", "A45");
    let pv1 = "PV1|1|I|WARD1||||||||||||||||V0009999^^^RXX^VN\r";
    let ev = normalise_message((text.clone() + pv1).as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::PatientMerged);
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    let m = ev.merge.expect("merge");
    assert_eq!(m.scope, MergeScope::Visit);
    assert_eq!(m.prior_nhs_number.as_deref(), Some("4010232137"));
    assert_eq!(m.prior_encounter_id.as_deref(), Some("V0009999"));

    let no_mrg5 = text.replace("V0009999", "") + pv1;
    let ev = normalise_message(no_mrg5.as_bytes(), &Hl7Config::default()).unwrap();
    let m = ev.merge.expect("merge");
    assert_eq!(m.prior_encounter_id.as_deref(), Some("V0009999"));

    let nothing = text.replace("V0009999", "") + "PV1|1|I|WARD1\r";
    let err = normalise_message(nothing.as_bytes(), &Hl7Config::default()).unwrap_err();
    assert!(err.to_string().contains("MRG-5"), "{err}");
    // PV1 is required, as for A42 and A50.
    assert!(normalise_message(text.as_bytes(), &Hl7Config::default()).is_err());
}

#[test]
fn invalid_nhs_number_is_null_with_warning() {
    let ev = ok("nhs_number_invalid.hl7");
    assert_eq!(ev.patient.nhs_number, None);
    assert_eq!(
        ev.patient.local_ids,
        vec![
            rxx("RXX1234567"),
            Identifier {
                system: "local".into(),
                value: "LOCAL1".into()
            }
        ]
    );
    assert_eq!(ev.warnings.len(), 1);
    let w = &ev.warnings[0];
    assert_eq!(w.code, WarningCode::InvalidNhsNumber);
    assert_eq!(w.raw.as_deref(), Some("9434765918"));
    assert_eq!(w.location.as_deref(), Some("PID-3"));
    assert!(!w.message.contains("9434765918"), "message is patient-free");
}

#[test]
fn nhs_number_by_assigning_authority_with_spaces() {
    let ev = ok("nhs_number_by_authority_only.hl7");
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("4857773457"));
    assert_eq!(ev.patient.local_ids, vec![rxx("RXX1234567")]);
}

/// The GP practice is the PD1-3 component that looks like an ODS code,
/// the version's own first: a v2.4 feed with a local number in component 3
/// and the practice's code in 10 gave the local number. Without an ODS-like
/// one, the version's component stands as before.
#[test]
fn the_gp_practice_is_the_pd1_component_that_looks_like_an_ods_code() {
    let text = String::from_utf8(common::load("adt_a03_discharge.hl7")).unwrap();
    let pd1 = |xon: &str| {
        let edited = text.replace("PD1|||LEEDS GP PRACTICE^^B86001|", &format!("PD1|||{xon}|"));
        assert_ne!(edited, text);
        tocsin_hl7::normalise_message(edited.as_bytes(), &Hl7Config::default())
            .unwrap()
            .gp_practice
    };
    let practice = |s: &str| Some(s.to_owned());
    assert_eq!(pd1("Leeds^L^12345^^^^^^^B86001"), practice("B86001"));
    assert_eq!(pd1("Leeds^L^B86001^^^^^^^12345"), practice("B86001"));
    assert_eq!(pd1("Leeds^L^12345"), practice("12345"));
    assert_eq!(pd1("Leeds^^^^^^^^^B86001"), practice("B86001"));
}

/// An NHS number marked by the identifier type `NHS` alone (no authority),
/// as some PAS feeds send it, is the NHS number: it was a local id, and the
/// feed matched nothing by NHS number, without a word.
#[test]
fn nhs_number_by_identifier_type_nhs() {
    let text = String::from_utf8(common::load("adt_a03_discharge.hl7")).unwrap();
    let typed = text.replace("9434765919^^^NHS^NH~", "9434765919^^^^NHS~");
    assert_ne!(typed, text);
    let ev = tocsin_hl7::normalise_message(typed.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.patient.local_ids, vec![rxx("RXX1234567")]);
}

#[test]
fn unmapped_patient_class_is_other_with_warning() {
    let ev = ok("patient_class_unmapped.hl7");
    assert_eq!(ev.encounter.unwrap().kind, Some(EncounterKind::Other));
    assert_eq!(ev.warnings.len(), 1);
    assert_eq!(ev.warnings[0].code, WarningCode::UnmappedCode);
    assert_eq!(ev.warnings[0].raw.as_deref(), Some("Z"));
    assert_eq!(ev.warnings[0].location.as_deref(), Some("PV1-2"));
}

#[test]
fn patient_class_table_comes_from_configuration() {
    let mut cfg = Hl7Config::default();
    cfg.patient_class
        .insert("Z".into(), EncounterKind::MentalHealth);
    let bytes = load("patient_class_unmapped.hl7");
    let ev = normalise_message(&bytes, &cfg).unwrap();
    assert_eq!(
        ev.encounter.unwrap().kind,
        Some(EncounterKind::MentalHealth)
    );
    assert!(ev.warnings.is_empty());
}

#[test]
fn unreadable_optional_timestamp_is_a_warning() {
    let ev = ok("time_bad_optional_timestamp.hl7");
    assert_eq!(ev.encounter.unwrap().started_at, None);
    assert_eq!(ev.warnings.len(), 1);
    assert_eq!(ev.warnings[0].code, WarningCode::BadTimestamp);
    assert_eq!(ev.warnings[0].location.as_deref(), Some("PV1-44"));
    assert_eq!(ev.warnings[0].raw.as_deref(), Some("20241345"));
}

#[test]
fn same_bytes_same_event_id_and_different_messages_differ() {
    let a = ok("adt_a08_update.hl7");
    assert_eq!(a.event_id, ok("adt_a08_update.hl7").event_id);
    assert_ne!(a.event_id, ok("adt_a02_transfer.hl7").event_id);
}

/// A discharge no message can record: PV1-45 two months after the A03 was
/// sent (a typed date). Taken as it stood, it set the deadline weeks ahead
/// and moved a replay's clock there. EVN-6 stands in, with a warning; a
/// time a few minutes after sending (clocks differ) stands as sent.
#[test]
fn a_discharge_later_than_its_message_takes_the_event_time() {
    let text = String::from_utf8(load("adt_a03_discharge.hl7")).unwrap();
    assert!(text.contains("20240115140000"), "fixture's PV1-45");
    let typo = text.replace("20240115140000", "20240315140000");
    let ev = normalise_message(typo.as_bytes(), &Hl7Config::default()).unwrap();
    // EVN-6 of the fixture: 14:25 on the 15th, before MSH-7 (14:30).
    assert_eq!(ev.occurred_at, utc("2024-01-15T14:25:00Z"));
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:25:00Z"))
    );
    assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
    assert_eq!(ev.warnings[0].code, WarningCode::BadTimestamp);
    assert_eq!(ev.warnings[0].location.as_deref(), Some("PV1-45"));

    let ahead = text.replace("20240115140000", "20240115144000");
    let ev = normalise_message(ahead.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.occurred_at, utc("2024-01-15T14:40:00Z"));
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
}

/// A discharge before its admission (PV1-45 before PV1-44: times swapped,
/// or one keyed in another zone) stands, as the end the deadline runs
/// from, with a warning naming both times: it moved the deadline unsaid.
#[test]
fn a_discharge_before_its_admission_is_warned_of() {
    let text = String::from_utf8(load("adt_a03_discharge.hl7")).unwrap();
    let swapped = text.replace("20240110091500", "20240116091500");
    let ev = normalise_message(swapped.as_bytes(), &Hl7Config::default()).unwrap();
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.ended_at, Some(utc("2024-01-15T14:00:00Z")));
    assert_eq!(enc.started_at, Some(utc("2024-01-16T09:15:00Z")));
    assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
    let w = &ev.warnings[0];
    assert_eq!(w.code, WarningCode::BadTimestamp);
    assert_eq!(w.location.as_deref(), Some("PV1-45"));
    assert!(
        w.message.contains("2024-01-15T14:00:00+00:00")
            && w.message.contains("2024-01-16T09:15:00+00:00"),
        "{}",
        w.message
    );
    assert!(ok("adt_a03_discharge.hl7").warnings.is_empty());
}

/// An update (A08) giving PV1-45 carries it as the end (the tracker takes it
/// as a corrected discharge time), but only a time it can stand by: a date
/// alone (midnight, up to a day early), a time after the message was sent
/// or one before the admission (with a warning) is no end.
#[test]
fn an_update_carries_only_an_end_it_can_stand_by() {
    let text = String::from_utf8(load("adt_a08_update.hl7")).unwrap();
    let with_end = |pv1_45: &str| {
        let msg = text.replace("|20240110091500|\r", &format!("|20240110091500|{pv1_45}\r"));
        assert_ne!(msg, text);
        normalise_message(msg.as_bytes(), &Hl7Config::default()).unwrap()
    };
    // MSH-7 of the fixture: 2024-01-12 08:30 (GMT).
    let ev = with_end("20240112073000");
    assert_eq!(ev.event_type, EventType::EncounterUpdated);
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-12T07:30:00Z"))
    );
    let ev = with_end("20240112");
    assert_eq!(ev.encounter.unwrap().ended_at, None);
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    let ev = with_end("20240312073000");
    assert_eq!(ev.encounter.unwrap().ended_at, None);
    assert_eq!(ev.warnings[0].code, WarningCode::BadTimestamp);
    // Before the admission (PV1-44 2024-01-10 09:15): a year typed wrong,
    // which would move the discharge out of every rule.
    let ev = with_end("20140112073000");
    assert_eq!(ev.encounter.unwrap().ended_at, None);
    assert_eq!(ev.warnings.len(), 1, "{:?}", ev.warnings);
    assert_eq!(ev.warnings[0].code, WarningCode::BadTimestamp);
    assert!(
        ev.warnings[0].message.contains("before the admission"),
        "{:?}",
        ev.warnings
    );
}

/// Older v2.3 PAS feeds send the NHS number unmarked in PID-2. Read only
/// when `[hl7] nhs_number_in_pid2` says so (elsewhere PID-2 may be a local
/// number passing the check digit by chance), and only when PID-3 has none.
#[test]
fn an_nhs_number_in_pid2_is_read_when_configured() {
    let text = String::from_utf8(load("adt_a03_discharge.hl7")).unwrap();
    let moved = text.replace("PID|1||9434765919^^^NHS^NH~", "PID|1|9434765919|");
    assert_ne!(moved, text);
    let off = normalise_message(moved.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(off.patient.nhs_number, None);
    let on = Hl7Config {
        nhs_number_in_pid2: true,
        ..Hl7Config::default()
    };
    let ev = normalise_message(moved.as_bytes(), &on).unwrap();
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(ev.patient.local_ids, vec![rxx("RXX1234567")]);
    let bad = moved.replace("PID|1|9434765919|", "PID|1|9434765918|");
    let ev = normalise_message(bad.as_bytes(), &on).unwrap();
    assert_eq!(ev.patient.nhs_number, None);
    assert_eq!(ev.warnings[0].code, WarningCode::InvalidNhsNumber);
    assert_eq!(ev.warnings[0].location.as_deref(), Some("PID-2"));
    // PID-3's own NHS number wins.
    let both = text.replace("PID|1||", "PID|1|4010232137|");
    let ev = normalise_message(both.as_bytes(), &on).unwrap();
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
}

/// A local discharge time (no offset) in the hour the clocks repeat in
/// October, or skip in March: read as documented (the first pass; the
/// offset before the gap), and now said with a warning at the field, where
/// before the guess was silent though the README called it exact.
#[test]
fn a_local_time_in_a_clock_change_hour_is_warned_of() {
    let bytes = load("adt_a03_discharge.hl7");
    let text = String::from_utf8(split_messages(&bytes)[0].bytes.to_vec()).unwrap();
    for (local, utc_reading, says) in [
        ("20241027013000", "2024-10-27T00:30:00Z", "repeat"),
        ("20240331013000", "2024-03-31T01:30:00Z", "skip"),
        ("20240115140000", "2024-01-15T14:00:00Z", ""),
    ] {
        // The whole message on that day, its discharge at the hour.
        let edited = text
            .replace("|20240115140000\r", &format!("|{local}\r"))
            .replace("20240115", &local[..8]);
        let ev = normalise_message(edited.as_bytes(), &Hl7Config::default()).unwrap();
        assert_eq!(ev.encounter.unwrap().ended_at, Some(utc(utc_reading)));
        let warned: Vec<_> = ev
            .warnings
            .iter()
            .filter(|w| w.location.as_deref() == Some("PV1-45"))
            .collect();
        if says.is_empty() {
            assert!(warned.is_empty(), "{warned:?}");
        } else {
            assert_eq!(warned.len(), 1, "{local}: {:?}", ev.warnings);
            assert_eq!(warned[0].code, WarningCode::BadTimestamp);
            assert!(warned[0].message.contains(says), "{}", warned[0].message);
        }
    }
}

/// ADT_A39 lets the patient group repeat: an A40 merging two pairs applies
/// the first and says, at the second MRG, that the other is not applied
/// (it was dropped without a word). A lower-case `adt^a03` is read as the
/// discharge it is.
#[test]
fn a_second_merge_in_one_message_is_warned_of_and_lower_case_types_are_read() {
    let text = String::from_utf8(load("adt_a40_merge.hl7")).unwrap();
    let one = text.trim_end_matches(['\r', '\n']);
    let two = format!("{one}\rPID|1||4010232137^^^NHS^NH~RXX555^^^RXX^MR\rMRG|RXX888^^^RXX^MR\r");
    let ev = normalise_message(one.as_bytes(), &Hl7Config::default()).unwrap();
    assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    let ev = normalise_message(two.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::PatientMerged);
    assert_eq!(ev.patient.nhs_number.as_deref(), Some("9434765919"));
    let w: Vec<_> = ev
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(w, [(WarningCode::Other, Some("MRG[2]"))]);
    assert!(ev.warnings[0].message.contains("2 merges"));

    let a03 = String::from_utf8(load("adt_a03_discharge.hl7"))
        .unwrap()
        .replace("ADT^A03^ADT_A01", "adt^a03^adt_a01");
    let ev = normalise_message(a03.as_bytes(), &Hl7Config::default()).unwrap();
    assert_eq!(ev.event_type, EventType::EncounterEnded);
    assert_eq!(ev.source.message_type, "ADT^A03");
}
