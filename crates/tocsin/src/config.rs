//! The configuration file: `config/tocsin.toml` and the files it names.
//!
//! Paths inside the file are relative to the file's own directory. With no
//! `--config` and no `config/tocsin.toml` in the working directory, the
//! checked-in files compiled into the binary are used, so `tocsin normalise`
//! works anywhere.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use tocsin_amqp::AmqpConfig;
use tocsin_ingest::IngestConfig;
use tocsin_tracker::{ConfigDuration, Policy, TrackerConfig};

/// The checked-in configuration, compiled in as the default.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/tocsin.toml");
/// The checked-in code tables, compiled in as the default.
pub const DEFAULT_MAPPINGS: &str = include_str!("../../../config/mappings.toml");

/// Why the configuration cannot be used. Each names the file and, for syntax
/// and type errors, the line and the reason.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid TOML or has a wrong key or value.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The parser's explanation, with line and column.
        message: String,
    },
}

/// The main configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Path of the code tables (relative to this file).
    mappings: PathBuf,
    /// Path of the contract policy (relative to this file).
    policy: PathBuf,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    tracker: TrackerConfig,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    amqp: AmqpConfig,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    metrics: crate::internal_events::MetricLabels,
    #[serde(default)]
    events: EventsSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    webhooks: Vec<tocsin_delivery::WebhookSection>,
    #[serde(default)]
    alertmanager: tocsin_delivery::AlertmanagerSection,
}

/// `[gateway]`: the live gateway's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// On SIGTERM or SIGINT, how long to finish the batch in hand, commit,
    /// acknowledge and flush the outbox before exiting anyway, in seconds.
    pub shutdown_timeout_secs: u64,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            shutdown_timeout_secs: 10,
        }
    }
}

/// `[store]`: where durable state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `sqlite://PATH` (relative paths are relative to the working
    /// directory) or `postgres://USER@HOST/DB`. `TOCSIN_STORE_URL` overrides.
    pub url: String,
    /// A file holding the PostgreSQL password, kept out of the URL.
    pub password_file: Option<PathBuf>,
    /// How long (by the wall clock) published outbox messages and the ids
    /// of processed inputs are kept: they only serve deduplication of a
    /// broker redelivery or a republish, and would otherwise grow with every
    /// message. Expectations, alerts and deliveries are the compliance
    /// record and are never pruned. Default `7d`; `0s` keeps everything.
    pub retention: ConfigDuration,
    /// How often housekeeping looks for rows past `retention`. Default `1h`.
    pub housekeeping_every: ConfigDuration,
    /// How long the gateway's check of the store may wait behind other
    /// work (a commit, an API query) before the store is marked down:
    /// a commit held by a lock stops ingestion. Default `60s`.
    pub unresponsive_after: ConfigDuration,
}

impl StoreSection {
    /// `password_file` when the store is not PostgreSQL's, which has no use
    /// for it (said at start, not refused: a setting left from a move to
    /// SQLite must not keep the gateway from starting).
    pub fn ignored_password_file(&self) -> Option<&std::path::Path> {
        let postgres = self.url.starts_with("postgres://") || self.url.starts_with("postgresql://");
        self.password_file.as_deref().filter(|_| !postgres)
    }

    /// The PostgreSQL password from `password_file`, read now (a trailing
    /// newline ignored), or `None` when no file is named.
    /// Only a PostgreSQL store takes one: for another it is `None` (see
    /// [`StoreSection::ignored_password_file`]).
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        if self.ignored_password_file().is_some() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("[store] password_file {}: {e}", path.display()))?;
        let password = text.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(format!("[store] password_file {} is empty", path.display()));
        }
        Ok(Some(password.to_string()))
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: "sqlite://data/tocsin.sqlite".into(),
            password_file: None,
            retention: ConfigDuration::days(7),
            housekeeping_every: ConfigDuration::hours(1),
            unresponsive_after: ConfigDuration::minutes(1),
        }
    }
}

