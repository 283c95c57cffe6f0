//! The gateway killed (`kill -9`) or stopped (SIGTERM) in mid-stream, then
//! started again: every input is accounted for (in the store's `inputs`
//! table, the rejected ones also in `tocsin.dead`), nothing is left in the
//! input queue, every event and alert in the outbox reaches the exchanges,
//! and what is published twice is measured (kill) or must be nothing
//! (SIGTERM).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::traffic::{Traffic, discharges};
use common::{Gateway, Observer, Tuning, WAIT, World, poll};

fn tuning() -> Tuning {
    Tuning {
        prefetch: 200,
        batch_size: 100,
        ..Tuning::default()
    }
}

/// Waits until at least `n` inputs are committed; returns how many.
async fn committed_at_least(world: &World, gateway: &mut Gateway, n: usize) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(exit) = gateway.try_exit() {
            panic!("gateway exited early ({exit})\n{}", gateway.log());
        }
        let c = world.store.count("inputs").await;
        if c >= n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} inputs committed; {c} are\n{}",
            gateway.log()
        );
        tokio::time::sleep(common::POLL).await;
    }
}

/// Runs a last gateway until every input is in and every alert the traffic
/// must raise has been published, then stops it with SIGTERM.
async fn finish(world: &World, traffic: &Traffic) {
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let total = traffic.messages.len();
    poll(
        "every input committed and every alert published",
        WAIT,
        || async {
            let inputs = world.store.count("inputs").await;
            let overdue = world.store.count("alerts WHERE kind = 'overdue'").await;
            let pending = world.store.outbox_pending().await;
            if inputs == total && overdue == traffic.undocumented && pending == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{inputs}/{total} inputs, {overdue}/{} overdue alerts, {pending} unpublished",
                    traffic.undocumented
                ))
            }
        },
    )
    .await;
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "final stop: {status}\n{}", gateway.log());
}

/// The store's outbox ids for one exchange.
async fn outbox_ids(world: &World, exchange: &str) -> BTreeSet<String> {
    world
        .store
        .strings(&format!(
            "SELECT id FROM outbox WHERE exchange = '{exchange}'"
        ))
        .await
        .into_iter()
        .collect()
}

/// Checks that every input is accounted for and every outbox message
/// arrived; returns the number of message ids seen more than once on the
/// events and alerts exchanges and in `tocsin.dead`.
async fn account(
    world: &World,
    traffic: &Traffic,
    events: &mut Observer,
    alerts: &mut Observer,
    dead: &mut Observer,
) -> (usize, usize, usize) {
    // No gateway runs now: what is in the queues is all there will be.
    events.take().await;
    alerts.take().await;
    dead.take().await;
    assert_eq!(
        world.depth("tocsin.inbound").await,
        0,
        "input queue drained"
    );

    let published: BTreeSet<String> = traffic
        .messages
        .iter()
        .map(|m| format!("amqp:{}", m.message_id))
        .collect();
    let stored: BTreeSet<String> = world.store.input_ids().await.into_iter().collect();
    assert_eq!(stored, published, "every input settled in the store");
    let rejected: BTreeSet<String> = world
        .store
        .strings("SELECT id FROM inputs WHERE outcome = 'rejected'")
        .await
        .into_iter()
        .collect();
    let junk: BTreeSet<String> = traffic.junk.iter().map(|j| format!("amqp:{j}")).collect();
    assert_eq!(rejected, junk, "exactly the junk was rejected");
    let dead_ids: BTreeSet<String> = dead.seen.iter().map(|s| s.message_id.clone()).collect();
    let junk_ids: BTreeSet<String> = traffic.junk.iter().cloned().collect();
    assert_eq!(dead_ids, junk_ids, "every rejected input is in tocsin.dead");

    for (observer, exchange) in [(&*events, "tocsin.events"), (&*alerts, "tocsin.alerts")] {
        let seen: BTreeSet<String> = observer.seen.iter().map(|s| s.message_id.clone()).collect();
        assert_eq!(
            seen,
            outbox_ids(world, exchange).await,
            "everything in the outbox for {exchange} was published"
        );
    }
    assert_eq!(
        alerts
            .seen
            .iter()
            .filter(|a| a.routing_key.starts_with("overdue."))
            .count()
            - alerts.duplicates().values().map(|n| n - 1).sum::<usize>(),
        traffic.undocumented,
        "one overdue alert per undocumented discharge"
    );
    (
        events.duplicates().len(),
        alerts.duplicates().len(),
        dead.duplicates().len(),
    )
}

/// Kill -9 twice in mid-stream. Published twice can only be what the broker
/// had confirmed when the process died before marking it published in the
/// store (one outbox round at most per kill), or a dead letter whose
/// original was not yet acknowledged; the test measures how often.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_mid_stream_loses_nothing_and_publishes_nothing_new_twice() {
    let world = World::sqlite("kill9", tuning()).await;
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
        committed_at_least(&world, &mut gateway, target).await;
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
    // The at-least-once window: a kill between the broker's confirm and the
    // store's mark republishes that one round (at most 1000 messages); a
    // kill between a dead letter's confirm and its original's ack
    // dead-letters that one message again.
    for (what, n, bound) in [
        ("event", ev, 1000 * kills),
        ("alert", al, 1000 * kills),
        ("dead letter", de, kills),
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

/// SIGTERM in mid-stream: exit 0 within the configured time, every input
/// received is committed and acknowledged, the rest is still in the queue,
/// the outbox is flushed; a restart finishes with nothing published twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_mid_stream_exits_0_in_time_and_loses_nothing() {
    let grace = 5;
    let world = World::sqlite(
        "sigterm",
        Tuning {
            shutdown_timeout_secs: grace,
            ..tuning()
        },
    )
    .await;
    let mut events = world.observe("tocsin.events").await;
    let mut alerts = world.observe("tocsin.alerts").await;
    let mut dead = world.reader("tocsin.dead").await;
    let traffic = discharges("t", 1500);
    let total = traffic.messages.len();
    world.publish(&traffic.messages).await;

    let mut gateway = world.start(&[]);
    committed_at_least(&world, &mut gateway, total / 4).await;
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
    let committed = world.store.count("inputs").await;
    let waiting = world.depth("tocsin.inbound").await as usize;
    assert!(committed < total, "stopped in mid-stream");
    assert_eq!(
        committed + waiting,
        total,
        "every input is either committed or back in the queue"
    );
    assert_eq!(world.store.outbox_pending().await, 0, "outbox flushed");

    finish(&world, &traffic).await;
    let (ev, al, de) = account(&world, &traffic, &mut events, &mut alerts, &mut dead).await;
    assert_eq!(
        (ev, al, de),
        (0, 0, 0),
        "a clean stop publishes nothing twice"
    );
}
