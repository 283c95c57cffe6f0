//! Events published in NDJSON batches (`[events] format = "ndjson"`, the
//! default) against the real broker and store: a subscriber queue bound to
//! `tocsin.events` receives, for each committed batch, one message per
//! routing key whose lines are exactly the bodies the single format
//! publishes, each under its own routing key; and a gateway killed in
//! mid-stream loses no event.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::accounting::{account, stop, wait_done};
use common::traffic::{Traffic, discharges};
use common::{Observer, Seen, Tuning, World};

const NDJSON: [(&str, &str); 1] = [("TOCSIN_EVENTS_FORMAT", "ndjson")];

/// The events of one NDJSON message: its lines, each checked to be one
/// JSON event whose `<source.format>.<event_type>` is the message's
/// routing key.
fn lines(message: &Seen) -> Vec<Vec<u8>> {
    assert_eq!(message.content_type, "application/x-ndjson");
    assert!(
        message.body.ends_with(b"\n"),
        "every line ends with a newline"
    );
    let lines: Vec<Vec<u8>> = message
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(!lines.is_empty(), "an empty batch was published");
    for line in &lines {
        let event: serde_json::Value = serde_json::from_slice(line).expect("each line is JSON");
        let key = format!(
            "{}.{}",
            event["source"]["format"].as_str().expect("source.format"),
            event["type"].as_str().expect("type")
        );
        assert_eq!(
            key, message.routing_key,
            "each event travels under its own routing key"
        );
    }
    lines
}

fn event_id(line: &[u8]) -> String {
    let event: serde_json::Value = serde_json::from_slice(line).expect("JSON");
    event["event_id"].as_str().expect("event_id").to_owned()
}

/// Runs `traffic` as a backlog through a fresh gateway in `world` with
/// `extra` environment until done, and returns what the events queue
/// received.
async fn drain(world: &World, traffic: &Traffic, extra: &[(&str, &str)]) -> Observer {
    let mut events = world.observe("tocsin.events").await;
    // A backlog, so that batches are full whatever the machine's load.
    world.publish(&traffic.messages).await;
    let mut gateway = world.start(extra);
    gateway.wait_ready().await;
    wait_done(world, traffic).await;
    stop(gateway).await;
    events.take().await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_batches_carry_each_event_exactly_as_single_messages() {
    let traffic = discharges("nd", 300);
    let single_world = World::sqlite("events-single", Tuning::default()).await;
    let single = drain(&single_world, &traffic, &[]).await;
    let batched_world = World::sqlite("events-ndjson", Tuning::default()).await;
    let batched = drain(&batched_world, &traffic, &NDJSON).await;

    // Single: one JSON event a message, its id the message id.
    let mut expected: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    for m in &single.seen {
        assert_eq!(m.content_type, "application/json");
        assert_eq!(event_id(&m.body), m.message_id);
        expected.insert(
            m.message_id.clone(),
            (m.routing_key.clone(), m.body.clone()),
        );
    }
    assert_eq!(expected.len(), single.seen.len(), "no repeats in single");
    assert!(expected.len() > 300, "the traffic makes events");

    // NDJSON: the same events, byte for byte, each once, under the same
    // routing key, in far fewer messages.
    let mut got: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    for m in &batched.seen {
        for line in lines(m) {
            let previous = got.insert(event_id(&line), (m.routing_key.clone(), line));
            assert!(previous.is_none(), "an event published twice");
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same events"
    );
    for (id, want) in &expected {
        assert_eq!(&got[id], want, "event {id} differs from its single message");
    }
    assert!(
        batched.seen.len() * 5 < expected.len(),
        "{} NDJSON messages for {} events: not batched",
        batched.seen.len(),
        expected.len()
    );
    // The messages' ids are distinct, and the outbox holds exactly them.
    let ids: BTreeSet<String> = batched.seen.iter().map(|s| s.message_id.clone()).collect();
    assert_eq!(ids.len(), batched.seen.len());
    assert_eq!(
        ids,
        common::accounting::outbox_ids(&batched_world, "tocsin.events").await
    );
}

/// Kill -9 twice in mid-stream with NDJSON batches: every input accounted
/// for, every outbox message published, and every event of the committed
/// inputs on the subscriber queue; a repeated batch repeats whole (the
/// subscriber drops repeated lines by `event_id`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_ndjson_batches_loses_no_event() {
    let world = World::sqlite(
        "kill9-ndjson",
        Tuning {
            prefetch: 200,
            batch_size: 100,
            ..Tuning::default()
        },
    )
    .await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let traffic = discharges("kn", 1500);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;
    for round in 1..=2 {
        let mut gateway = world.start(&NDJSON);
        world
            .committed_at_least(&mut gateway, total * round / 3)
            .await;
        gateway.kill9();
        assert!(
            world.store.count("inputs").await < total,
            "round {round}: finished before the kill"
        );
    }
    let mut gateway = world.start(&NDJSON);
    gateway.wait_ready().await;
    wait_done(&world, &traffic).await;
    stop(gateway).await;
    account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;

    // Every event in the outbox reached the subscriber, and a batch seen
    // twice carries the same lines both times.
    let mut lines_of: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for m in &events.seen {
        let l = lines(m);
        if let Some(before) = lines_of.insert(m.message_id.clone(), l.clone()) {
            assert_eq!(before, l, "a repeated batch differs");
        }
    }
    let seen_events: BTreeSet<String> = lines_of.values().flatten().map(|l| event_id(l)).collect();
    let stored_events: BTreeSet<String> = world
        .store
        .strings("SELECT CAST(body AS TEXT) FROM outbox WHERE exchange = 'tocsin.events'")
        .await
        .iter()
        .flat_map(|b| {
            b.lines()
                .map(|l| event_id(l.as_bytes()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seen_events, stored_events);
    assert!(
        stored_events.len() >= total - traffic.junk.len(),
        "{} events for {total} inputs",
        stored_events.len()
    );
}
