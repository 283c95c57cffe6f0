//! One received input message, with read access to what the gateway needs
//! (body, content type, headers, ids) and nothing that lets it be settled
//! outside the [`crate::BatchConsumer`] that tracks which tags are open.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

/// A message taken from an input queue, not yet settled.
#[derive(Debug)]
pub struct Delivery {
    pub(crate) inner: lapin::message::Delivery,
    /// Which consumer (channel) received it; tags mean nothing elsewhere.
    pub(crate) consumer_id: u64,
}

impl Delivery {
    /// The body, byte for byte as published.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// The AMQP `content_type`, if set.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.inner
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str())
    }

    /// The AMQP `message_id`, if set.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.inner
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    /// The message headers, if any.
    #[must_use]
    pub fn headers(&self) -> Option<&FieldTable> {
        self.inner.properties.headers().as_ref()
    }

    /// A header's value as text, when it is a string header holding UTF-8.
    #[must_use]
    pub fn header_str(&self, name: &str) -> Option<&str> {
        match self.headers()?.inner().get(name)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// All AMQP properties, for callers that need more than the accessors.
    #[must_use]
    pub fn properties(&self) -> &BasicProperties {
        &self.inner.properties
    }

    /// The delivery tag on the channel that received it.
    #[must_use]
    pub fn delivery_tag(&self) -> u64 {
        self.inner.delivery_tag
    }

    /// True when the broker delivered this message before (to us or to a
    /// consumer that died): its effects may already be committed.
    #[must_use]
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// How many times a quorum queue has returned this message before
    /// (its `x-delivery-count` header); `None` on a first delivery.
    #[must_use]
    pub fn delivery_count(&self) -> Option<i64> {
        match self.headers()?.inner().get("x-delivery-count")? {
            AMQPValue::LongLongInt(n) => Some(*n),
            AMQPValue::LongInt(n) => Some(i64::from(*n)),
            AMQPValue::LongUInt(n) => Some(i64::from(*n)),
            AMQPValue::ShortInt(n) => Some(i64::from(*n)),
            _ => None,
        }
    }

    /// The exchange it was published to (empty for the default exchange).
    #[must_use]
    pub fn exchange(&self) -> &str {
        self.inner.exchange.as_str()
    }

    /// The routing key it was published with.
    #[must_use]
    pub fn routing_key(&self) -> &str {
        self.inner.routing_key.as_str()
    }
}
