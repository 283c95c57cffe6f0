//! The `[[webhooks]]` and `[alertmanager]` sections as written, and their
//! resolved form (secrets read from their files, durations checked).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_tracker::AlertKind;

use crate::error::ConfigError;
use crate::filter::Filters;

/// One `[[webhooks]]` entry as written in `tocsin.toml`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// The subscriber's name: unique, used in metrics and logs.
    pub name: String,
    /// Where alerts are POSTed (`https://...`; `http://` only on loopback).
    pub url: String,
    /// The HMAC-SHA256 signing secret (prefer `secret_file`).
    pub secret: Option<String>,
    /// A file holding the signing secret (trailing newline ignored),
    /// relative to the configuration file.
    pub secret_file: Option<PathBuf>,
    /// How long one attempt may take, in seconds.
    #[serde(default = "defaults::timeout")]
    pub timeout_secs: f64,
    /// First wait before retrying a refused delivery, in seconds; doubled
    /// after each failure.
    #[serde(default = "defaults::retry_initial")]
    pub retry_initial_secs: f64,
    /// Longest wait between two attempts, in seconds.
    #[serde(default = "defaults::retry_max")]
    pub retry_max_secs: f64,
    /// How long after its commit a refused delivery is retried before it is
    /// marked failed, in seconds (one never refused is sent however late).
    #[serde(default = "defaults::max_age")]
    pub max_age_secs: f64,
    /// How often the store is looked at for new alerts when nothing is
    /// due, in seconds.
    #[serde(default = "defaults::webhook_poll")]
    pub poll_interval_secs: f64,
    /// Which alerts this subscriber receives (empty lists: all).
    #[serde(default)]
    pub filters: FilterSection,
    /// Replace the NHS number with a keyed hash (HMAC-SHA256 with
    /// `nhs_number_key`), for subscribers that must not hold it.
    #[serde(default)]
    pub hash_nhs_number: bool,
    /// The key of that hash (prefer `nhs_number_key_file`).
    pub nhs_number_key: Option<String>,
    /// A file holding the key, relative to the configuration file.
    pub nhs_number_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for WebhookSection {
    /// Every setting, but the secret and the hash key only as whether they
    /// are set: a debug line must never carry them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "***" } else { "(none)" };
        f.debug_struct("WebhookSection")
            .field("name", &self.name)
            .field("url", &tocsin_store::redact_url(&self.url))
            .field("secret", &set(&self.secret))
            .field("secret_file", &self.secret_file)
            .field("timeout_secs", &self.timeout_secs)
            .field("retry_initial_secs", &self.retry_initial_secs)
            .field("retry_max_secs", &self.retry_max_secs)
            .field("max_age_secs", &self.max_age_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("filters", &self.filters)
            .field("hash_nhs_number", &self.hash_nhs_number)
            .field("nhs_number_key", &set(&self.nhs_number_key))
            .field("nhs_number_key_file", &self.nhs_number_key_file)
            .finish()
    }
}

/// A webhook's filters as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// Alert kinds (`overdue`, `resolved`...).
    #[serde(default)]
    pub alert_kinds: Vec<AlertKind>,
    /// Document kinds (`discharge_summary`, `clinic_letter`, `other`).
    #[serde(default)]
    pub document_kinds: Vec<DocumentKind>,
    /// Encounter kinds (`inpatient`, `outpatient`...).
    #[serde(default)]
    pub encounter_kinds: Vec<EncounterKind>,
    /// Sites, as the messages name them.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Specialties (treatment function codes, as the messages name them).
    #[serde(default)]
    pub specialties: Vec<String>,
    /// GP practices (ODS codes) of the patients.
    #[serde(default)]
    pub gp_practices: Vec<String>,
}

