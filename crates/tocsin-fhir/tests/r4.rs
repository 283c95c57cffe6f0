//! R4 (UK Core) resources and bundles, field by field.

mod common;

use common::{edited, entry_of, events, load, one, t};
use tocsin_event::{
    DocumentKind, EncounterKind, EventId, EventType, Format, Identifier, WarningCode,
};
use tocsin_fhir::{FhirConfig, normalise_json, normalise_xml};

const MRN: &str = "https://fhir.rxx.nhs.uk/Id/local-patient-identifier";

#[test]
fn finished_inpatient_encounter() {
    let e = one("r4/encounter-finished-inpatient.json");
    assert_eq!(e.event_type, EventType::EncounterEnded);
    assert_eq!(e.occurred_at, t("2024-01-15T14:00:00Z"));
    assert_eq!(e.source.format, Format::FhirR4);
    assert_eq!(
        e.source.message_id,
        "Encounter/enc-1#end=2024-01-15T14:00:00Z"
    );
    assert_eq!(e.source.message_type, "Encounter");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.source.sequence, 0);
    assert_eq!(
        e.event_id,
        EventId::derive(
            Format::FhirR4,
            &load("r4/encounter-finished-inpatient.json"),
            0
        )
    );
    // Subject named by a logical NHS number identifier.
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let enc = e.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("V123456"));
    assert_eq!(enc.reference.as_deref(), Some("Encounter/enc-1"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(enc.started_at, Some(t("2024-01-10T09:15:00Z")));
    assert_eq!(enc.ended_at, Some(t("2024-01-15T14:00:00Z")));
    assert_eq!(enc.site.as_deref(), Some("RXX01"));
    assert_eq!(enc.specialty.as_deref(), Some("300"));
    assert!(e.document.is_none() && e.ack.is_none());
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

#[test]
fn in_progress_outpatient_with_offsetless_time_is_local_summer_time() {
    let e = one("r4/encounter-in-progress-outpatient-offsetless.json");
    assert_eq!(e.event_type, EventType::EncounterStarted);
    // 10:30 London in July is 09:30 UTC.
    assert_eq!(e.occurred_at, t("2024-07-01T09:30:00Z"));
    assert_eq!(e.source.message_id, "Encounter/enc-2/_history/3");
    let enc = e.encounter.unwrap();
    assert_eq!(enc.kind, Some(EncounterKind::Outpatient));
    assert_eq!(enc.started_at, Some(t("2024-07-01T09:30:00Z")));
    assert_eq!(enc.ended_at, None);
}

#[test]
fn entered_in_error_encounter_is_cancelled_at_its_last_update() {
    let e = one("r4/encounter-entered-in-error.json");
    assert_eq!(e.event_type, EventType::EncounterCancelled);
    assert_eq!(e.occurred_at, t("2024-02-01T09:00:00Z"));
    let enc = e.encounter.unwrap();
    assert_eq!(enc.kind, Some(EncounterKind::Emergency));
    assert_eq!(enc.id.as_deref(), Some("V300001"));
}

/// A planned encounter has not started: it is `other`, and its time is
/// when the plan was written, never its planned start, which (weeks ahead)
/// would move the tracker's clock past every open deadline. STU3 alike.
#[test]
fn a_planned_encounter_is_other_at_its_last_update_not_its_planned_start() {
    let stu3_profile = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Encounter-1";
    for profile in [None, Some(stu3_profile)] {
        let planned = |last_updated: Option<&str>| {
            edited("r4/encounter-in-progress-outpatient-offsetless.json", |v| {
                v["status"] = "planned".into();
                v["period"]["start"] = "2024-09-01T10:30:00Z".into();
                if let Some(p) = profile {
                    v["meta"]["profile"] = serde_json::json!([p]);
                }
                if let Some(t) = last_updated {
                    v["meta"]["lastUpdated"] = t.into();
                }
            })
        };
        let e = planned(Some("2024-07-01T08:00:00Z"));
        let format = if profile.is_some() {
            Format::FhirStu3
        } else {
            Format::FhirR4
        };
        assert_eq!(e.source.format, format);
        assert_eq!(e.event_type, EventType::Other, "{profile:?}");
        assert_eq!(e.occurred_at, t("2024-07-01T08:00:00Z"), "{profile:?}");
        // The encounter is still described, planned start included.
        let enc = e.encounter.as_ref().unwrap();
        assert_eq!(enc.started_at, Some(t("2024-09-01T10:30:00Z")));
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
        // Without meta.lastUpdated: the epoch, as for any resource without
        // a time, with a warning; the planned start is still not used.
        let e = planned(None);
        assert_eq!(e.event_type, EventType::Other, "{profile:?}");
        assert_eq!(e.occurred_at, chrono::DateTime::UNIX_EPOCH, "{profile:?}");
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert_eq!(e.warnings[0].code, WarningCode::BadTimestamp);
        assert_eq!(e.warnings[0].location.as_deref(), Some("Encounter"));
    }
}

/// A period end in year 0 (a placeholder) is no discharge time: the end is
/// taken as absent, with a warning (before, the discharge was dated year 0
/// and went untracked without a word). A finished stay without an end
/// takes its last edit (meta.lastUpdated); without one it is refused,
/// saying why: its admission (period.start) was taken for its discharge,
/// and a summary sent two hours after the discharge was judged days late.
/// An Encounter ending before it starts keeps its end (the deadline runs
/// from it) and says so, naming the period's end.
#[test]
fn an_end_before_the_start_is_warned_of() {
    let e = edited("r4/encounter-finished-inpatient.json", |v| {
        v["period"]["start"] = "2024-01-16T09:15:00+00:00".into();
    });
    assert_eq!(e.occurred_at, t("2024-01-15T14:00:00Z"));
    let w = &e.warnings[..];
    assert!(
        w.len() == 1
            && w[0].code == WarningCode::BadTimestamp
            && w[0].message.contains("before it starts")
            && w[0]
                .location
                .as_deref()
                .is_some_and(|l| l.ends_with(".period.end")),
        "{w:?}"
    );
}

#[test]
fn a_period_end_before_1800_is_no_end() {
    let e = edited("r4/encounter-finished-inpatient.json", |v| {
        v["period"]["end"] = "0000-01-01T00:00:00+00:00".into();
        v["meta"] = serde_json::json!({"lastUpdated": "2024-01-15T14:00:00Z"});
    });
    assert_eq!(e.event_type, EventType::EncounterEnded);
    assert_eq!(e.encounter.as_ref().unwrap().ended_at, None);
    assert_eq!(e.occurred_at, t("2024-01-15T14:00:00Z"));
    assert!(
        e.warnings
            .iter()
            .any(|w| w.code == WarningCode::BadTimestamp && w.message.contains("before 1800")),
        "{:?}",
        e.warnings
    );
    let mut v: serde_json::Value =
        serde_json::from_slice(&common::load("r4/encounter-finished-inpatient.json")).unwrap();
    v["period"]["end"] = "0000-01-01T00:00:00+00:00".into();
    assert!(v["meta"].get("lastUpdated").is_none());
    let err = tocsin_fhir::normalise_json(&serde_json::to_vec(&v).unwrap(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no discharge time"), "{err}");
}

/// A DocumentReference naming several encounters is matched by the first
/// only, and says so, naming the others: they went without a word (a
/// letter listing the last stay, then this one, waited for the last, and
/// this one was reported missing).
#[test]
fn a_document_naming_several_encounters_says_which_it_is_matched_by() {
    let e = edited("r4/documentreference-current-clinic-letter.json", |v| {
        let list = v["context"]["encounter"].as_array_mut().unwrap();
        list.push(serde_json::json!({"reference": "Encounter/enc-2"}));
    });
    assert_eq!(e.encounter.as_ref().unwrap().id.as_deref(), Some("V200001"));
    let w: Vec<_> = e
        .warnings
        .iter()
        .filter(|w| w.message.contains("only the first"))
        .map(|w| (w.raw.as_deref(), w.location.as_deref()))
        .collect();
    assert_eq!(
        w,
        [(
            Some("Encounter/enc-2"),
            Some("DocumentReference.context.encounter[1]")
        )],
        "{:?}",
        e.warnings
    );
    let one_only = one("r4/documentreference-current-clinic-letter.json");
    assert!(
        one_only
            .warnings
            .iter()
            .all(|w| !w.message.contains("only the first"))
    );
}

/// A period end given as a date, a month or a year ends with that period
/// (FHIR: the end includes any matching time), in local time: read as its
/// first instant, a discharge dated by its day was due 24 hours after the
/// midnight before it, and one dated by its month ended before it began.
#[test]
fn a_partial_period_end_is_the_end_of_its_period() {
    for (end, at) in [
        ("2024-01-15", "2024-01-15T23:59:59Z"),
        ("2024-07-15", "2024-07-15T22:59:59Z"),
        ("2024-01", "2024-01-31T23:59:59Z"),
    ] {
        let e = edited("r4/encounter-finished-inpatient.json", |v| {
            v["period"]["end"] = end.into();
        });
        assert_eq!(e.encounter.as_ref().unwrap().ended_at, Some(t(at)), "{end}");
    }
}

/// The message id is the tracker's duplicate key: versions that mean
/// different things must differ in it, and the same version must not.
#[test]
fn message_ids_tell_apart_the_versions_that_differ() {
    // Without a version, a withdrawing status is added.
    let e = one("r4/encounter-entered-in-error.json");
    assert_eq!(e.source.message_id, "Encounter/enc-3#entered-in-error");
    // The same encounter finished, then withdrawn, with no version or time
    // at all: still two ids, so the withdrawal is not taken for a repeat.
    let finished = edited("r4/encounter-finished-inpatient.json", |_| {});
    let withdrawn = edited("r4/encounter-finished-inpatient.json", |v| {
        v["status"] = "entered-in-error".into();
    });
    assert_eq!(
        finished.source.message_id,
        "Encounter/enc-1#end=2024-01-15T14:00:00Z"
    );
    assert_eq!(withdrawn.event_type, EventType::EncounterCancelled);
    assert_eq!(
        withdrawn.source.message_id,
        "Encounter/enc-1#entered-in-error"
    );
    // A later update of the same resource without a version keeps its id
    // when it states the same end (a repeated end is the tracker's to
    // recognise), and takes another when it corrects the end: dropped as a
    // duplicate, the correction never moved the deadline.
    let updated = edited("r4/encounter-finished-inpatient.json", |v| {
        v["meta"]["lastUpdated"] = "2024-01-15T15:00:00.250+01:00".into();
    });
    assert_eq!(updated.source.message_id, finished.source.message_id);
    let corrected = edited("r4/encounter-finished-inpatient.json", |v| {
        v["period"]["end"] = "2024-01-15T20:00:00Z".into();
    });
    assert_eq!(
        corrected.source.message_id,
        "Encounter/enc-1#end=2024-01-15T20:00:00Z"
    );
    // The same holds under one version number: engines that send every
    // update as version 1 had the corrected end dropped as a duplicate.
    let versioned = |end: &'static str| {
        edited("r4/encounter-finished-inpatient.json", move |v| {
            v["meta"]["versionId"] = "1".into();
            v["period"]["end"] = end.into();
        })
        .source
        .message_id
    };
    assert_eq!(
        versioned("2024-01-15T14:00:00Z"),
        "Encounter/enc-1/_history/1#end=2024-01-15T14:00:00Z"
    );
    assert_ne!(
        versioned("2024-01-15T14:00:00Z"),
        versioned("2024-01-15T20:00:00Z")
    );
    // One version number for two statuses (the fixtures' letter-1 is
    // current, then entered in error, both as version 1).
    let current = one("r4/documentreference-current-clinic-letter.json");
    let withdrawn = one("r4/documentreference-entered-in-error.json");
    assert_eq!(withdrawn.event_type, EventType::DocumentCancelled);
    assert_eq!(
        (current.source.message_id, withdrawn.source.message_id),
        (
            "DocumentReference/letter-1/_history/1".to_string(),
            "DocumentReference/letter-1/_history/1#entered-in-error".to_string()
        )
    );
}

/// An encounter named by an absolute or versioned URL correlates with the
/// Encounter's own event, which carries `Encounter/id`.
#[test]
fn encounter_references_are_read_as_type_and_id() {
    for written in [
        "https://fhir.rxx.nhs.uk/R4/Encounter/enc-2",
        "Encounter/enc-2/_history/7",
        "https://fhir.rxx.nhs.uk/R4/Encounter/enc-2/_history/7",
    ] {
        let e = edited("r4/documentreference-entered-in-error.json", |v| {
            v["context"]["encounter"][0]["reference"] = written.into();
        });
        let enc = e.encounter.unwrap();
        assert_eq!(
            enc.reference.as_deref(),
            Some("Encounter/enc-2"),
            "{written}"
        );
    }
    // A contained encounter's `#id` is local: never read as a server's
    // Encounter/id.
    let e = edited("r4/documentreference-entered-in-error.json", |v| {
        v["contained"] = serde_json::json!([{
            "resourceType": "Encounter", "id": "enc-2", "status": "finished",
            "class": {"code": "IMP"}
        }]);
        v["context"]["encounter"][0]["reference"] = "#enc-2".into();
    });
    assert_eq!(e.encounter.unwrap().reference.as_deref(), Some("#enc-2"));
}

/// FHIR gives an Encounter's identifiers no order: the visit number is the
/// identifier of a configured visit-number system wherever it is listed
/// (before, the first was taken, and a copy listing them in another order,
/// or a PAS spell number second, did not correlate). Without one
/// configured, the first is taken with a warning.
#[test]
fn the_visit_number_is_the_identifier_of_the_configured_system() {
    let two = |v: &mut serde_json::Value| {
        v["identifier"] = serde_json::json!([
            {"system": "https://fhir.rxx.nhs.uk/Id/epr-encounter", "value": "ENC-731552"},
            {"system": "https://fhir.rxx.nhs.uk/Id/visit-number", "value": "V123456"}
        ]);
    };
    let guessed = edited("r4/encounter-finished-inpatient.json", two);
    assert_eq!(guessed.encounter.unwrap().id.as_deref(), Some("ENC-731552"));
    let w = &guessed.warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.contains("encounter_identifier_systems"),
        "{w:?}"
    );
    assert_eq!(w[0].location.as_deref(), Some("Encounter.identifier"));

    let mut json: serde_json::Value =
        serde_json::from_slice(&load("r4/encounter-finished-inpatient.json")).unwrap();
    two(&mut json);
    let cfg = FhirConfig {
        encounter_identifier_systems: vec![
            "https://fhir.rxx.nhs.uk/Id/spell-number".into(),
            "https://fhir.rxx.nhs.uk/Id/visit-number".into(),
        ],
        ..FhirConfig::default()
    };
    let e = normalise_json(&serde_json::to_vec(&json).unwrap(), &cfg).unwrap();
    assert_eq!(
        e[0].encounter.as_ref().unwrap().id.as_deref(),
        Some("V123456")
    );
    assert!(e[0].warnings.is_empty(), "{:?}", e[0].warnings);
    // One identifier: no choice, no warning.
    assert!(
        one("r4/encounter-finished-inpatient.json")
            .warnings
            .is_empty()
    );
}

/// A document naming its encounter by an identifier alone takes it as the
/// visit number; one of a system other than those the trust listed (an
/// EPR's encounter id, which never matches PV1-19) is warned of.
#[test]
fn an_encounter_named_by_an_identifier_of_an_unlisted_system_is_warned_of() {
    let cfg = FhirConfig {
        encounter_identifier_systems: vec!["https://fhir.rxx.nhs.uk/Id/visit-number".into()],
        ..FhirConfig::default()
    };
    let read = |system: &str| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&load("r4/documentreference-current-clinic-letter.json"))
                .unwrap();
        v["context"]["encounter"][0]["identifier"]["system"] = system.into();
        normalise_json(v.to_string().as_bytes(), &cfg)
            .unwrap()
            .remove(0)
    };
    let listed = read("https://fhir.rxx.nhs.uk/Id/visit-number");
    assert_eq!(listed.encounter.unwrap().id.as_deref(), Some("V200001"));
    assert!(listed.warnings.is_empty(), "{:?}", listed.warnings);
    let other = read("https://fhir.rxx.nhs.uk/Id/epr-encounter");
    assert_eq!(other.encounter.unwrap().id.as_deref(), Some("V200001"));
    assert_eq!(other.warnings.len(), 1, "{:?}", other.warnings);
    assert_eq!(
        other.warnings[0].location.as_deref(),
        Some("DocumentReference.context.encounter.identifier")
    );
    assert_eq!(
        other.warnings[0].raw.as_deref(),
        Some("https://fhir.rxx.nhs.uk/Id/epr-encounter")
    );
    // With no systems listed, the default, any identifier is taken
    // silently, as before.
    assert!(
        one("r4/documentreference-current-clinic-letter.json")
            .warnings
            .is_empty()
    );
}

