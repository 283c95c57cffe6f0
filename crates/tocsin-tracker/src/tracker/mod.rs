//! The tracking state machine: no I/O, no clock of its own.
//!
//! Inputs are interface events ([`Tracker::apply`]) and clock advances
//! ([`Tracker::advance_to`]); outputs are [`Effect`]s. The clock follows the
//! event times (less the allowed lateness) and only moves forward; a timer
//! (due-soon point, deadline, acknowledgement wait) fires once the clock has
//! passed it, and always before the input that moved the clock is applied.

mod documents;
mod effects;
pub(crate) mod events;
mod open;
mod state;

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tocsin_event::{DocumentKind, EncounterKind, EventType, InterfaceEvent};

use crate::compact::{FxBuild, MultiIndex, Slab, Symbols, TimerHeap, key_hash};
use crate::config::TrackerConfig;
use crate::model::{Effect, Expectation};
use crate::policy::Policy;
use crate::{Alert, AlertDocument, AlertEncounter, AlertKind, AlertPatient};
use documents::PendingDocument;
use effects::{Effects, Switches};
use open::{Open, from_ms, ms};
use state::{Rfc3339, Transmission};

pub use events::expectation_id;
pub use state::{RestoreError, Restoring};

/// Namespaces of the auxiliary state records the tracker puts and deletes.
pub mod namespaces {
    /// The event-time clock (key `event_time`, value an RFC 3339 string;
    /// key `held_jump` while an event far ahead of it waits to be
    /// confirmed).
    pub const CLOCK: &str = "clock";
    /// Keys of messages already seen (value: the event time, RFC 3339).
    pub const SEEN: &str = "seen";
    /// Documents waiting for their encounter's end (key: event id).
    pub const PENDING_DOCUMENT: &str = "pending_document";
    /// Settling transmissions awaiting acknowledgement (key: message id).
    pub const TRANSMISSION: &str = "transmission";
    /// Acknowledgements read before the document they name (key: the named
    /// message id), kept for the allowed lateness.
    pub const EARLY_ACK: &str = "early_ack";
}

/// A rule as the tracker refers to it (policy rules first, then rules named
/// by restored expectations but no longer in the policy, or stored with
/// other durations than the policy's now gives).
///
/// The rule's durations live here, not in every open expectation: an
/// expectation keeps only its encounter's end, and its deadline and due-soon
/// point are that plus the rule's offsets (16 bytes less for each of a
/// million open expectations).
#[derive(Debug, Clone)]
pub(crate) struct RuleInfo {
    pub id: String,
    pub clause: String,
    pub document_kind: DocumentKind,
    /// Milliseconds from the encounter's end to the deadline.
    pub due_after: i64,
    /// Milliseconds from the encounter's end to the due-soon point, or
    /// `NO_TIME` when the rule has none.
    pub due_soon: i64,
}

/// The key of the clock record of an event held for being far ahead.
const HELD_JUMP: &str = "held_jump";

