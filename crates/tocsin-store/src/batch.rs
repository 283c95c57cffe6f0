//! What one commit writes: the effects of a batch of inputs, the messages to
//! publish because of them, and the inputs themselves.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tocsin_event::InterfaceEvent;
use tocsin_tracker::{Alert, Effect, Expectation, StateRange, StateRecord};

use crate::StoreError;

/// The content type of the JSON bodies tocsin publishes.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A message waiting in the outbox: committed with the effects that caused
/// it, published later with confirms, so a crash between commit and publish
/// loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// `event_id` or `alert_id`; becomes the AMQP `message_id`. Unique: a
    /// second message with the same id is ignored at commit.
    pub id: String,
    /// The exchange to publish to.
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
    /// The AMQP content type.
    pub content_type: String,
    /// The body, as published.
    pub body: Vec<u8>,
}

impl OutboxMessage {
    /// An alert, routed as `<kind>.<document_kind>.<encounter_kind>`.
    pub fn for_alert(exchange: &str, alert: &Alert) -> Result<Self, StoreError> {
        let body = serde_json::to_vec(alert).map_err(|source| StoreError::Serialise {
            what: "alert",
            id: alert.alert_id.clone(),
            source,
        })?;
        Ok(Self {
            id: alert.alert_id.clone(),
            exchange: exchange.to_string(),
            routing_key: format!(
                "{}.{}.{}",
                alert.kind.as_str(),
                alert.document_kind.as_str(),
                alert.encounter.kind.as_str()
            ),
            content_type: JSON_CONTENT_TYPE.to_string(),
            body,
        })
    }

    /// A normalised interface event, routed as `<format>.<type>`.
    pub fn for_event(exchange: &str, event: &InterfaceEvent) -> Result<Self, StoreError> {
        let body = serde_json::to_vec(event).map_err(|source| StoreError::Serialise {
            what: "event",
            id: event.event_id.to_string(),
            source,
        })?;
        Ok(Self {
            id: event.event_id.to_string(),
            exchange: exchange.to_string(),
            routing_key: format!(
                "{}.{}",
                event.source.format.as_str(),
                event.event_type.as_str()
            ),
            content_type: JSON_CONTENT_TYPE.to_string(),
            body,
        })
    }
}

/// An outbox message not yet confirmed by the broker, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOutbox {
    /// Position in the outbox (commit order); pass it to
    /// [`crate::Store::outbox_mark_published`] once the broker confirms.
    pub seq: i64,
    /// The message.
    pub message: OutboxMessage,
}

/// What became of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputOutcome {
    /// Normalised and applied.
    Ok,
    /// Refused (could not be normalised); dead-lettered or reported.
    Rejected,
}

impl InputOutcome {
    /// The name stored in the `inputs` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
        }
    }
}

/// A processed input, kept for audit and to recognise a redelivery of an
/// input already committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// The input's id: the AMQP message id, or `file:position` in a replay.
    pub id: String,
    /// What became of it.
    pub outcome: InputOutcome,
    /// For a rejected input, the reason (never patient data).
    pub reason: Option<String>,
}

/// Everything one commit writes, atomically.
///
/// Build it with [`Batch::push_effect`] / [`Batch::from_effects`] and the
/// `push_*` methods: they coalesce repeated writes to the same expectation or
/// state record (the last wins) and keep puts and deletes of one state record
/// disjoint, so the commit writes each row once. A commit applies
/// `state_range_deletes`, then `state_deletes`, then `state_puts`; code that
/// pushes onto the vectors directly must keep puts out of the deletes
/// itself.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Expectations created or changed (stored whole; upserted by id).
    pub expectations: Vec<Expectation>,
    /// Alerts raised (inserted; a repeated `alert_id` is ignored).
    pub alerts: Vec<Alert>,
    /// Auxiliary state records to put.
    pub state_puts: Vec<StateRecord>,
    /// Auxiliary state records to delete, as `(namespace, key)`.
    pub state_deletes: Vec<(String, String)>,
    /// Ranges of auxiliary state records to delete.
    pub state_range_deletes: Vec<StateRange>,
    /// Messages to publish (a repeated id is ignored).
    pub outbox: Vec<OutboxMessage>,
    /// The inputs whose effects these are.
    pub inputs: Vec<InputRecord>,
    /// Webhook deliveries of the batch's alerts (a repeated subscriber and
    /// alert id is ignored).
    pub deliveries: Vec<crate::QueuedDelivery>,
    /// Bookkeeping for the `push_*` methods; leave it at its default (struct
    /// literals take `..Default::default()`).
    pub index: BatchIndex,
}

/// Where the `push_*` methods of a [`Batch`] find earlier writes to the same
/// expectation or state record. Opaque.
#[derive(Debug, Clone, Default)]
pub struct BatchIndex {
    expectations: HashMap<String, usize>,
    /// Position of each put, by namespace then key: looked up by `&str`, so
    /// a lookup builds no key (a replay pushes a put for nearly every event).
    puts: HashMap<String, HashMap<String, usize>>,
    /// How many positions `puts` holds.
    put_entries: usize,
}

