//! The adapter against the real local RabbitMQ, each test in its own vhost.

mod common;

use common::{WAIT, depth, inputs, next_raw, publish, raw_consumer, take};
use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use std::collections::BTreeSet;
use std::time::Duration;
use tocsin_amqp::test_support::TestVhost;
use tocsin_amqp::{
    AmqpConfig, AmqpError, BindingConfig, LinkState, OutgoingMessage, Supervisor, declare_topology,
};

fn text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => panic!("not a string header: {other:?}"),
    }
}

async fn connect(config: AmqpConfig) -> (Supervisor, tocsin_amqp::Session) {
    let supervisor = Supervisor::new(config).expect("valid config");
    let session = tokio::time::timeout(WAIT, supervisor.try_connect())
        .await
        .expect("connect in time")
        .expect("connect");
    (supervisor, session)
}

#[tokio::test]
async fn topology_is_idempotent_and_passive_mode_lists_what_is_missing() {
    let vhost = TestVhost::create("topology");

    // Passive mode on an empty vhost: every piece is named, nothing created.
    let passive = AmqpConfig {
        passive: true,
        ..vhost.config()
    };
    let supervisor = Supervisor::new(passive.clone()).unwrap();
    let err = supervisor.try_connect().await.unwrap_err();
    let AmqpError::TopologyMissing { missing } = &err else {
        panic!("expected TopologyMissing, got {err}");
    };
    assert_eq!(
        missing,
        &[
            "exchange tocsin.events",
            "exchange tocsin.alerts",
            "queue tocsin.dead",
            "queue tocsin.inbound",
        ]
    );
    assert_eq!(supervisor.state(), LinkState::Connecting);

    // Declaring twice is fine, and afterwards the passive check passes.
    let (_s, session) = connect(vhost.config()).await;
    declare_topology(session.connection(), &vhost.config())
        .await
        .unwrap();
    declare_topology(session.connection(), &passive)
        .await
        .unwrap();
    assert_eq!(depth(session.connection(), "tocsin.inbound").await, 0);
    assert_eq!(depth(session.connection(), "tocsin.dead").await, 0);

    // The input queue really is a quorum queue with our arguments.
    let listed = tocsin_amqp::test_support::rabbitmqctl(&[
        "list_queues",
        "-p",
        vhost.name(),
        "name",
        "type",
        "durable",
        "arguments",
    ]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("tocsin.inbound"))
        .unwrap();
    assert!(line.contains("quorum") && line.contains("true"), "{line}");
    assert!(
        line.contains("x-delivery-limit") && line.contains("tocsin.dead"),
        "{line}"
    );

    // A queue that exists with other arguments is reported by name.
    let other = AmqpConfig {
        delivery_limit: 9,
        ..vhost.config()
    };
    let err = declare_topology(session.connection(), &other)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmqpError::Declare { what, .. } if what == "quorum queue tocsin.inbound"),
        "{err}"
    );

    // A binding to an engine exchange that does not exist names the binding.
    let bound = AmqpConfig {
        bindings: vec![BindingConfig {
            exchange: "engine.adt".into(),
            routing_key: "ADT.#".into(),
            queue: None,
        }],
        ..vhost.config()
    };
    let err = declare_topology(session.connection(), &bound)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exchange engine.adt"), "{err}");
    let err = declare_topology(
        session.connection(),
        &AmqpConfig {
            passive: true,
            ..bound.clone()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, AmqpError::TopologyMissing { missing } if missing == &["exchange engine.adt"]),
        "{err}"
    );
}

