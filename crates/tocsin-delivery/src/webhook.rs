//! One subscriber's worker: reads its due deliveries from the store, POSTs
//! each, records what happened.
//!
//! Each subscriber has a task of its own, so a subscriber that is down or
//! slow holds no other back. Within a subscriber deliveries go one at a
//! time, oldest due first; after a refusal the worker pauses (doubling, up
//! to the retry maximum) before probing again, so a dead endpoint costs one
//! attempt per pause rather than one per queued alert. When it refuses,
//! the other due deliveries that reached their maximum age are marked
//! failed without an attempt each, so that a backlog is given up on time
//! rather than one row per pause.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use tocsin_store::{DeliveryOutcome, PendingDelivery};

use crate::access::StoreAccess;
use crate::config::Webhook;
use crate::events::{
    DeliveryMetrics, DeliveryStoreFailed, WebhookDelivered, WebhookFailed, WebhookRetried,
};
use crate::sign::{ATTEMPT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};

/// Most deliveries read from the store at once.
const ROUND: usize = 100;

/// The worker of one subscriber.
pub(crate) struct WebhookWorker<S> {
    pub(crate) hook: Webhook,
    pub(crate) client: reqwest::Client,
    pub(crate) store: S,
    pub(crate) metrics: Arc<DeliveryMetrics>,
}

