//! STU3: ITK3 Transfer of Care messages and responses, CareConnect resources.

mod common;

use common::{edited, entry_of, one, t};
use tocsin_event::{DocumentKind, EncounterKind, EventType, Format, WarningCode};

#[test]
fn itk3_edischarge_message() {
    let e = one("stu3/itk3-edischarge-ITK003D.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.source.format, Format::FhirStu3);
    assert_eq!(e.source.message_id, "7d0e0000-0000-4000-8000-000000000003");
    assert_eq!(e.source.message_type, "ITK003D");
    // Sender resolved to its Organization's ODS code.
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert_eq!(e.occurred_at, t("2024-01-15T14:40:00Z"));
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.gp_practice.as_deref(), Some("B86001"));
    let enc = e.encounter.unwrap();
    assert_eq!(enc.id.as_deref(), Some("V123456"));
    assert_eq!(enc.kind, Some(EncounterKind::Inpatient));
    assert_eq!(enc.ended_at, Some(t("2024-01-15T14:00:00Z")));
    assert_eq!(enc.site.as_deref(), Some("RXX"));
    let d = e.document.unwrap();
    // The Composition's identifier, which a Transfer of Care replacement
    // names in relatesTo (the nested bundle's is d5000000-...-0003).
    assert_eq!(d.id, "c5000000-0000-4000-8000-000000000003");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.type_code.as_deref(), Some("373942005"));
    // issued_at is the MessageHeader timestamp, not the document's.
    assert_eq!(d.issued_at, t("2024-01-15T14:40:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T13:45:00Z")));
    // MessageHeader.receiver -> Organization entry -> ODS code.
    assert_eq!(d.recipient.as_deref(), Some("B86001"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// A message whose MessageHeader has no focus (optional before ITK3 2.1),
/// or one that names nothing in the message, still carries its document:
/// its only document bundle is taken as the payload, with a warning, so
/// the discharge is settled (before, the event had no patient and no
/// encounter, and the discharge went missing). With two candidate
/// payloads, which is meant cannot be told: nothing is guessed.
#[test]
fn a_message_without_a_usable_focus_carries_its_only_document() {
    let whole = one("stu3/itk3-edischarge-ITK003D.json");
    for focus in [None, Some("urn:uuid:00000000-0000-4000-8000-00000000dead")] {
        let e = edited("stu3/itk3-edischarge-ITK003D.json", move |b| {
            let mh = &mut b["entry"][0]["resource"];
            match focus {
                None => drop(mh.as_object_mut().unwrap().remove("focus")),
                Some(r) => mh["focus"] = serde_json::json!([{ "reference": r }]),
            }
        });
        assert_eq!(e.event_type, EventType::DocumentIssued, "{focus:?}");
        assert_eq!(e.patient, whole.patient, "{focus:?}");
        assert_eq!(e.encounter, whole.encounter, "{focus:?}");
        assert_eq!(e.document, whole.document, "{focus:?}");
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert_eq!(e.warnings[0].code, WarningCode::UnresolvedReference);
        assert_eq!(e.warnings[0].raw.as_deref(), focus);
        assert!(e.warnings[0].message.contains("is taken as the payload"));
    }
    let two = edited("stu3/itk3-edischarge-ITK003D.json", |b| {
        b["entry"][0]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("focus");
        let entries = b["entry"].as_array_mut().unwrap();
        let payload = entries
            .iter()
            .find(|x| x["resource"]["resourceType"] == "Bundle")
            .cloned();
        let mut again = payload.expect("a document bundle");
        again["fullUrl"] = "urn:uuid:00000000-0000-4000-8000-0000000000b2".into();
        entries.push(again);
    });
    assert!(two.patient.nhs_number.is_none(), "{two:?}");
    assert!(two.encounter.is_none());
}

/// A Composition.date as some engines write it (a space for the `T`, an
/// offset without its colon) no longer rejects the whole summary: it is
/// read as it says.
#[test]
fn an_engine_written_composition_date_is_read() {
    for date in ["2024-01-15 13:45:00+00:00", "2024-01-15T13:45:00+0000"] {
        let e = edited("stu3/itk3-edischarge-ITK003D.json", move |b| {
            entry_of(entry_of(b, "Bundle"), "Composition")["date"] = date.into();
        });
        let d = e.document.expect("the summary is read");
        assert_eq!(d.authored_at, Some(t("2024-01-15T13:45:00Z")), "{date}");
    }
}

/// An ITK3 copy sent for information (`RecipientType` `FI`) to someone
/// other than the patient's GP practice settles nothing (`other`, the
/// document kept): read first, it settled the GP's expectation and the
/// GP's own copy was taken for a repeat. A copy for action, or for
/// information to the GP practice itself, is the transmission as before.
#[test]
fn an_itk3_copy_for_information_to_another_recipient_is_no_transmission_to_the_gp() {
    let copy = |recipient_type: &'static str, to: &'static str| {
        edited("stu3/itk3-edischarge-ITK003D.json", move |b| {
            b["entry"][0]["resource"]["extension"][0]["extension"][2]["valueCoding"]["code"] =
                recipient_type.into();
            b["entry"][1]["resource"]["identifier"][0]["value"] = to.into();
        })
    };
    let e = copy("FI", "VM1AB");
    assert_eq!(e.event_type, EventType::Other);
    let d = e.document.as_ref().expect("the document is kept");
    assert_eq!(d.recipient.as_deref(), Some("VM1AB"));
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    for (recipient_type, to) in [("FI", "B86001"), ("FA", "VM1AB"), ("FA", "B86001")] {
        let e = copy(recipient_type, to);
        assert_eq!(
            e.event_type,
            EventType::DocumentIssued,
            "{recipient_type} to {to}"
        );
    }
}

/// A Transfer of Care replacement is a new document (new bundle, new
/// Composition identifier) whose relatesTo names the original's
/// Composition identifier: its `replaces` is the original's `id`, so the
/// two link (the bundle's identifier was the id, and never matched). The
/// same document sent again in a new bundle keeps its id.
#[test]
fn an_itk3_replacement_names_its_original_by_its_id() {
    let original = one("stu3/itk3-edischarge-ITK003D.json");
    let replacement = edited("stu3/itk3-edischarge-ITK003D.json", |b| {
        b["entry"][0]["resource"]["id"] = "7d0e0000-0000-4000-8000-000000000099".into();
        let doc = &mut b["entry"][3]["resource"];
        doc["identifier"]["value"] = "d5000000-0000-4000-8000-000000000099".into();
        let comp = &mut doc["entry"][0]["resource"];
        comp["identifier"]["value"] = "c5000000-0000-4000-8000-000000000099".into();
        comp["relatesTo"] = serde_json::json!([{"code": "replaces",
            "targetIdentifier": {"value": "c5000000-0000-4000-8000-000000000003"}}]);
    });
    assert_eq!(replacement.event_type, EventType::DocumentReplaced);
    let (o, r) = (original.document.unwrap(), replacement.document.unwrap());
    assert_eq!(r.replaces.as_deref(), Some(o.id.as_str()));
    assert_ne!(r.id, o.id);
    let resent = edited("stu3/itk3-edischarge-ITK003D.json", |b| {
        b["entry"][3]["resource"]["identifier"]["value"] =
            "d5000000-0000-4000-8000-000000000100".into();
    });
    assert_eq!(resent.document.unwrap().id, o.id, "the same document");
    // A GUID's case carries no meaning: a resend or replacement that writes
    // it in capitals names the same document.
    let shouting = edited("stu3/itk3-edischarge-ITK003D.json", |b| {
        let doc = &mut b["entry"][3]["resource"];
        doc["identifier"]["value"] = "D5000000-0000-4000-8000-0000000000AB".into();
        let comp = &mut doc["entry"][0]["resource"];
        comp["identifier"]["value"] = "C5000000-0000-4000-8000-0000000000AB".into();
        comp["relatesTo"] = serde_json::json!([{"code": "replaces",
            "targetIdentifier": {"value": "C5000000-0000-4000-8000-000000000003"}}]);
    })
    .document
    .unwrap();
    assert_eq!(shouting.id, "c5000000-0000-4000-8000-0000000000ab");
    assert_eq!(shouting.replaces.as_deref(), Some(o.id.as_str()));
}

/// A Composition's replacement naming the original by reference alone
/// takes the id in it, with a warning that only a document read by that id
/// is matched (an ITK3 document's id is its identifier).
#[test]
fn an_itk3_replacement_by_reference_is_warned_of() {
    let replacement = edited("stu3/itk3-edischarge-ITK003D.json", |b| {
        let comp = &mut b["entry"][3]["resource"]["entry"][0]["resource"];
        comp["relatesTo"] = serde_json::json!([{"code": "replaces",
            "targetReference": {"reference": "Composition/c-old"}}]);
    });
    assert_eq!(replacement.event_type, EventType::DocumentReplaced);
    assert_eq!(
        replacement.document.unwrap().replaces.as_deref(),
        Some("c-old")
    );
    assert!(
        replacement
            .warnings
            .iter()
            .any(|w| w.raw.as_deref() == Some("Composition/c-old")
                && w.location
                    .as_deref()
                    .is_some_and(|l| l.ends_with(".relatesTo.target"))),
        "{:?}",
        replacement.warnings
    );
}

#[test]
fn itk3_outpatient_letter_message() {
    let e = one("stu3/itk3-outpatient-letter-ITK006D.json");
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.source.message_type, "ITK006D");
    let enc = e.encounter.unwrap();
    assert_eq!(enc.kind, Some(EncounterKind::Outpatient));
    assert_eq!(enc.id.as_deref(), Some("V200001"));
    assert_eq!(enc.started_at, Some(t("2024-07-01T09:30:00Z")));
    let d = e.document.unwrap();
    assert_eq!(d.kind, DocumentKind::ClinicLetter);
    assert_eq!(d.recipient.as_deref(), Some("B86001"));
}

/// The ITK006D fixture with its payload a collection of `entries` (ITK3's
/// `...C` shape) instead of a document bundle.
fn with_payload_collection(entries: serde_json::Value) -> tocsin_event::InterfaceEvent {
    edited("stu3/itk3-outpatient-letter-ITK006D.json", move |v| {
        let focus = v["entry"][0]["resource"]["focus"][0]["reference"].clone();
        let collection = v["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|x| x["fullUrl"] == focus)
            .unwrap();
        collection["resource"] = serde_json::json!({
            "resourceType": "Bundle", "id": "coll-1", "type": "collection",
            "entry": entries
        });
    })
}

/// An ITK3 message whose payload is a collection (the `...C` events, as
/// GP Connect Send Document's ITK007C) rather than a document bundle: its
/// DocumentReference is the document, its subject resolved among the
/// collection's entries. Before, the event had no patient, the message id
/// for a document id and a false "does not resolve" warning.
#[test]
fn itk3_collection_payload_gives_its_document_reference() {
    let e = with_payload_collection(serde_json::json!([
                {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000001",
                 "resource": {
                    "resourceType": "DocumentReference",
                    "id": "dr-1",
                    "masterIdentifier": {"value": "LETTER-77"},
                    "status": "current",
                    "type": {"coding": [{"system": "http://snomed.info/sct",
                                         "code": "371531000"}]},
                    "subject": {"reference": "urn:uuid:c0000000-0000-4000-8000-000000000002"},
                    "indexed": "2024-07-01T16:00:00+00:00",
                    "content": [{"attachment": {"contentType": "application/pdf",
                                                "url": "Binary/b1"}}]}},
                {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000002",
                 "resource": {
                    "resourceType": "Patient",
                    "id": "p-1",
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                                    "value": "9434765919"}]}}
    ]));
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let d = e.document.unwrap();
    assert_eq!(d.id, "LETTER-77");
    assert_eq!(d.kind, DocumentKind::ClinicLetter);
    assert_eq!(d.recipient.as_deref(), Some("B86001"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// GP Connect Send Document's payload collection carries a Composition,
/// its attachments as DocumentReferences beside it: the Composition is the
/// document (an attachment was taken for it: its id, no patient). A
/// collection holding neither says so, not "does not resolve".
#[test]
fn itk3_collection_payload_with_a_composition_gives_the_composition() {
    let patient = serde_json::json!({"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000002",
        "resource": {"resourceType": "Patient", "id": "p-1",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]}});
    let attachment = serde_json::json!({"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000003",
        "resource": {"resourceType": "DocumentReference", "id": "att-1",
            "masterIdentifier": {"value": "PHOTO-1"}, "status": "current",
            "type": {"coding": [{"system": "https://trust.example/CodeSystem/attachment", "code": "photo"}]},
            "indexed": "2024-07-01T16:00:00+00:00",
            "content": [{"attachment": {"contentType": "image/jpeg", "url": "Binary/b2"}}]}});
    let composition = serde_json::json!({"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000001",
        "resource": {"resourceType": "Composition", "id": "comp-1",
            "identifier": {"value": "OC-REPORT-1"}, "status": "final",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "371531000"}]},
            "subject": {"reference": "urn:uuid:c0000000-0000-4000-8000-000000000002"},
            "date": "2024-07-01T16:00:00+00:00",
            "author": [{"reference": "urn:uuid:c0000000-0000-4000-8000-000000000002"}],
            "title": "Clinic letter",
            "section": [{"entry": [{"reference": "urn:uuid:c0000000-0000-4000-8000-000000000003"}]}]}});
    let e = with_payload_collection(serde_json::json!([attachment, composition, patient]));
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let d = e.document.as_ref().unwrap();
    assert_eq!(d.id, "OC-REPORT-1");
    assert_eq!(d.kind, DocumentKind::ClinicLetter);
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);

    let e = with_payload_collection(serde_json::json!([patient]));
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(
        e.warnings[0]
            .message
            .contains("holds no Composition or DocumentReference"),
        "{:?}",
        e.warnings
    );
}

