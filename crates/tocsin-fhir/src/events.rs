//! Events from single resources (Encounter, DocumentReference, anything
//! else), and the context that numbers and identifies them.

use std::fmt;

use chrono::{DateTime, Utc};
use tocsin_event::{
    Ack, Document, DocumentKind, Encounter, EventIdSeed, EventType, Format, InterfaceEvent, Source,
    Warning, WarningCode,
};

use crate::prepare::{Entry, Scope};
use crate::subject::{Env, Subject};
use crate::view::{Code, EncounterView, Ident, Meta, Ref};
use crate::{FhirConfig, FhirError};

/// An event before it is numbered.
#[derive(Clone)]
pub(crate) struct Draft {
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub message_id: Option<String>,
    pub message_type: String,
    pub sending_facility: Option<String>,
    pub subject: Subject,
    pub encounter: Option<Encounter>,
    pub document: Option<Document>,
    pub ack: Option<Ack>,
    pub warnings: Vec<Warning>,
}

/// The state of one `normalise_json` call.
pub(crate) struct Ctx<'a> {
    pub env: Env<'a>,
    pub format: Format,
    /// The input's hash state: each event's id finishes it with the
    /// event's sequence number (the input is hashed once, not per event).
    pub ids: EventIdSeed,
    pub events: Vec<InterfaceEvent>,
}

