//! Harness for the gateway tests: the real `tocsin` binary as a child
//! process, against the real RabbitMQ (a vhost of the test's own) and a real
//! store (a temporary SQLite file, or a PostgreSQL database of the test's
//! own), with observer queues bound to the events and alerts exchanges.
//!
//! Nothing here sleeps in place of synchronisation: every wait polls the
//! state it waits on (queue depth, `/readyz`, rows in the store, messages
//! on a queue) until a bounded deadline, and fails with what it saw.
#![allow(dead_code)]

pub mod accounting;
pub mod store;
pub mod traffic;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use tocsin_amqp::test_support::TestVhost;
use tocsin_amqp::{AmqpConfig, OutgoingMessage, Publisher, Session, Supervisor};

pub use store::TestStore;

/// Upper bound on any single wait: a broken test fails, never hangs.
pub const WAIT: Duration = Duration::from_secs(60);
/// How often a poll loop looks again at the state it waits on.
pub const POLL: Duration = Duration::from_millis(20);

/// The repository root (for `config/` and `tests/fixtures/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture file's bytes, by path under `tests/fixtures/`.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = repo().join("tests/fixtures").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Polls `check` until it returns `Some`, or panics after `limit` with
/// `what` and the last state `describe` reports.
pub async fn poll<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Serialises the tests that stop the whole local broker against those that
/// merely use it: a file lock in the temporary directory, shared by the
/// ordinary tests and taken exclusively by the broker-restart test, so it
/// holds across test binaries and concurrent `cargo test` runs.
pub struct BrokerLock(File);

impl BrokerLock {
    fn file() -> File {
        let path = std::env::temp_dir().join("tocsin-gateway-tests-broker.lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("lock file {}: {e}", path.display()))
    }

    /// For a test that uses the broker and must not see it stopped.
    pub fn shared() -> Self {
        let f = Self::file();
        f.lock_shared().expect("shared broker lock");
        Self(f)
    }

    /// For the test that stops the broker.
    pub fn exclusive() -> Self {
        let f = Self::file();
        f.lock().expect("exclusive broker lock");
        Self(f)
    }
}

/// A free TCP port on loopback (bound and released; the gateway binds it
/// again straight after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Batching and timing settings written into the test's configuration.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// `[amqp] prefetch`.
    pub prefetch: u16,
    /// `[amqp] batch_size`.
    pub batch_size: usize,
    /// `[amqp] flush_interval_ms`.
    pub flush_interval_ms: u64,
    /// `[gateway] shutdown_timeout_secs`.
    pub shutdown_timeout_secs: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            prefetch: 1000,
            batch_size: 500,
            flush_interval_ms: 20,
            shutdown_timeout_secs: 10,
        }
    }
}

/// One test's world: a vhost, a store, a working directory with the
/// configuration, an HTTP port, and a client session for the test itself.
pub struct World {
    pub vhost: TestVhost,
    pub store: TestStore,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub config_path: PathBuf,
    pub session: Session,
    pub publisher: Publisher,
    _lock: Option<BrokerLock>,
}

