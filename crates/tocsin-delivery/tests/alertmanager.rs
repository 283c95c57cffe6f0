//! Alertmanager delivery against the real `prometheus-alertmanager`
//! (Debian's package; `scripts/test.sh` installs it) on a loopback port,
//! with a temporary configuration whose webhook receiver, also on loopback,
//! records Alertmanager's own notifications. The tests fail when the binary
//! is missing.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use chrono::{SecondsFormat, TimeZone, Timelike, Utc};
use common::{Log, NHS_NUMBER, TempStore, wait_until};
use serde_json::Value;
use tocsin_delivery::config::Alertmanager;
use tocsin_delivery::{Delivery, DeliveryConfig, DeliveryMetrics, SharedStore};
use tocsin_event::{DocumentKind, EncounterKind, EventId, Identifier};
use tocsin_store::Batch;
use tocsin_tracker::{
    AlertKind, DeliveryStatus, Effect, EncounterSummary, Expectation, ExpectationId,
    ExpectationStatus, PatientKeys, RuleRef,
};

const LIMIT: Duration = Duration::from_secs(30);
const BINARY: &str = "prometheus-alertmanager";

/// Identifiers that must never reach Alertmanager.
const PATIENT_DATA: [&str; 5] = [NHS_NUMBER, "VISIT-77", "H12345", "A81001", "0badc0de"];

/// A running Alertmanager, killed on drop.
struct RunningAlertmanager {
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
    base: String,
}

/// Notifications Alertmanager sent to its webhook receiver.
#[derive(Clone, Default)]
struct Notifications(Arc<Mutex<Vec<Value>>>);

impl Notifications {
    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

async fn notified(State(n): State<Notifications>, Json(v): Json<Value>) -> &'static str {
    n.0.lock().unwrap().push(v);
    "ok"
}

