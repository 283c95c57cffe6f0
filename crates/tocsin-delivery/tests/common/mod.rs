//! Test support: real HTTP receivers on loopback (axum, port 0) that verify
//! signatures the way a subscriber would, alerts, and a store on a
//! temporary SQLite file.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{TimeZone, Utc};
use tocsin_delivery::config::Webhook;
use tocsin_delivery::{Filters, SharedStore, sign};
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_store::{Batch, DeliveryCounts};
use tocsin_tracker::{Alert, AlertEncounter, AlertKind, AlertPatient, ExpectationId, RuleRef};

/// The NHS number every test alert carries (valid check digit).
pub const NHS_NUMBER: &str = "9434765919";

/// How a receiver answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 to every correctly signed request.
    Accept,
    /// 503 to the first `n` requests, then 200.
    FailFirst(usize),
    /// 503 always.
    AlwaysFail,
    /// The first `n` requests are answered (200) only after `delay`.
    SlowFirst(usize, Duration),
    /// Every request answered only after `delay`.
    AlwaysSlow(Duration),
    /// 429 with `Retry-After: <secs>` to the first `n` requests, then 200.
    TooManyFirst(usize, u64),
    /// 422 to the alert with this idempotency key, 200 to the others.
    RefuseKey(String),
    /// 422 to every alert.
    RefuseAll,
    /// 503 while the flag is set, 200 once the test clears it.
    FailWhile(Arc<AtomicBool>),
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub attempt: Option<String>,
    pub signature_valid: bool,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
    /// When it arrived.
    pub arrived_at: std::time::Instant,
}

struct Inner {
    secret: Vec<u8>,
    behaviour: Behaviour,
    arrived: AtomicUsize,
    answered: Mutex<Vec<Received>>,
}

/// A webhook receiver on 127.0.0.1, verifying `X-Tocsin-Signature` with
/// its own copy of the secret (401 when it does not match).
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub url: String,
}

