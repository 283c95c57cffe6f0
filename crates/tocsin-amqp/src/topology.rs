//! Declaring (or, in passive mode, checking) tocsin's queues, exchanges and
//! bindings, so a fresh broker needs no manual setup and a locked-down one
//! gets a clear list of what its administrators must create.

use crate::config::AmqpConfig;
use crate::error::AmqpError;
use crate::publisher::long_string;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ErrorKind, ExchangeKind};

/// The arguments of every input queue: a quorum queue whose messages go to
/// the dead-letter queue (through the default exchange) once they have been
/// returned `delivery_limit` times, so a poison message cannot loop forever.
#[must_use]
pub fn input_queue_arguments(config: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
    );
    args.insert("x-dead-letter-exchange".into(), long_string(""));
    args.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&config.dead_letter_queue),
    );
    args
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Declare the topology, or in passive mode check it exists.
///
/// Declaring is idempotent: run it on every (re)connection. It fails with
/// [`AmqpError::Declare`] naming the piece when something exists with other
/// arguments (say, `tocsin.inbound` as a classic queue), and in passive mode
/// with [`AmqpError::TopologyMissing`] listing every missing piece.
///
/// It takes the connection rather than a channel because the broker closes
/// a channel on the first failed check; each check gets its own channel so
/// that all missing pieces are reported at once. Bindings cannot be checked
/// passively in AMQP 0-9-1, so passive mode checks the exchanges they name.
pub async fn declare_topology(
    connection: &Connection,
    config: &AmqpConfig,
) -> Result<(), AmqpError> {
    if config.passive {
        check_topology(connection, config).await
    } else {
        // A dead-letter queue that exists is used as it is: an operator may
        // have declared it a quorum queue (deploy/README.md, "Dead
        // letters"), which tocsin's own declaration would refuse as
        // inequivalent.
        let declare_dead = !queue_exists(connection, &config.dead_letter_queue).await?;
        let channel = open(connection).await?;
        let result = declare_all(&channel, config, declare_dead).await;
        if channel.status().connected() {
            // Best effort: the connection may be going away anyway.
            let _ = channel.close(200, "topology declared".into()).await;
        }
        result
    }
}

/// How many messages wait, ready, in `queue` (a passive declare on a
/// channel of its own, closed after): for the gateway's count of its
/// dead-letter queue.
pub async fn queue_depth(connection: &Connection, queue: &str) -> Result<u32, AmqpError> {
    let channel = open(connection).await?;
    let depth = depth_on(&channel, queue).await?;
    crate::publisher::close_channel(&channel, "queue depth").await?;
    Ok(depth)
}

/// The input queues that have consumers, with how many (a passive declare
/// of each, on a channel of its own, closed after). Asked before this
/// process consumes, any consumer is another's: most often its own
/// previous connection that the broker has not yet seen die (a host crash,
/// a network partition: until the heartbeat times out), which holds up to
/// `prefetch` deliveries unacknowledged. Consuming meanwhile took the
/// messages after them first, and the held ones came back behind, their
/// deadlines already judged by later traffic.
pub(crate) async fn input_consumers(
    connection: &Connection,
    config: &AmqpConfig,
) -> Result<Vec<(String, u32)>, AmqpError> {
    let channel = open(connection).await?;
    let mut busy = Vec::new();
    for queue in config.input_queues() {
        let declared = passive_declare(&channel, queue)
            .await
            .map_err(|e| AmqpError::from_lapin("queue.declare (passive)", &e))?;
        if declared.consumer_count() > 0 {
            busy.push((queue.to_owned(), declared.consumer_count()));
        }
    }
    crate::publisher::close_channel(&channel, "consumer count").await?;
    Ok(busy)
}

/// Ready messages in `queue`, by a passive declare on `channel`.
pub(crate) async fn depth_on(channel: &Channel, queue: &str) -> Result<u32, AmqpError> {
    let declared = passive_declare(channel, queue)
        .await
        .map_err(|e| AmqpError::from_lapin("queue.declare (passive)", &e))?;
    Ok(declared.message_count())
}