/// A finished outpatient attendance sent without an end took place at its
/// start: that is its end, not its last edit (an outcome coded days later
/// pushed the letter's deadline out). An inpatient stay without an end
/// still takes its last edit, nearer than its admission.
#[test]
fn a_finished_attendance_without_an_end_ends_at_its_start() {
    let without_end = |class: &'static str| {
        edited("r4/encounter-finished-inpatient.json", move |v| {
            v["class"]["code"] = class.into();
            v["period"].as_object_mut().unwrap().remove("end");
            v["meta"]["lastUpdated"] = "2024-01-20T09:00:00+00:00".into();
        })
    };
    let attendance = without_end("AMB");
    let start = attendance.encounter.as_ref().unwrap().started_at.unwrap();
    assert_eq!(attendance.occurred_at, start);
    assert_eq!(attendance.warnings.len(), 1, "{:?}", attendance.warnings);
    assert_eq!(attendance.warnings[0].code, WarningCode::BadTimestamp);
    let stay = without_end("IMP");
    assert_eq!(stay.occurred_at, t("2024-01-20T09:00:00Z"));
}

/// An NHS number whose verification status is not 01 "present and
/// verified" (02: present but not traced) is used, with a warning: it may
/// be another patient's. Verified (the fixture's 01), nothing is said.
#[test]
fn an_untraced_nhs_number_is_used_with_a_warning() {
    let e = edited("r4/bundle-document-discharge-summary.json", |v| {
        entry_of(v, "Patient")["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"]
            [0]["code"] = "02".into();
    });
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.raw.as_deref(), w.location.as_deref()))
        .collect();
    assert_eq!(
        w,
        [(
            WarningCode::Other,
            Some("02"),
            Some("Bundle.entry[1].resource.identifier[0].extension")
        )]
    );
    assert!(!e.warnings[0].message.contains("9434765919"));
    assert!(
        one("r4/bundle-document-discharge-summary.json")
            .warnings
            .is_empty()
    );
}