/// `[alertmanager]` as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSection {
    /// Alertmanager's base URL (`http://127.0.0.1:9093`); the alerts go to
    /// `<url>/api/v2/alerts`. Unset: Alertmanager is not told anything.
    pub url: Option<String>,
    /// How often firing alerts are posted again so that Alertmanager does
    /// not let them expire, in seconds. Each carries `endsAt` four
    /// intervals ahead, so alerts of a stopped gateway resolve by
    /// themselves.
    #[serde(default = "defaults::resend")]
    pub resend_interval_secs: f64,
    /// How often the store is read for changes, in seconds.
    #[serde(default = "defaults::poll")]
    pub poll_interval_secs: f64,
    /// How long one post may take, in seconds.
    #[serde(default = "defaults::timeout")]
    pub timeout_secs: f64,
    /// The base URL of tocsin's own API as operators reach it
    /// (`https://tocsin.trust.nhs.uk`), for the links in annotations.
    #[serde(default = "defaults::api_base")]
    pub api_base_url: String,
    /// How long a `delivery_failed` alert keeps firing, in seconds, unless
    /// the document is sent again and accepted first (a refusal is
    /// otherwise never answered by a "resolved").
    #[serde(default = "defaults::failed_for")]
    pub delivery_failed_for_secs: f64,
    /// `severity` label of the overdue alert.
    #[serde(default = "defaults::severity_overdue")]
    pub severity_overdue: String,
    /// `severity` label of the delivery-failed alert.
    #[serde(default = "defaults::severity_failed")]
    pub severity_delivery_failed: String,
    /// Split each alert by the encounter's specialty too (a `specialty`
    /// label), so that Alertmanager routes can send a specialty's clinic
    /// letters to the team that writes them. Off by default: turning it on
    /// replaces every firing alert with its split, which notifies the new
    /// ones; the old ones resolve at their last `endsAt`.
    #[serde(default)]
    pub by_specialty: bool,
}

impl std::fmt::Debug for AlertmanagerSection {
    /// Every setting, the URL without a password it may hold.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerSection")
            .field("url", &self.url.as_deref().map(tocsin_store::redact_url))
            .field("resend_interval_secs", &self.resend_interval_secs)
            .field("poll_interval_secs", &self.poll_interval_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field(
                "api_base_url",
                &tocsin_store::redact_url(&self.api_base_url),
            )
            .field("delivery_failed_for_secs", &self.delivery_failed_for_secs)
            .field("severity_overdue", &self.severity_overdue)
            .field("severity_delivery_failed", &self.severity_delivery_failed)
            .field("by_specialty", &self.by_specialty)
            .finish()
    }
}

impl Default for AlertmanagerSection {
    fn default() -> Self {
        Self {
            url: None,
            resend_interval_secs: defaults::resend(),
            poll_interval_secs: defaults::poll(),
            timeout_secs: defaults::timeout(),
            api_base_url: defaults::api_base(),
            delivery_failed_for_secs: defaults::failed_for(),
            severity_overdue: defaults::severity_overdue(),
            severity_delivery_failed: defaults::severity_failed(),
            by_specialty: false,
        }
    }
}

mod defaults {
    pub fn timeout() -> f64 {
        10.0
    }
    pub fn retry_initial() -> f64 {
        5.0
    }
    pub fn retry_max() -> f64 {
        600.0
    }
    pub fn webhook_poll() -> f64 {
        1.0
    }
    pub fn max_age() -> f64 {
        86_400.0
    }
    pub fn resend() -> f64 {
        60.0
    }
    pub fn poll() -> f64 {
        5.0
    }
    pub fn api_base() -> String {
        "http://127.0.0.1:9860".into()
    }
    pub fn failed_for() -> f64 {
        86_400.0
    }
    pub fn severity_overdue() -> String {
        "warning".into()
    }
    pub fn severity_failed() -> String {
        "critical".into()
    }
}