impl World {
    /// Waits until at least `n` inputs are committed in the store; returns
    /// how many are. Fails if the gateway exits first or the wait runs out.
    pub async fn committed_at_least(&self, gateway: &mut Gateway, n: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(exit) = gateway.try_exit() {
                panic!("gateway exited early ({exit})\n{}", gateway.log());
            }
            let c = self.store.count("inputs").await;
            if c >= n {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} inputs committed; {c} are\n{}",
                gateway.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// A world with a SQLite store, holding the shared broker lock.
    pub async fn sqlite(label: &str, tuning: Tuning) -> Self {
        Self::new(label, tuning, false, Some(BrokerLock::shared())).await
    }

    /// A world with a PostgreSQL database of its own.
    pub async fn postgres(label: &str, tuning: Tuning) -> Self {
        Self::new(label, tuning, true, Some(BrokerLock::shared())).await
    }

    /// A world whose caller holds (or does not need) the broker lock.
    pub async fn new(label: &str, tuning: Tuning, pg: bool, lock: Option<BrokerLock>) -> Self {
        let vhost = TestVhost::create(label);
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = if pg {
            TestStore::postgres().await
        } else {
            TestStore::sqlite(dir.path())
        };
        let config_path = dir.path().join("tocsin.toml");
        write_config(&config_path, &tuning);
        let session = connect(&vhost.config()).await;
        let publisher = session.publisher().await.expect("test publisher");
        Self {
            vhost,
            store,
            port: free_port(),
            config_path,
            dir,
            session,
            publisher,
            _lock: lock,
        }
    }

    /// The gateway's environment for this world.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TOCSIN_AMQP_URL".into(), self.vhost.url()),
            ("TOCSIN_STORE_URL".into(), self.store.url()),
            (
                "TOCSIN_HTTP_ADDR".into(),
                format!("127.0.0.1:{}", self.port),
            ),
            // One message per event, which these tests count by message
            // id; tests/gateway_event_batches.rs covers the NDJSON default.
            ("TOCSIN_EVENTS_FORMAT".into(), "single".into()),
        ]
    }

    /// Appends `text` (whole TOML tables) to this world's configuration,
    /// before the gateway is started.
    pub fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(&self.config_path).expect("test configuration");
        config.push('\n');
        config.push_str(text);
        std::fs::write(&self.config_path, config).expect("write test configuration");
    }

    /// Starts the gateway with this world's environment plus `extra`.
    pub fn start(&self, extra: &[(&str, &str)]) -> Gateway {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Gateway::start(&self.config_path, self.dir.path(), self.port, &env)
    }

    /// Binds a fresh durable queue to `exchange` with `#`, to observe what
    /// the gateway publishes there. The topology is declared already (the
    /// test's own session declared it).
    pub async fn observe(&self, exchange: &str) -> Observer {
        let queue = format!("test.observe.{exchange}");
        let ch = self
            .session
            .connection()
            .create_channel()
            .await
            .expect("channel");
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare observer queue");
        ch.queue_bind(
            queue.as_str().into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind observer queue");
        Observer {
            queue,
            channel: ch,
            seen: Vec::new(),
        }
    }

    /// A new client session, after the broker dropped the old one.
    pub async fn reconnect(&mut self) {
        self.session = connect(&self.vhost.config()).await;
        self.publisher = self.session.publisher().await.expect("test publisher");
    }

    /// Reads an existing queue (such as `tocsin.dead`).
    pub async fn reader(&self, queue: &str) -> Observer {
        reader_on(&self.session, queue).await
    }

    /// Publishes input messages with confirms.
    pub async fn publish(&self, messages: &[OutgoingMessage]) {
        for chunk in messages.chunks(1000) {
            self.publisher
                .publish_confirmed(chunk)
                .await
                .expect("publish inputs with confirms");
        }
    }

    /// Ready messages in `queue`.
    pub async fn depth(&self, queue: &str) -> u32 {
        depth(self.session.connection(), queue).await
    }

    /// Waits until `queue` holds no ready message.
    pub async fn wait_empty(&self, queue: &str) {
        poll(&format!("{queue} to be empty"), WAIT, || async {
            match self.depth(queue).await {
                0 => Ok(()),
                n => Err(format!("{n} ready")),
            }
        })
        .await;
    }
}

/// Reads an existing queue over `session` (a new one after a broker restart).
pub async fn reader_on(session: &Session, queue: &str) -> Observer {
    let channel = session
        .connection()
        .create_channel()
        .await
        .expect("channel");
    Observer {
        queue: queue.to_owned(),
        channel,
        seen: Vec::new(),
    }
}

/// Connects a test client (declaring the topology, as the gateway would).
pub async fn connect(config: &AmqpConfig) -> Session {
    let supervisor = Supervisor::new(config.clone()).expect("test supervisor");
    supervisor.try_connect().await.unwrap_or_else(|e| {
        panic!(
            "RabbitMQ is unreachable ({e}); these tests need it on 127.0.0.1:5672 and do not skip"
        )
    })
}

/// Ready messages in `queue` (passive declare on a channel of its own).
pub async fn depth(connection: &lapin::Connection, queue: &str) -> u32 {
    tocsin_amqp::queue_depth(connection, queue)
        .await
        .unwrap_or_else(|e| panic!("queue {queue} should exist: {e}"))
}

fn write_config(path: &Path, t: &Tuning) {
    let config = repo().join("config");
    let text = format!(
        r#"mappings = "{mappings}"
policy = "{policy}"

[amqp]
prefetch = {prefetch}
batch_size = {batch}
flush_interval_ms = {flush}
connect_timeout_ms = 2000
dead_letter_check_secs = 1

[amqp.reconnect]
min_ms = 50
max_ms = 500

[gateway]
shutdown_timeout_secs = {grace}

[log]
level = "info"
format = "json"
"#,
        mappings = config.join("mappings.toml").display(),
        policy = config.join("policies/nhs-standard-contract.toml").display(),
        prefetch = t.prefetch,
        batch = t.batch_size,
        flush = t.flush_interval_ms,
        grace = t.shutdown_timeout_secs,
    );
    std::fs::write(path, text).expect("write test configuration");
}