/// A patient whose generalPractitioner is a PractitionerRole has the
/// role's organization for its GP practice; one naming a Practitioner
/// alone has none, which is said (it was silent).
#[test]
fn a_gp_named_by_a_role_gives_its_practice_and_by_a_person_alone_is_said() {
    let e = edited("r4/bundle-document-discharge-summary.json", |v| {
        v["entry"].as_array_mut().unwrap().push(serde_json::json!({
            "fullUrl": "urn:uuid:9a1b0000-0000-4000-8000-0000000000ff",
            "resource": {"resourceType": "PractitionerRole", "id": "gp-role",
                "practitioner": {"reference": "urn:uuid:9a1b0000-0000-4000-8000-00000000000a"},
                "organization": {"reference": "urn:uuid:9a1b0000-0000-4000-8000-000000000004"}}
        }));
        entry_of(v, "Patient")["generalPractitioner"] =
            serde_json::json!([{"reference": "urn:uuid:9a1b0000-0000-4000-8000-0000000000ff"}]);
    });
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    let e = edited("r4/bundle-document-discharge-summary.json", |v| {
        entry_of(v, "Patient")["generalPractitioner"] =
            serde_json::json!([{"reference": "urn:uuid:9a1b0000-0000-4000-8000-00000000000a"}]);
    });
    assert_eq!(e.gp_practice, None);
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(w, [(WarningCode::Other, Some("Bundle.entry[9].resource"))]);
    assert!(e.warnings[0].message.contains("names a Practitioner"));
}

/// `hospitalization.dischargeDisposition` is the encounter's discharge
/// disposition (a policy may exclude an attendance that ended in
/// admission by it).
#[test]
fn the_discharge_disposition_is_read() {
    let e = edited("r4/encounter-finished-inpatient.json", |v| {
        v["hospitalization"] = serde_json::json!({
            "dischargeDisposition": {"coding": [{
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DischargeDestination",
                "code": "19"
            }]}
        });
    });
    assert_eq!(
        e.encounter.unwrap().discharge_disposition.as_deref(),
        Some("19")
    );
}

#[test]
fn unmapped_encounter_class_is_other_with_a_warning() {
    let e = one("r4/encounter-unmapped-class.json");
    assert_eq!(e.encounter.unwrap().kind, Some(EncounterKind::Other));
    assert_eq!(e.warnings.len(), 1);
    assert_eq!(e.warnings[0].code, WarningCode::UnmappedCode);
    assert_eq!(e.warnings[0].raw.as_deref(), Some("XYZ"));
    assert_eq!(e.warnings[0].location.as_deref(), Some("Encounter.class"));
}

