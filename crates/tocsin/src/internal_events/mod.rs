//! The gateway's vocabulary of observable happenings.
//!
//! In the manner of Vector's `internal_events`: each happening is a named
//! type whose `emit` writes its log line and updates its metrics together,
//! so instrumentation reads as a list of things that happen rather than
//! counter calls scattered through the code. Log lines and labels carry no
//! patient data: ids here are hashes, reasons are fixed codes.

mod http;
pub mod labels;
mod metrics;
mod tracking;

pub use http::{
    ApiOpen, HttpAcceptFailed, HttpConnectionShed, HttpConnectionsFull, HttpListening, ShedReason,
};
pub use labels::{MetricLabels, PipelineStage};
pub use metrics::Metrics;
pub use tracking::{DocumentSettled, TrackerObserved};

use std::time::Duration;

use tocsin_event::InterfaceEvent;
use tocsin_tracker::Alert;

/// An input message arrived from the broker.
pub struct MessageReceived<'a> {
    /// `hl7v2`, `fhir-json`, `ndjson`, `fhir-xml` or `unknown`.
    pub format: &'a str,
}

impl MessageReceived<'_> {
    /// Counts it.
    pub fn emit(self, m: &Metrics) {
        m.messages_received.with_label_values(&[self.format]).inc();
    }
}

/// An input (or one unit of it) could not be normalised.
pub struct MessageRejected<'a> {
    /// The fixed reason code (`truncated_msh`, `malformed_json`...).
    pub reason: &'a str,
    /// Where in the message, when known (`PID-3`): structure, not data.
    pub location: Option<&'a str>,
    /// The AMQP delivery tag, to find it in broker logs.
    pub delivery_tag: u64,
    /// The AMQP message id the engine gave it, as `tocsin dead-letters
    /// list` prints it, so that a log line and a dead letter can be
    /// matched (an engine's id, not patient data).
    pub message_id: Option<&'a str>,
}

impl MessageRejected<'_> {
    /// Logs it (warn) and counts it.
    pub fn emit(self, m: &Metrics) {
        tracing::warn!(
            reason = self.reason,
            location = self.location.unwrap_or("-"),
            message_id = self.message_id.unwrap_or("-"),
            delivery_tag = self.delivery_tag,
            "input rejected: dead-lettered with its reason"
        );
        m.messages_rejected.with_label_values(&[self.reason]).inc();
    }
}

/// An interface event was normalised and handed to the tracker (which may
/// count it as a duplicate or stale instead of acting on it).
pub struct EventApplied<'a> {
    /// The event.
    pub event: &'a InterfaceEvent,
}

impl EventApplied<'_> {
    /// Counts it and the warnings normalisation attached to it; logs its id
    /// and type at debug.
    pub fn emit(self, m: &Metrics) {
        tracing::debug!(event_id = %self.event.event_id, r#type = self.event.event_type.as_str(), "event applied");
        m.events
            .with_label_values(&[self.event.event_type.as_str()])
            .inc();
        for w in &self.event.warnings {
            m.event_warnings.with_label_values(&[w.code.as_str()]).inc();
        }
    }
}

/// The tracker raised an alert.
pub struct AlertRaised<'a> {
    /// The alert.
    pub alert: &'a Alert,
}

impl AlertRaised<'_> {
    /// Logs it (info: ids are hashes, no patient data) and counts it.
    pub fn emit(self, m: &Metrics) {
        let a = self.alert;
        tracing::info!(
            alert_id = %a.alert_id,
            kind = a.kind.as_str(),
            document_kind = a.document_kind.as_str(),
            encounter_kind = a.encounter.kind.as_str(),
            deadline = %a.deadline.to_rfc3339(),
            "alert raised"
        );
        m.alerts_emitted.with_label_values(&[a.kind.as_str()]).inc();
    }
}

/// A batch of inputs was committed to the store.
pub struct BatchCommitted {
    /// Inputs in the batch.
    pub inputs: usize,
    /// From the first receipt in the batch to the commit.
    pub receive_to_commit: Duration,
}

impl BatchCommitted {
    /// Observes the batch size and latency.
    pub fn emit(self, m: &Metrics) {
        tracing::debug!(
            inputs = self.inputs,
            millis = self.receive_to_commit.as_millis() as u64,
            "batch committed"
        );
        m.batch_size.observe(self.inputs as f64);
        m.processing_seconds
            .observe(self.receive_to_commit.as_secs_f64());
    }
}

/// A batch finished one stage of the pipeline. The four stages' sums say
/// what the gateway waits for when it drains a backlog: the broker
/// (receive), its own CPU (process), the store (commit, and settle when the
/// commit outlasts the next batch's processing).
pub struct StageTimed {
    /// Which stage.
    pub stage: PipelineStage,
    /// How long the batch spent in it.
    pub took: Duration,
}

