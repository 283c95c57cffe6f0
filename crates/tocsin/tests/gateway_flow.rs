//! The live gateway (`tocsin run`, the real binary) against the real broker
//! and store: HL7 and FHIR traffic in, events and alerts out on the
//! exchanges; events publishing switched off; bad input dead-lettered
//! intact. Each test has its own vhost, store, and HTTP port.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{FHIR, HL7, Seen, Tuning, World, fixture, input};
use tocsin_amqp::{AMQPValue, FieldTable, LongString, OutgoingMessage};

/// The traffic of the core flow: a discharge (A03) with its matching FHIR
/// discharge summary bundle, an acknowledgement, and a discharge for which
/// no document ever comes.
fn core_traffic() -> Vec<OutgoingMessage> {
    vec![
        input(
            "in-a03-documented",
            Some(HL7),
            fixture("cross-format/adt-a03-V123456.hl7"),
        ),
        input(
            "in-bundle",
            Some(FHIR),
            fixture("fhir/cross-format/discharge-summary-bundle-V123456.json"),
        ),
        input("in-ack", Some(HL7), fixture("hl7/ack_aa.hl7")),
        input(
            "in-a03-undocumented",
            Some(HL7),
            fixture("hl7/adt_a03_discharge.hl7"),
        ),
    ]
}

fn routing_keys(seen: &[Seen]) -> Vec<String> {
    let mut keys: Vec<String> = seen.iter().map(|s| s.routing_key.clone()).collect();
    keys.sort();
    keys
}