#[test]
fn current_document_reference_with_contained_patient() {
    let e = one("r4/documentreference-current-clinic-letter.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.occurred_at, t("2024-01-15T15:00:00Z"));
    assert_eq!(e.source.message_id, "DocumentReference/letter-1/_history/1");
    assert_eq!(e.source.message_type, "DocumentReference");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(
        e.patient.local_ids,
        vec![Identifier {
            system: MRN.into(),
            value: "RXX1234567".into()
        }]
    );
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    let enc = e.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("V200001"));
    assert_eq!(enc.reference, None);
    let d = e.document.unwrap();
    assert_eq!(d.id, "DOC-letter-1");
    assert_eq!(d.kind, DocumentKind::ClinicLetter);
    assert_eq!(d.type_code.as_deref(), Some("371531000"));
    assert_eq!(d.issued_at, t("2024-01-15T15:00:00Z"));
    assert_eq!(d.replaces, None);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

#[test]
fn replacing_document_reference() {
    let e = one("r4/documentreference-replaces.json");
    assert_eq!(e.event_type, EventType::DocumentReplaced);
    let d = e.document.unwrap();
    assert_eq!(d.id, "DOC-letter-2");
    assert_eq!(d.replaces.as_deref(), Some("DOC-letter-1"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// A replacement naming the replaced DocumentReference by reference alone
/// is taken to replace the document of that resource's id (what a
/// DocumentReference without an identifier is read as), and says so: as
/// written (`DocumentReference/letter-1`) it named no document ever read.
#[test]
fn a_replacement_by_reference_names_the_resource_id() {
    let original = edited("r4/documentreference-current-clinic-letter.json", |v| {
        let v = v.as_object_mut().unwrap();
        v.remove("masterIdentifier");
        v.remove("identifier");
    });
    let original = original.document.unwrap();
    assert_eq!(original.id, "letter-1");
    for written in [
        "DocumentReference/letter-1",
        "https://fhir.rxx.nhs.uk/R4/DocumentReference/letter-1/_history/1",
    ] {
        let e = edited("r4/documentreference-replaces.json", |v| {
            v["relatesTo"][0]["target"] = serde_json::json!({ "reference": written });
        });
        assert_eq!(e.event_type, EventType::DocumentReplaced);
        assert_eq!(e.document.unwrap().replaces, Some(original.id.clone()));
        let w = &e.warnings[..];
        assert!(
            w.len() == 1
                && w[0].raw.as_deref() == Some(written)
                && w[0].message.contains("by reference, not identifier"),
            "{w:?}"
        );
    }
}

#[test]
fn entered_in_error_document_reference_names_its_encounter_by_reference() {
    let e = one("r4/documentreference-entered-in-error.json");
    assert_eq!(e.event_type, EventType::DocumentCancelled);
    let enc = e.encounter.unwrap();
    assert_eq!(enc.reference.as_deref(), Some("Encounter/enc-2"));
    assert_eq!(enc.id, None);
    // A standalone resource may name an encounter held elsewhere: the
    // reference itself correlates, so this is no warning.
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// A preliminary Composition is a draft that has not left the trust: the
/// bundle's event is `other`, with a warning at the Composition's status.
#[test]
fn a_preliminary_composition_is_no_transmission() {
    let e = edited("r4/bundle-document-discharge-summary.json", |v| {
        entry_of(v, "Composition")["status"] = "preliminary".into();
    });
    assert_eq!(e.event_type, EventType::Other);
    assert!(e.document.is_some());
    let w: Vec<_> = e
        .warnings
        .iter()
        .filter(|w| w.raw.as_deref() == Some("preliminary"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", e.warnings);
    assert_eq!(w[0].code, WarningCode::Other);
    assert!(
        w[0].location
            .as_deref()
            .is_some_and(|l| l.ends_with(".status")),
        "{:?}",
        w[0].location
    );
    let final_ = one("r4/bundle-document-discharge-summary.json");
    assert_eq!(final_.event_type, EventType::DocumentIssued);
}

/// A DocumentReference whose docStatus is preliminary is a draft: as for a
/// preliminary Composition, `other` with a warning at its docStatus, so it
/// settles no expectation. Final, amended or no docStatus: issued. The XML
/// form gives the same.
#[test]
fn a_preliminary_document_reference_is_no_transmission() {
    let with = |doc_status: Option<&str>| {
        edited("r4/documentreference-current-clinic-letter.json", |v| {
            if let Some(s) = doc_status {
                v["docStatus"] = s.into();
            }
        })
    };
    let e = with(Some("preliminary"));
    assert_eq!(e.event_type, EventType::Other);
    assert!(e.document.is_some());
    let w: Vec<_> = e
        .warnings
        .iter()
        .filter(|w| w.raw.as_deref() == Some("preliminary"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", e.warnings);
    assert_eq!(w[0].code, WarningCode::Other);
    assert_eq!(
        w[0].location.as_deref(),
        Some("DocumentReference.docStatus")
    );
    let preliminary_warnings = e.warnings.clone();
    for final_ in [None, Some("final"), Some("amended")] {
        let e = with(final_);
        assert_eq!(e.event_type, EventType::DocumentIssued, "{final_:?}");
        assert!(e.warnings.is_empty(), "{final_:?}: {:?}", e.warnings);
    }
    // A docStatus outside its code set is refused, as Composition.status is.
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/documentreference-current-clinic-letter.json")).unwrap();
    v["docStatus"] = "draft".into();
    let err = normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default()).unwrap_err();
    assert_eq!(err.reason_code(), "invalid_resource");
    // The XML twin with a preliminary docStatus.
    let xml = String::from_utf8(load(
        "xml/twins/r4/documentreference-current-clinic-letter.xml",
    ))
    .unwrap()
    .replacen(
        r#"<status value="current"/>"#,
        r#"<status value="current"/><docStatus value="preliminary"/>"#,
        1,
    );
    assert!(xml.contains("docStatus"));
    let x = normalise_xml(xml.as_bytes(), &FhirConfig::default()).unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].event_type, EventType::Other);
    assert_eq!(x[0].warnings, preliminary_warnings);
}

#[test]
fn discharge_summary_document_bundle() {
    let e = one("r4/bundle-document-discharge-summary.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.occurred_at, t("2024-01-15T14:30:00Z"));
    assert_eq!(e.source.message_id, "RXX-DS-2024-000123");
    assert_eq!(e.source.message_type, "Bundle/document");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.patient.local_ids.len(), 1);
    // GP resolved through the bundle's Organization entry (urn:uuid).
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    let enc = e.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("V123456"));
    // A urn:uuid is local to the bundle: kept as written.
    assert_eq!(
        enc.reference.as_deref(),
        Some("urn:uuid:9a1b0000-0000-4000-8000-000000000003")
    );
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(enc.ended_at, Some(t("2024-01-15T14:00:00Z")));
    let d = e.document.unwrap();
    // The Composition's identifier (the bundle's is this sending's: the
    // message id).
    assert_eq!(d.id, "c0a80001-0000-4000-8000-000000000001");
    assert_eq!(e.source.message_id, "RXX-DS-2024-000123");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.type_code.as_deref(), Some("373942005"));
    assert_eq!(d.issued_at, t("2024-01-15T14:30:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T13:45:00Z")));
    assert_eq!(d.recipient, None);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// A Patient its model refuses for an element tocsin does not read (a code
/// in the wrong case) no longer loses the whole document: its identifiers
/// and GP practice are read from the JSON, with a warning. Before, the
/// summary was refused and its discharge went overdue. (An Organization
/// likewise: `a_malformed_organization_is_read_for_its_identifiers_with_one_warning`.)
#[test]
fn a_miscoded_patient_element_tocsin_does_not_read_does_not_lose_the_document() {
    let e = with_official_use("Patient");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    read_leniently(&e, "Patient", "Bundle.entry[1].resource");
}

/// The discharge summary bundle with `resource`'s first identifier's `use`
/// in the wrong case, which its model refuses.
fn with_official_use(resource: &'static str) -> tocsin_event::InterfaceEvent {
    edited("r4/bundle-document-discharge-summary.json", |v| {
        entry_of(v, resource)["identifier"][0]["use"] = "Official".into();
    })
}

/// The one warning of a resource its model refused and that was read from
/// its JSON instead: where, which resource, and not the refused value.
fn read_leniently(e: &tocsin_event::InterfaceEvent, resource: &str, at: &str) {
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(w, [(WarningCode::Other, Some(at))]);
    assert!(
        e.warnings[0]
            .message
            .contains(&format!("invalid {resource}")),
        "{:?}",
        e.warnings
    );
    assert!(
        !e.warnings[0].message.contains("Official"),
        "the refused value is not echoed: {:?}",
        e.warnings
    );
}

/// An Encounter a document names that its model refuses (an identifier's
/// `use` in the wrong case) is read for its visit number, with a warning:
/// the summary was refused whole, and its discharge went overdue.
#[test]
fn a_miscoded_encounter_a_document_names_does_not_lose_the_document() {
    let e = with_official_use("Encounter");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let enc = e.encounter.as_ref().expect("the encounter named");
    assert_eq!(enc.id.as_deref(), Some("V123456"));
    read_leniently(&e, "Encounter", "Bundle.entry[2].resource");
}

/// A message whose event is not in `[fhir.itk_event]` (here an R4
/// `eventUri`, which was dropped without a word) still carries its
/// document: a payload whose own type is mapped gives the document event,
/// with the unmapped event warned of. One whose type is not stays `other`.
#[test]
fn a_message_with_an_unmapped_event_gives_the_document_it_carries() {
    let message = |type_code: &str| {
        serde_json::json!({
          "resourceType": "Bundle", "type": "message",
          "timestamp": "2024-01-15T15:00:00+00:00",
          "entry": [
            {"fullUrl": "urn:uuid:h", "resource": {"resourceType": "MessageHeader", "id": "mh-77",
              "eventUri": "https://fhir.trust.example/MessageDefinition/discharge-summary",
              "source": {"endpoint": "urn:nhs-uk:addressing:ods:RXX"},
              "destination": [{"endpoint": "urn:nhs-uk:addressing:ods:B86001"}],
              "focus": [{"reference": "urn:uuid:d"}]}},
            {"fullUrl": "urn:uuid:d", "resource": {"resourceType": "Bundle", "type": "document",
              "identifier": {"value": "doc-77"}, "timestamp": "2024-01-15T14:55:00+00:00",
              "entry": [
                {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition", "status": "final",
                  "type": {"coding": [{"system": "http://snomed.info/sct", "code": type_code}]},
                  "subject": {"reference": "urn:uuid:p"}, "date": "2024-01-15T14:30:00+00:00",
                  "author": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RXX"}}],
                  "title": "Discharge summary"}},
                {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient",
                  "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]}}
              ]}}
          ]
        })
    };
    let cfg = FhirConfig::default();
    let read = |v: serde_json::Value| {
        let mut e = normalise_json(v.to_string().as_bytes(), &cfg).unwrap();
        assert_eq!(e.len(), 1);
        e.remove(0)
    };
    let e = read(message("373942005"));
    assert_eq!(e.event_type, EventType::DocumentIssued);
    let d = e.document.as_ref().expect("the document carried");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.id, "doc-77");
    assert_eq!(d.recipient.as_deref(), Some("B86001"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(
        w,
        [(
            WarningCode::UnmappedCode,
            Some("Bundle.entry[0].resource.event")
        )],
        "{:?}",
        e.warnings
    );

    let e = read(message("1234567"));
    assert_eq!(
        e.event_type,
        EventType::Other,
        "nothing it carries is known"
    );
    assert!(
        e.warnings
            .iter()
            .any(|w| w.code == WarningCode::UnmappedCode
                && w.raw.as_deref()
                    == Some("https://fhir.trust.example/MessageDefinition/discharge-summary")),
        "{:?}",
        e.warnings
    );
}

/// A DocumentReference without `date` or `meta.lastUpdated` whose
/// attachment says when it was created is issued then, with a warning (it
/// was refused, and the letter that had left went missing); with no time
/// at all it is still refused, with a typed error.
#[test]
fn a_document_reference_with_only_its_attachment_s_creation_is_issued_then() {
    let e = edited("r4/documentreference-current-clinic-letter.json", |v| {
        v.as_object_mut().unwrap().remove("date");
        v["content"][0]["attachment"]["creation"] = "2024-01-15T14:20:00+00:00".into();
    });
    assert_eq!(e.event_type, EventType::DocumentIssued);
    let d = e.document.as_ref().unwrap();
    assert_eq!(d.issued_at, t("2024-01-15T14:20:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T14:20:00Z")));
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(
        w,
        [(WarningCode::BadTimestamp, Some("DocumentReference.date"))]
    );

    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/documentreference-current-clinic-letter.json")).unwrap();
    v.as_object_mut().unwrap().remove("date");
    let err = normalise_json(v.to_string().as_bytes(), &FhirConfig::default()).unwrap_err();
    assert_eq!(err.reason_code(), "missing_timestamp");
}

#[test]
fn unresolved_bundle_references_give_what_resolved_and_warnings() {
    let e = one("r4/bundle-document-unresolved-references.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number, None);
    assert_eq!(
        e.encounter.as_ref().unwrap().reference.as_deref(),
        Some("Encounter/not-in-bundle")
    );
    assert_eq!(
        e.document.as_ref().unwrap().kind,
        DocumentKind::DischargeSummary
    );
    let w: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref().unwrap()))
        .collect();
    assert_eq!(
        w,
        vec![
            (
                WarningCode::UnresolvedReference,
                "Bundle.entry[0].resource.subject"
            ),
            (
                WarningCode::UnresolvedReference,
                "Bundle.entry[0].resource.encounter"
            ),
        ]
    );
}

/// Unresolved references go to `raw`, never to the message: a PDS
/// Patient's id is its NHS number, and conditional references carry one.
#[test]
fn unresolved_references_keep_patient_identifiers_out_of_warning_messages() {
    const NHS: &str = "9434765919";
    let pds = format!("https://api.service.nhs.uk/personal-demographics/FHIR/R4/Patient/{NHS}");
    let conditional = format!("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}");
    let encounter = format!("Encounter?patient={NHS}");
    let mut checked = 0;
    let mut check = |e: &tocsin_event::InterfaceEvent, references: &[&str]| {
        let unresolved: Vec<_> = e
            .warnings
            .iter()
            .filter(|w| w.code == WarningCode::UnresolvedReference)
            .collect();
        assert_eq!(unresolved.len(), references.len(), "{:?}", e.warnings);
        for (w, r) in unresolved.iter().zip(references) {
            assert_eq!(w.raw.as_deref(), Some(*r));
            assert!(w.location.is_some());
        }
        for w in &e.warnings {
            assert!(!w.message.contains(NHS), "{w:?}");
        }
        checked += 1;
    };
    // A document's subject and encounter (subject.rs: subject, encounter_ref).
    for subject in [&pds, &conditional] {
        let e = edited("r4/bundle-document-unresolved-references.json", |v| {
            let c = entry_of(v, "Composition");
            c["subject"]["reference"] = subject.as_str().into();
            c["encounter"]["reference"] = encounter.as_str().into();
        });
        check(&e, &[subject, &encounter]);
    }
    // A standalone DocumentReference's subject.
    let e = edited("r4/documentreference-current-clinic-letter.json", |v| {
        v["subject"] = serde_json::json!({ "reference": pds });
        v["contained"] = serde_json::json!([]);
    });
    check(&e, &[&pds]);
    // A message whose focus resolves nowhere (bundle.rs: document_message).
    let e = edited("r4/bundle-message-itk003d.json", |v| {
        entry_of(v, "MessageHeader")["focus"] = serde_json::json!([{ "reference": pds }]);
    });
    check(&e, &[&pds]);
    assert_eq!(checked, 4);
}

#[test]
fn r4_message_carrying_a_document_bundle() {
    let e = one("r4/bundle-message-itk003d.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    // R4 MessageHeader has no timestamp: Bundle.timestamp is the send time.
    assert_eq!(e.occurred_at, t("2024-01-15T14:35:00Z"));
    assert_eq!(e.source.message_id, "3f0a2d8e-1111-4a7b-9c1d-000000000001");
    assert_eq!(e.source.message_type, "ITK003D");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.encounter.unwrap().id.as_deref(), Some("V123456"));
    let d = e.document.unwrap();
    assert_eq!(d.id, "c0a80001-0000-4000-8000-000000000001");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.issued_at, t("2024-01-15T14:35:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T13:45:00Z")));
    assert_eq!(d.recipient.as_deref(), Some("B86001"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// Without a sender, the sending facility is the ODS code the source
/// endpoint carries, read as the recipient's destination endpoint is; an
/// endpoint that carries none is kept as sent.
#[test]
fn a_message_without_sender_takes_the_ods_code_of_its_source_endpoint() {
    let from = |endpoint: &str| {
        edited("r4/bundle-message-itk003d.json", |v| {
            let mh = entry_of(v, "MessageHeader");
            mh.as_object_mut().unwrap().remove("sender");
            mh["source"]["endpoint"] = endpoint.into();
        })
        .source
        .sending_facility
    };
    assert_eq!(
        from("urn:nhs-uk:addressing:ods:RBA").as_deref(),
        Some("RBA")
    );
    assert_eq!(from("RXXOT001").as_deref(), Some("RXXOT001"));
    assert_eq!(
        from("urn:nhs-uk:addressing:mesh:X26OT001").as_deref(),
        Some("urn:nhs-uk:addressing:mesh:X26OT001")
    );
    // With a sender, the sender's code, as before.
    let e = one("r4/bundle-message-itk003d.json");
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
}

#[test]
fn a_message_dates_a_document_reference_that_carries_no_time_of_its_own() {
    // The message's focus is a DocumentReference with neither date nor
    // meta.lastUpdated. Alone it could not be dated (it is rejected); in a
    // message it was issued when the message was sent.
    let e = edited("r4/bundle-message-itk003d.json", |m| {
        *entry_of(m, "Bundle") = serde_json::json!({
            "resourceType": "DocumentReference",
            "id": "r4-doc-undated",
            "masterIdentifier": {"value": "RXX-DS-UNDATED"},
            "status": "current",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
            "subject": {"identifier": {
                "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"
            }},
            "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/ds"}}]
        });
    });
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.occurred_at, t("2024-01-15T14:35:00Z"));
    let d = e.document.unwrap();
    assert_eq!(d.id, "RXX-DS-UNDATED");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.issued_at, t("2024-01-15T14:35:00Z"));
    assert!(
        e.warnings
            .iter()
            .all(|w| w.code != WarningCode::BadTimestamp),
        "{:?}",
        e.warnings
    );
}