fn free_port() -> u16 {
    // Alertmanager takes an address, not a socket: ask the kernel for a
    // free port and hand it over.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_alertmanager() -> (RunningAlertmanager, Notifications) {
    let notifications = Notifications::default();
    let app = axum::Router::new()
        .route("/notify", post(notified))
        .with_state(notifications.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = format!(
        "route:\n  receiver: hook\n  group_by: ['alertname', 'site']\n  group_wait: 200ms\n  \
         group_interval: 500ms\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
         webhook_configs:\n      - url: http://{hook}/notify\n        send_resolved: true\n"
    );
    (run_alertmanager(&config).await, notifications)
}

/// Runs Alertmanager with `config` (YAML) until the value is dropped.
async fn run_alertmanager(config_text: &str) -> RunningAlertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, config_text).unwrap();
    let port = free_port();
    let child = tokio::process::Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {BINARY} ({e}): install it with `apt-get install -y prometheus-alertmanager` \
                 (scripts/test.sh does)"
            )
        });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = format!("{base}/-/ready");
    wait_until("Alertmanager ready", LIMIT, || {
        let c = client.clone();
        let url = ready.clone();
        async move {
            c.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    RunningAlertmanager {
        _child: child,
        _dir: dir,
        base,
    }
}

async fn active_alerts(base: &str) -> Vec<Value> {
    let body = reqwest::get(format!("{base}/api/v2/alerts"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v.as_array().cloned().unwrap_or_default()
}

fn config(base: &str, resend: Duration) -> Alertmanager {
    Alertmanager {
        alerts_url: reqwest::Url::parse(&format!("{base}/api/v2/alerts")).unwrap(),
        resend_interval: resend,
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        api_base: reqwest::Url::parse("https://tocsin.example.nhs.uk/").unwrap(),
        delivery_failed_for: Duration::from_secs(3600),
        severity_overdue: "warning".into(),
        severity_delivery_failed: "critical".into(),
        grouping: Default::default(),
    }
}

fn expectation(status: ExpectationStatus) -> Expectation {
    let deadline = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
    Expectation {
        id: ExpectationId("0badc0de".into()),
        status,
        document_kind: DocumentKind::DischargeSummary,
        encounter: EncounterSummary {
            id: Some("VISIT-77".into()),
            reference: None,
            kind: EncounterKind::Inpatient,
            ended_at: deadline - chrono::Duration::hours(24),
            site: Some("RXX01".into()),
            specialty: None,
        },
        patient: PatientKeys {
            nhs_number: Some(NHS_NUMBER.into()),
            local_ids: vec![Identifier {
                system: "MR".into(),
                value: "H12345".into(),
            }],
        },
        gp_practice: Some("A81001".into()),
        rule: RuleRef {
            id: "discharge-summary-24h".into(),
            clause: "SC11.6".into(),
        },
        deadline,
        due_soon_at: None,
        created_by: EventId::from_string("evt-1".to_string()),
        settlement: None,
        delivery: None,
        alerts_raised: vec![],
    }
}

async fn put(store: &SharedStore, e: Expectation) {
    let mut batch = Batch::default();
    batch.push_expectation(e);
    store.call(move |s| s.commit(&batch)).await.unwrap();
}

fn start(
    store: &SharedStore,
    am: Alertmanager,
) -> (tocsin_delivery::Workers, Arc<DeliveryMetrics>) {
    let metrics = Arc::new(DeliveryMetrics::unregistered(&[]));
    let d = Delivery::with_metrics(
        DeliveryConfig {
            webhooks: vec![],
            alertmanager: Some(am),
        },
        metrics.clone(),
    );
    (d.spawn(store.clone()).unwrap(), metrics)
}

/// Waits for Alertmanager's first `resolved` notification and returns it,
/// once no alert is active any more.
async fn resolution(notifications: &Notifications, base: &str) -> Value {
    wait_until("Alertmanager notifies the resolution", LIMIT, || async {
        notifications
            .all()
            .iter()
            .any(|n| n["status"] == "resolved")
    })
    .await;
    assert!(active_alerts(base).await.is_empty());
    notifications
        .all()
        .into_iter()
        .find(|n| n["status"] == "resolved")
        .expect("a resolved notification")
}

fn assert_no_patient_data(what: &str, v: &Value) {
    let text = v.to_string();
    for id in PATIENT_DATA {
        assert!(!text.contains(id), "{what} carries {id:?}: {text}");
    }
}

#[tokio::test]
async fn an_overdue_then_resolved_group_fires_then_resolves_without_patient_data() {
    let (am, notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    // A long resend interval: the alert's own endsAt is minutes away, so
    // its resolution below can only come from tocsin's resolved post.
    let (_workers, metrics) = start(&store, config(&am.base, Duration::from_secs(60)));

    put(&store, expectation(ExpectationStatus::Overdue)).await;
    wait_until("the alert is active in Alertmanager", LIMIT, || async {
        !active_alerts(&am.base).await.is_empty()
    })
    .await;
    let alerts = active_alerts(&am.base).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["status"]["state"], "active");
    let labels = a["labels"].as_object().unwrap();
    let mut names: Vec<&str> = labels.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alertname",
            "document_kind",
            "encounter_kind",
            "severity",
            "site"
        ]
    );
    assert_eq!(labels["alertname"], "TocsinDocumentOverdue");
    assert_eq!(labels["document_kind"], "discharge_summary");
    assert_eq!(labels["encounter_kind"], "inpatient");
    assert_eq!(labels["site"], "RXX01");
    assert_eq!(labels["severity"], "warning");
    let ann = &a["annotations"];
    assert!(
        ann["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 discharge_summary"),
        "{ann}"
    );
    assert_eq!(
        ann["expectations_url"],
        "https://tocsin.example.nhs.uk/api/v1/expectations?status=overdue&document_kind=discharge_summary&encounter_kind=inpatient&site=RXX01"
    );
    assert_eq!(
        ann["alerts_url"],
        "https://tocsin.example.nhs.uk/api/v1/alerts?kind=overdue&document_kind=discharge_summary&encounter_kind=inpatient&site=RXX01"
    );
    assert_no_patient_data("the active alert", a);
    let fingerprint = a["fingerprint"].clone();

    // The document arrives late: the expectation is settled, the group
    // empties, and tocsin posts the same alert with endsAt now.
    put(&store, expectation(ExpectationStatus::Late)).await;
    let resolved = resolution(&notifications, &am.base).await;
    let all = notifications.all();
    let firing = all.iter().find(|n| n["status"] == "firing").unwrap();
    assert_eq!(firing["alerts"][0]["fingerprint"], fingerprint);
    assert_eq!(
        resolved["alerts"][0]["fingerprint"], fingerprint,
        "the same alert, ended"
    );
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    for n in &all {
        assert_no_patient_data("a notification", n);
    }
    assert!(metrics.alertmanager_posts.with_label_values(&["ok"]).get() >= 2);
    assert_eq!(metrics.alertmanager_firing.get(), 0);
}

#[tokio::test]
async fn a_firing_group_is_posted_again_each_resend_interval() {
    let (am, _notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let (_workers, _metrics) = start(&store, config(&am.base, Duration::from_millis(500)));
    put(&store, expectation(ExpectationStatus::Overdue)).await;

    wait_until("active", LIMIT, || async {
        !active_alerts(&am.base).await.is_empty()
    })
    .await;
    let first = active_alerts(&am.base).await[0]["endsAt"].clone();
    // Each re-post moves endsAt (four intervals ahead of the post).
    wait_until("endsAt moved by a re-post", LIMIT, || async {
        active_alerts(&am.base)
            .await
            .first()
            .is_some_and(|a| a["endsAt"] != first)
    })
    .await;
    let alerts = active_alerts(&am.base).await;
    assert_eq!(alerts.len(), 1, "still one alert: {alerts:?}");
    assert_eq!(alerts[0]["status"]["state"], "active");
}

/// A failed transmission fires `TocsinDeliveryFailed` for its group, and
/// the group's link lists that group's failed alerts, not every site's.
#[tokio::test]
async fn a_failed_delivery_fires_its_group_with_a_link_to_that_group_only() {
    let (am, _notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let (_workers, _metrics) = start(&store, config(&am.base, Duration::from_secs(60)));
    // Within the configured hour of failures, on a whole second.
    let raised = Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::minutes(10);
    let mut failed = common::alert(7, AlertKind::DeliveryFailed, Some("RXX02"));
    failed.raised_at = raised;
    let batch = Batch::from_effects([Effect::AlertRaised(failed.clone())]);
    store.call(move |s| s.commit(&batch)).await.unwrap();

    wait_until("Alertmanager holds the failed group", LIMIT, || async {
        active_alerts(&am.base).await.len() == 1
    })
    .await;
    let alerts = active_alerts(&am.base).await;
    let a = &alerts[0];
    assert_eq!(a["labels"]["alertname"], "TocsinDeliveryFailed");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["site"], "RXX02");
    let url = reqwest::Url::parse(a["annotations"]["alerts_url"].as_str().unwrap()).unwrap();
    assert_eq!(
        (url.host_str(), url.path()),
        (Some("tocsin.example.nhs.uk"), "/api/v1/alerts")
    );
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let since = raised.to_rfc3339_opts(SecondsFormat::Millis, true);
    let want = [
        ("kind", "delivery_failed"),
        ("document_kind", "discharge_summary"),
        ("encounter_kind", "inpatient"),
        ("site", "RXX02"),
        ("since", since.as_str()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(pairs, want);
    assert_no_patient_data("the failed-delivery alert", a);
    let text = a.to_string();
    for id in [
        failed.alert_id.as_str(),
        failed.expectation_id.0.as_str(),
        "V7",
    ] {
        assert!(!text.contains(id), "{id} in {text}");
    }
}

/// A failed transmission whose document was sent again and accepted (its
/// expectation's delivery now acknowledged) no longer fires: tocsin posts
/// the group resolved, before `delivery_failed_for_secs` has run out.
#[tokio::test]
async fn a_failed_delivery_accepted_on_resend_resolves() {
    let (am, notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let (_workers, metrics) = start(&store, config(&am.base, Duration::from_secs(60)));
    let mut failed = common::alert(9, AlertKind::DeliveryFailed, Some("RXX01"));
    failed.raised_at = Utc::now().with_nanosecond(0).unwrap() - chrono::Duration::minutes(5);
    let mut e = expectation(ExpectationStatus::OnTime);
    e.id = failed.expectation_id.clone();
    e.delivery = Some(DeliveryStatus::Failed);
    let mut batch = Batch::from_effects([Effect::AlertRaised(failed)]);
    batch.push_expectation(e.clone());
    store.call(move |s| s.commit(&batch)).await.unwrap();
    wait_until("Alertmanager holds the failed group", LIMIT, || async {
        active_alerts(&am.base).await.len() == 1
    })
    .await;

    // The resend is pending: still failing.
    e.delivery = Some(DeliveryStatus::Pending);
    put(&store, e.clone()).await;
    let since = Utc::now() - chrono::Duration::hours(1);
    let groups = store
        .call(move |s| s.failed_delivery_groups(since, Default::default()))
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    // Accepted: resolved.
    e.delivery = Some(DeliveryStatus::Acknowledged);
    put(&store, e).await;
    let resolved = resolution(&notifications, &am.base).await;
    assert_eq!(
        resolved["alerts"][0]["labels"]["alertname"],
        "TocsinDeliveryFailed"
    );
    assert_eq!(metrics.alertmanager_firing.get(), 0);
}

/// A failure stamped ahead of the wall clock (an engine writing local
/// summer time with a `Z`) still pages: Alertmanager refuses an alert whose
/// start is after its end, so the start sent is never later than now.
#[tokio::test]
async fn a_failure_stamped_in_the_future_still_fires() {
    let (am, _notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let (_workers, metrics) = start(&store, config(&am.base, Duration::from_secs(60)));
    let ahead = Utc::now().with_nanosecond(0).unwrap() + chrono::Duration::hours(1);
    let mut failed = common::alert(8, AlertKind::DeliveryFailed, Some("RXX03"));
    failed.raised_at = ahead;
    let batch = Batch::from_effects([Effect::AlertRaised(failed)]);
    store.call(move |s| s.commit(&batch)).await.unwrap();

    wait_until("Alertmanager holds the failed group", LIMIT, || async {
        active_alerts(&am.base).await.len() == 1
    })
    .await;
    let alerts = active_alerts(&am.base).await;
    assert_eq!(alerts[0]["labels"]["alertname"], "TocsinDeliveryFailed");
    let starts =
        chrono::DateTime::parse_from_rfc3339(alerts[0]["startsAt"].as_str().unwrap()).unwrap();
    assert!(starts < ahead, "started {starts}, stamped {ahead}");
    assert_eq!(
        metrics
            .alertmanager_posts
            .with_label_values(&["error"])
            .get(),
        0,
        "no post was refused"
    );
}

/// A post that fails is logged naming the Alertmanager it went to (with
/// the password in its address hidden), so that the operator knows which
/// to look at; it said only the error.
#[tokio::test]
async fn a_failed_post_names_the_alertmanager_without_its_password() {
    let (log, _logging) = Log::capture();
    let tmp = TempStore::new();
    let store = tmp.open();
    // Nothing listens on port 1.
    let (_workers, metrics) = start(
        &store,
        config("http://ops:s3cret@127.0.0.1:1", Duration::from_secs(60)),
    );
    let mut failed = common::alert(9, AlertKind::DeliveryFailed, Some("RXX03"));
    failed.raised_at = Utc::now().with_nanosecond(0).unwrap();
    let batch = Batch::from_effects([Effect::AlertRaised(failed)]);
    store.call(move |s| s.commit(&batch)).await.unwrap();
    wait_until("a post fails and is logged", LIMIT, || async {
        metrics
            .alertmanager_posts
            .with_label_values(&["error"])
            .get()
            >= 1
            && log.text().contains("posting to Alertmanager failed")
    })
    .await;
    let text = log.text();
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Split by specialty, each specialty's overdue documents are an alert of
/// their own with a `specialty` label (`(none)` when the messages named
/// none), and each alert's link lists that specialty's cases only. A code
/// sent as `unknown` is a group of its own: it once shared the label of
/// the unnamed ones, and the two groups resolved each other's alert.
#[tokio::test]
async fn groups_split_by_specialty_carry_it_as_a_label_and_in_their_links() {
    let (am, _notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let mut am_config = config(&am.base, Duration::from_secs(60));
    am_config.grouping.by_specialty = true;
    let (_workers, _metrics) = start(&store, am_config);
    let mut batch = Batch::default();
    for (id, specialty) in [
        ("e-130a", Some("130")),
        ("e-130b", Some("130")),
        ("e-300", Some("300")),
        ("e-none", None),
        ("e-unknown", Some("unknown")),
    ] {
        let mut e = expectation(ExpectationStatus::Overdue);
        e.id = ExpectationId(id.into());
        e.encounter.specialty = specialty.map(str::to_string);
        batch.push_expectation(e);
    }
    store.call(move |s| s.commit(&batch)).await.unwrap();

    wait_until("four groups are active", LIMIT, || async {
        active_alerts(&am.base).await.len() == 4
    })
    .await;
    let mut got: Vec<(String, String, String)> = active_alerts(&am.base)
        .await
        .iter()
        .map(|a| {
            assert_no_patient_data("a split alert", a);
            assert_eq!(a["labels"]["site"], "RXX01");
            (
                a["labels"]["specialty"].as_str().unwrap().to_string(),
                a["annotations"]["summary"].as_str().unwrap().to_string(),
                a["annotations"]["expectations_url"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    let url = "https://tocsin.example.nhs.uk/api/v1/expectations?status=overdue&document_kind=discharge_summary&encounter_kind=inpatient&site=RXX01";
    let want = [
        (
            "(none)",
            "1 discharge_summary document(s) overdue after inpatient encounters at site RXX01, specialty (none)",
            // Those with no specialty only, not the whole site's.
            format!("{url}&specialty=%28none%29"),
        ),
        (
            "130",
            "2 discharge_summary document(s) overdue after inpatient encounters at site RXX01, specialty 130",
            format!("{url}&specialty=130"),
        ),
        (
            "300",
            "1 discharge_summary document(s) overdue after inpatient encounters at site RXX01, specialty 300",
            format!("{url}&specialty=300"),
        ),
        (
            "unknown",
            "1 discharge_summary document(s) overdue after inpatient encounters at site RXX01, specialty unknown",
            format!("{url}&specialty=unknown"),
        ),
    ]
    .map(|(l, s, u)| (l.to_string(), s.to_string(), u));
    assert_eq!(got, want);
}

/// A site the sender wrote with control characters (an HL7 `\X1B\`
/// escape, a newline) reaches Alertmanager's labels and summary escaped:
/// it can drive no receiver's terminal and forge no line.
#[tokio::test]
async fn control_characters_from_messages_reach_alertmanager_escaped() {
    let (am, _notifications) = start_alertmanager().await;
    let tmp = TempStore::new();
    let store = tmp.open();
    let (_workers, _metrics) = start(&store, config(&am.base, Duration::from_secs(60)));
    let mut e = expectation(ExpectationStatus::Overdue);
    e.encounter.site = Some("\u{1b}[31mRXX01\nINFO forged".into());
    put(&store, e).await;
    wait_until("the alert is active in Alertmanager", LIMIT, || async {
        !active_alerts(&am.base).await.is_empty()
    })
    .await;
    let alerts = active_alerts(&am.base).await;
    let a = &alerts[0];
    assert_eq!(a["labels"]["site"], r"\u{1b}[31mRXX01\nINFO forged");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.ends_with(r"at site \u{1b}[31mRXX01\nINFO forged"),
        "{summary}"
    );
    assert!(!a.to_string().contains("\\u001b"), "{a}");
}

/// The shipped configuration (deploy/alertmanager) holds back Prometheus's
/// aggregate overdue alert for an encounter kind while tocsin's own
/// per-group overdue alert for it fires: one backlog, one notification to
/// the clinical team (a newcomer's walk got both). The aggregate of
/// another kind, with no alert of tocsin's behind it, is sent.
#[tokio::test]
async fn the_shipped_configuration_holds_back_the_aggregate_while_tocsins_own_fires() {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/alertmanager/alertmanager.yml"
    ))
    .unwrap();
    let am = run_alertmanager(&shipped).await;
    let alert = |labels: Value| serde_json::json!({ "labels": labels });
    let alerts = serde_json::json!([
        alert(serde_json::json!({"alertname": "TocsinDocumentOverdue",
            "document_kind": "discharge_summary", "encounter_kind": "inpatient",
            "site": "RXX01", "severity": "warning"})),
        alert(
            serde_json::json!({"alertname": "TocsinDischargeSummariesOverdue",
            "encounter_kind": "inpatient", "severity": "warning", "team": "clinical-systems"})
        ),
        alert(
            serde_json::json!({"alertname": "TocsinDischargeSummariesOverdue",
            "encounter_kind": "emergency", "severity": "warning", "team": "clinical-systems"})
        ),
    ]);
    let posted = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.base))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(alerts.to_string())
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());
    let state = |all: &[Value], kind: &str| {
        all.iter()
            .find(|a| {
                a["labels"]["alertname"] == "TocsinDischargeSummariesOverdue"
                    && a["labels"]["encounter_kind"] == kind
            })
            .map(|a| a["status"]["state"].as_str().unwrap_or("").to_string())
    };
    let base = am.base.clone();
    wait_until("the inpatient aggregate held back", LIMIT, || {
        let base = base.clone();
        async move {
            let all = active_alerts(&base).await;
            state(&all, "inpatient").as_deref() == Some("suppressed")
                && state(&all, "emergency").as_deref() == Some("active")
        }
    })
    .await;
}
