//! The supervisor facing a broker that is not there: one clear line, then
//! quiet retries, no password anywhere, never giving up.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tocsin_amqp::{AmqpConfig, AmqpError, LinkState, SecretUrl, Supervisor};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn an_absent_broker_is_reported_once_then_retried_quietly() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tocsin_amqp=debug")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let port = closed_port();
    let mut config = AmqpConfig {
        url: SecretUrl::new(format!("amqp://guest:sekrit@127.0.0.1:{port}/%2f")),
        ..AmqpConfig::default()
    };
    config.reconnect.min_ms = 5;
    config.reconnect.max_ms = 20;
    let supervisor = Supervisor::new(config).unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let err = supervisor.try_connect().await.unwrap_err();
        assert!(matches!(err, AmqpError::Connect { .. }), "{err}");
        assert!(err.is_transient());
        assert!(!err.to_string().contains("sekrit"), "{err}");

        let attempts = |text: &str| text.matches("RabbitMQ connection attempt failed").count();
        let connecting = supervisor.connect();
        tokio::pin!(connecting);
        // Keep the retry loop running until it has retried quietly a few times.
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                tokio::select! {
                    _ = &mut connecting => panic!("connected to a closed port?"),
                    () = tokio::task::yield_now() => {}
                }
                if attempts(&logs.text()) >= 3 {
                    break;
                }
            }
        })
        .await;
        assert!(waited.is_ok(), "no retries seen:\n{}", logs.text());
    });
    assert_eq!(supervisor.state(), LinkState::Connecting);

    let text = logs.text();
    let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 1, "exactly one warning line:\n{text}");
    let line = warns[0];
    assert!(
        line.contains(&format!("amqp://guest:***@127.0.0.1:{port}/%2f")),
        "{line}"
    );
    assert!(line.contains("rabbitmq-server -detached"), "{line}");
    assert!(!text.contains("sekrit"), "password leaked:\n{text}");
}
