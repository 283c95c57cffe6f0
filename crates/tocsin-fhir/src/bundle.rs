//! Events from bundles: documents, messages (R4 and ITK3) and collections.

use chrono::{DateTime, Utc};
use tocsin_event::{Ack, Document, DocumentKind, EventType, Warning, WarningCode};

use crate::events::{Ctx, Draft, document_kind, first_value, other, replaced_id, unmapped};
use crate::loc::Loc;
use crate::prepare::{Entry, Prepared, Resourceless, Scope};
use crate::subject::{json_list, json_text, unresolved};
use crate::view::MessageHeaderView;
use crate::{FhirConfig, FhirError};

/// Bundle types whose entries each stand alone.
const COLLECTIONS: &[&str] = &["transaction", "batch", "collection", "searchset", "history"];

impl Ctx<'_> {
    /// The events of a bundle entry that is itself a bundle, or of the input.
    pub fn bundle(&mut self, e: &Entry, scope: &Scope<'_>) -> Result<(), FhirError> {
        let Some(b) = e.bundle.as_deref() else {
            return Ok(());
        };
        match b.view.bundle_type.as_str() {
            "document" => {
                let d = self.document(b, scope, None)?;
                self.push(d);
            }
            "message" => {
                let d = self.message(b, scope)?;
                self.push(d);
            }
            t if COLLECTIONS.contains(&t) => {
                let before = self.events.len();
                let inner = Scope::bundle(b, scope);
                for entry in &b.entries {
                    match &*entry.rtype {
                        "Encounter" | "DocumentReference" | "Composition" => {
                            self.resource(entry, &inner)?
                        }
                        "Bundle" => self.bundle(entry, &inner)?,
                        _ => {}
                    }
                }
                let warnings = b.resourceless.iter().map(|r| resourceless(b, r));
                if self.events.len() == before {
                    let mut d = bundle_other(e, b, self.env.cfg.timezone);
                    d.warnings.extend(warnings);
                    self.push(d);
                } else {
                    self.events[before].warnings.extend(warnings);
                }
            }
            _ => self.push(bundle_other(e, b, self.env.cfg.timezone)),
        }
        Ok(())
    }

    /// A document bundle: the Composition (first entry) gives the event.
    /// `sent_at` is the time of the message carrying it, if any.
    fn document(
        &mut self,
        b: &Prepared,
        outer: &Scope<'_>,
        sent_at: Option<DateTime<Utc>>,
    ) -> Result<Draft, FhirError> {
        let scope = Scope::bundle(b, outer);
        let comp = b
            .entries
            .first()
            .filter(|e| b.first_has_resource && e.rtype == "Composition")
            .ok_or_else(|| FhirError::InvalidResource {
                resource_type: "Bundle".into(),
                location: format!("{}.entry[0].resource", b.loc),
                message: "a document bundle's first entry must be a Composition".into(),
            })?;
        self.composition(comp, &scope, Some(b), sent_at)
    }

    /// The document event of a Composition, resolving its references in
    /// `scope`; `bundle` is the document bundle holding it, if any (a
    /// Composition may also sit directly in a message). In a message,
    /// `sent_at` is the message's time: it is the document's `issued_at`,
    /// whatever times the document itself carries or lacks.
    pub(crate) fn composition(
        &mut self,
        comp_entry: &Entry,
        scope: &Scope<'_>,
        bundle: Option<&Prepared>,
        sent_at: Option<DateTime<Utc>>,
    ) -> Result<Draft, FhirError> {
        let c = self
            .env
            .reader
            .composition(&comp_entry.text)
            .map_err(|err| FhirError::invalid("Composition", &comp_entry.loc, &err))?;
        let cscope = Scope::contained(comp_entry, scope);
        let at = &comp_entry.loc;
        let mut warnings = Vec::new();
        let (kind, type_code) = document_kind(
            self.env.cfg,
            &c.types,
            &format_args!("{at}.type"),
            &mut warnings,
        );
        let subject =
            self.env
                .subject(c.subject.as_ref(), &cscope, &format_args!("{at}.subject"))?;
        let encounter = match &c.encounter {
            Some(r) => Some(self.env.encounter_ref(
                r,
                &cscope,
                &format_args!("{at}.encounter"),
                &mut warnings,
            )?),
            None => None,
        };
        let bundle_time = bundle.and_then(|b| b.view.timestamp.or(b.view.meta.last_updated));
        let issued_at = match (sent_at.or(bundle_time), c.date) {
            (Some(t), _) => t,
            (None, Some(t)) => {
                warnings.push(match bundle {
                    Some(b) => Warning {
                        code: WarningCode::BadTimestamp,
                        message: "the bundle has no timestamp or meta.lastUpdated; issued_at is \
                                  Composition.date"
                            .into(),
                        raw: None,
                        location: Some(b.loc.to_string()),
                    },
                    // On its own or in a collection: no bundle or message
                    // says when it was sent.
                    None => Warning {
                        code: WarningCode::Other,
                        message: "a Composition outside a document bundle or message: \
                                  issued_at is Composition.date, when it was written, not sent"
                            .into(),
                        raw: None,
                        location: Some(format!("{}.date", comp_entry.loc)),
                    },
                });
                t
            }
            (None, None) => {
                return Err(FhirError::MissingTimestamp {
                    resource_type: "Composition".into(),
                    location: at.to_string(),
                    what: "Bundle.timestamp, meta.lastUpdated and Composition.date are absent"
                        .into(),
                });
            }
        };
        let replaces = c.replaces.as_ref().map(|r| {
            replaced_id(
                r,
                &format_args!("{}.relatesTo.target", comp_entry.loc),
                &mut warnings,
            )
        });
        let event_type = match (c.status.as_str(), &replaces) {
            ("entered-in-error", _) => EventType::DocumentCancelled,
            // A draft has not left the trust: it is no transmission, and
            // counting it would hide the missing final document.
            ("preliminary", _) => {
                warnings.push(Warning {
                    code: WarningCode::Other,
                    message: "the Composition is preliminary, not final: the document is not \
                              taken as a transmission"
                        .into(),
                    raw: Some(c.status.clone()),
                    location: Some(format!("{}.status", comp_entry.loc)),
                });
                EventType::Other
            }
            (_, Some(_)) => EventType::DocumentReplaced,
            _ => EventType::DocumentIssued,
        };
        let bundle_ident = bundle.and_then(|b| first_value(&b.view.identifier));
        // The Composition's identifier is the document's (Transfer of
        // Care: a replacement names it in relatesTo, and an amended or
        // resent copy in a new bundle keeps it); the bundle's, each
        // sending's own, is the message id.
        let doc_id = first_value(&c.identifier)
            .or_else(|| bundle_ident.clone())
            .or_else(|| c.meta.id.clone())
            .or_else(|| bundle.and_then(|b| b.view.meta.id.clone()))
            .unwrap_or_default();
        let mut sending_facility = c
            .custodian
            .as_ref()
            .and_then(|r| self.env.ods_of(r, &cscope, &mut warnings));
        for a in &c.authors {
            if sending_facility.is_some() {
                break;
            }
            sending_facility = self.env.ods_of(a, &cscope, &mut warnings);
        }
        Ok(Draft {
            event_type,
            occurred_at: issued_at,
            message_id: bundle_ident.or_else(|| bundle.and_then(|b| b.view.meta.id.clone())),
            message_type: match (bundle, sent_at) {
                (None, None) => "Composition",
                _ => "Bundle/document",
            }
            .into(),
            sending_facility,
            subject,
            encounter,
            document: Some(Document {
                id: doc_id,
                kind,
                type_code,
                issued_at,
                authored_at: c.date,
                recipient: None,
                replaces,
            }),
            ack: None,
            warnings,
        })
    }

    /// A message bundle: MessageHeader first; a document event for the
    /// payload of a document message, an acknowledgement for a response.
    fn message(&mut self, b: &Prepared, outer: &Scope<'_>) -> Result<Draft, FhirError> {
        let scope = Scope::bundle(b, outer);
        let mh_entry = b
            .entries
            .first()
            .filter(|e| b.first_has_resource && e.rtype == "MessageHeader")
            .ok_or_else(|| FhirError::InvalidResource {
                resource_type: "Bundle".into(),
                location: format!("{}.entry[0].resource", b.loc),
                message: "a message bundle's first entry must be a MessageHeader".into(),
            })?;
        let mut code_case = None;
        let mh = self
            .env
            .reader
            .message_header(&mh_entry.text)
            .or_else(|err| {
                // A response code in capitals ("OK", "Fatal-Error"), as some
                // GP systems send it: read in lowercase, with a warning,
                // rather than the refusal it may carry lost with the message.
                let refused = || FhirError::invalid("MessageHeader", &mh_entry.loc, &err);
                let (text, raw) = response_code_in_lowercase(&mh_entry.text).ok_or_else(refused)?;
                let mh = self
                    .env
                    .reader
                    .message_header(&text)
                    .map_err(|_| refused())?;
                code_case = Some(raw);
                Ok::<_, FhirError>(mh)
            })?;
        let sent_at = mh
            .timestamp
            .or(b.view.timestamp)
            .or(b.view.meta.last_updated)
            .ok_or_else(|| FhirError::MissingTimestamp {
                resource_type: "Bundle".into(),
                location: b.loc.to_string(),
                what: "MessageHeader.timestamp (STU3), Bundle.timestamp (R4) and \
                       meta.lastUpdated are absent"
                    .into(),
            })?;
        let message_id = mh
            .meta
            .id
            .clone()
            .or_else(|| first_value(&b.view.identifier))
            .or_else(|| b.view.meta.id.clone());
        let event_code = mh.event.as_ref().and_then(|c| c.code.clone());
        let message_type = event_code
            .clone()
            .unwrap_or_else(|| "Bundle/message".into());
        let mut warnings: Vec<Warning> = code_case
            .into_iter()
            .map(|raw| Warning {
                code: WarningCode::UnmappedCode,
                message: "MessageHeader.response.code is not written as FHIR's codes are \
                          (lowercase, no spaces): read in lowercase"
                    .into(),
                raw: Some(raw),
                location: Some(format!("{}.response.code", mh_entry.loc)),
            })
            .collect();
        let mut sending_facility = mh
            .sender
            .as_ref()
            .and_then(|s| self.env.ods_of(s, &scope, &mut warnings));
        // Without a sender, the source endpoint: the ODS code it carries
        // (as for the recipient's destination endpoint), else as sent.
        if sending_facility.is_none() {
            sending_facility = mh
                .source_endpoint
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|ep| self.env.cfg.ods_from_endpoint(ep).unwrap_or(ep).to_owned());
        }
        let base = Draft {
            message_id,
            message_type,
            sending_facility,
            occurred_at: sent_at,
            warnings,
            ..message_skeleton()
        };
        if let Some((of_message_id, code)) = &mh.response {
            return Ok(self.response(base, &mh, of_message_id, code, &scope, &mh_entry.loc));
        }
        let kind = mh.event.as_ref().and_then(|c| {
            let code = c.code.as_deref()?;
            FhirConfig::lookup(&self.env.cfg.itk_event, c.system.as_deref(), code).copied()
        });
        let for_information = for_information(mh_entry);
        if let Some(kind) = kind {
            let d = self.document_message(base, Some(kind), &mh, sent_at, &scope, &mh_entry.loc)?;
            return Ok(copy_for_information(d, for_information));
        }
        let warning = event_code.as_ref().map(|code| {
            unmapped(
                "message event",
                code,
                &format_args!("{}.event", mh_entry.loc),
                "itk_event",
            )
        });
        // An event not mapped may still carry a document whose own type
        // is: a discharge summary sent under an event the table lacks was
        // dropped as `other`. A payload that says nothing, or cannot be
        // read, leaves the message `other`, as before.
        let carried = self
            .document_message(base.clone(), None, &mh, sent_at, &scope, &mh_entry.loc)
            .ok()
            .filter(|d| {
                d.document
                    .as_ref()
                    .is_some_and(|doc| doc.kind != DocumentKind::Other)
            });
        let mut d = match carried {
            Some(d) => copy_for_information(d, for_information),
            None => base,
        };
        d.warnings.extend(warning);
        Ok(d)
    }

    fn response(
        &self,
        mut d: Draft,
        mh: &MessageHeaderView,
        of_message_id: &str,
        code: &str,
        scope: &Scope<'_>,
        at: &Loc,
    ) -> Draft {
        let outcome = mh
            .response_details
            .as_ref()
            .and_then(|r| r.reference.as_deref())
            .and_then(|r| scope.resolve(r))
            .map(|e| e.value(self.env.cfg.timezone));
        // An ITK3 code the table lists decides (a duplicate is no
        // failure), from whichever issue carries it; otherwise the response
        // code does, detailed by the first coded issue.
        let table = &self.env.cfg.itk_response_code;
        let codings = outcome.as_ref().map(detail_codings).unwrap_or_default();
        let listed = codings
            .iter()
            .find_map(|c| FhirConfig::lookup(table, c.system.as_deref(), &c.code).map(|t| (c, t)));
        let by_detail = listed.map(|(_, t)| t);
        let detail = listed.map(|(c, _)| c).or(codings.first());
        d.event_type = match by_detail.or_else(|| self.env.cfg.response_code.get(code)) {
            Some(t) => *t,
            None => {
                d.warnings.push(unmapped(
                    "response code",
                    code,
                    &format_args!("{at}.response.code"),
                    "response_code",
                ));
                EventType::Other
            }
        };
        d.ack = Some(Ack {
            of_message_id: of_message_id.to_owned(),
            code: code.to_owned(),
            detail_code: detail.map(|c| c.code.clone()),
            text: outcome
                .as_ref()
                .and_then(|o| outcome_text(o, detail.map_or(0, |c| c.issue))),
        });
        d
    }

    fn document_message(
        &mut self,
        mut base: Draft,
        kind: Option<DocumentKind>,
        mh: &MessageHeaderView,
        sent_at: DateTime<Utc>,
        scope: &Scope<'_>,
        at: &Loc,
    ) -> Result<Draft, FhirError> {
        let event_code = mh.event.as_ref().and_then(|c| c.code.clone());
        let named = mh
            .focus
            .iter()
            .filter_map(|f| f.reference.as_deref())
            .find_map(|r| scope.resolve(r));
        // No focus, or one that names nothing here (focus became mandatory
        // only in ITK3 2.1): the message's only document is its payload,
        // with a warning; lost, its discharge went missing.
        let only = named.is_none().then(|| only_payload(scope)).flatten();
        if let Some(e) = only {
            base.warnings.push(Warning {
                code: WarningCode::UnresolvedReference,
                message: format!(
                    "MessageHeader.focus names no resource of the message: its only {}, at {}, \
                     is taken as the payload",
                    e.rtype, e.loc
                ),
                // The reference as sent, if any (it may name a patient).
                raw: mh.focus.first().and_then(|f| f.reference.clone()),
                location: Some(format!("{at}.focus")),
            });
        }
        let focus = named.or(only);
        let mut empty_collection = false;
        let payload = match focus {
            Some(e) if e.rtype == "Bundle" => match e.bundle.as_deref() {
                Some(nested) if nested.view.bundle_type == "document" => {
                    Some(self.document(nested, scope, Some(sent_at))?)
                }
                // A collection payload (ITK3's `...C` events, e.g. GP
                // Connect Send Document's ITK007C): its Composition is the
                // document (any DocumentReferences beside it are its
                // attachments), else its DocumentReference; references
                // resolve among the collection's entries.
                Some(nested) if nested.view.bundle_type == "collection" => {
                    let collection = Scope::bundle(nested, scope);
                    let of = |t: &str| nested.entries.iter().find(|x| x.rtype == t);
                    if let Some(c) = of("Composition") {
                        Some(self.composition(c, &collection, None, Some(sent_at))?)
                    } else if let Some(dr) = of("DocumentReference") {
                        let inner = Scope::contained(dr, &collection);
                        Some(self.document_reference(dr, &inner, Some(sent_at))?)
                    } else {
                        empty_collection = true;
                        None
                    }
                }
                _ => None,
            },
            Some(e) if e.rtype == "Composition" => {
                Some(self.composition(e, scope, None, Some(sent_at))?)
            }
            Some(e) if e.rtype == "DocumentReference" => {
                let inner = Scope::contained(e, scope);
                Some(self.document_reference(e, &inner, Some(sent_at))?)
            }
            _ => None,
        };
        let mut d = match payload {
            Some(p) => {
                // The header's (its sender's), then the payload's, once each.
                let mut warnings = std::mem::take(&mut base.warnings);
                crate::subject::add_warnings(&mut warnings, p.warnings);
                Draft {
                    event_type: p.event_type,
                    subject: p.subject,
                    encounter: p.encounter,
                    document: p.document,
                    warnings,
                    ..base
                }
            }
            None => {
                let mut d = base;
                d.event_type = EventType::DocumentIssued;
                let r = mh.focus.first().and_then(|f| f.reference.clone());
                d.warnings.push(match r {
                    Some(_) if empty_collection => Warning {
                        code: WarningCode::Other,
                        message: "the message's payload collection holds no Composition or \
                                  DocumentReference"
                            .into(),
                        raw: None,
                        location: Some(format!("{at}.focus")),
                    },
                    Some(r) => unresolved(&r, &format_args!("{at}.focus")),
                    None => Warning {
                        code: WarningCode::UnresolvedReference,
                        message: "the message names no document in MessageHeader.focus".into(),
                        raw: None,
                        location: Some(format!("{at}.focus")),
                    },
                });
                d
            }
        };
        let mut recipient = None;
        for r in &mh.receivers {
            recipient = self.env.ods_of(r, scope, &mut d.warnings);
            if recipient.is_some() {
                break;
            }
        }
        let recipient = recipient.or_else(|| {
            mh.destination_endpoints
                .iter()
                .find_map(|ep| self.env.cfg.ods_from_endpoint(ep).map(str::to_owned))
        });
        let doc = d.document.get_or_insert_with(|| Document {
            id: d.message_id.clone().unwrap_or_default(),
            kind: kind.unwrap_or(DocumentKind::Other),
            type_code: None,
            issued_at: sent_at,
            authored_at: None,
            recipient: None,
            replaces: None,
        });
        // The message event is the sender's statement of what it sends;
        // without one mapped, the document's own type says.
        let kind = kind.unwrap_or(doc.kind);
        if doc.kind != kind {
            d.warnings.retain(|w| w.code != WarningCode::UnmappedCode);
            // A document typed as the other kind: the sender's
            // configuration disagrees with itself, and which is right is
            // for the integration team to find (the event's `type_code`
            // keeps the document's own code).
            if doc.kind != DocumentKind::Other {
                d.warnings.push(Warning {
                    code: WarningCode::Other,
                    message: format!(
                        "the message event is for a {} but the document is typed as a {}: \
                         the event's kind is taken",
                        kind.as_str(),
                        doc.kind.as_str()
                    ),
                    raw: event_code.clone(),
                    location: Some(format!("{at}.event")),
                });
            }
        }
        doc.kind = kind;
        if doc.type_code.is_none() {
            doc.type_code = event_code;
        }
        doc.recipient = recipient;
        d.occurred_at = sent_at;
        Ok(d)
    }
}

