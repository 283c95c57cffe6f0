//! What delivery does that someone may want to see, in the gateway's
//! Vector-style vocabulary: each happening is a type whose `emit` writes its
//! log line and its metrics together. Logs carry the subscriber's name and
//! the alert id (a hash), never the body, the URL's query or a secret.

use std::time::Duration;

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The delivery metrics, registered in the gateway's registry.
pub struct DeliveryMetrics {
    /// `tocsin_webhook_deliveries_total{subscriber,result}`, result one of
    /// `delivered`, `retried`, `failed`, `withdrawn`.
    pub webhook_deliveries: IntCounterVec,
    /// `tocsin_alertmanager_posts_total{result}`, result `ok` or `error`.
    pub alertmanager_posts: IntCounterVec,
    /// `tocsin_alertmanager_alerts_firing`: alerts Alertmanager was last
    /// told are firing.
    pub alertmanager_firing: IntGauge,
    /// `tocsin_webhook_pending{subscriber}`: deliveries waiting, per
    /// configured subscriber (see [`crate::backlog`]).
    pub webhook_pending: IntGaugeVec,
    /// `tocsin_webhook_oldest_pending_timestamp_seconds{subscriber}`: when
    /// the oldest of them was committed; absent while none waits.
    pub webhook_oldest_pending: GaugeVec,
    /// `tocsin_webhook_unconfigured_pending`: deliveries pending for
    /// subscribers no longer configured (no worker sends them).
    pub webhook_unconfigured_pending: IntGauge,
    /// `tocsin_delivery_store_errors_total{worker}`: store operations that
    /// failed under a delivery worker (a subscriber's name, `alertmanager`
    /// or `backlog`). The pipeline's store can be up while these fail
    /// (a damaged table only they read): nothing is delivered meanwhile.
    pub store_errors: IntCounterVec,
}

/// Results of `tocsin_webhook_deliveries_total`.
pub const WEBHOOK_RESULTS: [&str; 4] = ["delivered", "retried", "failed", "withdrawn"];

impl DeliveryMetrics {
    /// Creates the metrics in `registry`, every configured subscriber's
    /// series at zero (so alert rules see them before the first alert).
    pub fn register(registry: &Registry, subscribers: &[&str]) -> Result<Self, prometheus::Error> {
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "tocsin_webhook_deliveries_total",
                "Webhook delivery attempts, by subscriber and result (delivered, retried, failed; withdrawn: queued before the subscriber's filters excluded it, not sent).",
            ),
            &["subscriber", "result"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        for s in subscribers {
            for r in WEBHOOK_RESULTS {
                webhook_deliveries.with_label_values(&[s, r]);
            }
        }
        let alertmanager_posts = IntCounterVec::new(
            Opts::new(
                "tocsin_alertmanager_posts_total",
                "Posts of alerts to Alertmanager's API, by result (ok, error).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(alertmanager_posts.clone()))?;
        for r in ["ok", "error"] {
            alertmanager_posts.with_label_values(&[r]);
        }
        let alertmanager_firing = IntGauge::new(
            "tocsin_alertmanager_alerts_firing",
            "Alerts Alertmanager was last told are firing (groups of overdue documents and delivery failures).",
        )?;
        registry.register(Box::new(alertmanager_firing.clone()))?;
        let webhook_pending = IntGaugeVec::new(
            Opts::new(
                "tocsin_webhook_pending",
                "Webhook deliveries waiting to be accepted, by configured subscriber (read from the store every 15 s).",
            ),
            &["subscriber"],
        )?;
        registry.register(Box::new(webhook_pending.clone()))?;
        for s in subscribers {
            webhook_pending.with_label_values(&[s]);
        }
        let webhook_oldest_pending = GaugeVec::new(
            Opts::new(
                "tocsin_webhook_oldest_pending_timestamp_seconds",
                "When the oldest webhook delivery still waiting for the subscriber was committed (Unix time); absent while none waits.",
            ),
            &["subscriber"],
        )?;
        registry.register(Box::new(webhook_oldest_pending.clone()))?;
        let webhook_unconfigured_pending = IntGauge::new(
            "tocsin_webhook_unconfigured_pending",
            "Webhook deliveries pending for subscribers no longer configured (renamed or removed): no worker sends them.",
        )?;
        registry.register(Box::new(webhook_unconfigured_pending.clone()))?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "tocsin_delivery_store_errors_total",
                "Store operations that failed under an alert delivery worker, by worker (a webhook subscriber, alertmanager, backlog): nothing is delivered (or, for backlog, counted) while they fail.",
            ),
            &["worker"],
        )?;
        registry.register(Box::new(store_errors.clone()))?;
        for w in subscribers
            .iter()
            .copied()
            .chain(["alertmanager", crate::backlog::WORKER])
        {
            store_errors.with_label_values(&[w]);
        }
        Ok(Self {
            webhook_deliveries,
            alertmanager_posts,
            alertmanager_firing,
            webhook_pending,
            webhook_oldest_pending,
            webhook_unconfigured_pending,
            store_errors,
        })
    }

