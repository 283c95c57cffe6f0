//! Auxiliary state: the clock, keys of messages seen, transmissions awaiting
//! acknowledgement; their pruning by event time, and the rebuild after a
//! restart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tocsin_event::InterfaceEvent;

use super::documents::PendingDocument;
use super::effects::Effects;
use super::open::{NO_TIME, from_ms, ms};
use super::{Effect, RuleInfo, Tracker, build_alert, namespaces};
use crate::compact::pack_hex;
use crate::config::TrackerConfig;
use crate::model::{DeliveryStatus, Expectation, JsonText, StateRecord};
use crate::policy::Policy;
use crate::{AlertKind, DeliveryFailure};

/// A settling transmission remembered so acknowledgements can attach.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transmission {
    pub issued_at: DateTime<Utc>,
    pub expectations: Vec<Expectation>,
    /// When the latest refusal of it was sent, while it stands refused: an
    /// acceptance timed after it is of the same message sent again
    /// ([`Tracker::record_delivery`]). Absent in records written before it
    /// was kept: their failure stays final.
    pub failed_at: Option<DateTime<Utc>>,
    /// What that refusal's codes said, for its `delivery_failed` alert.
    pub failure: Option<DeliveryFailure>,
    /// When the latest acceptance of it was sent: a refusal timed before
    /// it, read after it, was answered by the resend it accepted
    /// ([`Tracker::record_delivery`]), as when the two are read in time
    /// order. Absent in records written before it was kept.
    pub accepted_at: Option<DateTime<Utc>>,
}

/// The document an expectation's refused transmission carried: its
/// settling document's id when its delivery failed. What the index of
/// failed transmissions holds, and what a document sent again is matched
/// against ([`Tracker::resend_after_failure`]).
pub(crate) fn failed_document(e: &Expectation) -> Option<&str> {
    e.settlement
        .as_ref()
        .filter(|_| e.delivery == Some(DeliveryStatus::Failed))
        .map(|s| s.document_id.as_str())
}

impl Transmission {
    /// Takes this transmission (under `message_id`) out of the index of
    /// failed ones: let go of, or its failure cleared.
    pub(super) fn unindex_failed(
        &self,
        message_id: &str,
        index: &mut std::collections::BTreeSet<(String, String)>,
    ) {
        for d in self.expectations.iter().filter_map(failed_document) {
            index.remove(&(d.to_owned(), message_id.to_string()));
        }
    }

    /// The acknowledgements it had for `exp`, as a document waiting again
    /// (its discharge cancelled) holds them: its refusal, at its time with
    /// its codes, and its latest acceptance, for when a later one read
    /// while it waits is to be judged against them. Without those times
    /// (records written before they were kept), at its issue.
    pub(super) fn held_acks(&self, exp: &Expectation) -> HeldAcks {
        let mut held = HeldAcks::default();
        let refused = exp.delivery == Some(DeliveryStatus::Failed);
        let accepted = match exp.delivery {
            Some(DeliveryStatus::Acknowledged) => Some(self.accepted_at.unwrap_or(self.issued_at)),
            _ => self.accepted_at,
        };
        if let Some(at) = accepted {
            held.add(EarlyAck {
                failed: false,
                at,
                failure: None,
            });
        }
        if refused {
            held.add(EarlyAck {
                failed: true,
                at: self.failed_at.unwrap_or(self.issued_at),
                failure: self.failure.clone(),
            });
        }
        held
    }

    /// Its stored record ([`TransmissionRecord`]).
    pub(super) fn record(&self) -> TransmissionRecord<'_> {
        TransmissionRecord {
            issued_at: self.issued_at,
            expectation_ids: &self.expectations,
            failed_at: self.failed_at,
            failure: self.failure.as_ref(),
            accepted_at: self.accepted_at,
        }
    }
}

/// An acknowledgement read before its transmission could take it, as held
/// ([`HeldAcks`]): `{"failed": ..., "at": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EarlyAck {
    /// A refusal (AE, AR...), else an acceptance.
    pub failed: bool,
    /// The acknowledgement's own time.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub at: DateTime<Utc>,
    /// A refusal's codes. Absent from records written before they were
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<DeliveryFailure>,
}

impl EarlyAck {
    /// The outcome it reports.
    pub fn status(&self) -> DeliveryStatus {
        if self.failed {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Acknowledged
        }
    }
}

/// The acknowledgements read before their transmission could take them
/// (its document not yet read, or waiting for its encounter's end), every
/// one in the order of their own times, so that they are applied in that
/// order when it can ([`Tracker::apply_held_acks`]) and judge as they
/// would have, read in time order. Kept as one (a refusal winning), the
/// resend's acceptance read before the refusal it answered was lost, and
/// the delivery stayed failed. Stored in the `early_ack` namespace as a
/// JSON array (a single object in stores written before).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredAcks")]
pub(crate) struct HeldAcks(Vec<EarlyAck>);

/// What [`HeldAcks::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    Added,
    /// One the same was held: nothing changed.
    Repeat,
    /// No room: not kept.
    Full,
}

/// At most this many are held for one transmission (a receiver answering
/// one message dozens of times): see [`HeldAcks::add`].
const MAX_HELD_ACKS: usize = 16;

