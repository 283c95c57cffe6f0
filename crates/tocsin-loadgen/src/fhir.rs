//! FHIR rendering: R4 (UK Core) document bundles, ITK3 (STU3) Transfer of
//! Care messages and ITK3 responses (ITK008M), one compact JSON line each.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::context::{Ctx, Patient};
use crate::model::EncounterKind;
use crate::plan::Encounter;

const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const SNOMED: &str = "http://snomed.info/sct";
const ITK_EVENTS: &str = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2";

/// Resource numbers for [`Ctx::uuid`].
mod res {
    pub const BUNDLE: u16 = 1;
    pub const COMPOSITION: u16 = 2;
    pub const PATIENT: u16 = 3;
    pub const ENCOUNTER: u16 = 4;
    pub const GP: u16 = 5;
    pub const TRUST: u16 = 6;
    pub const AUTHOR: u16 = 7;
    pub const HEADER: u16 = 8;
    pub const MESSAGE: u16 = 9;
    pub const RESPONSE: u16 = 10;
    pub const RESPONSE_HEADER: u16 = 11;
    pub const OUTCOME: u16 = 12;
    pub const CONDITION: u16 = 13;
    pub const RECEIVER: u16 = 14;
    pub const SENDER: u16 = 15;
}

struct Refs {
    composition: String,
    patient: String,
    encounter: String,
    gp: String,
    trust: String,
    author: String,
}

fn urn(u: &str) -> String {
    format!("urn:uuid:{u}")
}

fn refs(ctx: &Ctx, e: &Encounter) -> Refs {
    Refs {
        composition: ctx.uuid(e, res::COMPOSITION),
        patient: ctx.uuid(e, res::PATIENT),
        encounter: ctx.uuid(e, res::ENCOUNTER),
        gp: ctx.uuid(e, res::GP),
        trust: ctx.uuid(e, res::TRUST),
        author: ctx.uuid(e, res::AUTHOR),
    }
}

fn is_letter(e: &Encounter) -> bool {
    e.kind == EncounterKind::Outpatient
}

fn fhir_class(ctx: &Ctx, kind: EncounterKind) -> &str {
    let d = &ctx.profile.discharges;
    match kind {
        EncounterKind::Inpatient => &d.inpatient_fhir_class,
        EncounterKind::DayCase => &d.day_case_fhir_class,
        EncounterKind::Emergency => &d.emergency_fhir_class,
        EncounterKind::Outpatient => &d.outpatient_fhir_class,
    }
}

fn org(id: &str, ods: &str, name: String, profile: &str) -> Value {
    json!({"fullUrl": urn(id), "resource": {
        "resourceType": "Organization", "id": id,
        "meta": {"profile": [profile]},
        "identifier": [{"system": ODS_SYSTEM, "value": ods}],
        "name": name}})
}

