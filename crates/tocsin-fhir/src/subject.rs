//! Who and what an event concerns: patients, encounters and organisations
//! resolved from references.

use std::fmt;

use tocsin_event::{
    Encounter, EncounterKind, Identifier, Patient, Warning, WarningCode, validate_nhs_number,
};

use crate::prepare::{Entry, Scope};
use crate::view::{EncounterView, Ident, Ref};
use crate::{FhirConfig, FhirError, view::Reader};

/// What the normaliser knows while building one event.
pub(crate) struct Env<'a> {
    pub cfg: &'a FhirConfig,
    pub reader: &'a dyn Reader,
}

/// The patient, GP practice and warnings found through a subject reference.
#[derive(Clone, Default)]
pub(crate) struct Subject {
    pub patient: Patient,
    pub gp_practice: Option<String>,
    pub warnings: Vec<Warning>,
}

impl Env<'_> {
    /// Reads a modelled entry, turning model errors into typed errors.
    fn read<T>(
        &self,
        e: &Entry,
        f: impl Fn(&dyn Reader, &str) -> Result<T, serde_json::Error>,
    ) -> Result<T, FhirError> {
        f(self.reader, &e.text).map_err(|err| FhirError::invalid(&e.rtype, &e.loc, &err))
    }

    /// The patient a subject reference names: through the Patient resource
    /// it resolves to, else through its logical identifier.
    pub fn subject(
        &self,
        r: Option<&Ref>,
        scope: &Scope<'_>,
        at: &dyn fmt::Display,
    ) -> Result<Subject, FhirError> {
        let mut s = Subject::default();
        let Some(r) = r else {
            return Ok(s);
        };
        let resolved = r
            .reference
            .as_deref()
            .and_then(|x| scope.resolve(x))
            .filter(|e| e.rtype == "Patient");
        if let Some(e) = resolved {
            s = self.patient(e, scope)?;
        } else if let Some(id) = &r.identifier {
            self.add_identifier(&mut s, id, &format_args!("{at}.identifier"));
        } else if let Some(number) = r
            .reference
            .as_deref()
            .and_then(|t| FhirConfig::after_prefix(&self.cfg.nhs_number_reference_prefixes, t))
        {
            // A national service's URL for the patient (an NRL pointer's
            // subject): its last segment is the NHS number.
            let id = Ident {
                system: Some(self.cfg.nhs_number_system.clone()),
                value: Some(number.to_owned()),
                type_code: None,
            };
            self.add_identifier(&mut s, &id, &format_args!("{at}.reference"));
        } else if let Some(text) = &r.reference {
            s.warnings.push(unresolved(text, at));
        }
        Ok(s)
    }

    /// The patient and GP practice of a Patient resource.
    ///
    /// A Patient its model refuses for an element tocsin does not read
    /// (`"use": "Official"`, a boolean sent as a string) is read for its
    /// identifiers and GP practice alone, with a warning: the document that
    /// left the trust is still the document, and refused for that it went
    /// missing.
    pub fn patient(&self, e: &Entry, scope: &Scope<'_>) -> Result<Subject, FhirError> {
        let mut s = Subject::default();
        let p = match self.read(e, |rd, v| rd.patient(v)) {
            Ok(p) => p,
            Err(err) => {
                s.warnings
                    .push(read_leniently(&err, e, "its identifiers and GP practice"));
                leniently(&e.value(self.cfg.timezone))
            }
        };
        for (i, id) in p.identifiers.iter().enumerate() {
            self.add_identifier(&mut s, id, &format_args!("{}.identifier[{i}]", e.loc));
        }
        if s.patient.nhs_number.is_some() {
            self.unverified_nhs_number(e, &mut s.warnings);
        }
        let inner = Scope::contained(e, scope);
        s.gp_practice = p
            .general_practitioners
            .iter()
            .find_map(|g| self.ods_of(g, &inner, &mut s.warnings))
            .or_else(|| self.practice_of_a_role(&p.general_practitioners, &inner, &mut s));
        Ok(s)
    }

    fn add_identifier(&self, s: &mut Subject, id: &Ident, at: &dyn fmt::Display) {
        let Some(value) = id.value.as_deref().filter(|v| !v.is_empty()) else {
            return;
        };
        if self.cfg.is_nhs_number_system(id.system.as_deref()) {
            match validate_nhs_number(value) {
                // A second valid number that differs from the first: which
                // patient this is is in doubt, and it was dropped without
                // a word (as in HL7's PID-3).
                Ok(n)
                    if s.patient
                        .nhs_number
                        .as_ref()
                        .is_some_and(|first| *first != n) =>
                {
                    s.warnings.push(Warning {
                        code: WarningCode::InvalidNhsNumber,
                        message: "a second, different NHS number ignored: the first is kept"
                            .to_owned(),
                        raw: Some(value.to_owned()),
                        location: Some(at.to_string()),
                    });
                }
                Ok(n) => {
                    s.patient.nhs_number.get_or_insert(n);
                }
                Err(e) => s.warnings.push(Warning {
                    code: WarningCode::InvalidNhsNumber,
                    message: format!("NHS number ignored: {e}"),
                    raw: Some(value.to_owned()),
                    location: Some(at.to_string()),
                }),
            }
        } else {
            let system = id
                .system
                .clone()
                .or_else(|| id.type_code.clone())
                .unwrap_or_else(|| "unknown".to_owned());
            s.patient.local_ids.push(Identifier {
                system,
                value: value.to_owned(),
            });
        }
    }

    /// The GP practice when the patient's generalPractitioner names a
    /// person rather than the practice: a PractitionerRole's organization
    /// is the practice (read from its JSON: tocsin has no model for it).
    /// A Practitioner alone names no practice: said, since the alerts and
    /// the report by practice then have none for this patient.
    fn practice_of_a_role(
        &self,
        gps: &[Ref],
        scope: &Scope<'_>,
        s: &mut Subject,
    ) -> Option<String> {
        let resolved: Vec<&Entry> = gps
            .iter()
            .filter_map(|g| g.reference.as_deref().and_then(|r| scope.resolve(r)))
            .collect();
        let practice = resolved
            .iter()
            .filter(|e| e.rtype == "PractitionerRole")
            .find_map(|e| {
                let r = lenient_ref(e.value(self.cfg.timezone).get("organization")?);
                self.ods_of(&r, &Scope::contained(e, scope), &mut s.warnings)
            });
        if practice.is_none()
            && let Some(e) = resolved.iter().find(|e| e.rtype == "Practitioner")
        {
            s.warnings.push(Warning {
                code: WarningCode::Other,
                message: "the patient's generalPractitioner names a Practitioner, not the \
                          practice: no GP practice is known"
                    .into(),
                raw: None,
                location: Some(e.loc.to_string()),
            });
        }
        practice
    }

    /// Warns of an NHS number whose verification status (UK Core's and
    /// CareConnect's `NHSNumberVerificationStatus` extension on the
    /// identifier) is not `01` "number present and verified": `02` present
    /// but not traced, `03`-`08` trace required, failed, in progress...
    /// Transfer of Care asks for traced numbers only; an untraced one is
    /// used, but it may be another patient's, and correlation by it with
    /// the HL7 side may be wrong. Read as JSON: the model drops it.
    fn unverified_nhs_number(&self, e: &Entry, warnings: &mut Vec<Warning>) {
        // Parsed only when the text names the extension (most feeds send
        // none): this runs for every Patient.
        if !e
            .obj
            .raw("identifier")
            .is_some_and(|r| r.get().contains("NHSNumberVerificationStatus"))
        {
            return;
        }
        let Some(ids) = e.member("identifier") else {
            return;
        };
        let ids = ids.as_array().map(Vec::as_slice).unwrap_or_default();
        for (i, id) in ids.iter().enumerate() {
            if !self
                .cfg
                .is_nhs_number_system(json_text(id, "system").as_deref())
            {
                continue;
            }
            let status = json_list(id, "extension")
                .iter()
                .filter(|x| {
                    json_text(x, "url").is_some_and(|u| u.contains("NHSNumberVerificationStatus"))
                })
                .find_map(|x| {
                    x.pointer("/valueCodeableConcept/coding/0/code")
                        .and_then(|c| c.as_str())
                        .map(str::to_owned)
                });
            if let Some(code) = status.filter(|c| c.trim() != "01") {
                warnings.push(Warning {
                    code: WarningCode::Other,
                    message: format!(
                        "the NHS number's verification status is {code}, not 01 (present and \
                         verified): it is used, but may not be this patient's"
                    ),
                    raw: Some(code),
                    location: Some(format!("{}.identifier[{i}].extension", e.loc)),
                });
                return;
            }
        }
    }

    /// The ODS code of an organisation reference: its identifier if that is
    /// an ODS code, else the ODS identifier of the Organization it resolves to.
    ///
    /// An Organization its model refuses (an identifier's `use` in the
    /// wrong case, a malformed period) is read for its identifiers from the
    /// JSON, with a warning in `warnings`: a GP practice, custodian or
    /// recipient is not worth the document, which refused went missing and
    /// raised `overdue` for a summary that had been sent.
    pub fn ods_of(
        &self,
        r: &Ref,
        scope: &Scope<'_>,
        warnings: &mut Vec<Warning>,
    ) -> Option<String> {
        if let Some(id) = &r.identifier
            && self.cfg.is_ods_system(id.system.as_deref())
            && let Some(v) = &id.value
        {
            return Some(v.clone());
        }
        // A national directory's URL for the organisation: its last
        // segment is the ODS code.
        if let Some(code) = r
            .reference
            .as_deref()
            .and_then(|t| FhirConfig::after_prefix(&self.cfg.ods_reference_prefixes, t))
        {
            return Some(code.to_owned());
        }
        let e = r
            .reference
            .as_deref()
            .and_then(|x| scope.resolve(x))
            .filter(|e| e.rtype == "Organization")?;
        // Read through the model once per entry; later references to the
        // same Organization get the same code, and the same warning.
        let (code, warning) = e.ods.get_or_init(|| {
            let (identifiers, warning) = match self.read(e, |rd, v| rd.organization(v)) {
                Ok(org) => (org.identifiers, None),
                Err(err) => (
                    lenient_identifiers(&e.value(self.cfg.timezone)),
                    Some(read_leniently(&err, e, "its identifiers")),
                ),
            };
            let code = identifiers
                .iter()
                .find(|i| self.cfg.is_ods_system(i.system.as_deref()))
                .and_then(|i| i.value.clone());
            (code, warning)
        });
        add_warnings(warnings, warning.clone());
        code.clone()
    }

    /// An Encounter resource read into the event model (kind mapped).
    pub fn encounter_of(
        &self,
        e: &Entry,
        scope: &Scope<'_>,
        reference: Option<String>,
        warnings: &mut Vec<Warning>,
    ) -> Result<(Encounter, EncounterView), FhirError> {
        let v = self.read(e, |rd, v| rd.encounter(v))?;
        let kind = match &v.class {
            Some(c) => match c
                .code
                .as_deref()
                .and_then(|code| self.cfg.encounter_kind(c.system.as_deref(), code))
            {
                Some(k) => Some(k),
                None => {
                    warnings.push(Warning {
                        code: WarningCode::UnmappedCode,
                        message: format!(
                            "encounter class {} has no mapping in [fhir.encounter_class]",
                            c.code.as_deref().unwrap_or("(no code)")
                        ),
                        raw: c.code.clone(),
                        location: Some(format!("{}.class", e.loc)),
                    });
                    Some(EncounterKind::Other)
                }
            },
            None => None,
        };
        let inner = Scope::contained(e, scope);
        let site = self.site(&v, &inner, warnings);
        // Read again from the input only for an Encounter that has ended.
        if v.end.is_some()
            && let Some(end) = date_only_end(e)
        {
            warnings.push(Warning {
                code: WarningCode::BadTimestamp,
                message: "Encounter.period.end is a date without a time: the last second of \
                          that date (or month, or year), local time, is taken, as FHIR reads a \
                          period's end; the deadline may end up to a day (a month, a year) late"
                    .into(),
                raw: Some(end),
                location: Some(format!("{}.period.end", e.loc)),
            });
        }
        let enc = Encounter {
            id: self.visit_number(&v.identifiers, &e.loc, warnings),
            reference,
            kind,
            started_at: v.start,
            ended_at: v.end,
            site,
            specialty: v.specialty.clone(),
            discharge_disposition: discharge_disposition(e),
        };
        warnings.extend(enc.ends_before_start(format!("{}.period.end", e.loc)));
        Ok((enc, v))
    }

    /// The visit number among an Encounter's identifiers: the first of the
    /// configured visit-number systems it carries, else its first
    /// identifier, with a warning when it has others (which one is the
    /// visit number is then a guess, and two copies of the Encounter listing
    /// them in different orders would not correlate).
    fn visit_number(
        &self,
        ids: &[Ident],
        loc: &dyn fmt::Display,
        warnings: &mut Vec<Warning>,
    ) -> Option<String> {
        let valued = || ids.iter().filter(|i| i.value.is_some());
        let preferred = self
            .cfg
            .encounter_identifier_systems
            .iter()
            .find_map(|sys| valued().find(|i| i.system.as_deref() == Some(sys.as_str())));
        if let Some(i) = preferred {
            return i.value.clone();
        }
        let first = valued().next()?;
        let count = valued().count();
        if count > 1 {
            warnings.push(Warning {
                code: WarningCode::Other,
                message: format!(
                    "the Encounter has {count} identifiers, none of a system in [fhir] \
                     encounter_identifier_systems: the first is taken as its visit number"
                ),
                raw: first.system.clone(),
                location: Some(format!("{loc}.identifier")),
            });
        }
        first.value.clone()
    }

    /// Site: the ODS code of the first location that has one, else the
    /// service provider's ODS code.
    fn site(
        &self,
        v: &EncounterView,
        scope: &Scope<'_>,
        warnings: &mut Vec<Warning>,
    ) -> Option<String> {
        for l in &v.locations {
            if let Some(id) = &l.identifier
                && let Some(val) = &id.value
            {
                return Some(val.clone());
            }
            if let Some(e) = l.reference.as_deref().and_then(|x| scope.resolve(x))
                && e.rtype == "Location"
                && let Some(code) = location_ods(&e.value(self.cfg.timezone), self.cfg)
            {
                return Some(code);
            }
        }
        v.service_provider
            .as_ref()
            .and_then(|sp| self.ods_of(sp, scope, warnings))
    }

    /// The encounter a document names (Composition.encounter,
    /// DocumentReference.context.encounter).
    pub fn encounter_ref(
        &self,
        r: &Ref,
        scope: &Scope<'_>,
        at: &dyn fmt::Display,
        warnings: &mut Vec<Warning>,
    ) -> Result<Encounter, FhirError> {
        let resolved = r
            .reference
            .as_deref()
            .and_then(|x| scope.resolve(x))
            .filter(|e| e.rtype == "Encounter");
        // A server's reference as the Encounter's own event gives it
        // (`Encounter/id`), so that the two correlate: an absolute URL or a
        // versioned reference is cut to its type and id, and so is an entry
        // whose fullUrl is a server's URL. A `urn:uuid:` or a contained
        // `#id` is local to its message and stays as written: its
        // resource's `id` may be anything, and read as `Encounter/id` it
        // could name another patient's encounter on the server.
        let server_ref = |text: &str| match crate::prepare::relative_part(text) {
            Some(("Encounter", id)) => Some(format!("Encounter/{id}")),
            _ => None,
        };
        let reference = resolved
            .and_then(|e| e.full_url.as_deref())
            .and_then(server_ref)
            .or_else(|| r.reference.as_deref().and_then(server_ref))
            .or_else(|| r.reference.clone());
        let mut enc = match resolved {
            Some(e) => match self.encounter_of(e, scope, reference.clone(), warnings) {
                Ok((enc, _)) => enc,
                // An Encounter its model refuses for an element tocsin does
                // not need (an identifier's `use` in the wrong case, a
                // missing class) is read for its visit number, with a
                // warning, as a Patient is: the document that names it
                // left the trust, and refused for that it went missing.
                Err(err) => {
                    warnings.push(read_leniently(&err, e, "its identifiers"));
                    let ids = lenient_identifiers(&e.value(self.cfg.timezone));
                    Encounter {
                        id: self.visit_number(&ids, &e.loc, warnings),
                        reference,
                        ..Encounter::default()
                    }
                }
            },
            None => Encounter {
                reference,
                ..Encounter::default()
            },
        };
        if enc.id.is_none()
            && let Some(i) = r.identifier.as_ref().filter(|i| i.value.is_some())
        {
            // Named by an identifier alone: taken as the visit number, but
            // one of another system than the trust listed (an EPR's
            // encounter id) never matches PV1-19, and nothing said why.
            let systems = &self.cfg.encounter_identifier_systems;
            if !systems.is_empty() && !systems.iter().any(|s| Some(s) == i.system.as_ref()) {
                warnings.push(Warning {
                    code: WarningCode::Other,
                    message: "the encounter is named by an identifier of a system not in [fhir] \
                              encounter_identifier_systems: it is taken as the visit number"
                        .into(),
                    raw: i.system.clone(),
                    location: Some(format!("{at}.identifier")),
                });
            }
            enc.id = i.value.clone();
        }
        if resolved.is_none()
            && enc.id.is_none()
            && let Some(text) = &r.reference
            && (scope.in_bundle() || is_local(text))
        {
            warnings.push(unresolved(text, at));
        }
        Ok(enc)
    }
}

