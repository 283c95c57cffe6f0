//! `tocsin run`: the live gateway.
//!
//! Consumes the input queues in batches, normalises each message, applies
//! the events to the tracker, commits the effects together with the outbox
//! (events and alerts to publish) and only then acknowledges the inputs.
//! The outbox is published with publisher confirms. When the input is
//! drained the tracker's clock follows the wall clock, so deadlines fire on
//! time. Broker and store outages are waited out; SIGTERM and SIGINT finish
//! the batch in hand and exit.

mod connections;
mod delivery;
mod events;
mod housekeeping;
mod http;
mod outbox;
mod pipeline;
mod shutdown;
mod store;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tocsin_amqp::{LinkState, Supervisor};
use tocsin_tracker::Tracker;

use crate::config::Config;
use crate::internal_events::{
    DeadLettersCounted, Metrics, RestoreRecordSkipped, RuleKeptFromStore, StoppedWithoutBroker,
    StoreFailed, StoreFilesMeasured, StoreRecovered, StoreUnresponsive, TrackerObserved,
};

pub use store::StoreHandle;

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    /// The broker link.
    pub link: tokio::sync::watch::Receiver<LinkState>,
    /// Consuming the input queues.
    pub consuming: Arc<AtomicBool>,
    /// The metrics, whose `tocsin_store_up` says whether the store answers.
    pub metrics: Arc<Metrics>,
}

impl Readiness {
    /// What keeps it from being ready (connected, topology declared,
    /// consuming, and the store up), in words: `/readyz` says them, so
    /// that whoever is paged knows which side to look at. Empty: ready.
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if self.metrics.store_up.get() != 1 {
            why.push("the store is down or failing (the log says why: unreachable, full, read-only, damaged...)");
        }
        if *self.link.borrow() != LinkState::Up {
            why.push("not connected to the broker");
        } else if !self.consuming.load(Ordering::SeqCst) {
            why.push("not consuming the input queues");
        }
        why
    }
}