#[tokio::test]
async fn bindings_route_engine_traffic_into_the_input_queue() {
    let vhost = TestVhost::create("bindings");
    let (_s, bootstrap) = connect(vhost.config()).await;
    let channel = bootstrap.connection().create_channel().await.unwrap();
    channel
        .exchange_declare(
            "engine.adt".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let config = AmqpConfig {
        bindings: vec![BindingConfig {
            exchange: "engine.adt".into(),
            routing_key: "ADT.#".into(),
            queue: None,
        }],
        ..vhost.config()
    };
    let (_s2, session) = connect(config).await;
    let publisher = session.publisher().await.unwrap();
    let mut routed = inputs("ADT.A01", 0..1);
    routed[0].exchange = "engine.adt".into();
    publish(&publisher, &routed).await;
    let mut unrouted = inputs("ORU.R01", 1..2);
    unrouted[0].exchange = "engine.adt".into();
    let err = publisher.publish_confirmed(&unrouted).await.unwrap_err();
    assert!(
        matches!(err, AmqpError::Unroutable { ref message_id, .. } if message_id == "m-1"),
        "{err}"
    );
    assert_eq!(depth(session.connection(), "tocsin.inbound").await, 1);
}

#[tokio::test]
async fn batches_are_bounded_and_acknowledged_only_after_commit() {
    let vhost = TestVhost::create("batches");
    let mut config = vhost.config();
    config.prefetch = 100;
    config.batch_size = 64;
    let (_s, session) = connect(config.clone()).await;
    let publisher = session.publisher().await.unwrap();
    let sent = inputs("tocsin.inbound", 0..250);
    publish(&publisher, &sent).await;

    // First consumer takes a batch and "crashes" before committing.
    let mut first = session.consumer().await.unwrap();
    let lost = take(&mut first, 30, 30).await;
    let lost_ids: BTreeSet<String> = lost[0]
        .iter()
        .map(|d| d.message_id().unwrap().to_owned())
        .collect();
    assert!(lost[0].iter().all(|d| !d.redelivered()));
    drop(lost);
    drop(first);
    let (supervisor2, session2) = connect(config).await;
    drop(session);

    let mut consumer = session2.consumer().await.unwrap();
    let mut seen = BTreeSet::new();
    let mut redelivered = BTreeSet::new();
    let mut largest = 0;
    while seen.len() < 250 {
        // prefetch (100) < 250: this only finishes because each batch is acknowledged.
        let batch = tokio::time::timeout(WAIT, consumer.next_batch(64, Duration::from_millis(50)))
            .await
            .expect("next_batch in time")
            .unwrap();
        assert!(batch.len() <= 64);
        if batch.is_empty() {
            continue;
        }
        largest = largest.max(batch.len());
        for d in &batch {
            assert_eq!(d.content_type(), Some("x-application/hl7-v2+er7"));
            let id = d.message_id().unwrap().to_owned();
            let n: usize = id[2..].parse().unwrap();
            assert_eq!(d.body(), sent[n].body.as_slice());
            if d.redelivered() {
                redelivered.insert(id.clone());
            }
            assert!(seen.insert(id), "duplicate delivery");
        }
        // "commit", then acknowledge the batch with one multiple ack
        consumer.ack_through(batch.last().unwrap()).await.unwrap();
    }
    assert!(largest > 1, "deliveries should come in batches");
    assert_eq!(seen.len(), 250);
    // Everything the first consumer held unacknowledged (its prefetch window
    // of 100, including the batch in hand) comes back, marked redelivered.
    assert!(redelivered.is_superset(&lost_ids));
    let window: BTreeSet<String> = (0..100).map(|i| format!("m-{i}")).collect();
    assert_eq!(redelivered, window);
    assert_eq!(consumer.open_deliveries(), 0);
    assert!(
        consumer
            .next_batch(10, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(depth(session2.connection(), "tocsin.inbound").await, 0);
    // Shutdown: the consumer is dropped, the session closes cleanly.
    drop(consumer);
    assert_eq!(supervisor2.state(), LinkState::Up);
    session2.close().await.unwrap();
    assert_eq!(supervisor2.state(), LinkState::Down);
}

#[tokio::test]
async fn dead_letter_keeps_the_body_and_headers_and_adds_the_reason() {
    let vhost = TestVhost::create("deadletter");
    let (_s, session) = connect(vhost.config()).await;
    let publisher = session.publisher().await.unwrap();
    let body: Vec<u8> = b"MSH|^~\\&|\xff\x00 not valid\r\n\x01".to_vec();
    let mut headers = FieldTable::default();
    headers.insert(
        "x-trust".into(),
        AMQPValue::LongString(LongString::from(b"RX1".to_vec())),
    );
    headers.insert("x-seq".into(), AMQPValue::LongInt(42));
    publish(
        &publisher,
        &[
            OutgoingMessage {
                headers: Some(headers),
                body: body.clone(),
                message_id: "bad-1".into(),
                ..inputs("tocsin.inbound", 0..1).remove(0)
            },
            inputs("tocsin.inbound", 1..2).remove(0),
        ],
    )
    .await;

    let mut consumer = session.consumer().await.unwrap();
    let batch = take(&mut consumer, 2, 10)
        .await
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let bad = batch
        .iter()
        .find(|d| d.message_id() == Some("bad-1"))
        .unwrap();
    assert_eq!(bad.header_str("x-trust"), Some("RX1"));
    consumer
        .dead_letter(bad, "MSH-9 missing message type", Some("MSH-9"))
        .await
        .unwrap();
    // The good one is committed and acknowledged with the batch.
    consumer.ack_through(batch.last().unwrap()).await.unwrap();
    assert_eq!(consumer.open_deliveries(), 0);

    let mut dead = raw_consumer(session.connection(), "tocsin.dead").await;
    let got = next_raw(&mut dead).await;
    assert_eq!(got.data, body, "body unchanged byte for byte");
    let props = &got.properties;
    assert_eq!(props.message_id().as_ref().unwrap().as_str(), "bad-1");
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "x-application/hl7-v2+er7"
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    let h = props.headers().as_ref().unwrap().inner();
    assert_eq!(text(&h["x-trust"]), "RX1");
    assert_eq!(h["x-seq"], AMQPValue::LongInt(42));
    assert_eq!(text(&h["x-tocsin-error"]), "MSH-9 missing message type");
    assert_eq!(text(&h["x-tocsin-error-location"]), "MSH-9");
    assert_eq!(text(&h["x-tocsin-original-routing-key"]), "tocsin.inbound");
    assert_eq!(depth(session.connection(), "tocsin.inbound").await, 0);
    assert!(
        consumer
            .next_batch(5, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty(),
        "a dead-lettered message is not redelivered"
    );
}

#[tokio::test]
async fn requeued_messages_come_back_until_the_delivery_limit_dead_letters_them() {
    let vhost = TestVhost::create("requeue");
    let config = AmqpConfig {
        delivery_limit: 2,
        ..vhost.config()
    };
    let (_s, session) = connect(config).await;
    let publisher = session.publisher().await.unwrap();
    publish(&publisher, &inputs("tocsin.inbound", 0..3)).await;
    let mut consumer = session.consumer().await.unwrap();

    // A whole batch fails for a passing reason and is requeued at once.
    let batch = take(&mut consumer, 3, 3)
        .await
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    consumer
        .requeue_through(batch.last().unwrap())
        .await
        .unwrap();
    let again = take(&mut consumer, 3, 3)
        .await
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    assert!(again.iter().all(|d| d.redelivered()));
    assert!(
        again.iter().all(|d| d.delivery_count() == Some(1)),
        "{again:?}"
    );
    // Two recover; m-0 keeps failing.
    let mut deliveries_of_m0 = 2;
    for d in &again {
        if d.message_id() == Some("m-0") {
            consumer.requeue(d).await.unwrap();
        } else {
            consumer.ack(d).await.unwrap();
        }
    }
    let mut dead = raw_consumer(session.connection(), "tocsin.dead").await;
    loop {
        let batch = consumer
            .next_batch(1, Duration::from_millis(300))
            .await
            .unwrap();
        let Some(d) = batch.first() else { break };
        assert_eq!(d.message_id(), Some("m-0"));
        deliveries_of_m0 += 1;
        assert!(deliveries_of_m0 <= 3, "delivery limit not enforced");
        consumer.requeue(d).await.unwrap();
    }
    assert_eq!(
        deliveries_of_m0, 3,
        "delivered once plus delivery_limit (2) times"
    );
    let got = next_raw(&mut dead).await;
    assert_eq!(
        got.properties.message_id().as_ref().unwrap().as_str(),
        "m-0"
    );
    let h = got.properties.headers().as_ref().unwrap().inner();
    assert_eq!(text(&h["x-first-death-reason"]), "delivery_limit");
    assert!(h.contains_key("x-death"));
    assert_eq!(depth(session.connection(), "tocsin.inbound").await, 0);
}

#[tokio::test]
async fn publish_confirmed_returns_after_the_broker_holds_every_message() {
    let vhost = TestVhost::create("confirms");
    let (_s, session) = connect(vhost.config()).await;
    let channel = session.connection().create_channel().await.unwrap();
    channel
        .queue_declare(
            "subscriber".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            "subscriber".into(),
            "tocsin.events".into(),
            "hl7.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let publisher = session.publisher().await.unwrap();
    let events: Vec<OutgoingMessage> = (0..200)
        .map(|i| {
            OutgoingMessage::json(
                "tocsin.events",
                "hl7.admission",
                format!("evt-{i:04}"),
                format!("{{\"n\":{i}}}").into_bytes(),
            )
        })
        .collect();
    publisher.publish_confirmed(&events).await.unwrap();
    // Confirmed means enqueued: counted at once, no waiting.
    assert_eq!(depth(session.connection(), "subscriber").await, 200);

    let mut reader = raw_consumer(session.connection(), "subscriber").await;
    for expected in &events {
        let got = next_raw(&mut reader).await;
        assert_eq!(
            got.properties.message_id().as_ref().map(|s| s.as_str()),
            Some(expected.message_id.as_str())
        );
        assert_eq!(got.data, expected.body);
        assert_eq!(*got.properties.delivery_mode(), Some(2));
    }

    // Not mandatory: an event nobody subscribes to is fine.
    let stray = OutgoingMessage::json("tocsin.events", "fhir.document", "evt-x", b"{}".to_vec());
    publisher
        .publish_confirmed(std::slice::from_ref(&stray))
        .await
        .unwrap();
    // Mandatory: the same is an error naming the message.
    let err = publisher
        .publish_confirmed(&[OutgoingMessage {
            mandatory: true,
            ..stray
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AmqpError::Unroutable { message_id, routing_key, .. }
            if message_id == "evt-x" && routing_key == "fhir.document"),
        "{err}"
    );
    // Publishing to an exchange that does not exist fails, not hangs.
    let err = publisher
        .publish_confirmed(&[OutgoingMessage::json(
            "nowhere",
            "k",
            "evt-y",
            b"{}".to_vec(),
        )])
        .await
        .unwrap_err();
    assert!(!publisher.is_open(), "the broker closes the channel: {err}");
}

#[tokio::test]
async fn stop_drains_what_was_received_and_leaves_the_rest_queued() {
    let vhost = TestVhost::create("stop");
    let mut config = vhost.config();
    config.prefetch = 10;
    config.batch_size = 5;
    let (supervisor, session) = connect(config).await;
    let publisher = session.publisher().await.unwrap();
    publish(&publisher, &inputs("tocsin.inbound", 0..30)).await;
    let mut consumer = session.consumer().await.unwrap();
    let mut received = take(&mut consumer, 5, 5)
        .await
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();

    // SIGTERM: stop consuming (the prefetch's credit used up first, so
    // that nothing can come after the cancel), finish what is in hand,
    // acknowledge, close.
    received.extend(consumer.stop(Duration::from_millis(100)).await.unwrap());
    assert_eq!(
        received.len(),
        10,
        "the whole prefetch taken before the cancel"
    );
    loop {
        // Returns at once when drained, not after max_wait.
        let rest = tokio::time::timeout(WAIT, consumer.next_batch(100, Duration::from_secs(600)))
            .await
            .expect("a stopped consumer does not wait for max_wait")
            .unwrap();
        if rest.is_empty() {
            break;
        }
        received.extend(rest);
    }
    assert_eq!(received.len(), 10, "never more than the prefetch");
    consumer
        .ack_through(received.last().unwrap())
        .await
        .unwrap();
    assert_eq!(consumer.open_deliveries(), 0);
    let acked = received.len() as u32;
    drop(received);
    drop(consumer);
    session.close().await.unwrap();
    assert_eq!(supervisor.state(), LinkState::Down);

    let (_s, again) = connect(vhost.config()).await;
    assert_eq!(
        depth(again.connection(), "tocsin.inbound").await,
        30 - acked
    );
}

/// With two input queues a batch's tags interleave with the next batch's;
/// acknowledging a committed batch must settle exactly its own deliveries,
/// so that whatever the next batch holds comes back if it is never
/// committed.
#[tokio::test]
async fn a_batch_acknowledgement_covers_only_its_own_deliveries_across_queues() {
    let vhost = TestVhost::create("ack-two-queues");
    let config = AmqpConfig {
        extra_input_queues: vec!["tocsin.extra".into()],
        ..vhost.config()
    };
    let (_s, session) = connect(config).await;
    let publisher = session.publisher().await.unwrap();
    // Each queue holds three before anything consumes, so the broker sends
    // one queue's then the other's, and batches taken from each in turn
    // hold tags from both ends.
    publish(&publisher, &inputs("tocsin.inbound", 0..3)).await;
    publish(&publisher, &inputs("tocsin.extra", 3..6)).await;
    let mut consumer = session.consumer().await.unwrap();
    for queue in ["tocsin.inbound", "tocsin.extra"] {
        tokio::time::timeout(WAIT, async {
            while depth(session.connection(), queue).await > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("every input delivered to the consumer");
    }
    let batches = take(&mut consumer, 6, 2).await;
    let first = &batches[0];
    let ids = |b: &[tocsin_amqp::Delivery]| -> BTreeSet<String> {
        b.iter()
            .map(|d| d.message_id().unwrap().to_owned())
            .collect()
    };
    // Only the first batch is committed and acknowledged.
    let receipt = tocsin_amqp::Receipt::of(first).unwrap();
    assert_eq!(receipt.len(), first.len());
    consumer.ack_batch(&receipt).await.unwrap();
    assert_eq!(consumer.open_deliveries(), 6 - first.len());
    // The consumer goes: everything else comes back to its queue.
    let unacked: BTreeSet<String> = batches[1..].iter().flat_map(|b| ids(b)).collect();
    consumer.close().await.unwrap();
    // The queues take their returns back in their own time: wait for as
    // many as were left unacknowledged (an acknowledgement that covered
    // some of them would leave fewer, and the wait would run out).
    let ready = || async {
        depth(session.connection(), "tocsin.inbound").await
            + depth(session.connection(), "tocsin.extra").await
    };
    let returned = tokio::time::timeout(WAIT, async {
        loop {
            let n = ready().await as usize;
            if n >= unacked.len() {
                return n;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        returned,
        Ok(unacked.len()),
        "first batch {:?}: {} of {} back",
        ids(first),
        ready().await,
        unacked.len()
    );
    let mut back = BTreeSet::new();
    for queue in ["tocsin.inbound", "tocsin.extra"] {
        let n = depth(session.connection(), queue).await;
        let mut reader = raw_consumer(session.connection(), queue).await;
        for _ in 0..n {
            let d = next_raw(&mut reader).await;
            back.insert(d.properties.message_id().as_ref().unwrap().to_string());
        }
    }
    assert_eq!(back, unacked, "first batch {:?}", ids(first));
}

/// A session that fails right after connecting (here the dead-letter queue
/// refuses every copy, under a max-length 0 reject-publish policy, and the
/// input has to be dead-lettered) is not reconnected at once, for ever:
/// the supervisor's one backoff spaces such sessions out like failed
/// connection attempts, and only a session that acknowledged something
/// starts it over. Read from the supervisor's own account
/// (`Session::waited`), and checked against the time `connect` took.
#[tokio::test]
async fn sessions_that_fail_at_once_are_reconnected_with_backoff() {
    let vhost = TestVhost::create("session-backoff");
    tocsin_amqp::test_support::rabbitmqctl(&[
        "set_policy",
        "-p",
        vhost.name(),
        "--apply-to",
        "queues",
        "dead-letters-refused",
        "^tocsin\\.dead$",
        r#"{"max-length":0,"overflow":"reject-publish"}"#,
    ]);
    let mut config = vhost.config();
    // Sessions here last far less than max_ms, so none counts as healthy
    // for having lasted; the input is returned many times.
    config.reconnect = tocsin_amqp::BackoffConfig {
        min_ms: 10,
        max_ms: 10_000,
        jitter: 0.0,
    };
    config.delivery_limit = 1000;
    let supervisor = Supervisor::new(config).unwrap();
    let connect = || async {
        let started = std::time::Instant::now();
        let session = tokio::time::timeout(WAIT, supervisor.connect())
            .await
            .expect("connect in time");
        assert!(
            started.elapsed() >= session.waited(),
            "waited {:?} is said but connect took {:?}",
            session.waited(),
            started.elapsed()
        );
        session
    };
    let ms = |s: &tocsin_amqp::Session| s.waited().as_millis() as u64;

    // The first session puts in an input that must be dead-lettered, and
    // acknowledges nothing.
    let session = connect().await;
    assert_eq!(ms(&session), 0, "the first connection waits for nothing");
    let publisher = session.publisher().await.unwrap();
    publish(&publisher, &inputs("tocsin.inbound", 0..1)).await;
    drop(publisher);
    session.close().await.unwrap();

    // Each next session takes the input, fails to dead-letter it, and ends.
    let mut waits = Vec::new();
    for _ in 0..4 {
        let session = connect().await;
        waits.push(ms(&session));
        let mut consumer = session.consumer().await.unwrap();
        let input = take(&mut consumer, 1, 1).await.remove(0).remove(0);
        let refused = consumer.copy_to_dead_letter(&input, "bad", None).await;
        assert!(
            matches!(refused, Err(AmqpError::Nacked { .. })),
            "the policy should refuse the copy: {refused:?}"
        );
        drop(input);
        drop(consumer);
        session.close().await.unwrap();
    }
    assert_eq!(
        waits,
        [10, 20, 40, 80],
        "sessions that fail at once back off"
    );

    // A session that acknowledges (the input, dead-lettered by hand) is
    // healthy: the next connects at once, and the next failure backs off
    // from the start again.
    let session = connect().await;
    assert_eq!(ms(&session), 160);
    let mut consumer = session.consumer().await.unwrap();
    let input = take(&mut consumer, 1, 1).await.remove(0).remove(0);
    consumer.ack(&input).await.unwrap();
    drop(consumer);
    session.close().await.unwrap();

    let session = connect().await;
    assert_eq!(ms(&session), 0, "after a healthy session");
    session.close().await.unwrap();
    let session = connect().await;
    assert_eq!(ms(&session), 10, "the backoff started over");
    session.close().await.unwrap();
}

/// With two input queues, the broker may have sent lower tags that still
/// wait in the other queue's buffer, in no batch yet. Acknowledging a
/// batch with nothing drawn after it (as the gateway settles its batch in
/// flight when the outbox relay stops) must not cover them: exactly the
/// deliveries outside the batch come back once the consumer goes.
#[tokio::test]
async fn a_batch_acknowledgement_never_covers_deliveries_still_buffered() {
    let vhost = TestVhost::create("ack-buffered");
    let config = AmqpConfig {
        extra_input_queues: vec!["tocsin.extra".into()],
        ..vhost.config()
    };
    let (_s, session) = connect(config).await;
    let publisher = session.publisher().await.unwrap();
    // Each queue holds three before anything consumes, so the broker sends
    // one queue's (tags 1 to 3) then the other's (4 to 6).
    publish(&publisher, &inputs("tocsin.inbound", 0..3)).await;
    publish(&publisher, &inputs("tocsin.extra", 3..6)).await;
    let mut consumer = session.consumer().await.unwrap();
    for queue in ["tocsin.inbound", "tocsin.extra"] {
        tokio::time::timeout(WAIT, async {
            while depth(session.connection(), queue).await > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("every input delivered to the consumer");
    }
    // One batch of two takes the first of each queue's buffer; the other
    // four stay buffered, never drawn.
    let batch = take(&mut consumer, 2, 2).await.remove(0);
    let mut tags: Vec<u64> = batch.iter().map(|d| d.delivery_tag()).collect();
    tags.sort_unstable();
    assert_eq!(batch.len(), 2);
    assert!(
        tags[1] > tags[0] + 1,
        "the scenario needs a batch whose tags leave a gap (still buffered): {tags:?}"
    );
    let taken: BTreeSet<String> = batch
        .iter()
        .map(|d| d.message_id().unwrap().to_owned())
        .collect();
    let receipt = tocsin_amqp::Receipt::of(&batch).unwrap();
    consumer.ack_batch(&receipt).await.unwrap();
    assert_eq!(consumer.open_deliveries(), 0);
    drop(batch);
    consumer.close().await.unwrap();

    // The queues take their returns back in their own time: wait for the
    // four left unacknowledged (an acknowledgement that covered buffered
    // ones leaves fewer, and the wait runs out).
    let unacked: BTreeSet<String> = (0..6)
        .map(|i| format!("m-{i}"))
        .filter(|id| !taken.contains(id))
        .collect();
    assert_eq!(unacked.len(), 4);
    let ready = || async {
        depth(session.connection(), "tocsin.inbound").await
            + depth(session.connection(), "tocsin.extra").await
    };
    let returned = tokio::time::timeout(WAIT, async {
        loop {
            let n = ready().await as usize;
            if n >= unacked.len() {
                return n;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        returned,
        Ok(unacked.len()),
        "batch {taken:?} (tags {tags:?}): {} of {} back",
        ready().await,
        unacked.len()
    );
    let mut back = BTreeSet::new();
    for queue in ["tocsin.inbound", "tocsin.extra"] {
        let n = depth(session.connection(), queue).await;
        let mut reader = raw_consumer(session.connection(), queue).await;
        for _ in 0..n {
            let d = next_raw(&mut reader).await;
            back.insert(d.properties.message_id().as_ref().unwrap().to_string());
        }
    }
    assert_eq!(back, unacked, "batch {taken:?}");
}

/// deploy/README.md tells an operator who needs dead letters replicated to
/// declare `tocsin.dead` as a quorum queue before tocsin's first start, and
/// that tocsin then uses it as it is: its own declaration (durable, no
/// arguments) must be accepted on the existing quorum queue.
#[tokio::test]
async fn a_dead_letter_queue_declared_quorum_by_hand_is_used_as_it_is() {
    let vhost = TestVhost::create("quorum-dead");
    // A session on other queues, to declare the operator's queue with.
    let elsewhere = AmqpConfig {
        input_queue: "elsewhere.in".into(),
        dead_letter_queue: "elsewhere.dead".into(),
        ..vhost.config()
    };
    let (_s, session) = connect(elsewhere).await;
    let channel = session.connection().create_channel().await.unwrap();
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "tocsin.dead".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            quorum,
        )
        .await
        .unwrap();
    declare_topology(session.connection(), &vhost.config())
        .await
        .expect("tocsin's declaration accepts the quorum dead-letter queue");
    let listed = tocsin_amqp::test_support::rabbitmqctl(&[
        "list_queues",
        "-p",
        vhost.name(),
        "name",
        "type",
    ]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("tocsin.dead"))
        .unwrap();
    assert!(line.contains("quorum"), "{line}");
}

/// A redrive moves at most what was waiting when it began. While a gateway
/// runs, a message whose cause is not mended comes straight back to the
/// dead-letter queue's tail; here a queue whose messages expire at once
/// into the dead-letter queue plays that gateway. The redrive used to read
/// "until the queue is empty" and never ended.
#[tokio::test]
async fn a_redrive_moves_what_was_waiting_and_ends() {
    let vhost = TestVhost::create("redrive-bounded");
    let (_s, session) = connect(vhost.config()).await;
    let channel = session.connection().create_channel().await.unwrap();
    let dead = "test.dead";
    channel
        .queue_declare(
            dead.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut bounce = FieldTable::default();
    bounce.insert("x-message-ttl".into(), AMQPValue::LongInt(0));
    bounce.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    bounce.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(dead)),
    );
    channel
        .queue_declare(
            "test.bounce".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            bounce,
        )
        .await
        .unwrap();
    let publisher = tocsin_amqp::Publisher::open(session.connection())
        .await
        .unwrap();
    publish(&publisher, &inputs(dead, 0..3)).await;
    let done = tokio::time::timeout(
        WAIT,
        tocsin_amqp::redrive(session.connection(), dead, "test.bounce", None, usize::MAX),
    )
    .await
    .expect("the redrive ends")
    .unwrap();
    assert_eq!((done.moved, done.left), (3, 0));
    // Each came back once, and nothing was doubled.
    let deadline = std::time::Instant::now() + WAIT;
    while depth(session.connection(), dead).await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bounced messages came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(depth(session.connection(), dead).await, 3);
}
