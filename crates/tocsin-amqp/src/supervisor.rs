//! The connection supervisor: connects with jittered backoff, declares the
//! topology on every (re)connection, tells readiness and metrics whether the
//! link is up, and never gives up on a broker that is away.

use crate::backoff::Backoff;
use crate::config::AmqpConfig;
use crate::consumer::BatchConsumer;
use crate::error::AmqpError;
use crate::publisher::Publisher;
use crate::topology::declare_topology;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties, Event};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a broker that stays unreachable is reported at warn level.
const STILL_DOWN_WARN_EVERY: Duration = Duration::from_secs(60);
/// How often the link watcher checks the connection status as a backstop
/// to the connection's error events.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// Longest wait for the broker to confirm a connection close. lapin's
/// close can wait for ever on a connection the broker has already let go
/// (seen once, in a benchmark's teardown, with the broker listing no
/// connection); the connection is dropped after it, which closes the
/// socket, and unacknowledged deliveries return to their queues all the same.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Whether tocsin has a usable link to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet since start.
    Connecting,
    /// Connected and the topology declared (or checked).
    Up,
    /// The link was lost; reconnecting.
    Down,
}

impl LinkState {
    /// 1 when up, 0 otherwise: the value of the `tocsin_amqp_connected` gauge.
    #[must_use]
    pub fn gauge(self) -> i64 {
        i64::from(self == LinkState::Up)
    }
}

/// How a session ended, as far as the reconnect policy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    /// It acknowledged something, or stayed up at least as long as the
    /// longest backoff delay: reconnect at once, backoff from the start.
    Healthy,
    /// It ended soon after connecting with nothing acknowledged: whatever
    /// ended it (a dead-letter queue refusing copies, basic.consume
    /// refused, a channel error at the first publish) will most likely
    /// end the next one the same way, so back off as for a failed attempt.
    Failed,
}

/// Judges a session that has ended. Staying up `healthy_after` (the
/// longest backoff delay) is enough on its own: a link lost after that is
/// not reconnected faster than the backoff would allow at its ceiling, and
/// an idle gateway acknowledges nothing yet is healthy.
fn session_end(acknowledged: bool, lived: Duration, healthy_after: Duration) -> SessionEnd {
    if acknowledged || lived >= healthy_after {
        SessionEnd::Healthy
    } else {
        SessionEnd::Failed
    }
}

/// The pause before the first attempt of [`Supervisor::connect`], given
/// how the previous session ended (`None`: the first connection, or no
/// session ended since the last one). A healthy end restarts the backoff;
/// a failed one takes its next delay, so sessions that fail at once are
/// spaced out like failed connection attempts, up to `max_ms`.
fn wait_before_connect(previous: Option<SessionEnd>, backoff: &mut Backoff) -> Duration {
    match previous {
        None => Duration::ZERO,
        Some(SessionEnd::Healthy) => {
            backoff.reset();
            Duration::ZERO
        }
        Some(SessionEnd::Failed) => backoff.next_delay(),
    }
}

/// The reconnect state shared by a supervisor and its sessions: one
/// backoff for connection attempts and sessions alike, reset only after a
/// healthy session, and how the last session ended.
#[derive(Debug)]
struct Retry {
    backoff: Backoff,
    ended: Option<SessionEnd>,
}

fn lock(retry: &Mutex<Retry>) -> std::sync::MutexGuard<'_, Retry> {
    retry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Owns the connection policy. Call [`Supervisor::connect`] at start and
/// again whenever a [`Session`] is lost.
pub struct Supervisor {
    config: Arc<AmqpConfig>,
    uri: AMQPUri,
    state: watch::Sender<LinkState>,
    generation: Arc<AtomicU64>,
    retry: Arc<Mutex<Retry>>,
}

/// By hand, not derived: the parsed URI holds the password in clear (the
/// URL's, or the one read from `password_file`), and lapin's `AMQPUri`
/// prints it in its `Debug`.
impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.config)
            .field("uri", &crate::config::redact_url(&self.uri.to_string()))
            .field("state", &*self.state.borrow())
            .field("generation", &self.generation.load(Ordering::SeqCst))
            .field("retry", &*lock(&self.retry))
            .finish()
    }
}

