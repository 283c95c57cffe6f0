//! The `[amqp]` configuration section: where the broker is, which queues and
//! exchanges tocsin uses, and how it batches and reconnects. Every field has
//! a default so an empty section works against a local RabbitMQ.

use crate::backoff::BackoffConfig;
use crate::error::AmqpError;
use lapin::uri::AMQPUri;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The default broker URL: a local RabbitMQ, default vhost, guest account.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A broker URL that may hold a password: it prints redacted everywhere
/// (`Display` and `Debug`) and only [`SecretUrl::expose`] gives the text.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wrap a URL.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: pass it to the client, never to a log.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl Default for SecretUrl {
    fn default() -> Self {
        Self(DEFAULT_URL.to_owned())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted())
    }
}

/// Mask the password in a URL's user-info. Text that is not a URL at all is
/// replaced whole, since it could be anything, a password included.
///
/// The user-info runs from `://` to the LAST `@`, not to the first `/`, `?`
/// or `#`: an unencoded password may hold any of them (a base64 one often
/// has `/`), and cutting there would leave it whole in the output. The
/// password runs from the first `:` after the user name to that `@`. A user
/// name that itself holds `/`, `?` or `#` cannot be told apart from the
/// host, so the whole user-info is masked then. An `@` further on (in a
/// query value) only makes this mask more than the user-info. The store's
/// `tocsin_store::redact_url` cuts the user-info the same way; keep them
/// alike.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<not a URL>".to_owned();
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        // A user name alone: no password to hide.
        return url.to_owned();
    };
    let mut out = url.to_owned();
    if rest[..colon].contains(['/', '?', '#']) {
        out.replace_range(start..start + at, "***");
    } else {
        out.replace_range(start + colon + 1..start + at, "***");
    }
    out
}

/// A binding of one of tocsin's input queues to an exchange owned by the
/// integration engine (`[[amqp.bindings]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// The integration engine's exchange; it must already exist.
    pub exchange: String,
    /// The routing key (pattern, for a topic exchange); default `#`.
    #[serde(default = "default_binding_key")]
    pub routing_key: String,
    /// The queue to bind; default the input queue.
    #[serde(default)]
    pub queue: Option<String>,
}

fn default_binding_key() -> String {
    "#".to_owned()
}

/// The `[amqp]` section.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// Broker URL (`TOCSIN_AMQP_URL` overrides it in the binary).
    pub url: SecretUrl,
    /// A file holding the broker password; replaces the URL's password.
    pub password_file: Option<PathBuf>,
    /// Only check that the topology exists, declare nothing (for brokers
    /// where tocsin has no configure permission).
    pub passive: bool,
    /// Connection name shown in the RabbitMQ management UI.
    pub connection_name: String,
    /// The input queue (durable quorum queue).
    pub input_queue: String,
    /// Further input queues, declared like the input queue and consumed too.
    pub extra_input_queues: Vec<String>,
    /// Where rejected input goes, unchanged (durable queue).
    pub dead_letter_queue: String,
    /// How often, in seconds, the gateway counts the messages waiting in
    /// the dead-letter queue (`tocsin_dead_letters`) while connected.
    pub dead_letter_check_secs: u64,
    /// Topic exchange for normalised interface events.
    pub events_exchange: String,
    /// Topic exchange for alerts.
    pub alerts_exchange: String,
    /// Deliveries of one message (first one included) before the broker
    /// dead-letters it (`x-delivery-limit` on the input queues).
    pub delivery_limit: u32,
    /// Bindings of the input queues to the integration engine's exchanges.
    pub bindings: Vec<BindingConfig>,
    /// Unacknowledged messages the broker may push ahead, per input queue
    /// (basic.qos). The default, four batches, holds one batch committing,
    /// one being processed and two arriving, so that the pipeline never
    /// waits for the broker to start sending after an acknowledgement (at
    /// two batches that wait was 40 % of a backlog drain; docs/performance.md,
    /// "Seventh session"). `batch_size` may not exceed it.
    pub prefetch: u16,
    /// Most messages committed together.
    pub batch_size: usize,
    /// Longest wait, in milliseconds, for a batch to fill before committing it.
    pub flush_interval_ms: u64,
    /// Give up one connection attempt after this many milliseconds.
    pub connect_timeout_ms: u64,
    /// Reconnect backoff.
    pub reconnect: BackoffConfig,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::default(),
            password_file: None,
            passive: false,
            connection_name: "tocsin".to_owned(),
            input_queue: "tocsin.inbound".to_owned(),
            extra_input_queues: Vec::new(),
            dead_letter_queue: "tocsin.dead".to_owned(),
            dead_letter_check_secs: 60,
            events_exchange: "tocsin.events".to_owned(),
            alerts_exchange: "tocsin.alerts".to_owned(),
            delivery_limit: 5,
            bindings: Vec::new(),
            prefetch: 2000,
            batch_size: 500,
            flush_interval_ms: 20,
            connect_timeout_ms: 10_000,
            reconnect: BackoffConfig::default(),
        }
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &self.url)
            .field("password_file", &self.password_file)
            .field("passive", &self.passive)
            .field("connection_name", &self.connection_name)
            .field("input_queue", &self.input_queue)
            .field("extra_input_queues", &self.extra_input_queues)
            .field("dead_letter_queue", &self.dead_letter_queue)
            .field("dead_letter_check_secs", &self.dead_letter_check_secs)
            .field("events_exchange", &self.events_exchange)
            .field("alerts_exchange", &self.alerts_exchange)
            .field("delivery_limit", &self.delivery_limit)
            .field("bindings", &self.bindings)
            .field("prefetch", &self.prefetch)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

