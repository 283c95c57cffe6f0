//! Broker chores for `bench/run.sh` that rabbitmqctl cannot do without the
//! management plugin: declare (and purge) the durable queue a subscriber
//! would bind to `tocsin.events`, and report a queue's depth.
//!
//! `bench_queue subscribe --exchange tocsin.events --queue tocsin.bench.events`
//! `bench_queue depth --queue tocsin.bench.events`

use lapin::options::{
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

#[derive(clap::Parser)]
struct Args {
    /// Broker URL (with the benchmark's vhost).
    #[arg(
        long,
        env = "TOCSIN_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Declare a durable queue bound with `#` to a topic exchange (declared
    /// too, durable, as the gateway declares it) and purge it.
    Subscribe {
        #[arg(long, default_value = "tocsin.events")]
        exchange: String,
        #[arg(long, default_value = "tocsin.bench.events")]
        queue: String,
    },
    /// Print `depth queue=NAME messages=N` (ready messages).
    Depth {
        #[arg(long)]
        queue: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    let conn = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    match args.command {
        Cmd::Subscribe { exchange, queue } => {
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
            let q = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.queue_declare(queue.as_str().into(), q, FieldTable::default())
                .await?;
            ch.queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            let purged = ch
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await?;
            println!("subscribe queue={queue} exchange={exchange} purged={purged}");
        }
        Cmd::Depth { queue } => {
            let q = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let info = ch
                .queue_declare(queue.as_str().into(), q, FieldTable::default())
                .await?;
            println!("depth queue={queue} messages={}", info.message_count());
        }
    }
    conn.close(200, "bye".into()).await?;
    Ok(())
}
