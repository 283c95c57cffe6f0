//! Store housekeeping in the live gateway (`tocsin run`, the real binary,
//! the real broker and a SQLite store): once past `[store] retention`, the
//! outbox messages the broker confirmed and the ids of processed inputs are
//! deleted and counted; expectations and alerts, the compliance record,
//! stay. A zero `housekeeping_every` is refused at start-up.

mod common;
mod observability_support;

use common::{HL7, Tuning, WAIT, World, fixture, input, poll};
use observability_support::{Scrape, get};

/// Adds a `[store]` section to the world's configuration (the store URL
/// itself comes from `TOCSIN_STORE_URL`).
fn with_store_section(world: &World, section: &str) {
    world.append_config(&format!("[store]\n{section}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_retention_go_and_the_compliance_record_stays() {
    let world = World::sqlite("housekeeping", Tuning::default()).await;
    with_store_section(&world, "retention = \"1s\"\nhousekeeping_every = \"1s\"\n");
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world
        .publish(&[
            input(
                "hk-a03",
                Some(HL7),
                fixture("cross-format/adt-a03-V123456.hl7"),
            ),
            input("hk-ack", Some(HL7), fixture("hl7/ack_aa.hl7")),
        ])
        .await;

    // Committed (the batch-size histogram only grows, while the inputs
    // table is about to shrink), then pruned: every input id and every
    // outbox message (the two events and any alert), each once confirmed
    // and a second old. The tables are read in the same poll because an
    // alert raised a little after the inputs is pruned a round later.
    let port = world.port;
    let store = &world.store;
    poll(
        "both inputs committed and everything pruned",
        WAIT,
        || async {
            let s = Scrape::parse(&get(port, "/metrics", &[]).body);
            let committed = s.committed_inputs();
            let inputs = s.value("tocsin_store_pruned_rows_total", &[("table", "inputs")]);
            let outbox = s.value("tocsin_store_pruned_rows_total", &[("table", "outbox")]);
            let (left_inputs, left_outbox) =
                (store.count("inputs").await, store.count("outbox").await);
            if committed == 2.0
                && inputs == 2.0
                && outbox >= 2.0
                && left_inputs == 0
                && left_outbox == 0
            {
                Ok(())
            } else {
                Err(format!(
                    "{committed} committed; pruned {inputs} inputs and {outbox} outbox rows; \
                 {left_inputs} inputs and {left_outbox} outbox rows left"
                ))
            }
        },
    )
    .await;
    // The discharge's expectation is the compliance record: it stays.
    assert_eq!(world.store.count("expectations").await, 1);

    let log = gateway.log();
    assert!(
        log.contains("store housekeeping: deleted rows past retention"),
        "{log}"
    );
    gateway.sigterm();
    assert!(gateway.wait_exit(WAIT).await.success(), "{}", gateway.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_housekeeping_interval_is_refused_at_start() {
    let world = World::sqlite("housekeeping-bad", Tuning::default()).await;
    with_store_section(&world, "housekeeping_every = \"0s\"\n");
    let mut gateway = world.start(&[]);
    let status = gateway.wait_exit(WAIT).await;
    assert!(!status.success());
    let log = gateway.log();
    assert!(
        log.contains("[store] housekeeping_every must be at least 1s"),
        "{log}"
    );
}