/// Things the tracker noticed and tolerated, for metrics: nothing is dropped
/// without being counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Exact duplicates ignored (same format, message id, message type,
    /// sending facility and sequence).
    pub duplicates: u64,
    /// Events older than the duplicate horizon behind the clock, ignored
    /// because they can no longer be told apart from duplicates.
    pub stale_events: u64,
    /// Events stamped past the ceiling (see [`Tracker::set_ceiling`]): they
    /// moved the clock only as far as the ceiling.
    pub future_events_capped: u64,
    /// Events stamped after the instant a replay judges as at (see
    /// [`Tracker::set_until`]): not applied, since as of then they had not
    /// happened.
    pub after_until: u64,
    /// Encounter-end events without an encounter kind, or whose class has no
    /// mapping (kind `other` with an unmapped_code warning) that no rule
    /// covers (a trust may write one for `other`): no expectation.
    pub ends_without_kind: u64,
    /// Encounter-end events for which the expectation was already open (a
    /// repeated discharge with a new message id: the first is kept) or
    /// already settled within the duplicate horizon (a FHIR Encounter's
    /// later version: nothing changes).
    pub repeated_ends: u64,
    /// Expectations not created because an exclusion matched, or withdrawn
    /// because one matched what a later message corrected.
    pub excluded: u64,
    /// Documents that matched no open expectation and wait for an encounter.
    pub documents_pending: u64,
    /// Documents that matched no open expectation and had already settled
    /// one (a copy to a second recipient, a status change): they settle
    /// nothing more and do not wait.
    pub documents_repeated: u64,
    /// Waiting documents that expired unmatched.
    pub pending_expired: u64,
    /// Waiting documents that expired unmatched and had named, when they
    /// came, an encounter whose expectation for their kind had settled (an
    /// addendum, an amended version not named as a replacement, a second
    /// letter): routine traffic, unlike `pending_expired`.
    pub extras_expired: u64,
    /// Replacement documents that matched no open expectation (ignored: a
    /// replacement does not move the first transmission).
    pub replacements_unmatched: u64,
    /// Document events without a document.
    pub documents_missing: u64,
    /// Documents of a kind no rule expects (`other`: a type with no mapping,
    /// a lab result's text comment): they can settle nothing, so they are
    /// not kept waiting for an encounter.
    pub documents_untracked_kind: u64,
    /// Acknowledgements naming no remembered transmission (nor a waiting
    /// document), counted once the allowed lateness after them has passed
    /// without their document (an acknowledgement may be read first).
    pub acks_unmatched: u64,
    /// Cancellations naming no open expectation.
    pub cancellations_unmatched: u64,
    /// Merges that re-keyed at least one open expectation.
    pub merges_applied: u64,
    /// Open expectations without an NHS number that took one from a later
    /// message carrying it beside their hospital number (an A31 or A08
    /// after the patient was traced).
    pub nhs_numbers_learnt: u64,
    /// Open expectations whose encounter end a later message corrected (an
    /// A08 with another PV1-45, a finished Encounter's later version with
    /// another period.end): their deadline moved, and their rule with it
    /// when the corrected end fell on another side of an effective date.
    pub ends_corrected: u64,
    /// Open expectations whose encounter kind a later message corrected (an
    /// A08 with another patient class, a FHIR Encounter's later version
    /// with another class): they took the new kind's rule, or were
    /// withdrawn when it owes no such document, and what it owes instead
    /// was opened.
    pub kinds_corrected: u64,
    /// Encounter ends naming a visit number an open expectation of another
    /// patient (another NHS number) already has: two systems numbering
    /// visits alike. The first is kept and this end makes none of its own
    /// (its expectation would take the same id): a discharge not tracked.
    pub visit_collisions: u64,
    /// Documents sent again after their transmission was refused (the
    /// engine's resend once the fault is mended): under a new message id,
    /// the resend is the transmission its expectation now waits on, and
    /// its acceptance clears the failure; under the same id (dropped as a
    /// duplicate), counted when an acceptance timed after the refusal
    /// clears it.
    pub deliveries_resent: u64,
    /// Encounter ends of a kind the policy covers, but on a date no rule is
    /// in force (before the earliest `effective_from`, after an
    /// `effective_to`): no expectation (or an open one withdrawn, its end
    /// corrected to such a date). A replay of archives older than the
    /// rules made nothing of them without a word.
    pub ends_without_rule: u64,
    /// Events stamped more than `max_clock_jump` ahead of the clock: applied,
    /// but they move the clock only when the next event the tracker acts on
    /// is that far ahead too (a gap in the feed), not when it falls back (a
    /// mistyped year or a sender's wrong clock, which would otherwise have
    /// raised `overdue` for every open expectation and made everything read
    /// after it stale).
    pub clock_jumps_held: u64,
}

