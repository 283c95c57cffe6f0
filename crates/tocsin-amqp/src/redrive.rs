//! The dead-letter queue as an operator works it: see what is in it and
//! why ([`peek`]), and, once the cause is mended (a code added to the
//! mappings, a sender fixed), move messages back to the input queue to be
//! processed again ([`redrive`]). `tocsin dead-letters` is the command.
//!
//! Messages are taken one at a time with `basic.get`, so that those held
//! back (by a filter, or all of them when peeking) cannot fill a consumer's
//! prefetch; everything not acknowledged goes back to the queue when the
//! channel closes, in its place (RabbitMQ requeues to the original
//! position). A message is acknowledged off the dead-letter queue only
//! after the broker has confirmed its copy on the input queue: a failure in
//! between leaves it in both at worst, never in neither, and the gateway
//! treats a repeat as a duplicate.

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

use crate::dead_letter::{
    ERROR_HEADER, ERROR_LOCATION_HEADER, ORIGINAL_EXCHANGE_HEADER, ORIGINAL_EXPIRATION_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER, ORIGINAL_USER_ID_HEADER,
};
use crate::error::AmqpError;
use crate::publisher::{Publisher, close_channel};
use crate::topology::open;

/// One dead-lettered message as an operator sees it: where it came from and
/// why it is here, never its body (which holds patient data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its AMQP `message_id`, when it has one.
    pub message_id: Option<String>,
    /// Its AMQP `content_type`, when it has one.
    pub content_type: Option<String>,
    /// Why it was dead-lettered: tocsin's `x-tocsin-error` header (`code:
    /// detail (position)`), or for a message the broker dead-lettered (past
    /// `[amqp] delivery_limit`, say) `broker: <reason>` from `x-death`.
    pub reason: String,
    /// Where in the message, when tocsin knew (`PID-3`).
    pub location: Option<String>,
    /// The routing key it was first published with, when recorded.
    pub original_routing_key: Option<String>,
    /// Its size in bytes.
    pub bytes: usize,
}

impl DeadLetter {
    fn of(properties: &BasicProperties, bytes: usize) -> Self {
        let headers = properties.headers().as_ref();
        let text = |name: &str| headers.and_then(|h| h.inner().get(name)).and_then(as_text);
        let reason = text(ERROR_HEADER)
            .or_else(|| broker_reason(headers).map(|r| format!("broker: {r}")))
            .unwrap_or_else(|| "unknown".to_string());
        Self {
            message_id: properties.message_id().as_ref().map(|s| s.to_string()),
            content_type: properties.content_type().as_ref().map(|s| s.to_string()),
            reason,
            location: text(ERROR_LOCATION_HEADER),
            original_routing_key: text(ORIGINAL_ROUTING_KEY_HEADER),
            bytes,
        }
    }

    /// The reason's fixed code (`malformed_segment`, `broker`, `unknown`):
    /// what `--reason` selects by and the summary counts by.
    pub fn code(&self) -> &str {
        self.reason
            .split_once(':')
            .map_or(self.reason.as_str(), |(code, _)| code)
            .trim()
    }
}

/// A header value as text, when it is a string.
fn as_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The `reason` of the newest entry of RabbitMQ's own `x-death` header.
fn broker_reason(headers: Option<&FieldTable>) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers?.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(newest) = deaths.as_slice().first()? else {
        return None;
    };
    newest.inner().get("reason").and_then(as_text)
}

/// What a [`peek`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peeked {
    /// The messages read, from the head of the queue.
    pub letters: Vec<DeadLetter>,
    /// How many were in the queue when the first was read (more than
    /// `letters` when the limit stopped the reading).
    pub waiting: usize,
}

/// Reads up to `limit` messages from the head of `queue` and leaves every
/// one where it was.
pub async fn peek(connection: &Connection, queue: &str, limit: usize) -> Result<Peeked, AmqpError> {
    let channel = open(connection).await?;
    let mut seen = Peeked::default();
    while seen.letters.len() < limit {
        let Some(m) = get(&channel, queue).await? else {
            break;
        };
        if seen.letters.is_empty() {
            // The broker counts what is left behind the one it hands over.
            seen.waiting = m.message_count as usize + 1;
        }
        seen.letters.push(DeadLetter::of(
            &m.delivery.properties,
            m.delivery.data.len(),
        ));
    }
    // Closing without acknowledging puts them all back, in order.
    close_channel(&channel, "dead-letter peek").await?;
    Ok(seen)
}

/// What a [`redrive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redriven {
    /// Messages moved to the input queue (confirmed there, then removed
    /// from the dead-letter queue).
    pub moved: usize,
    /// Messages read and left in the dead-letter queue (not selected).
    pub left: usize,
}