/// Adds `more` to `warnings`, leaving out any already there: one resource
/// named from several places (an Organization as GP practice and as
/// custodian) is warned of once.
pub(crate) fn add_warnings(warnings: &mut Vec<Warning>, more: impl IntoIterator<Item = Warning>) {
    let mut more = more.into_iter().peekable();
    if more.peek().is_none() {
        return;
    }
    // A set, not a search of the list per warning: a bundle of 500,000
    // entries without a resource, a warning each, took over an hour.
    let mut seen: std::collections::HashSet<Warning> = warnings.iter().cloned().collect();
    for w in more {
        if !seen.contains(&w) {
            seen.insert(w.clone());
            warnings.push(w);
        }
    }
}

/// The warning for a resource its model refused and that was read from
/// its JSON for `what` alone. The model's error names the element, not the
/// value refused (which may be a patient's).
fn read_leniently(err: &FhirError, e: &Entry, what: &str) -> Warning {
    Warning {
        code: WarningCode::Other,
        message: format!("{err}: only {what} were read"),
        raw: None,
        location: Some(e.loc.to_string()),
    }
}

/// A resource's `identifier` list read from its JSON, without its model.
fn lenient_identifiers(v: &serde_json::Value) -> Vec<Ident> {
    json_list(v, "identifier")
        .iter()
        .map(lenient_ident)
        .collect()
}

