//! One subscriber's worker: reads its due deliveries from the store, POSTs
//! each, records what happened.
//!
//! Each subscriber has a task of its own, so a subscriber that is down or
//! slow holds no other back. Within a subscriber deliveries go one at a
//! time, in the order committed; after a refusal the worker pauses
//! (doubling, up to the retry maximum, longer when a 429 or 503 asks with
//! `Retry-After`) before probing again, so a dead endpoint costs one
//! attempt per pause rather than one per queued alert. When it refuses,
//! the other due deliveries that reached their maximum age are marked
//! failed without an attempt each, so that a backlog is given up on time
//! rather than one row per pause.
//!
//! A refusal of the subscriber as a whole (unreachable, a timeout, 5xx,
//! 401, 404, 429...) leaves the delivery due, so that once the subscriber
//! is back the backlog goes in commit order: an `overdue` before the
//! `resolved` that follows it. A refusal of that one alert's body (400,
//! 409, 413, 422) puts the delivery back by its own backoff without a
//! pause, so that it holds the others back not at all; several in a row
//! with none accepted are paced as a refusal of the subscriber.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use tocsin_store::{DeliveryOutcome, PendingDelivery};

use crate::access::StoreAccess;
use crate::config::Webhook;
use crate::events::{
    DeliveryMetrics, DeliveryStoreFailed, WebhookDelivered, WebhookFailed, WebhookRefusesEveryBody,
    WebhookRetried, WebhookWithdrawn, WebhooksGivenUp,
};
use crate::route::{Current, current_body};
use crate::sign::{ATTEMPT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature};

/// Most deliveries read from the store at once.
const ROUND: usize = 100;

