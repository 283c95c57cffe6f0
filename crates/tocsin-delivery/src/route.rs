//! From an alert to the deliveries committed with it.

use tocsin_store::QueuedDelivery;
use tocsin_tracker::Alert;

use crate::config::Webhook;
use crate::error::BodyError;
use crate::sign::nhs_number_hash;

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
                Some(key) => {
                    let mut a = alert.clone();
                    a.patient.nhs_number = a
                        .patient
                        .nhs_number
                        .as_deref()
                        .map(|n| nhs_number_hash(key, n));
                    serde_json::to_vec(&a).map_err(fail)?
                }
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
