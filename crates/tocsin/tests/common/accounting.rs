//! Accounting after a disturbed run: every input settled in the store (the
//! rejected ones also in `tocsin.dead`), nothing left in the input queue,
//! everything in the outbox published, and how many ids came twice.

use std::collections::BTreeSet;
use std::time::Duration;

use super::traffic::Traffic;
use super::{Gateway, Observer, WAIT, World, poll};

/// Waits until every input of `traffic` is committed and every alert it
/// must raise has been published.
pub async fn wait_done(world: &World, traffic: &Traffic) {
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
}

/// Stops a gateway with SIGTERM and checks it exits 0.
pub async fn stop(mut gateway: Gateway) {
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "stop: {status}\n{}", gateway.log());
}

/// Runs a last gateway until everything is done, then stops it.
pub async fn finish(world: &World, traffic: &Traffic) {
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    wait_done(world, traffic).await;
    stop(gateway).await;
}

/// The store's outbox ids for one exchange.
pub async fn outbox_ids(world: &World, exchange: &str) -> BTreeSet<String> {
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
pub async fn account(
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
    // Stored as `amqp:<message id>#<body digest>`.
    let message_of = |id: String| match id.split_once('#') {
        Some((message, _)) => message.to_string(),
        None => id,
    };
    let stored: BTreeSet<String> = world
        .store
        .input_ids()
        .await
        .into_iter()
        .map(message_of)
        .collect();
    assert_eq!(stored, published, "every input settled in the store");
    let rejected: BTreeSet<String> = world
        .store
        .strings("SELECT id FROM inputs WHERE outcome = 'rejected'")
        .await
        .into_iter()
        .map(message_of)
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