/// Runs the gateway until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let metrics = Arc::new(Metrics::with_labels(config.metrics.clone())?);
    let mut stop = shutdown::listen()?;
    let grace = Duration::from_secs(config.gateway.shutdown_timeout_secs);
    shutdown::enforce_deadline(&stop, grace);
    let budget = shutdown::Budget::new(grace);
    let supervisor = Supervisor::new(config.amqp.clone())?;
    let readiness = Readiness {
        link: supervisor.subscribe(),
        consuming: Arc::new(AtomicBool::new(false)),
        metrics: metrics.clone(),
    };
    let Some(listener) = listen(&config.http.addr, "[http] addr", "TOCSIN_HTTP_ADDR").await? else {
        return Ok(ExitCode::FAILURE);
    };
    let ops_listener = match &config.http.ops_addr {
        None => None,
        Some(addr) => match listen(addr, "[http] ops_addr", "TOCSIN_HTTP_OPS_ADDR").await? {
            Some(l) => Some(l),
            None => return Ok(ExitCode::FAILURE),
        },
    };
    let api = crate::api::Api::new(&config.http, &config.policy);
    tokio::spawn(http::serve(listener, readiness.clone(), Some(api.clone())));
    if let Some(ops) = ops_listener {
        tokio::spawn(http::serve(ops, readiness.clone(), None));
    }
    spawn_link_gauge(&supervisor, metrics.clone());

    let Some(store) = open_store(&config, &metrics, &mut stop).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    api.attach_store(open_side_store(&config, &store, "the API").await);
    // Webhooks and Alertmanager: their own tasks, fed by the store on a
    // connection of their own (Alertmanager's poll reads every overdue
    // expectation: 0.4 to 1.5 s with a standing backlog, every few seconds,
    // that held back the pipeline's commits on a shared connection); they
    // stop when `_delivery` is dropped at return.
    // No handle is kept here: the last handle of a PostgreSQL store must
    // not be dropped on this thread, whose runtime its client cannot block
    // (the tasks holding the others drop them off it).
    let delivering = !config.delivery.webhooks.is_empty() || config.delivery.alertmanager.is_some();
    let _delivery = if delivering {
        let side = open_side_store(&config, &store, "alert delivery").await;
        delivery::spawn(&config, &metrics, &side)?
    } else {
        delivery::spawn(&config, &metrics, &store)?
    };
    // Deletes what only served deduplication once past retention; stops
    // when `_housekeeping` is dropped at return.
    let _housekeeping = housekeeping::spawn(&config.store, store.clone(), metrics.clone());
    // Keeps `tocsin_store_up` and /readyz true in a quiet hour too; stops
    // when `_store_watch` is dropped at return.
    let _store_watch = watch_store(
        store.clone(),
        metrics.clone(),
        Duration::from_secs(config.store.unresponsive_after.as_secs().unsigned_abs()),
    );
    let tracker = restore_tracker(&config, &store, &metrics).await?;
    TrackerObserved { tracker: &tracker }.emit(&metrics);
    tracing::info!(
        open_expectations = tracker.open_count(),
        "tracker restored from the store"
    );

    let mut pipeline = pipeline::Pipeline::new(
        &config,
        tracker,
        store,
        metrics.clone(),
        readiness.consuming.clone(),
    );
    // What an earlier run left unpublished is waiting already: the gauge
    // says so from the start, not from the first round the broker confirms
    // (never, while it stays away).
    let _ = pipeline.outbox_left().await;
    let mut ever_connected = false;
    loop {
        // A session that ended soon after connecting with nothing
        // acknowledged (a dead-letter copy refused, basic.consume refused)
        // makes `connect` back off first, so such a failure is not retried
        // in a tight loop; a healthy session starts the backoff over.
        let session = tokio::select! {
            s = supervisor.connect() => s,
            () = stop.requested() => break,
        };
        ever_connected = true;
        // The dead-letter count runs beside the pipeline on the same
        // connection, and ends with it.
        let ended = tokio::select! {
            ended = pipeline.serve(&session, &mut stop, budget) => ended,
            never = count_dead_letters(&session, &config.amqp, &metrics) => match never {},
        };
        match ended {
            pipeline::Ended::Shutdown { clean } => {
                // Everything is settled by now; closing only says goodbye,
                // so a close that hangs (lapin can, after a channel-close
                // race) must not hold the exit.
                match tokio::time::timeout(budget.close(), session.close()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(error = %e, "closing the broker connection"),
                    Err(_) => tracing::info!(
                        waited_secs = budget.close().as_secs_f64(),
                        "the broker did not confirm the connection close in time; exiting all the same"
                    ),
                }
                tracing::info!(clean, "gateway stopped");
                return Ok(if clean {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            pipeline::Ended::LinkLost(reason) => {
                tracing::warn!(%reason, "broker link lost; reconnecting (uncommitted inputs will be redelivered)");
                // Nothing changes the outbox until the broker is back (the
                // last commit has landed): the gauge keeps this count
                // through the outage, whatever the relay managed to count
                // before its link went.
                let _ = pipeline.outbox_left().await;
            }
        }
    }
    // Stopped with no broker session. Exit 0 only when nothing waits in the
    // outbox: the last session ended without publishing what it committed
    // (or an earlier run left rows), and a clean exit would tell an upgrade
    // that nothing is left while alerts wait in the store.
    let left = pipeline.outbox_left().await;
    StoppedWithoutBroker {
        ever_connected,
        left: &left,
    }
    .emit();
    Ok(if matches!(left, Ok(0)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Listens on `addr`, which `setting` (and `var`) set, for the messages.
/// `None`, said: another process holds the port (an old gateway still
/// stopping), so a later start may succeed and the caller exits 1, which
/// systemd's unit restarts, not 2 (a configuration no restart mends, which
/// it does not). An address not on this host is the error: a typing error
/// would otherwise be restarted for ever.
async fn listen(
    addr: &str,
    setting: &str,
    var: &str,
) -> Result<Option<tokio::net::TcpListener>, Box<dyn std::error::Error>> {
    match http::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::error!(
                addr = %addr,
                error = %e,
                "cannot listen on {setting} ({var}) for now; exiting 1 to be started again"
            );
            Ok(None)
        }
        Err(e) => Err(format!("cannot listen on {addr} ({var}): {e}").into()),
    }
}

/// Opens the store, waiting out a store that is not there yet. `None` when
/// a shutdown was asked for first; an error for a store no wait can mend:
/// one a newer tocsin has migrated (a downgrade), which this version must
/// not write.
async fn open_store(
    config: &Config,
    metrics: &Metrics,
    stop: &mut shutdown::Stop,
) -> Result<Option<StoreHandle>, tocsin_store::StoreError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match open_writer(config).await {
            Ok(store) => {
                StoreRecovered.emit(metrics);
                tracing::info!(store = %tocsin_store::redact_url(&config.store.url), "store open");
                return Ok(Some(StoreHandle::new(store)));
            }
            Err(error @ tocsin_store::StoreError::SchemaTooNew { .. }) => return Err(error),
            Err(error) => {
                StoreFailed {
                    operation: "open",
                    error: &error,
                    transient: error.is_transient(),
                }
                .emit(metrics);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.requested() => return Ok(None),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One attempt to open the configured store, off the async runtime. The
/// password file is read at each attempt: a secret mounted or rotated
/// meanwhile is taken up, and an unreadable file is told like a store that
/// fails.
async fn open_configured(
    config: &Config,
) -> Result<Box<dyn tocsin_store::Store>, tocsin_store::StoreError> {
    let url = config.store.url.clone();
    let password = config.store.password();
    tokio::task::spawn_blocking(move || {
        let password = password.map_err(|reason| tocsin_store::StoreError::InvalidUrl {
            url: tocsin_store::redact_url(&url),
            reason,
        })?;
        tocsin_store::open_with(&url, password.as_deref())
    })
    .await
    .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// The pipeline's connection: the configured store, claimed as its one
/// writer. Another writer (a second gateway on the same configuration,
/// `replay --store` on this store) is waited out like a store that is
/// down, and said at each attempt: a gateway restarted while the old one
/// is still stopping starts once that one has let go.
async fn open_writer(
    config: &Config,
) -> Result<Box<dyn tocsin_store::Store>, tocsin_store::StoreError> {
    let mut store = open_configured(config).await?;
    tokio::task::spawn_blocking(move || store.claim_writer().map(|()| store))
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
}

/// A connection of its own for `user` (the API, alert delivery). Their
/// reads (a report over a year, a filter no index serves, every overdue
/// expectation) took the one connection the pipeline commits on, and held
/// back commits, acknowledgements and the clock. Another connection works
/// beside the writer (SQLite in WAL mode, PostgreSQL alike) and claims
/// nothing. A private in-memory database has only the one connection; and
/// if another cannot be opened, `user` shares the pipeline's and says so.
async fn open_side_store(config: &Config, pipeline: &StoreHandle, user: &str) -> StoreHandle {
    if config.store.url == "sqlite::memory:" {
        return pipeline.clone();
    }
    match open_configured(config).await {
        Ok(store) => StoreHandle::new(store),
        Err(error) => {
            tracing::warn!(%error, user, "sharing the pipeline's store connection: a connection of its own could not be opened");
            pipeline.clone()
        }
    }
}

async fn restore_tracker(
    config: &Config,
    store: &StoreHandle,
    metrics: &Metrics,
) -> Result<Tracker, Box<dyn std::error::Error>> {
    let (policy, tracker_config) = (config.policy.clone(), config.tracker.clone());
    let restored = store
        .call(move |s| crate::restore::from_store(s, policy, tracker_config))
        .await?;
    let (tracker, skipped) = restored?;
    for error in &skipped {
        RestoreRecordSkipped { error }.emit(metrics);
    }
    for (rule, open) in tracker.rules_kept_from_store() {
        RuleKeptFromStore { rule: &rule, open }.emit();
    }
    Ok(tracker)
}

/// Counts the dead-letter queue now and every `dead_letter_check_secs`
/// into `tocsin_dead_letters`, for as long as it is polled. A failed count
/// (the link going, a queue declared away) leaves the gauge as it was: the
/// pipeline is the judge of the link.
async fn count_dead_letters(
    session: &tocsin_amqp::Session,
    amqp: &tocsin_amqp::AmqpConfig,
    metrics: &Metrics,
) -> std::convert::Infallible {
    let queue = amqp.dead_letter_queue.as_str();
    let every = Duration::from_secs(amqp.dead_letter_check_secs);
    loop {
        match tocsin_amqp::queue_depth(session.connection(), queue).await {
            Ok(waiting) => DeadLettersCounted { queue, waiting }.emit(metrics),
            Err(error) => tracing::debug!(%error, queue, "cannot count the dead-letter queue"),
        }
        tokio::time::sleep(every).await;
    }
}

/// How often [`watch_store`] asks the store whether it answers.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(15);

/// A task that ends when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pings the store every [`STORE_CHECK_EVERY`]. `tocsin_store_up`, and with
/// it `/readyz` and `TocsinStoreDown`, changed only when a commit or the
/// outbox relay used the store: a PostgreSQL server that went away in a
/// quiet night left the gateway saying ready until the next message. A
/// failed ping marks the store down (the next use reconnects); an answer
/// marks it up again only after a failed ping of its own, never over a
/// commit's failure: a store that answers reads but refuses writes (a full
/// disk, a read-only replica after a failover) stays down. Each answer of
/// a SQLite store also measures its files (`tocsin_store_file_bytes`,
/// `tocsin_store_checkpoint_failing`).
///
/// A ping waits behind whatever holds the store (a commit, a long API
/// query): busy is not down, but a ping still waiting after
/// `[store] unresponsive_after` marks the store down until it answers. A
/// commit waiting on a lock (a DBA's `VACUUM FULL`, a lost synchronous
/// standby, hung storage) had stopped ingestion and the event clock with
/// it, while the store was said up and the gateway ready, and no alert
/// fired. One ping at a time: it is waited for, not given up and sent
/// again, so that a hang does not gather blocked threads.
fn watch_store(store: StoreHandle, metrics: Arc<Metrics>, patience: Duration) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(STORE_CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_last = false;
        loop {
            ticks.tick().await;
            let ping = store.call(|s| {
                s.ping()?;
                Ok(s.files())
            });
            tokio::pin!(ping);
            let answer = match tokio::time::timeout(patience, &mut ping).await {
                Ok(answer) => answer,
                Err(_) => {
                    StoreUnresponsive { waited: patience }.emit(&metrics);
                    failed_last = true;
                    ping.await
                }
            };
            match answer {
                Ok(files) => {
                    if failed_last {
                        StoreRecovered.emit(&metrics);
                    }
                    failed_last = false;
                    if let Some(files) = files {
                        StoreFilesMeasured(files).emit(&metrics);
                    }
                }
                Err(error) => {
                    StoreFailed {
                        operation: "ping",
                        transient: error.is_transient(),
                        error: &error,
                    }
                    .emit(&metrics);
                    failed_last = true;
                }
            }
        }
    }))
}

/// Mirrors the broker link state into `tocsin_amqp_connected`.
fn spawn_link_gauge(supervisor: &Supervisor, metrics: Arc<Metrics>) {
    let mut link = supervisor.subscribe();
    tokio::spawn(async move {
        loop {
            let state = *link.borrow_and_update();
            metrics.amqp_connected.set(state.gauge());
            if link.changed().await.is_err() {
                return;
            }
        }
    });
}
