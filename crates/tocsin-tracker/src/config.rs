//! Tracker settings: the `[tracker]` section of `config/tocsin.toml`.
//!
//! Every duration is written as in the policy (`"24h"`, `"14d"`, `"90m"`,
//! `"30s"` or an integer number of seconds) and every key has a default, so
//! the section may be omitted.

use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;

/// How the tracker judges time and correlates documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// How far behind the latest event time the clock stays, so that feeds
    /// slightly out of order do not raise `overdue` for a document that is
    /// only a little behind. Default `5m`.
    #[serde(default = "d_allowed_lateness")]
    pub allowed_lateness: ConfigDuration,
    /// For matching by patient: how long before the encounter's end a
    /// document may have been issued. Default `2d`.
    #[serde(default = "d_match_window_before")]
    pub match_window_before: ConfigDuration,
    /// For matching by patient: how long after the encounter's end a document
    /// may be issued. Default `30d` (covers late clinic letters).
    #[serde(default = "d_match_window_after")]
    pub match_window_after: ConfigDuration,
    /// Raise `unconfirmed` when a settling transmission has no
    /// acknowledgement this long after it was issued. Off (absent) by default.
    #[serde(default)]
    pub unconfirmed_after: Option<ConfigDuration>,
    /// How long (by event time) a transmission is remembered so that its
    /// acknowledgements can attach. Default `7d`; raised to
    /// `unconfirmed_after` when that is longer.
    #[serde(default = "d_ack_horizon")]
    pub ack_horizon: ConfigDuration,
    /// How long (by event time) the keys of messages already seen are kept to
    /// recognise exact duplicates. Default `30d`. A message whose event time
    /// is older than this behind the clock is ignored and counted
    /// `stale_event` (it could be a duplicate no longer recognised).
    #[serde(default = "d_duplicate_horizon")]
    pub duplicate_horizon: ConfigDuration,
    /// How long (by event time, from its issue) a document that matched no
    /// open expectation waits for its encounter's end. Default `30d`.
    #[serde(default = "d_pending_document_horizon")]
    pub pending_document_horizon: ConfigDuration,
    /// How far ahead of the clock one event may move it: an event stamped
    /// further ahead moves it only when the next is too (a gap in the
    /// feed), so that a mistyped year or a sender's wrong clock neither
    /// raises `overdue` for everything open nor makes what follows it
    /// stale. Default `30d`, the duplicate horizon: a jump past it is the
    /// one whose harm cannot be undone (every event read after it older
    /// than the horizon, ignored as stale); a shorter one at worst raises
    /// `overdue` early, followed by `resolved`.
    #[serde(default = "d_max_clock_jump")]
    pub max_clock_jump: ConfigDuration,
}

fn d_allowed_lateness() -> ConfigDuration {
    ConfigDuration::minutes(5)
}
fn d_match_window_before() -> ConfigDuration {
    ConfigDuration::days(2)
}
fn d_match_window_after() -> ConfigDuration {
    ConfigDuration::days(30)
}
fn d_ack_horizon() -> ConfigDuration {
    ConfigDuration::days(7)
}
fn d_duplicate_horizon() -> ConfigDuration {
    ConfigDuration::days(30)
}
fn d_pending_document_horizon() -> ConfigDuration {
    ConfigDuration::days(30)
}
fn d_max_clock_jump() -> ConfigDuration {
    ConfigDuration::days(30)
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            allowed_lateness: d_allowed_lateness(),
            match_window_before: d_match_window_before(),
            match_window_after: d_match_window_after(),
            unconfirmed_after: None,
            ack_horizon: d_ack_horizon(),
            duplicate_horizon: d_duplicate_horizon(),
            pending_document_horizon: d_pending_document_horizon(),
            max_clock_jump: d_max_clock_jump(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_defaults_and_keys_override() {
        let c: TrackerConfig = toml::from_str("").unwrap();
        assert_eq!(c, TrackerConfig::default());
        let c: TrackerConfig =
            toml::from_str("allowed_lateness = \"0s\"\nunconfirmed_after = 3600").unwrap();
        assert_eq!(c.allowed_lateness.as_secs(), 0);
        assert_eq!(c.unconfirmed_after.unwrap().as_secs(), 3600);
        let e = toml::from_str::<TrackerConfig>("alowed_lateness = \"1m\"").unwrap_err();
        assert!(e.to_string().contains("alowed_lateness"), "{e}");
    }
}