/// [`HeldAcks`] as stored: the array, or the single object of older stores.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredAcks {
    Many(Vec<EarlyAck>),
    One(EarlyAck),
}

impl From<StoredAcks> for HeldAcks {
    fn from(s: StoredAcks) -> Self {
        let mut held = HeldAcks::default();
        let acks = match s {
            StoredAcks::Many(v) => v,
            StoredAcks::One(a) => vec![a],
        };
        for a in acks {
            held.add(a);
        }
        held
    }
}

impl IntoIterator for HeldAcks {
    type Item = EarlyAck;
    type IntoIter = std::vec::IntoIter<EarlyAck>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl HeldAcks {
    /// Keeps `ack` in its place by time (an acceptance before a refusal of
    /// the same time, which it does not clear), unless one the same is
    /// held. Past [`MAX_HELD_ACKS`] an acceptance followed by another is
    /// let go; [`Held::Full`] when there is none (`ack` not kept: the
    /// caller counts it unmatched).
    pub fn add(&mut self, ack: EarlyAck) -> Held {
        if self.0.contains(&ack) {
            return Held::Repeat;
        }
        let i = self
            .0
            .partition_point(|a| (a.at, a.failed) <= (ack.at, ack.failed));
        self.0.insert(i, ack);
        if self.0.len() <= MAX_HELD_ACKS {
            return Held::Added;
        }
        // Full: an acceptance followed by another says nothing the later
        // one does not (both clear what came before), so it goes first;
        // a refusal is never dropped for an acceptance.
        match self.0.windows(2).position(|w| !w[0].failed && !w[1].failed) {
            Some(j) => {
                self.0.remove(j);
                Held::Added
            }
            None => {
                self.0.remove(i);
                Held::Full
            }
        }
    }

    /// Whether none is held (a waiting document's record then omits them).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many are held: counted `ack_unmatched` when they are let go.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// When they stop waiting for their document (event time, ms): the
    /// allowed lateness after the latest.
    fn expires(&self, config: &TrackerConfig) -> i64 {
        self.0.last().map_or(i64::MIN, |a| ms(a.at)) + config.allowed_lateness.as_secs() * 1000
    }
}

/// A transmission as stored in the `transmission` namespace:
/// `{"issued_at": ..., "expectation_ids": [...]}`.
///
/// Only the ids: the expectations themselves are in the store's
/// `expectations` table, written by the same commit (every change to a
/// transmission's expectations is an [`Effect::ExpectationChanged`] too),
/// and a restore reads them back from there ([`Restoring::wanted`]). The
/// record is rewritten at every settlement and acknowledgement; with whole
/// expectations in it (some 840 bytes of JSON each) it was a fifth of what
/// a replay into a store spent on the store (docs/performance.md,
/// "Eighteenth session").
#[derive(Serialize)]
pub(super) struct TransmissionRecord<'a> {
    #[serde(serialize_with = "crate::time_text::serialize")]
    issued_at: DateTime<Utc>,
    #[serde(serialize_with = "serialize_ids")]
    expectation_ids: &'a [Expectation],
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time_text::serialize_option"
    )]
    failed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<&'a DeliveryFailure>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time_text::serialize_option"
    )]
    accepted_at: Option<DateTime<Utc>>,
}

fn serialize_ids<S: serde::Serializer>(e: &&[Expectation], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(e.iter().map(|e| e.id.0.as_str()))
}

/// A stored transmission record as read back: the current form names its
/// expectations by id; records written before it (tocsin 0.1 stores up to
/// this change) carry the expectations whole, and still restore.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredTransmission {
    issued_at: DateTime<Utc>,
    #[serde(default)]
    expectation_ids: Option<Vec<String>>,
    #[serde(default)]
    expectations: Option<Vec<Expectation>>,
    #[serde(default)]
    failed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    failure: Option<DeliveryFailure>,
    #[serde(default)]
    accepted_at: Option<DateTime<Utc>>,
}

/// Why the tracker could not be rebuilt from stored state.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A stored expectation's id is not one the tracker made.
    #[error("expectation `{0}`: id is not 32 lowercase hex digits")]
    BadExpectationId(String),
    /// A transmission record names an expectation the store does not hold
    /// (the two are written by the same commit, so this is not a store
    /// tocsin left as it was).
    #[error(
        "state record transmission/{message_id}: expectation `{expectation}` is not in the store"
    )]
    MissingExpectation {
        /// The transmission's message id (the record's key).
        message_id: String,
        /// The expectation it names.
        expectation: String,
    },
    /// A stored record could not be read.
    #[error("state record {namespace}/{key}: {reason}")]
    BadRecord {
        /// Its namespace.
        namespace: String,
        /// Its key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// More than 65,536 distinct rules (by name and durations) among the
    /// policy and the stored expectations: not a store tocsin wrote.
    #[error("expectation under rule `{0}`: more than 65,536 distinct rules and durations")]
    TooManyRules(String),
    /// A record in a namespace the tracker does not use.
    #[error("state record {namespace}/{key}: unknown namespace")]
    UnknownNamespace {
        /// Its namespace.
        namespace: String,
        /// Its key.
        key: String,
    },
}

