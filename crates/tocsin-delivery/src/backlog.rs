//! Each subscriber's backlog, read from the store for Prometheus.
//!
//! A subscriber that refuses everything is otherwise invisible until its
//! first delivery reaches its maximum age (a day by default): its worker
//! logs each probe, but nothing a rule can alert on says how many alerts
//! wait or for how long. Every [`INTERVAL`] this task reads the pending
//! deliveries by subscriber and sets `tocsin_webhook_pending` and
//! `tocsin_webhook_oldest_pending_timestamp_seconds` (the commit time of
//! the oldest, present only while one waits: a timestamp, not an age, so
//! it is right between reads and `time() - it` is the wait).
//!
//! Names that are no longer configured have no worker: the first read
//! tells of each at warn level and `tocsin_webhook_unconfigured_pending`
//! keeps their total. Their deliveries are kept pending, not failed, so
//! that putting the name back delivers them.

use std::sync::Arc;
use std::time::Duration;

use tocsin_store::SubscriberBacklog;

use crate::access::StoreAccess;
use crate::events::{DeliveryMetrics, DeliveryStoreFailed, UnconfiguredSubscriberPending};

/// How often the backlog is read: often enough for an alert rule, rarely
/// enough to cost the store nothing (one grouped count of pending rows).
pub(crate) const INTERVAL: Duration = Duration::from_secs(15);

/// The worker label of this task's store failures.
pub(crate) const WORKER: &str = "backlog";

/// Reads the backlog every `interval` until the task is aborted.
pub(crate) async fn run<S: StoreAccess>(
    store: S,
    configured: Vec<String>,
    metrics: Arc<DeliveryMetrics>,
    interval: Duration,
) {
    let mut told = false;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.call(|s| s.delivery_backlog()).await {
            Ok(rows) => {
                show(&rows, &configured, &metrics, !told);
                told = true;
            }
            // The gauges keep their last values; the failure is counted.
            Err(error) => DeliveryStoreFailed {
                operation: "count pending deliveries",
                worker: WORKER,
                error: &error,
            }
            .emit(&metrics),
        }
    }
}

/// Sets the gauges from one read; `tell` logs the unconfigured names.
fn show(rows: &[SubscriberBacklog], configured: &[String], m: &DeliveryMetrics, tell: bool) {
    let mut unconfigured = 0u64;
    for name in configured {
        match rows.iter().find(|r| &r.subscriber == name) {
            Some(r) => {
                m.webhook_pending
                    .with_label_values(&[name])
                    .set(i64::try_from(r.pending).unwrap_or(i64::MAX));
                m.webhook_oldest_pending
                    .with_label_values(&[name])
                    .set(r.oldest.timestamp_micros() as f64 / 1e6);
            }
            None => {
                m.webhook_pending.with_label_values(&[name]).set(0);
                // Absent while nothing waits (an error only when it was
                // never set).
                let _ = m.webhook_oldest_pending.remove_label_values(&[name]);
            }
        }
    }
    for r in rows.iter().filter(|r| !configured.contains(&r.subscriber)) {
        if tell {
            UnconfiguredSubscriberPending {
                subscriber: &r.subscriber,
                pending: r.pending,
            }
            .emit();
        }
        unconfigured += r.pending;
    }
    m.webhook_unconfigured_pending
        .set(i64::try_from(unconfigured).unwrap_or(i64::MAX));
}