/// Builds the HTTP client of one webhook: its timeout, no redirects (a
/// redirected POST would be re-sent as a GET, unsigned).
pub(crate) fn client(hook: &Webhook) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(hook.timeout)
        .connect_timeout(hook.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl<S: StoreAccess> WebhookWorker<S> {
    /// Runs until the task is aborted.
    pub(crate) async fn run(self) {
        let mut refusals = 0u32;
        loop {
            let now = Utc::now();
            let name = self.hook.name.clone();
            let due = match self
                .store
                .call(move |s| s.deliveries_due(&name, now, ROUND))
                .await
            {
                Ok(d) => d,
                Err(error) => {
                    self.store_failed("read due deliveries", &error);
                    tokio::time::sleep(self.hook.poll).await;
                    continue;
                }
            };
            if due.is_empty() {
                tokio::time::sleep(self.idle_wait(now).await).await;
                continue;
            }
            // The first due delivery is attempted whatever its age (a row
            // that reached its maximum age gets its last attempt). If the
            // subscriber refuses it, the others that reached their maximum
            // age are given up now, without an attempt each: a backlog is
            // given up on time, not one row per pause. If it accepts, the
            // rest go in order as usual.
            let mut due = due.into_iter();
            while let Some(d) = due.next() {
                match self.deliver(d).await {
                    Some(error) => {
                        refusals = refusals.saturating_add(1);
                        let now = Utc::now();
                        for d in due.by_ref().filter(|d| now >= self.give_up_at(d)) {
                            self.give_up(d, &error, now).await;
                        }
                        tokio::time::sleep(backoff(&self.hook, refusals)).await;
                        break;
                    }
                    None => refusals = 0,
                }
            }
        }
    }

    /// When a delivery stops being retried: its commit plus the maximum age.
    fn give_up_at(&self, d: &PendingDelivery) -> DateTime<Utc> {
        d.created_at
            + chrono::Duration::from_std(self.hook.max_age).unwrap_or(chrono::Duration::MAX)
    }

    /// Marks a delivery failed without another attempt: it reached its
    /// maximum age while the subscriber was refusing.
    async fn give_up(&self, d: PendingDelivery, last_refusal: &str, now: DateTime<Utc>) {
        let error = format!(
            "reached its maximum age while the subscriber was refusing (last refusal: {last_refusal})"
        );
        WebhookFailed {
            subscriber: &self.hook.name,
            alert_id: &d.alert_id,
            attempts: d.attempts,
            error: &error,
        }
        .emit(&self.metrics);
        self.record(d.seq, DeliveryOutcome::Failed { error }, now)
            .await;
    }

    /// How long to sleep with nothing due: until the next retry, but never
    /// longer than the poll interval (new alerts are committed meanwhile).
    async fn idle_wait(&self, now: DateTime<Utc>) -> Duration {
        let name = self.hook.name.clone();
        match self.store.call(move |s| s.delivery_next_due(&name)).await {
            Ok(Some(t)) => (t - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.hook.poll),
            Ok(None) => self.hook.poll,
            Err(error) => {
                self.store_failed("read next due delivery", &error);
                self.hook.poll
            }
        }
    }

    /// One attempt on one delivery, recorded. The reason when it was
    /// refused.
    async fn deliver(&self, d: PendingDelivery) -> Option<String> {
        let attempt = d.attempts.saturating_add(1);
        let result = self.post(&d, attempt).await;
        let now = Utc::now();
        let outcome = match &result {
            Ok(status) => {
                WebhookDelivered {
                    subscriber: &self.hook.name,
                    alert_id: &d.alert_id,
                    attempt,
                    status: *status,
                }
                .emit(&self.metrics);
                DeliveryOutcome::Delivered
            }
            Err(error) => self.refused(&d, attempt, error.clone(), now),
        };
        self.record(d.seq, outcome, now).await;
        result.err()
    }

    /// Records what became of a delivery, retrying while the store is away
    /// (an accepted alert left pending would be sent again).
    async fn record(&self, seq: i64, outcome: DeliveryOutcome, now: DateTime<Utc>) {
        let mut wait = Duration::from_millis(100);
        loop {
            let o = outcome.clone();
            match self
                .store
                .call(move |s| s.delivery_record(seq, &o, now))
                .await
            {
                Ok(()) => break,
                Err(error) => {
                    self.store_failed("record delivery", &error);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.hook.poll.max(Duration::from_secs(5)));
                }
            }
        }
    }

    /// The outcome of a refused attempt: retry after the backoff, or give
    /// up once the delivery has reached its maximum age.
    fn refused(
        &self,
        d: &PendingDelivery,
        attempt: u32,
        error: String,
        now: DateTime<Utc>,
    ) -> DeliveryOutcome {
        let give_up_at = self.give_up_at(d);
        if now >= give_up_at {
            WebhookFailed {
                subscriber: &self.hook.name,
                alert_id: &d.alert_id,
                attempts: attempt,
                error: &error,
            }
            .emit(&self.metrics);
            return DeliveryOutcome::Failed { error };
        }
        let wait = backoff(&self.hook, attempt);
        let at = (now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX))
            .min(give_up_at);
        WebhookRetried {
            subscriber: &self.hook.name,
            alert_id: &d.alert_id,
            attempt,
            error: &error,
            next_in: (at - now).to_std().unwrap_or(Duration::ZERO),
        }
        .emit(&self.metrics);
        DeliveryOutcome::Retry { at, error }
    }

    /// POSTs the body; the status on a 2xx, else why not.
    async fn post(&self, d: &PendingDelivery, attempt: u32) -> Result<u16, String> {
        let idempotency = HeaderValue::from_str(&d.alert_id)
            .map_err(|_| "the alert id is not a valid header value".to_string())?;
        let response = self
            .client
            .post(self.hook.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .header(IDEMPOTENCY_HEADER, idempotency)
            .header(SIGNATURE_HEADER, signature(&self.hook.secret, &d.body))
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(d.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e, self.hook.timeout))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }

    fn store_failed(&self, operation: &str, error: &tocsin_store::StoreError) {
        DeliveryStoreFailed {
            operation,
            worker: &self.hook.name,
            error,
        }
        .emit();
    }
}

/// The wait after the `n`th refusal: the initial wait doubled `n - 1`
/// times, at most the maximum.
pub(crate) fn backoff(hook: &Webhook, n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
    hook.retry_initial
        .checked_mul(factor)
        .unwrap_or(hook.retry_max)
        .min(hook.retry_max)
}

/// A transport error in words, without the URL (its query may hold a
/// token).
pub(crate) fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {:.1} s", timeout.as_secs_f64());
    }
    let mut out = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filters;

    fn hook(initial_ms: u64, max_ms: u64) -> Webhook {
        Webhook {
            name: "t".into(),
            url: reqwest::Url::parse("http://127.0.0.1:1/").unwrap(),
            secret: b"s".to_vec(),
            timeout: Duration::from_secs(1),
            retry_initial: Duration::from_millis(initial_ms),
            retry_max: Duration::from_millis(max_ms),
            max_age: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            filters: Filters::default(),
            nhs_number_key: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let h = hook(100, 1000);
        let waits: Vec<u128> = (1..=6).map(|n| backoff(&h, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&h, u32::MAX), Duration::from_millis(1000));
    }
}