impl Ctx<'_> {
    /// Numbers a draft and adds it to the output.
    pub fn push(&mut self, d: Draft) {
        let sequence = u32::try_from(self.events.len()).unwrap_or(u32::MAX);
        let event_id = self.ids.derive(sequence);
        let message_id = d
            .message_id
            .map(tocsin_event::lowercase_uuid)
            .unwrap_or_else(|| format!("sha256:{}", self.ids.derive(0)));
        // A MessageHeader id cannot hold `urn:uuid:`: a response naming one
        // so names the UUID after it.
        let ack = d.ack.map(|a| {
            let of = tocsin_event::lowercase_uuid(a.of_message_id);
            let of = match of.strip_prefix("urn:uuid:") {
                Some(uuid) => uuid.to_owned(),
                None => of,
            };
            Ack {
                of_message_id: of,
                ..a
            }
        });
        let mut warnings = d.subject.warnings;
        crate::subject::add_warnings(&mut warnings, d.warnings);
        self.events.push(InterfaceEvent {
            event_id,
            event_type: d.event_type,
            occurred_at: d.occurred_at,
            source: Source {
                format: self.format,
                message_id,
                message_type: d.message_type,
                sending_facility: d.sending_facility,
                sending_application: None,
                sequence,
            },
            patient: d.subject.patient,
            encounter: d.encounter,
            document: d.document.map(tocsin_event::Document::with_lowercase_uuids),
            appointment: None,
            gp_practice: d.subject.gp_practice,
            ack,
            merge: None,
            warnings,
        });
    }

    /// One event for a standalone (or collection-entry) resource.
    pub fn resource(&mut self, e: &Entry, scope: &Scope<'_>) -> Result<(), FhirError> {
        let inner = Scope::contained(e, scope);
        let draft = match &*e.rtype {
            "Encounter" => self.encounter(e, &inner)?,
            "DocumentReference" => self.document_reference(e, &inner, None)?,
            // A Composition on its own (an NDJSON line) or in a collection
            // (a transaction storing it): the document, as a
            // DocumentReference would be. Dropped before, without a word:
            // its summary then went overdue.
            "Composition" => self.composition(e, &inner, None, None)?,
            "Patient" => Draft {
                subject: self.env.patient(e, scope)?,
                ..other(e, self.env.cfg.timezone)
            },
            _ => other(e, self.env.cfg.timezone),
        };
        self.push(draft);
        Ok(())
    }

    fn encounter(&mut self, e: &Entry, scope: &Scope<'_>) -> Result<Draft, FhirError> {
        let mut warnings = Vec::new();
        let reference = e.id.as_ref().map(|id| format!("Encounter/{id}"));
        let (enc, v) = self.env.encounter_of(e, scope, reference, &mut warnings)?;
        let event_type = self
            .env
            .cfg
            .encounter_status
            .get(&v.status)
            .copied()
            .unwrap_or_else(|| {
                warnings.push(unmapped(
                    "encounter status",
                    &v.status,
                    &e.loc,
                    "encounter_status",
                ));
                EventType::Other
            });
        let attendance = enc.kind == Some(tocsin_event::EncounterKind::Outpatient);
        let occurred_at = encounter_time(e, &v, event_type, attendance, &mut warnings)?;
        let subject = self.env.subject(
            v.subject.as_ref(),
            scope,
            &format_args!("{}.subject", e.loc),
        )?;
        let sending_facility = v
            .service_provider
            .as_ref()
            .and_then(|sp| self.env.ods_of(sp, scope, &mut warnings));
        Ok(Draft {
            event_type,
            occurred_at,
            message_id: encounter_id(&v),
            message_type: "Encounter".into(),
            sending_facility,
            subject,
            encounter: Some(enc),
            document: None,
            ack: None,
            warnings,
        })
    }

    /// A DocumentReference's event (also used for one a message points at:
    /// then `sent_at` is the message's time, which is the document's
    /// `issued_at`, and its own times are not needed).
    pub fn document_reference(
        &mut self,
        e: &Entry,
        scope: &Scope<'_>,
        sent_at: Option<DateTime<Utc>>,
    ) -> Result<Draft, FhirError> {
        let v = self
            .env
            .reader
            .document_reference(&e.text)
            .map_err(|err| FhirError::invalid("DocumentReference", &e.loc, &err))?;
        let mut warnings = Vec::new();
        let (kind, type_code) = document_kind(self.env.cfg, &v.types, &e.loc, &mut warnings);
        let replaces = v
            .relates_to
            .iter()
            .find(|(code, _)| code == "replaces")
            .map(|(_, t)| {
                replaced_id(
                    t,
                    &format_args!("{}.relatesTo.target", e.loc),
                    &mut warnings,
                )
            });
        let event_type = match (v.status.as_str(), &replaces) {
            ("entered-in-error", _) => EventType::DocumentCancelled,
            // A draft has not left the trust, as for a preliminary
            // Composition: no transmission, or it would hide the missing
            // final document.
            ("current", _) if v.doc_status.as_deref() == Some("preliminary") => {
                warnings.push(Warning {
                    code: WarningCode::Other,
                    message: "the DocumentReference's docStatus is preliminary, not final: the \
                              document is not taken as a transmission"
                        .into(),
                    raw: v.doc_status.clone(),
                    location: Some(format!("{}.docStatus", e.loc)),
                });
                EventType::Other
            }
            ("current", Some(_)) => EventType::DocumentReplaced,
            ("current", None) => EventType::DocumentIssued,
            _ => EventType::Other,
        };
        let issued_at = match (sent_at, v.date, v.meta.last_updated) {
            (Some(t), _, _) | (None, Some(t), _) => t,
            (None, None, Some(t)) => {
                warnings.push(Warning {
                    code: WarningCode::BadTimestamp,
                    message: "DocumentReference has no date; issued_at is meta.lastUpdated".into(),
                    raw: None,
                    location: Some(format!("{}.date", e.loc)),
                });
                t
            }
            (None, None, None) => match v.attachment_created {
                // Refused, a document that had left the trust went missing
                // and its deadline passed: when it was created is the best
                // time left, and no later than it was sent.
                Some(t) => {
                    warnings.push(Warning {
                        code: WarningCode::BadTimestamp,
                        message: "DocumentReference has no date and no meta.lastUpdated; \
                                  issued_at is its attachment's creation"
                            .into(),
                        raw: None,
                        location: Some(format!("{}.date", e.loc)),
                    });
                    t
                }
                None => {
                    return Err(FhirError::MissingTimestamp {
                        resource_type: "DocumentReference".into(),
                        location: e.loc.to_string(),
                        what: "date (STU3: indexed), meta.lastUpdated and \
                               content.attachment.creation are absent"
                            .into(),
                    });
                }
            },
        };
        let subject = self.env.subject(
            v.subject.as_ref(),
            scope,
            &format_args!("{}.subject", e.loc),
        )?;
        let encounter = match v.encounters.first() {
            Some(r) => Some(self.env.encounter_ref(
                r,
                scope,
                &format_args!("{}.context.encounter", e.loc),
                &mut warnings,
            )?),
            None => None,
        };
        // One encounter is what a document settles: the others are said,
        // not dropped without a word (a letter listing the last stay, then
        // this one, waited for the last and left this one missing).
        if v.encounters.len() > 1 {
            let others: Vec<&str> = v.encounters[1..]
                .iter()
                .filter_map(|r| r.reference.as_deref())
                .collect();
            warnings.push(Warning {
                code: WarningCode::Other,
                message: format!(
                    "DocumentReference.context.encounter names {} encounters: only the first \
                     is matched",
                    v.encounters.len()
                ),
                raw: (!others.is_empty()).then(|| others.join(", ")),
                location: Some(format!("{}.context.encounter[1]", e.loc)),
            });
        }
        let doc_id = first_value(v.master_identifier.iter().chain(&v.identifiers))
            .or_else(|| v.meta.id.clone())
            .unwrap_or_default();
        let sending_facility = v
            .custodian
            .as_ref()
            .and_then(|c| self.env.ods_of(c, scope, &mut warnings));
        Ok(Draft {
            event_type,
            occurred_at: issued_at,
            message_id: standalone_id("DocumentReference", &v.meta, Some(&v.status)),
            message_type: "DocumentReference".into(),
            sending_facility,
            subject,
            encounter,
            document: Some(Document {
                id: doc_id,
                kind,
                type_code,
                issued_at,
                authored_at: v.created.or(v.attachment_created),
                recipient: None,
                replaces,
            }),
            ack: None,
            warnings,
        })
    }
}