#[test]
fn itk3_response_ok_acknowledges_the_original_message() {
    let e = one("stu3/itk3-response-ok-ITK008M.json");
    assert_eq!(e.event_type, EventType::DeliveryAcknowledged);
    assert_eq!(e.source.message_type, "ITK008M");
    assert_eq!(e.source.message_id, "8e0f0000-0000-4000-8000-000000000001");
    assert_eq!(e.source.sending_facility.as_deref(), Some("B86001"));
    assert_eq!(e.occurred_at, t("2024-01-15T14:41:30Z"));
    let ack = e.ack.unwrap();
    assert_eq!(ack.of_message_id, "7d0e0000-0000-4000-8000-000000000003");
    assert_eq!(ack.code, "ok");
    assert_eq!(ack.detail_code.as_deref(), Some("20013"));
    assert_eq!(ack.text.as_deref(), Some("Success"));
    assert!(e.document.is_none());
    assert_eq!(e.patient.nhs_number, None);
}

/// A GP system that writes its response code in capitals ("OK",
/// "Fatal-Error") is read in lowercase with a warning: rejected, the
/// refusal it carried was lost with it. A code that is none of FHIR's
/// whatever its case is still refused, naming the MessageHeader.
#[test]
fn a_response_code_in_capitals_is_read_with_a_warning() {
    let with = |code: &'static str| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&common::load("stu3/itk3-response-fatal-error-ITK008M.json"))
                .unwrap();
        json["entry"][0]["resource"]["response"]["code"] = code.into();
        tocsin_fhir::normalise_json(&serde_json::to_vec(&json).unwrap(), &Default::default())
    };
    let e = with("Fatal-Error").unwrap().remove(0);
    assert_eq!(e.event_type, EventType::DeliveryFailed);
    assert_eq!(e.ack.as_ref().unwrap().code, "fatal-error");
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert_eq!(e.warnings[0].raw.as_deref(), Some("Fatal-Error"));
    let ok = edited("stu3/itk3-response-ok-ITK008M.json", |b| {
        b["entry"][0]["resource"]["response"]["code"] = "OK".into();
    });
    assert_eq!(ok.event_type, EventType::DeliveryAcknowledged);
    let spaced = with("fatal-error ").unwrap().remove(0);
    assert_eq!(spaced.event_type, EventType::DeliveryFailed);
    let err = with("Refused").unwrap_err().to_string();
    assert!(err.contains("MessageHeader"), "{err}");
}