/// Refusals of single alerts' bodies in a row, with nothing accepted,
/// after which the subscriber is taken to refuse every body (a schema
/// change at its end, a proxy refusing the content type) and paced as one
/// that is down: each such refusal held back nothing, and a review's
/// subscriber answering 422 to everything took 515 requests and as many
/// warnings a second.
const BODIES_REFUSED_IN_A_ROW: u32 = 5;

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
        let mut bodies_refused = 0u32;
        loop {
            let now = Utc::now();
            let Some(due) = self.due(now).await else {
                tokio::time::sleep(self.hook.poll).await;
                continue;
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
                let pause_for = |r: &Refusal| pause(&self.hook, refusals.saturating_add(1), r);
                match self.deliver(d, pause_for).await {
                    // The subscriber is up and refused this alert only: it
                    // waits its own backoff, the others go on, unless it
                    // refuses them all.
                    Some((refusal, pause)) if refusal.of_this_alert() => {
                        bodies_refused = bodies_refused.saturating_add(1);
                        if bodies_refused >= BODIES_REFUSED_IN_A_ROW {
                            refusals = refusals.saturating_add(1);
                            WebhookRefusesEveryBody {
                                subscriber: &self.hook.name,
                                in_a_row: bodies_refused,
                                pause,
                            }
                            .emit();
                            tokio::time::sleep(pause).await;
                            break;
                        }
                    }
                    Some((refusal, pause)) => {
                        refusals = refusals.saturating_add(1);
                        let now = Utc::now();
                        let error = refusal.to_string();
                        let mut given_up = self.give_up_aged(due.by_ref(), &error, now).await;
                        given_up += self.give_up_beyond_round(&error, now).await;
                        if given_up > 0 {
                            WebhooksGivenUp {
                                subscriber: &self.hook.name,
                                count: given_up,
                                error: &error,
                            }
                            .emit();
                        }
                        tokio::time::sleep(pause).await;
                        break;
                    }
                    None => {
                        refusals = 0;
                        bodies_refused = 0;
                    }
                }
            }
        }
    }

    /// Up to a round's due deliveries as of `now`, oldest commit first;
    /// `None`, said, when the store fails.
    async fn due(&self, now: DateTime<Utc>) -> Option<Vec<PendingDelivery>> {
        let name = self.hook.name.clone();
        match self
            .store
            .call(move |s| s.deliveries_due(&name, now, ROUND))
            .await
        {
            Ok(due) => Some(due),
            Err(error) => {
                self.store_failed("read due deliveries", &error);
                None
            }
        }
    }

    /// After a refusal, gives up the due deliveries past their maximum age
    /// beyond the round's batch, a batch at a time (due ones come in commit
    /// order, so those past their age come first): a backlog larger than
    /// a round was given up [`ROUND`] rows a pause (a 10,000-alert backlog
    /// some 17 hours past its age at the default 600 s pause, and what was
    /// left delivered stale when the subscriber came back). Returns how
    /// many; a store failure leaves the rest to the next round.
    async fn give_up_beyond_round(&self, error: &str, now: DateTime<Utc>) -> usize {
        let mut total = 0;
        loop {
            let Some(batch) = self.due(now).await else {
                return total;
            };
            let n = self.give_up_aged(batch.into_iter(), error, now).await;
            total += n;
            if n < ROUND {
                return total;
            }
        }
    }

    /// Gives up those of `deliveries` past their maximum age at `now`;
    /// returns how many.
    async fn give_up_aged(
        &self,
        deliveries: impl Iterator<Item = PendingDelivery>,
        error: &str,
        now: DateTime<Utc>,
    ) -> usize {
        let mut n = 0;
        for d in deliveries.filter(|d| now >= self.give_up_at(d)) {
            self.give_up(d, error, now).await;
            n += 1;
        }
        n
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
        self.fail(&d, error, false, now).await;
    }

    /// Records a delivery failed, after its last attempt (`attempted`) or
    /// given up without one, then tells it: told once recorded, so that a
    /// stop in between leaves it pending and untold.
    async fn fail(&self, d: &PendingDelivery, error: String, attempted: bool, now: DateTime<Utc>) {
        let outcome = if attempted {
            DeliveryOutcome::Failed {
                error: error.clone(),
            }
        } else {
            DeliveryOutcome::GivenUp {
                error: error.clone(),
            }
        };
        self.record(d.seq, outcome, now).await;
        WebhookFailed {
            subscriber: &self.hook.name,
            alert_id: &d.alert_id,
            attempts: d.attempts.saturating_add(u32::from(attempted)),
            error: &error,
            in_round: !attempted,
        }
        .emit(&self.metrics);
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

    /// One attempt on one delivery, recorded, then told (a stop between
    /// the two leaves it as the store has it, untold rather than told and
    /// not recorded). When it was refused, why, and the worker's pause
    /// before its next attempt (`pause` of the refusal).
    async fn deliver(
        &self,
        d: PendingDelivery,
        pause: impl Fn(&Refusal) -> Duration,
    ) -> Option<(Refusal, Duration)> {
        let body = match current_body(&self.hook, &d.body) {
            Current::Send(body) => body,
            Current::Withdrawn(reason) => {
                let error = format!("not sent: {reason}");
                self.record(d.seq, DeliveryOutcome::GivenUp { error }, Utc::now())
                    .await;
                WebhookWithdrawn {
                    subscriber: &self.hook.name,
                    alert_id: &d.alert_id,
                    reason,
                }
                .emit(&self.metrics);
                return None;
            }
        };
        let attempt = d.attempts.saturating_add(1);
        let result = self.post(&d, &body, attempt).await;
        let now = Utc::now();
        match result {
            Ok(status) => {
                self.record(d.seq, DeliveryOutcome::Delivered, now).await;
                WebhookDelivered {
                    subscriber: &self.hook.name,
                    alert_id: &d.alert_id,
                    attempt,
                    status,
                }
                .emit(&self.metrics);
                None
            }
            Err(refusal) => {
                let pause = pause(&refusal);
                let error = refusal.to_string();
                match self.retry_at(&d, &refusal, now) {
                    None => self.fail(&d, error, true, now).await,
                    Some(at) => {
                        let outcome = DeliveryOutcome::Retry {
                            at,
                            error: error.clone(),
                        };
                        self.record(d.seq, outcome, now).await;
                        let next_in = if refusal.of_this_alert() {
                            (at - now).to_std().unwrap_or(Duration::ZERO)
                        } else {
                            pause
                        };
                        WebhookRetried {
                            subscriber: &self.hook.name,
                            alert_id: &d.alert_id,
                            attempt,
                            error: &error,
                            next_in,
                            of_this_alert: refusal.of_this_alert(),
                        }
                        .emit(&self.metrics);
                    }
                }
                Some((refusal, pause))
            }
        }
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

    /// When a refused delivery is due again; `None` once it has reached its
    /// maximum age (given up). A refusal of the subscriber
    /// leaves the delivery due now (the worker's `pause` spaces the
    /// attempts, and the backlog keeps its order); a refusal of this alert
    /// puts it back by its own backoff, at most to its maximum age.
    fn retry_at(
        &self,
        d: &PendingDelivery,
        refusal: &Refusal,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let give_up_at = self.give_up_at(d);
        if now >= give_up_at {
            return None;
        }
        if !refusal.of_this_alert() {
            return Some(now);
        }
        let wait = backoff(&self.hook, d.attempts.saturating_add(1));
        let at = (now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX))
            .min(give_up_at);
        Some(at)
    }

    /// POSTs the body; the status on a 2xx, else why not.
    async fn post(&self, d: &PendingDelivery, body: &[u8], attempt: u32) -> Result<u16, Refusal> {
        let idempotency = HeaderValue::from_str(&d.alert_id)
            .map_err(|_| Refusal::Unsendable("the alert id is not a valid header value"))?;
        let response = self
            .client
            .post(self.hook.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("tocsin/", env!("CARGO_PKG_VERSION")))
            .header(IDEMPOTENCY_HEADER, idempotency)
            .header(SIGNATURE_HEADER, signature(&self.hook.secret, body))
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Refusal::Transport(describe(&e, self.hook.timeout)))?;
        let status = response.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(Refusal::Status {
                code: status.as_u16(),
                retry_after: retry_after(response.headers(), Utc::now()),
            })
        }
    }

    fn store_failed(&self, operation: &str, error: &tocsin_store::StoreError) {
        DeliveryStoreFailed {
            operation,
            worker: &self.hook.name,
            error,
        }
        .emit(&self.metrics);
    }
}

