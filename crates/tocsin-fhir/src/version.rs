//! Telling FHIR R4 from STU3 by content.
//!
//! The JSON itself names no version, so the evidence is, in order:
//!
//! 1. **Declared profiles** (`meta.profile` of the resource and of every
//!    bundle entry): UK Core (`fhir.hl7.org.uk/StructureDefinition/UKCore-`)
//!    and `/R4/` paths mean R4; CareConnect, ITK3 and other `/STU3/` profiles
//!    mean STU3. The version with more such profiles wins.
//! 2. **Shapes that exist in one version only**, when no profile decides:
//!    STU3 has `MessageHeader.event` (a Coding) and `MessageHeader.timestamp`,
//!    `DocumentReference.indexed`/`class` and a single `context.encounter`,
//!    `Composition.class`, `Encounter.reason`/`incomingReferral`; R4 has
//!    `MessageHeader.eventCoding`/`eventUri`, `Bundle.timestamp`,
//!    `DocumentReference.date` and a list of `context.encounter`,
//!    `Encounter.reasonCode`/`basedOn`/`serviceType`. STU3 is chosen when
//!    only STU3 shapes are seen.
//! 3. Otherwise **R4**, the version UK Core senders use today.
//!
//! Content that belongs to neither (R5: `Encounter.class` as a list,
//! `Encounter.actualPeriod`, `MessageHeader.eventCanonical`, a list of
//! `DocumentReference.context`; DSTU2: `Encounter.patient`,
//! `Patient.careProvider`, `MessageHeader.data`; R5 and DSTU2 profile paths)
//! is rejected as an unsupported version, wherever it appears.

use std::borrow::Cow;
use std::fmt;

use crate::FhirError;
use crate::loc::Loc;
use crate::raw::{self, Kind, Obj, Val};

/// The FHIR versions tocsin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    R4,
    Stu3,
}

#[derive(Default)]
struct Evidence {
    r4_profiles: usize,
    stu3_profiles: usize,
    r4_shapes: usize,
    stu3_shapes: usize,
    unsupported: Option<(String, String)>,
}

/// How deep nested bundles are searched for evidence.
const MAX_DEPTH: usize = 4;

/// Decides the version of a resource tree (the XML reader's form): as
/// [`detect_raw`] on its text.
pub(crate) fn detect(resource: &serde_json::Value, root: &str) -> Result<Version, FhirError> {
    let text = resource.to_string();
    match serde_json::from_str::<Obj>(&text) {
        Ok(obj) => detect_raw(&obj, root),
        Err(_) => Ok(Version::R4),
    }
}

/// Decides the version of a resource (see the module documentation).
pub(crate) fn detect_raw(resource: &Obj<'_>, root: &str) -> Result<Version, FhirError> {
    let mut ev = Evidence::default();
    collect(resource, &Loc::root(Cow::Borrowed(root)), 0, &mut ev);
    if let Some((detail, location)) = ev.unsupported {
        return Err(FhirError::UnsupportedVersion {
            detail,
            location: Some(location),
        });
    }
    Ok(if ev.stu3_profiles != ev.r4_profiles {
        if ev.stu3_profiles > ev.r4_profiles {
            Version::Stu3
        } else {
            Version::R4
        }
    } else if ev.stu3_shapes > 0 && ev.r4_shapes == 0 {
        Version::Stu3
    } else {
        Version::R4
    })
}

