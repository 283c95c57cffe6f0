//! One connection's worth of consuming: batches in, effects committed,
//! inputs acknowledged, outbox published.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tocsin_amqp::{
    BatchConsumer, Delivery, InputFormat, OutgoingMessage, Publisher, Session, format_hint,
};
use tocsin_ingest::{ContentHint, IngestConfig, detect, ingest};
use tocsin_store::{Batch, InputOutcome, InputRecord, OutboxMessage};
use tocsin_tracker::{Effect, Tracker};

use super::StoreHandle;
use super::shutdown::Stop;
use crate::config::Config;
use crate::internal_events::{
    AlertRaised, BatchCommitted, ClockAdvanced, DocumentSettled, EventApplied, MessageReceived,
    MessageRejected, Metrics, OutboxPublishFailed, OutboxPublished, StoreFailed, StoreRecovered,
    TrackerObserved,
};

/// How far ahead of the wall clock a message's time may move the engine's
/// clock (clock skew between the trust's systems).
const FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Most outbox messages published in one confirmed round.
const OUTBOX_ROUND: usize = 1000;

/// First and longest wait before publishing again what the broker refused
/// (nacked or returned): consuming goes on meanwhile.
const OUTBOX_RETRY_MIN: Duration = Duration::from_millis(200);
const OUTBOX_RETRY_MAX: Duration = Duration::from_secs(30);

/// Why [`Pipeline::serve`] returned.
pub enum Ended {
    /// A stop was asked for; `clean` when everything in hand was committed,
    /// acknowledged and published within the grace period.
    Shutdown {
        /// Whether the shutdown finished its work in time.
        clean: bool,
    },
    /// The broker link was lost; reconnect and serve again.
    LinkLost(String),
}

/// A message that could not be normalised, to dead-letter after the commit.
struct Rejection {
    index: usize,
    reason: String,
    location: Option<String>,
}

/// The consuming loop's state, kept across reconnections.
pub struct Pipeline {
    tracker: Tracker,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    consuming: Arc<AtomicBool>,
    ingest: IngestConfig,
    publish_events: bool,
    events_exchange: String,
    alerts_exchange: String,
    batch_size: usize,
    flush_interval: Duration,
    /// After the broker refused outbox messages: not before this instant,
    /// and the wait after the next refusal.
    outbox_hold: Option<Instant>,
    outbox_delay: Duration,
    /// Outbox rows the broker confirmed whose marking failed (the store
    /// briefly away): marked before anything is published again.
    unmarked: Vec<i64>,
    /// Which webhook subscribers receive each alert (queued in its commit).
    router: tocsin_delivery::Router,
}

impl Pipeline {
    /// Prepares the pipeline around a restored tracker.
    pub fn new(
        config: &Config,
        tracker: Tracker,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        consuming: Arc<AtomicBool>,
    ) -> Self {
        Self {
            tracker,
            store,
            metrics,
            consuming,
            ingest: config.ingest.clone(),
            publish_events: config.events.publish,
            events_exchange: config.amqp.events_exchange.clone(),
            alerts_exchange: config.amqp.alerts_exchange.clone(),
            batch_size: config.amqp.batch_size,
            flush_interval: config.amqp.flush_interval(),
            outbox_hold: None,
            outbox_delay: OUTBOX_RETRY_MIN,
            unmarked: Vec::new(),
            router: tocsin_delivery::Router::new(config.delivery.webhooks.clone()),
        }
    }

    /// Serves one broker session until the link is lost or a stop is asked.
    pub async fn serve(&mut self, session: &Session, stop: &mut Stop, grace: Duration) -> Ended {
        let (mut consumer, publisher) = match open(session).await {
            Ok(pair) => pair,
            Err(e) => return Ended::LinkLost(e.to_string()),
        };
        // Whatever an earlier run committed but did not publish goes first.
        if let Err(e) = self.flush_outbox(&publisher).await {
            return Ended::LinkLost(e);
        }
        self.consuming.store(true, Ordering::SeqCst);
        let ended = loop {
            if stop.is_requested() {
                break self.shut_down(&mut consumer, &publisher, grace).await;
            }
            let batch = match consumer
                .next_batch(self.batch_size, self.flush_interval)
                .await
            {
                Ok(b) => b,
                Err(e) => break Ended::LinkLost(e.to_string()),
            };
            let step = if batch.is_empty() {
                self.idle(&mut consumer).await
            } else {
                self.process(&mut consumer, batch).await
            };
            if let Err(e) = step {
                break Ended::LinkLost(e);
            }
            if let Err(e) = self.flush_outbox(&publisher).await {
                break Ended::LinkLost(e);
            }
        };
        self.consuming.store(false, Ordering::SeqCst);
        ended
    }

