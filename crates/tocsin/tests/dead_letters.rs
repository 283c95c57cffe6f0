//! `tocsin dead-letters list|redrive` against the real broker and the real
//! gateway: listing leaves the queue as it was; a redrive by reason moves
//! only those messages, as they first came, and the gateway then processes
//! them; what is left stays until it too is moved. Also how a redelivered
//! input is judged by its own record: a redriven one, and a new message
//! under a reused id.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::accounting::stop;
use common::{FHIR, Gateway, HL7, Tuning, World, fixture, input, poll};
use tocsin_amqp::{AMQPValue, FieldTable, LongString, OutgoingMessage};

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// An input carrying an engine's own header, which must survive the trip.
fn traced(mut m: OutgoingMessage) -> OutgoingMessage {
    let mut h = FieldTable::default();
    h.insert(
        "x-trace-id".into(),
        text(&format!("trace-{}", m.message_id)),
    );
    m.headers = Some(h);
    m
}

/// Runs `tocsin dead-letters ARGS` with the world's configuration.
fn dead_letters(world: &World, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
    cmd.arg("--config")
        .arg(&world.config_path)
        .arg("dead-letters")
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TOCSIN_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(world.env());
    let out = cmd.output().expect("run tocsin dead-letters");
    assert!(
        out.status.success(),
        "tocsin dead-letters {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn depth_reaches(world: &World, queue: &str, n: u32) {
    poll(
        &format!("{queue} holding {n}"),
        Duration::from_secs(30),
        || async {
            match world.depth(queue).await {
                d if d == n => Ok(()),
                d => Err(format!("{d} messages")),
            }
        },
    )
    .await
}

/// Waits until the gateway's `tocsin_dead_letters` says `n`.
async fn counted(gateway: &Gateway, n: u32) {
    let want = format!("\ntocsin_dead_letters {n}\n");
    poll(
        &format!("tocsin_dead_letters {n}"),
        Duration::from_secs(30),
        || async {
            match gateway.fetch("/metrics") {
                Some((_, m)) if m.contains(&want) => Ok(()),
                Some((_, m)) => Err(m
                    .lines()
                    .find(|l| l.starts_with("tocsin_dead_letters "))
                    .unwrap_or("no tocsin_dead_letters line")
                    .to_string()),
                None => Err("no answer".into()),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_in_place_and_redriven_by_reason() {
    let world = World::sqlite("dead-letters", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world
        .publish(&[
            traced(input(
                "bad-segment",
                Some(HL7),
                fixture("hl7/reject_malformed_segment.hl7"),
            )),
            traced(input(
                "bad-no-pv1",
                Some(HL7),
                fixture("hl7/reject_a03_no_pv1.hl7"),
            )),
            traced(input(
                "bad-json",
                Some(FHIR),
                fixture("fhir/rejected/malformed.json"),
            )),
        ])
        .await;
    // A good discharge dead-lettered with a reason of its own, as by a
    // gateway whose mappings lacked a code since added.
    let mut parked = traced(input(
        "parked-a03",
        Some(HL7),
        fixture("hl7/adt_a03_discharge.hl7"),
    ));
    parked.routing_key = "tocsin.dead".into();
    if let Some(h) = parked.headers.as_mut() {
        h.insert(
            "x-tocsin-error".into(),
            text("unmapped_code: PV1-2 has no mapping (message 1)"),
        );
        h.insert("x-tocsin-error-location".into(), text("PV1-2"));
    }
    world.publish(&[parked]).await;
    depth_reaches(&world, "tocsin.dead", 4).await;
    world.committed_at_least(&mut gateway, 3).await;
    // The gateway counts what waits there.
    counted(&gateway, 4).await;
    let told = gateway.log_messages("inputs wait in the dead-letter queue");
    assert!(!told.is_empty(), "{}", gateway.log());
    stop(gateway).await;

    // Listed, with reasons and no bodies, and left in place.
    let out = dead_letters(&world, &["list", "--json"]);
    let listed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let ids: BTreeSet<&str> = listed
        .iter()
        .map(|l| l["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["bad-segment", "bad-no-pv1", "bad-json", "parked-a03"])
    );
    let parked_row = listed
        .iter()
        .find(|l| l["message_id"] == "parked-a03")
        .unwrap();
    assert_eq!(parked_row["code"], "unmapped_code", "{parked_row}");
    assert_eq!(parked_row["location"], "PV1-2", "{parked_row}");
    for row in &listed {
        let code = row["code"].as_str().unwrap();
        assert!(
            !code.is_empty()
                && code != "unknown"
                && row["reason"].as_str().unwrap().starts_with(code),
            "{row}"
        );
        assert!(row.get("body").is_none(), "{row}");
    }
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("4 message(s) read from tocsin.dead and left in place")
            && stderr.contains("unmapped_code 1"),
        "{stderr}"
    );
    assert_eq!(world.depth("tocsin.dead").await, 4);
    // In place means in order too: a second look sees the same sequence.
    let order = |out: Output| -> Vec<String> {
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["message_id"].to_string()
            })
            .collect()
    };
    let first: Vec<String> = listed.iter().map(|l| l["message_id"].to_string()).collect();
    assert_eq!(order(dead_letters(&world, &["list", "--json"])), first);
    // A limit reads fewer and says how many wait.
    let out = dead_letters(&world, &["list", "--limit", "2"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("2 message(s) read from tocsin.dead and left in place (of 4 waiting"),
        "{stderr}"
    );
    assert_eq!(world.depth("tocsin.dead").await, 4);
    // The table form: a header line and one line a message.
    let table = dead_letters(&world, &["list"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("parked-a03\t")),
        "{table}"
    );

    // A reason no dead letter has moves nothing, and says so.
    let out = dead_letters(&world, &["redrive", "--reason", "unmaped_code"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("moved 0 message(s)")
            && stderr.contains("no dead letter waiting has reason \"unmaped_code\""),
        "{stderr}"
    );
    assert_eq!(world.depth("tocsin.dead").await, 4);

    // Only the mended reason goes back; the gateway now tracks it.
    let out = dead_letters(&world, &["redrive", "--reason", "unmapped_code"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("moved 1 message(s) from tocsin.dead to tocsin.inbound")
            && stderr.contains("left 3 in tocsin.dead"),
        "{stderr}"
    );
    assert_eq!(world.depth("tocsin.dead").await, 3);
    assert_eq!(world.depth("tocsin.inbound").await, 1);
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.committed_at_least(&mut gateway, 4).await;
    counted(&gateway, 3).await;
    assert_eq!(
        world
            .store
            .strings("SELECT outcome FROM inputs WHERE id LIKE 'amqp:parked-a03#%'")
            .await,
        vec!["ok".to_string()]
    );
    assert_eq!(world.store.count("expectations").await, 1);
    assert_eq!(world.depth("tocsin.dead").await, 3);
    stop(gateway).await;

    // Redriven into itself nothing would move (and with a bound, nothing
    // would be gained): refused, and nothing is taken.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
    cmd.arg("--config")
        .arg(&world.config_path)
        .args(["dead-letters", "redrive", "--to", "tocsin.dead"])
        .envs(world.env());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the dead-letter queue itself"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(world.depth("tocsin.dead").await, 3);

    // The rest, two and then whatever remains: back as they first came.
    let out = dead_letters(&world, &["redrive", "--limit", "2"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("moved 2 message(s)"), "{stderr}");
    assert_eq!(world.depth("tocsin.dead").await, 1);
    let out = dead_letters(&world, &["redrive"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("moved 1 message(s)"), "{stderr}");
    assert_eq!(world.depth("tocsin.dead").await, 0);
    let mut inbound = world.reader("tocsin.inbound").await;
    inbound.until("three inputs back", |s| s.len() >= 3).await;
    for m in &inbound.seen {
        assert_eq!(
            m.headers.get("x-trace-id").map(String::as_str),
            Some(format!("trace-{}", m.message_id).as_str()),
            "{m:?}"
        );
        assert!(
            !m.headers.keys().any(|k| k.starts_with("x-tocsin-")),
            "{:?}",
            m.headers
        );
    }
    let back: BTreeSet<&str> = inbound.seen.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(
        back,
        BTreeSet::from(["bad-segment", "bad-no-pv1", "bad-json"])
    );
    let bodies: Vec<(&str, &[u8])> = inbound
        .seen
        .iter()
        .map(|m| (m.message_id.as_str(), m.body.as_slice()))
        .collect();
    for (id, body) in bodies {
        let file = match id {
            "bad-segment" => "hl7/reject_malformed_segment.hl7",
            "bad-no-pv1" => "hl7/reject_a03_no_pv1.hl7",
            _ => "fhir/rejected/malformed.json",
        };
        assert_eq!(body, fixture(file).as_slice(), "{id}");
    }
}

/// Publishes one HL7 discharge under `message_id`, has it delivered once
/// to a consumer that goes before acknowledging it (as a gateway killed
/// before its commit), so that the broker delivers it again, marked
/// redelivered, to a gateway started after; returns that gateway once it
/// has tracked the discharge and the input queue is empty.
async fn redelivered_to_a_new_gateway(world: &World, message_id: &str, body: Vec<u8>) -> Gateway {
    world.publish(&[input(message_id, Some(HL7), body)]).await;
    let channel = world
        .session
        .connection()
        .create_channel()
        .await
        .expect("channel");
    let first = channel
        .basic_get(
            "tocsin.inbound".into(),
            lapin::options::BasicGetOptions { no_ack: false },
        )
        .await
        .expect("basic.get")
        .expect("an input is waiting");
    assert!(!first.delivery.redelivered);
    channel.close(200, "gone".into()).await.expect("close");
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    discharges_reach(&gateway, 1).await;
    world.wait_empty("tocsin.inbound").await;
    gateway
}

/// `tocsin_events_total{type="encounter_ended"}` of a running gateway.
fn discharges_seen(gateway: &Gateway) -> Option<String> {
    let (_, m) = gateway.fetch("/metrics")?;
    m.lines()
        .find(|l| l.starts_with("tocsin_events_total{type=\"encounter_ended\"}"))
        .map(str::to_string)
}

/// A redriven input that the broker delivers again before the gateway
/// committed it (the gateway killed in between) is processed, not taken for
/// the rejection its message id was first recorded with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_input_delivered_again_before_its_commit_is_processed() {
    let world = World::sqlite("redrive-redelivered", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    // First rejected, sent by a misconfigured engine as FHIR JSON:
    // recorded under its id as rejected, dead-lettered.
    world
        .publish(&[input(
            "mended-a03",
            Some(FHIR),
            fixture("hl7/adt_a03_discharge.hl7"),
        )])
        .await;
    depth_reaches(&world, "tocsin.dead", 1).await;
    world.committed_at_least(&mut gateway, 1).await;
    stop(gateway).await;
    assert_eq!(
        world
            .store
            .strings("SELECT outcome FROM inputs WHERE id LIKE 'amqp:mended-a03#%'")
            .await,
        ["rejected"]
    );

    // It comes back mended (the same body and id, announced as HL7 now, so
    // under the same record), and is delivered again after a consumer that
    // went before acknowledging it: the restarted gateway tracks it.
    let gateway =
        redelivered_to_a_new_gateway(&world, "mended-a03", fixture("hl7/adt_a03_discharge.hl7"))
            .await;
    // Its record now says what became of it.
    poll(
        "the input recorded as applied",
        Duration::from_secs(30),
        || async {
            match world
                .store
                .strings("SELECT outcome FROM inputs WHERE id LIKE 'amqp:mended-a03#%'")
                .await
                .as_slice()
            {
                [o] if o == "ok" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        world.depth("tocsin.dead").await,
        1,
        "not dead-lettered again"
    );
    stop(gateway).await;
}

/// Waits until a running gateway has seen `n` discharges.
async fn discharges_reach(gateway: &Gateway, n: u32) {
    poll(
        &format!("{n} discharge(s) tracked"),
        Duration::from_secs(30),
        || async {
            match discharges_seen(gateway) {
                Some(l) if l.ends_with(&format!(" {n}")) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// An engine that reuses a message id for a new message (a counter that
/// restarted): the new message, delivered again before its commit, is
/// processed, not taken for the earlier message recorded under that id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_under_a_reused_id_delivered_again_is_processed() {
    let world = World::sqlite("reused-id", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world
        .publish(&[input(
            "reused-1",
            Some(HL7),
            fixture("hl7/adt_a03_discharge.hl7"),
        )])
        .await;
    world.committed_at_least(&mut gateway, 1).await;
    discharges_reach(&gateway, 1).await;
    stop(gateway).await;

    // Another discharge under the same id, delivered once to a consumer
    // that goes before acknowledging it.
    // The restarted gateway applies it: with the old lookup it saw none.
    let gateway = redelivered_to_a_new_gateway(
        &world,
        "reused-1",
        fixture("cross-format/adt-a03-V123456.hl7"),
    )
    .await;
    // Applied (the metric) comes before committed: wait for the record.
    poll(
        "both messages under the id recorded as applied",
        Duration::from_secs(30),
        || async {
            match world
                .store
                .count("inputs WHERE outcome = 'ok' AND id LIKE 'amqp:reused-1#%'")
                .await
            {
                2 => Ok(()),
                n => Err(format!("{n} recorded")),
            }
        },
    )
    .await;
    stop(gateway).await;
}

/// A dead-letter queue that refuses every copy (a max-length 0,
/// reject-publish policy) ends each session as soon as the input that has
/// to be dead-lettered comes in. The gateway must not reconnect at once
/// for ever: sessions are spaced out by the supervisor's backoff, read from
/// the gateway's own log timestamps (`[amqp.reconnect]` without jitter, so
/// the gap before the k-th reconnection is at least min_ms * 2^(k-1)).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_queue_refusing_copies_makes_the_gateway_back_off() {
    let world = World::sqlite("dead-refused", Tuning::default()).await;
    tocsin_amqp::test_support::rabbitmqctl(&[
        "set_policy",
        "-p",
        world.vhost.name(),
        "--apply-to",
        "queues",
        "dead-letters-refused",
        "^tocsin\\.dead$",
        r#"{"max-length":0,"overflow":"reject-publish"}"#,
    ]);
    poll(
        "the policy on tocsin.dead",
        Duration::from_secs(30),
        || async {
            let listed = tocsin_amqp::test_support::rabbitmqctl(&[
                "list_queues",
                "-p",
                world.vhost.name(),
                "name",
                "policy",
            ]);
            if listed
                .lines()
                .any(|l| l.starts_with("tocsin.dead") && l.contains("dead-letters-refused"))
            {
                Ok(())
            } else {
                Err(listed)
            }
        },
    )
    .await;
    let config = std::fs::read_to_string(&world.config_path).unwrap();
    let min_ms = 300;
    let config = config.replace(
        "min_ms = 50\nmax_ms = 500\n",
        &format!("min_ms = {min_ms}\nmax_ms = 30000\njitter = 0.0\n"),
    );
    assert!(config.contains("jitter = 0.0"), "{config}");
    std::fs::write(&world.config_path, config).unwrap();
    world
        .publish(&[input(
            "bad-segment",
            Some(HL7),
            fixture("hl7/reject_malformed_segment.hl7"),
        )])
        .await;

    let gateway = world.start(&[]);
    let connects = 4;
    let seen = &gateway;
    let times = poll(
        "the gateway to connect four times",
        Duration::from_secs(30),
        || async move {
            let times: Vec<chrono::DateTime<chrono::FixedOffset>> = seen
                .log_messages("connected to RabbitMQ")
                .iter()
                .map(|l| chrono::DateTime::parse_from_rfc3339(l["timestamp"].as_str().unwrap()))
                .collect::<Result<_, _>>()
                .unwrap();
            if times.len() >= connects {
                Ok(times)
            } else {
                Err(format!("{} connections\n{}", times.len(), seen.log()))
            }
        },
    )
    .await;
    let lost = gateway.log_messages("broker link lost");
    assert!(
        lost.len() >= connects - 1,
        "each session should end with the refused copy\n{}",
        gateway.log()
    );
    for (k, pair) in times.windows(2).take(connects - 1).enumerate() {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        let least = min_ms << k;
        assert!(
            gap >= least,
            "reconnection {} came {gap} ms after the one before, not {least}\n{}",
            k + 1,
            gateway.log()
        );
    }
    // It stops when asked. While a session holds the input whose copy the
    // queue refuses, that input cannot be settled: the shutdown is then
    // not clean (exit 1), as documented; between sessions it is (0).
    let mut gateway = gateway;
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "stop: {status}\n{}",
        gateway.log()
    );
}