/// A webhook subscriber, ready to use.
#[derive(Clone)]
pub struct Webhook {
    /// Unique name (metrics label, logs).
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// The signing secret.
    pub secret: Vec<u8>,
    /// Per-attempt time limit.
    pub timeout: Duration,
    /// First retry wait.
    pub retry_initial: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Give up this long after the commit.
    pub max_age: Duration,
    /// Look for new deliveries this often when idle.
    pub poll: Duration,
    /// Which alerts it receives.
    pub filters: Filters,
    /// The NHS-number hash key, when the subscriber asks for the hash.
    pub nhs_number_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    /// Never shows the secret or the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &crate::redact(&self.url))
            .field("timeout", &self.timeout)
            .field("max_age", &self.max_age)
            .field("hash_nhs_number", &self.nhs_number_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Alertmanager, ready to use.
#[derive(Clone)]
pub struct Alertmanager {
    /// `<url>/api/v2/alerts`.
    pub alerts_url: reqwest::Url,
    /// Re-post firing alerts this often.
    pub resend_interval: Duration,
    /// Read the store this often.
    pub poll_interval: Duration,
    /// Per-post time limit.
    pub timeout: Duration,
    /// tocsin's API base for links.
    pub api_base: reqwest::Url,
    /// How long a delivery failure fires.
    pub delivery_failed_for: Duration,
    /// `severity` of the overdue alert.
    pub severity_overdue: String,
    /// `severity` of the delivery-failed alert.
    pub severity_delivery_failed: String,
    /// Groups split by specialty, with a `specialty` label.
    pub grouping: tocsin_store::Grouping,
}

impl std::fmt::Debug for Alertmanager {
    /// Never shows a password or query the URL may hold.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager")
            .field("alerts_url", &crate::redact(&self.alerts_url))
            .field("resend_interval", &self.resend_interval)
            .field("poll_interval", &self.poll_interval)
            .field("timeout", &self.timeout)
            .field("api_base", &crate::redact(&self.api_base))
            .field("delivery_failed_for", &self.delivery_failed_for)
            .field("severity_overdue", &self.severity_overdue)
            .field("severity_delivery_failed", &self.severity_delivery_failed)
            .field("grouping", &self.grouping)
            .finish()
    }
}

/// Every delivery channel beyond AMQP, resolved.
#[derive(Debug, Clone, Default)]
pub struct DeliveryConfig {
    /// Webhook subscribers.
    pub webhooks: Vec<Webhook>,
    /// Alertmanager, when configured.
    pub alertmanager: Option<Alertmanager>,
}

impl DeliveryConfig {
    /// Checks the sections and reads the secret files (paths relative to
    /// `dir`, the configuration file's directory).
    pub fn resolve(
        webhooks: &[WebhookSection],
        alertmanager: &AlertmanagerSection,
        dir: &Path,
    ) -> Result<Self, ConfigError> {
        let mut out = Vec::with_capacity(webhooks.len());
        for (i, w) in webhooks.iter().enumerate() {
            if out.iter().any(|o: &Webhook| o.name == w.name) {
                return Err(ConfigError::DuplicateName {
                    name: w.name.clone(),
                });
            }
            out.push(resolve_webhook(i, w, dir)?);
        }
        let alertmanager = match &alertmanager.url {
            None => None,
            Some(url) => Some(resolve_alertmanager(url, alertmanager)?),
        };
        Ok(Self {
            webhooks: out,
            alertmanager,
        })
    }
}

fn resolve_webhook(index: usize, w: &WebhookSection, dir: &Path) -> Result<Webhook, ConfigError> {
    let at = |key: &'static str, reason: String| ConfigError::Webhook {
        index,
        name: w.name.clone(),
        key,
        reason,
    };
    if w.name.is_empty()
        || !w
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(at(
            "name",
            "use letters, digits, '-', '_' or '.' (it becomes a metric label)".into(),
        ));
    }
    let url = parse_url(&w.url).map_err(|r| at("url", r))?;
    let signing = secret(w.secret.as_deref(), w.secret_file.as_deref(), dir)
        .map_err(|r| at("secret", r))?
        .ok_or_else(|| at("secret", "set secret or secret_file".into()))?;
    let key = secret(
        w.nhs_number_key.as_deref(),
        w.nhs_number_key_file.as_deref(),
        dir,
    )
    .map_err(|r| at("nhs_number_key", r))?;
    let nhs_number_key = match (w.hash_nhs_number, key) {
        (true, Some(k)) => Some(k),
        (true, None) => {
            return Err(at(
                "nhs_number_key",
                "hash_nhs_number = true needs nhs_number_key or nhs_number_key_file".into(),
            ));
        }
        // A key without the flag is a half-made choice: sending the
        // numbers in the clear would be the wrong half to guess.
        (false, Some(_)) => {
            return Err(at(
                "hash_nhs_number",
                "nhs_number_key or nhs_number_key_file is set but hash_nhs_number is not: \
                 set hash_nhs_number = true to send keyed hashes, or remove the key to send \
                 NHS numbers"
                    .into(),
            ));
        }
        (false, None) => None,
    };
    let dur = |key: &'static str, v: f64| duration(v).map_err(|r| at(key, r));
    let retry_initial = dur("retry_initial_secs", w.retry_initial_secs)?;
    let retry_max = dur("retry_max_secs", w.retry_max_secs)?;
    if retry_max < retry_initial {
        return Err(at(
            "retry_max_secs",
            "must not be shorter than retry_initial_secs".into(),
        ));
    }
    Ok(Webhook {
        name: w.name.clone(),
        url,
        secret: signing,
        timeout: dur("timeout_secs", w.timeout_secs)?,
        retry_initial,
        retry_max,
        max_age: dur("max_age_secs", w.max_age_secs)?,
        poll: dur("poll_interval_secs", w.poll_interval_secs)?,
        filters: Filters::from(&w.filters),
        nhs_number_key,
    })
}

