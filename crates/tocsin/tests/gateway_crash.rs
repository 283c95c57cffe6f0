//! The gateway killed (`kill -9`) or stopped (SIGTERM) in mid-stream, then
//! started again: every input is accounted for (in the store's `inputs`
//! table, the rejected ones also in `tocsin.dead`), nothing is left in the
//! input queue, every event and alert in the outbox reaches the exchanges,
//! and what is published twice is measured (kill) or must be nothing
//! (SIGTERM).

mod common;

use std::time::{Duration, Instant};

use common::accounting::{account, finish};
use common::traffic::discharges;
use common::{Tuning, WAIT, World};

fn tuning() -> Tuning {
    Tuning {
        prefetch: 200,
        batch_size: 100,
        ..Tuning::default()
    }
}

/// Kill -9 twice in mid-stream (each time just after a commit shows in the
/// store, the most exposed moment). Published twice can only be what the
/// broker had taken when the process died before marking it published in
/// the store (one outbox round at most per kill), or the dead-letter copies
/// of rejected inputs not yet acknowledged (at most a prefetch's worth: the
/// batch being committed and the next); the test measures how often and
/// bounds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_mid_stream_loses_nothing_on_sqlite() {
    kill_9_in_mid_stream(World::sqlite("kill9", tuning()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_mid_stream_loses_nothing_on_postgres() {
    kill_9_in_mid_stream(World::postgres("kill9-pg", tuning()).await).await;
}

async fn kill_9_in_mid_stream(world: World) {
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let traffic = discharges("k", 2000);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;

    let kills = 2;
    for round in 1..=kills {
        let mut gateway = world.start(&[]);
        let target = total * round / (kills + 1);
        world.committed_at_least(&mut gateway, target).await;
        gateway.kill9();
        let at_kill = world.store.count("inputs").await;
        assert!(
            at_kill < total,
            "round {round}: the gateway finished all {total} inputs before the kill; the test must kill it in mid-stream"
        );
        eprintln!("round {round}: killed with {at_kill}/{total} inputs committed");
    }
    finish(&world, &traffic).await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    eprintln!(
        "after {kills} kills: {ev} event ids, {al} alert ids, {de} dead letters published more than once \
         (of {} events, {} alerts, {} dead letters)",
        events.seen.len(),
        alerts.seen.len(),
        dead.seen.len()
    );
    // The at-least-once windows: a kill between the broker's confirm and
    // the store's mark republishes that one outbox round (at most 1000
    // messages); a kill dead-letters again every rejected input not yet
    // acknowledged, and what is unacknowledged is at most the prefetch (the
    // batch being committed and the one being processed after it).
    let rejected_in_prefetch = most_junk_in_a_row(&traffic, usize::from(tuning().prefetch));
    eprintln!("at most {rejected_in_prefetch} rejected inputs unacknowledged at a kill");
    for (what, n, bound) in [
        ("event", ev, 1000 * kills),
        ("alert", al, 1000 * kills),
        ("dead letter", de, rejected_in_prefetch * kills),
    ] {
        assert!(
            n <= bound,
            "{n} {what} ids published twice, more than {bound} ({kills} kills)"
        );
    }
    for o in [&events, &alerts, &dead] {
        assert!(
            o.duplicates().values().all(|&n| n <= kills + 1),
            "an id published more often than the kills explain: {:?}",
            o.duplicates()
        );
    }
}

/// The most junk inputs among any `window` consecutive messages of the
/// traffic: how many one kill can dead-letter twice.
fn most_junk_in_a_row(traffic: &common::traffic::Traffic, window: usize) -> usize {
    let junk: Vec<bool> = traffic
        .messages
        .iter()
        .map(|m| traffic.junk.contains(&m.message_id))
        .collect();
    junk.windows(window.min(junk.len()))
        .map(|w| w.iter().filter(|&&j| j).count())
        .max()
        .unwrap_or(0)
}

/// SIGTERM in mid-stream: exit 0 within the configured time, every input
/// received is committed and acknowledged, the rest is still in the queue,
/// never delivered and in its order, the outbox is flushed; a restart
/// finishes with nothing published twice.
///
/// A large prefetch, as in production: the gateway once stopped taking
/// deliveries at the first empty buffer, returning those still on their way
/// (hundreds), which the quorum queue put back out of order; the restarted
/// gateway then read days of backlog out of order and judged it wrongly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_mid_stream_exits_0_in_time_and_loses_nothing() {
    let grace = 5;
    let world = World::sqlite(
        "sigterm",
        Tuning {
            shutdown_timeout_secs: grace,
            prefetch: 1000,
            ..tuning()
        },
    )
    .await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let traffic = discharges("t", 3000);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;

    let mut gateway = world.start(&[]);
    world.committed_at_least(&mut gateway, total / 5).await;
    let asked = Instant::now();
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(grace + 5)).await;
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status}\n{}", gateway.log());
    assert!(
        took < Duration::from_secs(grace),
        "took {took:?}, more than the configured {grace} s"
    );
    assert!(
        !gateway.log_messages("stopping").is_empty(),
        "{}",
        gateway.log()
    );
    // A clean stop logs no error: channels are closed before the connection
    // is, so lapin never meets a late channel close (the race that once
    // hung the connection close until the grace period ran out).
    let errors: Vec<_> = gateway
        .log_json()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert!(errors.is_empty(), "errors logged: {errors:?}");
    let committed = world.store.count("inputs").await;
    let waiting = world.depth("tocsin.inbound").await as usize;
    assert!(committed < total, "stopped in mid-stream");
    assert_eq!(
        committed + waiting,
        total,
        "every input is either committed or back in the queue"
    );
    assert_eq!(world.store.outbox_pending().await, 0, "outbox flushed");
    // What is left was never delivered: the tail of the traffic, in order.
    let mut inbound = world.reader("tocsin.inbound").await;
    inbound.take().await;
    let returned = inbound.seen.iter().filter(|s| s.redelivered).count();
    assert_eq!(returned, 0, "deliveries returned to the queue by the stop");
    let left: Vec<&str> = inbound.seen.iter().map(|s| s.message_id.as_str()).collect();
    let tail: Vec<&str> = traffic.messages[committed..]
        .iter()
        .map(|m| m.message_id.as_str())
        .collect();
    assert!(left == tail, "the queue's order changed: {left:?}");
    world.publish(&traffic.messages[committed..]).await;

    finish(&world, &traffic).await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    assert_eq!(
        (ev, al, de),
        (0, 0, 0),
        "a clean stop publishes nothing twice"
    );
}

