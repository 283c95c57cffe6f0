//! Publishing with publisher confirms: the outbox hands over a batch of
//! events or alerts and learns, once the call returns, that the broker has
//! taken responsibility for every one of them, or that it must try again.

use crate::error::AmqpError;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

/// A string header value.
pub(crate) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Target exchange (`tocsin.events`, `tocsin.alerts`, or "" for a queue).
    pub exchange: String,
    /// Routing key, e.g. `hl7.admission` or `overdue.discharge_summary.inpatient`.
    pub routing_key: String,
    /// The AMQP `message_id`: the event or alert id, so subscribers can
    /// drop the duplicates an at-least-once outbox may produce.
    pub message_id: String,
    /// The AMQP `content_type`, e.g. `application/json`.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Option<FieldTable>,
    /// Fail the publish when no queue is bound to receive it. Leave it off
    /// for exchanges that may legitimately have no subscriber yet.
    pub mandatory: bool,
}

impl OutgoingMessage {
    /// A JSON message without extra headers, not mandatory.
    #[must_use]
    pub fn json(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        message_id: impl Into<String>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            message_id: message_id.into(),
            content_type: Some("application/json".to_owned()),
            body,
            headers: None,
            mandatory: false,
        }
    }

    fn properties(&self) -> BasicProperties {
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(self.message_id.as_str().into())
            .with_app_id("tocsin".into());
        if let Some(ct) = &self.content_type {
            props = props.with_content_type(ct.as_str().into());
        }
        if let Some(headers) = &self.headers {
            props = props.with_headers(headers.clone());
        }
        props
    }
}

/// A confirm-mode channel for publishing.
#[derive(Debug)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Close the channel and wait for the broker's close-ok (shutdown).
    ///
    /// Dropping a lapin channel closes it from a background task instead;
    /// if the connection is closed at that moment, lapin takes the late
    /// channel close for a connection error and the connection close may
    /// never finish. Closing first, then dropping, avoids that race.
    pub async fn close(self) -> Result<(), AmqpError> {
        close_channel(&self.channel, "publisher").await
    }

    /// Open a channel on `connection` and put it in confirm mode.
    pub async fn open(connection: &Connection) -> Result<Self, AmqpError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| AmqpError::from_lapin("channel.open", &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| AmqpError::from_lapin("confirm.select", &e))?;
        Ok(Self { channel })
    }

    /// True while the channel can publish.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Publish `messages` (persistent, `message_id` set) without waiting
    /// between them, then wait for every confirm.
    ///
    /// Returns `Ok` only when the broker has confirmed all of them. On error
    /// some may have been delivered: the caller republishes the whole batch,
    /// and subscribers deduplicate by `message_id`. A nack gives
    /// [`AmqpError::Nacked`]; a mandatory message with no route gives
    /// [`AmqpError::Unroutable`]; a lost link gives
    /// [`AmqpError::ConnectionLost`].
    pub async fn publish_confirmed(&self, messages: &[OutgoingMessage]) -> Result<(), AmqpError> {
        let outcomes = self.publish_each_confirmed(messages).await?;
        outcomes
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    /// Publish `messages` like [`Publisher::publish_confirmed`], but tell
    /// for each one whether the broker took it (`Ok`), nacked it
    /// ([`AmqpError::Nacked`]) or returned it unroutable
    /// ([`AmqpError::Unroutable`]), so that an outbox can mark what was
    /// confirmed and keep only what the broker refused for a later try,
    /// rather than republishing (or blocking on) the whole batch.
    ///
    /// The outer error is a lost link or channel: the fate of the messages
    /// not yet confirmed is then unknown, and the caller publishes them
    /// again once reconnected.
    pub async fn publish_each_confirmed(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<Result<(), AmqpError>>, AmqpError> {
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let confirm = self
                .channel
                .basic_publish(
                    m.exchange.as_str().into(),
                    m.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: m.mandatory,
                        ..BasicPublishOptions::default()
                    },
                    &m.body,
                    m.properties(),
                )
                .await
                .map_err(|e| AmqpError::from_lapin("basic.publish", &e))?;
            pending.push(confirm);
        }
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut lost = None;
        for (m, confirm) in messages.iter().zip(pending) {
            match confirm.await {
                Ok(c) => outcomes.push(judged(c, &m.message_id, &m.exchange, &m.routing_key)),
                Err(e) => {
                    // Keep awaiting the rest so no confirm is left dangling.
                    lost.get_or_insert(AmqpError::from_lapin("publisher confirm", &e));
                }
            }
        }
        lost.map_or(Ok(outcomes), Err)
    }

    /// Publishes one message with `properties` as given (a copy going
    /// back as it first came: `redrive`), mandatory, and waits for its
    /// confirm: `Ok` only when the broker has routed it and taken it.
    pub(crate) async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), AmqpError> {
        let message_id = properties
            .message_id()
            .as_ref()
            .map_or_else(String::new, |s| s.to_string());
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| AmqpError::from_lapin("basic.publish", &e))?;
        match confirm.await {
            Ok(c) => judged(c, &message_id, exchange, routing_key),
            Err(e) => Err(AmqpError::from_lapin("publisher confirm", &e)),
        }
    }
}

/// A publisher confirm as the message's outcome: taken, or why not.
fn judged(
    confirmation: Confirmation,
    message_id: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), AmqpError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(AmqpError::Unroutable {
            message_id: message_id.to_string(),
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            reply: returned.reply_text.to_string(),
        }),
        Confirmation::Nack(_) | Confirmation::NotRequested => Err(AmqpError::Nacked {
            message_id: message_id.to_string(),
            exchange: exchange.to_string(),
        }),
    }
}

/// Close `channel` with a success code, unless it is already closed or
/// closing (then there is nothing to do).
pub(crate) async fn close_channel(channel: &Channel, what: &'static str) -> Result<(), AmqpError> {
    if !channel.status().connected() {
        return Ok(());
    }
    channel
        .close(200, format!("tocsin {what} done").into())
        .await
        .map_err(|e| AmqpError::from_lapin("channel.close", &e))
}
