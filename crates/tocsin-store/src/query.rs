//! Read queries for the HTTP API: filters, limits and keyset-pagination
//! cursors.

use chrono::{DateTime, Utc};
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_tracker::{AlertKind, ExpectationStatus};

use crate::StoreError;

/// Filters for listing expectations. Results come in deadline order (then
/// id), so the most urgent come first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectationQuery {
    /// Only this status.
    pub status: Option<ExpectationStatus>,
    /// Only this document kind.
    pub document_kind: Option<DocumentKind>,
    /// Only this encounter kind.
    pub encounter_kind: Option<EncounterKind>,
    /// Only this site.
    pub site: Option<String>,
    /// At most this many (at least 1).
    pub limit: usize,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

impl Default for ExpectationQuery {
    fn default() -> Self {
        Self {
            status: None,
            document_kind: None,
            encounter_kind: None,
            site: None,
            limit: 100,
            cursor: None,
        }
    }
}

/// Filters for listing alerts, in `raised_at` order (then `alert_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// Only alerts raised at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only this kind.
    pub kind: Option<AlertKind>,
    /// At most this many (at least 1).
    pub limit: usize,
}

impl Default for AlertQuery {
    fn default() -> Self {
        Self {
            since: None,
            kind: None,
            limit: 100,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The results.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page of expectations ended: the sort key of its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectationCursor {
    pub deadline_us: i64,
    pub id: String,
}

const CURSOR_VERSION: &str = "e1";

impl ExpectationCursor {
    /// The opaque text handed to clients.
    pub fn encode(&self) -> String {
        hex::encode(format!("{CURSOR_VERSION}|{}|{}", self.deadline_us, self.id))
    }

    /// Reads a cursor a client sent back.
    pub fn decode(s: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(s).map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (not hex)",
        })?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (not UTF-8)",
        })?;
        let mut parts = text.splitn(3, '|');
        let (Some(version), Some(deadline), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(StoreError::InvalidCursor {
                reason: "not a cursor this server issued (wrong shape)",
            });
        };
        if version != CURSOR_VERSION {
            return Err(StoreError::InvalidCursor {
                reason: "cursor from another version of tocsin",
            });
        }
        let deadline_us = deadline.parse().map_err(|_| StoreError::InvalidCursor {
            reason: "not a cursor this server issued (bad position)",
        })?;
        Ok(Self {
            deadline_us,
            id: id.to_string(),
        })
    }
}

/// Checks a limit and returns it as a SQL parameter.
pub(crate) fn check_limit(limit: usize) -> Result<i64, StoreError> {
    if limit == 0 {
        return Err(StoreError::InvalidQuery {
            reason: "limit must be at least 1",
        });
    }
    i64::try_from(limit).map_err(|_| StoreError::InvalidQuery {
        reason: "limit too large",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_ids_with_separators() {
        let c = ExpectationCursor {
            deadline_us: -5,
            id: "a|b|c".into(),
        };
        assert_eq!(ExpectationCursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn foreign_cursors_are_refused_with_a_reason() {
        for bad in [
            "zz",
            &hex::encode("e1|x"),
            &hex::encode("e9|1|a"),
            &hex::encode("e1|one|a"),
        ] {
            assert!(
                matches!(
                    ExpectationCursor::decode(bad),
                    Err(StoreError::InvalidCursor { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn zero_limit_is_refused() {
        assert!(check_limit(0).is_err());
        assert_eq!(check_limit(5).unwrap(), 5);
    }
}