impl Counters {
    /// Every counter with its name, for a metric label or a report: the
    /// names are stable (operators' dashboards use them) and carry no
    /// patient data.
    pub fn named(&self) -> [(&'static str, u64); 24] {
        // Destructured so that a new counter cannot be left out.
        let Counters {
            duplicates,
            stale_events,
            future_events_capped,
            after_until,
            ends_without_kind,
            repeated_ends,
            excluded,
            documents_pending,
            documents_repeated,
            pending_expired,
            extras_expired,
            replacements_unmatched,
            documents_missing,
            documents_untracked_kind,
            acks_unmatched,
            cancellations_unmatched,
            merges_applied,
            nhs_numbers_learnt,
            ends_corrected,
            kinds_corrected,
            visit_collisions,
            deliveries_resent,
            ends_without_rule,
            clock_jumps_held,
        } = *self;
        [
            ("duplicate", duplicates),
            ("stale_event", stale_events),
            ("future_event_capped", future_events_capped),
            ("after_until", after_until),
            ("end_without_kind", ends_without_kind),
            ("repeated_end", repeated_ends),
            ("excluded", excluded),
            ("document_pending", documents_pending),
            ("document_repeated", documents_repeated),
            ("pending_document_expired", pending_expired),
            ("extra_document_expired", extras_expired),
            ("replacement_unmatched", replacements_unmatched),
            ("document_missing", documents_missing),
            ("document_kind_untracked", documents_untracked_kind),
            ("ack_unmatched", acks_unmatched),
            ("cancellation_unmatched", cancellations_unmatched),
            ("merge_applied", merges_applied),
            ("nhs_number_learnt", nhs_numbers_learnt),
            ("end_corrected", ends_corrected),
            ("kind_corrected", kinds_corrected),
            ("visit_collision", visit_collisions),
            ("delivery_resent", deliveries_resent),
            ("end_without_rule", ends_without_rule),
            ("clock_jump_held", clock_jumps_held),
        ]
    }
}

/// Open and overdue counts for one document kind and encounter kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauge {
    /// Waiting, deadline not yet passed.
    pub open: u64,
    /// Deadline passed, still missing.
    pub overdue: u64,
}

/// The tracking engine. See the crate documentation.
pub struct Tracker {
    policy: Policy,
    config: TrackerConfig,
    rules: Vec<RuleInfo>,
    syms: Symbols,
    open: Slab<Open>,
    /// Every open slot under each of its keys: encounter id, FHIR
    /// reference, NHS number and local patient ids. The keys are hashed
    /// with their kind (`enc_key`, `ref_key`, `nhs_key`, `local_key`) and
    /// every hit is checked against the slot's own fields, so one table
    /// serves all four lookups. One table rather than one for each: a hash
    /// table doubles when it fills, so each sits between half and seven
    /// eighths full, and at a million open expectations three tables wasted
    /// some 19 MB more than one (docs/performance.md, ninth session).
    index: MultiIndex,
    /// `(instant, slot)`: the next timer of each open expectation, and stale
    /// timers of expectations since settled or moved on (skipped when they
    /// come up; the top is always live, see [`Tracker::drop_stale_timers`]).
    timers: TimerHeap,
    pending: Slab<PendingDocument>,
    pending_by_encounter: MultiIndex,
    pending_by_reference: MultiIndex,
    pending_by_patient: MultiIndex,
    pending_by_document: MultiIndex,
    pending_by_message: MultiIndex,
    pending_expiry: BTreeSet<(i64, u32)>,
    transmissions: HashMap<String, Transmission, FxBuild>,
    /// `(document id, message id)` of each remembered transmission whose
    /// delivery failed: what a document sent again is looked up in, by its
    /// id (see [`Tracker::resend_after_failure`]). An entry may outlive its
    /// transmission's failure (each hit is checked against the
    /// transmission); it goes with the transmission.
    failed_transmissions: BTreeSet<(String, String)>,
    /// Acknowledgements read before their document, by the message id they
    /// name ([`state::HeldAcks`]), and when each stops waiting.
    early_acks: HashMap<String, state::HeldAcks, FxBuild>,
    early_ack_expiry: BTreeSet<(i64, String)>,
    /// `(instant, 0 = unconfirmed check | 1 = forget, message id)`.
    tx_timers: BTreeSet<(i64, u8, String)>,
    /// The first word of each duplicate key, with the event time it was
    /// seen at. A key older than the horizon is dead (see
    /// [`Tracker::is_duplicate`]) and is dropped by the next sweep (see
    /// [`Tracker::prune`]). 64 bits are enough to tell the keys of a
    /// horizon apart (two of 5 million colliding: about 1 in 10^6) and take
    /// 16 bytes an entry instead of 24; the store keeps the whole key.
    seen: HashMap<u64, i64, FxBuild>,
    /// The horizon at or past which `seen` is next swept.
    next_seen_sweep: i64,
    /// Which optional effects are returned (see
    /// [`Tracker::set_state_records`], [`Tracker::set_unsettled_changes`]).
    switches: Switches,
    clock: Option<i64>,
    /// The clock time (event time less the allowed lateness) of the last
    /// event that was more than `max_clock_jump` ahead of the clock, while
    /// the next one has not confirmed it ([`Counters::clock_jumps_held`]).
    held_jump: Option<i64>,
    ceiling: Option<i64>,
    /// The instant a replay judges as at ([`Tracker::set_until`]).
    until: Option<i64>,
    counters: Counters,
    gauges: BTreeMap<(DocumentKind, EncounterKind), Gauge>,
}