    /// Metrics in a registry of their own (tests, tools).
    pub fn unregistered(subscribers: &[&str]) -> Self {
        Self::register(&Registry::new(), subscribers).expect("a fresh registry accepts them")
    }
}

/// A subscriber accepted an alert (2xx).
pub struct WebhookDelivered<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// Which attempt it was (1 for the first).
    pub attempt: u32,
    /// The HTTP status.
    pub status: u16,
}

impl WebhookDelivered<'_> {
    /// Logs it (debug) and counts it.
    pub fn emit(self, m: &DeliveryMetrics) {
        tracing::debug!(
            subscriber = self.subscriber,
            alert_id = self.alert_id,
            attempt = self.attempt,
            status = self.status,
            "webhook delivered"
        );
        m.webhook_deliveries
            .with_label_values(&[self.subscriber, "delivered"])
            .inc();
    }
}

/// A subscriber refused several alerts' bodies in a row and accepted none:
/// it is taken to refuse every body, and its worker pauses as for one that
/// is down.
pub struct WebhookRefusesEveryBody<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// Bodies refused in a row.
    pub in_a_row: u32,
    /// The pause before the next attempt.
    pub pause: Duration,
}

impl WebhookRefusesEveryBody<'_> {
    /// Logs it (warn).
    pub fn emit(self) {
        tracing::warn!(
            subscriber = self.subscriber,
            in_a_row = self.in_a_row,
            retry_in_secs = self.pause.as_secs_f64(),
            "webhook subscriber refuses every alert's body (400, 409, 413 or 422): pausing as \
             for a subscriber that is down"
        );
    }
}

/// An attempt was refused or timed out; it will be tried again.
pub struct WebhookRetried<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// Which attempt failed.
    pub attempt: u32,
    /// Why (status or transport error, no URL).
    pub error: &'a str,
    /// Wait before the next attempt.
    pub next_in: Duration,
    /// The subscriber refused this alert's body (400, 409, 413, 422), not
    /// everything: it is retried on its own backoff all day, so only its
    /// first refusal is a warning (a subscriber refusing one alert kind
    /// logged a warning per alert every ten minutes).
    pub of_this_alert: bool,
}

impl WebhookRetried<'_> {
    /// Logs it (warn; debug for a repeated refusal of one alert) and
    /// counts it.
    pub fn emit(self, m: &DeliveryMetrics) {
        let message = if self.of_this_alert {
            "webhook delivery refused for its body; will retry until its maximum age \
             (further refusals of this alert at debug level)"
        } else {
            "webhook delivery failed; will retry"
        };
        macro_rules! log {
            ($level:ident) => {
                tracing::$level!(
                    subscriber = self.subscriber,
                    alert_id = self.alert_id,
                    attempt = self.attempt,
                    error = self.error,
                    retry_in_secs = self.next_in.as_secs_f64(),
                    "{message}"
                )
            };
        }
        if self.of_this_alert && self.attempt > 1 {
            log!(debug);
        } else {
            log!(warn);
        }
        m.webhook_deliveries
            .with_label_values(&[self.subscriber, "retried"])
            .inc();
    }
}

/// A queued delivery was not sent: the subscriber's settings changed since
/// its alert was committed (its filters now exclude it, or it cannot be
/// given the NHS number hashing asked for since).
pub struct WebhookWithdrawn<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// Why it is not sent.
    pub reason: &'a str,
}

impl WebhookWithdrawn<'_> {
    /// Logs it (info: the operator's own change did this) and counts it.
    pub fn emit(self, m: &DeliveryMetrics) {
        tracing::info!(
            subscriber = self.subscriber,
            alert_id = self.alert_id,
            reason = self.reason,
            "queued webhook delivery not sent: the subscriber's settings changed since it was queued"
        );
        m.webhook_deliveries
            .with_label_values(&[self.subscriber, "withdrawn"])
            .inc();
    }
}

/// A delivery was given up: still refused when it reached its maximum age.
pub struct WebhookFailed<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The last reason.
    pub error: &'a str,
    /// Given up with others in one round, which [`WebhooksGivenUp`] says
    /// once: this one is logged at debug only.
    pub in_round: bool,
}