impl RestoreError {
    /// A fixed code for the kind of damage, for metric labels and logs:
    /// `bad_expectation_id`, `missing_expectation`, `bad_record`,
    /// `too_many_rules` or `unknown_namespace`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadExpectationId(_) => "bad_expectation_id",
            Self::MissingExpectation { .. } => "missing_expectation",
            Self::BadRecord { .. } => "bad_record",
            Self::TooManyRules(_) => "too_many_rules",
            Self::UnknownNamespace { .. } => "unknown_namespace",
        }
    }

    /// The state record at fault as `namespace/key` (no patient data: keys
    /// are message and document ids and hashes), or `None` for an
    /// expectation.
    pub fn record(&self) -> Option<String> {
        match self {
            Self::MissingExpectation { message_id, .. } => {
                Some(format!("{}/{message_id}", namespaces::TRANSMISSION))
            }
            Self::BadRecord { namespace, key, .. } | Self::UnknownNamespace { namespace, key } => {
                Some(format!("{namespace}/{key}"))
            }
            Self::BadExpectationId(_) | Self::TooManyRules(_) => None,
        }
    }
}

/// A duplicate key: 128 bits, most significant word first (so keys order
/// as the `u128` they print as). The store keeps both words; the tracker's
/// map keeps the first (see `Tracker::seen`).
pub(crate) type SeenKey = [u64; 2];

/// The duplicate key of an event: a 128-bit hash of its format, sequence,
/// message id, message type, sending facility and sending application
/// (stored, after the time it was seen, in the `seen` namespace). A message
/// id is unique only within its sender (HL7 MSH-10: each system numbers its
/// own messages, and several systems may stand behind one MSH-4): keyed by
/// the id alone, an EPR's summary numbered as the PAS's discharge before it
/// was dropped as a duplicate. What the message says it is about is hashed
/// too (event type, NHS number, encounter and document ids, the message
/// acknowledged and how): a sender whose template never renews its
/// MessageHeader id (or an engine reusing MSH-10) sent three patients'
/// summaries under one id, and two were dropped as duplicates with no
/// alert, their discharges reported missing. A resend of the same message
/// agrees on all of it.
pub(crate) fn seen_key(ev: &InterfaceEvent) -> SeenKey {
    let mut h = Sha256::new();
    h.update(ev.source.format.as_str().as_bytes());
    h.update([0]);
    h.update(ev.source.sequence.to_be_bytes());
    h.update(ev.source.message_id.as_bytes());
    h.update([0]);
    h.update(ev.source.message_type.as_bytes());
    h.update([0]);
    if let Some(f) = &ev.source.sending_facility {
        h.update([1]);
        h.update(f.as_bytes());
    }
    if let Some(a) = &ev.source.sending_application {
        h.update([2]);
        h.update(a.as_bytes());
    }
    let content = [
        Some(ev.event_type.as_str()),
        ev.patient.nhs_number.as_deref(),
        ev.encounter.as_ref().and_then(|e| e.id.as_deref()),
        ev.document.as_ref().map(|d| d.id.as_str()),
        ev.ack.as_ref().map(|a| a.of_message_id.as_str()),
        ev.ack.as_ref().map(|a| a.code.as_str()),
    ];
    for (tag, part) in (3u8..).zip(content) {
        if let Some(part) = part {
            h.update([tag]);
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    split_key(u128::from_be_bytes(b))
}

/// The key that remembers a settled expectation, beside the duplicate keys
/// and for as long: an end event repeated after the document came (a FHIR
/// Encounter's later version, an A03 sent again under a new message id)
/// finds it and changes nothing, where it would otherwise open the
/// expectation again and raise a false `overdue`.
pub(crate) fn settled_key(expectation_id: &[u8; 16]) -> SeenKey {
    tagged_key(b"tocsin-settled\0", expectation_id)
}

/// The key that remembers a document that settled an expectation, beside
/// the duplicate keys and for as long: the same document sent again (a copy
/// to a second recipient, an MDM T04 of its status changing) settles
/// nothing more and does not wait, where waiting it could settle the
/// patient's next stay.
pub(crate) fn document_key(document_id: &str) -> SeenKey {
    tagged_key(b"tocsin-document\0", document_id.as_bytes())
}

/// The key that remembers an open expectation withdrawn by a cancellation
/// (A13, A11) after alerts were raised about it, beside the duplicate keys
/// and for as long: the discharge recorded again takes the next
/// generation's id ([`next_generation`]), or its alerts, under the same
/// ids as the withdrawn one's, were dropped as repeats by the store and by
/// subscribers (a missed `overdue`).
pub(crate) fn cancelled_key(expectation_id: &[u8; 16]) -> SeenKey {
    tagged_key(b"tocsin-cancelled\0", expectation_id)
}

/// The id of the expectation of a discharge recorded again after the one
/// with id `id` was withdrawn with alerts raised.
pub(crate) fn next_generation(id: &[u8; 16]) -> [u8; 16] {
    tagged_digest(b"tocsin-generation\0", id)
}

/// A key beside the duplicate keys, for something other than a message:
/// the first 128 bits of SHA-256 over a tag and the bytes, so that no
/// message's key can equal it.
fn tagged_key(tag: &[u8], bytes: &[u8]) -> SeenKey {
    split_key(u128::from_be_bytes(tagged_digest(tag, bytes)))
}

/// The first 128 bits of SHA-256 over a tag and the bytes.
fn tagged_digest(tag: &[u8], bytes: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(bytes);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// How many times per duplicate horizon the dead keys are swept out.
const SEEN_SWEEPS_PER_HORIZON: i64 = 32;

fn split_key(h: u128) -> SeenKey {
    [(h >> 64) as u64, h as u64]
}

/// The key as stored: 48 lowercase hex digits, the time it was seen (event
/// time, milliseconds, as a 64-bit two's-complement word) then the 128-bit
/// key. The time comes first so that the store's index on `(namespace, key)`
/// receives new keys at its end and loses expired ones at its start: a
/// commit then touches a few pages of the `seen` records instead of one
/// random page for each message, which made every commit rewrite most of
/// the table (docs/performance.md, replay pipeline).
struct StoredKey(i64, SeenKey);

impl std::fmt::Display for StoredKey {
    /// Hexed by hand into one buffer and written once: `write!` with three
    /// `{:016x}` took some 2,900 instructions a key, and the tracker makes
    /// one for nearly every message (docs/performance.md, "Eighteenth
    /// session").
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let StoredKey(at, k) = *self;
        let mut text = [0u8; 48];
        for (word, out) in [at as u64, k[0], k[1]].into_iter().zip(text.chunks_mut(16)) {
            for (i, digit) in out.iter_mut().enumerate() {
                *digit = DIGITS[(word >> (60 - 4 * i) & 0xf) as usize];
            }
        }
        // Hex digits only: ASCII.
        f.write_str(std::str::from_utf8(&text).map_err(|_| std::fmt::Error)?)
    }
}

/// An event time stored as its RFC 3339 text, formatted only when a record
/// is built.
pub(super) struct Rfc3339(pub i64);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&from_ms(self.0).to_rfc3339())
    }
}