impl Tracker {
    /// A tracker with no state.
    pub fn new(policy: Policy, config: TrackerConfig) -> Self {
        let rules = policy
            .rules()
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                clause: r.clause.clone(),
                document_kind: r.document_kind,
                due_after: r.due_after.delta().num_milliseconds(),
                due_soon: r
                    .due_soon
                    .map_or(open::NO_TIME, |d| d.delta().num_milliseconds()),
            })
            .collect();
        Self {
            policy,
            config,
            rules,
            syms: Symbols::default(),
            open: Slab::default(),
            index: MultiIndex::default(),
            timers: TimerHeap::default(),
            pending: Slab::default(),
            pending_by_encounter: MultiIndex::default(),
            pending_by_reference: MultiIndex::default(),
            pending_by_patient: MultiIndex::default(),
            pending_by_document: MultiIndex::default(),
            pending_by_message: MultiIndex::default(),
            pending_expiry: BTreeSet::new(),
            transmissions: HashMap::default(),
            failed_transmissions: BTreeSet::new(),
            early_acks: HashMap::default(),
            early_ack_expiry: BTreeSet::new(),
            tx_timers: BTreeSet::new(),
            seen: HashMap::default(),
            next_seen_sweep: i64::MIN,
            switches: Switches {
                state_records: true,
                unsettled_changes: true,
            },
            clock: None,
            held_jump: None,
            ceiling: None,
            until: None,
            counters: Counters::default(),
            gauges: BTreeMap::new(),
        }
    }

    /// Applies one event: first advances the clock to the event's time (less
    /// the allowed lateness), firing every timer before it, then applies it.
    /// An exact duplicate of a message already seen changes nothing.
    pub fn apply(&mut self, event: &InterfaceEvent) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.apply_into(event, &mut fx);
        fx
    }

    /// As [`Tracker::apply`], appending the effects to `fx`: a caller that
    /// gathers many events' effects (the replay hands them to its writer a
    /// thousand events at a time) saves a vector and a copy of every effect
    /// per event.
    pub fn apply_into(&mut self, event: &InterfaceEvent, out: &mut Vec<Effect>) {
        let fx = &mut Effects::new(out, self.switches);
        // An update is acted on only when it gives an end (a corrected
        // discharge time) or a discharge disposition (both only known once
        // the encounter ended): the A08s of a stay in progress are most of
        // an ADT feed, and change nothing.
        let tracked = match event.event_type {
            EventType::EncounterUpdated => event.encounter.as_ref().is_some_and(|e| {
                e.id.is_some() && (e.ended_at.is_some() || e.discharge_disposition.is_some())
            }),
            _ => !matches!(
                event.event_type,
                EventType::Other
                    | EventType::EncounterStarted
                    | EventType::AppointmentBooked
                    | EventType::AppointmentCancelled
                    | EventType::AppointmentMissed
            ),
        };
        if tracked && self.until.is_some_and(|u| ms(event.occurred_at) > u) {
            self.counters.after_until += 1;
            return;
        }
        let seen_key = tracked.then(|| state::seen_key(event));
        if let Some(h) = &seen_key
            && self.is_duplicate(h)
        {
            self.counters.duplicates += 1;
            return;
        }
        // Older than the duplicate horizon: its key may have been forgotten,
        // so it cannot be told apart from a duplicate. Ignore and count it.
        if tracked
            && let Some(c) = self.clock
            && ms(event.occurred_at) < c - self.config.duplicate_horizon.as_secs() * 1000
        {
            self.counters.stale_events += 1;
            return;
        }
        // Only what the tracker acts on moves its clock: an admission, a
        // booking or an `other` event may carry a planned time weeks ahead,
        // which would fire every open deadline early in a replay (whose
        // ceiling is `--until`).
        if tracked {
            self.advance_for_event(event.occurred_at, fx);
        }
        match event.event_type {
            EventType::EncounterEnded => self.on_encounter_ended(event, fx),
            EventType::EncounterUpdated if tracked => self.on_encounter_updated(event, fx),
            EventType::EncounterUpdated => self.on_patient_identified(event, fx),
            EventType::EncounterDischargeCancelled | EventType::EncounterCancelled => {
                self.on_encounter_cancelled(event, fx)
            }
            EventType::PatientMerged => self.on_patient_merged(event, fx),
            EventType::DocumentIssued | EventType::DocumentReplaced => self.on_document(event, fx),
            EventType::DocumentCancelled => self.on_document_cancelled(event, fx),
            EventType::DeliveryAcknowledged | EventType::DeliveryFailed => {
                self.on_delivery(event, fx)
            }
            _ => {}
        }
        if let Some(h) = seen_key {
            self.remember_seen(h, ms(event.occurred_at), fx);
        }
        // An expectation created with its deadline already behind the clock
        // (a discharge read late) is judged at once, not at the next input.
        if let Some(c) = self.clock {
            self.fire_due(c, fx);
        }
        self.drop_stale_timers();
    }

    /// The engine time a wall-clock reading stands for in live mode: the
    /// wall clock less the allowed lateness, as an event's time is, so that
    /// a document stamped within the lateness after its deadline is judged
    /// alike live and in replay (`late`, never `overdue` first).
    pub fn engine_time_at(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        wall.checked_sub_signed(self.config.allowed_lateness.delta())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Advances the clock (live mode: [`Tracker::engine_time_at`] the wall
    /// clock once caught up; replay: `--until`), firing every timer it
    /// passes. The clock never goes back.
    pub fn advance_to(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        let mut out = Vec::new();
        self.set_clock(ms(now), &mut Effects::new(&mut out, self.switches));
        self.drop_stale_timers();
        out
    }

    /// Whether effects include the auxiliary state records: the clock, the
    /// duplicate keys, documents waiting for their encounter, transmissions
    /// awaiting acknowledgement ([`Effect::StatePut`] and
    /// [`Effect::StateDeleted`]). A store needs them so that a tracker can be
    /// restored from it ([`Tracker::restore`]); they are on by default. A
    /// caller that will never restore turns them off and the tracker does
    /// not build them: `tocsin replay` into its temporary store, which
    /// keeps only expectations. Judging is the same either way; only these
    /// effects are left out.
    pub fn set_state_records(&mut self, on: bool) {
        self.switches.state_records = on;
    }

    /// Whether effects include the changes of expectations that stay
    /// unsettled: created, re-keyed by a merge, turned overdue (the alerts
    /// themselves are always returned). On by default: a store must hold
    /// every open expectation for a restart. A caller that reads the
    /// unsettled ones once at the end instead ([`Tracker::unsettled`]) turns
    /// them off and the tracker does not build them: `tocsin replay` without a
    /// store, or into a store built aside, where most would be overwritten
    /// by the settled state. Judging is the same either way.
    pub fn set_unsettled_changes(&mut self, on: bool) {
        self.switches.unsettled_changes = on;
    }

    /// Sets the latest instant that event times may move the clock to, so a
    /// message stamped years ahead cannot fire every deadline. Live mode sets
    /// it to the wall clock plus a tolerated skew at each tick; replay sets it
    /// to `--until`. Events stamped later move the clock only this far and are
    /// counted in [`Counters::future_events_capped`]. Without a ceiling (the
    /// default) event times are trusted. `None` removes it.
    pub fn set_ceiling(&mut self, ceiling: Option<DateTime<Utc>>) {
        self.ceiling = ceiling.map(ms);
    }

    /// Judges as at `until`, as `tocsin replay --until` does: an event the
    /// tracker would act on that is stamped later had not happened by then,
    /// so it is not applied (counted in [`Counters::after_until`]).
    /// Applied, a document sent after `until` would count as on time or
    /// late while an expectation whose deadline passes after `until`
    /// without one stays not yet due: the report as at `until` would lean
    /// towards on time. Live mode sets none.
    pub fn set_until(&mut self, until: Option<DateTime<Utc>>) {
        self.until = until.map(ms);
    }

    /// When the earliest timer falls; it fires once the clock is past it.
    /// An acknowledgement held for its document counts as a timer: when it
    /// stops waiting it is counted unmatched.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let a = self.timers.peek().map(|t| t.0);
        let b = self.tx_timers.first().map(|t| t.0);
        let c = self.early_ack_expiry.first().map(|t| t.0);
        [a, b, c].into_iter().flatten().min().map(from_ms)
    }

    /// The event-time clock, once any input has set it.
    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock.map(from_ms)
    }

    /// How many expectations are unsettled (open or overdue).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Rules that restored unsettled expectations keep although the policy
    /// no longer has them as they were (removed, or its durations changed
    /// since those expectations were made), each with how many keep it, in
    /// rule id order. A restore never moves a deadline, so an edited policy
    /// judges only encounters that end after it: the gateway and
    /// `replay --store` say so at start, or a trust that edited a rule in
    /// place would see the old deadlines raised without knowing why.
    pub fn rules_kept_from_store(&self) -> Vec<(String, usize)> {
        let in_policy = self.policy.rules().len();
        let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, o) in self.open.iter() {
            if usize::from(o.rule) >= in_policy {
                *kept.entry(self.rule_info(o).id.as_str()).or_default() += 1;
            }
        }
        kept.into_iter().map(|(id, n)| (id.to_owned(), n)).collect()
    }

    /// Open and overdue counts by document kind and encounter kind, for the
    /// gauges operations teams watch (no patient data).
    pub fn gauges(&self) -> impl Iterator<Item = (DocumentKind, EncounterKind, Gauge)> + '_ {
        self.gauges.iter().map(|(&(d, e), &g)| (d, e, g))
    }

    /// Counters of tolerated oddities, for metrics.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How many documents wait for their encounter's end.
    pub fn pending_document_count(&self) -> usize {
        self.pending.len()
    }

    /// How many transmissions are remembered for acknowledgements.
    pub fn transmission_count(&self) -> usize {
        self.transmissions.len()
    }

    /// The durable form of every unsettled expectation (for the HTTP API and
    /// for checks after a restore).
    pub fn open_expectations(&self) -> Vec<Expectation> {
        self.unsettled().collect()
    }

    /// The durable form of every unsettled expectation, one at a time: a
    /// replay that stores only final states writes these at its end, and a
    /// million of them as one vector would be some 900 MB.
    pub fn unsettled(&self) -> impl Iterator<Item = Expectation> + '_ {
        self.open.iter().map(|(_, o)| self.materialise(o))
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn pending_horizon(&self) -> i64 {
        self.config.pending_document_horizon.as_secs() * 1000
    }

    /// Moves the clock for an event time (taken no later than the ceiling),
    /// less the allowed lateness. An event more than `max_clock_jump` ahead
    /// of the clock is held: it does not move the clock, and the next event
    /// moves it only if it is that far ahead too (then to its own time, as
    /// any event). One mistyped or wrongly clocked message thus neither
    /// fires every open deadline nor makes what follows it stale, while a
    /// gap in the feed (an outage, an archive with months missing) costs
    /// one event's delay.
    fn advance_for_event(&mut self, at: DateTime<Utc>, fx: &mut Effects<'_>) {
        let mut e = ms(at);
        if let Some(ceil) = self.ceiling
            && e > ceil
        {
            self.counters.future_events_capped += 1;
            e = ceil;
        }
        let t = e - self.config.allowed_lateness.as_secs() * 1000;
        let jump = self.config.max_clock_jump.as_secs() * 1000;
        let held = self.held_jump;
        if held.is_none() && self.clock.is_some_and(|c| t - c > jump) {
            self.counters.clock_jumps_held += 1;
            self.held_jump = Some(t);
            fx.put_state(namespaces::CLOCK, HELD_JUMP, &Rfc3339(t));
            return;
        }
        if held.is_some() {
            self.held_jump = None;
            fx.delete_state(namespaces::CLOCK, HELD_JUMP);
        }
        self.set_clock(t, fx);
    }

    fn set_clock(&mut self, t: i64, fx: &mut Effects<'_>) {
        if self.clock.is_some_and(|c| c >= t) {
            return;
        }
        self.clock = Some(t);
        self.fire_due(t, fx);
        self.prune(t, fx);
        fx.put_state(namespaces::CLOCK, "event_time", &Rfc3339(t));
    }

    /// Whether a timer in the heap is the slot's next timer (else stale).
    fn timer_live(&self, at: i64, slot: u32) -> bool {
        self.open.get(slot).and_then(|o| self.next_timer(o)) == Some(at)
    }

    /// Drops stale timers from the top of the heap, so that the earliest
    /// timer is a live one ([`Tracker::next_deadline`] reads it); and
    /// rebuilds the heap when stale timers outnumber live ones, so memory
    /// stays proportional to the open expectations. Called at the end of
    /// every public method that changes the tracker.
    pub(crate) fn drop_stale_timers(&mut self) {
        if self.timers.len() > 2 * self.open.len() + 1024 {
            let (open, rules) = (&self.open, &self.rules);
            self.timers.retain(|at, slot| {
                open.get(slot)
                    .and_then(|o| o.next_timer(&rules[o.rule as usize]))
                    == Some(at)
            });
        }
        while let Some((at, slot)) = self.timers.peek() {
            if self.timer_live(at, slot) {
                break;
            }
            self.timers.pop();
        }
    }

    /// The earliest live timer before `now`, dropping stale ones above it.
    fn next_open_timer(&mut self, now: i64) -> Option<(i64, u32)> {
        while let Some((at, slot)) = self.timers.peek() {
            if at >= now {
                return None;
            }
            if self.timer_live(at, slot) {
                return Some((at, slot));
            }
            self.timers.pop();
        }
        None
    }

    /// Fires every timer strictly before `now`, in time order.
    fn fire_due(&mut self, now: i64, fx: &mut Effects<'_>) {
        loop {
            let next_open = self.next_open_timer(now);
            let next_tx = self.tx_timers.first().cloned().filter(|t| t.0 < now);
            match (next_open, next_tx) {
                (None, None) => break,
                (Some(o), Some(x)) if x.0 < o.0 => self.fire_tx(x, fx),
                (Some(o), _) => self.fire_open(o, fx),
                (None, Some(x)) => self.fire_tx(x, fx),
            }
        }
    }

    fn fire_open(&mut self, (at, slot): (i64, u32), fx: &mut Effects<'_>) {
        self.timers.pop();
        let Some(o) = self.open.get(slot) else {
            return;
        };
        let rule = self.rule_info(o);
        let kind =
            if o.due_soon_at(rule) == Some(at) && !o.raised(AlertKind::DueSoon) && !o.overdue() {
                AlertKind::DueSoon
            } else if o.deadline(rule) == at && !o.overdue() {
                AlertKind::Overdue
            } else {
                return;
            };
        // The instant the condition arose, not the clock at firing: the same
        // alert whether the input is read live or replayed at once.
        let raised_at = at;
        let (doc_kind, enc_kind) = (rule.document_kind, o.kind);
        let rule = &self.rules[o.rule as usize];
        let Some(o) = self.open.get_mut(slot) else {
            return;
        };
        o.alerts |= open::alert_bit(kind);
        if kind == AlertKind::Overdue {
            o.set_overdue();
            let g = self.gauges.entry((doc_kind, enc_kind)).or_default();
            g.open = g.open.saturating_sub(1);
            g.overdue += 1;
        }
        if let Some(next) = o.next_timer(rule) {
            self.timers.push(next, slot);
        }
        let Some(o) = self.open.get(slot) else {
            return;
        };
        let exp = self.materialise(o);
        let alert = build_alert(&exp, kind, from_ms(raised_at), None);
        fx.push(Effect::ExpectationChanged(exp));
        fx.push(Effect::AlertRaised(alert));
    }
}

