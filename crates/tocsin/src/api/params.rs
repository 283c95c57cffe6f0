//! Query parameters, read strictly: an unknown or repeated parameter, or a
//! value outside its closed set, is a 400 naming the parameter and why.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};
use serde::de::DeserializeOwned;
use tocsin_tracker::compliance::GroupBy;

use super::error::ApiError;

/// A range of times, either end open: `[from, to)`.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The parameters of one request, checked against the names a route takes.
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Collects `pairs`, refusing names not in `allowed` and repeats.
    pub fn new(pairs: Vec<(String, String)>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            // The query is decoded lossily (invalid UTF-8 becomes U+FFFD):
            // `site=%FF` was answered as a search for a site named "�".
            // No name, identifier, code or time holds the replacement
            // character, so its presence means bytes that were not text.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                let shown = if name.contains('\u{FFFD}') {
                    "(query string)"
                } else {
                    name.as_str()
                };
                return Err(ApiError::bad(
                    shown,
                    "not UTF-8 text once percent-decoded (or holds U+FFFD)",
                ));
            }
            if !allowed.contains(&name.as_str()) {
                let takes = if allowed.is_empty() {
                    "this route takes no parameters".to_string()
                } else {
                    format!("this route takes {}", allowed.join(", "))
                };
                return Err(ApiError::bad(&name, format!("unknown parameter ({takes})")));
            }
            // No identifier, code or time holds one, and PostgreSQL
            // refuses it in a parameter (a 500 rather than an answer).
            if value.contains('\0') {
                return Err(ApiError::bad(&name, "holds a NUL character"));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad(&name, "given more than once"));
            }
        }
        Ok(Self(map))
    }

    /// The raw value; an empty value counts as absent (`?status=`).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A value from one of the model's snake_case enums (status, kinds).
    pub fn closed<T: DeserializeOwned>(
        &self,
        name: &str,
        choices: &str,
    ) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| {
                serde_json::from_value(serde_json::Value::String(v.to_string())).map_err(|_| {
                    ApiError::bad(name, format!("unknown value {v:?} (use one of {choices})"))
                })
            })
            .transpose()
    }

    /// A page size between 1 and `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(v) = self.text("limit") else {
            return Ok(default.min(max));
        };
        let n: usize = v
            .parse()
            .map_err(|_| ApiError::bad("limit", format!("{v:?} is not a whole number")))?;
        if n == 0 || n > max {
            return Err(ApiError::bad("limit", format!("{n} is outside 1..={max}")));
        }
        Ok(n)
    }

    /// A time: RFC 3339, or a date (`2024-01-31`) meaning its midnight in
    /// `zone` (the policy's zone, the one reports count months in), within
    /// the years 0001 to 9999 UTC ([`tocsin_store::time_in_range`]): outside
    /// them PostgreSQL fails the query (a 500) where SQLite answers, so the
    /// API refuses such a time itself and both backends answer alike.
    pub fn time<Z: TimeZone>(
        &self,
        name: &str,
        zone: &Z,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        let t = match DateTime::parse_from_rfc3339(v) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => midnight(name, v, zone)?,
        };
        // chrono reads a second 60 at any minute as a leap second, which
        // no answer can then echo as a valid RFC 3339 time (clients'
        // parsers refuse `07:04:60Z`); UTC has had none since 2016.
        if t.nanosecond() >= 1_000_000_000 {
            return Err(ApiError::bad(
                name,
                format!("{v:?} names a leap second (second 60): give the second before or after"),
            ));
        }
        if !tocsin_store::time_in_range(&t) {
            return Err(ApiError::bad(
                name,
                format!("{v:?} is outside the years 0001 to 9999 (UTC) the store can hold"),
            ));
        }
        Ok(Some(t))
    }

    /// A half-open range of times, `[from, to)`, each end read as
    /// [`Params::time`] and either absent; `to` must come after `from`.
    pub fn range<Z: TimeZone>(&self, from: &str, to: &str, zone: &Z) -> Result<Range, ApiError> {
        let (f, t) = (self.time(from, zone)?, self.time(to, zone)?);
        if let (Some(f), Some(t)) = (f, t)
            && f >= t
        {
            return Err(ApiError::bad(to, format!("must be after `{from}`")));
        }
        Ok((f, t))
    }

    /// `group_by=month,document_kind,...` ([`GroupBy::parse_list`]); the
    /// standard four ([`GroupBy::STANDARD`]) when absent.
    pub fn group_by(&self) -> Result<Vec<GroupBy>, ApiError> {
        let Some(v) = self.text("group_by") else {
            return Ok(GroupBy::STANDARD.to_vec());
        };
        GroupBy::parse_list(v).map_err(|e| ApiError::bad("group_by", e.to_string()))
    }
}

