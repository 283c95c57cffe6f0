//! From an alert to the deliveries committed with it.

use std::borrow::Cow;

use tocsin_store::QueuedDelivery;
use tocsin_tracker::Alert;

use crate::config::Webhook;
use crate::error::BodyError;
use crate::sign::{NHS_NUMBER_HASH_PREFIX, nhs_number_hash};

/// Decides, for each alert the pipeline commits, which webhook subscribers
/// receive it and exactly what they receive. Cheap to call per alert.
#[derive(Debug, Clone, Default)]
pub struct Router {
    webhooks: Vec<Webhook>,
}

impl Router {
    /// A router over the configured webhooks.
    pub fn new(webhooks: Vec<Webhook>) -> Self {
        Self { webhooks }
    }

    /// Whether any webhook is configured (nothing to plan otherwise).
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty()
    }

    /// One delivery per subscriber whose filters match, with its body: the
    /// alert JSON as on the AMQP exchange, the NHS number replaced by its
    /// keyed hash for subscribers that ask.
    pub fn plan(&self, alert: &Alert) -> Result<Vec<QueuedDelivery>, BodyError> {
        let mut out = Vec::new();
        let mut plain: Option<Vec<u8>> = None;
        for w in self.webhooks.iter().filter(|w| w.filters.matches(alert)) {
            let fail = |source| BodyError {
                alert_id: alert.alert_id.clone(),
                subscriber: w.name.clone(),
                source,
            };
            let body = match &w.nhs_number_key {
                Some(key) => hashed(key, alert).map_err(fail)?,
                None => match &plain {
                    Some(b) => b.clone(),
                    None => {
                        let b = serde_json::to_vec(alert).map_err(fail)?;
                        plain = Some(b.clone());
                        b
                    }
                },
            };
            out.push(QueuedDelivery {
                subscriber: w.name.clone(),
                alert_id: alert.alert_id.clone(),
                body,
            });
        }
        Ok(out)
    }
}

/// The alert's JSON with its NHS number replaced by the keyed hash.
fn hashed(key: &[u8], alert: &Alert) -> Result<Vec<u8>, serde_json::Error> {
    let mut a = alert.clone();
    a.patient.nhs_number = a
        .patient
        .nhs_number
        .as_deref()
        .map(|n| nhs_number_hash(key, n));
    serde_json::to_vec(&a)
}

/// What a queued delivery is to send now.
#[derive(Debug)]
pub(crate) enum Current<'a> {
    /// These bytes: the body as committed, or rewritten for the
    /// subscriber's settings now.
    Send(Cow<'a, [u8]>),
    /// Nothing: why not.
    Withdrawn(&'static str),
}

/// A queued body checked against the subscriber's settings now. The body
/// was fixed when its alert was committed; a subscriber whose filters were
/// narrowed since (a practice limited to its own patients) or who asked
/// for hashed NHS numbers since must not receive the backlog as it was
/// queued: the first gets nothing its filters now exclude, the second the
/// number hashed. A body that cannot be read back as an alert is sent as
/// committed, unless the number must be hashed.
pub(crate) fn current_body<'a>(hook: &Webhook, stored: &'a [u8]) -> Current<'a> {
    let Ok(alert) = serde_json::from_slice::<Alert>(stored) else {
        return match hook.nhs_number_key {
            Some(_) => Current::Withdrawn(
                "its body cannot be read back to hash the NHS number the subscriber now asks hashed",
            ),
            None => Current::Send(Cow::Borrowed(stored)),
        };
    };
    if !hook.filters.matches(&alert) {
        return Current::Withdrawn("the subscriber's filters now exclude it");
    }
    let clear = alert
        .patient
        .nhs_number
        .as_deref()
        .is_some_and(|n| !n.starts_with(NHS_NUMBER_HASH_PREFIX));
    match &hook.nhs_number_key {
        Some(key) if clear => match hashed(key, &alert) {
            Ok(body) => Current::Send(Cow::Owned(body)),
            Err(_) => {
                Current::Withdrawn("its body could not be written again with the number hashed")
            }
        },
        _ => Current::Send(Cow::Borrowed(stored)),
    }
}
