//! Store housekeeping: deletes the rows that only serve short-term
//! deduplication (outbox messages the broker confirmed, ids of processed
//! inputs) once they are older than `[store] retention`, so that the store
//! does not grow with every message for ever. It deletes a bounded chunk per
//! store call, because the pipeline shares the one store connection and
//! must never wait behind a large delete.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tocsin_store::{Store, StoreError};
use tokio::task::JoinHandle;

use super::StoreHandle;
use crate::config::StoreSection;
use crate::internal_events::{Metrics, StorePruneFailed, StorePruned};

/// Most rows one store call deletes.
const CHUNK: usize = 10_000;

/// The running housekeeping task; stops when dropped.
pub struct Housekeeping(Option<JoinHandle<()>>);

impl Drop for Housekeeping {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Starts housekeeping, unless `retention` is zero (keep everything). The
/// first round runs at once, then one every `housekeeping_every`.
pub fn spawn(config: &StoreSection, store: StoreHandle, metrics: Arc<Metrics>) -> Housekeeping {
    let retention = config.retention.delta();
    if retention.is_zero() {
        tracing::info!(
            "store housekeeping off ([store] retention = 0s): the outbox and input records are kept"
        );
        return Housekeeping(None);
    }
    let every = Duration::from_secs(config.housekeeping_every.as_secs().max(1).unsigned_abs());
    Housekeeping(Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let before = Utc::now() - retention;
            round(&store, &metrics, before).await;
        }
    })))
}

/// One round: each table in turn, chunk after chunk, until a chunk comes
/// back short or the store fails.
async fn round(store: &StoreHandle, metrics: &Metrics, before: DateTime<Utc>) {
    type Prune = fn(&mut dyn Store, DateTime<Utc>, usize) -> Result<u64, StoreError>;
    let tables: [(&str, Prune); 2] = [
        ("outbox", |s, b, n| s.outbox_prune(b, n)),
        ("inputs", |s, b, n| s.inputs_prune(b, n)),
    ];
    for (table, prune) in tables {
        let mut rows = 0;
        loop {
            match store.call(move |s| prune(s, before, CHUNK)).await {
                Ok(n) => {
                    rows += n;
                    if n < CHUNK as u64 {
                        break;
                    }
                }
                Err(error) => {
                    StorePruneFailed {
                        table,
                        error: &error,
                    }
                    .emit(metrics);
                    break;
                }
            }
        }
        StorePruned {
            table,
            rows,
            before,
        }
        .emit(metrics);
    }
}
