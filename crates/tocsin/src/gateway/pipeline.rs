//! One connection's worth of consuming: batches in, effects committed,
//! inputs acknowledged, outbox published.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tocsin_amqp::{BatchConsumer, Delivery, InputFormat, Receipt, Session, format_hint};
use tocsin_ingest::{ContentHint, IngestConfig, detect, ingest_units};
use tocsin_store::{Batch, InputOutcome, InputRecord, OutboxMessage};
use tocsin_tracker::{Effect, Tracker};

use super::StoreHandle;
use super::events::EventPacker;
use super::outbox::{Relay, RelayHandle};
use super::shutdown::{Budget, Stop};
use crate::config::Config;
use crate::internal_events::{
    AlertRaised, BatchCommitted, ClockAdvanced, DocumentSettled, EventApplied, InputQueueHeld,
    InputQueueReleased, MessageReceived, MessageRejected, Metrics, PipelineStage, StageTimed,
    StoreFailed, StoreRecovered, TrackerObserved,
};

/// How far ahead of the wall clock a message's time may move the engine's
/// clock (clock skew between the trust's systems).
const FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// At a stop, how long no delivery may come before the input queues are
/// taken to be empty (the broker's credit then cannot be used up): this
/// or the flush interval, whichever is longer.
const STOP_QUIET: Duration = Duration::from_millis(100);

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

/// How often a gateway waiting for other consumers of its input queues to
/// go asks again.
const QUEUE_RECHECK: Duration = Duration::from_secs(1);

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
    /// Packs the events to publish, when they are published.
    events: Option<EventPacker>,
    alerts_exchange: String,
    batch_size: usize,
    flush_interval: Duration,
    /// The outbox relay's state between sessions (`None` while it runs).
    relay: Option<Relay>,
    /// The running relay of the current session.
    relay_handle: Option<RelayHandle>,
    /// Which webhook subscribers receive each alert (queued in its commit).
    router: tocsin_delivery::Router,
    /// The last batch's commit, running on the store's thread while the
    /// next batch is normalised and applied; at most one at a time.
    in_flight: Option<InFlight>,
}