/// Moves messages from `queue` to `to_queue` (through the default
/// exchange, so no binding is needed): those whose [`DeadLetter::code`] is
/// `only` (every one when `None`), reading at most `limit`, and never more
/// than were waiting when it began. Each copy keeps the original's
/// properties and headers, less the ones tocsin or the broker added when
/// dead-lettering it, so it is processed as it first came.
///
/// The bound matters while a gateway runs: a message whose cause is not
/// mended comes back to the tail of `queue` as soon as it is redriven, and
/// a redrive reading "until the queue is empty" never ended, moving the same
/// messages round for ever (and a kill mid-way could leave one twice).
pub async fn redrive(
    connection: &Connection,
    queue: &str,
    to_queue: &str,
    only: Option<&str>,
    limit: usize,
) -> Result<Redriven, AmqpError> {
    let channel = open(connection).await?;
    let publisher = Publisher::open(connection).await?;
    let mut done = Redriven::default();
    let mut bound = limit;
    while done.moved + done.left < bound {
        let Some(m) = get(&channel, queue).await? else {
            break;
        };
        if done.moved + done.left == 0 {
            // The broker counts what is left behind the one it hands over.
            bound = bound.min(m.message_count as usize + 1);
        }
        let d = &m.delivery;
        let letter = DeadLetter::of(&d.properties, d.data.len());
        if only.is_some_and(|code| code != letter.code()) {
            done.left += 1;
            continue;
        }
        publisher
            .publish_raw("", to_queue, &d.data, as_first_sent(&d.properties))
            .await?;
        d.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| AmqpError::from_lapin("basic.ack", &e))?;
        done.moved += 1;
    }
    publisher.close().await?;
    // What was left goes back in its place.
    close_channel(&channel, "dead-letter redrive").await?;
    Ok(done)
}

async fn get(
    channel: &Channel,
    queue: &str,
) -> Result<Option<lapin::message::BasicGetMessage>, AmqpError> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .map_err(|e| AmqpError::from_lapin("basic.get", &e))
}

/// The properties a dead letter's copy goes back with: the original's
/// (persistent), less the headers dead-lettering added and the count of
/// deliveries the input queue stamped on it (`x-delivery-count`, copied
/// with the original's headers): a message going back as first sent has
/// not been delivered yet. The recorded
/// `expiration` and `user_id` are not restored: the copy must not expire
/// on the way, and the broker refuses a `user_id` not the publisher's own.
fn as_first_sent(p: &BasicProperties) -> BasicProperties {
    const ADDED: [&str; 8] = [
        ERROR_HEADER,
        ERROR_LOCATION_HEADER,
        ORIGINAL_EXCHANGE_HEADER,
        ORIGINAL_ROUTING_KEY_HEADER,
        ORIGINAL_EXPIRATION_HEADER,
        ORIGINAL_USER_ID_HEADER,
        "x-death",
        "x-delivery-count",
    ];
    let mut out = p.clone().with_delivery_mode(2);
    if let Some(headers) = p.headers() {
        let mut kept = FieldTable::default();
        for (k, v) in headers.inner() {
            if !ADDED.contains(&k.as_str()) && !k.as_str().starts_with("x-first-death-") {
                kept.insert(k.clone(), v.clone());
            }
        }
        out = out.with_headers(kept);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::long_string;
    use lapin::types::FieldArray;

    fn with(headers: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut t = FieldTable::default();
        for (k, v) in headers {
            t.insert((*k).into(), v.clone());
        }
        BasicProperties::default()
            .with_message_id("m-1".into())
            .with_headers(t)
    }

    #[test]
    fn the_reason_and_its_code_come_from_tocsin_or_the_broker() {
        let ours = DeadLetter::of(
            &with(&[
                (
                    ERROR_HEADER,
                    long_string("malformed_segment: bad PID (message 1)"),
                ),
                (ERROR_LOCATION_HEADER, long_string("PID-3")),
                (ORIGINAL_ROUTING_KEY_HEADER, long_string("tocsin.inbound")),
            ]),
            42,
        );
        assert_eq!(ours.code(), "malformed_segment");
        assert_eq!(ours.location.as_deref(), Some("PID-3"));
        assert_eq!(ours.original_routing_key.as_deref(), Some("tocsin.inbound"));
        assert_eq!((ours.bytes, ours.message_id.as_deref()), (42, Some("m-1")));

        let mut death = FieldTable::default();
        death.insert("reason".into(), long_string("delivery_limit"));
        let broker = DeadLetter::of(
            &with(&[(
                "x-death",
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
            )]),
            1,
        );
        assert_eq!(broker.reason, "broker: delivery_limit");
        assert_eq!(broker.code(), "broker");

        let bare = DeadLetter::of(&BasicProperties::default(), 0);
        assert_eq!((bare.reason.as_str(), bare.code()), ("unknown", "unknown"));
    }

    #[test]
    fn a_copy_goes_back_without_what_dead_lettering_added() {
        let original = with(&[
            ("x-trace", long_string("t-1")),
            (ERROR_HEADER, long_string("x: y")),
            (ORIGINAL_USER_ID_HEADER, long_string("engine")),
            ("x-death", AMQPValue::FieldArray(FieldArray::default())),
            ("x-first-death-reason", long_string("rejected")),
            ("x-delivery-count", AMQPValue::LongLongInt(3)),
        ])
        .with_content_type("x-application/hl7-v2+er7".into())
        .with_correlation_id("c-1".into())
        .with_delivery_mode(1);
        let copy = as_first_sent(&original);
        let keys: Vec<String> = copy
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(keys, vec!["x-trace".to_string()]);
        assert_eq!(copy.content_type(), original.content_type());
        assert_eq!(copy.correlation_id(), original.correlation_id());
        assert_eq!(copy.message_id(), original.message_id());
        assert_eq!(copy.delivery_mode(), &Some(2));
    }
}