/// Why a subscriber did not take a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It answered with this status (not 2xx), perhaps saying when to come
    /// back.
    Status {
        /// The HTTP status.
        code: u16,
        /// Its `Retry-After`, when it gave one that could be read.
        retry_after: Option<Duration>,
    },
    /// No answer: cannot connect, timed out, the connection broke.
    Transport(String),
    /// This alert could not be made into a request.
    Unsendable(&'static str),
}

impl Refusal {
    /// Whether the subscriber refused this alert rather than everything:
    /// 400, 409, 413 or 422, which judge the request's body. Any other
    /// refusal (unreachable, 5xx, 401 and 403 for credentials, 404 for a
    /// wrong URL, 408, 429, a redirect) would meet the next delivery too.
    pub(crate) fn of_this_alert(&self) -> bool {
        matches!(
            self,
            Refusal::Status {
                code: 400 | 409 | 413 | 422,
                ..
            } | Refusal::Unsendable(_)
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Status {
                code,
                retry_after: Some(after),
            } => write!(f, "HTTP {code} (Retry-After {} s)", after.as_secs()),
            Refusal::Status { code, .. } => write!(f, "HTTP {code}"),
            Refusal::Transport(why) => f.write_str(why),
            Refusal::Unsendable(why) => f.write_str(why),
        }
    }
}

/// A `Retry-After` header's wait from `now`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The worker's pause after its `n`th refusal in a row: the backoff, or
/// longer when the subscriber asked so with `Retry-After`, at most the
/// retry maximum.
pub(crate) fn pause(hook: &Webhook, n: u32, refusal: &Refusal) -> Duration {
    let asked = match refusal {
        Refusal::Status {
            retry_after: Some(after),
            ..
        } => *after,
        _ => Duration::ZERO,
    };
    backoff(hook, n).max(asked.min(hook.retry_max))
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
    fn only_a_refusal_of_the_alert_itself_is_put_back_alone() {
        let status = |code| Refusal::Status {
            code,
            retry_after: None,
        };
        for code in [400, 409, 413, 422] {
            assert!(status(code).of_this_alert(), "{code}");
        }
        for code in [301, 401, 403, 404, 408, 415, 429, 500, 502, 503] {
            assert!(!status(code).of_this_alert(), "{code}");
        }
        assert!(!Refusal::Transport("cannot connect".into()).of_this_alert());
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_capped() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let headers = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            h
        };
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Dec 2026 10:01:30 GMT"), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after(&headers("Sun, 06 Dec 2026 09:00:00 GMT"), now),
            Some(Duration::ZERO),
            "a date passed: no wait of its own"
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), now), None);
        let h = hook(100, 1000);
        let asked = |secs| Refusal::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(pause(&h, 1, &asked(0)), Duration::from_millis(100));
        assert_eq!(
            pause(&h, 1, &asked(3600)),
            Duration::from_millis(1000),
            "at most the retry maximum"
        );
        let h = hook(100, 600_000);
        assert_eq!(pause(&h, 1, &asked(60)), Duration::from_secs(60));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let h = hook(100, 1000);
        let waits: Vec<u128> = (1..=6).map(|n| backoff(&h, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&h, u32::MAX), Duration::from_millis(1000));
    }
}
