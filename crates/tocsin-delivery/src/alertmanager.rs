//! Alertmanager: told what is true now, never who.
//!
//! One Alertmanager alert stands for a group of expectations sharing its
//! labels (`alertname`, `document_kind`, `encounter_kind`, `site`,
//! `severity`, and `specialty` when configured): `TocsinDocumentOverdue` fires while any expectation of the
//! group is overdue, `TocsinDeliveryFailed` while any transmission of the
//! group failed within the configured window. No label or annotation holds
//! a patient, encounter, document or expectation identifier; the
//! annotations give the count and links to tocsin's API, where an operator
//! with access finds the cases.
//!
//! The worker is level-triggered: every poll it reads the groups from the
//! store, posts new or changed groups at once, posts every firing group
//! again each resend interval (with `endsAt` four intervals ahead, so the
//! alerts of a stopped gateway resolve by themselves), and posts a group
//! that is no longer true with `endsAt` now (resolved). The store is the
//! state: after a crash the next round tells Alertmanager the truth again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tocsin_tracker::compliance::printable;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tocsin_store::AlertGroup;

use crate::access::StoreAccess;
use crate::config::{Alertmanager, join};
use crate::events::{
    AlertmanagerPostFailed, AlertmanagerPosted, DeliveryMetrics, DeliveryStoreFailed,
};

/// `alertname` of a group of overdue documents.
pub const OVERDUE_ALERTNAME: &str = "TocsinDocumentOverdue";
/// `alertname` of a group of failed transmissions.
pub const DELIVERY_FAILED_ALERTNAME: &str = "TocsinDeliveryFailed";
/// `site` (and `specialty`) label value when the messages named none: the
/// value the API's `site=` and `specialty=` take for it (the alert's links
/// use it). It was `unknown`, which a PAS can send as a site code: the two
/// groups then had one label set, posted in turn with their own counts,
/// and the one that emptied resolved the other's alert.
pub const UNKNOWN_SITE: &str = tocsin_store::NONE;

