//! Fill tocsin's input queue with N synthetic messages (publisher confirms),
//! to measure how fast the null clients and the gateway drain a backlog.
//! Issue 8's `tocsin loadgen` makes realistic traffic; this is the minimum
//! needed to measure the broker side alone.
//!
//! `cargo run --release -p tocsin-amqp --example backlog -- --count 100000`

use clap::Parser;
use std::time::Instant;
use tocsin_amqp::{AmqpConfig, OutgoingMessage, SecretUrl, Supervisor};

#[derive(Parser)]
struct Args {
    /// Broker URL.
    #[arg(long, env = "TOCSIN_AMQP_URL", default_value = tocsin_amqp::DEFAULT_URL)]
    url: String,
    /// Queue to fill (declared as tocsin's input queue).
    #[arg(long, default_value = "tocsin.inbound")]
    queue: String,
    /// Messages to publish.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Body size in bytes (a typical ADT message is 1 to 2 KB).
    #[arg(long, default_value_t = 1200)]
    size: usize,
    /// Messages per confirmed batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

fn body(i: usize, size: usize) -> Vec<u8> {
    let mut b = format!(
        "MSH|^~\\&|PAS|RX1|TOCSIN|RX1|20240101120000||ADT^A03|{i:010}|P|2.4\rEVN|A03|20240101120000\rPID|1||{i:010}^^^RX1^MR\r"
    )
    .into_bytes();
    b.resize(size.max(b.len()), b'X');
    b
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = AmqpConfig {
        url: SecretUrl::new(args.url),
        input_queue: args.queue.clone(),
        connection_name: "tocsin-backlog".into(),
        ..AmqpConfig::default()
    };
    let supervisor = Supervisor::new(config)?;
    let session = supervisor.try_connect().await?;
    let publisher = session.publisher().await?;
    let start = Instant::now();
    let mut sent = 0;
    while sent < args.count {
        let n = args.batch.min(args.count - sent);
        let batch: Vec<OutgoingMessage> = (sent..sent + n)
            .map(|i| OutgoingMessage {
                exchange: String::new(),
                routing_key: args.queue.clone(),
                message_id: format!("backlog-{i}"),
                content_type: Some("x-application/hl7-v2+er7".into()),
                body: body(i, args.size),
                headers: None,
                mandatory: true,
            })
            .collect();
        publisher.publish_confirmed(&batch).await?;
        sent += n;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "backlog messages={sent} bytes={} seconds={secs:.3} rate={:.0}",
        args.size,
        sent as f64 / secs
    );
    session.close().await?;
    Ok(())
}
