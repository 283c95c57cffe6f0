//! Alert delivery beyond AMQP: signed webhooks and Alertmanager.
//!
//! - Webhooks: the pipeline asks the [`Router`] which subscribers receive
//!   each alert and commits one delivery row per subscriber in the alert's
//!   own transaction (`tocsin_store::Batch::deliveries`), so nothing is lost
//!   on a crash. A worker per subscriber POSTs the rows, signed
//!   (`X-Tocsin-Signature: sha256=<HMAC-SHA256 of the body>`, see [`sign`]),
//!   with `Idempotency-Key: <alert_id>`; a 2xx settles a row for good, any
//!   other answer or a timeout retries with exponential backoff until the
//!   row's maximum age, then marks it failed.
//! - Alertmanager: level-triggered from the store (see [`alertmanager`]);
//!   never a patient identifier.
//!
//! Delivery to a subscriber is at least once: an attempt accepted by the
//! subscriber whose outcome the store could not record before a crash is
//! sent again after the restart, with the same `Idempotency-Key`.

mod access;
pub mod alertmanager;
mod backlog;
pub mod config;
mod error;
pub mod events;
mod filter;
mod route;
pub mod sign;
mod webhook;

use std::sync::Arc;

pub use access::{SharedStore, StoreAccess};
pub use config::{AlertmanagerSection, DeliveryConfig, FilterSection, WebhookSection};
pub use error::{BodyError, ConfigError};
pub use events::DeliveryMetrics;
pub use filter::Filters;
pub use route::Router;

/// The configured delivery channels and their metrics; spawns the workers.
pub struct Delivery {
    config: DeliveryConfig,
    metrics: Arc<DeliveryMetrics>,
    backlog_interval: std::time::Duration,
}

impl Delivery {
    /// Registers the delivery metrics in `registry` (the one `/metrics`
    /// renders).
    pub fn new(
        config: DeliveryConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let names: Vec<&str> = config.webhooks.iter().map(|w| w.name.as_str()).collect();
        let metrics = Arc::new(DeliveryMetrics::register(registry, &names)?);
        Ok(Self::with_metrics(config, metrics))
    }

    /// Uses metrics registered elsewhere (tests keep a handle on them).
    pub fn with_metrics(config: DeliveryConfig, metrics: Arc<DeliveryMetrics>) -> Self {
        Self {
            config,
            metrics,
            backlog_interval: backlog::INTERVAL,
        }
    }

    /// Reads the subscribers' backlog every `interval` instead of every
    /// 15 s, so that a test sees its gauges move in its own time.
    pub fn with_backlog_interval(mut self, interval: std::time::Duration) -> Self {
        self.backlog_interval = interval;
        self
    }

    /// The router the pipeline asks which deliveries to commit with an
    /// alert.
    pub fn router(&self) -> Router {
        Router::new(self.config.webhooks.clone())
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<DeliveryMetrics> {
        &self.metrics
    }

    /// Starts one task per webhook subscriber, one for Alertmanager (when
    /// configured), and one that reads the subscribers' backlog for
    /// Prometheus and tells of deliveries pending for subscribers no longer
    /// configured. They run until the returned [`Workers`] is dropped.
    pub fn spawn<S: StoreAccess>(&self, store: S) -> Result<Workers, reqwest::Error> {
        let mut tasks = Vec::new();
        for hook in &self.config.webhooks {
            let worker = webhook::WebhookWorker {
                client: webhook::client(hook)?,
                hook: hook.clone(),
                store: store.clone(),
                metrics: self.metrics.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        tasks.push(tokio::spawn(backlog::run(
            store.clone(),
            self.config
                .webhooks
                .iter()
                .map(|w| w.name.clone())
                .collect(),
            self.metrics.clone(),
            self.backlog_interval,
        )));
        if let Some(am) = &self.config.alertmanager {
            let worker = alertmanager::AlertmanagerWorker {
                client: alertmanager::client(am)?,
                config: am.clone(),
                store,
                metrics: self.metrics.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        Ok(Workers(tasks))
    }
}

/// The running delivery tasks; dropping this stops them (a delivery in
/// flight is abandoned and stays pending, to be sent again).
pub struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Workers {
    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// A URL fit for logs: no password, no query.
pub(crate) fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}