#[cfg(test)]
fn key_hex(at: i64, k: SeenKey) -> String {
    StoredKey(at, k).to_string()
}

/// Reads a stored key back: `(seen at, key)`. Keys of stores written before
/// the time prefix (32 digits) are rewritten by the store's migration 4.
fn parse_key_hex(s: &str) -> Option<(i64, SeenKey)> {
    if s.len() != 48 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let word = |i: usize| u64::from_str_radix(&s[16 * i..16 * (i + 1)], 16).ok();
    Some((word(0)? as i64, [word(1)?, word(2)?]))
}

/// The ranges of stored keys seen before `horizon`. A key begins with its
/// time as 16 hex digits of the two's-complement word, so the times from 0
/// up sort in order, and the times before 1970 (`8…` to `f…`) after them,
/// also in order. A range bound of 16 digits sorts before every 48-digit
/// key it begins, so a key seen exactly at the horizon stays.
fn dead_seen_ranges(horizon: i64) -> Vec<(String, String)> {
    let word = |t: i64| format!("{:016x}", t as u64);
    let before_1970 = word(i64::MIN);
    if horizon >= 0 {
        // "g" sorts after every hex digit: the end of the namespace.
        vec![(word(0), word(horizon)), (before_1970, "g".into())]
    } else {
        vec![(before_1970, word(horizon))]
    }
}

impl Tracker {
    /// The ids an encounter's expectation under one rule has had, derived
    /// id first: one more for each withdrawal after alerts (see
    /// [`cancelled_key`]) still remembered. The last is the current one.
    pub(super) fn generations(&self, base: [u8; 16]) -> Vec<[u8; 16]> {
        let mut out = vec![base];
        while let Some(last) = out.last().copied()
            && out.len() < 64
            && self.is_duplicate(&cancelled_key(&last))
        {
            out.push(next_generation(&last));
        }
        out
    }

    /// Whether a message with this key was seen within the duplicate
    /// horizon. A key past the horizon may still be in `seen` until the next
    /// sweep; it no longer counts, exactly as if it had been dropped when the
    /// clock passed it.
    pub(super) fn is_duplicate(&self, h: &SeenKey) -> bool {
        self.seen.get(&h[0]).is_some_and(|&at| {
            self.clock
                .is_none_or(|c| at >= c - self.config.duplicate_horizon.as_secs() * 1000)
        })
    }

    /// Forgets a key (a settlement that no longer stands), with its stored
    /// record.
    /// Forgets a key; whether it was remembered.
    pub(super) fn forget_seen(&mut self, h: SeenKey, fx: &mut Effects<'_>) -> bool {
        match self.seen.remove(&h[0]) {
            Some(at) => {
                fx.delete_state(namespaces::SEEN, StoredKey(at, h));
                true
            }
            None => false,
        }
    }