impl Supervisor {
    /// Validate the configuration (reading the password file) and prepare.
    pub fn new(config: AmqpConfig) -> Result<Self, AmqpError> {
        config.validate()?;
        let uri = config.connection_uri()?;
        let (state, _) = watch::channel(LinkState::Connecting);
        let retry = Retry {
            backoff: Backoff::new(config.reconnect.clone()),
            ended: None,
        };
        Ok(Self {
            config: Arc::new(config),
            uri,
            state,
            generation: Arc::new(AtomicU64::new(0)),
            retry: Arc::new(Mutex::new(retry)),
        })
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Follow the link state (readiness probe, `tocsin_amqp_connected`).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// The link state now.
    #[must_use]
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Connect, retrying with jittered exponential backoff until it works,
    /// then return the session. Never fails: an absent broker is reported
    /// once clearly (what was tried, how to start RabbitMQ), then quietly at
    /// debug level, with a warning every minute while it stays away.
    ///
    /// The backoff lives as long as the supervisor: when the previous
    /// session ended soon after connecting with nothing acknowledged, this
    /// first waits its next delay, so a session that fails at once (the
    /// dead-letter queue refusing every copy, say) is not reconnected in a
    /// tight loop. Only a healthy session (one that acknowledged input, or
    /// stayed up as long as `reconnect.max_ms`) starts the backoff over.
    pub async fn connect(&self) -> Session {
        let url = self.config.url.redacted();
        let pause = {
            let mut retry = lock(&self.retry);
            let previous = retry.ended.take();
            wait_before_connect(previous, &mut retry.backoff)
        };
        if !pause.is_zero() {
            tracing::debug!(
                wait_ms = pause.as_millis() as u64,
                "the last RabbitMQ session failed soon after connecting; waiting before reconnecting"
            );
            tokio::time::sleep(pause).await;
        }
        let mut waited = pause;
        let started = Instant::now();
        let mut attempts = 0u64;
        let mut last_warn: Option<Instant> = None;
        loop {
            attempts += 1;
            match self.try_connect().await {
                Ok(mut session) => {
                    session.waited = waited;
                    if attempts > 1 {
                        tracing::info!(
                            url = %url,
                            attempts,
                            waited_s = started.elapsed().as_secs(),
                            "connected to RabbitMQ"
                        );
                    } else {
                        tracing::info!(url = %url, "connected to RabbitMQ");
                    }
                    return session;
                }
                Err(error) => {
                    let delay = lock(&self.retry).backoff.next_delay();
                    waited += delay;
                    match last_warn {
                        None => {
                            tracing::warn!(
                                "cannot connect to RabbitMQ at {url} as connection '{}': {error}; {}; retrying in the background",
                                self.config.connection_name,
                                error.hint()
                            );
                            last_warn = Some(Instant::now());
                        }
                        Some(t) if t.elapsed() >= STILL_DOWN_WARN_EVERY => {
                            tracing::warn!(
                                "still cannot connect to RabbitMQ at {url} after {attempts} attempts over {}s: {error}",
                                started.elapsed().as_secs()
                            );
                            last_warn = Some(Instant::now());
                        }
                        Some(_) => tracing::debug!(
                            attempts,
                            retry_in_ms = delay.as_millis() as u64,
                            "RabbitMQ connection attempt failed: {error}"
                        ),
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt: connect (bounded by `connect_timeout_ms`), declare or
    /// check the topology, and start watching the link.
    pub async fn try_connect(&self) -> Result<Session, AmqpError> {
        let url = self.config.url.redacted();
        let props = ConnectionProperties::default()
            .with_connection_name(self.config.connection_name.as_str().into());
        let attempt = Connection::connect_uri(self.uri.clone(), props);
        let connection = match tokio::time::timeout(self.config.connect_timeout(), attempt).await {
            Ok(Ok(c)) => Arc::new(c),
            Ok(Err(e)) => {
                return Err(AmqpError::Connect {
                    url,
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                return Err(AmqpError::Connect {
                    url,
                    reason: format!("no answer within {} ms", self.config.connect_timeout_ms),
                });
            }
        };
        declare_topology(&connection, &self.config).await?;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (lost_tx, lost_rx) = watch::channel(false);
        let watcher = tokio::spawn(watch_link(
            Arc::clone(&connection),
            self.state.clone(),
            Arc::clone(&self.generation),
            generation,
            lost_tx,
            url,
        ));
        self.state.send_replace(LinkState::Up);
        Ok(Session {
            connection,
            config: Arc::clone(&self.config),
            lost: lost_rx,
            watcher,
            state: self.state.clone(),
            current: Arc::clone(&self.generation),
            generation,
            retry: Arc::clone(&self.retry),
            opened: Instant::now(),
            acknowledged: Arc::new(AtomicBool::new(false)),
            waited: Duration::ZERO,
        })
    }
}

/// Marks the link down (once) when the connection reports an error or its
/// status leaves `connected`; exits when the session is dropped.
async fn watch_link(
    connection: Arc<Connection>,
    state: watch::Sender<LinkState>,
    current: Arc<AtomicU64>,
    generation: u64,
    lost: watch::Sender<bool>,
    url: String,
) {
    let mut events = std::pin::pin!(connection.events_listener());
    let mut poll = tokio::time::interval(STATUS_POLL);
    let reason = loop {
        tokio::select! {
            event = std::future::poll_fn(|cx| futures_core::Stream::poll_next(events.as_mut(), cx)) => {
                match event {
                    Some(Event::Error(e)) => break e.to_string(),
                    Some(_) => {}
                    None => break "connection closed".to_owned(),
                }
            }
            _ = poll.tick() => {
                let status = connection.status();
                if !status.connected() {
                    let what = if status.closed() { "closed" } else if status.errored() { "failed" } else { "not connected" };
                    break format!("connection {what}");
                }
            }
        }
    };
    lost.send_replace(true);
    if current.load(Ordering::SeqCst) == generation {
        state.send_replace(LinkState::Down);
        tracing::warn!("lost connection to RabbitMQ at {url}: {reason}; reconnecting");
    }
}

/// One live connection with its topology declared. Open a consumer and
/// publishers from it; when [`Session::lost`] resolves (or an operation
/// fails with [`AmqpError::ConnectionLost`]) drop it and ask the supervisor
/// for a new one.
#[derive(Debug)]
pub struct Session {
    connection: Arc<Connection>,
    config: Arc<AmqpConfig>,
    lost: watch::Receiver<bool>,
    watcher: tokio::task::JoinHandle<()>,
    state: watch::Sender<LinkState>,
    current: Arc<AtomicU64>,
    generation: u64,
    /// Where the session says, when dropped, how it ended.
    retry: Arc<Mutex<Retry>>,
    opened: Instant,
    /// Set by its consumers once they acknowledge a delivery.
    acknowledged: Arc<AtomicBool>,
    waited: Duration,
}

impl Session {
    /// Start consuming the input queues. An acknowledgement through it marks
    /// the session healthy (see [`Supervisor::connect`]).
    pub async fn consumer(&self) -> Result<BatchConsumer, AmqpError> {
        let mut consumer = BatchConsumer::start(&self.connection, &self.config).await?;
        consumer.report_acks_to(Arc::clone(&self.acknowledged));
        Ok(consumer)
    }

    /// The input queues other consumers hold, with how many: asked before
    /// [`Session::consumer`], so that a gateway does not consume while its
    /// previous connection, not yet seen dead by the broker, holds the head
    /// of the backlog unacknowledged.
    pub async fn input_consumers(&self) -> Result<Vec<(String, u32)>, AmqpError> {
        crate::topology::input_consumers(&self.connection, &self.config).await
    }

    /// How long [`Supervisor::connect`] backed off before this session
    /// (pauses and delays between failed attempts; zero for the first
    /// session and after a healthy one): the reconnect policy as it acted,
    /// for tests and diagnostics, without timing it from outside.
    #[must_use]
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Open a confirm-mode publisher.
    pub async fn publisher(&self) -> Result<Publisher, AmqpError> {
        Publisher::open(&self.connection).await
    }

    /// The underlying connection (for tools such as the null clients).
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// True until the link is seen to be lost.
    #[must_use]
    pub fn is_open(&self) -> bool {
        !*self.lost.borrow() && self.connection.status().connected()
    }

    /// Resolves once the link is lost.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        // An error means the watcher ended, which only happens once lost.
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Close the connection cleanly (shutdown). Unacknowledged deliveries
    /// return to their queues.
    pub async fn close(self) -> Result<(), AmqpError> {
        self.watcher.abort();
        if self.current.load(Ordering::SeqCst) == self.generation {
            self.state.send_replace(LinkState::Down);
        }
        let closing = self.connection.close(200, "tocsin shutting down".into());
        match tokio::time::timeout(CLOSE_WAIT, closing).await {
            Ok(Ok(())) => Ok(()),
            // lapin reports channels dropped just before as errors, though
            // the connection closes all the same.
            Ok(Err(_)) if !self.connection.status().connected() => Ok(()),
            Ok(Err(e)) => Err(AmqpError::from_lapin("connection.close", &e)),
            Err(_) => {
                tracing::debug!(
                    waited_secs = CLOSE_WAIT.as_secs(),
                    "the broker did not confirm the connection close; dropping it"
                );
                Ok(())
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.watcher.abort();
        let end = session_end(
            self.acknowledged.load(Ordering::SeqCst),
            self.opened.elapsed(),
            Duration::from_millis(self.config.reconnect.max_ms),
        );
        lock(&self.retry).ended = Some(end);
        // A session dropped after an operation failed (before the watcher
        // saw the loss) must not leave the link reported up while the
        // supervisor reconnects.
        if self.current.load(Ordering::SeqCst) == self.generation {
            self.state.send_replace(LinkState::Down);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::BackoffConfig;
    use crate::config::SecretUrl;

    #[test]
    fn sessions_that_fail_at_once_back_off_and_a_healthy_one_starts_over() {
        let mut backoff = Backoff::new(BackoffConfig {
            min_ms: 100,
            max_ms: 1000,
            jitter: 0.0,
        });
        let ms = |d: Duration| d.as_millis() as u64;
        let failed = Some(SessionEnd::Failed);
        assert_eq!(ms(wait_before_connect(None, &mut backoff)), 0, "first");
        let waits: Vec<u64> = (0..6)
            .map(|_| ms(wait_before_connect(failed, &mut backoff)))
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        // A failed connection attempt continues the same sequence.
        assert_eq!(ms(backoff.next_delay()), 1000);
        let healthy = Some(SessionEnd::Healthy);
        assert_eq!(ms(wait_before_connect(healthy, &mut backoff)), 0);
        assert_eq!(ms(wait_before_connect(failed, &mut backoff)), 100);
        // No session ended since the last connect: nothing to wait for.
        assert_eq!(ms(wait_before_connect(None, &mut backoff)), 0);
        assert_eq!(ms(wait_before_connect(failed, &mut backoff)), 200);
    }

    #[test]
    fn a_session_is_healthy_once_it_acknowledged_or_lasted() {
        let max = Duration::from_secs(30);
        let short = Duration::from_millis(5);
        assert_eq!(session_end(false, short, max), SessionEnd::Failed);
        assert_eq!(session_end(true, short, max), SessionEnd::Healthy);
        assert_eq!(session_end(false, max, max), SessionEnd::Healthy);
        assert_eq!(
            session_end(false, max - Duration::from_millis(1), max),
            SessionEnd::Failed
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = AmqpConfig {
            url: SecretUrl::new("amqp://tocsin:pa%2Fss%40word@broker.nhs.example:5671/trust"),
            ..AmqpConfig::default()
        };
        let shown = format!("{:?}", Supervisor::new(config).unwrap());
        assert!(shown.contains("broker.nhs.example"), "{shown}");
        assert!(shown.contains("tocsin:***@"), "{shown}");
        for secret in ["pa%2Fss%40word", "pa/ss@word", "pa%2Fss", "ss@word"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }

        // The password from a file never came from the URL: still hidden.
        let dir = std::env::temp_dir().join(format!("tocsin-sup-debug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "from-the-file\n").unwrap();
        let config = AmqpConfig {
            password_file: Some(path),
            ..AmqpConfig::default()
        };
        let shown = format!("{:?}", Supervisor::new(config).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!shown.contains("from-the-file"), "{shown}");
        assert!(!shown.contains("guest:guest"), "{shown}");
    }
}
