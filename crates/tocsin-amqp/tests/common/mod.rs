//! Helpers shared by the broker tests.
#![allow(dead_code)]

use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use std::time::Duration;
use tocsin_amqp::{BatchConsumer, Connection, Delivery, OutgoingMessage, Publisher};

/// Upper bound on any wait in these tests: a broken test fails, never hangs.
pub const WAIT: Duration = Duration::from_secs(20);

/// Messages for the input queue (default exchange), ids `m-<n>`.
pub fn inputs(queue: &str, range: std::ops::Range<usize>) -> Vec<OutgoingMessage> {
    range
        .map(|i| OutgoingMessage {
            exchange: String::new(),
            routing_key: queue.to_owned(),
            message_id: format!("m-{i}"),
            content_type: Some("x-application/hl7-v2+er7".to_owned()),
            body: format!("MSH|^~\\&|TEST|RX1|||20240101||ADT^A01|{i}|P|2.4\r").into_bytes(),
            headers: None,
            mandatory: true,
        })
        .collect()
}

/// Publish with confirms, panicking on failure.
pub async fn publish(publisher: &Publisher, messages: &[OutgoingMessage]) {
    publisher
        .publish_confirmed(messages)
        .await
        .expect("publish_confirmed");
}

/// Ready messages in `queue` (passive declare).
pub async fn depth(connection: &Connection, queue: &str) -> u32 {
    tocsin_amqp::queue_depth(connection, queue)
        .await
        .unwrap_or_else(|e| panic!("queue {queue} should exist: {e}"))
}

/// Take `n` deliveries in batches of at most `max`, checking each batch's bound.
pub async fn take(consumer: &mut BatchConsumer, n: usize, max: usize) -> Vec<Vec<Delivery>> {
    let mut batches = Vec::new();
    let mut got = 0;
    tokio::time::timeout(WAIT, async {
        while got < n {
            let batch = consumer
                .next_batch(max.min(n - got), Duration::from_millis(50))
                .await
                .expect("next_batch");
            assert!(batch.len() <= max, "batch of {} exceeds {max}", batch.len());
            got += batch.len();
            if !batch.is_empty() {
                batches.push(batch);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {got} of {n} deliveries arrived"));
    batches
}

/// A raw lapin consumer on `queue`, to read what landed there.
pub async fn raw_consumer(connection: &Connection, queue: &str) -> lapin::Consumer {
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_consume(
            queue.into(),
            "test-reader".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
}

/// The next message from a raw consumer, bounded by [`WAIT`].
pub async fn next_raw(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_core::Stream;
    let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *consumer).poll_next(cx));
    tokio::time::timeout(WAIT, next)
        .await
        .expect("a message should arrive")
        .expect("consumer open")
        .expect("delivery ok")
}