/// When an Encounter's event happened: the period bound its status calls
/// for, else meta.lastUpdated or the other bound (with a warning); for an
/// outpatient attendance ended without an end, its start first.
///
/// A planned encounter has not happened: its period is the plan, often
/// weeks ahead, and as occurred_at it would move the tracker's clock past
/// every open deadline. Its time is meta.lastUpdated (when the plan was
/// written); without one, the Unix epoch, the time [`other`] gives a
/// resource with none, with the same warning.
fn encounter_time(
    e: &Entry,
    v: &EncounterView,
    event_type: EventType,
    attendance: bool,
    warnings: &mut Vec<Warning>,
) -> Result<DateTime<Utc>, FhirError> {
    if v.status == "planned" {
        return Ok(v.meta.last_updated.unwrap_or_else(|| {
            warnings.push(Warning {
                code: WarningCode::BadTimestamp,
                message: "a planned Encounter's period is no time it happened, and it has no \
                          meta.lastUpdated; occurred_at is the Unix epoch"
                    .into(),
                raw: None,
                location: Some(e.loc.to_string()),
            });
            DateTime::<Utc>::UNIX_EPOCH
        }));
    }
    let preferred = match event_type {
        EventType::EncounterEnded => v.end,
        EventType::EncounterStarted => v.start,
        _ => None,
    };
    match preferred {
        Some(t) => Ok(t),
        None => {
            // An outpatient attendance that ended without an end took place
            // at its start, a few hours from its end at most, while its
            // last edit (the outcome coded days later) would push the
            // clinic letter's deadline out and a late letter in time. Any
            // other encounter started at admission, days before it ended:
            // its last edit is nearer, and without one its end is not
            // known (taken from its start, a summary sent two hours after
            // the discharge was judged days late).
            let fallback = match (event_type, attendance) {
                (EventType::EncounterEnded, true) => v.start.or(v.meta.last_updated),
                (EventType::EncounterEnded, false) => v.meta.last_updated,
                _ => v.meta.last_updated.or(v.end).or(v.start),
            };
            if matches!(
                event_type,
                EventType::EncounterEnded | EventType::EncounterStarted
            ) && fallback.is_some()
            {
                warnings.push(Warning {
                    code: WarningCode::BadTimestamp,
                    message: "the period bound for this status is missing (or before 1800); \
                              occurred_at taken from meta.lastUpdated or the other bound (an \
                              outpatient attendance's start first)"
                        .into(),
                    raw: None,
                    location: Some(format!("{}.period", e.loc)),
                });
            }
            fallback.ok_or_else(|| FhirError::MissingTimestamp {
                resource_type: "Encounter".into(),
                location: e.loc.to_string(),
                what: if event_type == EventType::EncounterEnded && !attendance {
                    "a finished stay with neither period.end nor meta.lastUpdated: its \
                     admission (period.start) is no discharge time"
                } else {
                    "period.start, period.end and meta.lastUpdated are all absent"
                }
                .into(),
            })
        }
    }
}

