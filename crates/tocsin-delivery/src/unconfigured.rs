//! Deliveries queued for a subscriber that is no longer configured.
//!
//! Each configured subscriber has a worker; a subscriber renamed or removed
//! from `[[webhooks]]` has none, so whatever was queued for it under the
//! old name would wait in the store unseen. At start they are counted once
//! and told: a warning naming the subscriber and a gauge. They are kept
//! pending, not failed, so that putting the name back delivers them.

use std::sync::Arc;
use std::time::Duration;

use crate::access::StoreAccess;
use crate::events::{DeliveryMetrics, DeliveryStoreFailed, UnconfiguredSubscriberPending};

/// Longest wait between two reads while the store is unavailable.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Counts pending deliveries of subscribers not in `configured`, retrying
/// while the store is unavailable, then ends.
pub(crate) async fn report<S: StoreAccess>(
    store: S,
    configured: Vec<String>,
    metrics: Arc<DeliveryMetrics>,
) {
    let mut wait = Duration::from_secs(1);
    loop {
        match store.call(|s| s.pending_deliveries_by_subscriber()).await {
            Ok(rows) => {
                let mut total = 0u64;
                for (subscriber, pending) in rows {
                    if pending > 0 && !configured.contains(&subscriber) {
                        UnconfiguredSubscriberPending {
                            subscriber: &subscriber,
                            pending,
                        }
                        .emit();
                        total += pending;
                    }
                }
                metrics
                    .webhook_unconfigured_pending
                    .set(i64::try_from(total).unwrap_or(i64::MAX));
                return;
            }
            Err(error) => {
                DeliveryStoreFailed {
                    operation: "count pending deliveries",
                    worker: "unconfigured",
                    error: &error,
                }
                .emit(&metrics);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
            }
        }
    }
}