impl StageTimed {
    /// Observes the stage's time (and traces it).
    pub fn emit(self, m: &Metrics) {
        tracing::trace!(
            stage = self.stage.as_str(),
            micros = self.took.as_micros() as u64,
            "pipeline stage"
        );
        m.pipeline_stage_seconds
            .with_label_values(&[self.stage.as_str()])
            .observe(self.took.as_secs_f64());
    }
}

/// The store failed; the work will be retried.
pub struct StoreFailed<'a> {
    /// What was being done.
    pub operation: &'a str,
    /// The error (redacted by the store).
    pub error: &'a tocsin_store::StoreError,
    /// Whether it is expected to pass.
    pub transient: bool,
}

impl StoreFailed<'_> {
    /// Logs it and marks the store down.
    pub fn emit(self, m: &Metrics) {
        if self.transient {
            tracing::warn!(operation = self.operation, error = %self.error, "store unavailable; retrying");
        } else {
            tracing::error!(operation = self.operation, error = %self.error, "store failed");
        }
        m.store_up.set(0);
    }
}

/// The gateway's check of the store has waited `[store] unresponsive_after`
/// behind work that does not finish (a commit waiting on a lock, a
/// synchronous standby lost, hung storage): ingestion waits with it, so the
/// store is marked down (`tocsin_store_up` 0, `/readyz` 503,
/// `TocsinStoreDown`) until it answers.
pub struct StoreUnresponsive {
    /// How long the check has waited.
    pub waited: std::time::Duration,
}

impl StoreUnresponsive {
    /// Logs it (error: ingestion has stopped) and marks the store down.
    pub fn emit(self, m: &Metrics) {
        tracing::error!(
            waited_secs = self.waited.as_secs(),
            "store not answering: a store call has not finished for {} s, and ingestion \
             waits for it (a commit or query held by a lock, a lost synchronous standby, \
             hung storage: for PostgreSQL, pg_stat_activity shows what waits); marked down \
             until it answers",
            self.waited.as_secs()
        );
        m.store_up.set(0);
    }
}

/// An input queue has consumers before this gateway consumes: most often
/// its own previous connection, which the broker has not yet seen die (a
/// host crash, a network partition), holding the head of the backlog
/// unacknowledged until the heartbeat times out. The gateway waits, not
/// ready, rather than judge the traffic behind it first.
pub struct InputQueueHeld<'a> {
    /// The queues and how many consumers each has.
    pub queues: &'a [(String, u32)],
}

impl InputQueueHeld<'_> {
    /// Logs it at warn level, once per wait.
    pub fn emit(self) {
        let held: Vec<String> = self
            .queues
            .iter()
            .map(|(q, n)| format!("{q} ({n})"))
            .collect();
        tracing::warn!(
            queues = %held.join(", "),
            "input queue has other consumers: waiting, not ready, until they are gone (a previous \
             connection the broker has not yet closed returns its deliveries when its heartbeat \
             times out; another gateway or client on the queue must be stopped: rabbitmqctl \
             list_consumers)"
        );
    }
}

/// The input queues have no other consumer any more: consuming starts.
pub struct InputQueueReleased {
    /// How long the gateway waited.
    pub waited: std::time::Duration,
}

impl InputQueueReleased {
    /// Logs it.
    pub fn emit(self) {
        tracing::info!(
            waited_secs = self.waited.as_secs(),
            "input queues released: consuming"
        );
    }
}

/// Housekeeping deleted rows past `[store] retention` from one table.
pub struct StorePruned<'a> {
    /// `outbox` or `inputs`.
    pub table: &'a str,
    /// How many rows went.
    pub rows: u64,
    /// The cut-off: rows older than this went.
    pub before: chrono::DateTime<chrono::Utc>,
}

impl StorePruned<'_> {
    /// Logs it (info when anything went) and counts the rows.
    pub fn emit(self, m: &Metrics) {
        if self.rows > 0 {
            tracing::info!(
                table = self.table,
                rows = self.rows,
                before = %self.before.to_rfc3339(),
                "store housekeeping: deleted rows past retention"
            );
        }
        m.store_pruned_rows
            .with_label_values(&[self.table])
            .inc_by(self.rows);
    }
}

/// Housekeeping could not delete rows past retention; it tries again at its
/// next round. Nothing is lost: the rows stay.
pub struct StorePruneFailed<'a> {
    /// `outbox` or `inputs`.
    pub table: &'a str,
    /// The error (redacted by the store).
    pub error: &'a tocsin_store::StoreError,
}