fn lenient_ident(i: &serde_json::Value) -> Ident {
    Ident {
        system: json_text(i, "system"),
        value: json_text(i, "value"),
        type_code: i
            .get("type")
            .and_then(|t| t.get("coding"))
            .and_then(|c| c.get(0))
            .and_then(|c| json_text(c, "code")),
    }
}

/// What tocsin reads of a Patient (identifiers, GP practice references),
/// taken from its JSON when its model refuses it.
fn leniently(v: &serde_json::Value) -> crate::view::PatientView {
    crate::view::PatientView {
        identifiers: lenient_identifiers(v),
        general_practitioners: json_list(v, "generalPractitioner")
            .iter()
            .map(lenient_ref)
            .collect(),
    }
}

/// A Reference read from its JSON, without a model.
fn lenient_ref(v: &serde_json::Value) -> Ref {
    Ref {
        reference: json_text(v, "reference"),
        identifier: v.get("identifier").map(lenient_ident),
    }
}

/// Member `k` of `v` when it is a string.
pub(crate) fn json_text(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(str::to_owned)
}

/// Member `k` of `v` when it is an array, else none.
pub(crate) fn json_list<'v>(v: &'v serde_json::Value, k: &str) -> &'v [serde_json::Value] {
    v.get(k).and_then(|x| x.as_array()).map_or(&[][..], |a| a)
}