/// A UUID is the same in capitals: a receiver that writes the id it answers
/// (or its own message id) in capitals names the lowercase message tocsin
/// read, so both come out lowercase and match; the response is not left
/// unmatched and a capitalised resend is recognised as the same message.
#[test]
fn itk3_response_naming_a_capitalised_uuid_names_the_same_message() {
    let e = edited("stu3/itk3-response-ok-ITK008M.json", |b| {
        let mh = &mut b["entry"][0]["resource"];
        let id = mh["id"].as_str().unwrap().to_ascii_uppercase();
        mh["id"] = id.into();
        let of = mh["response"]["identifier"]
            .as_str()
            .unwrap()
            .to_ascii_uppercase();
        mh["response"]["identifier"] = of.into();
    });
    assert_eq!(e.source.message_id, "8e0f0000-0000-4000-8000-000000000001");
    let ack = e.ack.unwrap();
    assert_eq!(ack.of_message_id, "7d0e0000-0000-4000-8000-000000000003");
    // Named as a URI (a MessageHeader id cannot hold one): the UUID.
    let e = edited("stu3/itk3-response-ok-ITK008M.json", |b| {
        let mh = &mut b["entry"][0]["resource"];
        let of = mh["response"]["identifier"].as_str().unwrap().to_owned();
        mh["response"]["identifier"] = format!("urn:uuid:{of}").into();
    });
    let ack = e.ack.unwrap();
    assert_eq!(ack.of_message_id, "7d0e0000-0000-4000-8000-000000000003");
}