/// A gateway started while another connection (its own previous one, not
/// yet seen dead by the broker after a host crash) holds the head of the
/// backlog unacknowledged waits, not ready, consuming nothing, until that
/// consumer is gone; then it takes the backlog from its head. Consuming at
/// once, it judged the traffic behind the held messages first, and they
/// came back to false `overdue` alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_waits_while_another_connection_holds_the_input_queue() {
    let world = World::sqlite("queue-held", tuning()).await;
    let traffic = discharges("h", 300);
    world.publish(&traffic.messages).await;
    let previous = common::connect(&world.vhost.config()).await;
    let mut held = previous.consumer().await.expect("the previous consumer");
    let head = held
        .next_batch(50, Duration::from_secs(5))
        .await
        .expect("deliveries to hold");
    assert!(!head.is_empty());

    let mut gateway = world.start(&[]);
    common::poll("the wait is said", WAIT, || async {
        if gateway
            .log_messages("input queue has other consumers")
            .is_empty()
        {
            Err(gateway.log())
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(world.store.count("inputs").await, 0, "nothing consumed");
    assert_eq!(gateway.get("/readyz"), Some(503), "not ready while waiting");

    // The broker sees the previous connection go: its deliveries return to
    // the head of the queue, and the gateway takes everything.
    drop(head);
    drop(held);
    previous
        .close()
        .await
        .expect("close the previous connection");
    gateway.wait_ready().await;
    common::accounting::wait_done(&world, &traffic).await;
    assert!(
        !gateway.log_messages("input queues released").is_empty(),
        "{}",
        gateway.log()
    );
    common::accounting::stop(gateway).await;
}

/// The PostgreSQL store's connections terminated twice in mid-stream (a
/// store outage as the gateway sees it): the gateway retries, reconnects to
/// the store and finishes without exiting, and every input is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_connections_lost_in_mid_stream_are_waited_out() {
    let world = World::postgres("store-outage", tuning()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let traffic = discharges("s", 2000);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;

    let mut gateway = world.start(&[]);
    for round in 1..=2 {
        world
            .committed_at_least(&mut gateway, total * round / 3)
            .await;
        let terminated = world.store.terminate_connections().await;
        assert!(terminated > 0, "the gateway holds a store connection");
    }
    common::accounting::wait_done(&world, &traffic).await;
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
    let failures = gateway.log_messages("store unavailable; retrying");
    assert!(
        !failures.is_empty(),
        "the outage was seen\n{}",
        gateway.log()
    );
    eprintln!(
        "store outage: {} failed operations retried: {:?}",
        failures.len(),
        failures
            .iter()
            .map(|f| f["fields"]["operation"].as_str().unwrap_or("?").to_owned())
            .collect::<Vec<_>>()
    );
    common::accounting::stop(gateway).await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    // No crash and no broker trouble: nothing is published twice.
    assert_eq!((ev, al, de), (0, 0, 0));
}

/// The store turned read-only under the gateway (a failover onto a replica,
/// a maintenance setting): commits fail with SQLSTATE 25006. Taken as
/// permanent, the gateway exited (3) and, restarted by systemd onto the same
/// unacknowledged inputs, each time, until the broker dead-lettered them at
/// their delivery limit. Now it waits, as for a store that is down, and
/// carries on when the store takes writes again: every input tracked, none
/// dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_turned_read_only_is_waited_out() {
    let world = World::postgres("store-read-only", tuning()).await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.store.read_only(true).await;
    world.store.terminate_connections().await;
    let traffic = discharges("ro", 300);
    world.publish(&traffic.messages).await;
    common::poll("a commit refused as read-only", WAIT, || async {
        let refused = gateway
            .log_messages("store unavailable; retrying")
            .iter()
            .any(|f| {
                f["fields"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("read-only"))
            });
        match refused {
            true => Ok(()),
            false => Err(gateway.log()),
        }
    })
    .await;
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
    world.store.read_only(false).await;
    common::accounting::wait_done(&world, &traffic).await;
    assert!(gateway.try_exit().is_none(), "{}", gateway.log());
    common::accounting::stop(gateway).await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    assert_eq!((ev, al, de), (0, 0, 0));
}

/// SIGTERM while a commit hangs (the store stops answering: here a table
/// lock held by the test): the stop still ends the process within the
/// configured time (exit 1: the batch in hand could not be committed). The
/// input was not acknowledged, so a restart with the store back processes
/// it and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_commit_hangs_exits_within_the_grace_period() {
    let grace = 3;
    let world = World::postgres(
        "store-hangs",
        Tuning {
            shutdown_timeout_secs: grace,
            ..tuning()
        },
    )
    .await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let lock = world.store.lock_table("inputs");
    let traffic = discharges("h", 1);
    world.publish(&traffic.messages).await;
    world
        .store
        .wait_for_lock_waiter("the gateway's commit")
        .await;

    let asked = Instant::now();
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(grace + 5)).await;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(1), "{status}\n{}", gateway.log());
    assert!(
        took < Duration::from_secs(grace + 1),
        "took {took:?} for a grace of {grace} s"
    );
    assert!(
        !gateway
            .log_messages("stop not finished within the grace period")
            .is_empty(),
        "{}",
        gateway.log()
    );

    drop(lock);
    assert_eq!(world.store.count("inputs").await, 0, "nothing committed");
    common::accounting::finish(&world, &traffic).await;
    assert_eq!(world.store.input_ids().await.len(), traffic.messages.len());
}