/// Publishes the core traffic and checks what comes out on both exchanges
/// and what the store holds; then stops the gateway with SIGTERM.
async fn core_flow(world: World) {
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let before = chrono::Utc::now();

    world.publish(&core_traffic()).await;

    // Every event, routed `<format>.<type>`, with its event id as message id.
    events.until("four events", |s| s.len() >= 4).await;
    assert_eq!(
        routing_keys(&events.seen),
        [
            "fhir-r4.document_issued",
            "hl7v2.delivery_acknowledged",
            "hl7v2.encounter_ended",
            "hl7v2.encounter_ended",
        ]
    );
    for e in &events.seen {
        let body = e.json();
        assert_eq!(e.message_id, body["event_id"].as_str().unwrap(), "{body}");
        assert_eq!(
            e.routing_key,
            format!(
                "{}.{}",
                body["source"]["format"].as_str().unwrap(),
                body["type"].as_str().unwrap()
            )
        );
        assert_eq!(e.content_type, "application/json");
    }

    // The documented discharge is settled on time (no alert); the
    // undocumented one, due in January 2024 by event time, goes overdue as
    // soon as the input is drained, because the clock then follows the wall
    // clock.
    alerts.until("the overdue alert", |s| !s.is_empty()).await;
    assert_eq!(alerts.seen.len(), 1, "{:?}", alerts.seen);
    let alert = &alerts.seen[0];
    let body = alert.json();
    assert_eq!(alert.routing_key, "overdue.discharge_summary.inpatient");
    assert_eq!(alert.message_id, body["alert_id"].as_str().unwrap());
    assert_eq!(body["kind"], "overdue");
    assert_eq!(body["encounter"]["id"], "V0001234", "{body}");
    // Its deadline lies after every event's time, so event time alone
    // could not have fired it: the wall clock did, once the input drained.
    let at = |v: &serde_json::Value| -> chrono::DateTime<chrono::Utc> {
        v.as_str().unwrap().parse().unwrap()
    };
    let latest_event = events
        .seen
        .iter()
        .map(|e| at(&e.json()["occurred_at"]))
        .max()
        .unwrap();
    let deadline = at(&body["deadline"]);
    assert!(
        deadline > latest_event && deadline < before,
        "deadline {deadline}: after the last event ({latest_event}), before the wall clock"
    );

    // Every input is in the store's audit table, and the input queue is empty.
    world.wait_empty("tocsin.inbound").await;
    // Each by its message id and a digest of its body.
    let mut ids: Vec<String> = world
        .store
        .input_ids()
        .await
        .iter()
        .map(|id| {
            let (message, digest) = id.split_once('#').expect("id#digest");
            assert!(
                digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
            message.to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "amqp:in-a03-documented",
            "amqp:in-a03-undocumented",
            "amqp:in-ack",
            "amqp:in-bundle",
        ]
    );
    assert_eq!(world.depth("tocsin.dead").await, 0);

    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(world.store.outbox_pending().await, 0);
    // Nothing was published twice.
    events.take().await;
    alerts.take().await;
    assert!(events.duplicates().is_empty(), "{:?}", events.duplicates());
    assert_eq!(alerts.seen.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_and_fhir_traffic_gives_events_and_alerts_on_sqlite() {
    core_flow(World::sqlite("flow-sqlite", Tuning::default()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_and_fhir_traffic_gives_events_and_alerts_on_postgres() {
    core_flow(World::postgres("flow-pg", Tuning::default()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_publish_false_publishes_alerts_only() {
    let world = World::sqlite("alerts-only", Tuning::default()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut gateway = world.start(&[("TOCSIN_EVENTS_PUBLISH", "false")]);
    gateway.wait_ready().await;
    world.publish(&core_traffic()).await;

    alerts.until("the overdue alert", |s| !s.is_empty()).await;
    assert_eq!(
        alerts.seen[0].routing_key,
        "overdue.discharge_summary.inpatient"
    );
    world.wait_empty("tocsin.inbound").await;
    assert_eq!(world.store.input_ids().await.len(), 4);
    // The alert left through the outbox after every input was committed
    // (it fires only once the input is drained); the outbox holds no event
    // and none reached the exchange. The alert's row is marked published
    // only once the broker's confirm is back, which may be after the
    // subscriber has the alert: wait for it.
    common::poll(
        "the alert's outbox row to be confirmed",
        common::WAIT,
        || async {
            match world.store.outbox_pending().await {
                0 => Ok(()),
                n => Err(format!("{n} outbox row(s) unconfirmed")),
            }
        },
    )
    .await;
    assert_eq!(
        world
            .store
            .count("outbox WHERE exchange = 'tocsin.events'")
            .await,
        0
    );
    assert_eq!(events.take().await, 0);
    assert!(events.seen.is_empty());
}

/// A message's properties as the integration engine might send them.
fn with_headers(mut m: OutgoingMessage, trace: &str) -> OutgoingMessage {
    let mut h = FieldTable::default();
    h.insert(
        "x-trace-id".into(),
        AMQPValue::LongString(LongString::from(trace.as_bytes().to_vec())),
    );
    h.insert("x-engine-hop".into(), AMQPValue::LongLongInt(3));
    m.headers = Some(h);
    m
}

/// What tocsin-ingest says about `body`: the first rejected unit's reason
/// code and location.
fn expected_rejection(
    body: &[u8],
    hint: Option<tocsin_ingest::ContentHint>,
) -> (String, Option<String>) {
    let config = tocsin_ingest::IngestConfig::from_mappings_toml(
        &String::from_utf8(std::fs::read(common::repo().join("config/mappings.toml")).unwrap())
            .unwrap(),
        64 << 20,
    )
    .unwrap();
    let units = tocsin_ingest::ingest(body, hint, &config);
    let e = units
        .into_iter()
        .find_map(|u| u.outcome.err())
        .expect("the fixture is rejected");
    (e.reason_code().to_string(), e.location())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_lands_in_the_dead_letter_queue_intact() {
    let world = World::sqlite("dead", Tuning::default()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut dead = world.reader("tocsin.dead").await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;

    let bad = [
        (
            "bad-malformed-segment",
            Some(HL7),
            "hl7/reject_malformed_segment.hl7",
            Some(tocsin_ingest::ContentHint::Hl7),
        ),
        (
            "bad-no-pv1",
            Some(HL7),
            "hl7/reject_a03_no_pv1.hl7",
            Some(tocsin_ingest::ContentHint::Hl7),
        ),
        (
            "bad-json",
            Some(FHIR),
            "fhir/rejected/malformed.json",
            Some(tocsin_ingest::ContentHint::FhirJson),
        ),
        ("bad-binary", None, "hl7/reject_binary.bin", None),
    ];
    let mut messages: Vec<OutgoingMessage> = bad
        .iter()
        .map(|(id, ct, path, _)| {
            with_headers(input(id, *ct, fixture(path)), &format!("trace-{id}"))
        })
        .collect();
    // A good message after them: the stream goes on.
    messages.push(input("good-ack", Some(HL7), fixture("hl7/ack_aa.hl7")));
    world.publish(&messages).await;

    dead.until("four dead letters", |s| s.len() >= 4).await;
    events
        .until("the good message's event", |s| !s.is_empty())
        .await;
    world.wait_empty("tocsin.inbound").await;
    let by_id: BTreeMap<&str, &Seen> = dead
        .seen
        .iter()
        .map(|s| (s.message_id.as_str(), s))
        .collect();
    assert_eq!(by_id.len(), 4, "each bad message dead-lettered once");
    for ((id, ct, path, hint), sent) in bad.iter().zip(&messages) {
        let got = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{id} not dead-lettered"));
        assert_eq!(got.body, sent.body, "{id}: body byte-for-byte");
        assert_eq!(
            got.content_type,
            ct.unwrap_or(""),
            "{id}: content type kept"
        );
        assert_eq!(
            got.headers["x-trace-id"],
            format!("trace-{id}"),
            "{id}: original header kept"
        );
        assert!(
            got.headers.contains_key("x-engine-hop"),
            "{id}: original header kept"
        );
        let (reason, location) = expected_rejection(&sent.body, *hint);
        let error = &got.headers["x-tocsin-error"];
        assert!(
            error.starts_with(&format!("{reason}:")),
            "{id} ({path}): x-tocsin-error {error:?}, expected reason {reason}"
        );
        assert_eq!(
            got.headers.get("x-tocsin-error-location"),
            location.as_ref(),
            "{id}: location"
        );
        assert_eq!(
            got.headers["x-tocsin-original-routing-key"],
            "tocsin.inbound"
        );
    }
    // Each was recorded as rejected (with its reason), the good one as ok.
    assert_eq!(
        world.store.count("inputs WHERE outcome = 'rejected'").await,
        4
    );
    assert_eq!(
        world
            .store
            .strings("SELECT id FROM inputs WHERE outcome = 'ok'")
            .await
            .iter()
            .map(|id| id.split('#').next().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["amqp:good-ack"]
    );
    // Never requeued in a loop: still exactly four once the input is drained.
    dead.take().await;
    assert_eq!(dead.seen.len(), 4);
    assert_eq!(world.depth("tocsin.dead").await, 0);
    // Each rejection's log line names the message id `dead-letters list`
    // prints, so that the two can be matched.
    let logged: Vec<String> = gateway
        .log_messages("input rejected")
        .iter()
        .map(|l| l["fields"]["message_id"].as_str().unwrap_or("-").to_owned())
        .collect();
    for (id, ..) in &bad {
        assert!(logged.iter().any(|m| m == id), "{id} in {logged:?}");
    }
    drop(gateway);
}

/// A backlog waiting when the gateway starts (as after an outage) is read
/// one message at a time with a 1 ms flush interval, so the consumer often
/// comes back empty-handed while the queue still holds messages. The clock
/// must not jump to the wall clock then: the documented discharge's summary
/// is still in the queue, and an overdue alert for it would be false. Only
/// the discharge that really has no document goes overdue, once drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_raises_no_premature_overdue_alert() {
    let world = World::sqlite(
        "backlog",
        Tuning {
            prefetch: 1,
            batch_size: 1,
            flush_interval_ms: 1,
            ..Tuning::default()
        },
    )
    .await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let ack = String::from_utf8(fixture("hl7/ack_aa.hl7")).unwrap();
    let mut backlog = vec![input(
        "in-a03-documented",
        Some(HL7),
        fixture("cross-format/adt-a03-V123456.hl7"),
    )];
    for i in 0..300 {
        let body = ack
            .replace("ACK-AA", &format!("FILL-{i}"))
            .replace("MSG-T02", &format!("UNKNOWN-{i}"))
            .replace("20240116093500", "20240115120500");
        backlog.push(input(&format!("in-fill-{i}"), Some(HL7), body.into_bytes()));
    }
    backlog.push(input(
        "in-bundle",
        Some(FHIR),
        fixture("fhir/cross-format/discharge-summary-bundle-V123456.json"),
    ));
    backlog.push(input(
        "in-a03-undocumented",
        Some(HL7),
        fixture("hl7/adt_a03_discharge.hl7"),
    ));
    world.publish(&backlog).await;

    let mut gateway = world.start(&[]);
    // Alerts leave the outbox in the order they were raised, so once the
    // genuine overdue has arrived any premature one would have too.
    alerts
        .until("the undocumented discharge's overdue alert", |s| {
            s.iter().any(|a| a.json()["encounter"]["id"] == "V0001234")
        })
        .await;
    world.wait_empty("tocsin.inbound").await;
    alerts.take().await;
    let encounters: Vec<String> = alerts
        .seen
        .iter()
        .map(|a| format!("{} {}", a.routing_key, a.json()["encounter"]["id"]))
        .collect();
    assert_eq!(
        encounters,
        ["overdue.discharge_summary.inpatient \"V0001234\""],
        "only the undocumented discharge goes overdue"
    );
    assert_eq!(world.store.input_ids().await.len(), backlog.len());
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
}

/// A broker that refuses the outbox's messages (a queue bound to the events
/// exchange at its length limit with `reject-publish`, so every event is
/// nacked) must not wedge the gateway: it goes on consuming and committing,
/// publishes what the broker takes (the alert), keeps the refused events in
/// the outbox, and publishes them once the broker takes them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_nacks_the_outbox_does_not_wedge_the_gateway() {
    let world = World::sqlite("nack", Tuning::default()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let ch = refuse_events(&world).await;

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.publish(&core_traffic()).await;

    // Consuming went on, and the alert (not refused) was published.
    alerts.until("the overdue alert", |s| !s.is_empty()).await;
    world.wait_empty("tocsin.inbound").await;
    assert_eq!(world.store.input_ids().await.len(), 4);
    wait_outbox(&world, 4).await;
    // Logged, saying where to look: the broker's nack names no queue.
    assert!(
        gateway
            .log_messages("publishing from the outbox failed")
            .iter()
            .any(|l| l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("a queue bound to the exchange is full"))),
        "the refusal is logged\n{}",
        gateway.log()
    );
    gateway.wait_ready().await;

    // The broker takes them again: they are published.
    ch.queue_delete(
        "test.refuse".into(),
        lapin::options::QueueDeleteOptions::default(),
    )
    .await
    .unwrap();
    wait_outbox(&world, 0).await;
    // (A nacked message may still have reached the other bound queues, so
    // the observer can hold copies: subscribers deduplicate by message id.)
    events.take().await;
    let ids: std::collections::BTreeSet<&str> =
        events.seen.iter().map(|s| s.message_id.as_str()).collect();
    let expected: std::collections::BTreeSet<String> = world
        .store
        .strings("SELECT id FROM outbox WHERE exchange = 'tocsin.events'")
        .await
        .into_iter()
        .collect();
    assert_eq!(expected.len(), 4);
    assert_eq!(ids, expected.iter().map(String::as_str).collect());
    alerts.take().await;
    assert_eq!(
        alerts.seen.len(),
        1,
        "the confirmed alert was not republished"
    );
    assert!(gateway.try_exit().is_none());
}

/// One subscriber's events queue refusing (at its length limit with
/// `reject-publish`) must not hold back the alerts behind more refused
/// events than one relay round reads (1,000): before, every round read the
/// same oldest thousand events, was refused whole and stopped there, and no
/// alert reached any subscriber while the queue stayed full. Now the
/// refused exchange is skipped while it is held, and the alerts go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_events_queue_does_not_hold_back_the_alerts() {
    let world = World::sqlite("nack-starve", Tuning::default()).await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let _ch = refuse_events(&world).await;
    let mut gateway = world.start(&[("TOCSIN_EVENTS_FORMAT", "single")]);
    gateway.wait_ready().await;
    // 1,050 discharges two days ago with no summary: an event each, then an
    // overdue alert each, committed after their events.
    let two_days_ago = (chrono::Utc::now() - chrono::Duration::days(2))
        .format("%Y%m%d%H%M%S+0000")
        .to_string();
    let a03 = String::from_utf8(fixture("hl7/adt_a03_discharge.hl7")).unwrap();
    let backlog: Vec<OutgoingMessage> = (0..1_050)
        .map(|i| {
            let body = a03
                .replace("20240115143000", &two_days_ago)
                .replace("20240115142500", &two_days_ago)
                .replace("20240115140000", &two_days_ago)
                .replace("MSG-A03", &format!("MSG-A03-{i}"))
                .replace("V0001234", &format!("V{i}"));
            input(&format!("in-{i}"), Some(HL7), body.into_bytes())
        })
        .collect();
    world.publish(&backlog).await;
    // All committed (an empty queue says only that all were delivered).
    world.committed_at_least(&mut gateway, backlog.len()).await;
    alerts.until("overdue alerts", |s| !s.is_empty()).await;
    // The events are still refused and waiting, all of them.
    let waiting = world
        .store
        .strings("SELECT id FROM outbox WHERE exchange = 'tocsin.events' AND published_at IS NULL")
        .await
        .len();
    assert!(waiting >= 1_050, "{waiting} events waiting");
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
}

/// A shutdown that leaves refused messages in the outbox is not clean: the
/// gateway says what is left and exits 1, and the next start publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_leaves_the_outbox_unpublished_is_not_clean() {
    let world = World::sqlite("nackstop", Tuning::default()).await;
    let ch = refuse_events(&world).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.publish(&core_traffic()).await;
    world.wait_empty("tocsin.inbound").await;
    wait_outbox(&world, 4).await;

    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{}", gateway.log());
    assert!(
        gateway.log().contains("remain in the outbox"),
        "what is left is said\n{}",
        gateway.log()
    );

    // Nothing lost: the broker takes them again and the next start
    // publishes them.
    ch.queue_delete(
        "test.refuse".into(),
        lapin::options::QueueDeleteOptions::default(),
    )
    .await
    .unwrap();
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    wait_outbox(&world, 0).await;
    common::accounting::stop(gateway).await;
}

/// `tocsin_outbox_pending` follows the outbox while nothing is confirmed:
/// when the broker refuses every message of every round (a reviewer saw it
/// at 0 with hundreds waiting, and a round refused whole never set it),
/// through a broker outage (here the test's vhost deleted), and from the
/// start of a gateway that has not reached the broker yet. It goes back to
/// 0 once the broker takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_gauge_counts_what_the_broker_refuses_or_cannot_take() {
    let world = World::sqlite("pending-gauge", Tuning::default()).await;
    let mut gateway = five_refused(&world).await;
    wait_gauge(&mut gateway, "tocsin_outbox_pending", 5).await;
    // Refusals are counted by message, as confirmations are (a refused
    // round was counted as one). Once a round has refused several (the
    // held events exchange retried with its four), the counter, read after
    // the log, covers every message the rounds logged so far refused: more
    // than the number of rounds.
    let deadline = std::time::Instant::now() + common::WAIT;
    let refused_each = |gateway: &common::Gateway| -> Vec<u64> {
        gateway
            .log_messages("publishing from the outbox failed")
            .iter()
            .filter_map(|l| l["fields"]["messages"].as_u64())
            .collect()
    };
    let logged = loop {
        let logged = refused_each(&gateway);
        if logged.iter().any(|&n| n >= 2) {
            break logged;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no round refused several messages\n{}",
            gateway.log()
        );
        tokio::time::sleep(common::POLL).await;
    };
    let refused: u64 = logged.iter().sum();
    let metrics = gateway
        .fetch("/metrics")
        .map(|(_, m)| m)
        .unwrap_or_default();
    let failed: u64 = metrics
        .lines()
        .find(|l| l.starts_with("tocsin_deliveries_total{result=\"amqp_failed\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0);
    assert!(failed >= refused, "amqp_failed {failed}, {refused} logged");

    // The broker goes away: the gauge keeps saying what waits.
    broker_away(&world, &mut gateway).await;
    wait_gauge(&mut gateway, "tocsin_outbox_pending", 5).await;

    // A gateway started while it is still away counts what the last one
    // left before it ever connects.
    gateway.kill9();
    let mut gateway = world.start(&[]);
    gateway.wait_status("/healthz", 200).await;
    wait_gauge(&mut gateway, "tocsin_outbox_pending", 5).await;
    assert!(
        gateway.log_messages("connected to RabbitMQ").is_empty(),
        "counted before connecting\n{}",
        gateway.log()
    );

    // The broker is back, refusing nothing: all published, gauge 0.
    vhost_back(&world);
    gateway.wait_ready().await;
    wait_outbox(&world, 0).await;
    wait_gauge(&mut gateway, "tocsin_outbox_pending", 0).await;
}

/// A stop while the broker is away is clean only if the outbox is empty: a
/// gateway that had been connected and is reconnecting says so (not
/// "before connecting") and exits 1 naming what is left, as does one that
/// never reached the broker with rows an earlier run left; the next start
/// with the broker back publishes them, and then a stop exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_broker_outage_says_what_is_left_in_the_outbox() {
    let world = World::sqlite("outage-stop", Tuning::default()).await;
    let mut gateway = five_refused(&world).await;
    broker_away(&world, &mut gateway).await;
    let status = sigterm_and_wait(&mut gateway).await;
    assert_eq!(status.code(), Some(1), "{}", gateway.log());
    assert_left_said(&gateway, "while reconnecting to the broker", 5);
    assert!(
        gateway.log_messages("before connecting").is_empty(),
        "it had been connected\n{}",
        gateway.log()
    );

    // Still away: a gateway that never connects stops unclean too.
    let mut gateway = world.start(&[]);
    gateway.wait_status("/healthz", 200).await;
    let status = sigterm_and_wait(&mut gateway).await;
    assert_eq!(status.code(), Some(1), "{}", gateway.log());
    assert_left_said(&gateway, "before connecting to the broker", 5);

    // Nothing was lost: back, the broker takes them, and a stop is clean.
    vhost_back(&world);
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    wait_outbox(&world, 0).await;
    common::accounting::stop(gateway).await;
}

/// The event clock stalls while the broker is away (rightly: what waits in
/// the queue may be older), and `tocsin_clock_lag_seconds` shows it
/// growing, as the dashboard's lag panel and `TocsinInputLagging` need; it
/// read 0, "caught up", through the whole outage. Back, and drained, the
/// lag is gone again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_lag_grows_while_the_broker_is_away() {
    let world = World::sqlite("outage-lag", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.publish(&core_traffic()).await;
    world.wait_empty("tocsin.inbound").await;
    wait_lag(&mut gateway, "under 2 s (caught up)", |lag| lag < 2.0).await;
    broker_away(&world, &mut gateway).await;
    let (_, why) = gateway.fetch("/readyz").expect("readyz");
    assert_eq!(why, "not ready: not connected to the broker\n");
    wait_lag(&mut gateway, "3 s or more (growing)", |lag| lag >= 3.0).await;
    vhost_back(&world);
    gateway.wait_ready().await;
    wait_lag(&mut gateway, "under 2 s (caught up again)", |lag| lag < 2.0).await;
}

/// A gateway whose core traffic's four events and overdue alert the broker
/// refused (events and the alert alike: no round is ever confirmed in
/// part), all five waiting in its outbox.
async fn five_refused(world: &World) -> common::Gateway {
    refuse(world, &["tocsin.events", "tocsin.alerts"]).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.publish(&core_traffic()).await;
    world.wait_empty("tocsin.inbound").await;
    wait_outbox(world, 5).await;
    gateway
}

/// The broker gone (the test's vhost deleted), and the gateway seen to
/// know it: not ready, not connected.
async fn broker_away(world: &World, gateway: &mut common::Gateway) {
    vhost_away(world);
    gateway.wait_status("/readyz", 503).await;
    wait_gauge(gateway, "tocsin_amqp_connected", 0).await;
}

/// Sends SIGTERM and waits for the exit.
async fn sigterm_and_wait(gateway: &mut common::Gateway) -> std::process::ExitStatus {
    gateway.sigterm();
    gateway.wait_exit(Duration::from_secs(30)).await
}

/// The gateway's last words: one warning saying it stopped `when`, naming
/// the `left` messages in the outbox and that the next start publishes
/// them.
fn assert_left_said(gateway: &common::Gateway, when: &str, left: u64) {
    let stopped: Vec<serde_json::Value> = gateway
        .log_messages("gateway stopped")
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert_eq!(stopped.len(), 1, "{}", gateway.log());
    let fields = &stopped[0]["fields"];
    let message = fields["message"].as_str().unwrap();
    assert!(message.contains(when), "{message}");
    assert!(
        message.contains(&format!("{left} message(s) remain in the outbox")),
        "{message}"
    );
    assert!(
        message.contains("the next start publishes them"),
        "{message}"
    );
    assert_eq!(fields["left"], left, "{message}");
}

/// Waits until the gateway's `/metrics` has the unlabelled `metric` at
/// `value`.
async fn wait_gauge(gateway: &mut common::Gateway, metric: &str, value: i64) {
    wait_metric(gateway, metric, &value.to_string(), |v| v == value as f64).await;
}

/// Waits until the gateway's `tocsin_clock_lag_seconds` is one `ok`
/// accepts (`want` says which).
async fn wait_lag(gateway: &mut common::Gateway, want: &str, ok: impl Fn(f64) -> bool) {
    wait_metric(gateway, "tocsin_clock_lag_seconds", want, ok).await;
}

/// Waits until the gateway's `/metrics` has the unlabelled `metric` at a
/// value `ok` accepts (`want` says which, for the failure message).
async fn wait_metric(
    gateway: &mut common::Gateway,
    metric: &str,
    want: &str,
    ok: impl Fn(f64) -> bool,
) {
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        if let Some(exit) = gateway.try_exit() {
            panic!(
                "gateway exited ({exit}) while waiting for {metric} {want}\n{}",
                gateway.log()
            );
        }
        let metrics = gateway
            .fetch("/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        let value = metrics.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(metric)).then(|| parts.next()?.parse::<f64>().ok())?
        });
        if value.is_some_and(&ok) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {metric} {want}; last seen: {value:?}\n{}",
            gateway.log()
        );
        tokio::time::sleep(common::POLL).await;
    }
}

/// A broker outage for this test's gateway alone: its vhost deleted, which
/// closes every connection to it and refuses new ones, as a broker that is
/// down does. The shared broker goes on serving the other tests.
///
/// Access is revoked and the connections closed first: a deletion takes
/// the queues down before the connections, and a relay publishing in
/// between had its held events confirmed (no queue left to refuse them),
/// so the outbox the test counts shrank under it.
fn vhost_away(world: &World) {
    let name = world.vhost.name();
    tocsin_amqp::test_support::rabbitmqctl(&["clear_permissions", "-p", name, "guest"]);
    tocsin_amqp::test_support::rabbitmqctl(&[
        "close_all_connections",
        "--vhost",
        name,
        "test: broker away",
    ]);
    tocsin_amqp::test_support::rabbitmqctl(&["delete_vhost", name]);
}

/// The broker back after [`vhost_away`]: the vhost again, empty (the
/// gateway declares its topology when it connects).
fn vhost_back(world: &World) {
    let name = world.vhost.name();
    tocsin_amqp::test_support::rabbitmqctl(&["add_vhost", name]);
    tocsin_amqp::test_support::rabbitmqctl(&[
        "set_permissions",
        "-p",
        name,
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
}

/// Binds a queue at its length limit with `reject-publish` to the events
/// exchange, so that the broker nacks every event; deleting it (on the
/// returned channel) makes the broker take them again.
async fn refuse_events(world: &World) -> lapin::Channel {
    refuse(world, &["tocsin.events"]).await
}

/// Binds a queue at its length limit with `reject-publish` to each of
/// `exchanges`, so that the broker nacks everything published there;
/// deleting the queue (on the returned channel) makes it take them again.
async fn refuse(world: &World, exchanges: &[&str]) -> lapin::Channel {
    let ch = world.session.connection().create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from(b"reject-publish".to_vec())),
    );
    ch.queue_declare(
        "test.refuse".into(),
        lapin::options::QueueDeclareOptions::default(),
        args,
    )
    .await
    .unwrap();
    for exchange in exchanges {
        ch.queue_bind(
            "test.refuse".into(),
            (*exchange).into(),
            "#".into(),
            lapin::options::QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch
}

/// Waits until the outbox holds `n` unpublished messages.
async fn wait_outbox(world: &World, n: usize) {
    common::poll(
        &format!("{n} messages pending in the outbox"),
        common::WAIT,
        || async {
            match world.store.outbox_pending().await {
                m if m == n => Ok(()),
                m => Err(format!("{m} pending")),
            }
        },
    )
    .await;
}

/// `tocsin send` publishes each file as one message with its content type,
/// and a gzip-compressed file decompressed, as replay reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_publishes_files_and_gzip_archives_decompressed() {
    use std::io::Write;
    let world = World::sqlite("send", Tuning::default()).await;
    let mut observer = world.observe("amq.topic").await;
    let a03 = fixture("hl7/adt_a03_discharge.hl7");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&a03).unwrap();
    std::fs::write(world.dir.path().join("a.hl7"), &a03).unwrap();
    std::fs::write(world.dir.path().join("b.hl7.gz"), gz.finish().unwrap()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["send", "--config"])
        .arg(&world.config_path)
        .args(["--exchange", "amq.topic", "--routing-key", "sent"])
        .arg(world.dir.path().join("a.hl7"))
        .arg(world.dir.path().join("b.hl7.gz"))
        .env("TOCSIN_AMQP_URL", world.vhost.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Confirmed before send exits: both are in the queue now.
    observer.take().await;
    assert_eq!(observer.seen.len(), 2);
    for seen in &observer.seen {
        assert_eq!(seen.body, a03);
        assert_eq!(seen.content_type, "x-application/hl7-v2+er7");
    }
}

/// A store a newer tocsin has migrated (a downgrade) is refused at once,
/// with exit 2 and the reason, rather than retried every 10 s for ever
/// while the gateway sits not ready: no wait can mend it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_tocsin_stops_the_gateway() {
    let world = World::sqlite("newer-store", Tuning::default()).await;
    let common::TestStore::Sqlite(path) = &world.store else {
        panic!("a SQLite world");
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             applied_at INTEGER NOT NULL); \
             INSERT INTO schema_version VALUES (999, 'from_a_later_tocsin', 0);",
        )
        .unwrap();
    let mut gateway = world.start(&[]);
    let status = gateway.wait_exit(common::WAIT).await;
    let log = gateway.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("newer than this tocsin knows"), "{log}");
}