#[test]
fn transaction_gives_one_event_per_tracked_entry_in_order() {
    let ev = events("r4/bundle-transaction.json");
    let kinds: Vec<_> = ev
        .iter()
        .map(|e| (e.event_type, e.source.sequence))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventType::EncounterEnded, 0),
            (EventType::DocumentIssued, 1)
        ]
    );
    assert_ne!(ev[0].event_id, ev[1].event_id);
    // Both resolve the Patient entry by its urn:uuid fullUrl.
    for e in &ev {
        assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    }
    assert_eq!(
        ev[0].source.message_id,
        "Encounter/enc-9#end=2024-01-15T14:00:00Z"
    );
    assert_eq!(
        ev[1].source.message_id,
        "DocumentReference/letter-9/_history/1"
    );
}

/// A DELETE entry (no resource) in a transaction or history bundle gives
/// no event, but a warning naming the entry and its resource type, never
/// its id (a PDS Patient's id is an NHS number); reads (GET) carry nothing
/// and give none.
#[test]
fn delete_entries_are_not_dropped_in_silence() {
    let delete = |url: &str| serde_json::json!({ "request": { "method": "DELETE", "url": url } });
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-transaction.json")).unwrap();
    let entries = v["entry"].as_array_mut().unwrap();
    entries.insert(1, delete("Patient/9434765919"));
    entries.push(delete("Encounter?identifier=V9"));
    entries
        .push(serde_json::json!({ "request": { "method": "GET", "url": "Patient/9434765919" } }));
    let ev = normalise_json(&serde_json::to_vec(&v).unwrap(), &FhirConfig::default()).unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        [EventType::EncounterEnded, EventType::DocumentIssued]
    );
    let w: Vec<_> = ev
        .iter()
        .flat_map(|e| &e.warnings)
        .filter(|w| w.code == WarningCode::Other)
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].location.as_deref(), Some("Bundle.entry[1]"));
    assert!(
        w[0].message.contains("DELETE, resource type Patient"),
        "{}",
        w[0].message
    );
    assert_eq!(w[1].location.as_deref(), Some("Bundle.entry[5]"));
    assert!(
        w[1].message.contains("DELETE, resource type Encounter"),
        "{}",
        w[1].message
    );
    for w in ev.iter().flat_map(|e| &e.warnings) {
        assert!(!w.message.contains("9434765919"), "{w:?}");
        assert_eq!(w.raw, None);
    }

    // A history bundle of deletions alone: its one `other` event carries them.
    let history = serde_json::json!({
        "resourceType": "Bundle", "type": "history",
        "meta": { "lastUpdated": "2024-03-01T10:00:00Z" },
        "entry": [
            { "request": { "method": "DELETE", "url": "DocumentReference/letter-9/_history/2" },
              "response": { "status": "204" } }
        ]
    });
    let ev = normalise_json(
        &serde_json::to_vec(&history).unwrap(),
        &FhirConfig::default(),
    )
    .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event_type, EventType::Other);
    assert_eq!(ev[0].warnings.len(), 1, "{:?}", ev[0].warnings);
    assert_eq!(
        ev[0].warnings[0].location.as_deref(),
        Some("Bundle.entry[0]")
    );
    assert!(
        ev[0].warnings[0]
            .message
            .contains("DELETE, resource type DocumentReference")
    );
}