impl AmqpConfig {
    /// Check values, naming the first bad key. The URL and password file
    /// are checked too (the file is read), so `check-config` catches them.
    pub fn validate(&self) -> Result<(), AmqpError> {
        let bad = |m: String| Err(AmqpError::InvalidConfig(m));
        for (key, name) in [
            ("input_queue", &self.input_queue),
            ("dead_letter_queue", &self.dead_letter_queue),
            ("events_exchange", &self.events_exchange),
            ("alerts_exchange", &self.alerts_exchange),
        ] {
            if name.trim().is_empty() {
                return bad(format!("{key} must not be empty"));
            }
        }
        if self.input_queues().any(|q| q == self.dead_letter_queue) {
            return bad(format!(
                "dead_letter_queue '{}' must differ from the input queues",
                self.dead_letter_queue
            ));
        }
        if self.extra_input_queues.iter().any(|q| q.trim().is_empty()) {
            return bad("extra_input_queues holds an empty name".into());
        }
        if self.delivery_limit == 0 {
            return bad("delivery_limit must be at least 1".into());
        }
        if self.dead_letter_check_secs == 0 {
            return bad("dead_letter_check_secs must be at least 1".into());
        }
        if self.prefetch == 0 {
            return bad("prefetch must be at least 1 (0 would mean unlimited)".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.batch_size > usize::from(self.prefetch) {
            return bad(format!(
                "batch_size ({}) cannot exceed prefetch ({}): a batch could never fill",
                self.batch_size, self.prefetch
            ));
        }
        if self.flush_interval_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("flush_interval_ms and connect_timeout_ms must be at least 1".into());
        }
        for (i, b) in self.bindings.iter().enumerate() {
            if b.exchange.is_empty() {
                return bad(format!(
                    "bindings[{i}].exchange must name the integration engine's exchange"
                ));
            }
            if let Some(q) = &b.queue
                && !self.input_queues().any(|iq| iq == q)
            {
                return bad(format!(
                    "bindings[{i}].queue '{q}' is not one of the input queues"
                ));
            }
        }
        self.reconnect
            .validate()
            .map_err(AmqpError::InvalidConfig)?;
        self.connection_uri().map(|_| ())
    }

    /// The input queue followed by the extra input queues.
    pub fn input_queues(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.input_queue.as_str())
            .chain(self.extra_input_queues.iter().map(String::as_str))
    }

