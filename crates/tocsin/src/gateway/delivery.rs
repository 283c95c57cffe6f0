//! Webhook and Alertmanager delivery (crate `tocsin-delivery`), started
//! with the gateway and fed by its store: the pipeline commits one delivery
//! row per subscriber with each alert, the workers send them.

use tocsin_delivery::{Delivery, Workers};

use super::StoreHandle;
use crate::config::Config;
use crate::internal_events::Metrics;

/// Registers the delivery metrics and starts one worker per webhook
/// subscriber and one for Alertmanager, when configured.
pub fn spawn(
    config: &Config,
    metrics: &Metrics,
    store: &StoreHandle,
) -> Result<Workers, Box<dyn std::error::Error>> {
    let delivery = Delivery::new(config.delivery.clone(), &metrics.registry)?;
    let workers = delivery.spawn(store.clone())?;
    if !config.delivery.webhooks.is_empty() || config.delivery.alertmanager.is_some() {
        tracing::info!(
            webhooks = config.delivery.webhooks.len(),
            alertmanager = config.delivery.alertmanager.is_some(),
            "alert delivery started"
        );
    }
    Ok(workers)
}