/// An event for a bundle that carries nothing tocsin tracks.
fn bundle_other(e: &Entry, b: &Prepared, tz: chrono_tz::Tz) -> Draft {
    Draft {
        message_id: first_value(&b.view.identifier).or_else(|| b.view.meta.id.clone()),
        message_type: format!("Bundle/{}", b.view.bundle_type),
        ..other(e, tz)
    }
}

/// The warning for an entry without a resource that changes something (a
/// DELETE): tocsin takes no event from it, and says so. It names the entry
/// and the resource type, never the id (a Patient's may be its NHS number).
fn resourceless(b: &Prepared, r: &Resourceless) -> Warning {
    let method = r.method.as_deref().unwrap_or("(none)");
    let rtype = r.rtype.as_deref().unwrap_or("(unknown type)");
    Warning {
        code: WarningCode::Other,
        message: format!(
            "entry without a resource (request {method}, resource type {rtype}) is not read: \
             tocsin takes no event from it"
        ),
        raw: None,
        location: Some(format!("{}.entry[{}]", b.loc, r.index)),
    }
}

/// The skeleton of a message's event, before its kind is known.
fn message_skeleton() -> Draft {
    Draft {
        event_type: EventType::Other,
        occurred_at: DateTime::<Utc>::UNIX_EPOCH,
        message_id: None,
        message_type: String::new(),
        sending_facility: None,
        subject: Default::default(),
        encounter: None,
        document: None,
        ack: None,
        warnings: Vec::new(),
    }
}