/// The document bundle's entries. `stu3` switches profiles and the
/// Encounter.class shape (a Coding in STU3, a Coding in R4 too, but the
/// code system URL differs).
fn document_entries(
    ctx: &Ctx,
    e: &Encounter,
    p: &Patient<'_>,
    at: DateTime<Utc>,
    stu3: bool,
) -> Vec<Value> {
    let r = refs(ctx, e);
    let docs = &ctx.profile.documents;
    let (code, title) = if is_letter(e) {
        (&docs.snomed_clinic_letter, "Outpatient letter")
    } else {
        (&docs.snomed_discharge_summary, "Discharge summary")
    };
    let (pat_profile, org_profile, comp_profile, enc_profile, class_system) = if stu3 {
        (
            "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-ITK-Patient-1",
            "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Organization-1",
            "https://fhir.nhs.uk/STU3/StructureDefinition/ITK-TOC-Composition-1",
            "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-ITK-Encounter-1",
            "http://hl7.org/fhir/v3/ActCode",
        )
    } else {
        (
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization",
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Composition",
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Encounter",
            crate::R4_CLASS_SYSTEM,
        )
    };
    let lines = ctx.text_lines(e);
    let third = lines.len().div_ceil(3).max(1);
    let section_titles = [
        "Clinical summary",
        "Plan and requested actions",
        "Medications and medical devices",
    ];
    let sections: Vec<Value> = lines
        .chunks(third)
        .zip(section_titles)
        .map(|(chunk, t)| {
            let paras: String = chunk.iter().map(|l| format!("<p>{l}</p>")).collect();
            json!({"title": t, "text": {"status": "generated",
                "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{paras}</div>")}})
        })
        .collect();
    let n = &ctx.profile.names;
    let diagnosis = &n.diagnoses[e.index as usize % n.diagnoses.len()];
    let (dx_code, dx_text) = diagnosis.split_once('^').unwrap_or((diagnosis, diagnosis));
    let condition_id = ctx.uuid(e, res::CONDITION);
    let mut entries = vec![
        json!({"fullUrl": urn(&r.composition), "resource": {
            "resourceType": "Composition", "id": r.composition,
            "meta": {"profile": [comp_profile]},
            "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": r.composition},
            "status": "final",
            "type": {"coding": [{"system": SNOMED, "code": code, "display": title}]},
            "subject": {"reference": urn(&r.patient)},
            "encounter": {"reference": urn(&r.encounter)},
            "date": ctx.fhir_ts(at),
            "author": [{"reference": urn(&r.author)}],
            "title": title,
            "custodian": {"reference": urn(&r.trust)},
            "section": sections}}),
        json!({"fullUrl": urn(&r.patient), "resource": {
            "resourceType": "Patient", "id": r.patient,
            "meta": {"profile": [pat_profile]},
            "identifier": [
                {"system": NHS_SYSTEM, "value": p.nhs},
                {"system": format!("https://fhir.{}.nhs.uk/Id/local-patient-identifier", ctx.trust_lower), "value": p.mrn}],
            "name": [{"use": "official", "family": p.family, "given": [p.given]}],
            "gender": if p.female { "female" } else { "male" },
            "birthDate": p.birth.format("%Y-%m-%d").to_string(),
            "address": [{"line": [format!("{} {}", p.house, p.street)], "city": p.town, "postalCode": p.postcode}],
            "generalPractitioner": [{"reference": urn(&r.gp)}]}}),
        json!({"fullUrl": urn(&r.encounter), "resource": {
            "resourceType": "Encounter", "id": r.encounter,
            "meta": {"profile": [enc_profile]},
            "identifier": [{"system": format!("https://fhir.{}.nhs.uk/Id/visit-number", ctx.trust_lower), "value": ctx.visit(e)}],
            "status": "finished",
            "class": {"system": class_system, "code": fhir_class(ctx, e.kind)},
            "subject": {"reference": urn(&r.patient)},
            "period": {"start": ctx.fhir_ts(e.start), "end": ctx.fhir_ts(e.end)},
            "serviceProvider": {"reference": urn(&r.trust)}}}),
        org(
            &r.gp,
            p.practice,
            format!("{} Surgery", p.town),
            org_profile,
        ),
        org(
            &r.trust,
            &ctx.profile.sites[e.site],
            format!("{} NHS Trust", ctx.profile.trust),
            org_profile,
        ),
        json!({"fullUrl": urn(&r.author), "resource": {
            "resourceType": "Practitioner", "id": r.author,
            "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": format!("C{:07}", e.index % 9_999_991)}],
            "name": [{"family": n.family[e.index as usize % n.family.len()], "prefix": ["Dr"]}]}}),
    ];
    if !stu3 {
        entries.push(json!({"fullUrl": urn(&condition_id), "resource": {
            "resourceType": "Condition", "id": condition_id,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": dx_code, "display": dx_text}]},
            "subject": {"reference": urn(&r.patient)}}}));
    }
    entries
}