/// One message taken from an observer queue.
#[derive(Debug, Clone)]
pub struct Seen {
    pub routing_key: String,
    pub message_id: String,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Delivered before and returned to the queue unacknowledged.
    pub redelivered: bool,
}

impl Seen {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "message {} on {} is not JSON: {e}",
                self.message_id, self.routing_key
            )
        })
    }
}

fn header_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

/// A queue bound to one of the gateway's exchanges.
pub struct Observer {
    pub queue: String,
    channel: lapin::Channel,
    /// Everything taken so far, in arrival order.
    pub seen: Vec<Seen>,
}

impl Observer {
    /// Takes whatever is in the queue now (until it is empty), appending to
    /// [`Observer::seen`]; returns how many were taken.
    pub async fn take(&mut self) -> usize {
        let mut n = 0;
        while let Some(m) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get on the observer queue")
        {
            let d = m.delivery;
            let p = &d.properties;
            let headers = p
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), header_text(v)))
                        .collect()
                })
                .unwrap_or_default();
            self.seen.push(Seen {
                routing_key: d.routing_key.as_str().to_owned(),
                message_id: p
                    .message_id()
                    .as_ref()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                content_type: p
                    .content_type()
                    .as_ref()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                headers,
                redelivered: d.redelivered,
                body: d.data,
            });
            n += 1;
        }
        n
    }

    /// Takes messages until `done` holds for everything seen so far.
    pub async fn until(&mut self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.take().await;
            if done(&self.seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {} for {what}; seen: {:?}",
                self.queue,
                self.seen
                    .iter()
                    .map(|s| (&s.routing_key, &s.message_id))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Message ids seen more than once, with their counts.
    pub fn duplicates(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in &self.seen {
            *counts.entry(s.message_id.clone()).or_default() += 1;
        }
        counts.retain(|_, n| *n > 1);
        counts
    }

    /// Empties the queue and forgets what was seen.
    pub async fn purge(&mut self) {
        self.channel
            .queue_purge(self.queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .expect("purge observer queue");
        self.seen.clear();
    }
}

/// An input message for the default exchange's route to `tocsin.inbound`.
pub fn input(message_id: &str, content_type: Option<&str>, body: Vec<u8>) -> OutgoingMessage {
    OutgoingMessage {
        exchange: String::new(),
        routing_key: "tocsin.inbound".into(),
        message_id: message_id.into(),
        content_type: content_type.map(str::to_owned),
        body,
        headers: None,
        mandatory: true,
    }
}

/// The HL7 v2 content type.
pub const HL7: &str = "x-application/hl7-v2+er7";
/// The FHIR JSON content type.
pub const FHIR: &str = "application/fhir+json";

/// The gateway as a child process. Dropping it kills it (SIGKILL).
pub struct Gateway {
    child: Child,
    port: u16,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Starts `tocsin run` with `env`, logging JSON to a file in `dir`.
    pub fn start(config: &Path, dir: &Path, port: u16, env: &[(String, String)]) -> Self {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("gateway-{n}.log"));
        let out = File::create(&log).expect("gateway log file");
        let err = out.try_clone().expect("gateway log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsin"));
        cmd.arg("--config")
            .arg(config)
            .arg("run")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, _) in std::env::vars() {
            if k.starts_with("TOCSIN_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start tocsin run");
        Self {
            child,
            port,
            log,
            exit: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP status of `GET path`, or `None` when nothing answers.
    pub fn get(&self, path: &str) -> Option<u16> {
        self.fetch(path).map(|(status, _)| status)
    }

    /// The HTTP status and body of `GET path`.
    pub fn fetch(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    }

    /// Waits until `GET path` answers `status`.
    pub async fn wait_status(&mut self, path: &str, status: u16) {
        let what = format!("{path} to answer {status}");
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.get(path);
            if got == Some(status) {
                return;
            }
            if let Some(exit) = self.try_exit() {
                panic!(
                    "gateway exited ({exit}) while waiting for {what}\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (last {got:?})\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the gateway reports ready.
    pub async fn wait_ready(&mut self) {
        self.wait_status("/readyz", 200).await;
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {}", self.pid());
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.exit = Some(self.child.wait().expect("wait for killed gateway"));
    }

    /// Waits for the process to exit, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_exit() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running {limit:?} later\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log lines as JSON objects (non-JSON lines are skipped).
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines whose message contains `text`.
    pub fn log_messages(&self, text: &str) -> Vec<serde_json::Value> {
        self.log_json()
            .into_iter()
            .filter(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text))
            })
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- gateway log {} ---\n{}", self.log.display(), self.log());
        }
    }
}