/// One alert in Alertmanager's v2 `postableAlert` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Identity of the alert: alertname, document_kind, encounter_kind,
    /// site, severity (and specialty, when configured).
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`, `alerts_url`, `expectations_url`.
    pub annotations: BTreeMap<String, String>,
    /// When the condition began.
    pub starts_at: String,
    /// When it ends: ahead while firing, now when resolved.
    pub ends_at: String,
    /// A link to tocsin's API.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// What the worker remembers of a firing group it posted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Posted {
    count: u64,
    alert: PostableAlert,
}

type Key = (&'static str, String, String, String, Option<String>);

/// The Alertmanager worker.
pub(crate) struct AlertmanagerWorker<S> {
    pub(crate) config: Alertmanager,
    pub(crate) client: reqwest::Client,
    pub(crate) store: S,
    pub(crate) metrics: Arc<DeliveryMetrics>,
}

impl<S: StoreAccess> AlertmanagerWorker<S> {
    /// Runs until the task is aborted.
    pub(crate) async fn run(self) {
        let mut posted: BTreeMap<Key, Posted> = BTreeMap::new();
        let mut last_resend: Option<DateTime<Utc>> = None;
        let mut failures = 0u32;
        loop {
            let now = Utc::now();
            let wait = match self.round(now, &mut posted, &mut last_resend).await {
                Ok(()) => {
                    failures = 0;
                    self.config.poll_interval
                }
                Err(()) => {
                    failures = failures.saturating_add(1);
                    // Back off on a failing Alertmanager, up to the resend
                    // interval.
                    self.config
                        .poll_interval
                        .checked_mul(2u32.saturating_pow(failures.min(16)))
                        .unwrap_or(self.config.resend_interval)
                        .min(self.config.resend_interval.max(self.config.poll_interval))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads the groups, posts what changed (or everything, when the resend
    /// interval has passed). `Err` when the store or Alertmanager failed.
    async fn round(
        &self,
        now: DateTime<Utc>,
        posted: &mut BTreeMap<Key, Posted>,
        last_resend: &mut Option<DateTime<Utc>>,
    ) -> Result<(), ()> {
        let since = now - chrono_duration(self.config.delivery_failed_for);
        let grouping = self.config.grouping;
        let groups = self
            .store
            .call(move |s| {
                Ok((
                    s.overdue_groups(grouping)?,
                    s.failed_delivery_groups(since, grouping)?,
                ))
            })
            .await;
        let (overdue, failed) = match groups {
            Ok(g) => g,
            Err(error) => {
                DeliveryStoreFailed {
                    operation: "read alert groups",
                    worker: "alertmanager",
                    error: &error,
                }
                .emit(&self.metrics);
                return Err(());
            }
        };
        let ends = now + chrono_duration(self.config.resend_interval * 4);
        let mut firing: BTreeMap<Key, Posted> = BTreeMap::new();
        for g in &overdue {
            let alert = self.overdue_alert(g, now, ends);
            firing.insert(
                key(OVERDUE_ALERTNAME, g),
                Posted {
                    count: g.count,
                    alert,
                },
            );
        }
        for g in &failed {
            let alert = self.failed_alert(g, now, ends);
            firing.insert(
                key(DELIVERY_FAILED_ALERTNAME, g),
                Posted {
                    count: g.count,
                    alert,
                },
            );
        }
        let resend =
            last_resend.is_none_or(|t| now - t >= chrono_duration(self.config.resend_interval));
        let mut batch: Vec<PostableAlert> = firing
            .iter()
            .filter(|(k, p)| resend || posted.get(*k).is_none_or(|old| old.count != p.count))
            .map(|(_, p)| p.alert.clone())
            .collect();
        let firing_count = batch.len();
        for (k, old) in posted.iter() {
            if !firing.contains_key(k) {
                let mut alert = old.alert.clone();
                alert.ends_at = rfc3339(now);
                batch.push(alert);
            }
        }
        let resolved = batch.len() - firing_count;
        if batch.is_empty() {
            return Ok(());
        }
        match self.post(&batch).await {
            Ok(()) => {
                AlertmanagerPosted {
                    firing: firing.len(),
                    resolved,
                }
                .emit(&self.metrics);
                *posted = firing;
                if resend {
                    *last_resend = Some(now);
                }
                Ok(())
            }
            Err(error) => {
                AlertmanagerPostFailed {
                    url: self.config.alerts_url.as_str(),
                    error: &error,
                }
                .emit(&self.metrics);
                Err(())
            }
        }
    }

    async fn post(&self, alerts: &[PostableAlert]) -> Result<(), String> {
        let body = serde_json::to_vec(alerts).map_err(|e| format!("cannot serialise: {e}"))?;
        let response = self
            .client
            .post(self.config.alerts_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| crate::webhook::describe(&e, self.config.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The status only, as for webhooks: the body is whatever the far
        // end (or a proxy before it) sends back, and this is logged.
        Err(format!("HTTP {}", status.as_u16()))
    }

    /// The API query that lists one group's cases: `first`, then the group's
    /// document kind, encounter kind, site and (when groups are split by it)
    /// specialty, so that a link in an alert leads to that group's cases and
    /// no others. A site or specialty the messages did not name is asked for
    /// as [`tocsin_store::NONE`]; left out, the unknown site's link listed
    /// every site's cases.
    fn group_query<'a>(
        &self,
        first: (&'a str, &'a str),
        g: &'a AlertGroup,
    ) -> Vec<(&'a str, &'a str)> {
        let mut query = vec![
            first,
            ("document_kind", g.document_kind.as_str()),
            ("encounter_kind", g.encounter_kind.as_str()),
            ("site", g.site.as_deref().unwrap_or(tocsin_store::NONE)),
        ];
        if self.config.grouping.by_specialty {
            query.push((
                "specialty",
                g.specialty.as_deref().unwrap_or(tocsin_store::NONE),
            ));
        }
        query
    }

    fn overdue_alert(
        &self,
        g: &AlertGroup,
        now: DateTime<Utc>,
        ends: DateTime<Utc>,
    ) -> PostableAlert {
        let place = self.place(g);
        let alerts_url = self.api_url("api/v1/alerts", &self.group_query(("kind", "overdue"), g));
        let expectations_url = self.api_url(
            "api/v1/expectations",
            &self.group_query(("status", "overdue"), g),
        );
        let annotations = BTreeMap::from([
            (
                "summary".to_string(),
                format!(
                    "{} {} document(s) overdue after {} encounters at {place}",
                    g.count, g.document_kind, g.encounter_kind
                ),
            ),
            (
                "description".to_string(),
                format!(
                    "Not seen leaving the trust by their deadline; the earliest deadline was {}. \
                     The cases are listed at expectations_url.",
                    rfc3339(g.first)
                ),
            ),
            ("alerts_url".to_string(), alerts_url.clone()),
            ("expectations_url".to_string(), expectations_url),
        ]);
        PostableAlert {
            labels: self.labels(OVERDUE_ALERTNAME, g, &self.config.severity_overdue),
            annotations,
            starts_at: starts_at(g, now),
            ends_at: rfc3339(ends),
            generator_url: alerts_url,
        }
    }

    fn failed_alert(
        &self,
        g: &AlertGroup,
        now: DateTime<Utc>,
        ends: DateTime<Utc>,
    ) -> PostableAlert {
        let place = self.place(g);
        let since = rfc3339(g.first);
        let mut query = self.group_query(("kind", "delivery_failed"), g);
        query.push(("since", since.as_str()));
        let alerts_url = self.api_url("api/v1/alerts", &query);
        let annotations = BTreeMap::from([
            (
                "summary".to_string(),
                format!(
                    "{} {} transmission(s) to GPs failed after {} encounters at {place}",
                    g.count, g.document_kind, g.encounter_kind
                ),
            ),
            (
                "description".to_string(),
                format!(
                    "The recipient refused the document, or its transmission failed, between {} and {}. \
                     The cases are listed at alerts_url.",
                    since,
                    rfc3339(g.last)
                ),
            ),
            ("alerts_url".to_string(), alerts_url.clone()),
        ]);
        PostableAlert {
            labels: self.labels(
                DELIVERY_FAILED_ALERTNAME,
                g,
                &self.config.severity_delivery_failed,
            ),
            annotations,
            starts_at: starts_at(g, now),
            ends_at: rfc3339(ends),
            generator_url: alerts_url,
        }
    }

    /// Where a group's encounters were, for a summary: `site RXX01`, and
    /// `, specialty 130` when the groups are split by it.
    fn place(&self, g: &AlertGroup) -> String {
        let site = printable(g.site.as_deref().unwrap_or(UNKNOWN_SITE));
        if self.config.grouping.by_specialty {
            let specialty = printable(g.specialty.as_deref().unwrap_or(UNKNOWN_SITE));
            format!("site {site}, specialty {specialty}")
        } else {
            format!("site {site}")
        }
    }

    /// The group's labels. Site and specialty are the senders' text:
    /// control characters in them are escaped ([`printable`]), so that
    /// they reach neither a receiver's terminal nor its templates raw.
    fn labels(&self, alertname: &str, g: &AlertGroup, severity: &str) -> BTreeMap<String, String> {
        let text =
            |v: &Option<String>| printable(v.as_deref().unwrap_or(UNKNOWN_SITE)).into_owned();
        let mut labels = BTreeMap::from([
            ("alertname".to_string(), alertname.to_string()),
            ("document_kind".to_string(), g.document_kind.clone()),
            ("encounter_kind".to_string(), g.encounter_kind.clone()),
            ("site".to_string(), text(&g.site)),
            ("severity".to_string(), severity.to_string()),
        ]);
        if self.config.grouping.by_specialty {
            labels.insert("specialty".to_string(), text(&g.specialty));
        }
        labels
    }

    fn api_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        match join(&self.config.api_base, path) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(query);
                url.to_string()
            }
            // The base was checked at load; keep the link readable anyway.
            Err(_) => format!("{}{path}", self.config.api_base),
        }
    }
}

fn key(alertname: &'static str, g: &AlertGroup) -> Key {
    (
        alertname,
        g.document_kind.clone(),
        g.encounter_kind.clone(),
        g.site.clone().unwrap_or_default(),
        g.specialty.clone(),
    )
}

/// A group's `startsAt`: its earliest alert, but never after `now`.
/// The times are the messages' own (a deadline, an acknowledgement's
/// stamp), which may lie ahead of the wall clock (an engine writing local
/// summer time with a `Z`, the tracker's clock allowed a few minutes ahead),
/// and Alertmanager refuses the whole post when an alert starts after it
/// ends.
fn starts_at(g: &AlertGroup, now: DateTime<Utc>) -> String {
    rfc3339(g.first.min(now))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The Alertmanager client: its timeout, no redirects.
pub(crate) fn client(config: &Alertmanager) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}