    /// Stop consuming, finish what was received, flush the outbox.
    async fn shut_down(
        &mut self,
        consumer: &mut BatchConsumer,
        publisher: &Publisher,
        grace: Duration,
    ) -> Ended {
        let work = async {
            consumer.stop().await.map_err(|e| e.to_string())?;
            loop {
                let rest = consumer
                    .next_batch(self.batch_size, Duration::ZERO)
                    .await
                    .map_err(|e| e.to_string())?;
                if rest.is_empty() {
                    break;
                }
                self.process(consumer, rest).await?;
            }
            // One more try at whatever the broker refused earlier.
            self.outbox_hold = None;
            self.flush_outbox(publisher).await
        };
        match tokio::time::timeout(grace, work).await {
            Ok(Ok(())) => Ended::Shutdown { clean: true },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "shutdown could not finish; unacknowledged inputs will be redelivered");
                Ended::Shutdown { clean: false }
            }
            Err(_) => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "shutdown timed out; unacknowledged inputs will be redelivered"
                );
                Ended::Shutdown { clean: false }
            }
        }
    }

    /// No input arrived for a flush interval. Once the broker confirms the
    /// queues are drained, the clock follows the wall clock and fires what
    /// has fallen due. An empty batch alone is not proof: after an outage
    /// the broker may deliver a backlog slower than the flush interval, and
    /// moving the clock to now then would raise false overdue alerts (and
    /// make the rest of the backlog look stale).
    async fn idle(&mut self, consumer: &mut BatchConsumer) -> Result<(), String> {
        if consumer.open_deliveries() > 0 {
            return Ok(());
        }
        let now = Utc::now();
        let due = self.tracker.next_deadline().is_some_and(|d| d <= now);
        // Drained: the engine's clock follows the wall clock (it is moved
        // only when a timer falls due, but nothing lies between), so no lag.
        ClockAdvanced { lag_seconds: 0.0 }.emit(&self.metrics);
        if !due {
            return Ok(());
        }
        if consumer.backlog().await.map_err(|e| e.to_string())? > 0 {
            return Ok(());
        }
        // Whatever the broker delivered before answering goes first.
        let late = consumer
            .next_batch(self.batch_size, Duration::ZERO)
            .await
            .map_err(|e| e.to_string())?;
        if !late.is_empty() {
            return self.process(consumer, late).await;
        }
        let effects = self.tracker.advance_to(now);
        let mut batch = Batch::default();
        self.absorb(effects, &mut batch);
        self.commit(&batch).await;
        Ok(())
    }

    /// Normalises and applies a batch, commits it, then settles the inputs.
    async fn process(
        &mut self,
        consumer: &mut BatchConsumer,
        deliveries: Vec<Delivery>,
    ) -> Result<(), String> {
        let received = Instant::now();
        // A message stamped in the future may not move the clock past the
        // wall clock (plus a little skew between systems).
        self.tracker.set_ceiling(Some(Utc::now() + FUTURE_SKEW));
        let settled = self.already_committed(&deliveries).await;
        let mut batch = Batch::default();
        let mut rejections = Vec::new();
        for (index, delivery) in deliveries.iter().enumerate() {
            if settled.contains(&index) {
                continue;
            }
            if let Some(r) = self.apply_delivery(index, delivery, &mut batch) {
                rejections.push(r);
            }
        }
        // Dead-letter copies go before the commit, so that a rejected input
        // found in the store on redelivery was dead-lettered already. If a
        // copy fails, the batch's effects are committed all the same, but
        // not the records of the inputs not yet copied, so that their
        // redelivery dead-letters them.
        let mut copy_failed = None;
        for (copied, r) in rejections.iter().enumerate() {
            let delivery = &deliveries[r.index];
            if let Err(e) = consumer
                .copy_to_dead_letter(delivery, &r.reason, r.location.as_deref())
                .await
            {
                let uncopied: HashSet<String> = rejections[copied..]
                    .iter()
                    .map(|r| input_id(&deliveries[r.index]))
                    .collect();
                batch.inputs.retain(|i| !uncopied.contains(&i.id));
                copy_failed = Some(e.to_string());
                break;
            }
        }
        self.commit(&batch).await;
        BatchCommitted {
            inputs: deliveries.len(),
            receive_to_commit: received.elapsed(),
        }
        .emit(&self.metrics);
        if let Some(e) = copy_failed {
            return Err(e);
        }
        if let Some(last) = deliveries.last() {
            consumer
                .ack_through(last)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.report_clock();
        Ok(())
    }

    /// Indexes of redelivered inputs whose effects are already committed
    /// (their acknowledgement was lost with a crash or the link): they are
    /// acknowledged with the batch without being applied or dead-lettered
    /// again. Only redeliveries are looked up, so an id the integration
    /// engine reuses for a new message is never taken for a processed one.
    /// If the store cannot say, everything is processed again, which is
    /// safe (effects and the outbox are idempotent by id).
    async fn already_committed(&self, deliveries: &[Delivery]) -> HashSet<usize> {
        let redelivered: Vec<(usize, String)> = deliveries
            .iter()
            .enumerate()
            .filter(|(_, d)| d.redelivered())
            .map(|(i, d)| (i, input_id(d)))
            .collect();
        if redelivered.is_empty() {
            return HashSet::new();
        }
        let ids: Vec<String> = redelivered.iter().map(|(_, id)| id.clone()).collect();
        match self.store.call(move |s| s.inputs_processed(&ids)).await {
            Ok(found) => {
                let found: HashSet<String> = found.into_iter().collect();
                let settled: HashSet<usize> = redelivered
                    .into_iter()
                    .filter(|(_, id)| found.contains(id))
                    .map(|(i, _)| i)
                    .collect();
                if !settled.is_empty() {
                    tracing::debug!(
                        count = settled.len(),
                        "redelivered inputs already committed; acknowledging them without processing again"
                    );
                }
                settled
            }
            Err(error) => {
                StoreFailed {
                    operation: "inputs lookup",
                    error: &error,
                    transient: error.is_transient(),
                }
                .emit(&self.metrics);
                HashSet::new()
            }
        }
    }

    /// Normalises one delivery into the batch; returns its rejection, if any.
    fn apply_delivery(
        &mut self,
        index: usize,
        delivery: &Delivery,
        batch: &mut Batch,
    ) -> Option<Rejection> {
        let hint = format_hint(delivery.content_type())
            .map(content_hint)
            .or_else(|| detect(delivery.body()).ok());
        MessageReceived {
            format: format_label(hint),
        }
        .emit(&self.metrics);
        let mut rejection: Option<Rejection> = None;
        let mut rejected_units = 0usize;
        for unit in ingest(delivery.body(), hint, &self.ingest) {
            match unit.outcome {
                Ok(events) => {
                    for event in events {
                        if self.publish_events {
                            push_outbox(
                                batch,
                                OutboxMessage::for_event(&self.events_exchange, &event),
                            );
                        }
                        let effects = self.tracker.apply(&event);
                        EventApplied { event: &event }.emit(&self.metrics);
                        self.absorb(effects, batch);
                    }
                }
                Err(e) => {
                    rejected_units += 1;
                    let location = e.location();
                    MessageRejected {
                        reason: e.reason_code(),
                        location: location.as_deref(),
                        delivery_tag: delivery.delivery_tag(),
                    }
                    .emit(&self.metrics);
                    if rejection.is_none() {
                        rejection = Some(Rejection {
                            index,
                            reason: format!("{}: {} ({})", e.reason_code(), e, unit.position),
                            location,
                        });
                    }
                }
            }
        }
        if let Some(r) = rejection.as_mut()
            && rejected_units > 1
        {
            r.reason.push_str(&format!(
                "; {rejected_units} units of this message were rejected"
            ));
        }
        batch.push_input(InputRecord {
            id: input_id(delivery),
            outcome: if rejection.is_some() {
                InputOutcome::Rejected
            } else {
                InputOutcome::Ok
            },
            reason: rejection.as_ref().map(|r| r.reason.clone()),
        });
        rejection
    }

    /// Adds a tracker's effects to a batch, queueing alerts for publishing.
    fn absorb(&self, effects: Vec<Effect>, batch: &mut Batch) {
        for effect in effects {
            if let Effect::ExpectationChanged(e) = &effect
                && let Some(settled) = DocumentSettled::from_change(e)
            {
                settled.emit(&self.metrics);
            }
            if let Effect::AlertRaised(alert) = &effect {
                AlertRaised { alert }.emit(&self.metrics);
                push_outbox(
                    batch,
                    OutboxMessage::for_alert(&self.alerts_exchange, alert),
                );
                match self.router.plan(alert) {
                    Ok(deliveries) => deliveries.into_iter().for_each(|d| batch.push_delivery(d)),
                    // As for the outbox: say so loudly rather than lose it.
                    Err(e) => {
                        tracing::error!(error = %e, "cannot queue an alert for webhook delivery")
                    }
                }
            }
            batch.push_effect(effect);
        }
    }

    /// Commits a batch, retrying for as long as the store's failure is
    /// transient. A permanent failure is a bug or a broken database: the
    /// process exits so that a restart rebuilds the tracker from the store
    /// (the inputs, unacknowledged, are redelivered).
    async fn commit(&self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            let b = batch.clone();
            match self.store.call(move |s| s.commit(&b)).await {
                Ok(()) => {
                    StoreRecovered.emit(&self.metrics);
                    TrackerObserved {
                        tracker: &self.tracker,
                    }
                    .emit(&self.metrics);
                    return;
                }
                Err(error) => {
                    let transient = error.is_transient();
                    StoreFailed {
                        operation: "commit",
                        error: &error,
                        transient,
                    }
                    .emit(&self.metrics);
                    if !transient {
                        tracing::error!(
                            "exiting: a restart rebuilds the state from the store and the inputs are redelivered"
                        );
                        std::process::exit(3);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Publishes everything pending in the outbox with confirms, marking
    /// published what the broker confirmed. What it refused (nacked, say a
    /// bound queue at its length limit with `reject-publish`) stays pending
    /// and is tried again after a growing wait, while consuming goes on: a
    /// refusing broker delays publishing but never wedges the loop. An
    /// error is a lost link.
    ///
    /// Delivery is at least once: from the moment the broker routes a
    /// message until its row is marked published, a crash (or a lost link,
    /// which loses the confirms) leaves it pending, and it is published
    /// again on restart. That is at most the one round in flight (up to
    /// `OUTBOX_ROUND` messages, in practice one batch's events and alerts);
    /// subscribers drop the copies by `message_id` (the event or alert id).
    /// The kill -9 tests measure it (tests/gateway_crash.rs).
    async fn flush_outbox(&mut self, publisher: &Publisher) -> Result<(), String> {
        if self.outbox_hold.is_some_and(|t| Instant::now() < t) || !self.mark_unmarked().await {
            return Ok(());
        }
        loop {
            let pending = match self.store.call(|s| s.outbox_pending(OUTBOX_ROUND)).await {
                Ok(p) => p,
                Err(error) => {
                    // The next flush retries; inputs are not held back by it.
                    StoreFailed {
                        operation: "outbox read",
                        error: &error,
                        transient: error.is_transient(),
                    }
                    .emit(&self.metrics);
                    return Ok(());
                }
            };
            if pending.is_empty() {
                self.metrics.outbox_pending.set(0);
                return Ok(());
            }
            let messages: Vec<OutgoingMessage> = pending
                .iter()
                .map(|p| OutgoingMessage {
                    exchange: p.message.exchange.clone(),
                    routing_key: p.message.routing_key.clone(),
                    message_id: p.message.id.clone(),
                    content_type: Some(p.message.content_type.clone()),
                    body: p.message.body.clone(),
                    headers: None,
                    mandatory: false,
                })
                .collect();
            let outcomes = match publisher.publish_each_confirmed(&messages).await {
                Ok(o) => o,
                Err(error) => {
                    OutboxPublishFailed { error: &error }.emit(&self.metrics);
                    return Err(error.to_string());
                }
            };
            let mut seqs = Vec::with_capacity(pending.len());
            let mut refused = None;
            for (p, outcome) in pending.iter().zip(outcomes) {
                match outcome {
                    Ok(()) => seqs.push(p.seq),
                    Err(error) => {
                        refused.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = &refused {
                OutboxPublishFailed { error }.emit(&self.metrics);
                self.outbox_hold = Some(Instant::now() + self.outbox_delay);
                self.outbox_delay = (self.outbox_delay * 2).min(OUTBOX_RETRY_MAX);
            } else {
                self.outbox_hold = None;
                self.outbox_delay = OUTBOX_RETRY_MIN;
            }
            if seqs.is_empty() {
                return Ok(());
            }
            let count = seqs.len();
            let confirmed = seqs.clone();
            let marked = self
                .store
                .call(move |s| {
                    s.outbox_mark_published(&seqs)?;
                    s.outbox_len()
                })
                .await;
            match marked {
                Ok(left) => {
                    OutboxPublished {
                        count,
                        pending: left,
                    }
                    .emit(&self.metrics);
                    if refused.is_some() {
                        return Ok(());
                    }
                }
                Err(error) => {
                    StoreFailed {
                        operation: "outbox mark",
                        error: &error,
                        transient: error.is_transient(),
                    }
                    .emit(&self.metrics);
                    // The broker has them: mark them before publishing
                    // anything again, rather than publish them twice.
                    self.unmarked.extend(confirmed);
                    return Ok(());
                }
            }
        }
    }

    /// Marks what the broker confirmed but the store could not record at
    /// the time; false while the store still fails.
    async fn mark_unmarked(&mut self) -> bool {
        if self.unmarked.is_empty() {
            return true;
        }
        let seqs = self.unmarked.clone();
        match self
            .store
            .call(move |s| s.outbox_mark_published(&seqs))
            .await
        {
            Ok(()) => {
                self.unmarked.clear();
                true
            }
            Err(error) => {
                StoreFailed {
                    operation: "outbox mark",
                    error: &error,
                    transient: error.is_transient(),
                }
                .emit(&self.metrics);
                false
            }
        }
    }

    fn report_clock(&self) {
        if let Some(clock) = self.tracker.clock() {
            let lag = (Utc::now() - clock).num_milliseconds() as f64 / 1000.0;
            ClockAdvanced { lag_seconds: lag }.emit(&self.metrics);
        }
    }
}

async fn open(session: &Session) -> Result<(BatchConsumer, Publisher), tocsin_amqp::AmqpError> {
    let publisher = session.publisher().await?;
    let consumer = session.consumer().await?;
    Ok((consumer, publisher))
}

fn push_outbox(batch: &mut Batch, message: Result<OutboxMessage, tocsin_store::StoreError>) {
    match message {
        Ok(m) => batch.push_outbox(m),
        // Serialising our own types cannot fail in practice; if it ever
        // does, say so loudly rather than lose the message silently.
        Err(e) => tracing::error!(error = %e, "cannot queue a message for publishing"),
    }
}

/// The input's identity for the `inputs` audit table: its AMQP message id,
/// else a hash of its body.
fn input_id(delivery: &Delivery) -> String {
    match delivery.message_id() {
        Some(id) if !id.is_empty() => format!("amqp:{id}"),
        _ => {
            let digest = Sha256::digest(delivery.body());
            format!("sha256:{}", hex::encode(&digest[..16]))
        }
    }
}

fn content_hint(f: InputFormat) -> ContentHint {
    match f {
        InputFormat::Hl7 => ContentHint::Hl7,
        InputFormat::FhirJson => ContentHint::FhirJson,
        InputFormat::Ndjson => ContentHint::Ndjson,
        InputFormat::FhirXml => ContentHint::FhirXml,
    }
}

fn format_label(hint: Option<ContentHint>) -> &'static str {
    match hint {
        Some(ContentHint::Hl7) => "hl7v2",
        Some(ContentHint::FhirJson) => "fhir-json",
        Some(ContentHint::Ndjson) => "ndjson",
        Some(ContentHint::FhirXml) => "fhir-xml",
        None => "unknown",
    }
}