/// Whether an ITK3 message says its recipient gets it for information
/// only: the MessageHeader's handling extension
/// (`Extension-ITK-MessageHandling-2`) with `RecipientType` `FI` (ITK3
/// Messaging Distribution, Handling Specification; `FA` is for action).
fn for_information(mh: &Entry) -> bool {
    // Read as JSON: its model is not given extensions.
    let Some(extensions) = mh.member("extension") else {
        return false;
    };
    let url = |v: &serde_json::Value| json_text(v, "url").unwrap_or_default();
    extensions
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| url(e).contains("Extension-ITK-MessageHandling"))
        .flat_map(|e| json_list(e, "extension"))
        .filter(|e| url(e) == "RecipientType")
        .any(|e| {
            e.pointer("/valueCoding/code")
                .and_then(|c| c.as_str())
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("FI"))
        })
}

/// A document message's copy sent for information (ITK3 `FI`) to someone
/// other than the patient's GP practice (a care home, a community team):
/// the document left the trust, but not to the GP, so it settles nothing
/// (`other`, the document kept for audit). Read first, it settled the
/// GP's expectation, and the GP's own copy (`FA`), taken for a repeat,
/// never had its acknowledgement or refusal applied.
fn copy_for_information(mut d: Draft, for_information: bool) -> Draft {
    let to_gp = d
        .document
        .as_ref()
        .is_some_and(|doc| doc.recipient.is_some() && doc.recipient == d.subject.gp_practice);
    let transmission = matches!(
        d.event_type,
        EventType::DocumentIssued | EventType::DocumentReplaced
    );
    if for_information && !to_gp && transmission {
        d.event_type = EventType::Other;
    }
    d
}

