//! Documents: correlation with open expectations (encounter id, FHIR
//! reference, then patient and window), settlement, and documents that come
//! before their encounter's end.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tocsin_event::{Document, EventId, EventType, InterfaceEvent, Patient};

use super::effects::Effects;
use super::events::expectation_id_bytes;
use super::open::{Open, ms};
use super::state::{EarlyAck, Held, HeldAcks, Transmission};
use super::{Effect, Tracker, build_alert, enc_key, local_key, namespaces, nhs_key, ref_key};
use crate::compact::key_hash;
use crate::model::{DeliveryStatus, Expectation, ExpectationStatus, MatchMethod, Settlement};
use crate::{AlertDocument, AlertKind, DeliveryFailure};

/// A document that matched no open expectation, kept (as auxiliary state)
/// until its encounter ends or the pending-document horizon passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingDocument {
    pub event_id: EventId,
    pub message_id: String,
    pub document: Document,
    pub patient: Patient,
    pub encounter_id: Option<String>,
    pub encounter_ref: Option<String>,
    /// The acknowledgements that came while the document waited (or
    /// before it): applied in time order when it settles an expectation.
    #[serde(default, skip_serializing_if = "HeldAcks::is_empty")]
    pub acks: HeldAcks,
    /// Revived: how many of `acks` it carried from its transmission, which
    /// were applied when it first settled: should it expire, only the
    /// others are counted `ack_unmatched`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub carried_acks: u8,
    /// Records written before `acks` was kept hold one outcome, the time
    /// of its failure and that failure's codes: read into `acks` at
    /// restore ([`PendingDocument::upgraded`]), never written.
    #[serde(default, rename = "delivery", skip_serializing)]
    legacy_delivery: Option<DeliveryStatus>,
    #[serde(default, rename = "failed_at", skip_serializing)]
    legacy_failed_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "failure", skip_serializing)]
    legacy_failure: Option<DeliveryFailure>,
    /// It settled a discharge since cancelled (A13, A11) and waits for the
    /// discharge recorded again: it settles only an end it was issued
    /// within the match window of, whatever it matched by.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revived: bool,
    /// When the stay the document is about began, when its message says
    /// (an MDM's PV1-44): it is about no encounter that ended before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stay_started_at: Option<DateTime<Utc>>,
    /// Revived: the alerts raised about the expectation it settled, whose
    /// id the discharge recorded again shares. They are not raised again
    /// when it settles that discharge (a `late` was published twice under
    /// one id); one not among them is (a refusal read while it waited).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts_raised: Vec<AlertKind>,
    /// When it came, the encounter it names had its expectation for this
    /// kind settled already (an addendum, an amended version not named as a
    /// replacement, a second letter): it still waits (visit numbers
    /// collide across patients), but expiring it is counted
    /// `extra_document_expired`, not `pending_document_expired`, which
    /// pages the operators.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extra: bool,
}

impl PendingDocument {
    /// Whether `patient` may be this document's (does not contradict it).
    fn may_be_about(&self, patient: &Patient) -> bool {
        let p = &self.patient;
        !crate::model::patients_contradict(p.nhs_number.as_deref(), &p.local_ids, patient)
    }

    /// Whether `other` is a copy of this document: same id, another
    /// message, a patient that may be this one's.
    fn is_copy(&self, other: &PendingDocument) -> bool {
        self.document.id == other.document.id
            && self.message_id != other.message_id
            && self.may_be_about(&other.patient)
    }
}

/// What a document offers for matching.
pub(crate) struct DocView<'a> {
    pub kind: tocsin_event::DocumentKind,
    pub issued_at: i64,
    pub encounter_id: Option<&'a str>,
    pub encounter_ref: Option<&'a str>,
    pub patient: &'a Patient,
    /// The start of the stay the document is about (ms), when given.
    pub stay_started_at: Option<i64>,
    /// The end of the stay the document is about (ms), when its message
    /// says (an MDM's PV1-45, the FHIR Encounter's period end).
    pub stay_ended_at: Option<i64>,
}

