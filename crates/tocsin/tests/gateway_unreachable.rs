//! A broker that cannot be reached at start: the gateway says once, clearly,
//! what it tried and how to start RabbitMQ (never the password), keeps
//! running and retrying (`/healthz` 200, `/readyz` 503), and becomes ready
//! once the broker (here: the vhost) is there.

mod common;

use std::time::Instant;

use common::{BrokerLock, Gateway, POLL, WAIT, free_port, repo};
use tocsin_amqp::test_support::{TestVhost, rabbitmqctl};

/// A working directory with a configuration for a gateway that is not
/// given a World (no vhost of its own).
fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tocsin.toml");
    let c = repo().join("config");
    std::fs::write(
        &config,
        format!(
            "mappings = \"{}\"\npolicy = \"{}\"\n[amqp]\nconnect_timeout_ms = 2000\n\
             [amqp.reconnect]\nmin_ms = 20\nmax_ms = 100\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            c.join("mappings.toml").display(),
            c.join("policies/nhs-standard-contract.toml").display()
        ),
    )
    .unwrap();
    (dir, config)
}

/// Waits until the gateway has logged at least `n` lines containing `text`.
async fn logged(gateway: &mut Gateway, text: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while gateway.log_messages(text).len() < n {
        assert!(gateway.try_exit().is_none(), "exited\n{}", gateway.log());
        assert!(
            Instant::now() < deadline,
            "waiting for {n} lines with {text:?}\n{}",
            gateway.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_broker_is_reported_once_and_retried() {
    let (dir, config) = setup();
    let (amqp_port, http_port) = (free_port(), free_port());
    let url = format!("amqp://guest:s3cret-pw@127.0.0.1:{amqp_port}/%2f");
    let env = [
        ("TOCSIN_AMQP_URL".to_string(), url),
        (
            "TOCSIN_STORE_URL".to_string(),
            format!("sqlite://{}/s.sqlite", dir.path().display()),
        ),
        (
            "TOCSIN_HTTP_ADDR".to_string(),
            format!("127.0.0.1:{http_port}"),
        ),
        // Debug for the adapter, to count the quiet retries.
        (
            "TOCSIN_LOG".to_string(),
            "info,tocsin_amqp=debug".to_string(),
        ),
    ];
    let mut gateway = Gateway::start(&config, dir.path(), http_port, &env);
    gateway.wait_status("/healthz", 200).await;
    assert_eq!(gateway.get("/readyz"), Some(503));
    // Several attempts later...
    logged(&mut gateway, "RabbitMQ connection attempt failed", 5).await;
    assert_eq!(
        gateway.get("/readyz"),
        Some(503),
        "not ready without a broker"
    );
    assert!(gateway.try_exit().is_none(), "keeps running");
    // ...one clear line at warn level: what was tried, and what to do.
    let warnings: Vec<String> = gateway
        .log_json()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
        .filter(|m| m.contains("RabbitMQ"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let line = &warnings[0];
    let tried = format!("amqp://guest:***@127.0.0.1:{amqp_port}/%2f");
    assert!(line.contains(&tried), "names the URL tried: {line}");
    assert!(
        line.contains("rabbitmq-server -detached"),
        "says how: {line}"
    );
    assert!(line.contains("TOCSIN_AMQP_URL"), "{line}");
    assert!(
        !gateway.log().contains("s3cret-pw"),
        "the password never reaches the log"
    );
    // A new store, so nothing waits in its outbox: a stop before ever
    // connecting is clean, and says so.
    gateway.sigterm();
    let status = gateway.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", gateway.log());
    assert_eq!(
        gateway
            .log_messages(
                "gateway stopped before connecting to the broker; nothing left to publish"
            )
            .len(),
        1,
        "{}",
        gateway.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vhost_is_retried_until_it_exists() {
    let _lock = BrokerLock::shared();
    // Create the test's vhost (to own its name and its deletion), then
    // remove it so that the gateway starts against a vhost not yet there.
    let vhost = TestVhost::create("late-vhost");
    rabbitmqctl(&["delete_vhost", vhost.name()]);
    let (dir, config) = setup();
    let http_port = free_port();
    let env = [
        ("TOCSIN_AMQP_URL".to_string(), vhost.url()),
        (
            "TOCSIN_STORE_URL".to_string(),
            format!("sqlite://{}/s.sqlite", dir.path().display()),
        ),
        (
            "TOCSIN_HTTP_ADDR".to_string(),
            format!("127.0.0.1:{http_port}"),
        ),
    ];
    let mut gateway = Gateway::start(&config, dir.path(), http_port, &env);
    logged(&mut gateway, "cannot connect to RabbitMQ", 1).await;
    let line = gateway.log_messages("cannot connect to RabbitMQ")[0]["fields"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(line.contains(vhost.name()), "{line}");
    assert!(
        line.contains("check that the vhost in the URL exists"),
        "says what to check: {line}"
    );
    assert_eq!(gateway.get("/readyz"), Some(503));
    assert_eq!(gateway.get("/healthz"), Some(200));

    rabbitmqctl(&["add_vhost", vhost.name()]);
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        vhost.name(),
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    gateway.wait_ready().await;
    assert!(
        !gateway.log_messages("connected to RabbitMQ").is_empty(),
        "{}",
        gateway.log()
    );
}

/// A PostgreSQL store that goes away while no input comes: `/readyz` and
/// `tocsin_store_up` follow it without waiting for the next message, and
/// come back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_in_a_quiet_hour_makes_the_gateway_unready() {
    let world = common::World::postgres("store-quiet", common::Tuning::default()).await;
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    world.store.allow_connections(false).await;
    world.store.terminate_connections().await;
    // No input at all: only the gateway's own check can notice.
    gateway.wait_status("/readyz", 503).await;
    let (_, why) = gateway.fetch("/readyz").expect("readyz");
    assert!(
        why.starts_with("not ready: the store is down or failing"),
        "{why}"
    );
    assert!(
        !gateway
            .log_messages("store unavailable; retrying")
            .is_empty()
            || !gateway.log_messages("store failed").is_empty(),
        "{}",
        gateway.log()
    );
    world.store.allow_connections(true).await;
    gateway.wait_ready().await;
}

/// A commit that hangs (a table lock held by the test, as a DBA's `VACUUM
/// FULL`, a lost synchronous standby or hung storage would): once the
/// gateway's check has waited `[store] unresponsive_after`, the store is
/// marked down (`tocsin_store_up` 0, `/readyz` 503) with an error saying
/// why; when the lock goes, the commit finishes, the store is up and the
/// gateway ready again, and the input is committed. Before, ingestion
/// stood still while the gateway said ready, the store up, and nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_hangs_marks_the_store_down_until_it_answers() {
    let world = common::World::postgres("store-hung", common::Tuning::default()).await;
    world.append_config("[store]\nunresponsive_after = \"2s\"\n");
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let lock = world.store.lock_table("inputs");
    let traffic = common::traffic::discharges("hung", 1);
    world.publish(&traffic.messages).await;
    world
        .store
        .wait_for_lock_waiter("the gateway's commit")
        .await;
    gateway.wait_status("/readyz", 503).await;
    assert!(
        !gateway.log_messages("store not answering").is_empty(),
        "{}",
        gateway.log()
    );
    let (_, metrics) = gateway.fetch("/metrics").expect("metrics");
    assert!(metrics.contains("\ntocsin_store_up 0\n"), "{metrics}");
    drop(lock);
    gateway.wait_ready().await;
    world
        .committed_at_least(&mut gateway, traffic.messages.len())
        .await;
}
