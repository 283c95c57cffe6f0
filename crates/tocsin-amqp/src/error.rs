//! One error type for the adapter, so callers can tell a broker outage (retry
//! after reconnecting) from a configuration or topology mistake (fix and
//! restart) from a message the broker refused (keep it in the outbox).

use std::path::PathBuf;

/// Everything that can go wrong talking to RabbitMQ.
///
/// URLs inside these errors are always redacted; no variant carries a
/// password or a message body.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The configured URL could not be parsed.
    #[error("invalid AMQP URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The password file named in the configuration could not be read.
    #[error("cannot read AMQP password file {path}: {source}")]
    PasswordFile {
        /// The file that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid AMQP configuration: {0}")]
    InvalidConfig(String),
    /// Connecting to the broker failed (refused, timed out, bad credentials).
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect {
        /// The URL with its password masked.
        url: String,
        /// Why the attempt failed.
        reason: String,
    },
    /// In passive mode, parts of the topology do not exist on the broker.
    #[error("RabbitMQ topology incomplete (passive mode declares nothing): missing {}", .missing.join(", "))]
    TopologyMissing {
        /// One entry per missing piece, e.g. `queue tocsin.dead`.
        missing: Vec<String>,
    },
    /// Declaring one piece of the topology failed, typically because it
    /// exists with different arguments.
    #[error("cannot declare {what}: {reason}")]
    Declare {
        /// The piece, e.g. `queue tocsin.inbound`.
        what: String,
        /// The broker's reason.
        reason: String,
    },
    /// The connection or channel was lost; reconnect and retry.
    #[error("connection to RabbitMQ lost during {operation}: {reason}")]
    ConnectionLost {
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        reason: String,
    },
    /// The broker negatively confirmed a published message.
    #[error("broker refused message {message_id} for exchange '{exchange}' (nack)")]
    Nacked {
        /// The message's id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
    },
    /// A mandatory message could not be routed to any queue.
    #[error(
        "message {message_id} unroutable on exchange '{exchange}' with routing key '{routing_key}': {reply}"
    )]
    Unroutable {
        /// The message's id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
        /// The routing key used.
        routing_key: String,
        /// The broker's reply text (e.g. `NO_ROUTE`).
        reply: String,
    },
    /// A delivery was settled through a consumer other than the one that
    /// received it (its channel is gone; the broker will redeliver it).
    #[error("delivery {delivery_tag} belongs to an earlier consumer session")]
    StaleDelivery {
        /// The delivery tag on its old channel.
        delivery_tag: u64,
    },
    /// Any other broker-side failure.
    #[error("RabbitMQ {operation} failed: {reason}")]
    Broker {
        /// What was being done.
        operation: &'static str,
        /// The underlying error.
        reason: String,
    },
}

impl AmqpError {
    /// What to do about it, for an operator: the gateway logs it with each
    /// failed connection, and the one-shot commands (`send`,
    /// `dead-letters`, `loadgen --publish`) print it under the error.
    pub fn hint(&self) -> &'static str {
        let text = self.to_string();
        if text.contains("ACCESS_REFUSED") || text.contains("ACCESS-REFUSED") {
            "check the user and password (url, password_file) and the user's permissions on the vhost"
        } else if text.contains("NOT_ALLOWED") || text.contains("NOT-ALLOWED") {
            "check that the vhost in the URL exists (rabbitmqctl list_vhosts)"
        } else if text.contains("PRECONDITION_FAILED") || text.contains("PRECONDITION-FAILED") {
            "a queue or exchange exists with other arguments than [amqp] asks: [amqp] \
             delivery_limit and dead_letter_queue are fixed when the input queue is first \
             declared, so put them back, or change them with a RabbitMQ policy (deploy/README.md)"
        } else if matches!(self, AmqpError::Connect { .. }) {
            "is RabbitMQ running? start a local one with `rabbitmq-server -detached`, or set \
             TOCSIN_AMQP_URL to the trust's broker"
        } else {
            "fix the broker topology or the [amqp] configuration"
        }
    }

    /// Classify a lapin error from `operation`: connection and channel
    /// failures become [`AmqpError::ConnectionLost`] so callers know to wait
    /// for the supervisor, anything else stays a [`AmqpError::Broker`].
    pub(crate) fn from_lapin(operation: &'static str, error: &lapin::Error) -> Self {
        use lapin::ErrorKind as K;
        let reason = error.to_string();
        let lost = error.is_io_error()
            || error.is_amqp_hard_error()
            || matches!(
                error.kind(),
                K::InvalidChannelState(..) | K::InvalidConnectionState(..)
            );
        if lost {
            AmqpError::ConnectionLost { operation, reason }
        } else {
            AmqpError::Broker { operation, reason }
        }
    }

    /// True when the error means the link is down and the operation should
    /// be retried after the supervisor reconnects (as opposed to a mistake
    /// that retrying will not fix).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AmqpError::ConnectionLost { .. }
                | AmqpError::Connect { .. }
                | AmqpError::Broker { .. }
                | AmqpError::StaleDelivery { .. }
        )
    }
}