    /// Lets the transmissions that settled expectation `id` go of it, once
    /// its discharge was cancelled. Each holds a copy of the expectation as
    /// it settled; an acknowledgement (or an `unconfirmed` timer) coming
    /// later wrote that copy back over whatever took the id since, the
    /// discharge recorded again: an overdue summary read as on time, in
    /// the old discharge's month. A cancellation after settlement is rare,
    /// so this scans; records are rewritten in message-id order. Returns
    /// the first transmission's message id, its copy, as it settled, and
    /// the acknowledgements it had ([`Transmission::held_acks`]).
    pub(super) fn detach_from_transmissions(
        &mut self,
        id: &str,
        fx: &mut Effects<'_>,
    ) -> Option<(String, Expectation, HeldAcks)> {
        let mut touched: Vec<String> = self
            .transmissions
            .iter()
            .filter(|(_, t)| t.expectations.iter().any(|e| e.id.0 == id))
            .map(|(m, _)| m.clone())
            .collect();
        touched.sort_unstable();
        let mut first = None;
        for message_id in touched {
            let Some(t) = self.transmissions.get_mut(&message_id) else {
                continue;
            };
            if first.is_none()
                && let Some(e) = t.expectations.iter().find(|e| e.id.0 == id)
            {
                first = Some((message_id.clone(), e.clone(), t.held_acks(e)));
            }
            let documents: Vec<String> = t
                .expectations
                .iter()
                .filter(|e| e.id.0 == id)
                .filter_map(|e| failed_document(e).map(str::to_owned))
                .collect();
            t.expectations.retain(|e| e.id.0 != id);
            // Out of the index of failed transmissions, unless another of
            // its expectations still failed with that document.
            for d in documents {
                if !t
                    .expectations
                    .iter()
                    .any(|e| failed_document(e) == Some(d.as_str()))
                {
                    self.failed_transmissions.remove(&(d, message_id.clone()));
                }
            }
            if t.expectations.is_empty() {
                self.transmissions.remove(&message_id);
                fx.delete_state(namespaces::TRANSMISSION, message_id);
            } else {
                fx.put_state(namespaces::TRANSMISSION, &message_id, &t.record());
            }
        }
        first
    }

    pub(super) fn remember_seen(&mut self, h: SeenKey, at: i64, fx: &mut Effects<'_>) {
        // A live key never comes here (`apply` drops a duplicate first), but
        // a dead one not yet swept may: its stored record, under its old
        // time and the same whole key, goes with it.
        if let Some(old) = self.seen.insert(h[0], at)
            && old != at
        {
            fx.delete_state(namespaces::SEEN, StoredKey(old, h));
        }
        fx.put_state(namespaces::SEEN, StoredKey(at, h), &Rfc3339(at));
    }

    /// An acknowledgement that named no transmission and no waiting
    /// document: kept, with any others of the same message, until the
    /// allowed lateness after the latest has passed, since its document may
    /// be read after it (the engine copies the outbound message to tocsin
    /// after the recipient has answered).
    pub(super) fn hold_early_ack(&mut self, message_id: &str, ack: EarlyAck, fx: &mut Effects<'_>) {
        let mut held = self.early_acks.remove(message_id).unwrap_or_default();
        if !held.is_empty() {
            self.early_ack_expiry
                .remove(&(held.expires(&self.config), message_id.to_string()));
        }
        match held.add(ack) {
            Held::Added => fx.put_state(namespaces::EARLY_ACK, message_id, &held),
            Held::Repeat => {}
            Held::Full => self.counters.acks_unmatched += 1,
        }
        self.early_ack_expiry
            .insert((held.expires(&self.config), message_id.to_string()));
        self.early_acks.insert(message_id.to_string(), held);
    }

    /// Applies the acknowledgements `held` for the transmission
    /// `message_id` once it can take them, in time order, each judged by
    /// its own time. Judged at the time they could be taken instead (the
    /// discharge that let a waiting document settle), a refusal moved up
    /// to it stood against the resend's acceptance timed before it, and an
    /// acceptance moved up answered the refusal that followed it.
    pub(super) fn apply_held_acks(
        &mut self,
        message_id: &str,
        held: &HeldAcks,
        fx: &mut Effects<'_>,
    ) {
        for a in &held.0 {
            self.record_delivery(message_id, a, fx);
        }
    }

    /// The acknowledgements held for `message_id`, taken (its document has
    /// come).
    pub(super) fn take_early_acks(
        &mut self,
        message_id: &str,
        fx: &mut Effects<'_>,
    ) -> Option<HeldAcks> {
        let held = self.early_acks.remove(message_id)?;
        self.early_ack_expiry
            .remove(&(held.expires(&self.config), message_id.to_string()));
        fx.delete_state(namespaces::EARLY_ACK, message_id);
        Some(held)
    }

    fn expire_early_acks(&mut self, now: i64, fx: &mut Effects<'_>) {
        while let Some((at, id)) = self.early_ack_expiry.first().cloned() {
            if at >= now {
                break;
            }
            self.early_ack_expiry.remove(&(at, id.clone()));
            if let Some(held) = self.early_acks.remove(&id) {
                self.counters.acks_unmatched += held.len() as u64;
                fx.delete_state(namespaces::EARLY_ACK, id);
            }
        }
    }