/// `[http]`: the health, metrics and API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Listen address. `TOCSIN_HTTP_ADDR` overrides.
    pub addr: String,
    /// The environment variable holding the bearer token `/api/v1` asks
    /// for (the token itself never sits in the file). Unset, empty or no
    /// variable named: the API is open, and a warning says so at start.
    pub api_token_env: Option<String>,
    /// Most items one `/api/v1` page may hold (`limit` above it is a 400).
    pub api_max_limit: usize,
    /// A second listen address serving only `/healthz`, `/readyz` and
    /// `/metrics`, with connections of its own: liveness probes and
    /// scrapes there never wait behind the API's clients, however many
    /// those hold open. `TOCSIN_HTTP_OPS_ADDR` overrides (empty: none).
    pub ops_addr: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:9860".into(),
            api_token_env: Some("TOCSIN_API_TOKEN".into()),
            api_max_limit: 1000,
            ops_addr: None,
        }
    }
}

/// `[events]`: publishing normalised interface events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Publish every interface event to the events exchange.
    /// `TOCSIN_EVENTS_PUBLISH` overrides.
    pub publish: bool,
    /// How events are packed into AMQP messages. `TOCSIN_EVENTS_FORMAT`
    /// overrides.
    pub format: EventsFormat,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            publish: true,
            format: EventsFormat::Ndjson,
        }
    }
}

/// `[events] format`: one AMQP message per event, or per batch and type.
///
/// Exists because the broker persists and confirms every message on a
/// durable subscriber queue: one message per event caps the gateway at the
/// broker's relay rate, while a batch's events of one routing key in one
/// NDJSON message cost the broker one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventsFormat {
    /// The default: for each committed batch, one message per routing key
    /// (`<format>.<type>`), its body the batch's events of that key, one
    /// JSON object a line (`application/x-ndjson`), each exactly the body
    /// `single` would publish.
    Ndjson,
    /// One message per event, its body the event (`application/json`),
    /// its `message_id` the event id.
    Single,
}

impl std::str::FromStr for EventsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ndjson" => Ok(Self::Ndjson),
            "single" => Ok(Self::Single),
            _ => Err(format!("expected ndjson or single, got {s:?}")),
        }
    }
}

