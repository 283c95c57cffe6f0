//! The adapter's hot paths against the real local RabbitMQ, in a vhost of
//! their own: a confirmed publish of one outbox batch, and draining and
//! acknowledging one input batch. Both are broker-bound; the figures show
//! what one batch costs, and regressions in the adapter show as a gap to
//! the null clients (docs/performance.md, "AMQP").
//!
//! `cargo bench -p tocsin-amqp --bench broker_roundtrip` (CI: `-- --test`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lapin::options::{QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use std::time::{Duration, Instant};
use tocsin_amqp::test_support::TestVhost;
use tocsin_amqp::{OutgoingMessage, Supervisor};

const BATCH: usize = 500;
const SIZE: usize = 1200;

fn messages(queue: &str, n: usize) -> Vec<OutgoingMessage> {
    (0..n)
        .map(|i| OutgoingMessage {
            exchange: String::new(),
            routing_key: queue.to_owned(),
            message_id: format!("bench-{i}"),
            content_type: Some("x-application/hl7-v2+er7".into()),
            body: vec![b'X'; SIZE],
            headers: None,
            mandatory: true,
        })
        .collect()
}

fn broker(c: &mut Criterion) {
    let vhost = TestVhost::create("bench");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let supervisor = Supervisor::new(vhost.config()).expect("config");
    let session = rt
        .block_on(supervisor.try_connect())
        .expect("broker at 127.0.0.1:5672");
    let publisher = rt.block_on(session.publisher()).expect("publisher");
    let mut consumer = rt.block_on(session.consumer()).expect("consumer");
    let sink = rt.block_on(async {
        let ch = session.connection().create_channel().await.unwrap();
        ch.queue_declare(
            "bench.sink".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch
    });
    let to_sink = messages("bench.sink", BATCH);
    let to_input = messages("tocsin.inbound", BATCH);

    let mut group = c.benchmark_group("amqp");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("publish_confirmed_500x1200B_durable", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    publisher.publish_confirmed(&to_sink).await.unwrap();
                }
                let elapsed = start.elapsed();
                sink.queue_purge("bench.sink".into(), QueuePurgeOptions::default())
                    .await
                    .unwrap();
                elapsed
            })
        });
    });

    group.bench_function("drain_and_ack_500_from_quorum_queue", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    publisher.publish_confirmed(&to_input).await.unwrap();
                    let start = Instant::now();
                    let mut got = 0;
                    while got < BATCH {
                        let batch = consumer
                            .next_batch(250, Duration::from_millis(20))
                            .await
                            .unwrap();
                        if let Some(last) = batch.last() {
                            consumer.ack_through(last).await.unwrap();
                        }
                        got += batch.len();
                    }
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
    });
    group.finish();
    drop((consumer, publisher, sink));
    let _ = rt.block_on(session.close());
}

criterion_group!(benches, broker);
criterion_main!(benches);