/// A batch whose commit is under way: its inputs are acknowledged once it
/// lands ([`Pipeline::settle`]), never before.
struct InFlight {
    /// The commit; it returns the time from receiving the batch's first
    /// input to the commit.
    commit: tokio::task::JoinHandle<Duration>,
    /// The batch's deliveries, acknowledged exactly once it is committed
    /// (none after a failed dead-letter copy).
    receipt: Option<Receipt>,
    inputs: usize,
    has_outbox: bool,
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
            relay: Some(Relay::new(store.clone(), metrics.clone())),
            relay_handle: None,
            tracker,
            store,
            metrics,
            consuming,
            ingest: config.ingest.clone(),
            events: config.events.publish.then(|| {
                EventPacker::new(config.events.format, config.amqp.events_exchange.clone())
            }),
            alerts_exchange: config.amqp.alerts_exchange.clone(),
            batch_size: config.amqp.batch_size,
            flush_interval: config.amqp.flush_interval(),
            router: tocsin_delivery::Router::new(config.delivery.webhooks.clone()),
            in_flight: None,
        }
    }

    /// Serves one broker session until the link is lost or a stop is asked.
    pub async fn serve(&mut self, session: &Session, stop: &mut Stop, budget: Budget) -> Ended {
        if let Err(ended) = self.wait_for_input_queues(session, stop).await {
            return ended;
        }
        let (mut consumer, publisher) = match open(session).await {
            Ok(pair) => pair,
            Err(e) => return Ended::LinkLost(e.to_string()),
        };
        // The relay publishes whatever an earlier run committed but did not
        // publish first, then what each commit queues, on its own channel.
        let relay = self
            .relay
            .take()
            .unwrap_or_else(|| Relay::new(self.store.clone(), self.metrics.clone()));
        self.relay_handle = Some(relay.spawn(publisher));
        self.consuming.store(true, Ordering::SeqCst);
        let mut ended = loop {
            if stop.is_requested() {
                break self.shut_down(&mut consumer, budget).await;
            }
            let waited = Instant::now();
            let batch = match consumer
                .next_batch(self.batch_size, self.flush_interval)
                .await
            {
                Ok(b) => b,
                Err(e) => break Ended::LinkLost(e.to_string()),
            };
            if !batch.is_empty() {
                StageTimed {
                    stage: PipelineStage::Receive,
                    took: waited.elapsed(),
                }
                .emit(&self.metrics);
            }
            let step = if batch.is_empty() {
                self.idle(&mut consumer).await
            } else {
                self.process(&mut consumer, batch).await
            };
            if let Err(e) = step {
                break Ended::LinkLost(e);
            }
            if self
                .relay_handle
                .as_ref()
                .is_some_and(RelayHandle::has_stopped)
            {
                break Ended::LinkLost("the outbox relay's channel was lost".into());
            }
        };
        self.consuming.store(false, Ordering::SeqCst);
        if let Ended::LinkLost(_) = ended {
            // The commit lands all the same (the tracker is ahead of the
            // store otherwise); its acknowledgement is lost with the link,
            // so its inputs are redelivered and found already committed.
            let _ = self.settle(&mut consumer).await;
        }
        if let Some(handle) = self.relay_handle.take() {
            let wait = match ended {
                Ended::Shutdown { .. } => budget.relay(),
                Ended::LinkLost(_) => super::outbox::STOP_WAIT,
            };
            let (relay, error) = handle.stop(&self.store, &self.metrics, wait).await;
            self.relay = Some(relay);
            tracing::debug!("outbox relay stopped");
            if let (Some(e), Ended::Shutdown { clean }) = (error, &mut ended) {
                tracing::warn!(error = %e, "the outbox relay stopped with an error");
                *clean = false;
            }
        }
        if matches!(ended, Ended::Shutdown { .. }) {
            // Closed here, before the connection is (see
            // `Publisher::close`); a close that does not finish in time is
            // left to the connection close.
            match tokio::time::timeout(budget.close(), consumer.close()).await {
                Ok(Ok(())) => tracing::debug!("consuming channels closed"),
                Ok(Err(e)) => tracing::debug!(error = %e, "closing the consuming channels"),
                Err(_) => tracing::debug!("closing the consuming channels timed out"),
            }
        }
        ended
    }

    /// Stop consuming, finish what was received, flush the outbox.
    async fn shut_down(&mut self, consumer: &mut BatchConsumer, budget: Budget) -> Ended {
        let work = async {
            // Nothing may be left unacknowledged at the channel's close: a
            // delivery returned goes behind the backlog (see
            // `BatchConsumer::stop`). So: the batch in flight acknowledged,
            // the prefetch taken and the consumers cancelled, then
            // everything taken processed, up to the end of each stream.
            self.settle(consumer).await?;
            let mut taken = consumer
                .stop(self.flush_interval.max(STOP_QUIET))
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(taken = taken.len(), "shutdown: stopped consuming");
            while !consumer.drained() {
                let rest = consumer
                    .next_batch(self.batch_size, self.flush_interval)
                    .await
                    .map_err(|e| e.to_string())?;
                taken.extend(rest);
            }
            while !taken.is_empty() {
                let rest: Vec<Delivery> = taken.drain(..self.batch_size.min(taken.len())).collect();
                self.process(consumer, rest).await?;
            }
            self.settle(consumer).await?;
            tracing::debug!("shutdown: deliveries in hand committed and acknowledged");
            // Everything committed, including one more try at whatever the
            // broker refused earlier.
            match &self.relay_handle {
                Some(relay) => relay.drain().await,
                None => Ok(()),
            }
        };
        match tokio::time::timeout(budget.work(), work).await {
            Ok(Ok(())) => Ended::Shutdown { clean: true },
            Ok(Err(e)) => {
                tracing::warn!(
                    error = %e,
                    "shutdown could not finish; what is left (unacknowledged inputs, unpublished \
                     events and alerts) is taken up at the next start"
                );
                Ended::Shutdown { clean: false }
            }
            Err(_) => {
                tracing::warn!(
                    waited_secs = budget.work().as_secs_f64(),
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
        // Nothing new came: the batch in flight is acknowledged now rather
        // than with the next one.
        self.settle(consumer).await?;
        if consumer.open_deliveries() > 0 {
            return Ok(());
        }
        // Drained: the engine's clock follows the wall clock, less the
        // allowed lateness as an event's time is (it is moved only when a
        // timer falls due, but nothing lies between), so no lag.
        let now = self.tracker.engine_time_at(Utc::now());
        let due = self.tracker.next_deadline().is_some_and(|d| d <= now);
        ClockAdvanced { clock: Utc::now() }.emit(&self.metrics);
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
        self.commit_now(batch).await;
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
        if let Some(events) = &mut self.events {
            events.finish(&mut batch);
        }
        // Dead-letter copies go before the commit. If a copy fails, the
        // batch's effects are committed all the same, but not the records
        // of the inputs not yet copied, and nothing is acknowledged: their
        // redelivery dead-letters them. A rejected input is never taken for
        // committed on redelivery (`inputs_processed` counts only applied
        // ones), since its id may come back mended by a redrive; a
        // rejection redelivered after a lost acknowledgement is therefore
        // dead-lettered again, a duplicate rather than a loss.
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
        StageTimed {
            stage: PipelineStage::Process,
            took: received.elapsed(),
        }
        .emit(&self.metrics);
        // One commit in flight: the previous batch's lands (and its inputs
        // are acknowledged) before this one's starts, so commits stay in
        // order and a retried commit never overtakes a later one. This
        // batch is committed even if that acknowledgement fails: the
        // tracker has applied it, and its inputs, redelivered, are then
        // found committed.
        let settling = Instant::now();
        let settled = self.settle(consumer).await;
        StageTimed {
            stage: PipelineStage::Settle,
            took: settling.elapsed(),
        }
        .emit(&self.metrics);
        let inputs = deliveries.len();
        // After a failed dead-letter copy nothing is acknowledged: the
        // inputs not yet copied are redelivered and dead-lettered then.
        let receipt = if copy_failed.is_none() {
            Receipt::of(&deliveries)
        } else {
            None
        };
        let has_outbox = !batch.outbox.is_empty();
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        self.in_flight = Some(InFlight {
            commit: tokio::spawn(async move {
                let started = Instant::now();
                commit(store, metrics.clone(), batch).await;
                StageTimed {
                    stage: PipelineStage::Commit,
                    took: started.elapsed(),
                }
                .emit(&metrics);
                received.elapsed()
            }),
            receipt,
            inputs,
            has_outbox,
        });
        settled?;
        if let Some(e) = copy_failed {
            self.settle(consumer).await?;
            return Err(e);
        }
        self.report_clock();
        Ok(())
    }

    /// Waits for the commit in flight, if any, then acknowledges its inputs
    /// and wakes the relay if it queued messages. An error means the
    /// acknowledgement could not be sent (the link is lost); the commit
    /// itself always lands or ends the process.
    async fn settle(&mut self, consumer: &mut BatchConsumer) -> Result<(), String> {
        let Some(f) = self.in_flight.take() else {
            return Ok(());
        };
        // A panic in the commit task is a bug: carry it on.
        let receive_to_commit = f
            .commit
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        self.after_commit(f.has_outbox);
        BatchCommitted {
            inputs: f.inputs,
            receive_to_commit,
        }
        .emit(&self.metrics);
        if let Some(receipt) = &f.receipt {
            consumer
                .ack_batch(receipt)
                .await
                .map_err(|e| e.to_string())?;
        }
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
        for unit in ingest_units(delivery.body(), hint, &self.ingest) {
            match unit.outcome {
                Ok(events) => {
                    for event in events {
                        if let Some(packer) = &mut self.events
                            && let Err(e) = packer.push(&event, batch)
                        {
                            // Serialising our own types cannot fail in
                            // practice; if it ever does, say so loudly.
                            tracing::error!(error = %e, "cannot queue an event for publishing");
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
                        message_id: delivery.message_id(),
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

    /// Commits a batch now (the clock's own effects, when idle), after any
    /// commit in flight (the caller settles first), then wakes the relay if
    /// the batch queued messages.
    async fn commit_now(&self, batch: Batch) {
        let has_outbox = !batch.outbox.is_empty();
        commit(self.store.clone(), self.metrics.clone(), batch).await;
        self.after_commit(has_outbox);
    }

    /// What follows every commit: the tracker's gauges now match the store,
    /// and the relay is woken when the commit queued messages.
    fn after_commit(&self, has_outbox: bool) {
        TrackerObserved {
            tracker: &self.tracker,
        }
        .emit(&self.metrics);
        if has_outbox && let Some(relay) = &self.relay_handle {
            relay.wake();
        }
    }

    /// Waits, before consuming, until no other consumer holds an input
    /// queue ([`Session::input_consumers`]), checking every
    /// [`QUEUE_RECHECK`]. A gateway restarted while the broker still held
    /// its previous connection's deliveries (up to `prefetch`, the head of
    /// the backlog) took the traffic behind them first: its clock passed
    /// their deadlines, and they came back to false `overdue` alerts.
    async fn wait_for_input_queues(&self, session: &Session, stop: &mut Stop) -> Result<(), Ended> {
        let mut since: Option<Instant> = None;
        loop {
            let held = session
                .input_consumers()
                .await
                .map_err(|e| Ended::LinkLost(e.to_string()))?;
            if held.is_empty() {
                if let Some(t) = since {
                    InputQueueReleased {
                        waited: t.elapsed(),
                    }
                    .emit();
                }
                return Ok(());
            }
            if since.is_none() {
                InputQueueHeld { queues: &held }.emit();
                since = Some(Instant::now());
            }
            tokio::select! {
                () = stop.requested() => {
                    let clean = matches!(self.outbox_left().await, Ok(0));
                    return Err(Ended::Shutdown { clean });
                }
                () = session.lost() => {
                    return Err(Ended::LinkLost("lost while waiting for the input queues".into()));
                }
                () = tokio::time::sleep(QUEUE_RECHECK) => {}
            }
        }
    }

    /// Counts what waits in the outbox, setting `tocsin_outbox_pending`: at
    /// start, before any broker session (rows an earlier run left are
    /// waiting already), after a lost link, and at a stop while no session
    /// runs, which must say what is left.
    pub async fn outbox_left(&self) -> Result<u64, tocsin_store::StoreError> {
        super::outbox::count_outbox(&self.store, &self.metrics).await
    }

    fn report_clock(&self) {
        if let Some(clock) = self.tracker.clock() {
            ClockAdvanced { clock }.emit(&self.metrics);
        }
    }
}

/// Commits a batch, retrying for as long as the store's failure is
/// transient. A permanent failure is a bug or a broken database: the
/// process exits so that a restart rebuilds the tracker from the store
/// (the inputs, unacknowledged, are redelivered). Owns what it needs, so
/// that it can run as a task while the next batch is prepared.
///
/// A commit that queued messages counts the outbox after it, in the same
/// store call: the rows wait from their commit on, and while the broker is
/// away or refusing them the relay confirms nothing, so a gauge set only
/// after confirmed rounds stayed at 0 through an outage with hundreds
/// waiting.
async fn commit(store: StoreHandle, metrics: Arc<Metrics>, batch: Batch) {
    if batch.is_empty() {
        return;
    }
    let batch = Arc::new(batch);
    let mut delay = Duration::from_millis(50);
    loop {
        let (b, counted) = (batch.clone(), metrics.clone());
        let committed = store
            .call(move |s| {
                s.commit(&b)?;
                if !b.outbox.is_empty() {
                    // Its failure is not the commit's: the batch landed.
                    let _ = super::outbox::count_pending(s, &counted);
                }
                Ok(())
            })
            .await;
        match committed {
            Ok(()) => {
                StoreRecovered.emit(&metrics);
                return;
            }
            Err(error) => {
                let transient = error.is_transient();
                StoreFailed {
                    operation: "commit",
                    error: &error,
                    transient,
                }
                .emit(&metrics);
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

async fn open(
    session: &Session,
) -> Result<(BatchConsumer, tocsin_amqp::Publisher), tocsin_amqp::AmqpError> {
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

/// The input's identity for the `inputs` audit table: its AMQP message id
/// with a digest of its body, else a digest of its body alone.
///
/// The body is part of it because integration engines can reuse message
/// ids (a counter that restarts): a new message under an old id, delivered
/// again after a crash before its commit, would otherwise be found under
/// the earlier message's record and acknowledged unapplied. A broker
/// redelivery always carries the same body, so it still finds its own
/// record; so does a redrive, which moves the body unchanged.
fn input_id(delivery: &Delivery) -> String {
    let digest = Sha256::digest(delivery.body());
    match delivery.message_id() {
        Some(id) if !id.is_empty() => format!("amqp:{id}#{}", hex::encode(&digest[..8])),
        _ => format!("sha256:{}", hex::encode(&digest[..16])),
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