/// A MessageHeader's JSON text with its `response.code` in lowercase and
/// trimmed, and the code as sent, when that makes it one of FHIR's response
/// codes.
fn response_code_in_lowercase(text: &str) -> Option<(String, String)> {
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    let code = v.pointer_mut("/response/code")?;
    let raw = code.as_str()?.to_owned();
    let lower = raw.trim().to_ascii_lowercase();
    if lower == raw || !matches!(&*lower, "ok" | "transient-error" | "fatal-error") {
        return None;
    }
    *code = lower.into();
    Some((v.to_string(), raw))
}

/// A message's only payload, when its focus names none: its one nested
/// document or collection bundle, else its one Composition, else its one
/// DocumentReference; none when there are several (which is meant cannot
/// be told).
fn only_payload<'a>(scope: &Scope<'a>) -> Option<&'a Entry<'a>> {
    let one = |matches: &dyn Fn(&Entry<'_>) -> bool| {
        let mut found = scope.entries.iter().filter(|e| matches(e));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    };
    let payload_bundle = |e: &Entry<'_>| {
        e.bundle
            .as_deref()
            .is_some_and(|b| matches!(&*b.view.bundle_type, "document" | "collection"))
    };
    let bundles = scope.entries.iter().filter(|e| payload_bundle(e)).count();
    match bundles {
        1 => one(&payload_bundle),
        0 => one(&|e| e.rtype == "Composition").or_else(|| {
            let compositions = scope.entries.iter().any(|e| e.rtype == "Composition");
            (!compositions)
                .then(|| one(&|e| e.rtype == "DocumentReference"))
                .flatten()
        }),
        _ => None,
    }
}

