//! Times written as RFC 3339 text in one piece.
//!
//! chrono's own `Serialize` for `DateTime` hands serde a `Display` that
//! writes a character at a time, and serde_json escapes each character as
//! a string of its own: 1,400 instructions a time, 1.8 % of a replay into a
//! store, where every expectation, transmission and alert carries several
//! (docs/performance.md, "Seventeenth session"). These format the text
//! first and write it once. The text is chrono's exactly (`AutoSi`, `Z`),
//! so stored records, alerts and the schemas do not change, and chrono's
//! `Deserialize` still reads them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// For `#[serde(serialize_with = "crate::time_text::serialize")]` on a
/// `DateTime<Utc>` field.
pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The same for an `Option<DateTime<Utc>>` field: `None` is `null`.
pub(crate) fn serialize_option<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        t: DateTime<Utc>,
        #[serde(serialize_with = "serialize_option")]
        o: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        t: DateTime<Utc>,
        o: Option<DateTime<Utc>>,
    }

    /// Whole seconds, each sub-second precision `AutoSi` chooses, a leap
    /// second, and years outside four digits: byte for byte chrono's text.
    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2025, 3, 30, 0, 59, 59).unwrap();
        let mut times = vec![
            base,
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [1, 1_000, 1_000_000, 123_456_789, 999_999_999, 1_500_000_000] {
            let naive = base.naive_utc().and_utc().timestamp();
            times.push(DateTime::from_timestamp(naive, nanos).unwrap());
        }
        for t in times {
            for o in [None, Some(t)] {
                let ours = serde_json::to_string(&Ours { t, o }).unwrap();
                let chronos = serde_json::to_string(&Chronos { t, o }).unwrap();
                assert_eq!(ours, chronos, "{t:?}");
            }
        }
    }
}
