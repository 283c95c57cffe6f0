//! Webhook and Alertmanager delivery (crate `tocsin-delivery`), started
//! with the gateway and fed by its store: the pipeline commits one delivery
//! row per subscriber with each alert, the workers send them.

use tocsin_delivery::{Delivery, StoreAccess, Workers};
use tocsin_store::{Store, StoreError};

use super::StoreHandle;
use crate::config::Config;
use crate::internal_events::Metrics;

impl StoreAccess for StoreHandle {
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        StoreHandle::call(self, f).await
    }
}

/// Registers the delivery metrics and starts one worker per webhook
/// subscriber and one for Alertmanager, when configured.
pub fn spawn(
    config: &Config,
    metrics: &Metrics,
    store: &StoreHandle,
) -> Result<Workers, Box<dyn std::error::Error>> {
    let delivery = Delivery::new(config.delivery.clone(), &metrics.registry)?;
    let workers = delivery.spawn(store.clone())?;
    if !workers.is_empty() {
        tracing::info!(
            webhooks = config.delivery.webhooks.len(),
            alertmanager = config.delivery.alertmanager.is_some(),
            "alert delivery started"
        );
    }
    Ok(workers)
}