impl BatchIndex {
    fn put_position(&self, namespace: &str, key: &str) -> Option<usize> {
        self.puts.get(namespace)?.get(key).copied()
    }

    fn set_put_position(&mut self, namespace: &str, key: &str, i: usize) {
        let fresh = match self.puts.get_mut(namespace) {
            Some(keys) => keys.insert(key.to_string(), i).is_none(),
            None => {
                let keys = HashMap::from([(key.to_string(), i)]);
                self.puts.insert(namespace.to_string(), keys);
                true
            }
        };
        if fresh {
            self.put_entries += 1;
        }
    }

    fn take_put_position(&mut self, namespace: &str, key: &str) -> Option<usize> {
        let i = self.puts.get_mut(namespace)?.remove(key)?;
        self.put_entries -= 1;
        Some(i)
    }

    /// Forgets every position, keeping the maps' capacity for the next batch.
    fn clear_puts(&mut self) {
        for keys in self.puts.values_mut() {
            keys.clear();
        }
        self.put_entries = 0;
    }
}

impl Batch {
    /// A batch holding the given effects.
    pub fn from_effects(effects: impl IntoIterator<Item = Effect>) -> Self {
        let mut batch = Self::default();
        batch.extend_effects(effects);
        batch
    }

    /// Adds effects in the order the tracker returned them.
    pub fn extend_effects(&mut self, effects: impl IntoIterator<Item = Effect>) {
        for effect in effects {
            self.push_effect(effect);
        }
    }

    /// Adds one effect. Later effects on the same expectation or state record
    /// supersede earlier ones in the same batch.
    pub fn push_effect(&mut self, effect: Effect) {
        match effect {
            Effect::ExpectationChanged(e) => self.push_expectation(e),
            Effect::AlertRaised(a) => self.alerts.push(a),
            Effect::StatePut(r) => self.push_state_put(r),
            Effect::StateDeleted { namespace, key } => self.push_state_delete(namespace, key),
            Effect::StateRangeDeleted(r) => self.push_state_range_delete(r),
        }
    }

    /// Adds an expectation's new state, replacing an earlier state of the same
    /// expectation in this batch.
    pub fn push_expectation(&mut self, e: Expectation) {
        if let Some(&i) = self.index.expectations.get(&e.id.0)
            && self.expectations.get(i).is_some_and(|old| old.id == e.id)
        {
            self.expectations[i] = e;
            return;
        }
        self.index
            .expectations
            .insert(e.id.0.clone(), self.expectations.len());
        self.expectations.push(e);
    }

    /// Adds a state put, replacing an earlier put of the same record in this
    /// batch. An earlier delete stays: deletes are applied first.
    pub fn push_state_put(&mut self, r: StateRecord) {
        if let Some(i) = self.index.put_position(&r.namespace, &r.key)
            && self
                .state_puts
                .get(i)
                .is_some_and(|old| old.namespace == r.namespace && old.key == r.key)
        {
            self.state_puts[i] = r;
            return;
        }
        self.index
            .set_put_position(&r.namespace, &r.key, self.state_puts.len());
        self.state_puts.push(r);
    }

    /// Adds a state delete, cancelling an earlier put of the same record in
    /// this batch.
    pub fn push_state_delete(&mut self, namespace: String, key: String) {
        if let Some(i) = self.index.take_put_position(&namespace, &key)
            && self
                .state_puts
                .get(i)
                .is_some_and(|old| old.namespace == namespace && old.key == key)
        {
            self.state_puts.swap_remove(i);
            if let Some(moved) = self.state_puts.get(i) {
                self.index.set_put_position(&moved.namespace, &moved.key, i);
            }
        } else if self.index.put_entries != self.state_puts.len() {
            // Puts were pushed directly onto the vector, so the index cannot
            // be trusted: rescan. When every put came through
            // `push_state_put` the index is exact, and a record put in no
            // earlier write of this batch (the common case: expiring a key
            // written long ago) costs one lookup, not a scan of the batch.
            self.state_puts
                .retain(|old| !(old.namespace == namespace && old.key == key));
            self.rebuild_put_index();
        }
        self.state_deletes.push((namespace, key));
    }

    /// Adds a range delete, cancelling the earlier puts in this batch that
    /// fall in it (later ones stand: the range goes first at commit). Rare
    /// (the tracker sweeps its duplicate keys a few times a day), so the
    /// batch's puts are scanned.
    pub fn push_state_range_delete(&mut self, r: StateRange) {
        let before = self.state_puts.len();
        self.state_puts
            .retain(|p| !r.contains(&p.namespace, &p.key));
        if self.state_puts.len() != before {
            self.rebuild_put_index();
        }
        self.state_range_deletes.push(r);
    }

    fn rebuild_put_index(&mut self) {
        self.index.clear_puts();
        for (i, r) in self.state_puts.iter().enumerate() {
            self.index.set_put_position(&r.namespace, &r.key, i);
        }
    }

