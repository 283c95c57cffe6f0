//! `/metrics` of a real gateway (the `tocsin` binary, the local RabbitMQ, a
//! real store) after a ward's traffic: every metric the issue lists, with
//! the figures the traffic implies, no identifier anywhere, label values
//! only from closed sets, and `promtool check metrics` silent.

mod common;
mod observability_support;

use std::collections::BTreeSet;

use common::{Gateway, Tuning, WAIT, World, poll};
use observability_support::traffic::{Ward, ward};
use observability_support::{Scrape, assert_promtool_ok, get, run_promtool};

/// Publishes the ward's traffic and waits until the gateway has taken all
/// of it, judged it (the overdue expectation is counted) and caught up
/// with the wall clock (no lag).
async fn feed(world: &World, gateway: &mut Gateway, w: &Ward) -> Scrape {
    gateway.wait_ready().await;
    let messages: Vec<_> = w
        .messages
        .iter()
        .map(|m| common::input(&m.id, m.content_type, m.body.clone()))
        .collect();
    world.publish(&messages).await;
    let port = world.port;
    let total = messages.len() as f64;
    poll("the traffic to be processed and judged", WAIT, || async {
        let s = Scrape::parse(&get(port, "/metrics", &[]).body);
        let received = s.sum("tocsin_messages_received_total", &[]);
        let overdue = s.sum("tocsin_expectations_overdue", &[]);
        // Once drained the engine's clock follows the wall clock: the lag
        // drops from hours (the traffic's times) to nothing.
        let lag = s.value("tocsin_clock_lag_seconds", &[]);
        let committed = s.committed_inputs();
        if received == total && committed == total && overdue == 1.0 && lag.abs() < 60.0 {
            Ok(s)
        } else {
            Err(format!(
                "{received} received, {committed} committed, {overdue} overdue, lag {lag} s"
            ))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_reflect_the_traffic_and_carry_no_identifiers() {
    let world = World::sqlite("obs-metrics", Tuning::default()).await;
    let mut gateway = world.start(&[]);
    let w = ward("A");
    let s = feed(&world, &mut gateway, &w).await;

    // Every metric the issue lists, with help text and the right type.
    for (name, kind) in [
        ("tocsin_messages_received_total", "counter"),
        ("tocsin_messages_rejected_total", "counter"),
        ("tocsin_events_total", "counter"),
        ("tocsin_expectations_open", "gauge"),
        ("tocsin_expectations_overdue", "gauge"),
        ("tocsin_documents_total", "counter"),
        ("tocsin_document_delay_seconds", "histogram"),
        ("tocsin_alerts_emitted_total", "counter"),
        ("tocsin_deliveries_total", "counter"),
        ("tocsin_processing_seconds", "histogram"),
        ("tocsin_batch_size", "histogram"),
        ("tocsin_pipeline_stage_seconds", "histogram"),
        ("tocsin_outbox_pending", "gauge"),
        ("tocsin_clock_lag_seconds", "gauge"),
        ("tocsin_amqp_connected", "gauge"),
        ("tocsin_store_up", "gauge"),
        ("tocsin_store_pruned_rows_total", "counter"),
        ("tocsin_tracker_notices_total", "counter"),
        ("tocsin_event_warnings_total", "counter"),
        ("tocsin_build_info", "gauge"),
    ] {
        assert_eq!(s.types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(
            s.help.get(name).is_some_and(|h| h.len() > 10),
            "{name} has no help text"
        );
    }
    for sample in &s.samples {
        assert!(sample.name.starts_with("tocsin_"), "{}", sample.name);
    }

    // The figures the traffic implies.
    let ds = ("document_kind", "discharge_summary");
    assert_eq!(
        s.value("tocsin_messages_received_total", &[("format", "hl7v2")]),
        8.0
    );
    assert_eq!(
        s.value("tocsin_messages_received_total", &[("format", "unknown")]),
        1.0
    );
    assert_eq!(s.sum("tocsin_messages_rejected_total", &[]), 1.0);
    assert_eq!(
        s.value(
            "tocsin_messages_rejected_total",
            &[("reason", "unrecognised_format")]
        ),
        1.0
    );
    assert_eq!(
        s.value("tocsin_events_total", &[("type", "encounter_ended")]),
        5.0
    );
    assert_eq!(
        s.value("tocsin_events_total", &[("type", "document_issued")]),
        2.0
    );
    assert_eq!(
        s.value(
            "tocsin_expectations_open",
            &[ds, ("encounter_kind", "emergency")]
        ),
        1.0
    );
    assert_eq!(
        s.value(
            "tocsin_expectations_open",
            &[
                ("document_kind", "clinic_letter"),
                ("encounter_kind", "outpatient")
            ]
        ),
        1.0
    );
    assert_eq!(s.sum("tocsin_expectations_open", &[]), 2.0);
    assert_eq!(
        s.value(
            "tocsin_expectations_overdue",
            &[ds, ("encounter_kind", "inpatient")]
        ),
        1.0
    );
    // The acknowledgement of the on-time summary does not count it again.
    assert_eq!(
        s.value("tocsin_documents_total", &[ds, ("outcome", "on_time")]),
        1.0
    );
    assert_eq!(
        s.value("tocsin_documents_total", &[ds, ("outcome", "late")]),
        1.0
    );
    // Delays of 2 h and 60 h: the first bucket holding each.
    let bucket = |le| s.value("tocsin_document_delay_seconds_bucket", &[ds, ("le", le)]);
    assert_eq!(bucket("3600"), 0.0);
    assert_eq!(bucket("21600"), 1.0);
    assert_eq!(bucket("172800"), 1.0);
    assert_eq!(bucket("604800"), 2.0);
    assert_eq!(bucket("+Inf"), 2.0);
    assert_eq!(
        s.value("tocsin_document_delay_seconds_sum", &[ds]),
        (2 * 3600 + 60 * 3600) as f64
    );
    for le in [
        "3600", "21600", "86400", "172800", "604800", "864000", "1209600", "2419200",
    ] {
        bucket(le);
    }
    assert_eq!(
        s.value("tocsin_alerts_emitted_total", &[("kind", "overdue")]),
        2.0
    );
    assert_eq!(
        s.value("tocsin_alerts_emitted_total", &[("kind", "late")]),
        1.0
    );
    assert_eq!(
        s.value("tocsin_alerts_emitted_total", &[("kind", "resolved")]),
        1.0
    );
    assert_eq!(s.value("tocsin_amqp_connected", &[]), 1.0);
    assert_eq!(s.value("tocsin_store_up", &[]), 1.0);
    // The SQLite store's files, measured at the store check that runs as
    // the gateway starts: the database holds at least its schema.
    assert!(s.value("tocsin_store_file_bytes", &[("file", "database")]) > 0.0);
    assert_eq!(s.value("tocsin_store_checkpoint_failing", &[]), 0.0);
    assert_eq!(
        s.value(
            "tocsin_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(s.value("tocsin_batch_size_count", &[]) >= 1.0);
    assert!(s.value("tocsin_processing_seconds_count", &[]) >= 1.0);
    // Each stage of the pipeline timed once a batch at least.
    for stage in ["receive", "process", "commit", "settle"] {
        assert!(
            s.value("tocsin_pipeline_stage_seconds_count", &[("stage", stage)]) >= 1.0,
            "{stage} timed"
        );
    }

    // No identifier of the traffic, anywhere in the text.
    for id in &w.identifiers {
        assert!(!s.text.contains(id.as_str()), "{id} appears in /metrics");
    }
    // Sites and specialties are labels only when configured.
    for v in ["RXX01", "RXX02", "CARDIO", "site=", "specialty="] {
        assert!(!s.text.contains(v), "{v} appears in /metrics");
    }
    assert_closed_labels(&s, &[]);

    // promtool accepts the exposition without a word.
    let out = run_promtool(&["check", "metrics"], Some(&s.text));
    assert_promtool_ok("check metrics", &out);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.trim().is_empty(),
        "promtool check metrics complains:\n{said}"
    );

    // What the tracker tolerates is counted, not lost: the ward's traffic
    // needed none of it; a repeated discharge (same HL7 message, a new
    // broker message) and an acknowledgement of a message never seen now
    // count one each.
    for notice in ["duplicate", "ack_unmatched", "stale_event"] {
        assert_eq!(
            s.value("tocsin_tracker_notices_total", &[("notice", notice)]),
            0.0,
            "{notice}"
        );
    }
    let repeat = &w.messages[0];
    // Stamped an hour ago: an acknowledgement waits the allowed lateness
    // (5 minutes) for a document read after it, and only then counts.
    let ack = format!(
        "MSH|^~\\&|GPSYS|B86001|PAS|RXX01|{}||ACK^T02^ACK|NOTICEACK1|P|2.4\rMSA|AA|NEVERSENT1\r",
        (w.now - chrono::TimeDelta::hours(1)).format("%Y%m%d%H%M%S+0000")
    );
    let hl7 = Some("x-application/hl7-v2+er7");
    world
        .publish(&[
            common::input("notice-repeat", repeat.content_type, repeat.body.clone()),
            common::input("notice-ack", hl7, ack.into_bytes()),
        ])
        .await;
    let port = world.port;
    poll("the tracker's notices to be counted", WAIT, || async {
        let s = Scrape::parse(&get(port, "/metrics", &[]).body);
        let n = |notice| s.value("tocsin_tracker_notices_total", &[("notice", notice)]);
        match (n("duplicate"), n("ack_unmatched")) {
            (1.0, 1.0) => Ok(()),
            other => Err(format!("duplicate and ack_unmatched at {other:?}")),
        }
    })
    .await;

    // What normalisation tolerated is counted by code: nothing in the
    // ward's traffic; then a discharge whose NHS number fails its check
    // digit (sent as a new message) counts one, without the number.
    assert_eq!(s.sum("tocsin_event_warnings_total", &[]), 0.0);
    let nhs = &w.identifiers[4];
    let body = String::from_utf8(w.messages[0].body.clone()).unwrap();
    assert!(
        body.contains(nhs.as_str()),
        "the first message is patient 2's"
    );
    let last = nhs.chars().last().unwrap().to_digit(10).unwrap();
    let bad = format!("{}{}", &nhs[..9], (last + 1) % 10);
    // A new control id (MSH-10), so that it is no duplicate.
    let body = body
        .replace(nhs.as_str(), &bad)
        .replacen("|P|2.4", "W|P|2.4", 1);
    world
        .publish(&[common::input("warning-nhs", hl7, body.into_bytes())])
        .await;
    poll("the warning to be counted", WAIT, || async {
        let s = Scrape::parse(&get(port, "/metrics", &[]).body);
        match s.value(
            "tocsin_event_warnings_total",
            &[("code", "invalid_nhs_number")],
        ) {
            1.0 if !s.text.contains(bad.as_str()) => Ok(()),
            n => Err(format!("invalid_nhs_number at {n}")),
        }
    })
    .await;
}

/// With `[metrics] site_label` on, sites listed get their own value, the
/// rest `other`; specialties stay out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_labels_only_from_the_configured_list() {
    let world = World::sqlite("obs-sites", Tuning::default()).await;
    world.append_config("[metrics]\nsite_label = true\nsites = [\"RXX01\"]\n");
    let mut gateway = world.start(&[]);
    let w = ward("B");
    let s = feed(&world, &mut gateway, &w).await;

    let ds = ("document_kind", "discharge_summary");
    assert_eq!(
        s.value(
            "tocsin_documents_total",
            &[ds, ("outcome", "on_time"), ("site", "RXX01")]
        ),
        1.0
    );
    // RXX02 is not listed: `other`, never its own value.
    assert_eq!(
        s.value(
            "tocsin_documents_total",
            &[ds, ("outcome", "late"), ("site", "other")]
        ),
        1.0
    );
    assert!(!s.text.contains("RXX02"));
    assert!(!s.text.contains("specialty="));
    for id in &w.identifiers {
        assert!(!s.text.contains(id.as_str()), "{id} appears in /metrics");
    }
    assert_closed_labels(&s, &["RXX01"]);
    assert_promtool_ok(
        "check metrics",
        &run_promtool(&["check", "metrics"], Some(&s.text)),
    );
}

/// Every label value comes from a closed set: the model's kinds and codes,
/// the configured sites, fixed reason codes, bucket bounds.
fn assert_closed_labels(s: &Scrape, sites: &[&str]) {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let document_kinds = set(&["discharge_summary", "clinic_letter", "other"]);
    let encounter_kinds = set(&[
        "inpatient",
        "day_case",
        "emergency",
        "outpatient",
        "mental_health",
        "other",
    ]);
    let mut site_values = set(sites);
    site_values.extend(["other".to_string(), "unknown".to_string()]);
    let code = |v: &str| {
        !v.is_empty()
            && v.len() <= 40
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    for sample in &s.samples {
        for (k, v) in &sample.labels {
            let ok = match k.as_str() {
                "document_kind" => document_kinds.contains(v),
                "encounter_kind" => encounter_kinds.contains(v),
                "outcome" => ["on_time", "late"].contains(&v.as_str()),
                "kind" => [
                    "due_soon",
                    "overdue",
                    "late",
                    "resolved",
                    "delivery_failed",
                    "unconfirmed",
                    "cancelled",
                ]
                .contains(&v.as_str()),
                "format" => {
                    ["hl7v2", "fhir-json", "ndjson", "fhir-xml", "unknown"].contains(&v.as_str())
                }
                "result" => match sample.name.as_str() {
                    "tocsin_webhook_deliveries_total" => {
                        ["delivered", "retried", "failed", "withdrawn"].contains(&v.as_str())
                    }
                    "tocsin_alertmanager_posts_total" => ["ok", "error"].contains(&v.as_str()),
                    _ => ["amqp_confirmed", "amqp_failed"].contains(&v.as_str()),
                },
                "table" => ["outbox", "inputs"].contains(&v.as_str()),
                "file" => ["database", "wal"].contains(&v.as_str()),
                "stage" => ["receive", "process", "commit", "settle"].contains(&v.as_str()),
                // Configured subscribers' names (none here) and the two
                // fixed workers.
                "worker" => ["alertmanager", "backlog"].contains(&v.as_str()),
                "notice" => tocsin_tracker::Counters::default()
                    .named()
                    .iter()
                    .any(|(n, _)| n == v),
                "site" => site_values.contains(v),
                "code" => tocsin_event::WarningCode::ALL
                    .iter()
                    .any(|c| c.as_str() == v),
                // Fixed codes from the normalisers and the event model.
                "reason" | "type" => code(v),
                "version" => v == env!("CARGO_PKG_VERSION"),
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                _ => false,
            };
            assert!(
                ok,
                "{}: label {k}={v:?} is not from a closed set",
                sample.name
            );
        }
    }
}