impl StorePruneFailed<'_> {
    /// Logs it (warn) and counts it: with the store otherwise up, a
    /// failure that repeats is a damaged table (TocsinHousekeepingFailing).
    pub fn emit(self, m: &Metrics) {
        tracing::warn!(
            table = self.table,
            error = %self.error,
            "store housekeeping failed; will try again at the next round"
        );
        m.store_housekeeping_failures
            .with_label_values(&[self.table])
            .inc();
    }
}

/// Restored open expectations keep a rule the policy no longer has as it
/// was ([`tocsin_tracker::Tracker::rules_kept_from_store`]): a restore
/// never moves a deadline, so a rule edited in place (or removed) judges
/// only encounters that end after the edit. Said at start, or a trust that
/// edited a rule sees the old deadlines raised without knowing why.
pub struct RuleKeptFromStore<'a> {
    /// The rule's id.
    pub rule: &'a str,
    /// How many unsettled expectations keep it.
    pub open: usize,
}

impl RuleKeptFromStore<'_> {
    /// Logs it (warn: what the policy now says is not what these are
    /// judged by).
    pub fn emit(self) {
        tracing::warn!(rule = self.rule, open = self.open, "{}", self.message());
    }

    /// What it means, in words (for the log and `replay --store`).
    pub fn message(&self) -> String {
        format!(
            "{} open expectation(s) keep rule {} as it was when they were made (the policy \
             no longer has it, or gives it other durations now): their deadlines stand; \
             the policy as it is judges encounters that end from now on",
            self.open, self.rule
        )
    }
}

/// The restore at start could not use a stored state record and went on
/// without it (`tocsin_tracker::Restoring::record`, `Restoring::finish`):
/// the store was changed by something other than tocsin. What is lost is
/// auxiliary (a duplicate key, a waiting document, an expectation's place
/// in a transmission awaiting acknowledgement); refusing to start over it
/// would stop every alert of the trust.
pub struct RestoreRecordSkipped<'a> {
    /// What was wrong with it.
    pub error: &'a tocsin_tracker::RestoreError,
}

impl RestoreRecordSkipped<'_> {
    /// Logs it (error: the store is damaged) with the record and the
    /// reason code, and the reason's detail at debug only, since it may
    /// quote the record's contents; counts it.
    pub fn emit(self, m: &Metrics) {
        let code = self.error.code();
        let record = self.error.record().unwrap_or_default();
        match self.error {
            tocsin_tracker::RestoreError::MissingExpectation { expectation, .. } => {
                tracing::error!(
                    reason = code,
                    record,
                    expectation_id = expectation.as_str(),
                    "restore: a stored record names an expectation the store does not hold; \
                     going on without it"
                )
            }
            _ => tracing::error!(
                reason = code,
                record,
                "restore: a stored record could not be used; going on without it"
            ),
        }
        tracing::debug!(reason = code, detail = %self.error, "restore: skipped record");
        m.restore_skipped.with_label_values(&[code]).inc();
    }
}

/// The dead-letter queue was counted.
pub struct DeadLettersCounted<'a> {
    /// The queue.
    pub queue: &'a str,
    /// Messages waiting in it.
    pub waiting: u32,
}

impl DeadLettersCounted<'_> {
    /// Sets `tocsin_dead_letters`; logs (info) when the count has grown,
    /// with what to do about it.
    pub fn emit(self, m: &Metrics) {
        let waiting = i64::from(self.waiting);
        if waiting > m.dead_letters.get() {
            tracing::info!(
                queue = self.queue,
                waiting,
                "inputs wait in the dead-letter queue, untracked: `tocsin dead-letters list` \
                 shows why, `tocsin dead-letters redrive` sends them back once mended"
            );
        }
        m.dead_letters.set(waiting);
    }
}

/// The store answered again.
pub struct StoreRecovered;

impl StoreRecovered {
    /// Marks the store up.
    pub fn emit(self, m: &Metrics) {
        if m.store_up.get() == 0 {
            tracing::info!("store available");
        }
        m.store_up.set(1);
    }
}

/// A SQLite store's files were measured (at each store check).
pub struct StoreFilesMeasured(pub tocsin_store::StoreFiles);

impl StoreFilesMeasured {
    /// Sets the file sizes and whether checkpoints fail; the store's own
    /// checkpoint thread logs why they fail.
    pub fn emit(self, m: &Metrics) {
        let f = self.0;
        let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.store_file_bytes
            .with_label_values(&["database"])
            .set(bytes(f.database_bytes));
        m.store_file_bytes
            .with_label_values(&["wal"])
            .set(bytes(f.wal_bytes));
        m.store_checkpoint_failing
            .set(i64::from(f.checkpoints_failing));
    }
}