/// `period.end` as sent, when it gives a date (or month, or year) without
/// a time of day: read from the input, as the model sees it already made
/// local midnight.
fn date_only_end(e: &Entry) -> Option<String> {
    let period = e.member("period")?;
    let end = period.get("end")?.as_str()?;
    (!end.contains('T')).then(|| end.to_owned())
}

/// `hospitalization.dischargeDisposition`'s first code, read from the
/// input rather than through the model: the rest of `hospitalization`
/// (admission source, diet, arrangements) is nothing tocsin reads, and
/// modelled, a miscoded part of it would lose the whole Encounter.
fn discharge_disposition(e: &Entry) -> Option<String> {
    let h = e.member("hospitalization")?;
    h.pointer("/dischargeDisposition/coding")?
        .as_array()?
        .iter()
        .find_map(|c| c.get("code")?.as_str().map(str::to_owned))
}

/// The ODS site code of a Location (read as JSON: tocsin needs one field).
fn location_ods(v: &serde_json::Value, cfg: &FhirConfig) -> Option<String> {
    v.get("identifier")?.as_array()?.iter().find_map(|i| {
        let system = i.get("system")?.as_str()?;
        cfg.is_ods_system(Some(system))
            .then(|| i.get("value")?.as_str().map(str::to_owned))?
    })
}