#[test]
fn bundle_with_nothing_tracked_is_one_other_event() {
    let e = one("r4/bundle-collection-nothing-tracked.json");
    assert_eq!(e.event_type, EventType::Other);
    assert_eq!(e.source.message_type, "Bundle/collection");
    assert_eq!(e.source.message_id, "coll-1");
    assert_eq!(e.occurred_at, t("2024-03-01T10:00:00Z"));
}

#[test]
fn untracked_resource_type_is_other_not_an_error() {
    let e = one("r4/observation-other.json");
    assert_eq!(e.event_type, EventType::Other);
    assert_eq!(e.source.message_type, "Observation");
    assert_eq!(e.source.message_id, "Observation/obs-2/_history/2");
    assert_eq!(e.occurred_at, t("2024-03-02T11:00:00Z"));
    assert!(e.warnings.is_empty());
}

#[test]
fn invalid_nhs_number_is_null_with_the_raw_value_in_a_warning() {
    let e = one("r4/patient-invalid-nhs-number.json");
    assert_eq!(e.event_type, EventType::Other);
    assert_eq!(e.patient.nhs_number, None);
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    let w = &e.warnings[0];
    assert_eq!(w.code, WarningCode::InvalidNhsNumber);
    assert_eq!(w.raw.as_deref(), Some("9434765918"));
    assert_eq!(w.location.as_deref(), Some("Patient.identifier[0]"));
    // No time in a bare Patient: flagged, deterministic.
    assert_eq!(e.warnings[1].code, WarningCode::BadTimestamp);
    assert_eq!(e.occurred_at, chrono::DateTime::UNIX_EPOCH);
}

