//! The gateway stopped between a document and its acknowledgement: after the
//! restart the acknowledgement still attaches to the transmission, which the
//! store keeps by the ids of the expectations it settled and the restore
//! reads back by id (`Store::visit_expectations_by_id`). Real binary, real
//! broker, both stores.

mod common;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use common::{Gateway, HL7, Tuning, World, fixture, input};

/// The fixture's HL7 timestamps (`YYYYMMDDHHMMSS`, all in January 2024)
/// moved by `by`, so that the traffic is recent: once the input is drained
/// the gateway's clock follows the wall clock, and a transmission from 2024
/// would be past its acknowledgement horizon at once.
fn shifted(rel: &str, by: TimeDelta) -> Vec<u8> {
    let text = String::from_utf8(fixture(rel)).expect("fixture is UTF-8");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("202401") {
        out.push_str(&rest[..i]);
        let stamp = &rest[i..i + 14];
        let t = NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
            .unwrap_or_else(|e| panic!("{rel}: `{stamp}`: {e}"))
            .and_utc();
        out.push_str(&(t + by).format("%Y%m%d%H%M%S").to_string());
        rest = &rest[i + 14..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// How far to move the fixtures so that the acknowledgement (their latest
/// time, 2024-01-16 09:35) lands an hour ago, the discharge some 20 hours
/// before it.
fn an_hour_ago() -> TimeDelta {
    let ack_time: DateTime<Utc> = "2024-01-16T09:35:00Z".parse().unwrap();
    (Utc::now() - TimeDelta::hours(1)).signed_duration_since(ack_time)
}

/// Publishes the discharge and its discharge summary, moved by `by`, and
/// waits until both are committed.
async fn discharged_and_summarised(world: &World, gateway: &mut Gateway, by: TimeDelta) {
    world
        .publish(&[
            input(
                "in-a03",
                Some(HL7),
                shifted("hl7/adt_a03_discharge.hl7", by),
            ),
            input(
                "in-mdm",
                Some(HL7),
                shifted("hl7/mdm_t02_discharge_summary.hl7", by),
            ),
        ])
        .await;
    world.committed_at_least(gateway, 2).await;
}

async fn acknowledged_after_a_restart(world: World) {
    let by = an_hour_ago();
    let mut alerts = world.observe("tocsin.alerts").await;

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    discharged_and_summarised(&world, &mut gateway, by).await;
    let records = world
        .store
        .strings("SELECT value FROM state WHERE namespace = 'transmission'")
        .await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record: serde_json::Value = serde_json::from_str(&records[0]).unwrap();
    let ids = record["expectation_ids"].as_array().expect("ids").clone();
    assert_eq!(ids.len(), 1, "{record}");
    assert!(record.get("expectations").is_none(), "{record}");
    let id = ids[0].as_str().unwrap().to_string();
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}\n{}", gateway.log());

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    // A start on a store migrated already says nothing an operator must act
    // on: PostgreSQL's notice that schema_version exists is not at info.
    assert!(!gateway.log().contains("NOTICE"), "{}", gateway.log());
    world
        .publish(&[input("in-ack-ae", Some(HL7), shifted("hl7/ack_ae.hl7", by))])
        .await;
    alerts
        .until("the delivery_failed alert", |s| {
            s.iter().any(|a| a.json()["kind"] == "delivery_failed")
        })
        .await;
    let failed: Vec<serde_json::Value> = alerts
        .seen
        .iter()
        .map(|a| a.json())
        .filter(|a| a["kind"] == "delivery_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["expectation_id"], id.as_str(), "{}", failed[0]);
    assert_eq!(failed[0]["encounter"]["id"], "V0001234");
    // The discharge summary was on time: nothing else was raised.
    assert_eq!(alerts.seen.len(), 1, "{:?}", alerts.seen);
    world.committed_at_least(&mut gateway, 3).await;
    let bodies = world
        .store
        .strings(&format!("SELECT body FROM expectations WHERE id = '{id}'"))
        .await;
    let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["delivery"], "failed", "{body}");
    assert_eq!(body["status"], "on_time", "{body}");
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}\n{}", gateway.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_after_a_restart_attaches_on_sqlite() {
    acknowledged_after_a_restart(World::sqlite("restore-ack", Tuning::default()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_after_a_restart_attaches_on_postgres() {
    acknowledged_after_a_restart(World::postgres("restore-ack-pg", Tuning::default()).await).await;
}

/// A store damaged by hand between two runs: the expectation a
/// transmission awaiting acknowledgement names is gone, a waiting
/// document's record is not one tocsin can read (it holds an NHS number),
/// and a record sits in a namespace tocsin does not use. The gateway starts
/// all the same: each record is logged at error level by its namespace and
/// key (never its contents) and counted in
/// `tocsin_restore_skipped_total{reason}`, and the acknowledgement reaches
/// the transmission with nothing left in it to mark.
async fn starts_over_damaged_state_records(world: World) {
    let by = an_hour_ago();
    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    discharged_and_summarised(&world, &mut gateway, by).await;
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}\n{}", gateway.log());

    let keys = world
        .store
        .strings("SELECT key FROM state WHERE namespace = 'transmission'")
        .await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let transmission = format!("transmission/{}", keys[0]);
    let gone = world
        .store
        .strings("DELETE FROM expectations RETURNING id")
        .await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    let nhs = "9434765919";
    let added = world
        .store
        .strings(&format!(
            "INSERT INTO state (namespace, key, value) VALUES \
             ('pending_document', 'doc-damaged', '{nhs}'), \
             ('retired_namespace', 'k1', '{{}}') RETURNING key"
        ))
        .await;
    assert_eq!(added.len(), 2, "{added:?}");

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
    let (_, metrics) = gateway.fetch("/metrics").expect("metrics answer");
    for reason in ["missing_expectation", "bad_record", "unknown_namespace"] {
        let series = format!("tocsin_restore_skipped_total{{reason=\"{reason}\"}} 1\n");
        assert!(metrics.contains(&series), "no `{series}` in\n{metrics}");
    }
    let skipped: Vec<(String, String)> = gateway
        .log_json()
        .iter()
        .filter(|l| l["level"] == "ERROR" && l["fields"]["reason"].is_string())
        .map(|l| {
            (
                l["fields"]["reason"].as_str().unwrap().to_string(),
                l["fields"]["record"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want = vec![
        (
            "bad_record".to_string(),
            "pending_document/doc-damaged".to_string(),
        ),
        ("missing_expectation".to_string(), transmission),
        (
            "unknown_namespace".to_string(),
            "retired_namespace/k1".to_string(),
        ),
    ];
    let mut got = skipped.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{}", gateway.log());
    assert!(!gateway.log().contains(nhs), "{}", gateway.log());

    // The acknowledgement finds its transmission: not unmatched, and with
    // nothing in it to mark, no alert.
    world
        .publish(&[input("in-ack-ae", Some(HL7), shifted("hl7/ack_ae.hl7", by))])
        .await;
    world.committed_at_least(&mut gateway, 3).await;
    assert_eq!(world.store.count("alerts").await, 0);
    let (_, metrics) = gateway.fetch("/metrics").expect("metrics answer");
    assert!(
        metrics.contains("tocsin_tracker_notices_total{notice=\"ack_unmatched\"} 0\n"),
        "{metrics}"
    );
    gateway.sigterm();
    let status = gateway.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}\n{}", gateway.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_record_is_skipped_and_counted_on_sqlite() {
    starts_over_damaged_state_records(World::sqlite("restore-damaged", Tuning::default()).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_state_record_is_skipped_and_counted_on_postgres() {
    starts_over_damaged_state_records(
        World::postgres("restore-damaged-pg", Tuning::default()).await,
    )
    .await;
}
