//! Encounter ends, cancellations, merges and acknowledgements, and the
//! bookkeeping of open slots (indexes, timers, gauges).

use sha2::{Digest, Sha256};
use tocsin_event::{Encounter, InterfaceEvent, Merge, MergeScope};

use super::effects::Effects;
use super::open::{Open, OpenFacts, from_ms, ms};
use super::state::EarlyAck;
use super::{Effect, Tracker, build_alert, enc_key, local_key, namespaces, nhs_key, ref_key};
use crate::compact::{CStr, Nhs, Symbols};
use crate::model::{DeliveryStatus, ExpectationId, ExpectationStatus};
use crate::policy::{Applicability, EncounterFacts};
use crate::{AlertKind, DeliveryFailure};

/// The deterministic id of the expectation a rule creates for an encounter:
/// the same discharge read twice yields the same expectation.
pub fn expectation_id(rule_id: &str, encounter: &Encounter, event_id: &str) -> ExpectationId {
    ExpectationId(hex::encode(expectation_id_bytes(
        rule_id,
        encounter.id.as_deref(),
        encounter.reference.as_deref(),
        event_id,
    )))
}

/// [`expectation_id`] as 16 bytes, from the encounter's id and FHIR
/// reference as the creating event gave them.
pub(crate) fn expectation_id_bytes(
    rule_id: &str,
    encounter_id: Option<&str>,
    encounter_ref: Option<&str>,
    event_id: &str,
) -> [u8; 16] {
    let (tag, ident) = match (encounter_id, encounter_ref) {
        (Some(id), _) => ("id", id),
        (None, Some(r)) => ("ref", r),
        (None, None) => ("event", event_id),
    };
    let mut h = Sha256::new();
    for part in ["tocsin-expectation", rule_id, tag, ident] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// An open expectation withdrawn at `at`: its change to `cancelled`, and
/// the `cancelled` alert when one is owed ([`withdrawn`]).
fn push_withdrawn(
    mut exp: crate::Expectation,
    at: chrono::DateTime<chrono::Utc>,
    fx: &mut Effects<'_>,
) {
    exp.status = ExpectationStatus::Cancelled;
    let alert = withdrawn(&mut exp, at);
    fx.push(Effect::ExpectationChanged(exp));
    fx.extend(alert.map(Effect::AlertRaised));
}

/// The `cancelled` alert for an expectation withdrawn at `at`, when
/// subscribers were told to chase its document (`due_soon` or `overdue`
/// raised), recorded in its `alerts_raised`; stamped no earlier than the
/// alert it withdraws, so that it follows it in event time.
fn withdrawn(
    exp: &mut crate::Expectation,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<crate::Alert> {
    let told = if exp.alerts_raised.contains(&AlertKind::Overdue) {
        exp.deadline
    } else if exp.alerts_raised.contains(&AlertKind::DueSoon) {
        exp.due_soon_at.unwrap_or(at)
    } else {
        return None;
    };
    if exp.alerts_raised.contains(&AlertKind::Cancelled) {
        return None;
    }
    exp.alerts_raised.push(AlertKind::Cancelled);
    Some(build_alert(exp, AlertKind::Cancelled, at.max(told), None))
}

impl Tracker {
    /// Index keys of an open slot's patient.
    fn open_patient_keys(&self, o: &Open) -> Vec<u64> {
        o.nhs
            .with_str(&self.syms, nhs_key)
            .into_iter()
            .chain(
                o.local_ids(&self.syms)
                    .map(|(s, v)| v.with_str(|v| local_key(self.syms.name(s), v))),
            )
            .collect()
    }

    /// Changes an open slot's keys (its FHIR reference, its patient) by
    /// `change`, re-indexing it around the change and reporting it to a
    /// caller that wants unsettled expectations.
    fn change_open(
        &mut self,
        slot: u32,
        fx: &mut Effects<'_>,
        change: impl FnOnce(&mut Open, &mut Symbols),
    ) {
        self.index_open(slot, false);
        if let Some(o) = self.open.get_mut(slot) {
            change(o, &mut self.syms);
        }
        self.index_open(slot, true);
        if fx.wants_unsettled()
            && let Some(o) = self.open.get(slot)
        {
            fx.push(Effect::ExpectationChanged(self.materialise(o)));
        }
    }

    /// Adds or removes an open slot's index keys (encounter id, FHIR
    /// reference, patient). Its timer is pushed by `insert_open` and
    /// `fire_open` and goes stale by itself (see `drop_stale_timers`).
    fn index_open(&mut self, slot: u32, add: bool) {
        let Some(o) = self.open.get(slot) else {
            return;
        };
        let enc = o.encounter_id.as_ref().map(|i| i.with_str(enc_key));
        let r = o.encounter_ref().map(|i| i.with_str(ref_key));
        let pk = self.open_patient_keys(o);
        for k in enc.into_iter().chain(r).chain(pk) {
            if add {
                self.index.insert(k, slot)
            } else {
                self.index.remove(k, slot)
            }
        }
    }

    pub(crate) fn insert_open(&mut self, o: Open) -> u32 {
        let g = self
            .gauges
            .entry((self.rule_info(&o).document_kind, o.kind))
            .or_default();
        if o.overdue() {
            g.overdue += 1
        } else {
            g.open += 1
        }
        let timer = self.next_timer(&o);
        let slot = self.open.insert(o);
        self.index_open(slot, true);
        if let Some(t) = timer {
            self.timers.push(t, slot);
        }
        slot
    }

    pub(crate) fn remove_open(&mut self, slot: u32) -> Option<Open> {
        self.index_open(slot, false);
        let o = self.open.remove(slot)?;
        let g = self
            .gauges
            .entry((self.rule_info(&o).document_kind, o.kind))
            .or_default();
        if o.overdue() {
            g.overdue = g.overdue.saturating_sub(1)
        } else {
            g.open = g.open.saturating_sub(1)
        }
        Some(o)
    }

    /// Slots of open expectations for the encounter an event names.
    fn open_for_encounter(&self, enc: &Encounter) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        if let Some(id) = &enc.id {
            out.extend(self.index.get(enc_key(id)).filter(|s| {
                self.open
                    .get(*s)
                    .and_then(|o| o.encounter_id.as_ref())
                    .is_some_and(|x| x.eq_str(id))
            }));
        }
        if let Some(r) = &enc.reference {
            out.extend(self.index.get(ref_key(r)).filter(|s| {
                self.open
                    .get(*s)
                    .and_then(|o| o.encounter_ref())
                    .is_some_and(|x| x.eq_str(r))
            }));
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(super) fn on_encounter_ended(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(enc) = &ev.encounter else {
            self.counters.ends_without_kind += 1;
            return;
        };
        let Some(kind) = enc.kind else {
            self.counters.ends_without_kind += 1;
            return;
        };
        let ended_at = enc.ended_at.unwrap_or(ev.occurred_at);
        // A FHIR Encounter's later version states its end, class and
        // disposition again: the open expectations it names are decided
        // again (see [`Tracker::redecide`]), those no rule now applies to
        // withdrawn; what its class now expects is opened below. An HL7 A03
        // sent again may give only the time it was recorded (EVN-2), which
        // each resend moves: it keeps the first end (a PAS corrects with A13
        // then A03, or A08), and is decided again by its class and
        // disposition alone. Left alone, an A03 resent with the ED's
        // "admitted" kept the attendance's expectation, and it went overdue,
        // where the same correction in FHIR withdrew it.
        let hl7 = ev.source.format == tocsin_event::Format::Hl7v2;
        let class = self.reclassifying(kind);
        for s in self.open_for_encounter(enc) {
            let end = match self.open.get(s) {
                Some(o) if hl7 => from_ms(o.ended_at),
                _ => ended_at,
            };
            if !self.of_another_patient(s, ev) {
                self.redecide(s, ev, class, end, fx);
            }
        }
        self.open_expected(ev, enc, kind, ended_at, true, fx);
    }

    /// Opens the expectations the policy has for encounter `enc` of `kind`
    /// ended at `ended_at`, but for a document kind already open for it or
    /// settled: for its end event (`is_end`, counting repeats, exclusions
    /// and ends no rule covers), or for an update that gave it another
    /// kind (what the new kind expects that the old did not).
    fn open_expected(
        &mut self,
        ev: &InterfaceEvent,
        enc: &Encounter,
        kind: tocsin_event::EncounterKind,
        ended_at: chrono::DateTime<chrono::Utc>,
        is_end: bool,
        fx: &mut Effects<'_>,
    ) {
        let facts = EncounterFacts {
            kind,
            ended_at,
            specialty: enc.specialty.as_deref(),
            site: enc.site.as_deref(),
            gp_practice: ev.gp_practice.as_deref(),
            discharge_disposition: enc.discharge_disposition.as_deref(),
        };
        let existing = self.open_for_encounter(enc);
        let mut todo = Vec::new();
        let mut any = false;
        for (idx, rule, app) in self.policy.applicable(&facts) {
            any = true;
            match app {
                // An exclusion counts an end it keeps from being owed: not
                // one whose expectation stands (overdue raised, it is not
                // decided again), which a later FHIR version counted.
                Applicability::Excluded(_) => {
                    let stands = self.open_of_kind(&existing, rule.document_kind).is_some();
                    self.counters.excluded += u64::from(!stands);
                }
                Applicability::Applies => todo.push((idx as u16, rule.id.clone())),
            }
        }
        if is_end && !any && self.policy.covers(kind) {
            self.counters.ends_without_rule += 1;
        }
        // A patient or encounter class with no mapping arrives as `other`
        // with an unmapped_code warning (the only one an end carries): when
        // no rule covers it, it is counted as an end of no known kind, or
        // a trust whose PAS sends a local class would never learn that
        // those discharges go unwatched. (A trust that wrote a rule for
        // `other` tracks it: nothing to tell.)
        if is_end
            && !any
            && kind == tocsin_event::EncounterKind::Other
            && ev
                .warnings
                .iter()
                .any(|w| w.code == tocsin_event::WarningCode::UnmappedCode)
        {
            self.counters.ends_without_kind += 1;
        }
        for (rule, rule_id) in todo {
            let base = expectation_id_bytes(
                &rule_id,
                enc.id.as_deref(),
                enc.reference.as_deref(),
                ev.event_id.as_str(),
            );
            // A discharge recorded again after its expectation was
            // withdrawn with alerts raised is a new generation.
            let id = self.generations(base).last().copied().unwrap_or(base);
            // Open for this rule's document already: by the same id, or
            // re-keyed to this encounter by an account merge, or created
            // from the encounter's FHIR reference where this event names
            // its id; under this rule, or under another of the document's
            // rules that an end corrected across an effective date left.
            let document_kind = self.rules[rule as usize].document_kind;
            if let Some(s) = self.open_of_kind(&existing, document_kind) {
                if self.of_another_patient(s, ev) {
                    self.counters.visit_collisions += u64::from(is_end);
                    continue;
                }
                self.counters.repeated_ends += u64::from(is_end);
                // The FHIR Encounter of a visit the PAS's A03 opened: its
                // reference is the one FHIR documents name it by. Not
                // learnt, a DocumentReference naming `Encounter/x` matched
                // by patient and window, and could settle the patient's
                // other stay.
                if let Some(r) = enc.reference.as_deref()
                    && self
                        .open
                        .get(s)
                        .is_some_and(|o| o.encounter_ref().is_none())
                {
                    self.change_open(s, fx, |o, _| o.learn_encounter_ref(r));
                }
                continue;
            }
            // Settled already: the repeat changes nothing, and keeps the
            // settlement remembered while the feed goes on repeating it.
            let settled = super::state::settled_key(&id);
            if self.is_duplicate(&settled) {
                self.counters.repeated_ends += u64::from(is_end);
                if let Some(c) = self.clock {
                    self.remember_seen(settled, c, fx);
                }
                continue;
            }
            let mut o = self.new_open(OpenFacts {
                rule,
                created_by: ev.event_id.as_str(),
                kind,
                encounter_id: enc.id.as_deref(),
                encounter_ref: enc.reference.as_deref(),
                ended_at: ms(ended_at),
                site: enc.site.as_deref(),
                specialty: enc.specialty.as_deref(),
                gp_practice: ev.gp_practice.as_deref(),
                nhs_number: ev.patient.nhs_number.as_deref(),
                local_ids: &ev.patient.local_ids,
            });
            if id != base {
                o.pin_id(id);
            }
            let slot = self.insert_open(o);
            if !self.settle_from_pending(slot, enc.started_at, fx)
                && fx.wants_unsettled()
                && let Some(o) = self.open.get(slot)
            {
                fx.push(Effect::ExpectationChanged(self.materialise(o)));
            }
        }
    }

    /// The first of the open slots `slots` (an encounter's) expecting a
    /// document of `kind`.
    fn open_of_kind(&self, slots: &[u32], kind: tocsin_event::DocumentKind) -> Option<u32> {
        slots.iter().copied().find(|s| {
            self.open
                .get(*s)
                .is_some_and(|o| self.rule_info(o).document_kind == kind)
        })
    }

    /// An update (A08) about an ended encounter: its open expectations are
    /// decided again by the end it gives (else the end they have), the
    /// update's encounter kind and its discharge disposition
    /// ([`Tracker::redecide`]); when the kind changed, what the new kind
    /// expects and the old did not is opened (an outpatient attendance
    /// corrected to a day case owes a discharge summary, not a clinic
    /// letter). Most A08s give no PV1-45: one correcting only the
    /// disposition to the ED's "admitted" was ignored, and the attendance
    /// went overdue. The update's site and specialty do not re-decide
    /// which rules apply.
    pub(super) fn on_encounter_updated(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        self.on_patient_identified(ev, fx);
        let Some(enc) = &ev.encounter else {
            return;
        };
        let class = enc.kind.and_then(|k| self.reclassifying(k));
        let mut reclassified = None;
        for s in self.open_for_encounter(enc) {
            let Some(end) = enc
                .ended_at
                .or_else(|| self.open.get(s).map(|o| from_ms(o.ended_at)))
            else {
                continue;
            };
            if !self.of_another_patient(s, ev) && self.redecide(s, ev, class, end, fx) {
                reclassified = Some(end);
            }
        }
        if let (Some(end), Some(kind)) = (reclassified, class) {
            self.open_expected(ev, enc, kind, end, false, fx);
        }
    }

    /// The encounter kind a later message may correct an open
    /// expectation's to: only one the policy has rules for. A kind no rule
    /// covers (`other`, which an unmapped class also arrives as) is more
    /// likely a code the sender's update uses than a correction, and would
    /// withdraw what is owed.
    fn reclassifying(
        &self,
        kind: tocsin_event::EncounterKind,
    ) -> Option<tocsin_event::EncounterKind> {
        self.policy.covers(kind).then_some(kind)
    }

    /// A patient's NHS number come after their discharge (an unverified
    /// patient traced, then an A31 or A08 carrying the number beside the
    /// hospital number): the open expectations under that hospital number
    /// that have no NHS number take it, and a document that came under the
    /// number alone and waits settles them. Left without it, that summary
    /// never met its discharge (a false `overdue`) and the alerts went out
    /// with no NHS number. Nothing else about the patient is changed.
    pub(super) fn on_patient_identified(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(nhs) = ev.patient.nhs_number.as_deref() else {
            return;
        };
        let mut slots: Vec<u32> = Vec::new();
        for i in &ev.patient.local_ids {
            slots.extend(self.index.get(local_key(&i.system, &i.value)));
        }
        slots.sort_unstable();
        slots.dedup();
        for s in slots {
            // The index is by hash: the slot must hold the id itself.
            let untraced = self
                .open
                .get(s)
                .is_some_and(|o| !o.nhs.is_known() && self.shares_local_id(o, &ev.patient));
            if !untraced {
                continue;
            }
            self.change_open(s, fx, |o, syms| o.nhs = Nhs::new(Some(nhs), syms));
            self.counters.nhs_numbers_learnt += 1;
            self.settle_from_pending(s, None, fx);
        }
    }

    /// Whether open slot `s` is of another patient than event `ev`
    /// ([`Tracker::patient_differs`]): visit numbers collide across systems
    /// (a PAS and an ED system each numbering their own), so an update or a
    /// cancellation naming the visit is not this patient's.
    fn of_another_patient(&self, s: u32, ev: &InterfaceEvent) -> bool {
        self.open
            .get(s)
            .is_some_and(|o| self.patient_differs(o, &ev.patient))
    }

    /// Whether open expectation `o` holds one of `patient`'s hospital
    /// numbers (the same issuer and value).
    pub(super) fn shares_local_id(&self, o: &Open, patient: &tocsin_event::Patient) -> bool {
        patient.local_ids.iter().any(|i| {
            self.syms.lookup(&i.system).is_some_and(|sys| {
                o.local_ids(&self.syms)
                    .any(|(s, v)| s == sys && v.eq_str(&i.value))
            })
        })
    }

    /// Whether open expectation `o` and a message's `patient` are two
    /// patients: their NHS numbers differ; or, without an NHS number on
    /// both sides, they hold hospital numbers of the same issuer and none
    /// alike (an untraced patient, whose ED visit numbered like another's
    /// stay, was taken for that patient by the visit number alone). With
    /// nothing to tell them apart they are taken as one, as before.
    pub(super) fn patient_differs(&self, o: &Open, patient: &tocsin_event::Patient) -> bool {
        let theirs = patient.nhs_number.as_deref();
        if o.nhs.differs(&self.syms, theirs) {
            return true;
        }
        if theirs.is_some() && o.nhs.is_known() {
            return false;
        }
        let mut same_issuer = false;
        for i in &patient.local_ids {
            let Some(sys) = self.syms.lookup(&i.system) else {
                continue;
            };
            for (s, v) in o.local_ids(&self.syms) {
                if s == sys {
                    if v.eq_str(&i.value) {
                        return false;
                    }
                    same_issuer = true;
                }
            }
        }
        same_issuer
    }

    /// A later message about open slot `s`'s encounter (an A08, a
    /// finished Encounter's later version) gives its end, perhaps another
    /// (the PAS correcting a discharge time), perhaps another encounter
    /// kind (`kind`, `None` to keep it), and perhaps a discharge
    /// disposition: the expectation is decided again as its end event
    /// would have been decided with them, keeping its site, specialty and
    /// GP practice. Returns whether it took another kind or was withdrawn
    /// for one, so that the caller opens what the new kind expects.
    ///
    /// - The deadline and due-soon point follow the corrected end: judged by
    ///   the first, a summary sent within 24 hours of the corrected
    ///   discharge was `late` and raised a false `overdue`.
    /// - The rule follows it too, when the corrected end falls on another
    ///   side of an effective date (a discharge keyed at 00:30 on 1 April,
    ///   corrected to 23:30 the day before): judged by the first end's
    ///   rule, the deadline and the report's rule were the wrong year's.
    ///   The expectation keeps its id.
    /// - Another kind (a day case that stayed the night, recorded again as
    ///   inpatient) takes the rule of its document kind for the new kind,
    ///   counted as `kind_corrected`; when the new kind owes no such
    ///   document (an outpatient attendance corrected to a day case owes a
    ///   discharge summary, not a clinic letter), it is withdrawn.
    /// - When an exclusion now matches (an emergency attendance's
    ///   disposition corrected to admitted), or no rule is in force on the
    ///   corrected date, it is withdrawn, as a cancelled discharge's is,
    ///   and counted as `excluded` or `end_without_rule`.
    /// - An end not moved keeps its rule, even one a restore kept from an
    ///   earlier policy: only an exclusion can withdraw it.
    ///
    /// Only while nothing has been raised against the first deadline: once
    /// `overdue` is out it stands (the contract team has seen it).
    pub(super) fn redecide(
        &mut self,
        s: u32,
        ev: &InterfaceEvent,
        kind: Option<tocsin_event::EncounterKind>,
        ended_at: chrono::DateTime<chrono::Utc>,
        fx: &mut Effects<'_>,
    ) -> bool {
        let Some(o) = self.open.get(s) else {
            return false;
        };
        let disposition = ev
            .encounter
            .as_ref()
            .and_then(|e| e.discharge_disposition.as_deref());
        let new = ms(ended_at);
        let kind = kind.unwrap_or(o.kind);
        let reclassed = o.kind != kind;
        if o.overdue() || (o.ended_at == new && !reclassed && disposition.is_none()) {
            return false;
        }
        let document_kind = self.rule_info(o).document_kind;
        let sym = |x: Option<crate::compact::Sym>| x.map(|x| self.syms.name(x));
        let [site, specialty, gp_practice, _] = self.syms.context(o.context);
        let facts = EncounterFacts {
            kind,
            ended_at: super::open::from_ms(new),
            specialty: sym(specialty),
            site: sym(site),
            gp_practice: sym(gp_practice),
            discharge_disposition: disposition,
        };
        let decided = self
            .policy
            .applicable(&facts)
            .find(|(_, r, _)| r.document_kind == document_kind)
            .map(|(i, _, app)| (i as u16, app == Applicability::Applies));
        // An end not moved keeps its rule (one a restore kept from an
        // earlier policy included: a restore never moves a deadline, and
        // an update repeating the end is no reason to); only an exclusion
        // matching the disposition withdraws it.
        let moved = o.ended_at != new || reclassed;
        // An end event's exclusion, or its end no rule covers, is counted
        // where its rules are applied (`open_expected`), which follows:
        // counted here too, one FHIR version counted it twice.
        let counted_by_caller = ev.event_type == tocsin_event::EventType::EncounterEnded;
        let rule = match decided {
            Some((rule, true)) if moved => rule,
            Some((_, false)) => {
                // Under another kind, the caller's opening of what that
                // kind expects counts the exclusion.
                if reclassed {
                    self.counters.kinds_corrected += 1;
                } else if !counted_by_caller {
                    self.counters.excluded += 1;
                }
                self.withdraw(s, ev.occurred_at, fx);
                return reclassed;
            }
            None if reclassed => {
                self.counters.kinds_corrected += 1;
                self.withdraw(s, ev.occurred_at, fx);
                return true;
            }
            None if moved => {
                if !counted_by_caller {
                    self.counters.ends_without_rule += 1;
                }
                self.withdraw(s, ev.occurred_at, fx);
                return false;
            }
            _ => o.rule,
        };
        if !moved && o.rule == rule {
            return false;
        }
        let id = self.open_id(o);
        // Out and back in, so that the gauges (by encounter kind), the
        // index and the timers follow the change.
        let Some(mut o) = self.remove_open(s) else {
            return false;
        };
        if o.ended_at != new {
            o.ended_at = new;
            self.counters.ends_corrected += 1;
        }
        if reclassed {
            o.kind = kind;
            self.counters.kinds_corrected += 1;
        }
        if o.rule != rule {
            o.pin_id(id);
            o.rule = rule;
        }
        let s = self.insert_open(o);
        if fx.wants_unsettled()
            && let Some(o) = self.open.get(s)
        {
            fx.push(Effect::ExpectationChanged(self.materialise(o)));
        }
        reclassed
    }

    /// Withdraws open slot `s` at `at` (its encounter cancelled, or no rule
    /// applying to it any more): `cancelled` to whoever was told to chase
    /// it, and, when something was raised, its id remembered as withdrawn,
    /// so that the discharge recorded again is a new generation.
    fn withdraw(&mut self, s: u32, at: chrono::DateTime<chrono::Utc>, fx: &mut Effects<'_>) {
        if let Some(o) = self.remove_open(s) {
            if o.alerts != 0 {
                let key = super::state::cancelled_key(&self.open_id(&o));
                self.remember_seen(key, ms(at), fx);
            }
            push_withdrawn(self.materialise(&o), at, fx);
        }
    }

    /// A13 (discharge cancelled), A11 or FHIR cancelled / entered-in-error:
    /// the encounter's open expectations are withdrawn.
    pub(super) fn on_encounter_cancelled(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let slots: Vec<u32> = ev
            .encounter
            .as_ref()
            .map(|e| self.open_for_encounter(e))
            .unwrap_or_default()
            .into_iter()
            .filter(|&s| !self.of_another_patient(s, ev))
            .collect();
        let mut matched = !slots.is_empty();
        for s in slots {
            self.withdraw(s, ev.occurred_at, fx);
        }
        // A settled expectation stays settled, but the encounter's end no
        // longer stands: a discharge recorded again later is a new
        // obligation, not a repeat of the settled one. Its document waits
        // again, for a discharge recorded again soon after (a correction).
        if let Some(enc) = &ev.encounter
            && (enc.id.is_some() || enc.reference.is_some())
        {
            let rule_ids: Vec<String> = self.rules.iter().map(|r| r.id.clone()).collect();
            for rule_id in rule_ids {
                let base = expectation_id_bytes(
                    &rule_id,
                    enc.id.as_deref(),
                    enc.reference.as_deref(),
                    ev.event_id.as_str(),
                );
                for id in self.generations(base) {
                    if self.forget_seen(super::state::settled_key(&id), fx) {
                        if let Some((message_id, settled, acks)) =
                            self.detach_from_transmissions(&hex::encode(id), fx)
                        {
                            self.revive_settling_document(&message_id, &settled, acks, fx);
                        }
                        matched = true;
                    }
                }
            }
        }
        // Counted only when it named nothing open and nothing settled.
        if !matched {
            self.counters.cancellations_unmatched += 1;
        }
    }

    /// A merge re-keys open expectations from the retired identifiers to the
    /// surviving patient (and, for an account merge, the retired visit number
    /// to the surviving one); it never cancels an obligation. One case is
    /// withdrawn: the retired visit's expectation when the surviving visit
    /// has its own under the same rule, the same discharge recorded twice
    /// (the survivor's stands).
    ///
    /// A visit move (A45, scope `visit`) re-keys only the expectations of
    /// the visit moved that belong to the retired patient: they take the
    /// surviving patient's NHS number, local ids and GP practice whole, the
    /// visit having been filed under the wrong patient.
    pub(super) fn on_patient_merged(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(m) = &ev.merge else {
            return;
        };
        let visit_move = m.scope == MergeScope::Visit;
        let new_enc = ev.encounter.as_ref().and_then(|e| e.id.as_deref());
        let mut slots: Vec<u32> = Vec::new();
        if visit_move {
            if let Some(v) = &m.prior_encounter_id {
                slots.extend(
                    self.index
                        .get(enc_key(v))
                        .filter(|&s| self.moves_with_visit(s, v, m)),
                );
            }
        } else {
            if let Some(n) = &m.prior_nhs_number {
                slots.extend(self.index.get(nhs_key(n)));
            }
            for i in &m.prior_local_ids {
                slots.extend(self.index.get(local_key(&i.system, &i.value)));
            }
            if let (Some(p), Some(_)) = (&m.prior_encounter_id, new_enc) {
                slots.extend(self.index.get(enc_key(p)));
            }
        }
        // The visit number changes (A42, A50; an A45 may renumber too).
        let renumbered = match (&m.prior_encounter_id, new_enc) {
            (Some(p), Some(n)) if p != n => Some((p.as_str(), n)),
            _ => None,
        };
        slots.sort_unstable();
        slots.dedup();
        let survivor_ids: Vec<_> = ev
            .patient
            .local_ids
            .iter()
            .map(|i| (self.syms.intern(&i.system), CStr::new(&i.value)))
            .collect();
        let prior_ids: Vec<_> = m
            .prior_local_ids
            .iter()
            .filter_map(|i| self.syms.lookup(&i.system).map(|s| (s, i.value.as_str())))
            .collect();
        let mut changed = 0;
        let mut rekeyed = Vec::new();
        for s in slots {
            // Two visits both discharged under a rule, merged: the retired
            // visit's expectation duplicates the survivor's (open, or
            // settled already). Moved beside it, one document settled one
            // and the other went missing, the discharge counted twice in
            // the report. It is withdrawn instead.
            if let Some((p, n)) = renumbered
                && self.survivor_has_its_own(s, p, n)
            {
                if let Some(o) = self.remove_open(s) {
                    push_withdrawn(self.materialise(&o), ev.occurred_at, fx);
                    changed += 1;
                }
                continue;
            }
            self.index_open(s, false);
            // The id as it was made, kept before a re-keyed encounter id
            // would derive another.
            let id = renumbered.and_then(|_| self.open.get(s).map(|o| self.open_id(o)));
            let Some(o) = self.open.get_mut(s) else {
                continue;
            };
            let mut touched = false;
            if visit_move {
                // The visit was filed under the wrong patient: it takes the
                // right one's identity whole, GP practice included (the
                // retired patient's GP is not this patient's).
                o.nhs = Nhs::new(ev.patient.nhs_number.as_deref(), &mut self.syms);
                o.set_local_ids(survivor_ids.clone(), &mut self.syms);
                o.set_gp_practice(ev.gp_practice.as_deref(), &mut self.syms);
                touched = true;
            } else {
                let had_nhs = o.nhs.is_known();
                let retired_local = o
                    .local_ids(&self.syms)
                    .any(|(sys, v)| prior_ids.iter().any(|(ps, pv)| *ps == sys && v.eq_str(pv)));
                if let Some(p) = &m.prior_nhs_number
                    && o.nhs.eq_str(&self.syms, p)
                {
                    if let Some(n) = &ev.patient.nhs_number {
                        o.nhs = Nhs::new(Some(n), &mut self.syms);
                    }
                    touched = true;
                } else if retired_local
                    && m.prior_nhs_number.is_none()
                    && let Some(n) = &ev.patient.nhs_number
                    && !o.nhs.eq_str(&self.syms, n)
                {
                    // MRG-1 naming the retired hospital number only (many a
                    // PAS sends no MRG NHS number): this is the retired
                    // record, and its NHS number goes with it. (An MRG
                    // naming another NHS number than this record's leaves
                    // the number alone: the two disagree on whose it is.) Kept, the
                    // survivor's summary was refused as another patient's
                    // and the overdue alert named the retired number.
                    o.nhs = Nhs::new(Some(n), &mut self.syms);
                    touched = true;
                } else if !had_nhs && let Some(n) = &ev.patient.nhs_number {
                    // A temporary record without an NHS number merged into
                    // the traced one: the expectation takes the survivor's
                    // number, or a summary carrying only that number never
                    // meets it.
                    o.nhs = Nhs::new(Some(n), &mut self.syms);
                    touched = true;
                }
                let before = o.local_ids(&self.syms).count();
                let mut ids: Vec<_> = o
                    .local_ids(&self.syms)
                    .filter(|(sys, v)| !prior_ids.iter().any(|(ps, pv)| ps == sys && v.eq_str(pv)))
                    .map(|(s, v)| (s, v.clone()))
                    .collect();
                if ids.len() != before || touched {
                    for sid in &survivor_ids {
                        if !ids.contains(sid) {
                            ids.push(sid.clone());
                        }
                    }
                    o.set_local_ids(ids, &mut self.syms);
                    touched = true;
                }
            }
            if let Some((p, n)) = renumbered
                && o.encounter_id.as_ref().is_some_and(|e| e.eq_str(p))
            {
                if let Some(id) = id {
                    o.pin_id(id);
                }
                o.encounter_id = Some(CStr::new(n));
                touched = true;
            }
            self.index_open(s, true);
            if touched && let Some(o) = self.open.get(s) {
                changed += 1;
                if fx.wants_unsettled() {
                    fx.push(Effect::ExpectationChanged(self.materialise(o)));
                }
                rekeyed.push(s);
            }
        }
        if changed > 0 {
            self.counters.merges_applied += 1;
        }
        // Under its new keys an expectation may meet a document that came
        // under them first and waits (the summary sent under the traced
        // record before the PAS merged the temporary one).
        for s in rekeyed {
            self.settle_from_pending(s, None, fx);
        }
    }

    /// Whether open slot `s` is of visit `visit` and of the patient a visit
    /// move `m` takes it from: one of the retired identifiers is its own
    /// (any, when the move names none). Another patient's visit numbered
    /// alike stays where it is.
    fn moves_with_visit(&self, s: u32, visit: &str, m: &Merge) -> bool {
        let Some(o) = self.open.get(s) else {
            return false;
        };
        if !o.encounter_id.as_ref().is_some_and(|e| e.eq_str(visit)) {
            return false;
        }
        if m.prior_nhs_number.is_none() && m.prior_local_ids.is_empty() {
            return true;
        }
        m.prior_nhs_number
            .as_deref()
            .is_some_and(|n| o.nhs.eq_str(&self.syms, n))
            || o.local_ids(&self.syms).any(|(sys, v)| {
                m.prior_local_ids
                    .iter()
                    .any(|i| self.syms.name(sys) == i.system && v.eq_str(&i.value))
            })
    }

    /// Whether open slot `s`, of retired visit `prior`, has a twin under the
    /// same rule on surviving visit `survivor`: open there, or settled
    /// there (its settlement still remembered).
    fn survivor_has_its_own(&self, s: u32, prior: &str, survivor: &str) -> bool {
        let Some(rule) = self
            .open
            .get(s)
            .filter(|o| o.encounter_id.as_ref().is_some_and(|e| e.eq_str(prior)))
            .map(|o| o.rule)
        else {
            return false;
        };
        let open_twin = self.index.get(enc_key(survivor)).any(|x| {
            x != s
                && self.open.get(x).is_some_and(|o| {
                    o.rule == rule && o.encounter_id.as_ref().is_some_and(|e| e.eq_str(survivor))
                })
        });
        let settled = super::state::settled_key(&expectation_id_bytes(
            &self.rules[usize::from(rule)].id,
            Some(survivor),
            None,
            "",
        ));
        open_twin || self.is_duplicate(&settled)
    }

    /// An acknowledgement attaches to the transmission it names (or to the
    /// waiting document it carried, applied when that settles).
    pub(super) fn on_delivery(&mut self, ev: &InterfaceEvent, fx: &mut Effects<'_>) {
        let Some(ack) = &ev.ack else {
            self.counters.acks_unmatched += 1;
            return;
        };
        let failed = ev.event_type == tocsin_event::EventType::DeliveryFailed;
        let read = EarlyAck {
            failed,
            at: ev.occurred_at,
            failure: failed
                .then(|| DeliveryFailure::from_codes(&ack.code, ack.detail_code.as_deref())),
        };
        let id = &ack.of_message_id;
        if !self.record_delivery(id, &read, fx) && !self.ack_pending(id, &read, fx) {
            self.hold_early_ack(id, read, fx);
        }
    }

    /// Records an acknowledgement on a remembered transmission, judged by
    /// its own time (`ack.at`); a failure raises `delivery_failed` once,
    /// raised at that time, never before the document's issue or the
    /// encounter's end (a summary written before the discharge): what the
    /// messages say, not when they were read. A failure stands against any acceptance
    /// timed at or before it (a commit accept or an ITK3 infrastructure
    /// acknowledgement read after the refusal); an acceptance timed after it
    /// is of the same message sent again under the same id (an HL7 resend
    /// after AE or AR, an ITK3 retry after `transient-error`, which a
    /// receiver's duplicate check would otherwise refuse), and clears it as
    /// a resend under a new id does ([`Counters::deliveries_resent`]; the
    /// alert stays on record and is not raised again), unless the refusal
    /// was final (ITK3 `fatal-error`: [`DeliveryFailure::is_final`]). Read
    /// the other way round, the refusal meets the later acceptance already
    /// recorded and comes to the same: its alert is raised and the delivery
    /// stays accepted. Returns whether the transmission is remembered.
    ///
    /// [`Counters::deliveries_resent`]: crate::Counters::deliveries_resent
    pub(super) fn record_delivery(
        &mut self,
        message_id: &str,
        ack: &EarlyAck,
        fx: &mut Effects<'_>,
    ) -> bool {
        let Some(t) = self.transmissions.get_mut(message_id) else {
            return false;
        };
        let (outcome, at, failure) = (ack.status(), ack.at, ack.failure.as_ref());
        let failed = ack.failed;
        let accepted_again = !failed
            && t.failed_at.is_some_and(|f| at > f)
            && !t.failure.as_ref().is_some_and(DeliveryFailure::is_final);
        // A refusal of a sending that an acceptance already read, timed
        // after it, answered (the resend under the same id).
        let answered = failed
            && t.failed_at.is_none()
            && t.accepted_at.is_some_and(|a| at < a)
            && !failure.is_some_and(DeliveryFailure::is_final);
        let mut changed = false;
        if !failed && t.accepted_at.is_none_or(|a| at > a) {
            t.accepted_at = Some(at);
            changed = true;
        }
        if answered {
            let newly =
                |e: &crate::Expectation| !e.alerts_raised.contains(&AlertKind::DeliveryFailed);
            if t.expectations.iter().any(newly) {
                self.counters.deliveries_resent += 1;
            }
        } else if failed && t.failed_at.is_none_or(|f| at > f) {
            t.failed_at = Some(at);
            t.failure = failure.cloned();
            changed = true;
        } else if accepted_again {
            t.failed_at = None;
            t.failure = None;
            changed = true;
            t.unindex_failed(message_id, &mut self.failed_transmissions);
            if t.expectations
                .iter()
                .any(|e| e.delivery == Some(DeliveryStatus::Failed))
            {
                self.counters.deliveries_resent += 1;
            }
        }
        for exp in &mut t.expectations {
            let status = match exp.delivery {
                Some(DeliveryStatus::Failed) if !accepted_again => DeliveryStatus::Failed,
                _ if answered => DeliveryStatus::Acknowledged,
                _ => outcome,
            };
            let alert = failed && !exp.alerts_raised.contains(&AlertKind::DeliveryFailed);
            if exp.delivery == Some(status) && !alert {
                continue;
            }
            changed = true;
            exp.delivery = Some(status);
            if let Some(d) = super::state::failed_document(exp) {
                self.failed_transmissions
                    .insert((d.to_owned(), message_id.to_string()));
            }
            if alert {
                exp.alerts_raised.push(AlertKind::DeliveryFailed);
            }
            fx.push(Effect::ExpectationChanged(exp.clone()));
            if alert {
                let raised_at = at.max(t.issued_at).max(exp.encounter.ended_at);
                let mut raised = build_alert(
                    exp,
                    AlertKind::DeliveryFailed,
                    raised_at,
                    super::transmitted_document(exp),
                );
                raised.failure = if answered {
                    failure.cloned()
                } else {
                    t.failure.clone()
                };
                fx.push(Effect::AlertRaised(raised));
            }
        }
        // A repeated acknowledgement (the same outcome again no later than
        // the last, or an acceptance timed before a failure and the latest
        // acceptance) leaves the stored record as it is: not rewritten.
        if changed {
            fx.put_state(namespaces::TRANSMISSION, message_id, &t.record());
        }
        true
    }

    /// A document sent again after its transmission was refused (the
    /// engine's resend once the fault is mended), under another message
    /// id: it becomes the transmission its expectation waits on, the
    /// expectation's delivery `pending` again, so that the resend's
    /// acknowledgement reaches it and an acceptance clears the failure (the
    /// `delivery_failed` alert stays on record, and is not raised again if
    /// the resend is refused too). The refused transmission is let go: a
    /// late acknowledgement of it could otherwise undo the resend's, and
    /// would not after a restart. Returns whether `doc`, about `patient`,
    /// was such a resend.
    pub(super) fn resend_after_failure(
        &mut self,
        doc: &tocsin_event::Document,
        patient: &tocsin_event::Patient,
        message_id: &str,
        fx: &mut Effects<'_>,
    ) -> bool {
        // Document ids collide across systems (TXA-12's namespace is not
        // kept) and patients: another patient's document under the refused
        // one's id is no resend of it.
        let resends = |e: &crate::Expectation| {
            super::state::failed_document(e) == Some(doc.id.as_str())
                && !e.patient.contradicts(patient)
        };
        let Some(failed) = self
            .failed_transmissions
            .range((doc.id.clone(), String::new())..)
            .take_while(|(d, _)| *d == doc.id)
            .map(|(_, m)| m)
            .find(|m| {
                m.as_str() != message_id
                    && self
                        .transmissions
                        .get(m.as_str())
                        .is_some_and(|t| t.expectations.iter().any(resends))
            })
            .cloned()
        else {
            return false;
        };
        self.failed_transmissions
            .remove(&(doc.id.clone(), failed.clone()));
        let Some(mut t) = self.transmissions.remove(&failed) else {
            return false;
        };
        let (resent, kept): (Vec<_>, Vec<_>) = t.expectations.drain(..).partition(resends);
        if kept.is_empty() {
            fx.delete_state(namespaces::TRANSMISSION, failed);
        } else {
            t.expectations = kept;
            fx.put_state(namespaces::TRANSMISSION, &failed, &t.record());
            self.transmissions.insert(failed, t);
        }
        for mut exp in resent {
            exp.delivery = Some(DeliveryStatus::Pending);
            fx.push(Effect::ExpectationChanged(exp.clone()));
            self.remember_transmission(message_id, doc.issued_at, exp, fx);
        }
        true
    }
}