/// The `other` event for a resource tocsin does not use: nothing is dropped.
pub(crate) fn other(e: &Entry, tz: chrono_tz::Tz) -> Draft {
    let value = e.value(tz);
    let (occurred_at, warnings) = match any_time(e, &value) {
        Some(t) => (t, Vec::new()),
        None => (
            DateTime::<Utc>::UNIX_EPOCH,
            vec![Warning {
                code: WarningCode::BadTimestamp,
                message: "the resource carries no time tocsin reads; occurred_at is the Unix epoch"
                    .into(),
                raw: None,
                location: Some(e.loc.to_string()),
            }],
        ),
    };
    let meta = Meta {
        id: e.id.as_deref().map(str::to_owned),
        version_id: value
            .pointer("/meta/versionId")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        last_updated: None,
    };
    Draft {
        event_type: EventType::Other,
        occurred_at,
        message_id: standalone_id(&e.rtype, &meta, None),
        message_type: e.rtype.to_string(),
        sending_facility: None,
        subject: Subject::default(),
        encounter: None,
        document: None,
        ack: None,
        warnings,
    }
}

/// The first time among the elements most resources carry.
fn any_time(e: &Entry, value: &serde_json::Value) -> Option<DateTime<Utc>> {
    const POINTERS: &[&str] = &[
        "/meta/lastUpdated",
        "/timestamp",
        "/date",
        "/issued",
        "/recorded",
        "/authoredOn",
        "/effectiveDateTime",
        "/period/start",
    ];
    let v = e
        .bundle
        .as_ref()
        .map(|b| b.view.timestamp.or(b.view.meta.last_updated));
    if let Some(t) = v {
        return t;
    }
    POINTERS.iter().find_map(|p| {
        let s = value.pointer(p)?.as_str()?;
        let d: fhir_sdk::DateTime = s.parse().ok()?;
        crate::time::datetime_utc(&d, chrono_tz::UTC)
    })
}

/// The message id of a standalone resource, which the tracker's duplicate
/// key is made of: `Type/id/_history/version`, else `Type/id`. A
/// withdrawing status (`cancelled`, `entered-in-error`) is added after `#`:
/// a server that withdraws a resource without a new version would
/// otherwise have the withdrawal dropped as a duplicate of the version it
/// withdraws. Every other id is as tocsin has always written it, so that a
/// resource sent again after an upgrade is still known.
pub(crate) fn standalone_id(rtype: &str, meta: &Meta, status: Option<&str>) -> Option<String> {
    let id = meta.id.as_ref()?;
    let mut out = match &meta.version_id {
        Some(v) => format!("{rtype}/{id}/_history/{v}"),
        None => format!("{rtype}/{id}"),
    };
    if let Some(st @ ("cancelled" | "entered-in-error")) = status {
        out.push('#');
        out.push_str(st);
    }
    Some(out)
}