    /// Adds a message to publish.
    pub fn push_outbox(&mut self, m: OutboxMessage) {
        self.outbox.push(m);
    }

    /// Records a processed input.
    pub fn push_input(&mut self, r: InputRecord) {
        self.inputs.push(r);
    }

    /// Queues a webhook delivery of one of the batch's alerts.
    pub fn push_delivery(&mut self, d: crate::QueuedDelivery) {
        self.deliveries.push(d);
    }

    /// True when a commit would write nothing.
    pub fn is_empty(&self) -> bool {
        self.expectations.is_empty()
            && self.alerts.is_empty()
            && self.state_puts.is_empty()
            && self.state_deletes.is_empty()
            && self.state_range_deletes.is_empty()
            && self.outbox.is_empty()
            && self.inputs.is_empty()
            && self.deliveries.is_empty()
    }

    /// Rows a commit writes (for the batch-size metric).
    pub fn len(&self) -> usize {
        self.expectations.len()
            + self.alerts.len()
            + self.state_puts.len()
            + self.state_deletes.len()
            + self.state_range_deletes.len()
            + self.outbox.len()
            + self.inputs.len()
            + self.deliveries.len()
    }

    /// Empties the batch, keeping its allocations for the next one.
    pub fn clear(&mut self) {
        self.expectations.clear();
        self.alerts.clear();
        self.state_puts.clear();
        self.state_deletes.clear();
        self.state_range_deletes.clear();
        self.outbox.clear();
        self.inputs.clear();
        self.deliveries.clear();
        self.index.expectations.clear();
        self.index.clear_puts();
    }

    /// The expectations to write, the last state of each id only (for
    /// batches whose vector was filled directly).
    pub(crate) fn distinct_expectations(&self) -> Vec<&Expectation> {
        last_of_each(&self.expectations, |e| e.id.0.as_str())
    }

    /// The state puts to write, the last of each key only.
    pub(crate) fn distinct_state_puts(&self) -> Vec<&StateRecord> {
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        let mut out: Vec<&StateRecord> = Vec::with_capacity(self.state_puts.len());
        for r in &self.state_puts {
            match seen.get(&(r.namespace.as_str(), r.key.as_str())) {
                Some(&i) => out[i] = r,
                None => {
                    seen.insert((r.namespace.as_str(), r.key.as_str()), out.len());
                    out.push(r);
                }
            }
        }
        out
    }
}

fn last_of_each<'a, T>(items: &'a [T], key: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        match seen.get(key(item)) {
            Some(&i) => out[i] = item,
            None => {
                seen.insert(key(item), out.len());
                out.push(item);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ns: &str, key: &str, v: i64) -> StateRecord {
        StateRecord {
            namespace: ns.to_string(),
            key: key.to_string(),
            value: tocsin_tracker::JsonText::of(&v),
        }
    }

    fn keys(b: &Batch) -> Vec<(String, i64)> {
        let mut k: Vec<_> = b
            .state_puts
            .iter()
            .map(|r| (r.key.clone(), r.value.decode().unwrap_or(-1)))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn a_delete_cancels_an_earlier_put_and_keeps_the_index_exact() {
        let mut b = Batch::default();
        b.push_state_put(put("seen", "a", 1));
        b.push_state_put(put("seen", "b", 2));
        b.push_state_put(put("seen", "c", 3));
        b.push_state_delete("seen".into(), "a".into());
        assert_eq!(keys(&b), vec![("b".into(), 2), ("c".into(), 3)]);
        // The record moved into the freed slot is still found by a later put.
        b.push_state_put(put("seen", "c", 30));
        assert_eq!(keys(&b), vec![("b".into(), 2), ("c".into(), 30)]);
        assert_eq!(b.state_puts.len(), 2);
        assert_eq!(b.state_deletes, vec![("seen".into(), "a".into())]);
    }

    #[test]
    fn deleting_a_record_not_put_in_the_batch_leaves_the_puts_alone() {
        let mut b = Batch::default();
        b.push_state_put(put("seen", "a", 1));
        b.push_state_delete("seen".into(), "old".into());
        b.push_state_delete("clock".into(), "a".into());
        assert_eq!(keys(&b), vec![("a".into(), 1)]);
        assert_eq!(b.state_deletes.len(), 2);
        // Still coalescing afterwards.
        b.push_state_put(put("seen", "a", 5));
        assert_eq!(keys(&b), vec![("a".into(), 5)]);
    }

    #[test]
    fn puts_pushed_directly_onto_the_vector_are_still_cancelled() {
        let mut b = Batch::default();
        b.push_state_put(put("seen", "a", 1));
        b.state_puts.push(put("seen", "direct", 2));
        b.push_state_delete("seen".into(), "direct".into());
        assert_eq!(keys(&b), vec![("a".into(), 1)]);
        b.push_state_put(put("seen", "a", 3));
        assert_eq!(keys(&b), vec![("a".into(), 3)]);
    }
}