#[test]
fn itk3_response_fatal_error_is_a_failed_delivery() {
    let e = one("stu3/itk3-response-fatal-error-ITK008M.json");
    assert_eq!(e.event_type, EventType::DeliveryFailed);
    let ack = e.ack.unwrap();
    assert_eq!(ack.of_message_id, "7d0e0000-0000-4000-8000-000000000006");
    assert_eq!(ack.code, "fatal-error");
    assert_eq!(ack.detail_code.as_deref(), Some("30002"));
    assert_eq!(ack.text.as_deref(), Some("Patient not known here"));
}

/// A resend answered "Duplicate Message received" (ITK3 20007, sent as
/// `fatal-error`) or "Duplicate Document received" (20008) is no failed
/// delivery: the recipient holds the message, and its answer to the first
/// copy stands. The same code from another system is not taken for it.
#[test]
fn itk3_duplicate_responses_are_not_failed_deliveries() {
    let with = |system: &'static str, code: &'static str| {
        edited("stu3/itk3-response-fatal-error-ITK008M.json", move |b| {
            let detail = &mut entry_of(b, "OperationOutcome")["issue"][0]["details"]["coding"][0];
            detail["system"] = system.into();
            detail["code"] = code.into();
        })
    };
    let stu3 = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1";
    let uk_core = "https://fhir.hl7.org.uk/CodeSystem/UKCore-ITKResponseCode";
    for (system, code) in [(stu3, "20007"), (stu3, "20008"), (uk_core, "20007")] {
        let e = with(system, code);
        assert_eq!(e.event_type, EventType::Other, "{system}|{code}");
        let ack = e.ack.expect("the response is kept");
        assert_eq!(ack.code, "fatal-error");
        assert_eq!(ack.detail_code.as_deref(), Some(code));
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    }
    assert_eq!(
        with("urn:other", "20007").event_type,
        EventType::DeliveryFailed
    );
    assert_eq!(with(stu3, "30003").event_type, EventType::DeliveryFailed);
}