impl WebhookFailed<'_> {
    /// Logs it (error; debug when in a round said as a whole) and counts
    /// it.
    pub fn emit(self, m: &DeliveryMetrics) {
        if self.in_round {
            tracing::debug!(
                subscriber = self.subscriber,
                alert_id = self.alert_id,
                attempts = self.attempts,
                error = self.error,
                "webhook delivery given up after its maximum age; marked failed"
            );
        } else {
            tracing::error!(
                subscriber = self.subscriber,
                alert_id = self.alert_id,
                attempts = self.attempts,
                error = self.error,
                "webhook delivery given up after its maximum age; marked failed"
            );
        }
        m.webhook_deliveries
            .with_label_values(&[self.subscriber, "failed"])
            .inc();
    }
}

/// A subscriber's backlog given up in one round: every delivery that had
/// reached its maximum age while the subscriber refused, without an attempt
/// each. One error line for the round, where one a delivery flooded the
/// log (a review counted 21,000 lines in a minute); each alert id is at
/// debug, each counted `failed`.
pub struct WebhooksGivenUp<'a> {
    /// The subscriber's name.
    pub subscriber: &'a str,
    /// How many were given up.
    pub count: usize,
    /// The subscriber's last refusal.
    pub error: &'a str,
}

impl WebhooksGivenUp<'_> {
    /// Logs it (error).
    pub fn emit(self) {
        tracing::error!(
            subscriber = self.subscriber,
            count = self.count,
            error = self.error,
            "{} webhook deliveries given up after their maximum age while the subscriber \
             refused them; marked failed (alert ids at debug level; \
             tocsin_webhook_deliveries_total{{result=\"failed\"}} counts them)",
            self.count
        );
    }
}

/// Alertmanager accepted a post.
pub struct AlertmanagerPosted {
    /// Firing alerts in it.
    pub firing: usize,
    /// Resolved alerts in it.
    pub resolved: usize,
}

impl AlertmanagerPosted {
    /// Logs it (debug), counts it and sets the firing gauge.
    pub fn emit(self, m: &DeliveryMetrics) {
        tracing::debug!(
            firing = self.firing,
            resolved = self.resolved,
            "alerts posted to Alertmanager"
        );
        m.alertmanager_posts.with_label_values(&["ok"]).inc();
        m.alertmanager_firing.set(self.firing as i64);
    }
}

/// A post to Alertmanager failed; the next round tries again.
pub struct AlertmanagerPostFailed<'a> {
    /// Where it was posted (credentials in it redacted), so that the
    /// operator knows which Alertmanager to look at.
    pub url: &'a str,
    /// Why.
    pub error: &'a str,
}

impl AlertmanagerPostFailed<'_> {
    /// Logs it (warn) and counts it.
    pub fn emit(self, m: &DeliveryMetrics) {
        tracing::warn!(
            url = %tocsin_store::redact_url(self.url),
            error = self.error,
            "posting to Alertmanager failed; will retry"
        );
        m.alertmanager_posts.with_label_values(&["error"]).inc();
    }
}

/// The store failed under a delivery worker; it tries again later.
pub struct DeliveryStoreFailed<'a> {
    /// What the worker was doing.
    pub operation: &'a str,
    /// Whose worker (`alertmanager` for that one).
    pub worker: &'a str,
    /// The store's error (redacted by the store).
    pub error: &'a tocsin_store::StoreError,
}

impl DeliveryStoreFailed<'_> {
    /// Logs it (warn) and counts it.
    pub fn emit(self, m: &DeliveryMetrics) {
        tracing::warn!(
            operation = self.operation,
            worker = self.worker,
            error = %self.error,
            "delivery worker: store unavailable; retrying"
        );
        m.store_errors.with_label_values(&[self.worker]).inc();
    }
}

/// Deliveries wait for a subscriber that is no longer configured.
pub struct UnconfiguredSubscriberPending<'a> {
    /// The name they were queued under.
    pub subscriber: &'a str,
    /// How many.
    pub pending: u64,
}

impl UnconfiguredSubscriberPending<'_> {
    /// Logs it (warn), at the first read of the backlog; the gauge is set
    /// for all of them at once.
    pub fn emit(self) {
        tracing::warn!(
            subscriber = self.subscriber,
            pending = self.pending,
            "webhook deliveries are pending for a subscriber that is not configured: \
             no worker sends them; restore its [[webhooks]] entry to deliver them"
        );
    }
}