impl Receiver {
    pub async fn start(secret: &[u8], behaviour: Behaviour) -> Self {
        let inner = Arc::new(Inner {
            secret: secret.to_vec(),
            behaviour,
            arrived: AtomicUsize::new(0),
            answered: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            inner,
            url: format!("http://{addr}/hook"),
        }
    }

    /// Requests that arrived (answered or not yet).
    pub fn arrived(&self) -> usize {
        self.inner.arrived.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> Vec<Received> {
        self.inner.answered.lock().unwrap().clone()
    }

    /// Bodies the receiver accepted (answered 2xx), by idempotency key.
    pub fn accepted_keys(&self) -> Vec<String> {
        self.answered()
            .into_iter()
            .filter(|r| r.status == 200)
            .filter_map(|r| r.idempotency_key)
            .collect()
    }

    /// The idempotency keys (alert ids) of the requests answered after the
    /// first `before`, whatever their answer.
    pub fn keys_since(&self, before: usize) -> Vec<String> {
        self.answered()[before..]
            .iter()
            .map(|r| r.idempotency_key.clone().unwrap_or_default())
            .collect()
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let arrived_at = std::time::Instant::now();
    let n = inner.arrived.fetch_add(1, Ordering::SeqCst);
    let mut answer_headers = HeaderMap::new();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let signature_valid =
        header(sign::SIGNATURE_HEADER).is_some_and(|s| sign::verify(&inner.secret, &body, &s));
    let status = if !signature_valid {
        StatusCode::UNAUTHORIZED
    } else {
        match &inner.behaviour {
            Behaviour::Accept => StatusCode::OK,
            Behaviour::FailFirst(k) if n < *k => StatusCode::SERVICE_UNAVAILABLE,
            Behaviour::FailFirst(_) => StatusCode::OK,
            Behaviour::AlwaysFail => StatusCode::SERVICE_UNAVAILABLE,
            Behaviour::SlowFirst(k, delay) => {
                if n < *k {
                    tokio::time::sleep(*delay).await;
                }
                StatusCode::OK
            }
            Behaviour::AlwaysSlow(delay) => {
                tokio::time::sleep(*delay).await;
                StatusCode::OK
            }
            Behaviour::TooManyFirst(k, secs) if n < *k => {
                answer_headers.insert("retry-after", secs.to_string().parse().unwrap());
                StatusCode::TOO_MANY_REQUESTS
            }
            Behaviour::TooManyFirst(..) => StatusCode::OK,
            Behaviour::RefuseKey(key) if header("idempotency-key").as_ref() == Some(key) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Behaviour::RefuseKey(_) => StatusCode::OK,
            Behaviour::RefuseAll => StatusCode::UNPROCESSABLE_ENTITY,
            Behaviour::FailWhile(down) if down.load(Ordering::SeqCst) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Behaviour::FailWhile(_) => StatusCode::OK,
        }
    };
    inner.answered.lock().unwrap().push(Received {
        idempotency_key: header("idempotency-key"),
        content_type: header("content-type"),
        attempt: header(sign::ATTEMPT_HEADER),
        signature_valid,
        body: body.to_vec(),
        status: status.as_u16(),
        arrived_at,
    });
    (status, answer_headers)
}

/// A webhook with test-sized timings.
pub fn webhook(name: &str, url: &str, secret: &[u8]) -> Webhook {
    Webhook {
        name: name.into(),
        url: reqwest::Url::parse(url).unwrap(),
        secret: secret.to_vec(),
        timeout: Duration::from_millis(2000),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        max_age: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        filters: Filters::default(),
        nhs_number_key: None,
    }
}

/// An alert about a discharge summary at `site`.
pub fn alert(n: u32, kind: AlertKind, site: Option<&str>) -> Alert {
    let raised = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
    Alert {
        alert_id: format!("exp{n:04}:{}", kind.as_str()),
        kind,
        expectation_id: ExpectationId(format!("exp{n:04}")),
        document_kind: DocumentKind::DischargeSummary,
        encounter: AlertEncounter {
            id: Some(format!("V{n}")),
            kind: EncounterKind::Inpatient,
            ended_at: raised - chrono::Duration::hours(24),
            site: site.map(str::to_string),
            specialty: Some("300".into()),
        },
        patient: AlertPatient {
            nhs_number: Some(NHS_NUMBER.into()),
        },
        gp_practice: Some("A81001".into()),
        deadline: raised,
        raised_at: raised,
        rule: RuleRef {
            id: "discharge-summary-24h".into(),
            clause: "SC11.6".into(),
        },
        document: None,
        delay_seconds: None,
        failure: None,
    }
}

/// A SQLite store in a temporary directory.
pub struct TempStore {
    _dir: tempfile::TempDir,
    pub url: String,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tocsin.db").display());
        Self { _dir: dir, url }
    }

    pub fn open(&self) -> SharedStore {
        SharedStore::new(tocsin_store::open(&self.url).unwrap())
    }
}

/// Commits alerts with the deliveries the router plans for them, as the
/// pipeline does.
pub async fn commit_alerts(
    store: &SharedStore,
    router: &tocsin_delivery::Router,
    alerts: &[Alert],
) {
    let mut batch = Batch::default();
    for a in alerts {
        for d in router.plan(a).unwrap() {
            batch.push_delivery(d);
        }
        batch.alerts.push(a.clone());
    }
    store.call(move |s| s.commit(&batch)).await.unwrap();
}

/// The subscriber's delivery counts.
pub async fn counts(store: &SharedStore, subscriber: &str) -> DeliveryCounts {
    let name = subscriber.to_string();
    store.call(move |s| s.delivery_counts(&name)).await.unwrap()
}

/// Polls `cond` until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `tocsin_webhook_deliveries_total{subscriber,result}`.
pub fn delivered_metric(
    metrics: &tocsin_delivery::DeliveryMetrics,
    subscriber: &str,
    result: &str,
) -> u64 {
    metrics
        .webhook_deliveries
        .with_label_values(&[subscriber, result])
        .get()
}

/// What the workers logged, for the test to read.
#[derive(Clone, Default)]
pub struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    /// The log at info, as a gateway runs, until the guard is dropped: the
    /// workers are tasks of the test's one thread, so they log to it.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(log.clone())
                .finish(),
        );
        (log, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;
    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}