/// `[log]`: logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Level or `tracing` filter (`info`, `tocsin=debug,lapin=warn`).
    /// `TOCSIN_LOG` overrides. lapin's returned-message warning, which
    /// prints message bodies, stays off unless named at `debug` or `trace`
    /// (see `logging`).
    pub level: String,
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[ingest]`: limits on what is read at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IngestSection {
    max_input_bytes: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            max_input_bytes: tocsin_ingest::IngestConfig::default().max_input_bytes,
        }
    }
}

/// The loaded configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the configuration came from, for messages.
    pub origin: String,
    /// The environment variables that overrode keys of it
    /// (`TOCSIN_STORE_URL`...), so that a message about such a key blames
    /// the variable and not the file.
    pub env_overrides: Vec<&'static str>,
    /// Normaliser settings and code tables.
    pub ingest: IngestConfig,
    /// The contract policy.
    pub policy: Policy,
    /// Tracker settings.
    pub tracker: TrackerConfig,
    /// Store settings.
    pub store: StoreSection,
    /// Broker settings.
    pub amqp: AmqpConfig,
    /// HTTP listener settings.
    pub http: HttpSection,
    /// Optional metric labels.
    pub metrics: crate::internal_events::MetricLabels,
    /// Event publishing settings.
    pub events: EventsSection,
    /// Logging settings.
    pub log: LogSection,
    /// Gateway settings.
    pub gateway: GatewaySection,
    /// Webhook subscribers and Alertmanager (`[[webhooks]]`,
    /// `[alertmanager]`), secrets read.
    pub delivery: tocsin_delivery::DeliveryConfig,
    /// The keys holding a secret written in the configuration file itself
    /// (a webhook's `secret` or `nhs_number_key`, a password in the store
    /// URL) when others may read that file: said by check-config and at
    /// start, since anyone on the host could then sign webhooks or reverse
    /// the NHS-number hash.
    pub secrets_readable_by_others: Vec<String>,
}

impl Config {
    /// Loads `--config PATH`, else `config/tocsin.toml` in the working
    /// directory when present, else the compiled-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new("config/tocsin.toml");
        match explicit {
            Some(p) => Self::from_file(p),
            None if default_path.exists() => Self::from_file(default_path),
            None => Self::built_in(),
        }
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        let mut file: ConfigFile = parse(&text, &path.display().to_string())?;
        let readable_secrets = if readable_by_others(path) {
            inline_secrets(&file)
        } else {
            Vec::new()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        // Relative to this file's directory, as the file's header says and
        // as mappings, policy and webhook secrets are: read from the working
        // directory, a path that check-config passed from /etc/tocsin failed
        // in the service (WorkingDirectory=/var/lib/tocsin).
        for secret in [&mut file.amqp.password_file, &mut file.store.password_file] {
            if let Some(p) = secret.as_mut().filter(|p| p.is_relative()) {
                *p = dir.join(&*p);
            }
        }
        // A file it names that cannot be read is blamed on the key that
        // names it: "bad/nope.toml: No such file" left the reader to find
        // which setting pointed there.
        let named = |key: &str, p: &Path| {
            read(p).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                message: format!("{key} = {:?}: {e}", p.display().to_string()),
            })
        };
        let mappings_path = dir.join(&file.mappings);
        let mappings = named("mappings", &mappings_path)?;
        let policy_path = dir.join(&file.policy);
        let policy = named("policy", &policy_path)?;
        let (delivery, am_env) = delivery(&mut file, dir, &path.display().to_string())?;
        let origin = path.display().to_string();
        let mappings_origin = mappings_path.display().to_string();
        let mut config = Self::assemble(
            origin.clone(),
            file,
            &mappings,
            &mappings_origin,
            (policy, policy_path.display().to_string()),
        )
        .map_err(|e| with_line(e, &[(&origin, &text), (&mappings_origin, &mappings)]))?;
        config.delivery = delivery;
        config.env_overrides.extend(am_env);
        config.secrets_readable_by_others = readable_secrets;
        Ok(config)
    }

    fn built_in() -> Result<Self, ConfigError> {
        let mut file: ConfigFile = parse(DEFAULT_CONFIG, "built-in tocsin.toml")?;
        let (delivery, am_env) = delivery(&mut file, Path::new("."), "built-in tocsin.toml")?;
        let mut config = Self::assemble(
            "built-in defaults".into(),
            file,
            DEFAULT_MAPPINGS,
            "built-in mappings.toml",
            (
                DEFAULT_POLICY.to_string(),
                "built-in nhs-standard-contract.toml".into(),
            ),
        )?;
        config.delivery = delivery;
        config.env_overrides.extend(am_env);
        Ok(config)
    }

    fn assemble(
        origin: String,
        file: ConfigFile,
        mappings: &str,
        mappings_origin: &str,
        policy_text: (String, String),
    ) -> Result<Self, ConfigError> {
        let ingest = IngestConfig::from_mappings_toml(mappings, file.ingest.max_input_bytes)
            .map_err(|e| ConfigError::Invalid {
                path: mappings_origin.to_string(),
                message: explain(&e.0, mappings),
            })?;
        // Valid values that can never work, as for tocsin.toml below.
        let never = if ingest.hl7.max_message_bytes == 0 {
            Some("[hl7] max_message_bytes must be at least 1 (0 refuses every HL7 message)")
        } else if ingest.hl7.supported_versions.is_empty() {
            Some("[hl7] supported_versions is empty: every HL7 message would be refused")
        } else if ingest.fhir.max_resource_bytes == 0 {
            Some("[fhir] max_resource_bytes must be at least 1 (0 refuses every FHIR input)")
        } else if ingest.fhir.xml_max_bytes == 0 {
            Some("[fhir] xml_max_bytes must be at least 1 (0 refuses every FHIR XML input)")
        } else {
            None
        };
        if let Some(message) = never {
            return Err(ConfigError::Invalid {
                path: mappings_origin.to_string(),
                message: message.to_string(),
            });
        }
        let policy = Policy::from_toml(&policy_text.0).map_err(|e| ConfigError::Invalid {
            path: policy_text.1.clone(),
            message: e.to_string(),
        })?;
        let mut config = Self {
            origin,
            env_overrides: Vec::new(),
            ingest,
            policy,
            tracker: file.tracker,
            store: file.store,
            amqp: file.amqp,
            http: file.http,
            metrics: file.metrics,
            events: file.events,
            log: file.log,
            gateway: file.gateway,
            delivery: Default::default(),
            secrets_readable_by_others: Vec::new(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.amqp.validate().map_err(|e| ConfigError::Invalid {
            path: config.origin.clone(),
            message: format!("[amqp] {e}"),
        })?;
        config
            .metrics
            .validate()
            .map_err(|message| ConfigError::Invalid {
                path: config.origin.clone(),
                message,
            })?;
        // Settings that can never work are refused here, for check-config
        // and before a gateway starts: a malformed store URL was retried
        // for ever as if the store were down, and a bad log filter passed
        // check-config and then stopped `run`.
        tocsin_store::check_url(&config.store.url).map_err(|e| ConfigError::Invalid {
            path: config.blame("TOCSIN_STORE_URL"),
            message: format!("[store] url: {e}"),
        })?;
        crate::logging::parse_filter(&config.log.level).map_err(|message| {
            ConfigError::Invalid {
                path: config.blame("TOCSIN_LOG"),
                message,
            }
        })?;
        check_listen_addr(&config.http.addr, "[http] addr (or TOCSIN_HTTP_ADDR)").map_err(
            |message| ConfigError::Invalid {
                path: config.blame("TOCSIN_HTTP_ADDR"),
                message,
            },
        )?;
        if let Some(ops) = &config.http.ops_addr {
            let path = config.blame("TOCSIN_HTTP_OPS_ADDR");
            check_listen_addr(ops, "[http] ops_addr (or TOCSIN_HTTP_OPS_ADDR)").map_err(
                |message| ConfigError::Invalid {
                    path: path.clone(),
                    message,
                },
            )?;
            if *ops == config.http.addr {
                return Err(ConfigError::Invalid {
                    path,
                    message: format!(
                        "[http] ops_addr {ops:?} is [http] addr too: give it another port \
                         (or leave it out: the main listener serves /healthz, /readyz and \
                         /metrics as well)"
                    ),
                });
            }
        }
        if let Some(var) = &config.http.api_token_env
            && !is_variable_name(var)
        {
            // Not echoed: it may be the token itself.
            return Err(ConfigError::Invalid {
                path: config.origin.clone(),
                message: "[http] api_token_env must name an environment variable (letters, \
                          digits and _, not starting with a digit) that holds the token, not \
                          hold the token itself"
                    .into(),
            });
        }
        for (key, d) in [
            ("housekeeping_every", config.store.housekeeping_every),
            ("unresponsive_after", config.store.unresponsive_after),
        ] {
            if d.as_secs() < 1 {
                return Err(ConfigError::Invalid {
                    path: config.origin.clone(),
                    message: format!("[store] {key} must be at least 1s"),
                });
            }
        }
        // Valid numbers that can never work: each refused here rather than
        // found in production.
        let t = &config.tracker;
        let never = if config.ingest.max_input_bytes == 0 {
            Some("[ingest] max_input_bytes must be at least 1 (0 refuses every input)".to_string())
        } else if config.http.api_max_limit == 0 {
            Some("[http] api_max_limit must be at least 1 (a page of nothing)".to_string())
        } else if t.duplicate_horizon.as_secs() < t.allowed_lateness.as_secs() {
            Some(format!(
                "[tracker] duplicate_horizon ({}) must be at least allowed_lateness ({}): an \
                 input more than the horizon behind the clock is ignored as stale, so every \
                 input read out of order would be",
                t.duplicate_horizon, t.allowed_lateness
            ))
        } else {
            None
        };
        if let Some(message) = never {
            return Err(ConfigError::Invalid {
                path: config.origin.clone(),
                message,
            });
        }
        Ok(config)
    }

    /// What a message about a key should name: the environment variable
    /// that set it, when one did (an engineer looking in the file for a
    /// value set in /etc/tocsin/tocsin.env would not find it), else the
    /// file.
    fn blame(&self, var: &'static str) -> String {
        if self.env_overrides.contains(&var) {
            format!("{var} (environment, overriding {})", self.origin)
        } else {
            self.origin.clone()
        }
    }

    /// Applies the environment overrides of the most used keys.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = var("TOCSIN_AMQP_URL") {
            self.amqp.url = tocsin_amqp::SecretUrl::new(url);
            self.env_overrides.push("TOCSIN_AMQP_URL");
        }
        if let Some(url) = var("TOCSIN_STORE_URL") {
            self.store.url = url;
            self.env_overrides.push("TOCSIN_STORE_URL");
        }
        if let Some(addr) = var("TOCSIN_HTTP_ADDR") {
            self.http.addr = addr;
            self.env_overrides.push("TOCSIN_HTTP_ADDR");
        }
        if let Some(addr) = var("TOCSIN_HTTP_OPS_ADDR") {
            self.http.ops_addr = Some(addr).filter(|a| !a.trim().is_empty());
            self.env_overrides.push("TOCSIN_HTTP_OPS_ADDR");
        }
        if let Some(level) = var("TOCSIN_LOG") {
            self.log.level = level;
            self.env_overrides.push("TOCSIN_LOG");
        }
        if let Some(v) = var("TOCSIN_EVENTS_PUBLISH") {
            self.events.publish = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::Invalid {
                        path: "TOCSIN_EVENTS_PUBLISH".into(),
                        message: format!("expected true or false, got {v:?}"),
                    });
                }
            };
            self.env_overrides.push("TOCSIN_EVENTS_PUBLISH");
        }
        if let Some(v) = var("TOCSIN_EVENTS_FORMAT") {
            self.events.format = v.parse().map_err(|message| ConfigError::Invalid {
                path: "TOCSIN_EVENTS_FORMAT".into(),
                message,
            })?;
            self.env_overrides.push("TOCSIN_EVENTS_FORMAT");
        }
        Ok(())
    }
}

/// The checked-in contract policy, compiled in as the default.
pub const DEFAULT_POLICY: &str =
    include_str!("../../../config/policies/nhs-standard-contract.toml");

/// Whether users other than the file's owner and group may read `path`.
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// The keys of `file` that hold a secret in the file itself (not in a
/// `*_file` beside it).
fn inline_secrets(file: &ConfigFile) -> Vec<String> {
    let mut keys = Vec::new();
    for w in &file.webhooks {
        if w.secret.is_some() {
            keys.push(format!("[[webhooks]] {} secret", w.name));
        }
        if w.nhs_number_key.is_some() {
            keys.push(format!("[[webhooks]] {} nhs_number_key", w.name));
        }
    }
    if tocsin_store::redact_url(&file.store.url) != file.store.url {
        keys.push("[store] url (its password)".to_string());
    }
    // RabbitMQ's default account (which it refuses from anywhere but
    // loopback) is no secret; any other password is.
    let amqp = file.amqp.url.expose();
    if file.amqp.url.redacted() != amqp && !amqp.contains("://guest:guest@") {
        keys.push("[amqp] url (its password)".to_string());
    }
    keys
}

/// `[[webhooks]]` and `[alertmanager]`, checked, their secret files read
/// relative to the configuration file's directory. `TOCSIN_ALERTMANAGER_URL`
/// overrides `[alertmanager] url` (empty: no Alertmanager), so that a
/// container image's baked-in configuration can be pointed at one; the
/// variable is returned when it did.
fn delivery(
    file: &mut ConfigFile,
    dir: &Path,
    origin: &str,
) -> Result<(tocsin_delivery::DeliveryConfig, Option<&'static str>), ConfigError> {
    const VAR: &str = "TOCSIN_ALERTMANAGER_URL";
    let from_env = std::env::var(VAR).ok().map(|url| {
        file.alertmanager.url = Some(url).filter(|u| !u.trim().is_empty());
        VAR
    });
    tocsin_delivery::DeliveryConfig::resolve(&file.webhooks, &file.alertmanager, dir)
        .map(|d| (d, from_env))
        .map_err(|e| ConfigError::Invalid {
            path: match (&e, from_env) {
                (tocsin_delivery::ConfigError::Alertmanager { .. }, Some(var)) => {
                    format!("{var} (environment, overriding {origin})")
                }
                _ => origin.to_string(),
            },
            message: e.to_string(),
        })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A value check's error (`[section] key ...`, the file named as `path`)
/// with the line of the key it names prefixed, found in that file's text
/// (`files`: each path with its text): the first key of that section
/// set in the file that the message names. A syntax or type error has its
/// line already; a value set from the environment is blamed on the
/// variable, and is left as it is.
fn with_line(e: ConfigError, files: &[(&str, &str)]) -> ConfigError {
    let ConfigError::Invalid { path, message } = e else {
        return e;
    };
    let line = files
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, text)| line_of_key(text, &message));
    let message = match line {
        Some(n) if !message.starts_with("line ") => format!("line {n}: {message}"),
        _ => message,
    };
    ConfigError::Invalid { path, message }
}

/// The line (from 1) of the key `message` names, within the section it
/// opens with (`[amqp] ...`): of the keys set in that section, the one
/// named first in the message.
fn line_of_key(text: &str, message: &str) -> Option<usize> {
    let section = message.strip_prefix('[')?.split_once(']')?.0;
    let rest = &message[section.len() + 2..];
    let mut in_section = false;
    let mut best: Option<(usize, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            in_section = h.trim_end_matches(']').trim() == section;
            continue;
        }
        let Some((key, _)) = t
            .split_once('=')
            .filter(|_| in_section && !t.starts_with('#'))
        else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let named_at = rest.match_indices(key).find(|(i, _)| {
            let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
            let before = rest[..*i].chars().next_back().is_none_or(|c| !word(c));
            let after = rest[i + key.len()..]
                .chars()
                .next()
                .is_none_or(|c| !word(c));
            before && after
        });
        if let Some((i, _)) = named_at
            && best.is_none_or(|(b, _)| i < b)
        {
            best = Some((i, n + 1));
        }
    }
    best.map(|(_, n)| n)
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: origin.to_string(),
        message: explain(&e, text),
    })
}

/// Keys whose values are secrets or may hold one (a password in a URL): an
/// error on their line names the key and never the value.
const SECRET_KEY_PARTS: [&str; 5] = ["secret", "key", "token", "password", "url"];

/// A TOML error as the line, column and reason, without the source line
/// that toml's own message quotes: that line may hold a signing secret, a
/// hash key or a password, and start-up errors go to the journal. The
/// reason itself may quote a wrong value (`invalid type: integer 1234`),
/// so on a secret's line only the key is named.
fn explain(e: &toml::de::Error, text: &str) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"'))
        .unwrap_or("");
    // The whole line, not only its first key: an inline table
    // (`webhooks = [{ secret = 123 }]`) holds the secret under another.
    let lower = line.to_ascii_lowercase();
    // A misspelt or missing key is told with the keys it may be, which
    // quote no value: a typo in `pasword_file` was hidden as an invalid
    // value, without the list that says what was meant.
    let names_keys_only = ["unknown field", "missing field"]
        .iter()
        .any(|p| e.message().starts_with(p));
    let secret = SECRET_KEY_PARTS.iter().any(|part| lower.contains(part)) && !names_keys_only;
    if secret {
        format!(
            "line {line_no}, column {column}: the value of `{key}` is not valid here \
             (not shown: it may be a secret)"
        )
    } else {
        let mut reason = e.message().trim_end().to_owned();
        tocsin_tracker::add_hint(&mut reason, line);
        format!("line {line_no}, column {column}: {reason}")
    }
}

/// Whether `name` can be an environment variable's name: letters, digits
/// and `_`, not starting with a digit. A token pasted into
/// `[http] api_token_env` (base64 or a UUID: `-`, `+`, `/`, `=`) is not one,
/// and would otherwise be written to the log as the name of the variable
/// that "is unset".
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a listen address (`key`: the setting and its variable, to name
/// them) is `HOST:PORT`, without resolving the host: `localhost9860`
/// passed check-config and then stopped `run` ("invalid socket address"),
/// and under systemd a restart loop.
fn check_listen_addr(addr: &str, key: &str) -> Result<(), String> {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || format!("{key} {addr:?} is not HOST:PORT (e.g. 127.0.0.1:9860)");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[store] password_file` is read whole, its trailing newline
    /// dropped; an empty or missing file is an error naming it.
    #[test]
    fn the_store_password_is_read_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg-password");
        let section = |file: Option<std::path::PathBuf>| StoreSection {
            url: "postgres://tocsin@db/tocsin".into(),
            password_file: file,
            ..StoreSection::default()
        };
        assert_eq!(section(None).password(), Ok(None));
        std::fs::write(&path, "s3cr/t?x\n").unwrap();
        assert_eq!(
            section(Some(path.clone())).password(),
            Ok(Some("s3cr/t?x".to_string()))
        );
        std::fs::write(&path, "\n").unwrap();
        let e = section(Some(path.clone())).password().unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        let e = section(Some(dir.path().join("absent")))
            .password()
            .unwrap_err();
        assert!(
            e.contains("[store] password_file") && e.contains("absent"),
            "{e}"
        );
        // For a SQLite store the file is ignored (and said to be), so that a
        // setting left from PostgreSQL does not stop the gateway; the store
        // itself refuses a password it has no use for.
        let sqlite = StoreSection {
            password_file: Some(dir.path().join("absent")),
            ..StoreSection::default()
        };
        assert_eq!(sqlite.password(), Ok(None));
        assert!(sqlite.ignored_password_file().is_some());
        assert!(section(Some(path)).ignored_password_file().is_none());
        let e = tocsin_store::open_with("sqlite::memory:", Some("x"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("postgres:// store only"), "{e}");
    }

    /// A wrong line is told by number and reason; the line itself, which
    /// toml would quote, is not, and on a secret's line neither is the
    /// value.
    #[test]
    fn errors_name_the_line_and_never_quote_a_secret() {
        let text =
            "[amqp]\nprefetch = 10\n\n[[webhooks]]\nname = \"ward\"\nsecret = 0xdeadbeefcafe\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: line 6, column "), "{e}");
        assert!(e.contains("`secret`"), "{e}");
        assert!(!e.contains("deadbeef"), "{e}");
        let text = "[[webhooks]]\nname = \"ward\"\nurl = \"https://a.example\"\nsecret = \"s3cr3t-value\"\nsecrte = \"s3cr3t-value\"\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("unknown field `secrte`"), "{e}");
        // A misspelt secret key is told with the keys it may be.
        let text = "[store]
