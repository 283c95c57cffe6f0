//! The outbox relay: its own task and its own confirm-mode channel, woken
//! after each commit that queued messages, so that waiting for the broker's
//! confirms overlaps with consuming the next batches instead of holding them
//! up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tocsin_amqp::{OutgoingMessage, Publisher};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::StoreHandle;
use crate::internal_events::{
    Metrics, OutboxCounted, OutboxPublishFailed, OutboxPublished, StoreFailed,
};
use std::sync::Arc;

/// Most outbox messages published in one confirmed round.
const OUTBOX_ROUND: usize = 1000;

/// First and longest wait before publishing again what the broker refused
/// (nacked or returned), or trying again a store that failed: consuming
/// goes on meanwhile.
const OUTBOX_RETRY_MIN: Duration = Duration::from_millis(200);
const OUTBOX_RETRY_MAX: Duration = Duration::from_secs(30);

/// How long a relay whose link is gone may take to notice before it is
/// abandoned (its confirmed-but-unmarked rows are then published again,
/// which at-least-once allows).
pub(super) const STOP_WAIT: Duration = Duration::from_secs(5);

/// What the relay keeps across broker sessions.
pub struct Relay {
    store: StoreHandle,
    metrics: Arc<Metrics>,
    /// After the broker refused outbox messages, or the store failed: not
    /// before this instant (then by itself, without waiting for a wake),
    /// and the wait after the next failure.
    hold: Option<Instant>,
    delay: Duration,
    /// Outbox rows the broker confirmed whose marking failed (the store
    /// briefly away): marked before anything is published again.
    unmarked: Vec<i64>,
    /// Exchanges the broker refused messages for (a subscriber's queue at
    /// its length limit with `reject-publish`): not published to before
    /// the instant, and the wait after the next refusal. Their messages
    /// are skipped meanwhile, so that events refused by one subscriber's
    /// queue do not hold back the alerts behind them.
    refusing: HashMap<String, (Instant, Duration)>,
}

enum Command {
    /// Something was committed to the outbox.
    Wake,
    /// Publish everything pending now, ignoring any hold, and say how it
    /// went (shutdown).
    Drain(oneshot::Sender<Result<(), String>>),
}

/// The running relay of one broker session.
pub struct RelayHandle {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<(Relay, Result<(), String>)>,
}

impl RelayHandle {
    /// Tells the relay the outbox has new rows. Never waits: a wake already
    /// queued covers this one.
    pub fn wake(&self) {
        let _ = self.tx.try_send(Command::Wake);
    }

    /// Publishes everything pending, ignoring any hold after a refusal.
    pub async fn drain(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Drain(reply))
            .await
            .map_err(|_| "the outbox relay has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the outbox relay has stopped".to_string())?
    }

    /// True once the relay task ended (its link lost).
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the relay and returns its state, with the error that ended it
    /// early, if any.
    pub async fn stop(
        self,
        store: &StoreHandle,
        metrics: &Arc<Metrics>,
        wait: Duration,
    ) -> (Relay, Option<String>) {
        let Self { tx, mut task } = self;
        drop(tx);
        match tokio::time::timeout(wait, &mut task).await {
            Ok(Ok((relay, result))) => (relay, result.err()),
            Ok(Err(join)) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Ok(Err(_)) => (Relay::new(store.clone(), metrics.clone()), None),
            Err(_) => {
                task.abort();
                (
                    Relay::new(store.clone(), metrics.clone()),
                    Some("the outbox relay did not stop in time".into()),
                )
            }
        }
    }
}