    /// The flush interval as a duration.
    #[must_use]
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// The connection attempt timeout as a duration.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The parsed URL with the password from `password_file` applied.
    pub fn connection_uri(&self) -> Result<AMQPUri, AmqpError> {
        let raw = self.url.expose();
        let redacted = self.url.redacted();
        let mut uri = AMQPUri::from_str(raw).map_err(|reason| AmqpError::InvalidUrl {
            url: redacted.clone(),
            // The parser may quote the URL back; never let the password through.
            reason: reason.replace(raw, &redacted),
        })?;
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| AmqpError::PasswordFile {
                path: path.clone(),
                source,
            })?;
            uri.authority.userinfo.password = text.trim_end_matches(['\r', '\n']).to_owned();
        }
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let url = SecretUrl::new("amqp://tocsin:s3cr3t@broker.nhs.example:5671/trust");
        assert_eq!(
            url.to_string(),
            "amqp://tocsin:***@broker.nhs.example:5671/trust"
        );
        assert!(!format!("{url:?}").contains("s3cr3t"));
        let cfg = AmqpConfig {
            url,
            ..AmqpConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        assert_eq!(redact_url("s3cr3t"), "<not a URL>");
        assert_eq!(
            redact_url("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://a:b@c@h/v"), "amqp://a:***@h/v");
        assert_eq!(redact_url("amqp://tocsin@h/v"), "amqp://tocsin@h/v");
        assert_eq!(redact_url("amqp://h:5672/v"), "amqp://h:5672/v");
    }

    /// An unencoded `/`, `?`, `#` or `@` in the password: the user-info
    /// still ends at the last `@`, so the password is masked whole, and a
    /// URL the parser then refuses is reported without it.
    #[test]
    fn reserved_characters_in_the_password_are_masked_too() {
        for (url, shown) in [
            (
                "amqp://tocsin:ab/cd@rabbit/trust",
                "amqp://tocsin:***@rabbit/trust",
            ),
            (
                "amqp://tocsin:ab?cd@rabbit:5672/trust",
                "amqp://tocsin:***@rabbit:5672/trust",
            ),
            (
                "amqp://tocsin:ab#cd@rabbit/trust",
                "amqp://tocsin:***@rabbit/trust",
            ),
            (
                "amqps://tocsin:ab@cd@rabbit/trust?heartbeat=10",
                "amqps://tocsin:***@rabbit/trust?heartbeat=10",
            ),
            (
                "amqp://tocsin:/?#@:x@rabbit/trust",
                "amqp://tocsin:***@rabbit/trust",
            ),
            // A user name with `/` cannot be told from a host: all goes.
            (
                "amqp://to/csin:abcd@rabbit/trust",
                "amqp://***@rabbit/trust",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let cfg = AmqpConfig {
                url: SecretUrl::new(url),
                ..AmqpConfig::default()
            };
            assert!(!format!("{cfg:?}").contains("cd@"), "{url}");
            if let Err(e) = cfg.connection_uri() {
                let msg = e.to_string();
                assert!(!msg.contains("ab/cd") && !msg.contains("abcd"), "{msg}");
                assert!(!msg.contains("ab?cd") && !msg.contains("ab#cd"), "{msg}");
            }
        }
        // The review's case fails to parse: the error names the URL masked.
        let cfg = AmqpConfig {
            url: SecretUrl::new("amqp://tocsin:ab/cd@rabbit/trust"),
            ..AmqpConfig::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("amqp://tocsin:***@rabbit/trust"), "{msg}");
        assert!(!msg.contains("ab/cd"), "{msg}");
    }

    #[test]
    fn an_empty_section_gives_the_documented_defaults() {
        let cfg: AmqpConfig = toml::from_str("").unwrap();
        assert_eq!(cfg.url.expose(), DEFAULT_URL);
        assert_eq!(cfg.input_queue, "tocsin.inbound");
        assert_eq!(cfg.dead_letter_queue, "tocsin.dead");
        assert_eq!(cfg.events_exchange, "tocsin.events");
        assert_eq!(cfg.alerts_exchange, "tocsin.alerts");
        assert_eq!(cfg.prefetch, 2000);
        assert!(!cfg.passive);
        cfg.validate().unwrap();
    }

    #[test]
    fn a_full_section_parses() {
        let cfg: AmqpConfig = toml::from_str(
            r#"
            url = "amqp://tocsin:pw@rabbit:5672/trust"
            passive = true
            extra_input_queues = ["tocsin.itk"]
            delivery_limit = 3
            prefetch = 200
            batch_size = 100
            flush_interval_ms = 5
            [reconnect]
            min_ms = 50
            max_ms = 5000
            jitter = 0.2
            [[bindings]]
            exchange = "engine.adt"
            routing_key = "ADT.#"
            [[bindings]]
            exchange = "engine.itk"
            queue = "tocsin.itk"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.bindings[1].routing_key, "#");
        assert_eq!(
            cfg.input_queues().collect::<Vec<_>>(),
            ["tocsin.inbound", "tocsin.itk"]
        );
        assert_eq!(cfg.reconnect.min_ms, 50);
    }

    #[test]
    fn typos_and_bad_values_are_rejected_with_the_key() {
        assert!(toml::from_str::<AmqpConfig>("prefetsh = 5").is_err());
        let bad = |c: AmqpConfig| c.validate().unwrap_err().to_string();
        let d = AmqpConfig::default;
        assert!(bad(AmqpConfig { prefetch: 0, ..d() }).contains("prefetch"));
        assert!(
            bad(AmqpConfig {
                batch_size: 2001,
                ..d()
            })
            .contains("batch_size")
        );
        assert!(
            bad(AmqpConfig {
                delivery_limit: 0,
                ..d()
            })
            .contains("delivery_limit")
        );
        assert!(
            bad(AmqpConfig {
                dead_letter_queue: "tocsin.inbound".into(),
                ..d()
            })
            .contains("dead_letter_queue")
        );
        assert!(
            bad(AmqpConfig {
                bindings: vec![BindingConfig {
                    exchange: "x".into(),
                    routing_key: "#".into(),
                    queue: Some("elsewhere".into()),
                }],
                ..d()
            })
            .contains("bindings[0].queue")
        );
    }

    #[test]
    fn bad_urls_are_reported_redacted() {
        let cfg = AmqpConfig {
            url: SecretUrl::new("http://u:hunter2@host/"),
            ..AmqpConfig::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("invalid AMQP URL"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn the_password_file_replaces_the_url_password() {
        let dir = std::env::temp_dir().join(format!("tocsin-amqp-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let cfg = AmqpConfig {
            password_file: Some(path.clone()),
            ..AmqpConfig::default()
        };
        assert_eq!(
            cfg.connection_uri().unwrap().authority.userinfo.password,
            "from-file"
        );
        let missing = AmqpConfig {
            password_file: Some(dir.join("absent")),
            ..AmqpConfig::default()
        };
        let msg = missing.validate().unwrap_err().to_string();
        assert!(
            msg.contains("password file") && msg.contains("absent"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