pasword_file = \"/run/secrets/pw\"\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("unknown field `pasword_file`") && e.contains("`password_file`"),
            "{e}"
        );
        // An inline table holding a secret under another key.
        let text = "webhooks = [{ name = \"ward\", secret = 0xdeadbeefcafe }]\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(!e.contains("deadbeef"), "{e}");
        // An ordinary key keeps toml's reason, which names what was wrong.
        let text = "[amqp]\nprefetch = \"many\"\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: line 2, column "), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        assert!(!e.contains('|'), "no quoted source: {e}");
        // What toml leaves unsaid: the key given twice, the two brackets a
        // list of tables needs.
        let text = "[amqp]\nprefetch = 10\nprefetch = 20\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("duplicate key `prefetch`"),
            "{e}"
        );
        let text = "[webhooks]\nname = \"ward\"\n";
        let e = parse::<ConfigFile>(text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("write [[webhooks]]"), "{e}");
    }

    /// `config/tocsin.toml` is where an integration team reads what each
    /// setting does and what it is by default: every value it sets must be
    /// the default the code would use without it, so the two cannot drift.
    #[test]
    fn the_shipped_file_spells_out_the_defaults() {
        let file: ConfigFile = parse(DEFAULT_CONFIG, "config/tocsin.toml").unwrap();
        let same = |section: &str, written: String, default: String| {
            assert_eq!(written, default, "[{section}] in config/tocsin.toml");
        };
        assert_eq!(file.tracker, TrackerConfig::default(), "[tracker]");
        assert_eq!(file.metrics, Default::default(), "[metrics]");
        same(
            "ingest",
            format!("{:?}", file.ingest),
            format!("{:?}", IngestSection::default()),
        );
        same(
            "store",
            format!("{:?}", file.store),
            format!("{:?}", StoreSection::default()),
        );
        same(
            "amqp",
            format!("{:?}", file.amqp),
            format!("{:?}", AmqpConfig::default()),
        );
        same(
            "http",
            format!("{:?}", file.http),
            format!("{:?}", HttpSection::default()),
        );
        same(
            "events",
            format!("{:?}", file.events),
            format!("{:?}", EventsSection::default()),
        );
        same(
            "log",
            format!("{:?}", file.log),
            format!("{:?}", LogSection::default()),
        );
        same(
            "gateway",
            format!("{:?}", file.gateway),
            format!("{:?}", GatewaySection::default()),
        );
        same(
            "alertmanager",
            format!("{:?}", file.alertmanager),
            format!("{:?}", tocsin_delivery::AlertmanagerSection::default()),
        );
        assert!(file.webhooks.is_empty(), "[[webhooks]]");
    }
}
