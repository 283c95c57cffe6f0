//! The null relay: the broker's own limit for a relay on tocsin's input
//! queue. It consumes (prefetch 1000), republishes each message unchanged to
//! a topic exchange with a durable queue bound to it, waits for the
//! publisher confirms, then acknowledges the inputs (`multiple = true`).
//! It works in batches of whatever has arrived (up to `--batch`), as the
//! gateway does. Issue 8's benchmark compares the gateway with this.
//!
//! `cargo run --release -p tocsin-amqp --example null_relay -- --count 100000`

use clap::Parser;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Confirmation, ExchangeKind};
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
    /// Topic exchange to republish to.
    #[arg(long, default_value = "tocsin.bench.relay")]
    exchange: String,
    /// Durable queue bound to the exchange (`#`), purged at start.
    #[arg(long, default_value = "tocsin.bench.relay.sink")]
    sink: String,
    /// Stop after this many messages.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// basic.qos prefetch.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Most messages relayed per confirm round.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Stop when nothing arrives for this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    idle_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = AmqpConfig {
        url: SecretUrl::new(args.url.clone()),
        input_queue: args.queue.clone(),
        connection_name: "tocsin-null-relay".into(),
        ..AmqpConfig::default()
    };
    let supervisor = Supervisor::new(config)?;
    let session = supervisor.try_connect().await?;
    let conn = session.connection();

    let setup = conn.create_channel().await?;
    setup
        .exchange_declare(
            args.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    setup
        .queue_declare(
            args.sink.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    setup
        .queue_bind(
            args.sink.as_str().into(),
            args.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    setup
        .queue_purge(args.sink.as_str().into(), QueuePurgeOptions::default())
        .await?;

    let input = conn.create_channel().await?;
    input
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await?;
    let output = conn.create_channel().await?;
    output
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut consumer = input
        .basic_consume(
            args.queue.as_str().into(),
            "null-relay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let idle = Duration::from_millis(args.idle_ms);
    let mut start = None;
    let mut got = 0u64;
    let mut batch = Vec::with_capacity(args.batch);
    'outer: while got < args.count {
        // Wait for one delivery, then take whatever else is already here.
        batch.clear();
        let cap = args.batch.min((args.count - got) as usize);
        while batch.len() < cap {
            let wait = if batch.is_empty() {
                idle
            } else {
                Duration::ZERO
            };
            let next = std::future::poll_fn(|cx| Pin::new(&mut consumer).poll_next(cx));
            match tokio::time::timeout(wait, next).await {
                Ok(Some(d)) => batch.push(d?),
                Ok(None) => break 'outer,
                Err(_) if batch.is_empty() => break 'outer,
                Err(_) => break,
            }
        }
        start.get_or_insert_with(Instant::now);
        let mut confirms = Vec::with_capacity(batch.len());
        for d in &batch {
            confirms.push(
                output
                    .basic_publish(
                        args.exchange.as_str().into(),
                        "hl7.message".into(),
                        BasicPublishOptions::default(),
                        &d.data,
                        d.properties.clone(),
                    )
                    .await?,
            );
        }
        for c in confirms {
            match c.await? {
                Confirmation::Ack(_) => {}
                other => return Err(format!("relay publish not confirmed: {other:?}").into()),
            }
        }
        let last = batch.last().expect("non-empty batch").delivery_tag;
        input
            .basic_ack(last, BasicAckOptions { multiple: true })
            .await?;
        got += batch.len() as u64;
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!(
        "null_relay messages={got} seconds={secs:.3} rate={:.0}",
        got as f64 / secs.max(f64::EPSILON)
    );
    session.close().await?;
    Ok(())
}
