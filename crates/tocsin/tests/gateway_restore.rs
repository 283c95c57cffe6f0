//! The gateway stopped between a document and its acknowledgement: after the
//! restart the acknowledgement still attaches to the transmission, which the
//! store keeps by the ids of the expectations it settled and the restore
//! reads back by id (`Store::visit_expectations_by_id`). Real binary, real
//! broker, both stores.

mod common;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use common::{HL7, Tuning, World, fixture, input};

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

async fn acknowledged_after_a_restart(world: World) {
    // The acknowledgement (the fixtures' latest time, 2024-01-16 09:35)
    // lands an hour ago; the discharge some 20 hours before it.
    let ack_time: DateTime<Utc> = "2024-01-16T09:35:00Z".parse().unwrap();
    let by = (Utc::now() - TimeDelta::hours(1)).signed_duration_since(ack_time);
    let mut alerts = world.observe("tocsin.alerts").await;

    let mut gateway = world.start(&[]);
    gateway.wait_ready().await;
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
    world.committed_at_least(&mut gateway, 2).await;
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
