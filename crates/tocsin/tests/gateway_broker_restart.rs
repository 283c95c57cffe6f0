//! The broker restarted (`rabbitmqctl stop_app` / `start_app`) while the
//! gateway consumes a stream: `/readyz` answers 503 while the broker is
//! away, the gateway reconnects by itself and finishes, and every input is
//! accounted for.
//!
//! Stopping the broker affects every user of it, so this test takes the
//! broker lock exclusively (the other gateway tests hold it shared), is the
//! only test in this binary, and restarts the broker from a drop guard
//! however it ends.

mod common;

use std::time::Instant;

use common::accounting::{account, stop, wait_done};
use common::traffic::discharges;
use common::{BrokerLock, POLL, Tuning, WAIT, World, reader_on};
use tocsin_amqp::test_support::BrokerStopped;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_in_mid_stream_reconnects_and_finishes() {
    let lock = BrokerLock::exclusive();
    let tuning = Tuning {
        prefetch: 100,
        batch_size: 50,
        ..Tuning::default()
    };
    let mut world = World::new("broker-restart", tuning, false, Some(lock)).await;
    // Observer queues are durable and the messages persistent: they survive
    // the restart, to be read afterwards on a new connection.
    world.observe("tocsin.events").await;
    world.observe("tocsin.alerts").await;
    // Enough traffic that the gateway is still busy when `rabbitmqctl
    // stop_app` (an Erlang VM of its own, seconds on a loaded machine) has
    // taken effect: with 2,000 discharges a loaded run once finished first.
    let traffic = discharges("r", 4000);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let deadline = Instant::now() + WAIT;
    while world.store.count("inputs").await < total / 10 {
        assert!(Instant::now() < deadline, "{}", gateway.log());
        tokio::time::sleep(POLL).await;
    }

    let mut broker = BrokerStopped::stop();
    let at_stop = world.store.count("inputs").await;
    assert!(
        at_stop < total,
        "the gateway finished all {total} inputs before the broker stopped; the test must stop it in mid-stream"
    );
    gateway.wait_status("/readyz", 503).await;
    assert_eq!(
        gateway.get("/healthz"),
        Some(200),
        "alive while the broker is away"
    );
    // The gauge follows the link, whichever part noticed the loss first.
    common::poll("tocsin_amqp_connected 0", WAIT, || async {
        let (_, metrics) = gateway.fetch("/metrics").ok_or("no answer")?;
        if metrics.lines().any(|l| l == "tocsin_amqp_connected 0") {
            Ok(())
        } else {
            Err(metrics
                .lines()
                .find(|l| l.starts_with("tocsin_amqp_connected"))
                .unwrap_or("no tocsin_amqp_connected line")
                .to_owned())
        }
    })
    .await;
    broker.start();
    gateway.wait_ready().await;
    eprintln!("broker stopped with {at_stop}/{total} inputs committed");

    wait_done(&world, &traffic).await;
    // The supervisor's link watcher or the consuming loop, whichever
    // notices first, logs the loss.
    let lost = gateway.log_messages("lost connection to RabbitMQ").len()
        + gateway.log_messages("broker link lost").len();
    assert!(lost > 0, "the loss is logged\n{}", gateway.log());
    stop(gateway).await;

    // The test's own connection died with the broker: read on a new one.
    world.reconnect().await;
    let mut events = reader_on(&world.session, "test.observe.tocsin.events").await;
    let mut alerts = reader_on(&world.session, "test.observe.tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    eprintln!(
        "after a broker restart: {ev} event ids, {al} alert ids, {de} dead letters published more than once \
         (of {} events, {} alerts, {} dead letters)",
        events.seen.len(),
        alerts.seen.len(),
        dead.seen.len()
    );
    // Publishes the broker took but whose confirms were lost with the link
    // are published again after reconnecting (at most one outbox round), as
    // are the dead-letter copies of the inputs in hand whose
    // acknowledgements were lost: the batch being processed and the one
    // committed but not yet acknowledged (the pipeline acknowledges a batch
    // once it has drawn the next). A rejected input is copied again even
    // when its rejection was committed (deploy/README.md, "Dead letters":
    // only an applied input counts as done), so with this traffic (one
    // rejected input in 76) at most 2.
    assert!(ev <= 1000 && al <= 1000 && de <= 2, "{ev} {al} {de}");
}