fn resolve_alertmanager(url: &str, s: &AlertmanagerSection) -> Result<Alertmanager, ConfigError> {
    let at = |key: &'static str, reason: String| ConfigError::Alertmanager { key, reason };
    let base = parse_alertmanager_url(url).map_err(|r| at("url", r))?;
    // The API's own path given as the base: tocsin would post to
    // .../api/v2/alerts/api/v2/alerts, refused by Alertmanager at every
    // post, with check-config saying OK.
    let path = base.path().trim_end_matches('/');
    if ["/api/v2/alerts", "/api/v1/alerts", "/api/v2", "/api/v1"]
        .iter()
        .any(|api| path.ends_with(api))
    {
        return Err(at(
            "url",
            "give Alertmanager's base URL (such as http://127.0.0.1:9093), without \
             /api/v2/alerts, which tocsin adds"
                .into(),
        ));
    }
    let alerts_url = join(&base, "api/v2/alerts").map_err(|r| at("url", r))?;
    let api_base = parse_url(&s.api_base_url).map_err(|r| at("api_base_url", r))?;
    let dur = |key: &'static str, v: f64| duration(v).map_err(|r| at(key, r));
    for (key, v) in [
        ("severity_overdue", &s.severity_overdue),
        ("severity_delivery_failed", &s.severity_delivery_failed),
    ] {
        if v.is_empty() {
            return Err(at(key, "must not be empty".into()));
        }
    }
    let resend_interval = dur("resend_interval_secs", s.resend_interval_secs)?;
    let poll_interval = dur("poll_interval_secs", s.poll_interval_secs)?;
    // Each post's endsAt is four resend intervals ahead, and posts come at
    // most once a poll: a poll that long or longer would let firing alerts
    // expire and fire again between rounds.
    if poll_interval >= resend_interval.saturating_mul(4) {
        return Err(at(
            "poll_interval_secs",
            "must be shorter than four resend intervals (4 × resend_interval_secs): \
             firing alerts would expire between polls"
                .into(),
        ));
    }
    Ok(Alertmanager {
        alerts_url,
        resend_interval,
        poll_interval,
        timeout: dur("timeout_secs", s.timeout_secs)?,
        api_base,
        delivery_failed_for: dur("delivery_failed_for_secs", s.delivery_failed_for_secs)?,
        severity_overdue: s.severity_overdue.clone(),
        severity_delivery_failed: s.severity_delivery_failed.clone(),
        grouping: tocsin_store::Grouping {
            by_specialty: s.by_specialty,
        },
    })
}