impl Relay {
    /// A relay with nothing held.
    pub fn new(store: StoreHandle, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            hold: None,
            delay: OUTBOX_RETRY_MIN,
            unmarked: Vec::new(),
            refusing: HashMap::new(),
        }
    }

    /// Runs the relay on `publisher` until the handle is stopped or the
    /// link is lost. It publishes whatever an earlier run left pending first.
    pub fn spawn(self, publisher: Publisher) -> RelayHandle {
        // Two commands are enough: a queued wake covers any later one.
        let (tx, rx) = mpsc::channel(2);
        let task = tokio::spawn(self.run(publisher, rx));
        RelayHandle { tx, task }
    }

    async fn run(
        mut self,
        publisher: Publisher,
        mut rx: mpsc::Receiver<Command>,
    ) -> (Self, Result<(), String>) {
        if let Err(e) = self.flush(&publisher).await {
            return (self, Err(e));
        }
        loop {
            let command = match self.next_try() {
                Some(until) => tokio::select! {
                    c = rx.recv() => c,
                    () = tokio::time::sleep_until(until.into()) => Some(Command::Wake),
                },
                None => rx.recv().await,
            };
            let result = match command {
                None => {
                    // Closed here, before the connection is: see
                    // `Publisher::close`.
                    if let Err(e) = publisher.close().await {
                        tracing::debug!(error = %e, "closing the outbox relay's channel");
                    }
                    return (self, Ok(()));
                }
                Some(Command::Wake) => self.flush(&publisher).await,
                Some(Command::Drain(reply)) => {
                    self.hold = None;
                    self.refusing.clear();
                    let result = self.flush(&publisher).await;
                    // A flush that met a refusal or a store failure returns
                    // Ok (it waits and tries again); a drain must say that
                    // something is left, so that shutdown is not reported
                    // clean while events and alerts wait in the outbox.
                    let answer = match &result {
                        Ok(()) => self.left_behind().await,
                        Err(e) => Err(e.clone()),
                    };
                    let _ = reply.send(answer);
                    result
                }
            };
            if let Err(e) = result {
                return (self, Err(e));
            }
        }
    }

    /// Publishes everything pending in the outbox with confirms, marking
    /// published what the broker confirmed. What it refused (nacked, say a
    /// bound queue at its length limit with `reject-publish`) stays pending
    /// and its exchange is tried again after a growing wait, its messages
    /// skipped meanwhile so that the other exchange's go (alerts are not
    /// held behind refused events), while consuming goes on: a refusing
    /// broker delays publishing but never wedges the gateway. An
    /// error is a lost link. Each round ends by counting what is left into
    /// `tocsin_outbox_pending`, whether the broker confirmed all of it, part
    /// of it, none of it, or the link went (only a store that fails leaves
    /// the gauge as it was).
    ///
    /// Delivery is at least once: from the moment the broker routes a
    /// message until its row is marked published, a crash (or a lost link,
    /// which loses the confirms) leaves it pending, and it is published
    /// again on restart. That is at most the one round in flight (up to
    /// `OUTBOX_ROUND` messages); subscribers drop the copies by
    /// `message_id` (the event or alert id; in NDJSON, each line's
    /// `event_id`). The kill -9 tests measure it (tests/gateway_crash.rs).
    async fn flush(&mut self, publisher: &Publisher) -> Result<(), String> {
        if self.hold.is_some_and(|t| Instant::now() < t) || !self.mark_unmarked().await {
            return Ok(());
        }
        loop {
            let now = Instant::now();
            let skip: Vec<String> = self
                .refusing
                .iter()
                .filter(|(_, (until, _))| *until > now)
                .map(|(exchange, _)| exchange.clone())
                .collect();
            let skipping = !skip.is_empty();
            let metrics = self.metrics.clone();
            let read = self
                .store
                .call(move |s| {
                    let pending = s.outbox_pending_except(OUTBOX_ROUND, &skip)?;
                    // Set under the store's lock, as every count is (see
                    // `count_pending`); with exchanges skipped, what waits
                    // for them is counted.
                    if pending.is_empty() {
                        if skipping {
                            count_pending(s, &metrics)?;
                        } else {
                            OutboxCounted { pending: 0 }.emit(&metrics);
                        }
                    }
                    Ok(pending)
                })
                .await;
            let pending = match read {
                Ok(p) => p,
                Err(error) => {
                    // Tried again after a wait, not only at the next wake:
                    // in a quiet hour the alerts just committed would
                    // otherwise wait for the next input. Inputs are not
                    // held back by it.
                    self.store_failed("outbox read", &error);
                    self.back_off();
                    return Ok(());
                }
            };
            if pending.is_empty() {
                self.hold = None;
                self.delay = OUTBOX_RETRY_MIN;
                // An exchange whose hold has ended was read with the rest
                // and has nothing waiting: no longer held (else its past
                // hold would wake the relay at once, again and again).
                self.refusing.retain(|_, (until, _)| *until > now);
                return Ok(());
            }
            let seqs: Vec<(i64, String)> = pending
                .iter()
                .map(|p| (p.seq, p.message.exchange.clone()))
                .collect();
            let messages: Vec<OutgoingMessage> = pending
                .into_iter()
                .map(|p| OutgoingMessage {
                    exchange: p.message.exchange,
                    routing_key: p.message.routing_key,
                    message_id: p.message.id,
                    content_type: Some(p.message.content_type),
                    body: p.message.body,
                    headers: None,
                    mandatory: false,
                })
                .collect();
            let outcomes = match publisher.publish_each_confirmed(&messages).await {
                Ok(o) => o,
                Err(error) => {
                    OutboxPublishFailed {
                        error: &error,
                        messages: messages.len(),
                    }
                    .emit(&self.metrics);
                    // The link is gone, and with it the relay until the
                    // broker is back: the gauge must say what waits
                    // meanwhile, commits since the last confirmed round
                    // included.
                    self.count().await;
                    return Err(error.to_string());
                }
            };
            let mut confirmed = Vec::with_capacity(seqs.len());
            let mut refused = None;
            let mut refusals = 0;
            let mut refused_exchanges: Vec<String> = Vec::new();
            let mut taking: Vec<String> = Vec::new();
            for ((seq, exchange), outcome) in seqs.into_iter().zip(outcomes) {
                match outcome {
                    Ok(()) => {
                        confirmed.push(seq);
                        if !taking.contains(&exchange) {
                            taking.push(exchange);
                        }
                    }
                    Err(error) => {
                        refusals += 1;
                        refused.get_or_insert(error);
                        if !refused_exchanges.contains(&exchange) {
                            refused_exchanges.push(exchange);
                        }
                    }
                }
            }
            self.hold = None;
            self.delay = OUTBOX_RETRY_MIN;
            for exchange in &taking {
                if !refused_exchanges.contains(exchange) {
                    self.refusing.remove(exchange);
                }
            }
            if let Some(error) = &refused {
                OutboxPublishFailed {
                    error,
                    messages: refusals,
                }
                .emit(&self.metrics);
                for exchange in refused_exchanges {
                    self.hold_exchange(exchange);
                }
            }
            if confirmed.is_empty() {
                // The broker refused the whole round: its exchanges are
                // held, and the next round reads past them (the outbox is
                // counted when nothing else is left to try).
                continue;
            }
            let count = confirmed.len();
            let marking = confirmed.clone();
            let metrics = self.metrics.clone();
            let marked = self
                .store
                .call(move |s| {
                    s.outbox_mark_published(&marking)?;
                    let left = s.outbox_len()?;
                    OutboxPublished {
                        count,
                        pending: left,
                    }
                    .emit(&metrics);
                    Ok(())
                })
                .await;
            match marked {
                Ok(()) => {}
                Err(error) => {
                    // Not counted: the store that just failed would fail
                    // the count too, and the rows are still pending in it,
                    // as the gauge already says.
                    self.store_failed("outbox mark", &error);
                    // The broker has them: mark them before publishing
                    // anything again, rather than publish them twice.
                    self.unmarked.extend(confirmed);
                    self.back_off();
                    return Ok(());
                }
            }
        }
    }

    /// After a drain's flush: `Err` when anything is left to publish or to
    /// mark (it goes at the next start, from the store).
    async fn left_behind(&self) -> Result<(), String> {
        if !self.unmarked.is_empty() {
            return Err(format!(
                "{} published message(s) could not be marked in the store; they are published \
                 again at the next start",
                self.unmarked.len()
            ));
        }
        match self.store.call(|s| s.outbox_len()).await {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!(
                "{n} message(s) remain in the outbox; they are published at the next start"
            )),
            Err(error) => Err(format!("cannot read the outbox: {error}")),
        }
    }

    /// Counts the outbox into `tocsin_outbox_pending` after a round that
    /// marked nothing published. A count the store fails leaves the gauge
    /// as it was.
    async fn count(&self) {
        let _ = count_outbox(&self.store, &self.metrics).await;
    }

    fn store_failed(&self, operation: &'static str, error: &tocsin_store::StoreError) {
        StoreFailed {
            operation,
            error,
            transient: error.is_transient(),
        }
        .emit(&self.metrics);
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
                self.store_failed("outbox mark", &error);
                self.back_off();
                false
            }
        }
    }

    /// Holds publishing to an exchange the broker refused for its current
    /// wait (the first [`OUTBOX_RETRY_MIN`]), then tries it again by
    /// itself; its next wait is twice as long, up to [`OUTBOX_RETRY_MAX`].
    fn hold_exchange(&mut self, exchange: String) {
        let (until, delay) = self
            .refusing
            .entry(exchange)
            .or_insert((Instant::now(), OUTBOX_RETRY_MIN));
        *until = waited(delay);
    }

    /// When the relay should try again by itself: after a store failure's
    /// hold, or when the first refusing exchange's hold ends.
    fn next_try(&self) -> Option<Instant> {
        self.refusing
            .values()
            .map(|(until, _)| *until)
            .chain(self.hold)
            .min()
    }

    /// Holds publishing for the current wait, then tries again by itself;
    /// the next wait is twice as long, up to [`OUTBOX_RETRY_MAX`].
    fn back_off(&mut self) {
        self.hold = Some(waited(&mut self.delay));
    }
}