/// An NHS number under an older system still in use (GP Connect 0.x's,
/// the HL7 v3 OID) is the NHS number, checked as one; under a system not
/// listed it is a local id, as before.
#[test]
fn an_nhs_number_under_a_legacy_system_is_the_nhs_number() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/patient-invalid-nhs-number.json")).unwrap();
    let cfg = FhirConfig::default();
    let read = |v: &serde_json::Value| normalise_json(v.to_string().as_bytes(), &cfg).unwrap();
    for system in [
        "http://fhir.nhs.net/Id/nhs-number",
        "urn:oid:2.16.840.1.113883.2.1.4.1",
    ] {
        v["identifier"] = serde_json::json!([{"system": system, "value": "9434765919"}]);
        let e = &read(&v)[0];
        assert_eq!(
            e.patient.nhs_number.as_deref(),
            Some("9434765919"),
            "{system}"
        );
        assert!(e.patient.local_ids.is_empty(), "{system}");
        v["identifier"] = serde_json::json!([{"system": system, "value": "9434765918"}]);
        let e = &read(&v)[0];
        assert_eq!(e.patient.nhs_number, None, "{system}: checked");
        assert_eq!(e.warnings[0].code, WarningCode::InvalidNhsNumber);
    }
    v["identifier"] =
        serde_json::json!([{"system": "https://trust.example/Id/mrn", "value": "9434765919"}]);
    let e = &read(&v)[0];
    assert_eq!(e.patient.nhs_number, None);
    assert_eq!(e.patient.local_ids.len(), 1);
}

/// Two different valid NHS numbers: the first is kept and the second is
/// warned of (it was dropped without a word); the same number twice is no
/// conflict.
#[test]
fn a_second_different_nhs_number_is_warned_of() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&load("r4/patient-invalid-nhs-number.json")).unwrap();
    let nhs =
        |n: &str| serde_json::json!({"system": "https://fhir.nhs.uk/Id/nhs-number", "value": n});
    v["identifier"] = serde_json::json!([nhs("9434765919"), nhs("4010232137")]);
    let cfg = FhirConfig::default();
    let e = &normalise_json(v.to_string().as_bytes(), &cfg).unwrap()[0];
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let w: Vec<_> = e
        .warnings
        .iter()
        .filter(|w| w.code == WarningCode::InvalidNhsNumber)
        .collect();
    assert_eq!(w.len(), 1, "{:?}", e.warnings);
    assert_eq!(w[0].raw.as_deref(), Some("4010232137"));
    assert_eq!(w[0].location.as_deref(), Some("Patient.identifier[1]"));
    assert!(!w[0].message.contains("4010232137"));
    v["identifier"] = serde_json::json!([nhs("9434765919"), nhs("943 476 5919")]);
    let e = &normalise_json(v.to_string().as_bytes(), &cfg).unwrap()[0];
    assert!(
        e.warnings
            .iter()
            .all(|w| w.code != WarningCode::InvalidNhsNumber),
        "{:?}",
        e.warnings
    );
}

#[test]
fn same_bytes_same_events_and_any_change_a_new_id() {
    let bytes = load("r4/bundle-document-discharge-summary.json");
    let cfg = FhirConfig::default();
    let a = normalise_json(&bytes, &cfg).unwrap();
    assert_eq!(a, normalise_json(&bytes, &cfg).unwrap());
    let mut spaced = bytes.clone();
    spaced.push(b' ');
    let b = normalise_json(&spaced, &cfg).unwrap();
    assert_ne!(a[0].event_id, b[0].event_id);
    assert_eq!(a[0].document, b[0].document);
}

#[test]
fn mappings_come_from_configuration() {
    let mut cfg = FhirConfig::default();
    cfg.document_type.insert(
        "http://snomed.info/sct|371531000".into(),
        DocumentKind::DischargeSummary,
    );
    cfg.encounter_class
        .insert("IMP".into(), EncounterKind::MentalHealth);
    let d = normalise_json(
        &load("r4/documentreference-current-clinic-letter.json"),
        &cfg,
    )
    .unwrap();
    assert_eq!(
        d[0].document.as_ref().unwrap().kind,
        DocumentKind::DischargeSummary
    );
    let e = normalise_json(&load("r4/encounter-finished-inpatient.json"), &cfg).unwrap();
    assert_eq!(
        e[0].encounter.as_ref().unwrap().kind,
        Some(EncounterKind::MentalHealth)
    );
}