/// A receiver may open its OperationOutcome with a generic issue and put
/// its ITK3 response code in a later one: the listed code is found there
/// (a duplicate is still no failure), and the detail and text come from the
/// issue that carries it. Without a listed code, the first coded issue
/// details the response, not an uncoded one before it.
#[test]
fn the_itk3_code_is_read_from_whichever_issue_carries_it() {
    let stu3 = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1";
    let behind = |code: &'static str| {
        edited("stu3/itk3-response-fatal-error-ITK008M.json", move |b| {
            let oo = entry_of(b, "OperationOutcome");
            let mut coded = oo["issue"][0].clone();
            coded["details"]["coding"][0]["system"] = stu3.into();
            coded["details"]["coding"][0]["code"] = code.into();
            coded["details"]["text"] = "the coded issue".into();
            let generic = serde_json::json!({
                "severity": "information", "code": "informational",
                "diagnostics": "processed by the receiving gateway"
            });
            oo["issue"] = serde_json::json!([generic, coded]);
        })
    };
    let e = behind("20007");
    assert_eq!(e.event_type, EventType::Other);
    let ack = e.ack.unwrap();
    assert_eq!(ack.detail_code.as_deref(), Some("20007"));
    assert_eq!(ack.text.as_deref(), Some("the coded issue"));

    let e = behind("30002");
    assert_eq!(e.event_type, EventType::DeliveryFailed);
    let ack = e.ack.unwrap();
    assert_eq!(ack.detail_code.as_deref(), Some("30002"));
    assert_eq!(ack.text.as_deref(), Some("the coded issue"));
}