/// The end of a wait of `delay` from now, doubling `delay` for the next
/// (up to [`OUTBOX_RETRY_MAX`]): the relay's own hold and each refusing
/// exchange's.
fn waited(delay: &mut Duration) -> Instant {
    let until = Instant::now() + *delay;
    *delay = (*delay * 2).min(OUTBOX_RETRY_MAX);
    until
}

/// Counts the rows waiting in the outbox into `tocsin_outbox_pending`, and
/// returns the count. Called on the store's thread inside the call that
/// changed the outbox (a commit, a round of the relay), under the store's
/// lock: the gauge is then set in the order the counts were taken, so a
/// commit's count and the relay's, taken one after the other, can never
/// leave the older one showing. The count reads the `outbox_pending`
/// partial index, which holds only the rows waiting: cheap while the relay
/// keeps up, and no dearer than the relay's own count after each round when
/// it does not. A count that fails leaves the gauge as it was: whoever
/// uses the store next meets the failure and says so.
/// [`count_pending`] on the store's thread, for a caller outside a store
/// call: the relay after a round, the gateway at start, after a lost link
/// and at a stop without a broker session.
pub(super) async fn count_outbox(
    store: &StoreHandle,
    metrics: &Arc<Metrics>,
) -> Result<u64, tocsin_store::StoreError> {
    let metrics = metrics.clone();
    store.call(move |s| count_pending(s, &metrics)).await
}