fn collect(obj: &Obj<'_>, loc: &Loc<'_>, depth: usize, ev: &mut Evidence) {
    let unsupported = |ev: &mut Evidence, what: &str, at: &dyn fmt::Display| {
        ev.unsupported
            .get_or_insert_with(|| (what.to_owned(), at.to_string()));
    };
    // `meta.profile`'s strings, read from `meta`'s text in one scan.
    if let Some(profiles) = obj
        .raw("meta")
        .and_then(|m| raw::member_strings(m, "profile"))
    {
        for p in profiles {
            if p.contains("/R5/") || p.contains("hl7.org/fhir/5.0") {
                unsupported(
                    ev,
                    "a profile in meta.profile is FHIR R5",
                    &format_args!("{loc}.meta.profile"),
                );
            } else if p.contains("/DSTU2/") || p.contains("hl7.org/fhir/1.0") {
                unsupported(
                    ev,
                    "a profile in meta.profile is FHIR DSTU2",
                    &format_args!("{loc}.meta.profile"),
                );
            } else if p.contains("/STU3/") || p.contains("CareConnect-") {
                ev.stu3_profiles += 1;
            } else if p.contains("/StructureDefinition/UKCore-") || p.contains("/R4/") {
                ev.r4_profiles += 1;
            }
        }
    }
    let has = |k: &str| obj.has(k);
    match obj.str("resourceType").as_deref() {
        Some("MessageHeader") => {
            if has("eventCanonical") {
                unsupported(ev, "MessageHeader.eventCanonical is FHIR R5", loc);
            }
            if has("data") {
                unsupported(ev, "MessageHeader.data is FHIR DSTU2", loc);
            }
            if has("event") || has("timestamp") {
                ev.stu3_shapes += 1;
            }
            if has("eventCoding") || has("eventUri") {
                ev.r4_shapes += 1;
            }
        }
        Some("DocumentReference") => {
            match obj.get("context").map(|c| (c.kind(), c)) {
                Some((Kind::Array, _)) => {
                    unsupported(ev, "DocumentReference.context as a list is FHIR R5", loc)
                }
                Some((Kind::Object, c)) => {
                    let encounter = c
                        .raw()
                        .and_then(raw::obj)
                        .and_then(|c| c.get("encounter").map(Val::kind));
                    match encounter {
                        Some(Kind::Object) => ev.stu3_shapes += 1,
                        Some(Kind::Array) => ev.r4_shapes += 1,
                        _ => {}
                    }
                }
                _ => {}
            }
            if has("indexed") || has("class") {
                ev.stu3_shapes += 1;
            }
            if has("date") {
                ev.r4_shapes += 1;
            }
        }
        Some("Encounter") => {
            let class = obj.get("class").map(Val::kind);
            if class == Some(Kind::Array) || has("actualPeriod") {
                unsupported(
                    ev,
                    "Encounter.class as a list / actualPeriod is FHIR R5",
                    loc,
                );
            }
            if has("patient") || class == Some(Kind::String) {
                unsupported(ev, "Encounter.patient / class as a code is FHIR DSTU2", loc);
            }
            if has("reason") || has("incomingReferral") {
                ev.stu3_shapes += 1;
            }
            if has("reasonCode") || has("basedOn") || has("serviceType") {
                ev.r4_shapes += 1;
            }
        }
        Some("Composition") if has("class") => ev.stu3_shapes += 1,
        Some("Patient") if has("careProvider") => {
            unsupported(ev, "Patient.careProvider is FHIR DSTU2", loc);
        }
        Some("Bundle") => {
            if has("timestamp") {
                ev.r4_shapes += 1;
            }
            if depth < MAX_DEPTH
                && let Some(entries) = obj.get("entry").and_then(Val::as_list)
            {
                for (i, e) in entries.iter().enumerate() {
                    if let Some(r) = e
                        .as_obj()
                        .and_then(|e| e.get("resource"))
                        .and_then(Val::as_obj)
                    {
                        collect(r, &loc.entry(i), depth + 1, ev);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn profiles_decide_before_shapes() {
        let v = json!({"resourceType": "Encounter", "meta": {"profile": [
            "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Encounter-1"]},
            "reasonCode": []});
        assert_eq!(detect(&v, "Encounter").unwrap(), Version::Stu3);
    }

    #[test]
    fn itk_message_header_shape_means_stu3() {
        let v = json!({"resourceType": "Bundle", "type": "message", "entry": [
            {"resource": {"resourceType": "MessageHeader", "event": {"code": "ITK008M"}}}]});
        assert_eq!(detect(&v, "Bundle").unwrap(), Version::Stu3);
    }

    #[test]
    fn no_evidence_means_r4() {
        let v = json!({"resourceType": "Encounter", "status": "finished"});
        assert_eq!(detect(&v, "Encounter").unwrap(), Version::R4);
    }

    #[test]
    fn r5_content_is_rejected_with_its_location() {
        let v = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Encounter", "class": [{"coding": []}]}}]});
        let e = detect(&v, "Bundle").unwrap_err();
        assert_eq!(e.reason_code(), "unsupported_fhir_version");
        assert_eq!(e.location().as_deref(), Some("Bundle.entry[0].resource"));
    }
}