/// The deterministic alert id: expectation id and kind.
pub fn alert_id(expectation: &crate::ExpectationId, kind: AlertKind) -> String {
    format!("{}:{}", expectation.0, kind.as_str())
}

/// Builds an alert about an expectation.
pub(crate) fn build_alert(
    e: &Expectation,
    kind: AlertKind,
    raised_at: DateTime<Utc>,
    document: Option<AlertDocument>,
) -> Alert {
    let delay_seconds = e
        .settlement
        .as_ref()
        .filter(|_| document.is_some())
        .map(|s| s.delay_seconds);
    Alert {
        alert_id: alert_id(&e.id, kind),
        kind,
        expectation_id: e.id.clone(),
        document_kind: e.document_kind,
        encounter: AlertEncounter {
            id: e.encounter.id.clone(),
            kind: e.encounter.kind,
            ended_at: e.encounter.ended_at,
            site: e.encounter.site.clone(),
            specialty: e.encounter.specialty.clone(),
        },
        patient: AlertPatient {
            nhs_number: e.patient.nhs_number.clone(),
        },
        gp_practice: e.gp_practice.clone(),
        deadline: e.deadline,
        raised_at,
        rule: e.rule.clone(),
        document,
        delay_seconds,
        failure: None,
    }
}

/// The document an acknowledgement alert (`delivery_failed`, `unconfirmed`)
/// is about: the transmission that settled the expectation. Without it the
/// team told of a refused delivery could not tell which document to send
/// again.
pub(crate) fn transmitted_document(e: &Expectation) -> Option<AlertDocument> {
    e.settlement.as_ref().map(|s| AlertDocument {
        id: s.document_id.clone(),
        issued_at: s.issued_at,
        matched_by: s.matched_by,
    })
}

/// Index key of an encounter id.
pub(crate) fn enc_key(id: &str) -> u64 {
    key_hash(&["enc", id])
}

/// Index key of a FHIR encounter reference.
pub(crate) fn ref_key(r: &str) -> u64 {
    key_hash(&["ref", r])
}

/// Index key of an NHS number.
pub(crate) fn nhs_key(n: &str) -> u64 {
    key_hash(&["nhs", n])
}

/// Index key of a local patient identifier.
pub(crate) fn local_key(system: &str, value: &str) -> u64 {
    key_hash(&["local", system, value])
}
