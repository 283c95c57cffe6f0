//! Helpers for integration tests against the real local RabbitMQ: a
//! throwaway vhost per test (never `/`), and a guard that restarts the
//! broker application however a broker-restart test ends.
//!
//! They shell out to `rabbitmqctl` and panic with a clear message when it
//! fails: a test that cannot reach the broker must fail, not skip.

use crate::config::{AmqpConfig, SecretUrl};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The broker tests use; override with `TOCSIN_TEST_AMQP_HOST` (host:port).
fn broker_host() -> String {
    std::env::var("TOCSIN_TEST_AMQP_HOST").unwrap_or_else(|_| "127.0.0.1:5672".to_owned())
}

/// Run `rabbitmqctl` with `args`, panicking with its output on failure.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run rabbitmqctl {args:?}: {e} (is RabbitMQ installed?)")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed ({}): {}{}\nIs RabbitMQ running? Start it with `rabbitmq-server -detached`.",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A vhost created for one test, with full permissions for `guest`, and
/// deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
}

impl TestVhost {
    /// Create a uniquely named vhost; `label` makes it recognisable in
    /// `rabbitmqctl list_vhosts` should a crashed test leave it behind.
    #[must_use]
    pub fn create(label: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "tocsin-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        assert!(!name.is_empty() && name != "/");
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Self { name };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    /// The vhost's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A guest URL for this vhost (the name needs no escaping).
    #[must_use]
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/{}", broker_host(), self.name)
    }

    /// The default configuration pointed at this vhost, with quick
    /// reconnects so tests do not wait long.
    #[must_use]
    pub fn config(&self) -> AmqpConfig {
        let mut config = AmqpConfig {
            url: SecretUrl::new(self.url()),
            connection_name: format!("tocsin-test-{}", self.name),
            ..AmqpConfig::default()
        };
        config.reconnect.min_ms = 50;
        config.reconnect.max_ms = 500;
        config
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let out = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: could not delete test vhost {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("warning: could not delete test vhost {}: {e}", self.name),
        }
    }
}

/// Stops the whole local broker application (`rabbitmqctl stop_app`) and
/// starts it again when dropped, even if the test panics. This affects every
/// user of the broker: keep such tests short and in a test binary of their own.
#[derive(Debug)]
pub struct BrokerStopped {
    started: bool,
}

impl BrokerStopped {
    /// Stop the broker application.
    #[must_use]
    pub fn stop() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self { started: false }
    }

    /// Start it again and wait until it is fully up.
    pub fn start(&mut self) {
        if !self.started {
            rabbitmqctl(&["start_app"]);
            rabbitmqctl(&["await_startup"]);
            self.started = true;
        }
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if !self.started {
            let _ = Command::new("rabbitmqctl").arg("start_app").status();
            let _ = Command::new("rabbitmqctl").arg("await_startup").status();
            self.started = true;
        }
    }
}