/// A coded detail of an OperationOutcome issue (an ITK3 response code).
struct DetailCoding {
    /// The index of the issue it details.
    issue: usize,
    system: Option<String>,
    code: String,
}

/// The codings detailing an OperationOutcome's issues, in order: each
/// issue's first coded detail. A receiver may put a generic issue before
/// the one that carries its ITK3 response code.
fn detail_codings(v: &serde_json::Value) -> Vec<DetailCoding> {
    let Some(issues) = v.get("issue").and_then(|i| i.as_array()) else {
        return Vec::new();
    };
    let coded = |(issue, i): (usize, &serde_json::Value)| {
        let coding = i
            .pointer("/details/coding")?
            .as_array()?
            .iter()
            .find(|c| c.get("code").and_then(|c| c.as_str()).is_some())?;
        let code = coding.get("code")?.as_str()?.trim();
        let system = coding.get("system").and_then(|s| s.as_str());
        (!code.is_empty()).then(|| DetailCoding {
            issue,
            system: system.map(str::to_owned),
            code: code.to_owned(),
        })
    };
    issues.iter().enumerate().filter_map(coded).collect()
}

/// The human text of an OperationOutcome's issue `index` (ITK response
/// details).
fn outcome_text(v: &serde_json::Value, index: usize) -> Option<String> {
    let issue = v.get("issue")?.as_array()?.get(index)?;
    issue
        .pointer("/details/text")
        .or_else(|| issue.pointer("/details/coding/0/display"))
        .or_else(|| issue.get("diagnostics"))
        .and_then(|s| s.as_str())
        .map(str::to_owned)
}