/// Outbox messages were confirmed by the broker.
pub struct OutboxPublished {
    /// How many.
    pub count: usize,
    /// How many still wait.
    pub pending: u64,
}

impl OutboxPublished {
    /// Counts them and sets the pending gauge.
    pub fn emit(self, m: &Metrics) {
        m.deliveries
            .with_label_values(&["amqp_confirmed"])
            .inc_by(self.count as u64);
        OutboxCounted {
            pending: self.pending,
        }
        .emit(m);
    }
}

/// The rows waiting in the outbox were counted: after a commit that queued
/// messages, and after every round of the relay, published, refused or cut
/// short by a lost link. Counting only after confirmed rounds left the
/// gauge at its last value, often 0, for as long as the broker was away or
/// refused everything, which is when `TocsinOutboxBacklog` must see it.
pub struct OutboxCounted {
    /// Rows committed and not yet confirmed by the broker.
    pub pending: u64,
}

impl OutboxCounted {
    /// Sets the pending gauge.
    pub fn emit(self, m: &Metrics) {
        m.outbox_pending
            .set(i64::try_from(self.pending).unwrap_or(i64::MAX));
    }
}

/// A stop (SIGTERM, SIGINT) came while the gateway had no broker session:
/// before it ever connected, or while it reconnected after losing the link.
/// Whatever the last session consumed was committed when it ended, and
/// what it had not acknowledged is redelivered; what may be left is the
/// outbox, which no session could publish. Told apart because a gateway
/// that stopped mid-outage with alerts unpublished used to say it "stopped
/// before connecting to the broker" and exit 0, which `deploy/README.md`
/// ("Upgrading") promises only when everything was published.
pub struct StoppedWithoutBroker<'a> {
    /// Whether a session was ever opened (else: stopped before connecting).
    pub ever_connected: bool,
    /// What the outbox holds unpublished, or why it could not be counted.
    pub left: &'a Result<u64, tocsin_store::StoreError>,
}

impl StoppedWithoutBroker<'_> {
    /// Logs it: info when the outbox is empty (a clean stop), warn naming
    /// what is left (or that the outbox could not be read) otherwise.
    pub fn emit(self) {
        let when = if self.ever_connected {
            "while reconnecting to the broker"
        } else {
            "before connecting to the broker"
        };
        match self.left {
            Ok(0) => tracing::info!(
                clean = true,
                "gateway stopped {when}; nothing left to publish"
            ),
            Ok(left) => tracing::warn!(
                clean = false,
                left,
                "gateway stopped {when}: {left} message(s) remain in the outbox, unpublished; \
                 nothing is lost: the next start publishes them (keep the store)"
            ),
            Err(error) => tracing::warn!(
                clean = false,
                %error,
                "gateway stopped {when}: cannot count the outbox, so messages may remain in it \
                 unpublished; nothing is lost: the next start publishes them (keep the store)"
            ),
        }
    }
}

/// Publishing from the outbox failed; it will be retried.
pub struct OutboxPublishFailed<'a> {
    /// The error (the URL in it is redacted): the first refusal's, or the
    /// lost link's.
    pub error: &'a tocsin_amqp::AmqpError,
    /// How many messages of the round were not confirmed: counted as
    /// `amqp_failed` one by one, as `amqp_confirmed` counts them, so that a
    /// refusal rate can be taken (a round of 1,000 refused counted 1).
    pub messages: usize,
}

impl OutboxPublishFailed<'_> {
    /// Logs and counts it; a refusal (nack) says where to look, since the
    /// broker's own reason names no queue.
    pub fn emit(self, m: &Metrics) {
        let hint = if matches!(self.error, tocsin_amqp::AmqpError::Nacked { .. }) {
            " (a refusal: most often a queue bound to the exchange is full, with \
             x-max-length and overflow reject-publish, or the broker has a memory or disk \
             alarm)"
        } else {
            ""
        };
        tracing::warn!(
            error = %self.error,
            messages = self.messages,
            "publishing from the outbox failed; will retry{hint}"
        );
        m.deliveries
            .with_label_values(&["amqp_failed"])
            .inc_by(self.messages as u64);
    }
}

/// The engine's event-time clock moved, or was found caught up with the
/// wall clock (the input drained).
pub struct ClockAdvanced {
    /// The engine's clock; the wall clock when caught up.
    pub clock: chrono::DateTime<chrono::Utc>,
}

impl ClockAdvanced {
    /// Keeps the clock for the lag gauge, which each scrape sets from it
    /// ([`Metrics::refresh_clock_lag`]).
    pub fn emit(self, m: &Metrics) {
        m.engine_clock_ms.store(
            self.clock.timestamp_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}