/// `base` with `path` appended under its own path.
pub(crate) fn join(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, String> {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push('/');
    s.push_str(path);
    reqwest::Url::parse(&s).map_err(|e| e.to_string())
}

fn parse_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(
            "plain http is allowed only on loopback (alerts carry patient data): use https".into(),
        ),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}

/// Alertmanager's URL: plain http is allowed anywhere, since what is posted
/// there carries no patient identifier (groups, counts and links), and
/// Alertmanager inside a cluster or a monitoring network is usually
/// reached so.
fn parse_alertmanager_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" | "http" => Ok(url),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost" | "[::1]") => true,
        Some(h) => h
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback()),
        None => false,
    }
}

fn duration(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{secs} is not a positive number of seconds"))
    }
}

/// The secret given inline or in a file; both is an error, neither `None`.
fn secret(
    inline: Option<&str>,
    file: Option<&Path>,
    dir: &Path,
) -> Result<Option<Vec<u8>>, String> {
    let value = match (inline, file) {
        (Some(_), Some(_)) => return Err("give the value or the file, not both".into()),
        (Some(s), None) => s.to_string(),
        (None, Some(f)) => {
            let path = dir.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, None) => return Ok(None),
    };
    if value.is_empty() {
        return Err("is empty".into());
    }
    Ok(Some(value.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alertmanager(poll: f64, resend: f64) -> AlertmanagerSection {
        AlertmanagerSection {
            url: Some("http://127.0.0.1:9093".into()),
            poll_interval_secs: poll,
            resend_interval_secs: resend,
            ..Default::default()
        }
    }

    /// A webhook section as a trust writes one, with secrets to look for.
    fn webhook_section(url: &str) -> WebhookSection {
        WebhookSection {
            name: "gp-portal".into(),
            url: url.into(),
            secret: Some("signing-s3cret".into()),
            secret_file: None,
            timeout_secs: 10.0,
            retry_initial_secs: 5.0,
            retry_max_secs: 600.0,
            max_age_secs: 86_400.0,
            poll_interval_secs: 1.0,
            filters: FilterSection::default(),
            hash_nhs_number: true,
            nhs_number_key: Some("hash-k3y".into()),
            nhs_number_key_file: None,
        }
    }

    /// A poll four resend intervals long or longer would let every firing
    /// alert expire and fire again between two rounds: refused at load.
    #[test]
    fn an_alertmanager_poll_slower_than_its_resend_is_refused() {
        let e =
            DeliveryConfig::resolve(&[], &alertmanager(300.0, 60.0), Path::new(".")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("[alertmanager] poll_interval_secs: must be shorter than four"),
            "{e}"
        );
        // Slower than the resend, but not enough for an alert to expire:
        // left as it is.
        let ok = DeliveryConfig::resolve(&[], &alertmanager(200.0, 60.0), Path::new("."))
            .unwrap()
            .alertmanager
            .unwrap();
        assert_eq!(ok.grouping, tocsin_store::Grouping::default());
    }

    /// Alertmanager is reached over plain http in most clusters, and what
    /// The API's path given as Alertmanager's URL is refused, not posted
    /// to as `.../api/v2/alerts/api/v2/alerts`.
    #[test]
    fn an_alertmanager_url_naming_the_api_path_is_refused() {
        for url in [
            "http://127.0.0.1:9093/api/v2/alerts",
            "http://127.0.0.1:9093/api/v2/alerts/",
            "http://am.example/prefix/api/v1/alerts",
            "http://127.0.0.1:9093/api/v2",
        ] {
            let am = AlertmanagerSection {
                url: Some(url.into()),
                ..alertmanager(5.0, 60.0)
            };
            let e = DeliveryConfig::resolve(&[], &am, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(e.contains("base URL"), "{url}: {e}");
        }
        let am = AlertmanagerSection {
            url: Some("http://am.example/prefix/".into()),
            ..alertmanager(5.0, 60.0)
        };
        let ok = DeliveryConfig::resolve(&[], &am, Path::new(".")).unwrap();
        assert_eq!(
            ok.alertmanager.unwrap().alerts_url.as_str(),
            "http://am.example/prefix/api/v2/alerts"
        );
    }

    /// tocsin posts there names no patient: allowed off loopback, where a
    /// webhook (which carries NHS numbers) is refused.
    #[test]
    fn plain_http_is_refused_for_webhooks_only() {
        let am = AlertmanagerSection {
            url: Some("http://alertmanager.monitoring:9093".into()),
            ..alertmanager(5.0, 60.0)
        };
        let ok = DeliveryConfig::resolve(&[], &am, Path::new("."))
            .unwrap()
            .alertmanager
            .unwrap();
        assert_eq!(
            ok.alerts_url.as_str(),
            "http://alertmanager.monitoring:9093/api/v2/alerts"
        );
        let hook = WebhookSection {
            name: "ward".into(),
            secret: Some("s".into()),
            hash_nhs_number: false,
            nhs_number_key: None,
            ..webhook_section("http://hooks.monitoring:8080/tocsin")
        };
        let e = DeliveryConfig::resolve(&[hook], &AlertmanagerSection::default(), Path::new("."))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("plain http is allowed only on loopback"),
            "{e}"
        );
        let e = DeliveryConfig::resolve(
            &[],
            &AlertmanagerSection {
                url: Some("ftp://alertmanager:9093".into()),
                ..alertmanager(5.0, 60.0)
            },
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is not http or https"), "{e}");
    }

    /// Debug output (a future log line, a panic message) never carries a
    /// secret.
    #[test]
    fn debug_output_never_shows_a_secret() {
        let section = webhook_section("https://user:urlpass@portal.example.nhs.uk/hook");
        let text = format!("{section:?}");
        for secret in ["signing-s3cret", "hash-k3y", "urlpass"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("gp-portal"), "{text}");
        let resolved = DeliveryConfig::resolve(
            &[section],
            &AlertmanagerSection {
                url: Some("https://am:ampass@alertmanager.example.nhs.uk".into()),
                ..Default::default()
            },
            Path::new("."),
        )
        .unwrap();
        let section = AlertmanagerSection {
            url: Some("https://am:ampass@alertmanager.example.nhs.uk".into()),
            ..Default::default()
        };
        assert!(!format!("{section:?}").contains("ampass"));
        let text = format!("{resolved:?}");
        for secret in ["signing-s3cret", "hash-k3y", "urlpass", "ampass"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    /// A key given without `hash_nhs_number` is a half-made choice: refused,
    /// rather than sending the NHS numbers in the clear.
    #[test]
    fn an_nhs_number_key_without_the_hash_flag_is_refused() {
        let hook = |hash: bool, key: Option<&str>| WebhookSection {
            hash_nhs_number: hash,
            nhs_number_key: key.map(str::to_string),
            ..webhook_section("https://portal.example.nhs.uk/hook")
        };
        let resolve = |w: WebhookSection| {
            DeliveryConfig::resolve(&[w], &AlertmanagerSection::default(), Path::new("."))
        };
        let e = resolve(hook(false, Some("k3y"))).unwrap_err().to_string();
        assert!(e.contains("hash_nhs_number"), "{e}");
        assert!(!e.contains("k3y"), "{e}");
        let hooks = resolve(hook(true, Some("k3y"))).unwrap().webhooks;
        assert_eq!(hooks[0].nhs_number_key.as_deref(), Some(&b"k3y"[..]));
        let hooks = resolve(hook(false, None)).unwrap().webhooks;
        assert_eq!(hooks[0].nhs_number_key, None);
    }
}