pub(super) fn count_pending(
    store: &mut dyn tocsin_store::Store,
    metrics: &Metrics,
) -> Result<u64, tocsin_store::StoreError> {
    let counted = store.outbox_len();
    match &counted {
        Ok(pending) => OutboxCounted { pending: *pending }.emit(metrics),
        Err(error) => tracing::debug!(%error, "cannot count the outbox"),
    }
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal_events::MetricLabels;
    use lapin::options::{BasicGetOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use tocsin_amqp::Supervisor;
    use tocsin_amqp::test_support::TestVhost;
    use tocsin_store::{Batch, OutboxMessage};

    const WAIT: Duration = Duration::from_secs(20);

    /// Polls `check` until it holds, failing after [`WAIT`].
    async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A store that fails the relay's read in a quiet hour (no commit, so
    /// no wake, follows) must be tried again by the relay itself: the
    /// message committed before it reaches the broker once the store is
    /// back, with nothing else happening.
    #[tokio::test]
    async fn a_failed_outbox_read_is_tried_again_without_a_wake() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tocsin.sqlite");
        let mut store = tocsin_store::open(&format!("sqlite://{}", path.display())).unwrap();
        let vhost = TestVhost::create("outbox-retry");
        let session = Supervisor::new(vhost.config())
            .unwrap()
            .try_connect()
            .await
            .unwrap();
        let channel = session.connection().create_channel().await.unwrap();
        channel
            .queue_declare(
                "test.outbox".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        store
            .commit(&Batch {
                outbox: vec![OutboxMessage {
                    id: "alert-1".into(),
                    exchange: String::new(),
                    routing_key: "test.outbox".into(),
                    content_type: "application/json".into(),
                    body: b"{}".to_vec(),
                }],
                ..Batch::default()
            })
            .unwrap();
        // The store stops answering for the outbox: its table is away.
        let side = rusqlite::Connection::open(&path).unwrap();
        side.execute_batch("ALTER TABLE outbox RENAME TO outbox_away")
            .unwrap();

        let metrics = Arc::new(
            crate::internal_events::Metrics::with_labels(MetricLabels::default()).unwrap(),
        );
        metrics.store_up.set(1);
        let store = StoreHandle::new(store);
        let handle =
            Relay::new(store.clone(), metrics.clone()).spawn(session.publisher().await.unwrap());
        until("the relay's read to fail", async || {
            metrics.store_up.get() == 0
        })
        .await;
        side.execute_batch("ALTER TABLE outbox_away RENAME TO outbox")
            .unwrap();

        until("the message to reach the broker", async || {
            channel
                .basic_get("test.outbox".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .is_some_and(|m| {
                    m.delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.as_str())
                        == Some("alert-1")
                })
        })
        .await;
        assert!(!handle.has_stopped());
        let (_, error) = handle.stop(&store, &metrics, Duration::from_secs(5)).await;
        assert_eq!(error, None);
    }
}
