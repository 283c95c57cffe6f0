//! The supervisor against a broker restarted mid-stream. `rabbitmqctl
//! stop_app` stops the whole local broker, so this is the only test in this
//! binary (test binaries run one after another) and it stays short; a guard
//! starts the broker again however the test ends.

mod common;

use common::{WAIT, depth, inputs, publish};
use lapin::options::QueueDeleteOptions;
use std::collections::BTreeSet;
use std::time::Duration;
use tocsin_amqp::test_support::{BrokerStopped, TestVhost};
use tocsin_amqp::{BatchConsumer, Delivery, LinkState, Supervisor};

async fn batch(consumer: &mut BatchConsumer, max: usize) -> Vec<Delivery> {
    tokio::time::timeout(WAIT, consumer.next_batch(max, Duration::from_millis(50)))
        .await
        .expect("next_batch in time")
        .expect("next_batch")
}

fn id(d: &Delivery) -> String {
    d.message_id().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_reconnects_redeclares_and_loses_nothing() {
    let vhost = TestVhost::create("restart");
    let mut config = vhost.config();
    config.prefetch = 20;
    config.batch_size = 20;
    let supervisor = Supervisor::new(config).unwrap();
    let mut state = supervisor.subscribe();
    assert_eq!(*state.borrow(), LinkState::Connecting);
    let session = tokio::time::timeout(WAIT, supervisor.connect())
        .await
        .unwrap();
    assert_eq!(supervisor.state(), LinkState::Up);

    let publisher = session.publisher().await.unwrap();
    publish(&publisher, &inputs("tocsin.inbound", 0..100)).await;
    let mut consumer = session.consumer().await.unwrap();

    // Commit and acknowledge two batches.
    let mut committed = BTreeSet::new();
    while committed.len() < 40 {
        let b = batch(&mut consumer, 20).await;
        if let Some(last) = b.last() {
            consumer.ack_through(last).await.unwrap();
            committed.extend(b.iter().map(id));
        }
    }
    // A batch in hand, not yet committed, when the broker goes away.
    let mut in_hand = Vec::new();
    while in_hand.is_empty() {
        in_hand = batch(&mut consumer, 20).await;
    }
    let in_hand_ids: BTreeSet<String> = in_hand.iter().map(id).collect();
    // Remove a piece of topology so re-declaration after reconnect shows.
    let ch = session.connection().create_channel().await.unwrap();
    ch.queue_delete("tocsin.dead".into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    {
        let mut broker = BrokerStopped::stop();
        tokio::time::timeout(WAIT, state.wait_for(|s| *s == LinkState::Down))
            .await
            .expect("supervisor notices the broker is gone")
            .unwrap();
        assert!(!session.is_open());
        let err = consumer
            .ack_through(in_hand.last().unwrap())
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        broker.start();
    }
    drop((in_hand, consumer, publisher, session));

    let session = tokio::time::timeout(Duration::from_secs(60), supervisor.connect())
        .await
        .expect("reconnects once the broker is back");
    assert_eq!(supervisor.state(), LinkState::Up);
    assert_eq!(
        depth(session.connection(), "tocsin.dead").await,
        0,
        "re-declared"
    );

    let publisher = session.publisher().await.unwrap();
    publish(&publisher, &inputs("tocsin.inbound", 100..150)).await;
    let mut consumer = session.consumer().await.unwrap();
    let mut redelivered = BTreeSet::new();
    while committed.len() < 150 {
        let b = batch(&mut consumer, 20).await;
        for d in &b {
            if d.redelivered() {
                redelivered.insert(id(d));
            }
            assert!(committed.insert(id(d)), "{} committed twice", id(d));
        }
        if let Some(last) = b.last() {
            consumer.ack_through(last).await.unwrap();
        }
    }
    let all: BTreeSet<String> = (0..150).map(|i| format!("m-{i}")).collect();
    assert_eq!(committed, all, "every input accounted for");
    assert_eq!(redelivered, in_hand_ids, "the uncommitted batch came back");
    assert_eq!(depth(session.connection(), "tocsin.inbound").await, 0);
}
