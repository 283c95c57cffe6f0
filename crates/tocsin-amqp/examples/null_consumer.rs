//! The null consumer: the broker's own limit for a consumer on tocsin's
//! input queue. A plain lapin consumer (prefetch 1000) that does nothing but
//! acknowledge, in batches (`multiple = true` every `--ack-every` messages).
//! With `--via-adapter` it drains through tocsin-amqp's `BatchConsumer`
//! instead, which shows the adapter's own overhead. Issue 8's benchmark
//! compares the gateway with this on the same queue.
//!
//! `cargo run --release -p tocsin-amqp --example null_consumer -- --count 100000`

use clap::Parser;
use futures_core::Stream;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tocsin_amqp::{AmqpConfig, SecretUrl, Supervisor};

#[derive(Parser)]
struct Args {
    /// Broker URL.
    #[arg(long, env = "TOCSIN_AMQP_URL", default_value = tocsin_amqp::DEFAULT_URL)]
    url: String,
    /// Queue to drain (declared as tocsin's input queue if absent).
    #[arg(long, default_value = "tocsin.inbound")]
    queue: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// basic.qos prefetch.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Acknowledge (multiple) every this many messages.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    ack_every: u64,
    /// Stop when nothing arrives for this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    idle_ms: u64,
    /// Largest batch taken by `--via-adapter` (acknowledged as one).
    #[arg(long, default_value_t = 250)]
    batch: u64,
    /// Drain through tocsin-amqp's BatchConsumer instead of raw lapin.
    #[arg(long)]
    via_adapter: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = AmqpConfig {
        url: SecretUrl::new(args.url.clone()),
        input_queue: args.queue.clone(),
        prefetch: args.prefetch,
        batch_size: args.batch as usize,
        connection_name: "tocsin-null-consumer".into(),
        ..AmqpConfig::default()
    };
    let supervisor = Supervisor::new(config)?;
    let session = supervisor.try_connect().await?;
    let idle = Duration::from_millis(args.idle_ms);
    let mut start = None;
    let mut got = 0u64;
    if args.via_adapter {
        let mut consumer = session.consumer().await?;
        while got < args.count {
            let want = (args.count - got).min(args.batch) as usize;
            let batch = consumer.next_batch(want, Duration::from_millis(20)).await?;
            let Some(last) = batch.last() else {
                if start.is_some_and(|s: Instant| s.elapsed() > idle) {
                    break;
                }
                continue;
            };
            start.get_or_insert_with(Instant::now);
            got += batch.len() as u64;
            consumer.ack_through(last).await?;
        }
    } else {
        let channel = session.connection().create_channel().await?;
        channel
            .basic_qos(args.prefetch, BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                args.queue.as_str().into(),
                "null-consumer".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut last_tag = None;
        while got < args.count {
            let next = std::future::poll_fn(|cx| Pin::new(&mut consumer).poll_next(cx));
            let delivery = match tokio::time::timeout(idle, next).await {
                Ok(Some(d)) => d?,
                Ok(None) | Err(_) => break,
            };
            start.get_or_insert_with(Instant::now);
            got += 1;
            last_tag = Some(delivery.delivery_tag);
            if got.is_multiple_of(args.ack_every) {
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                    .await?;
                last_tag = None;
            }
        }
        if let Some(tag) = last_tag {
            channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let mode = if args.via_adapter { "adapter" } else { "raw" };
    println!(
        "null_consumer mode={mode} messages={got} seconds={secs:.3} rate={:.0}",
        got as f64 / secs.max(f64::EPSILON)
    );
    session.close().await?;
    Ok(())
}