impl PendingDocument {
    /// A stored record as this version keeps it: the one outcome of a
    /// record written before `acks` was kept becomes its one held
    /// acknowledgement, at the failure's time, else the document's issue.
    pub(super) fn upgraded(mut self) -> Self {
        if let Some(status) = self.legacy_delivery.take() {
            self.acks.add(EarlyAck {
                failed: status == DeliveryStatus::Failed,
                at: self.legacy_failed_at.unwrap_or(self.document.issued_at),
                failure: self.legacy_failure.take(),
            });
        }
        self.legacy_failed_at = None;
        self
    }

    fn view(&self) -> DocView<'_> {
        DocView {
            kind: self.document.kind,
            issued_at: ms(self.document.issued_at),
            encounter_id: self.encounter_id.as_deref(),
            encounter_ref: self.encounter_ref.as_deref(),
            patient: &self.patient,
            stay_started_at: self.stay_started_at.map(ms),
            stay_ended_at: None,
        }
    }

    fn patient_keys(&self) -> Vec<u64> {
        patient_keys(&self.patient)
    }
}

/// Index keys of a patient: the NHS number when there is one, and every
/// local identifier.
pub(crate) fn patient_keys(p: &Patient) -> Vec<u64> {
    p.nhs_number
        .iter()
        .map(|n| nhs_key(n))
        .chain(p.local_ids.iter().map(|i| local_key(&i.system, &i.value)))
        .collect()
}