/// An Encounter's message id: [`standalone_id`], with the end it states
/// added (`#end=...`). A server that corrects an Encounter's `period.end`
/// without a new `meta.versionId` (optional in FHIR, and some engines send
/// every update as version 1) sent the same id twice, and the correction
/// was dropped as a duplicate of the first: the deadline stayed on the
/// wrong end. Sent again unchanged, it is still a duplicate; a withdrawal
/// keeps its own mark. A versioned Encounter recorded by an older tocsin
/// (whose id had no end) and sent again after an upgrade is not taken for
/// a duplicate; the tracker recognises it as a repeated end.
fn encounter_id(v: &EncounterView) -> Option<String> {
    let mut id = standalone_id("Encounter", &v.meta, Some(&v.status))?;
    if !matches!(v.status.as_str(), "cancelled" | "entered-in-error")
        && let Some(end) = v.end
    {
        id.push_str("#end=");
        id.push_str(&end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    }
    Some(id)
}

/// The first non-empty identifier value.
pub(crate) fn first_value<'a>(ids: impl IntoIterator<Item = &'a Ident>) -> Option<String> {
    ids.into_iter()
        .find_map(|i| i.value.clone().filter(|v| !v.is_empty()))
}

/// The id of the document a replacement names (a relatesTo `replaces`
/// target), to be compared with the ids documents are read with: the
/// target's identifier value, which is what that id is read from; else
/// the id in a `Type/id` reference or URL, which is the replaced
/// document's id only when it had no identifier of its own. That is said
/// in a warning: taken as written (`DocumentReference/d1`), the reference
/// matched no document ever, and the replacement was counted as another
/// document without a word.
pub(crate) fn replaced_id(r: &Ref, at: &dyn fmt::Display, warnings: &mut Vec<Warning>) -> String {
    if let Some(id) = first_value(&r.identifier) {
        return id;
    }
    let written = r.reference.as_deref().unwrap_or_default();
    let id = crate::prepare::relative_part(written).map_or(written, |(_, id)| id);
    warnings.push(Warning {
        code: WarningCode::Other,
        message: if id.is_empty() {
            "relatesTo replaces names no document: the replaced document is unknown".into()
        } else {
            format!(
                "relatesTo names the replaced document by reference, not identifier: it is taken \
                 as document {id}, which is a document's id only when it has no identifier"
            )
        },
        raw: (!written.is_empty()).then(|| written.to_owned()),
        location: Some(at.to_string()),
    });
    id.to_owned()
}

/// Document kind and the code it came from, through `[fhir.document_type]`.
pub(crate) fn document_kind(
    cfg: &FhirConfig,
    types: &[Code],
    loc: &dyn fmt::Display,
    warnings: &mut Vec<Warning>,
) -> (DocumentKind, Option<String>) {
    for c in types {
        if let Some(code) = &c.code
            && let Some(k) = FhirConfig::lookup(&cfg.document_type, c.system.as_deref(), code)
        {
            return (*k, Some(code.clone()));
        }
    }
    let first = types.iter().find_map(|c| c.code.clone());
    warnings.push(unmapped(
        "document type",
        first.as_deref().unwrap_or("(none)"),
        loc,
        "document_type",
    ));
    (DocumentKind::Other, first)
}

/// The warning for a code with no mapping.
pub(crate) fn unmapped(what: &str, code: &str, loc: &dyn fmt::Display, table: &str) -> Warning {
    Warning {
        code: WarningCode::UnmappedCode,
        message: format!("{what} {code} has no mapping in [fhir.{table}]"),
        raw: Some(code.to_owned()),
        location: Some(loc.to_string()),
    }
}