/// An NRL STU3 pointer names its patient and custodian by the Spine's
/// URLs, with no identifier: the NHS number (checked as one) and the ODS
/// code are read from them (they were unresolved references, the patient
/// empty). Another server's URL is still a reference that does not
/// resolve.
#[test]
fn spine_urls_for_patient_and_custodian_give_the_nhs_number_and_ods_code() {
    let pointer = |patient: &'static str| {
        edited("stu3/documentreference.json", move |v| {
            v["subject"] = serde_json::json!({ "reference": patient });
            v["custodian"] = serde_json::json!({
                "reference": "https://directory.spineservices.nhs.uk/STU3/Organization/RXX"
            });
        })
    };
    let e = pointer("https://demographics.spineservices.nhs.uk/STU3/Patient/9434765919");
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    assert_eq!(e.source.sending_facility.as_deref(), Some("RXX"));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    let e = pointer("https://demographics.spineservices.nhs.uk/STU3/Patient/9434765918");
    assert_eq!(e.patient.nhs_number, None);
    assert_eq!(e.warnings[0].code, WarningCode::InvalidNhsNumber);
    let e = pointer("https://pas.trust.example/fhir/Patient/9434765919");
    assert_eq!(e.patient.nhs_number, None);
    assert_eq!(e.warnings[0].code, WarningCode::UnresolvedReference);
}

#[test]
fn stu3_document_reference_uses_indexed_and_created() {
    let e = one("stu3/documentreference.json");
    assert_eq!(e.source.format, Format::FhirStu3);
    assert_eq!(e.event_type, EventType::DocumentIssued);
    assert_eq!(e.patient.nhs_number.as_deref(), Some("9434765919"));
    let d = e.document.unwrap();
    assert_eq!(d.id, "DOC-STU3-1");
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.issued_at, t("2024-01-15T14:10:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T13:00:00Z")));
    assert_eq!(
        e.encounter.unwrap().reference.as_deref(),
        Some("Encounter/itk-enc-1")
    );
}

/// STU3 DocumentReference has docStatus too: a preliminary one is a draft,
/// `other` with a warning, as in R4.
#[test]
fn stu3_preliminary_document_reference_is_no_transmission() {
    let e = edited("stu3/documentreference.json", |v| {
        v["docStatus"] = "preliminary".into();
    });
    assert_eq!(e.source.format, Format::FhirStu3);
    assert_eq!(e.event_type, EventType::Other);
    let w = e
        .warnings
        .iter()
        .find(|w| w.raw.as_deref() == Some("preliminary"))
        .expect("a warning for the draft");
    assert_eq!(w.code, WarningCode::Other);
    assert_eq!(w.location.as_deref(), Some("DocumentReference.docStatus"));
    let e = edited("stu3/documentreference.json", |v| {
        v["docStatus"] = "final".into();
    });
    assert_eq!(e.event_type, EventType::DocumentIssued);
}

#[test]
fn a_message_dates_its_document_even_when_the_document_bundle_has_no_time() {
    // The document bundle inside the message carries neither timestamp nor
    // meta.lastUpdated: the message's time is the issue time, so nothing is
    // missing and there is nothing to warn about.
    let e = edited("stu3/itk3-edischarge-ITK003D.json", |m| {
        let nested = entry_of(m, "Bundle").as_object_mut().unwrap();
        nested.remove("timestamp");
        nested["meta"]
            .as_object_mut()
            .unwrap()
            .remove("lastUpdated");
    });
    let d = e.document.unwrap();
    assert_eq!(d.issued_at, t("2024-01-15T14:40:00Z"));
    assert_eq!(d.authored_at, Some(t("2024-01-15T13:45:00Z")));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
}

/// An ITK3 discharge message whose document is typed as a clinic letter:
/// the message event's kind is taken, as before, and the disagreement is
/// now said (it was hidden, with the event's `type_code` contradicting its
/// kind), so the integration team can mend the sender's configuration.
#[test]
fn an_itk_event_at_odds_with_its_document_type_is_warned_of() {
    let text = String::from_utf8(common::load("stu3/itk3-edischarge-ITK003D.json")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text.replace("373942005", "371531000")).unwrap();
    let ev = tocsin_fhir::normalise_json(
        &serde_json::to_vec(&json).unwrap(),
        &tocsin_fhir::FhirConfig::default(),
    )
    .unwrap();
    let e = &ev[0];
    let d = e.document.as_ref().unwrap();
    assert_eq!(d.kind, DocumentKind::DischargeSummary);
    assert_eq!(d.type_code.as_deref(), Some("371531000"));
    let w: Vec<_> = e
        .warnings
        .iter()
        .filter(|w| w.message.contains("typed as a clinic_letter"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", e.warnings);
    assert_eq!(w[0].raw.as_deref(), Some("ITK003D"));
}
