//! The tracking engine.
//!
//! A pure state machine in the manner of quinn-proto: it takes an interface
//! event and the current time and returns [`Effect`]s (state changes and
//! alerts), and it says when its next deadline falls. It has no clock, no
//! I/O and no threads of its own, so replay and live mode share it and its
//! tests need no broker.
//!
//! - [`Policy`]: the effective-dated contract rules (`config/policies/`).
//! - [`TrackerConfig`]: the `[tracker]` settings (lateness, windows, horizons).
//! - [`Tracker`]: the state machine ([`Tracker::apply`], [`Tracker::advance_to`],
//!   [`Tracker::restore`]).
//! - [`compliance`]: the pure compliance report over expectations.
//!
//! # Decisions
//!
//! - **Clock.** Event time, not arrival: each input first moves the clock to
//!   its `occurred_at` less `allowed_lateness` (never backwards), firing every
//!   timer strictly before it; a deadline fires only once the clock has
//!   passed it. A document issued exactly at its deadline is on time.
//!   [`Tracker::set_ceiling`] caps the event time that may move the clock
//!   (live: wall clock plus skew; replay: `--until`), counted in
//!   [`Counters::future_events_capped`]. An event more than
//!   `max_clock_jump` ahead of the clock moves it only when the next is
//!   that far ahead too ([`Counters::clock_jumps_held`]): one bad
//!   timestamp neither fires every deadline nor makes what follows stale.
//! - **Correlation**, in order: encounter id, FHIR reference, then the same
//!   patient (NHS number when both sides have one, else any local id) and
//!   document kind, issued within `match_window_before`/`_after` of the
//!   encounter's end, nearest end first (nearest the end the document gives
//!   for its stay, an MDM's PV1-45 or its Encounter's period, else its
//!   issue), but never an encounter that ended before the stay the
//!   document's message says it is about began (an MDM's PV1-44). A document that names an encounter never settles a
//!   *different* named encounter by patient (a `urn:` reference, local to
//!   its bundle, names none). The document
//!   kind must always agree, and so must the NHS numbers when both sides
//!   have one: visit numbers collide across patients and systems.
//! - **Early documents** (before the end event) wait as `pending_document`
//!   state for `pending_document_horizon`; an end event takes the
//!   first-issued matching one, except one matched by patient only that
//!   was issued before the encounter began (a copy of the last stay's
//!   summary is not the next stay's). A document that already settled an
//!   expectation does not wait when it comes again (`document_repeated`). Acknowledgements of a waiting document wait
//!   with it.
//! - **Replacements** (`document_replaced`) settle an open expectation if
//!   they are the first transmission seen; otherwise they change nothing (the
//!   first transmission time never moves) and never wait.
//! - **Withdrawn documents** (`document_cancelled`): a waiting copy is
//!   forgotten; an expectation already settled stays settled (the contract
//!   measures the first transmission; a replacement normally follows).
//! - **Cancellation**: A13 and A11/FHIR cancelled withdraw the encounter's
//!   open expectations (`cancelled`); settled ones are left alone, but the
//!   end no longer stands: a discharge recorded again is owed anew, except
//!   that the document that settled the first waits again and settles it
//!   if issued within the match window before its end (A13 then A03 is
//!   how a PAS corrects a discharge time). An open expectation withdrawn
//!   after alerts were raised about it is remembered: the discharge
//!   recorded again is a new generation, with an id (and so alert ids) of
//!   its own, the withdrawn one staying `cancelled` beside it; before, its
//!   alerts repeated the withdrawn one's ids and were dropped as repeats.
//! - **Merges** re-key open expectations (NHS number, local ids, and for
//!   account merges the visit number); they never cancel. A visit moved to
//!   another patient (A45, merge scope `visit`) re-keys only that visit's,
//!   taking the new patient's identity and GP practice whole. An expectation
//!   without an NHS number takes the survivor's. Waiting documents are not
//!   re-keyed, but a re-keyed expectation takes one waiting under its new
//!   keys. A settled expectation whose visit was renumbered meets an end
//!   re-sent under the new number as a repeat.
//! - **Corrected discharge times**: an A08 giving another end (PV1-45) or
//!   a discharge disposition, or a finished FHIR Encounter's later version,
//!   decides an open expectation again, unless `overdue` was raised
//!   already: its end and deadline move, its rule follows the corrected
//!   end across an effective date (keeping its id), and it is withdrawn
//!   when no rule of its document kind applies any more (an exclusion now
//!   matching) ([`Counters::ends_corrected`]). Another encounter kind
//!   (patient class) the policy has rules for moves it to the new kind's
//!   rule, or withdraws it when the new kind owes no such document, and
//!   opens what the new kind owes instead ([`Counters::kinds_corrected`]).
//! - **Repeated discharges** (a second A03 for an open expectation under a new
//!   message id) keep the first end time (its end may be only the time it
//!   was recorded, which a resend moves); one that comes after the document
//!   settled the expectation (a FHIR Encounter's later version) changes
//!   nothing, for `duplicate_horizon` after the settlement or the last
//!   repeat ([`Counters::repeated_ends`]).
//! - **Duplicates**: a 128-bit hash of (format, sequence, message id,
//!   message type, sending facility and application: a message id is
//!   unique only within its sender; and the event type, NHS number,
//!   encounter and document ids and acknowledgement it carries: a sender
//!   may reuse one id for other patients' messages) is kept
//!   for `duplicate_horizon` of event time. An event older than the clock
//!   less that horizon is ignored ([`Counters::stale_events`]): it can no
//!   longer be told from a duplicate. The horizon is therefore also the
//!   largest disorder tolerated.
//! - **Acknowledgements** attach to the settling transmission (its
//!   `source.message_id`) for `ack_horizon`; one read before its document
//!   waits `allowed_lateness` of event time for it (state `early_ack`)
//!   before it is counted unmatched; a failure raises `delivery_failed`
//!   once and stands against any acceptance timed before it; the same
//!   document sent again under another message id is the transmission the
//!   expectation then waits on (delivery `pending`, then `acknowledged` or
//!   `failed` by its own acknowledgement), and an acceptance timed after
//!   the failure (the message sent again under the same id) clears it
//!   ([`Counters::deliveries_resent`]);
//!   `unconfirmed` (off unless `unconfirmed_after` is set) fires when none
//!   came in time.
//! - **Alerts** have id `<expectation id>:<kind>` and are never raised twice
//!   for one expectation (`alerts_raised`). `late` comes with every document
//!   issued after its deadline; `resolved` follows when `overdue` was raised.

mod alert;
mod compact;
pub mod compliance;
mod config;
mod duration;
mod model;
mod policy;
mod time_text;
mod tracker;

pub use alert::{
    Alert, AlertDocument, AlertEncounter, AlertKind, AlertPatient, DeliveryFailure,
    json_schema as alert_json_schema, looks_like_a_code,
};
pub use config::TrackerConfig;
pub use duration::{ConfigDuration, DurationError};
pub use model::{
    DeliveryStatus, Effect, EncounterSummary, Expectation, ExpectationId, ExpectationStatus,
    JsonText, MatchMethod, PatientKeys, RuleRef, Settlement, StateRange, StateRecord, json_string,
};
pub use policy::{
    Applicability, EncounterFacts, Exclusion, Policy, PolicyError, PolicyGap, Rule, add_hint,
};
pub use tracker::{
    Counters, Gauge, RestoreError, Restoring, Tracker, alert_id, expectation_id, namespaces,
};