    /// Forgets what has aged past its horizon (by event time).
    ///
    /// Duplicate keys are swept in one pass over `seen` each time the
    /// horizon moves on by a 32nd of itself (some 22 hours at the default 30
    /// days), not one by one from an expiry queue: the queue cost 24 bytes
    /// for every message of the horizon, as much as the keys themselves,
    /// and most of a million-open tracker's memory beside its open records
    /// (docs/performance.md, "Seventh session"). A dead key waiting for its
    /// sweep is not a duplicate ([`Tracker::is_duplicate`]), so judging is
    /// as exact as before; only its stored record lives on until the sweep.
    /// The sweep deletes the stored records by the time that begins their
    /// keys, in one range ([`dead_seen_ranges`]), so the map need not keep
    /// each key whole.
    pub(super) fn prune(&mut self, now: i64, fx: &mut Effects<'_>) {
        let span = self.config.duplicate_horizon.as_secs() * 1000;
        let horizon = now - span;
        if horizon >= self.next_seen_sweep {
            self.seen.retain(|_, at| *at >= horizon);
            for (from, to) in dead_seen_ranges(horizon) {
                fx.delete_state_range(namespaces::SEEN, from, to);
            }
            self.next_seen_sweep = horizon.saturating_add((span / SEEN_SWEEPS_PER_HORIZON).max(1));
        }
        self.expire_pending(now, fx);
        self.expire_early_acks(now, fx);
    }

    pub(super) fn schedule_transmission(&mut self, message_id: &str, issued_at: DateTime<Utc>) {
        let t = ms(issued_at);
        let mut forget = self.config.ack_horizon.as_secs();
        if let Some(u) = self.config.unconfirmed_after {
            self.tx_timers
                .insert((t + u.as_secs() * 1000, 0, message_id.to_string()));
            forget = forget.max(u.as_secs());
        }
        self.tx_timers
            .insert((t + forget * 1000, 1, message_id.to_string()));
    }

    pub(super) fn fire_tx(&mut self, timer: (i64, u8, String), fx: &mut Effects<'_>) {
        self.tx_timers.remove(&timer);
        let (at, what, id) = timer;
        if what == 1 {
            // A refused transmission is kept `ack_horizon` after its
            // refusal, not its issue, so that the engine's resend once the
            // fault is mended (days after a refusal that itself came days
            // late) still meets it, as documented.
            let refused = (self.transmissions.get(&id))
                .filter(|t| !t.expectations.is_empty())
                .and_then(|t| t.failed_at);
            let keep_until = refused.map(|f| ms(f) + self.config.ack_horizon.as_secs() * 1000);
            if let Some(k) = keep_until.filter(|k| *k > at) {
                self.tx_timers.insert((k, 1, id));
                return;
            }
            if let Some(t) = self.transmissions.remove(&id) {
                t.unindex_failed(&id, &mut self.failed_transmissions);
                fx.delete_state(namespaces::TRANSMISSION, id);
            }
            return;
        }
        let raised_at = from_ms(at);
        let Some(t) = self.transmissions.get_mut(&id) else {
            return;
        };
        let mut any = false;
        for exp in &mut t.expectations {
            if exp.delivery == Some(DeliveryStatus::Pending)
                && !exp.alerts_raised.contains(&AlertKind::Unconfirmed)
            {
                exp.alerts_raised.push(AlertKind::Unconfirmed);
                fx.push(Effect::ExpectationChanged(exp.clone()));
                // A document that waited for its discharge is unconfirmed
                // no earlier than the discharge: stamped before it, the
                // alert preceded the expectation it is about.
                fx.push(Effect::AlertRaised(build_alert(
                    exp,
                    AlertKind::Unconfirmed,
                    raised_at.max(exp.encounter.ended_at),
                    super::transmitted_document(exp),
                )));
                any = true;
            }
        }
        if any {
            fx.put_state(namespaces::TRANSMISSION, id, &t.record());
        }
    }