/// A passive `queue.declare`: the queue's state if it exists (the broker
/// closes the channel if not).
async fn passive_declare(channel: &Channel, queue: &str) -> Result<lapin::Queue, lapin::Error> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Whether `queue` exists, by a passive declare on a channel of its own
/// (the broker closes a channel whose check fails).
async fn queue_exists(connection: &Connection, queue: &str) -> Result<bool, AmqpError> {
    let channel = open(connection).await?;
    match passive_declare(&channel, queue).await {
        Ok(_) => {
            crate::publisher::close_channel(&channel, "queue check").await?;
            Ok(true)
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(AmqpError::from_lapin("queue.declare (passive)", &e)),
    }
}

/// A new channel on `connection`.
pub(crate) async fn open(connection: &Connection) -> Result<Channel, AmqpError> {
    connection
        .create_channel()
        .await
        .map_err(|e| AmqpError::from_lapin("channel.open", &e))
}

async fn declare_all(
    channel: &Channel,
    config: &AmqpConfig,
    declare_dead: bool,
) -> Result<(), AmqpError> {
    let failed = |what: String| move |e: lapin::Error| declare_error(what, &e);
    for exchange in [&config.events_exchange, &config.alerts_exchange] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange(),
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!("topic exchange {exchange}")))?;
    }
    let dead = &config.dead_letter_queue;
    if declare_dead {
        channel
            .queue_declare(dead.as_str().into(), durable_queue(), FieldTable::default())
            .await
            .map_err(failed(format!("queue {dead}")))?;
    }
    let args = input_queue_arguments(config);
    for queue in config.input_queues() {
        channel
            .queue_declare(queue.into(), durable_queue(), args.clone())
            .await
            .map_err(failed(format!("quorum queue {queue}")))?;
    }
    for b in &config.bindings {
        let queue = b.queue.as_deref().unwrap_or(&config.input_queue);
        channel
            .queue_bind(
                queue.into(),
                b.exchange.as_str().into(),
                b.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(failed(format!(
                "binding of queue {queue} to exchange {} with key '{}' (the exchange belongs to the integration engine and must exist)",
                b.exchange, b.routing_key
            )))?;
    }
    Ok(())
}

fn declare_error(what: String, error: &lapin::Error) -> AmqpError {
    match AmqpError::from_lapin("declare", error) {
        lost @ AmqpError::ConnectionLost { .. } => lost,
        _ => AmqpError::Declare {
            what,
            reason: error.to_string(),
        },
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    matches!(error.kind(), ErrorKind::ProtocolError(e)
        if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
}

async fn check_topology(connection: &Connection, config: &AmqpConfig) -> Result<(), AmqpError> {
    let mut exchanges = vec![
        config.events_exchange.clone(),
        config.alerts_exchange.clone(),
    ];
    for b in &config.bindings {
        if !exchanges.contains(&b.exchange) {
            exchanges.push(b.exchange.clone());
        }
    }
    let mut queues = vec![config.dead_letter_queue.as_str()];
    queues.extend(config.input_queues());

    let mut missing = Vec::new();
    for exchange in &exchanges {
        let channel = open(connection).await?;
        let options = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        let result = channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await;
        settle_check(
            &channel,
            result,
            format!("exchange {exchange}"),
            &mut missing,
        )
        .await?;
    }
    for queue in queues {
        let channel = open(connection).await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let result = channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map(|_| ());
        settle_check(&channel, result, format!("queue {queue}"), &mut missing).await?;
    }
    if !config.bindings.is_empty() {
        tracing::debug!(
            "passive mode: bindings cannot be checked over AMQP 0-9-1, only their exchanges"
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AmqpError::TopologyMissing { missing })
    }
}

async fn settle_check(
    channel: &Channel,
    result: lapin::Result<()>,
    what: String,
    missing: &mut Vec<String>,
) -> Result<(), AmqpError> {
    match result {
        Ok(()) => {
            let _ = channel.close(200, "checked".into()).await;
            Ok(())
        }
        Err(e) if is_not_found(&e) => {
            missing.push(what);
            Ok(())
        }
        Err(e) => Err(declare_error(what, &e)),
    }
}