/// Whether a FHIR reference is a bundle-local name (`urn:uuid:`,
/// `urn:oid:`) rather than a resource's own address.
fn is_bundle_local(reference: &str) -> bool {
    reference
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

fn doc_key(id: &str) -> u64 {
    key_hash(&["doc", id])
}

fn msg_key(id: &str) -> u64 {
    key_hash(&["msg", id])
}

impl Tracker {
    /// How a document would match an open expectation, if it does.
    pub(crate) fn match_method(&self, o: &Open, d: &DocView<'_>) -> Option<MatchMethod> {
        if self.rule_info(o).document_kind != d.kind {
            return None;
        }
        // Two patients' visits can share a number (only PV1-19's first
        // component is kept, and numbering collides across systems): a
        // document for one patient never settles another's discharge,
        // whatever visit it names.
        if self.patient_differs(o, d.patient) {
            return None;
        }
        let id_eq = match (d.encounter_id, &o.encounter_id) {
            (Some(a), Some(b)) => Some(b.eq_str(a)),
            _ => None,
        };
        // A `urn:uuid:` (or other `urn:`) reference is a bundle's own name
        // for the entry, minted afresh by each message: equal, it names the
        // same encounter; unequal, it says nothing (a document bundle's
        // copy of an Encounter sent before as `Encounter/e5`).
        let ref_eq = match (d.encounter_ref, o.encounter_ref()) {
            (Some(a), Some(b)) if b.eq_str(a) => Some(true),
            (Some(a), Some(b)) if !is_bundle_local(a) && b.with_str(|b| !is_bundle_local(b)) => {
                Some(false)
            }
            _ => None,
        };
        if id_eq == Some(true) {
            return Some(MatchMethod::EncounterId);
        }
        if ref_eq == Some(true) {
            return Some(MatchMethod::FhirReference);
        }
        // A document that names its encounter never settles a different
        // named encounter's expectation by patient.
        if id_eq == Some(false) || ref_eq == Some(false) {
            return None;
        }
        if !self.within_match_window(o, d.issued_at) {
            return None;
        }
        // A document about a stay that began after this encounter ended
        // (the summary of the next admission, written before its A03
        // came) is not this encounter's: matched to the nearest end, it
        // settled the earlier stay and left its own owed.
        if let Some(began) = d.stay_started_at
            && o.ended_at < began - self.config.allowed_lateness.as_secs() * 1000
        {
            return None;
        }
        // By NHS number when both sides have one; else by local id (an
        // expectation from an A03 whose NHS number failed its check, or
        // from a temporary record, still meets the document that has both).
        let both_nhs = d.patient.nhs_number.as_deref().filter(|_| o.nhs.is_known());
        let same_patient = match both_nhs {
            Some(n) => o.nhs.eq_str(&self.syms, n),
            None => self.shares_local_id(o, d.patient),
        };
        same_patient.then_some(MatchMethod::PatientWindow)
    }

    /// Whether a document issued at `issued` (ms) falls within the match
    /// window around `o`'s encounter end.
    fn within_match_window(&self, o: &Open, issued: i64) -> bool {
        let before = self.config.match_window_before.as_secs() * 1000;
        let after = self.config.match_window_after.as_secs() * 1000;
        issued >= o.ended_at - before && issued <= o.ended_at + after
    }

    /// A discharge cancelled (A13, A11) after a document settled it: the
    /// document waits again, for the discharge recorded again. A13 then A03
    /// is how a PAS corrects a discharge time, and the summary already sent
    /// is the one the corrected discharge had: forgotten, the corrected
    /// discharge went overdue and the report counted it missing. It settles
    /// only an end it was issued within the match window of (two days
    /// before, by default), so a patient whose discharge was cancelled and
    /// who went home a week later is owed a summary of the whole stay. Only
    /// while the transmission is remembered (`ack_horizon`): `message_id`
    /// and `exp` are what [`Tracker::detach_from_transmissions`] let go of.
    /// Its acknowledgements (`acks`) are carried over: lost, a
    /// document the GP system had accepted raised `unconfirmed` against
    /// the corrected discharge, stamped before that discharge ended.
    pub(super) fn revive_settling_document(
        &mut self,
        message_id: &str,
        exp: &Expectation,
        acks: HeldAcks,
        fx: &mut Effects<'_>,
    ) {
        let Some(s) = exp.settlement.as_ref() else {
            return;
        };
        if self
            .pending_by_message
            .get(msg_key(message_id))
            .any(|slot| {
                self.pending
                    .get(slot)
                    .is_some_and(|p| p.event_id == s.event_id)
            })
        {
            return;
        }
        let p = PendingDocument {
            event_id: s.event_id.clone(),
            message_id: message_id.to_owned(),
            document: Document {
                id: s.document_id.clone(),
                kind: exp.document_kind,
                type_code: None,
                issued_at: s.issued_at,
                authored_at: None,
                recipient: None,
                replaces: None,
            },
            patient: Patient {
                nhs_number: exp.patient.nhs_number.clone(),
                local_ids: exp.patient.local_ids.clone(),
            },
            encounter_id: exp.encounter.id.clone(),
            encounter_ref: exp.encounter.reference.clone(),
            // Its `delivery_failed`, if any, was raised when it first
            // failed (`alerts_raised`).
            carried_acks: u8::try_from(acks.len()).unwrap_or(u8::MAX),
            acks,
            legacy_delivery: None,
            legacy_failed_at: None,
            legacy_failure: None,
            revived: true,
            stay_started_at: None,
            alerts_raised: exp.alerts_raised.clone(),
            extra: false,
        };
        fx.put_state(namespaces::PENDING_DOCUMENT, &p.event_id, &p);
        self.insert_pending(p);
    }

    /// The open expectation a document settles: by encounter id, then FHIR
    /// reference, then the nearest for the same patient within the window:
    /// nearest by encounter end to the end the document gives for its stay,
    /// else to its issue (a late summary of the last stay, whose Encounter
    /// says it ended a week ago, settled the day case that ended this
    /// morning, leaving its own stay owed).
    fn find_open_for(&self, d: &DocView<'_>) -> Option<(u32, MatchMethod)> {
        // A stated end the document could not have been issued in the
        // match window of (a junk PV1-45, 1900) says nothing.
        let (before, after) = (
            self.config.match_window_before.as_secs() * 1000,
            self.config.match_window_after.as_secs() * 1000,
        );
        let anchor = d
            .stay_ended_at
            .filter(|end| (d.issued_at - after..=d.issued_at + before).contains(end))
            .unwrap_or(d.issued_at);
        let best = |slots: &mut dyn Iterator<Item = u32>, want: MatchMethod| {
            slots
                .filter_map(|s| self.open.get(s).map(|o| (s, o)))
                .filter(|(_, o)| self.match_method(o, d) == Some(want))
                .min_by_key(|(_, o)| ((anchor - o.ended_at).abs(), self.open_id(o)))
                .map(|(s, _)| (s, want))
        };
        if let Some(id) = d.encounter_id
            && let Some(hit) = best(&mut self.index.get(enc_key(id)), MatchMethod::EncounterId)
        {
            return Some(hit);
        }
        if let Some(r) = d.encounter_ref
            && let Some(hit) = best(&mut self.index.get(ref_key(r)), MatchMethod::FhirReference)
        {
            return Some(hit);
        }
        let keys: Vec<u64> = d
            .patient
            .nhs_number
            .iter()
            .map(|n| nhs_key(n))
            .chain(
                d.patient
                    .local_ids
                    .iter()
                    .map(|i| local_key(&i.system, &i.value)),
            )
            .collect();
        let mut slots: Vec<u32> = keys.iter().flat_map(|k| self.index.get(*k)).collect();
        slots.sort_unstable();
        slots.dedup();
        best(&mut slots.into_iter(), MatchMethod::PatientWindow)
    }

    pub(super) fn on_document(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(doc) = &ev.document else {
            self.counters.documents_missing += 1;
            return;
        };
        // Live, a document stamped past the ceiling (the wall clock plus
        // the tolerated skew: a sender whose clock or offset runs ahead)
        // was issued by the time it was read: judged by its stamp, a
        // summary received before its deadline was `late`. It is issued at
        // the ceiling (the clock already moved only that far, and counted
        // it as future_event_capped).
        let capped;
        let doc = match self.ceiling {
            Some(c) if ms(doc.issued_at) > c => {
                capped = Document {
                    issued_at: super::open::from_ms(c),
                    ..doc.clone()
                };
                &capped
            }
            _ => doc,
        };
        // A kind no rule expects can settle nothing: kept waiting, a lab
        // feed's text results (thousands a day) filled the pending store
        // for the whole pending horizon.
        if !self.rules.iter().any(|r| r.document_kind == doc.kind) {
            self.counters.documents_untracked_kind += 1;
            return;
        }
        let enc = ev.encounter.as_ref();
        let view = DocView {
            kind: doc.kind,
            issued_at: ms(doc.issued_at),
            encounter_id: enc.and_then(|e| e.id.as_deref()),
            encounter_ref: enc.and_then(|e| e.reference.as_deref()),
            patient: &ev.patient,
            stay_started_at: enc.and_then(|e| e.started_at).map(ms),
            stay_ended_at: enc.and_then(|e| e.ended_at).map(ms),
        };
        // A refused document sent again is its own expectation's resend,
        // before anything else: matched by patient and window first, it
        // settled a readmission's open discharge instead (the contract
        // report crediting a summary never sent for it), and the refused
        // one stayed failed.
        if !self.failed_transmissions.is_empty()
            && self.resend_after_failure(doc, &ev.patient, &ev.source.message_id, fx)
        {
            self.counters.deliveries_resent += 1;
            return;
        }
        if let Some((slot, method)) = self.find_open_for(&view) {
            // A document that settled an expectation already, come again (an
            // MDM T04 of its status changing, a DocumentReference's next
            // version, a copy to a second recipient) settles nothing more by
            // patient and window: so taken it settled the patient's next
            // stay, crediting a summary never sent for it. Named by its
            // encounter, it settles what it names.
            if method == MatchMethod::PatientWindow
                && self.is_duplicate(&super::state::document_key(&doc.id))
            {
                self.counters.documents_repeated += 1;
                return;
            }
            self.settle(slot, doc, method, &ev.source.message_id, &ev.event_id, fx);
            return;
        }
        // A replacement of a document seen (waiting, or settled within the
        // duplicate horizon) changes nothing: the first transmission
        // stands. One of a document never seen is the first final version
        // this feed gave (an MDM T08 or T10 after a draft T02, which is no
        // transmission) and waits as an issue would: dropped, a summary
        // finalised before its A03 was keyed was counted missing, though
        // the same messages the other way round were on time.
        if ev.event_type == EventType::DocumentReplaced
            && std::iter::once(doc.id.as_str())
                .chain(doc.replaces.as_deref())
                .any(|id| self.document_seen(id))
        {
            self.counters.replacements_unmatched += 1;
            return;
        }
        // A copy of a document waiting again since its discharge was
        // cancelled (the engine's resend of a refused summary, sent while
        // the PAS corrected the discharge) waits with it, to be taken in
        // issue order when the discharge is recorded again: counted a
        // repeat, the resend's acceptance was lost and the failure stood.
        let revived_copy = self.revived_copy(doc, &ev.patient);
        if !revived_copy && self.is_duplicate(&super::state::document_key(&doc.id)) {
            self.counters.documents_repeated += 1;
            return;
        }
        self.counters.documents_pending += 1;
        let p = PendingDocument {
            event_id: ev.event_id.clone(),
            message_id: ev.source.message_id.clone(),
            document: doc.clone(),
            patient: ev.patient.clone(),
            encounter_id: view.encounter_id.map(str::to_string),
            encounter_ref: view.encounter_ref.map(str::to_string),
            acks: HeldAcks::default(),
            carried_acks: 0,
            legacy_delivery: None,
            legacy_failed_at: None,
            legacy_failure: None,
            revived: revived_copy,
            stay_started_at: enc.and_then(|e| e.started_at),
            alerts_raised: Vec::new(),
            extra: self.names_a_settled_encounter(&view),
        };
        let message_id = p.message_id.clone();
        fx.put_state(namespaces::PENDING_DOCUMENT, &p.event_id, &p);
        self.insert_pending(p);
        // Its acknowledgements, if they were read first, wait with it.
        for held in self.take_early_acks(&message_id, fx).into_iter().flatten() {
            self.ack_pending(&message_id, &held, fx);
        }
    }

    /// Whether the encounter `d` names (by id, else reference) has its
    /// expectation for `d`'s kind settled, within the duplicate horizon.
    fn names_a_settled_encounter(&self, d: &DocView<'_>) -> bool {
        if d.encounter_id.is_none() && d.encounter_ref.is_none() {
            return false;
        }
        self.rules
            .iter()
            .filter(|r| r.document_kind == d.kind)
            .any(|r| {
                let base = expectation_id_bytes(&r.id, d.encounter_id, d.encounter_ref, "");
                self.generations(base)
                    .iter()
                    .any(|id| self.is_duplicate(&super::state::settled_key(id)))
            })
    }

    /// Whether a document of `doc`'s id, about a patient `patient` does not
    /// contradict, waits again since the discharge it settled was
    /// cancelled.
    fn revived_copy(&self, doc: &Document, patient: &Patient) -> bool {
        self.pending_by_document.get(doc_key(&doc.id)).any(|s| {
            self.pending
                .get(s)
                .is_some_and(|p| p.revived && p.document.id == doc.id && p.may_be_about(patient))
        })
    }

    /// Whether a document of this id waits for its encounter or settled an
    /// expectation within the duplicate horizon.
    fn document_seen(&self, id: &str) -> bool {
        self.pending_by_document
            .get(doc_key(id))
            .any(|s| self.pending.get(s).is_some_and(|p| p.document.id == id))
            || self.is_duplicate(&super::state::document_key(id))
    }

    pub(crate) fn insert_pending(&mut self, p: PendingDocument) {
        let expiry = ms(p.document.issued_at) + self.pending_horizon();
        let (id, r, keys, dk, mk) = (
            p.encounter_id.as_deref().map(enc_key),
            p.encounter_ref.as_deref().map(ref_key),
            p.patient_keys(),
            doc_key(&p.document.id),
            msg_key(&p.message_id),
        );
        let slot = self.pending.insert(p);
        if let Some(k) = id {
            self.pending_by_encounter.insert(k, slot);
        }
        if let Some(k) = r {
            self.pending_by_reference.insert(k, slot);
        }
        for k in keys {
            self.pending_by_patient.insert(k, slot);
        }
        self.pending_by_document.insert(dk, slot);
        self.pending_by_message.insert(mk, slot);
        self.pending_expiry.insert((expiry, slot));
    }

    fn remove_pending(&mut self, slot: u32, fx: &mut Effects<'_>) -> Option<PendingDocument> {
        let p = self.pending.remove(slot)?;
        if let Some(id) = &p.encounter_id {
            self.pending_by_encounter.remove(enc_key(id), slot);
        }
        if let Some(r) = &p.encounter_ref {
            self.pending_by_reference.remove(ref_key(r), slot);
        }
        for k in p.patient_keys() {
            self.pending_by_patient.remove(k, slot);
        }
        self.pending_by_document
            .remove(doc_key(&p.document.id), slot);
        self.pending_by_message.remove(msg_key(&p.message_id), slot);
        self.pending_expiry
            .remove(&(ms(p.document.issued_at) + self.pending_horizon(), slot));
        fx.delete_state(namespaces::PENDING_DOCUMENT, &p.event_id);
        Some(p)
    }

    /// After an expectation is created: settle it with the first-issued
    /// waiting document that matches (encounter id, then reference, then
    /// patient and window). Returns whether it was settled. `started_at` is
    /// when the encounter began, if the end event says: a document matched
    /// only by patient and issued before then (less the allowed lateness,
    /// for senders' clocks) is about an earlier stay, such as a copy of
    /// the last discharge's summary sent to a second recipient, and does
    /// not settle this one.
    pub(super) fn settle_from_pending(
        &mut self,
        slot: u32,
        started_at: Option<DateTime<Utc>>,
        fx: &mut Effects<'_>,
    ) -> bool {
        let began = started_at
            .map(|t| ms(t) - self.config.allowed_lateness.as_secs() * 1000)
            .unwrap_or(i64::MIN);
        let Some(o) = self.open.get(slot) else {
            return false;
        };
        let mut cands: Vec<u32> = Vec::new();
        if let Some(id) = &o.encounter_id {
            cands.extend(self.pending_by_encounter.get(id.with_str(enc_key)));
        }
        if let Some(r) = o.encounter_ref() {
            cands.extend(self.pending_by_reference.get(r.with_str(ref_key)));
        }
        if let Some(k) = o.nhs.with_str(&self.syms, nhs_key) {
            cands.extend(self.pending_by_patient.get(k));
        }
        for (s, v) in o.local_ids(&self.syms) {
            cands.extend(
                self.pending_by_patient
                    .get(v.with_str(|v| local_key(self.syms.name(s), v))),
            );
        }
        cands.sort_unstable();
        cands.dedup();
        let best = cands
            .into_iter()
            .filter_map(|c| {
                let p = self.pending.get(c)?;
                let m = self.match_method(o, &p.view())?;
                let issued = ms(p.document.issued_at);
                if m == MatchMethod::PatientWindow && issued < began {
                    return None;
                }
                if p.revived && !self.within_match_window(o, issued) {
                    return None;
                }
                Some((m as u8, issued, p.event_id.clone(), c, m))
            })
            .min();
        let Some((_, _, _, pslot, method)) = best else {
            return false;
        };
        let Some(p) = self.remove_pending(pslot, fx) else {
            return false;
        };
        // A document revived by A13 settles the discharge recorded again
        // under the id it settled before: what was told then is not told
        // again.
        if let Some(o) = self.open.get_mut(slot) {
            o.mark_raised(&p.alerts_raised);
        }
        self.settle(slot, &p.document, method, &p.message_id, &p.event_id, fx);
        self.apply_held_acks(&p.message_id, &p.acks, fx);
        self.settle_waiting_copies(&p, fx);
        true
    }

    /// Other copies of a document that waited with it for the encounter's
    /// end (the engine's resend of a refused one, and its acknowledgement,
    /// read before the discharge; a copy to a second recipient), taken in
    /// issue order as they would have been had the end come first: a copy
    /// after a refusal is its resend, any other a repeat. Left waiting, the
    /// resend expired unmatched and the delivery stayed failed although the
    /// GP system had accepted it, and a repeat expired as
    /// `pending_document_expired`, which pages the operators.
    fn settle_waiting_copies(&mut self, settled: &PendingDocument, fx: &mut Effects<'_>) {
        let mut copies: Vec<(i64, String, u32)> = self
            .pending_by_document
            .get(doc_key(&settled.document.id))
            .filter_map(|s| {
                let q = self.pending.get(s)?;
                settled
                    .is_copy(q)
                    .then(|| (ms(q.document.issued_at), q.event_id.as_str().to_owned(), s))
            })
            .collect();
        copies.sort_unstable();
        for (_, _, s) in copies {
            let Some(q) = self.remove_pending(s, fx) else {
                continue;
            };
            if !self.resend_after_failure(&q.document, &q.patient, &q.message_id, fx) {
                self.counters.documents_repeated += 1;
                self.counters.acks_unmatched += q.acks.len() as u64;
                continue;
            }
            self.counters.deliveries_resent += 1;
            self.apply_held_acks(&q.message_id, &q.acks, fx);
        }
    }

    /// An acknowledgement for a document still waiting for its encounter:
    /// kept with it. Returns whether any waiting document was named.
    pub(super) fn ack_pending(
        &mut self,
        message_id: &str,
        ack: &EarlyAck,
        fx: &mut Effects<'_>,
    ) -> bool {
        let slots: Vec<u32> = self
            .pending_by_message
            .get(msg_key(message_id))
            .filter(|s| {
                self.pending
                    .get(*s)
                    .is_some_and(|p| p.message_id == message_id)
            })
            .collect();
        for s in &slots {
            let Some(p) = self.pending.get_mut(*s) else {
                continue;
            };
            match p.acks.add(ack.clone()) {
                Held::Added => fx.put_state(namespaces::PENDING_DOCUMENT, &p.event_id, &*p),
                Held::Repeat => {}
                Held::Full => self.counters.acks_unmatched += 1,
            }
        }
        !slots.is_empty()
    }

    /// Settles an open expectation with a document.
    pub(super) fn settle(
        &mut self,
        slot: u32,
        doc: &Document,
        method: MatchMethod,
        message_id: &str,
        event_id: &EventId,
        fx: &mut Effects<'_>,
    ) {
        let Some(o) = self.remove_open(slot) else {
            return;
        };
        let seen_at = self.clock.unwrap_or_else(|| ms(doc.issued_at));
        let (id, derived) = (self.open_id(&o), self.derived_id(&o));
        self.remember_seen(super::state::settled_key(&id), seen_at, fx);
        self.remember_seen(super::state::document_key(&doc.id), seen_at, fx);
        // A visit renumbered (A50) keeps the id it was made under; an end
        // re-sent under the new number derives another, which must meet
        // the settlement too, or it opens the discharge again.
        if derived != id {
            self.remember_seen(super::state::settled_key(&derived), seen_at, fx);
        }
        let was_overdue = o.overdue();
        // Subscribers told to chase the document (`overdue`, or the
        // `due_soon` warning) hear that it came, as `cancelled` tells them
        // when it is no longer owed.
        let chased = was_overdue || o.raised(AlertKind::DueSoon);
        let mut exp = self.materialise(&o);
        let issued_at = doc.issued_at;
        let delay = whole_seconds_after(exp.encounter.ended_at, issued_at);
        exp.status = if issued_at <= exp.deadline {
            ExpectationStatus::OnTime
        } else {
            ExpectationStatus::Late
        };
        exp.settlement = Some(Settlement {
            document_id: doc.id.clone(),
            issued_at,
            delay_seconds: delay,
            matched_by: method,
            message_id: message_id.to_string(),
            event_id: event_id.clone(),
        });
        exp.delivery = Some(DeliveryStatus::Pending);
        let mut kinds = Vec::new();
        if exp.status == ExpectationStatus::Late {
            kinds.push(AlertKind::Late);
        }
        if chased {
            kinds.push(AlertKind::Resolved);
        }
        kinds.retain(|k| !exp.alerts_raised.contains(k));
        exp.alerts_raised.extend(kinds.iter().copied());
        // When the document settled it, never before the alert it answers
        // (the deadline it missed, or the warning point it came after):
        // independent of when the input was read.
        let told = match exp.due_soon_at {
            Some(warned) if !was_overdue => warned,
            _ => exp.deadline,
        };
        let raised_at = issued_at.max(told);
        let adoc = AlertDocument {
            id: doc.id.clone(),
            issued_at,
            matched_by: method,
        };
        let alerts: Vec<_> = kinds
            .into_iter()
            .map(|k| build_alert(&exp, k, raised_at, Some(adoc.clone())))
            .collect();
        fx.push(Effect::ExpectationChanged(exp.clone()));
        fx.extend(alerts.into_iter().map(Effect::AlertRaised));
        self.remember_transmission(message_id, issued_at, exp, fx);
    }

    pub(super) fn remember_transmission(
        &mut self,
        message_id: &str,
        issued_at: DateTime<Utc>,
        exp: crate::Expectation,
        fx: &mut Effects<'_>,
    ) {
        let t = self
            .transmissions
            .entry(message_id.to_string())
            .or_insert_with(|| Transmission {
                issued_at,
                expectations: Vec::new(),
                failed_at: None,
                failure: None,
                accepted_at: None,
            });
        t.expectations.push(exp);
        let fresh = t.expectations.len() == 1;
        fx.put_state(namespaces::TRANSMISSION, message_id, &t.record());
        if fresh {
            self.schedule_transmission(message_id, issued_at);
        }
        // Its acknowledgements, if they were read first.
        if let Some(held) = self.take_early_acks(message_id, fx) {
            self.apply_held_acks(message_id, &held, fx);
        }
    }

    /// A withdrawn document: a waiting copy is forgotten. A document that has
    /// already settled an expectation stays counted: the contract measures
    /// the first transmission, and a replacement usually follows.
    pub(super) fn on_document_cancelled(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(doc) = &ev.document else {
            self.counters.documents_missing += 1;
            return;
        };
        let slots: Vec<u32> = self
            .pending_by_document
            .get(doc_key(&doc.id))
            .filter(|s| {
                self.pending
                    .get(*s)
                    .is_some_and(|p| p.document.id == doc.id)
            })
            .collect();
        for s in slots {
            self.remove_pending(s, fx);
        }
    }

    /// Forgets waiting documents issued more than the horizon before `now`.
    pub(super) fn expire_pending(&mut self, now: i64, fx: &mut Effects<'_>) {
        while let Some(&(at, slot)) = self.pending_expiry.first() {
            if at >= now {
                break;
            }
            self.pending_expiry.remove(&(at, slot));
            let Some(p) = self.remove_pending(slot, fx) else {
                continue;
            };
            if p.extra {
                self.counters.extras_expired += 1;
            } else {
                self.counters.pending_expired += 1;
            }
            // The acknowledgements read while it waited go with it: said,
            // not lost without a word.
            let read = p.acks.len().saturating_sub(usize::from(p.carried_acks));
            self.counters.acks_unmatched += read as u64;
        }
    }
}

/// Seconds from `start` to `end`, rounded up: a document issued a fraction
/// of a second after its deadline shows a delay beyond the time its rule
/// allows (whole seconds), as its `late` status says, rather than equal to it.
fn whole_seconds_after(start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    let d = end - start;
    let s = d.num_seconds();
    if d > chrono::TimeDelta::seconds(s) {
        s + 1
    } else {
        s
    }
}

/// For serde: a count of zero is left out of the stored record.
fn is_zero(n: &u8) -> bool {
    *n == 0
}