/// A date (`2024-01-31`) given as parameter `name`: its midnight in `zone`.
fn midnight<Z: TimeZone>(name: &str, v: &str, zone: &Z) -> Result<DateTime<Utc>, ApiError> {
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        // A `+` offset sent unencoded arrives as a space.
        let hint = if v.contains(' ') {
            " (a `+` in a time offset must be sent as %2B: unencoded it reads as a space)"
        } else {
            ""
        };
        ApiError::bad(
            name,
            format!(
                "{v:?} is neither an RFC 3339 time (2024-01-31T09:00:00Z) nor a date \
                 (2024-01-31){hint}"
            ),
        )
    })?;
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::bad(name, format!("midnight of {v} does not exist locally")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        Params::new(
            q.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            allowed,
        )
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = params(&[("stauts", "open")], &["status"]).err().unwrap();
        assert!(e.to_string().contains("`stauts`"), "{e}");
        let e = params(&[("status", "open"), ("status", "late")], &["status"])
            .err()
            .unwrap();
        assert!(e.to_string().contains("more than once"), "{e}");
        let e = params(&[("limit", "1")], &[]).err().unwrap();
        assert!(
            e.to_string().contains("this route takes no parameters"),
            "{e}"
        );
        // An offset's `+` sent unencoded arrives as a space: said so.
        let p = params(&[("since", "2024-01-31T09:00:00 01:00")], &["since"]).unwrap();
        let e = p.time("since", &Utc).unwrap_err();
        assert!(e.to_string().contains("%2B"), "{e}");
    }

    #[test]
    fn dates_are_midnight_in_the_zone() {
        let p = params(&[("from", "2024-07-01")], &["from"]).unwrap();
        let bst = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            p.time("from", &bst).unwrap().unwrap().to_rfc3339(),
            "2024-06-30T23:00:00+00:00"
        );
        let p = params(&[("from", "July")], &["from"]).unwrap();
        assert!(p.time("from", &Utc).is_err());
    }

    #[test]
    fn times_outside_the_years_every_store_holds_are_refused() {
        for bad in [
            "-5000-01-01",
            "+10000-01-01",
            "0000-12-31",
            "0000-12-31T23:59:59.999999Z",
            "0001-01-01T00:30:00+01:00",
        ] {
            let p = params(&[("since", bad)], &["since"]).unwrap();
            let e = p.time("since", &Utc).unwrap_err();
            assert!(
                matches!(&e, ApiError::BadParameter { parameter, reason }
                    if parameter == "since" && reason.contains("0001 to 9999")),
                "{bad}: {e}"
            );
        }
        for ok in [
            "0001-01-01",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let p = params(&[("since", ok)], &["since"]).unwrap();
            assert!(p.time("since", &Utc).unwrap().is_some(), "{ok}");
        }
        // A range's ends are each read as a time.
        let p = params(&[("from", "-5000-01-01")], &["from", "to"]).unwrap();
        let e = p.range("from", "to", &Utc).unwrap_err();
        assert!(e.to_string().contains("`from`"), "{e}");
    }

    /// A second 60 (read by chrono as a leap second at any minute) is
    /// refused: echoed back, `07:04:60Z` is no valid RFC 3339 time for the
    /// client's parser.
    #[test]
    fn a_leap_second_is_refused() {
        for bad in ["2025-03-04T12:34:60+05:30", "2024-06-30T23:59:60Z"] {
            let p = params(&[("since", bad)], &["since"]).unwrap();
            let e = p.time("since", &Utc).unwrap_err();
            assert!(e.to_string().contains("leap second"), "{bad}: {e}");
        }
        let p = params(&[("since", "2024-06-30T23:59:59.999Z")], &["since"]).unwrap();
        assert!(p.time("since", &Utc).unwrap().is_some());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        for bad in ["0", "1001", "-1", "ten"] {
            let p = params(&[("limit", bad)], &["limit"]).unwrap();
            assert!(p.limit(100, 1000).is_err(), "{bad}");
        }
        let p = params(&[], &["limit"]).unwrap();
        assert_eq!(p.limit(100, 1000).unwrap(), 100);
    }

    #[test]
    fn group_by_follows_the_report_order() {
        let p = params(&[("group_by", "site,month")], &["group_by"]).unwrap();
        assert_eq!(p.group_by().unwrap(), [GroupBy::Month, GroupBy::Site]);
        let p = params(&[("group_by", "month,ward")], &["group_by"]).unwrap();
        assert!(p.group_by().unwrap_err().to_string().contains("ward"));
    }
}