/// The discharge summary with its Patient's GP practice and its
/// Composition's custodian both pointing at `org` (a `fullUrl`), after
/// `edit` has changed the bundle.
fn discharge_with_gp_and_custodian(
    org: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let mut b: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-document-discharge-summary.json")).unwrap();
    b["entry"][1]["resource"]["generalPractitioner"][0]["reference"] = org.into();
    b["entry"][0]["resource"]["custodian"]["reference"] = org.into();
    edit(&mut b);
    serde_json::to_vec(&b).unwrap()
}

#[test]
fn one_organization_as_gp_practice_and_custodian_gives_both_its_code() {
    let org = "urn:uuid:9a1b0000-0000-4000-8000-000000000005";
    let bytes = discharge_with_gp_and_custodian(org, |_| {});
    let e = normalise_json(&bytes, &FhirConfig::default()).unwrap();
    assert_eq!(e[0].gp_practice.as_deref(), Some("RXX"));
    assert_eq!(e[0].source.sending_facility.as_deref(), Some("RXX"));
    // The other Organization as both: its own code, for both.
    let org = "urn:uuid:9a1b0000-0000-4000-8000-000000000004";
    let bytes = discharge_with_gp_and_custodian(org, |_| {});
    let e = normalise_json(&bytes, &FhirConfig::default()).unwrap();
    assert_eq!(e[0].gp_practice.as_deref(), Some("B86001"));
    assert_eq!(e[0].source.sending_facility.as_deref(), Some("B86001"));
}

/// An Organization its model refuses no longer loses the document it is
/// the GP practice or custodian of (the summary was refused, and its
/// discharge went overdue though it had been sent): it is read from its
/// JSON for its identifiers alone, with one warning however often it is
/// named, and its ODS code is still found when only another element was
/// wrong.
#[test]
fn a_malformed_organization_is_read_for_its_identifiers_with_one_warning() {
    let org = "urn:uuid:9a1b0000-0000-4000-8000-000000000005";
    let cfg = FhirConfig::default();
    let warned = |e: &tocsin_event::InterfaceEvent| -> Vec<_> {
        e.warnings
            .iter()
            .map(|w| (w.code, w.location.clone().unwrap_or_default()))
            .collect()
    };
    let at = || vec![(WarningCode::Other, "Bundle.entry[4].resource".to_owned())];
    // No identifier list at all: no code to find.
    let unreadable = |b: &mut serde_json::Value| {
        b["entry"][4]["resource"]["identifier"] = "not a list".into();
    };
    let e = normalise_json(&discharge_with_gp_and_custodian(org, unreadable), &cfg).unwrap();
    assert_eq!(e[0].event_type, EventType::DocumentIssued);
    assert_eq!(
        e[0].document.as_ref().unwrap().id,
        "c0a80001-0000-4000-8000-000000000001"
    );
    assert_eq!(e[0].patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(
        (
            e[0].gp_practice.as_deref(),
            e[0].source.sending_facility.as_deref()
        ),
        (None, None)
    );
    assert_eq!(warned(&e[0]), at(), "{:?}", e[0].warnings);
    assert!(
        e[0].warnings[0].message.contains("invalid Organization")
            && e[0].warnings[0]
                .message
                .contains("only its identifiers were read"),
        "{:?}",
        e[0].warnings
    );
    // A code in the wrong case beside the ODS identifier: the code is read.
    let miscoded = |b: &mut serde_json::Value| {
        b["entry"][4]["resource"]["identifier"][0]["use"] = "Official".into();
    };
    let e = normalise_json(&discharge_with_gp_and_custodian(org, miscoded), &cfg).unwrap();
    assert_eq!(e[0].gp_practice.as_deref(), Some("RXX"));
    assert_eq!(e[0].source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(warned(&e[0]), at(), "{:?}", e[0].warnings);
    assert!(!e[0].warnings[0].message.contains("Official"));
}

/// A Composition in a transaction or collection bundle (a discharge summary
/// stored in a FHIR server together with its patient and encounter), or on
/// its own: the document, as a DocumentReference there is. It was dropped
/// without a word, and its discharge reported missing. No bundle or message
/// says when it was sent, so its time is Composition.date, with a warning.
#[test]
fn a_composition_outside_a_document_bundle_is_the_document() {
    let doc: serde_json::Value =
        serde_json::from_slice(&load("r4/bundle-document-discharge-summary.json")).unwrap();
    for kind in ["transaction", "collection"] {
        let mut b = doc.clone();
        b["type"] = kind.into();
        let ev = normalise_json(&serde_json::to_vec(&b).unwrap(), &FhirConfig::default()).unwrap();
        let issued: Vec<_> = ev
            .iter()
            .filter(|e| e.event_type == EventType::DocumentIssued)
            .collect();
        assert_eq!(issued.len(), 1, "{kind}: {ev:?}");
        let e = issued[0];
        let d = e.document.as_ref().unwrap();
        assert_eq!(d.kind, DocumentKind::DischargeSummary);
        assert_eq!(d.issued_at, t("2024-01-15T13:45:00Z"), "Composition.date");
        assert_eq!(e.source.message_type, "Composition");
        assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
        assert!(
            e.warnings
                .iter()
                .any(|w| w.message.contains("outside a document bundle")
                    && w.location.as_deref() == Some("Bundle.entry[0].resource.date")),
            "{kind}: {:?}",
            e.warnings
        );
    }
    // On its own (an NDJSON line, say): the same document, its references
    // to the bundle's other entries now unresolved.
    let ev = normalise_json(
        &serde_json::to_vec(&doc["entry"][0]["resource"]).unwrap(),
        &FhirConfig::default(),
    )
    .unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].event_type, EventType::DocumentIssued);
    assert_eq!(
        ev[0].document.as_ref().unwrap().kind,
        DocumentKind::DischargeSummary
    );
}

/// An absolute reference names one server: an entry whose fullUrl is the
/// same type and id on another server is not it (it was taken, its visit
/// number and times with it). The same server, with or without a version,
/// and a relative reference still resolve.
#[test]
fn an_absolute_reference_does_not_resolve_to_another_servers_entry() {
    let encounter_of = |reference: &str| {
        let e = edited("r4/bundle-document-discharge-summary.json", |b| {
            let enc = b["entry"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|e| e["resource"]["resourceType"] == "Encounter")
                .unwrap();
            enc["fullUrl"] = "https://srv/fhir/Encounter/enc1".into();
            enc["resource"]["id"] = "enc1".into();
            entry_of(b, "Composition")["encounter"] = serde_json::json!({ "reference": reference });
        });
        (e.encounter.unwrap(), e.warnings)
    };
    let (enc, warnings) = encounter_of("https://other/fhir/Encounter/enc1");
    assert_eq!((enc.id, enc.kind), (None, None));
    assert!(
        warnings
            .iter()
            .any(|w| w.code == WarningCode::UnresolvedReference),
        "{warnings:?}"
    );
    for same in [
        "https://srv/fhir/Encounter/enc1",
        "https://srv/fhir/Encounter/enc1/_history/2",
        "Encounter/enc1",
    ] {
        let (enc, _) = encounter_of(same);
        assert_eq!(enc.id.as_deref(), Some("V123456"), "{same}");
    }
}