    /// Rebuilds a tracker after a restart from the store's expectations
    /// (every unsettled one, and the settled ones its transmission records
    /// name; passing every stored expectation is simplest) and every
    /// auxiliary state record it holds. [`Restoring`] does the same one
    /// record at a time, for callers streaming from the store.
    pub fn restore(
        policy: Policy,
        config: TrackerConfig,
        expectations: Vec<Expectation>,
        state: Vec<StateRecord>,
    ) -> Result<Tracker, RestoreError> {
        let mut r = Restoring::new(policy, config);
        for e in &expectations {
            r.expectation(e)?;
        }
        for rec in state {
            r.record(rec)?;
        }
        for e in expectations {
            r.settled(e);
        }
        // Strict: what the streaming restore reports and goes on without
        // is an error here.
        let (tracker, dropped) = r.finish();
        match dropped.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(tracker),
        }
    }

    /// The rule a stored expectation is kept under: the policy's rule of
    /// that id and document kind when its durations gave the stored deadline
    /// and due-soon point, else a rule of the same name with the stored
    /// durations (a policy changed since, or a rule since removed), so that
    /// a restore never moves a deadline.
    fn rule_index(&mut self, e: &Expectation) -> Result<u16, RestoreError> {
        let ended = ms(e.encounter.ended_at);
        let due_after = ms(e.deadline).saturating_sub(ended);
        let due_soon = e
            .due_soon_at
            .map_or(NO_TIME, |t| ms(t).saturating_sub(ended));
        if let Some(i) = self.rules.iter().position(|r| {
            r.id == e.rule.id
                && r.document_kind == e.document_kind
                && r.due_after == due_after
                && r.due_soon == due_soon
        }) {
            return Ok(i as u16);
        }
        let i = u16::try_from(self.rules.len())
            .map_err(|_| RestoreError::TooManyRules(e.rule.id.clone()))?;
        self.rules.push(RuleInfo {
            id: e.rule.id.clone(),
            clause: e.rule.clause.clone(),
            document_kind: e.document_kind,
            due_after,
            due_soon,
        });
        Ok(i)
    }

    fn restore_record(&mut self, rec: StateRecord) -> Result<(), RestoreError> {
        let bad = |reason: String| RestoreError::BadRecord {
            namespace: rec.namespace.clone(),
            key: rec.key.clone(),
            reason,
        };
        let time = |v: &JsonText| -> Result<i64, RestoreError> {
            let s: String = v
                .decode()
                .map_err(|_| bad("expected an RFC 3339 string".into()))?;
            DateTime::parse_from_rfc3339(&s)
                .map(|d| ms(d.with_timezone(&Utc)))
                .map_err(|e| bad(format!("bad time `{s}`: {e}")))
        };
        match rec.namespace.as_str() {
            namespaces::CLOCK if rec.key == "event_time" => self.clock = Some(time(&rec.value)?),
            namespaces::CLOCK if rec.key == super::HELD_JUMP => {
                self.held_jump = Some(time(&rec.value)?)
            }
            namespaces::SEEN => {
                // The time in the key is the one its deletion will name; the
                // value repeats it for people reading the store.
                let (at, h) = parse_key_hex(&rec.key)
                    .ok_or_else(|| bad("key is not 48 lowercase hex digits".into()))?;
                // A key reused after its horizon may be stored twice (once
                // under each time) until the next sweep, or two keys may
                // share a first word: the later time is the one that judges.
                let t = self.seen.entry(h[0]).or_insert(at);
                *t = (*t).max(at);
            }
            namespaces::PENDING_DOCUMENT => {
                let p: PendingDocument = rec.value.decode().map_err(|e| bad(e.to_string()))?;
                self.insert_pending(p.upgraded());
            }
            namespaces::EARLY_ACK => {
                let held: HeldAcks = rec.value.decode().map_err(|e| bad(e.to_string()))?;
                self.early_ack_expiry
                    .insert((held.expires(&self.config), rec.key.clone()));
                self.early_acks.insert(rec.key.clone(), held);
            }
            _ => {
                return Err(RestoreError::UnknownNamespace {
                    namespace: rec.namespace,
                    key: rec.key,
                });
            }
        }
        Ok(())
    }
}

/// A tracker being rebuilt one stored row at a time: every unsettled
/// expectation first, then every auxiliary state record, then the settled
/// expectations the transmission records name ([`Restoring::wanted`],
/// [`Restoring::settled`]), then [`Restoring::finish`]. Exists so that a
/// restart with a million open expectations need not first load them all
/// as values (about a gigabyte, against some 300 bytes each in the
/// tracker): the gateway streams them from the store into this.
/// [`Tracker::restore`] is this over two vectors.
pub struct Restoring {
    t: Tracker,
    /// Transmissions whose records name their expectations by id:
    /// `(message id, the transmission without them, expectation ids)`,
    /// waiting for those expectations.
    awaiting: Vec<(String, Transmission, Vec<String>)>,
    /// The settled expectations handed over for them, by id.
    settled: HashMap<String, Expectation>,
}

impl Restoring {
    /// An empty tracker to restore into.
    pub fn new(policy: Policy, config: TrackerConfig) -> Self {
        Self {
            t: Tracker::new(policy, config),
            awaiting: Vec::new(),
            settled: HashMap::new(),
        }
    }

    /// Adds one stored expectation (ignored unless unsettled). Pass every
    /// expectation before the first state record.
    pub fn expectation(&mut self, e: &Expectation) -> Result<(), RestoreError> {
        if !e.status.is_unsettled() {
            return Ok(());
        }
        let id = pack_hex(&e.id.0).ok_or_else(|| RestoreError::BadExpectationId(e.id.0.clone()))?;
        let rule = self.t.rule_index(e)?;
        let o = self.t.compact(e, id, rule);
        self.t.insert_open(o);
        Ok(())
    }

    /// Adds one auxiliary state record. A record that fails is not taken
    /// in part, so a caller may report it and go on: each is auxiliary (a
    /// duplicate key, a document waiting for its encounter, a transmission
    /// awaiting acknowledgement, the clock), and its loss costs at most a
    /// repeated alert, an expectation that goes overdue when its document
    /// is lost, or an acknowledgement that reaches nothing.
    pub fn record(&mut self, rec: StateRecord) -> Result<(), RestoreError> {
        if rec.namespace == namespaces::TRANSMISSION {
            return self.transmission(rec);
        }
        self.t.restore_record(rec)
    }

    /// A transmission record: ready at once in the form that carries its
    /// expectations whole (stores written before [`TransmissionRecord`]),
    /// else waiting for the expectations it names.
    fn transmission(&mut self, rec: StateRecord) -> Result<(), RestoreError> {
        let bad = |reason: String| RestoreError::BadRecord {
            namespace: rec.namespace.clone(),
            key: rec.key.clone(),
            reason,
        };
        let stored: StoredTransmission = rec.value.decode().map_err(|e| bad(e.to_string()))?;
        match (stored.expectations, stored.expectation_ids) {
            (Some(expectations), None) => {
                self.t.schedule_transmission(&rec.key, stored.issued_at);
                let tx = Transmission {
                    issued_at: stored.issued_at,
                    expectations,
                    failed_at: stored.failed_at,
                    failure: stored.failure,
                    accepted_at: stored.accepted_at,
                };
                self.t.transmissions.insert(rec.key, tx);
            }
            (None, Some(ids)) => {
                let tx = Transmission {
                    issued_at: stored.issued_at,
                    expectations: Vec::with_capacity(ids.len()),
                    failed_at: stored.failed_at,
                    failure: stored.failure,
                    accepted_at: stored.accepted_at,
                };
                self.awaiting.push((rec.key, tx, ids));
            }
            _ => {
                return Err(bad(
                    "expected one of `expectation_ids` and `expectations`".into()
                ));
            }
        }
        Ok(())
    }