/// Whether a reference only means something inside its message
/// (`urn:uuid:`, `urn:oid:`, `#contained`), unlike `Encounter/123`, which
/// other messages can name too.
fn is_local(reference: &str) -> bool {
    reference.starts_with("urn:") || reference.starts_with('#')
}

/// The warning for a reference that leads nowhere. The reference text is
/// kept in `raw`, never in the message: a PDS Patient's id is its NHS
/// number (`.../Patient/9434765919`), and a conditional reference
/// (`Patient?identifier=...|9434765919`) carries one too.
pub(crate) fn unresolved(reference: &str, at: &dyn fmt::Display) -> Warning {
    Warning {
        code: WarningCode::UnresolvedReference,
        message: "the reference does not resolve within the message and carries no identifier"
            .into(),
        raw: Some(reference.to_owned()),
        location: Some(at.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::cell::Cell;

    use super::*;
    use crate::loc::Loc;
    use crate::view::{
        BundleView, CompositionView, DocRefView, MessageHeaderView, OrganizationView, PatientView,
    };
    use crate::{prepare, r4, raw};

    /// The R4 reader, counting the Organizations it reads.
    struct Counting {
        inner: r4::R4,
        organizations: Cell<usize>,
    }

    impl Reader for Counting {
        fn local_times(&self) -> &crate::time::LocalTimes {
            self.inner.local_times()
        }
        fn encounter(&self, v: &str) -> Result<EncounterView, serde_json::Error> {
            self.inner.encounter(v)
        }
        fn document_reference(&self, v: &str) -> Result<DocRefView, serde_json::Error> {
            self.inner.document_reference(v)
        }
        fn composition(&self, v: &str) -> Result<CompositionView, serde_json::Error> {
            self.inner.composition(v)
        }
        fn message_header(&self, v: &str) -> Result<MessageHeaderView, serde_json::Error> {
            self.inner.message_header(v)
        }
        fn patient(&self, v: &str) -> Result<PatientView, serde_json::Error> {
            self.inner.patient(v)
        }
        fn organization(&self, v: &str) -> Result<OrganizationView, serde_json::Error> {
            self.organizations.set(self.organizations.get() + 1);
            self.inner.organization(v)
        }
        fn bundle(&self, v: &str) -> Result<BundleView, serde_json::Error> {
            self.inner.bundle(v)
        }
    }

    fn reference(to: &str) -> Ref {
        Ref {
            reference: Some(to.to_owned()),
            identifier: None,
        }
    }

    #[test]
    fn each_organization_is_read_once_and_keeps_its_code_or_error() {
        let text = r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Organization",
             "identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"B86001"}]}},
            {"fullUrl":"urn:uuid:b","resource":{"resourceType":"Organization",
             "identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RXX"}]}},
            {"fullUrl":"urn:uuid:c","resource":{"resourceType":"Organization","identifier":"not a list"}}]}"#;
        let cfg = FhirConfig::default();
        let reader = Counting {
            inner: r4::R4 {
                tz: cfg.timezone,
                local: Default::default(),
            },
            organizations: Cell::new(0),
        };
        let root = raw::parse(text.as_bytes()).unwrap();
        let (obj, rtype) = prepare::resource(&root, &"$").unwrap();
        let e = prepare::entry_of(
            obj,
            rtype,
            None,
            Loc::root(Cow::Borrowed("Bundle")),
            &reader,
            0,
        )
        .unwrap();
        let b = e.bundle.as_deref().unwrap();
        let scope = Scope {
            entries: &b.entries,
            from_bundle: true,
            parent: None,
            index: b.index.as_ref(),
        };
        let env = Env {
            cfg: &cfg,
            reader: &reader,
        };
        let mut warnings = Vec::new();
        let mut ods = |to: &str| env.ods_of(&reference(to), &scope, &mut warnings);

        // One Organization named twice (GP practice and custodian): one read.
        assert_eq!(ods("urn:uuid:a").as_deref(), Some("B86001"));
        assert_eq!(ods("urn:uuid:a").as_deref(), Some("B86001"));
        assert_eq!(reader.organizations.get(), 1);
        // Another Organization has its own code.
        assert_eq!(ods("urn:uuid:b").as_deref(), Some("RXX"));
        assert_eq!(reader.organizations.get(), 2);
        // A malformed one: no code, and one warning however often it is
        // named, read once.
        assert_eq!(ods("urn:uuid:c"), None);
        assert_eq!(ods("urn:uuid:c"), None);
        assert_eq!(reader.organizations.get(), 3);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].location.as_deref(),
            Some("Bundle.entry[2].resource")
        );
        // An ODS identifier on the reference itself reads nothing.
        let logical = Ref {
            reference: Some("urn:uuid:c".to_owned()),
            identifier: Some(Ident {
                system: Some("https://fhir.nhs.uk/Id/ods-organization-code".to_owned()),
                value: Some("Y01".to_owned()),
                type_code: None,
            }),
        };
        assert_eq!(
            env.ods_of(&logical, &scope, &mut Vec::new()).as_deref(),
            Some("Y01")
        );
        assert_eq!(reader.organizations.get(), 3);
    }
}