/// A FHIR R4 document bundle carrying `e`'s document, issued at `at`.
pub(crate) fn document_bundle(ctx: &Ctx, e: &Encounter, at: DateTime<Utc>) -> Vec<u8> {
    let p = ctx.patient(e.patient);
    let id = ctx.uuid(e, res::BUNDLE);
    let v = json!({
        "resourceType": "Bundle", "id": id,
        "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"], "lastUpdated": ctx.fhir_ts(at)},
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": id},
        "type": "document",
        "timestamp": ctx.fhir_ts(at),
        "entry": document_entries(ctx, e, &p, at, false)});
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An ITK3 Transfer of Care message (ITK003D / ITK006D) carrying `e`'s
/// document, sent at `at`.
pub(crate) fn itk3_message(ctx: &Ctx, e: &Encounter, at: DateTime<Utc>) -> Vec<u8> {
    let p = ctx.patient(e.patient);
    let docs = &ctx.profile.documents;
    let event = if is_letter(e) {
        &docs.itk_clinic_letter
    } else {
        &docs.itk_discharge_summary
    };
    let header = ctx.uuid(e, res::HEADER);
    let doc_bundle = ctx.uuid(e, res::BUNDLE);
    let (recv, send) = (ctx.uuid(e, res::RECEIVER), ctx.uuid(e, res::SENDER));
    let org_profile = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Organization-1";
    let v = json!({
        "resourceType": "Bundle", "id": ctx.uuid(e, res::MESSAGE),
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1"]},
        "identifier": {"value": ctx.uuid(e, res::MESSAGE)},
        "type": "message",
        "entry": [
            {"fullUrl": urn(&header), "resource": {
                "resourceType": "MessageHeader", "id": header,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-MessageHeader-2"]},
                "extension": [{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2",
                    "extension": [
                        {"url": "BusAckRequested", "valueBoolean": true},
                        {"url": "InfAckRequested", "valueBoolean": true},
                        {"url": "RecipientType", "valueCoding": {"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1", "code": "FA", "display": "For Action"}},
                        {"url": "MessageDefinition", "valueReference": {"reference": "https://fhir.nhs.uk/STU3/MessageDefinition/ITK-TOC-MessageDefinition-1"}},
                        {"url": "SenderReference", "valueString": "None"},
                        {"url": "LocalExtension", "valueString": "None"}]}],
                "event": {"system": ITK_EVENTS, "code": event},
                "receiver": {"reference": urn(&recv)},
                "sender": {"reference": urn(&send)},
                "timestamp": ctx.fhir_ts(at),
                "source": {"endpoint": format!("{}OT001", ctx.profile.trust)},
                "focus": [{"reference": urn(&doc_bundle)}]}},
            org(&recv, p.practice, format!("{} Surgery", p.town), org_profile),
            org(&send, &ctx.profile.trust, format!("{} NHS Trust", ctx.profile.trust), org_profile),
            {"fullUrl": urn(&doc_bundle), "resource": {
                "resourceType": "Bundle", "id": doc_bundle,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Document-Bundle-1"], "lastUpdated": ctx.fhir_ts(at)},
                "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": doc_bundle},
                "type": "document",
                "entry": document_entries(ctx, e, &p, at, true)}}]});
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The GP system's ITK3 response (ITK008M) to `e`'s ITK3 message.
pub(crate) fn itk3_response(
    ctx: &Ctx,
    e: &Encounter,
    at: DateTime<Utc>,
    accepted: bool,
) -> Vec<u8> {
    let p = ctx.patient(e.patient);
    let header = ctx.uuid(e, res::RESPONSE_HEADER);
    let outcome = ctx.uuid(e, res::OUTCOME);
    let (recv, send) = (ctx.uuid(e, res::RECEIVER), ctx.uuid(e, res::SENDER));
    let org_profile = "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Organization-1";
    let (code, issue_code, detail, display) = if accepted {
        ("ok", "informational", "20013", "Success")
    } else {
        (
            "fatal-error",
            "not-found",
            "30002",
            "Patient not known here",
        )
    };
    let v = json!({
        "resourceType": "Bundle", "id": ctx.uuid(e, res::RESPONSE),
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1"]},
        "identifier": {"value": ctx.uuid(e, res::RESPONSE)},
        "type": "message",
        "entry": [
            {"fullUrl": urn(&header), "resource": {
                "resourceType": "MessageHeader", "id": header,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-MessageHeader-2"]},
                "event": {"system": ITK_EVENTS, "code": "ITK008M", "display": "ITK Response"},
                "receiver": {"reference": urn(&recv)},
                "sender": {"reference": urn(&send)},
                "timestamp": ctx.fhir_ts(at),
                "source": {"endpoint": format!("{}OT001", p.practice)},
                "response": {"identifier": ctx.uuid(e, res::HEADER), "code": code, "details": {"reference": urn(&outcome)}}}},
            org(&recv, &ctx.profile.trust, format!("{} NHS Trust", ctx.profile.trust), org_profile),
            org(&send, p.practice, format!("{} Surgery", p.town), org_profile),
            {"fullUrl": urn(&outcome), "resource": {
                "resourceType": "OperationOutcome", "id": outcome,
                "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Response-OperationOutcome-1"]},
                "issue": [{"severity": if accepted { "information" } else { "fatal" }, "code": issue_code,
                    "details": {"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1", "code": detail, "display": display}]}}]}}]});
    serde_json::to_vec(&v).unwrap_or_default()
}