    /// The ids of the expectations named by the transmission records added
    /// so far, sorted, each once: after the last state record, fetch these
    /// from the store (whatever their status) and pass each to
    /// [`Restoring::settled`]. Within the acknowledgement horizon (7 days
    /// by default) these are a few tens of thousands for a large trust.
    pub fn wanted(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .awaiting
            .iter()
            .flat_map(|(_, _, ids)| ids.iter().cloned())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Adds a stored expectation a transmission record names (one of
    /// [`Restoring::wanted`]); any other is ignored at the end.
    pub fn settled(&mut self, e: Expectation) {
        self.settled.insert(e.id.0.clone(), e);
    }

    /// The restored tracker, and a [`RestoreError::MissingExpectation`] for
    /// each expectation a transmission record names that was not handed
    /// over. Such a transmission is kept with the expectations that were:
    /// an acknowledgement still reaches them, and its record is forgotten
    /// at the acknowledgement horizon as any other, so a damaged record
    /// leaves the store in due course. The loss is only that
    /// expectation's delivery state: the caller reports it and goes on.
    pub fn finish(mut self) -> (Tracker, Vec<RestoreError>) {
        let mut dropped = Vec::new();
        for (message_id, mut tx, ids) in std::mem::take(&mut self.awaiting) {
            for id in ids {
                match self.settled.get(&id) {
                    Some(e) => tx.expectations.push(e.clone()),
                    None => dropped.push(RestoreError::MissingExpectation {
                        message_id: message_id.clone(),
                        expectation: id,
                    }),
                }
            }
            self.t.schedule_transmission(&message_id, tx.issued_at);
            self.t.transmissions.insert(message_id, tx);
        }
        self.t.failed_transmissions = self
            .t
            .transmissions
            .iter()
            .flat_map(|(m, t)| {
                t.expectations
                    .iter()
                    .filter_map(failed_document)
                    .map(|d| (d.to_owned(), m.clone()))
            })
            .collect();
        self.t.drop_stale_timers();
        (self.t, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::{dead_seen_ranges, key_hex, parse_key_hex, split_key};

    #[test]
    fn stored_keys_read_back_and_order_by_time_first() {
        let h = split_key(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        for at in [0, 1, 1_736_157_600_000, i64::MAX, -1, i64::MIN] {
            let k = key_hex(at, h);
            assert_eq!(k.len(), 48);
            assert_eq!(parse_key_hex(&k), Some((at, h)), "{k}");
            // The hand-made hex is what `format!` writes.
            assert_eq!(k, format!("{:016x}{:016x}{:016x}", at as u64, h[0], h[1]));
        }
        // Later times sort after earlier ones whatever the hash.
        let (early, late) = (1_736_157_600_000, 1_736_157_600_001);
        assert!(key_hex(early, split_key(u128::MAX)) < key_hex(late, split_key(0)));
        for bad in [
            "",
            "0123456789abcdef0011223344556677",
            "0000019447f0b6000123456789abcdef001122334455667G",
            "0000019447F0B6000123456789ABCDEF0011223344556677",
            "+000019447f0b6000123456789abcdef0011223344556677",
        ] {
            assert_eq!(parse_key_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_split_key_prints_and_orders_as_the_u128() {
        let keys = [
            0u128,
            1,
            u128::from(u64::MAX),
            1 << 64,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ];
        for &k in &keys {
            assert_eq!(key_hex(0, split_key(k)), format!("{:016x}{k:032x}", 0));
        }
        for &a in &keys {
            for &b in &keys {
                assert_eq!(split_key(a).cmp(&split_key(b)), a.cmp(&b));
            }
        }
    }

    #[test]
    fn dead_ranges_hold_the_keys_before_the_horizon_and_no_other() {
        let h = split_key(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let horizon = 1_736_157_600_000;
        let held = |horizon: i64, at: i64| {
            let k = key_hex(at, h);
            dead_seen_ranges(horizon)
                .iter()
                .any(|(from, to)| from.as_str() <= k.as_str() && k.as_str() < to.as_str())
        };
        for at in [0, 1, horizon - 1, -1, i64::MIN, -1_700_000_000_000] {
            assert!(held(horizon, at), "{at} is before {horizon}");
        }
        for at in [horizon, horizon + 1, i64::MAX] {
            assert!(!held(horizon, at), "{at} is not before {horizon}");
        }
        let horizon = -1_000;
        for at in [i64::MIN, -1_001] {
            assert!(held(horizon, at), "{at} is before {horizon}");
        }
        for at in [-1_000, -1, 0, 1_736_157_600_000] {
            assert!(!held(horizon, at), "{at} is not before {horizon}");
        }
    }
}
