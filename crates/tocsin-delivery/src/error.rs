//! Why a delivery configuration cannot be used, or a body cannot be built.

use thiserror::Error;

/// A `[[webhooks]]` or `[alertmanager]` entry that cannot be used; each
/// names the entry and the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A webhook entry is wrong.
    #[error("[[webhooks]] #{index} ({name:?}): {key}: {reason}")]
    Webhook {
        /// Its position (from 0) in the file.
        index: usize,
        /// Its name.
        name: String,
        /// The key at fault.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// Two webhooks share a name (it labels their metrics).
    #[error("[[webhooks]]: the name {name:?} is used twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The Alertmanager section is wrong.
    #[error("[alertmanager] {key}: {reason}")]
    Alertmanager {
        /// The key at fault.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// An alert that could not be turned into a subscriber's body.
#[derive(Debug, Error)]
#[error("cannot build the webhook body of alert {alert_id} for {subscriber}: {source}")]
pub struct BodyError {
    /// The alert.
    pub alert_id: String,
    /// The subscriber.
    pub subscriber: String,
    /// The serialiser's reason.
    pub source: serde_json::Error,
}
