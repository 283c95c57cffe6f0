//! FHIR times into UTC, and the tolerant pre-pass for date-times sent
//! without an offset.
//!
//! fhir-sdk reads `dateTime` and `instant` strictly (RFC 3339: seconds and an
//! offset are required once a time is given), as the FHIR specification
//! says. Some senders omit the offset or the seconds. Before a resource goes
//! to its model, [`tolerate_times`] rewrites such values: an offset-less time
//! is local time in the configured zone (as for HL7), and missing seconds are
//! `:00`. Date-only values stay as they are and are read as local midnight.

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use fhir_sdk::{Date, Instant};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Keys whose string values are never times (free text, codes, identifiers),
/// so the pre-pass leaves them alone even if they look like one.
const NOT_TIMES: &[&str] = &[
    "div",
    "value",
    "display",
    "text",
    "reference",
    "code",
    "system",
    "url",
    "data",
    "title",
    "description",
    "id",
    "fullUrl",
];

/// Reads a fhir-sdk model from the JSON text of one resource.
///
/// Text the model accepts is read straight from the input in one pass.
/// Text it refuses is read again through a `Value` after [`tolerate_times`]
/// (a date-time sent without an offset or seconds is the usual reason), and
/// that second result, success or error, stands. The pre-pass only rewrites
/// strings shaped like a date-time without an offset or seconds; a strict
/// model refuses those wherever it expects a `dateTime` or `instant`, and
/// the other elements tocsin reads (ids, codes, identifiers, references,
/// URLs) cannot validly hold one. So conforming text reads the same either
/// way, and the one-pass route is taken whenever it can be.
///
/// Both routes read text with the same deserialiser: the rewritten `Value`
/// is written out and read again rather than handed to `T::deserialize`.
/// Deserialising from a `Value` would instantiate every model's serde code a
/// second time, for `&Value`: the fhir-sdk models are large, and this crate
/// is already the slowest of the workspace to compile. The extra write costs
/// only the rare tolerated input. Its errors carry no position, as a `Value`'s would not:
/// a line and column of the rewritten text would point nowhere in the input.
///
/// Each date-time read as local time for want of an offset is noted in
/// `local`, for the warning the input's events carry.
pub(crate) fn model<T: DeserializeOwned>(
    text: &str,
    tz: Tz,
    local: &LocalTimes,
) -> Result<T, serde_json::Error> {
    serde_json::from_str(text).or_else(|_| {
        let mut value: Value = serde_json::from_str(text)?;
        tolerate(&mut value, tz, &mut |raw| local.note(raw));
        serde_json::from_str(&value.to_string()).map_err(without_position)
    })
}

/// The date-times of one input that came without an offset and were read
/// as local time: a guess (a sender on UTC is an hour out all summer), so
/// each of the input's events says so, and `tocsin_event_warnings_total`
/// counts it.
#[derive(Debug, Default)]
pub(crate) struct LocalTimes {
    count: std::cell::Cell<usize>,
    first: std::cell::RefCell<Option<String>>,
}

impl LocalTimes {
    fn note(&self, raw: &str) {
        self.count.set(self.count.get() + 1);
        self.first
            .borrow_mut()
            .get_or_insert_with(|| raw.to_owned());
    }

    /// The warning for the input's events, when any time was so read.
    pub(crate) fn warning(&self, tz: Tz) -> Option<tocsin_event::Warning> {
        let first = self.first.borrow().clone()?;
        Some(tocsin_event::Warning {
            code: tocsin_event::WarningCode::BadTimestamp,
            message: format!(
                "{} date-time(s) without a UTC offset read as local time in {tz} \
                 (FHIR requires an offset once a time is given): the sender's clock may \
                 have meant another zone",
                self.count.get()
            ),
            raw: Some(first),
            location: None,
        })
    }
}

/// The error's message without the ` at line L column C` that serde_json
/// appends when it knows a position.
fn without_position(e: serde_json::Error) -> serde_json::Error {
    let text = e.to_string();
    let message = match text.rsplit_once(" at line ") {
        Some((message, _)) if e.line() != 0 => message.to_owned(),
        _ => text,
    };
    serde::de::Error::custom(message)
}

/// Rewrites, in place, every date-time string that lacks an offset or seconds
/// (see the module documentation). Other values are untouched.
pub(crate) fn tolerate_times(value: &mut Value, tz: Tz) {
    tolerate(value, tz, &mut |_| {});
}

/// As [`tolerate_times`], telling `local` each value read as local time
/// (not those only missing their seconds).
fn tolerate(value: &mut Value, tz: Tz, local: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let Value::String(s) = v {
                    if !NOT_TIMES.contains(&k.as_str()) {
                        fix_in_place(s, tz, local);
                    }
                } else {
                    tolerate(v, tz, local);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                if let Value::String(s) = v {
                    fix_in_place(s, tz, local);
                } else {
                    tolerate(v, tz, local);
                }
            }
        }
        _ => {}
    }
}

/// Rewrites `s` as [`fix_datetime`] says, telling `local` when it was read
/// as local time.
fn fix_in_place(s: &mut String, tz: Tz, local: &mut dyn FnMut(&str)) {
    if let Some((fixed, offsetless)) = fix_datetime(s, tz) {
        if offsetless {
            local(s);
        }
        *s = fixed;
    }
}

/// The RFC 3339 form of a FHIR-like date-time that lacks an offset or
/// seconds, or is written as some engines write it (a space for the `T`, an
/// offset without its colon, `+0100`), and whether it lacked the offset
/// (read as local time); `None` when the value needs no fixing or is not a
/// date-time.
fn fix_datetime(s: &str, tz: Tz) -> Option<(String, bool)> {
    let b = s.as_bytes();
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
    {
        return None;
    }
    // Split a trailing zone designator off the clock part.
    let zone_at = s[11..].find(['Z', 'z', '+', '-']).map(|i| i + 11);
    let (clock, zone) = match zone_at {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let spaced = b[10] == b' ';
    let clock = if spaced {
        format!("{}T{}", &clock[..10], &clock[11..])
    } else {
        clock.to_owned()
    };
    // `+0100`: the offset without its colon.
    let zb = zone.as_bytes();
    let colonless = zb.len() == 5 && zb[1..].iter().all(u8::is_ascii_digit);
    let zone = if colonless {
        format!("{}:{}", &zone[..3], &zone[3..])
    } else {
        zone.to_owned()
    };
    let naive = NaiveDateTime::parse_from_str(&clock, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&clock, "%Y-%m-%dT%H:%M"))
        .ok()?;
    let has_seconds = clock.len() > 16;
    match (zone.is_empty(), has_seconds) {
        (false, true) if spaced || colonless => Some((format!("{clock}{zone}"), false)),
        (false, true) => None,
        (false, false) => Some((format!("{clock}:00{zone}"), false)),
        (true, _) => Some((
            local_to_utc(naive, tz)
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::AutoSi, false),
            true,
        )),
    }
}

/// A wall-clock time in `tz` as UTC. An ambiguous time (the repeated hour in
/// autumn) is the earlier reading; a time in the spring gap is read with the
/// offset in force before the gap.
pub(crate) fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        // Unreachable for real zones (gaps are at most an hour); reading the
        // clock as UTC keeps this total without panicking.
        .map(|d| d.with_timezone(&Utc));
    local.unwrap_or_else(|| naive.and_utc())
}

/// `t`, unless it is before [`tocsin_event::EARLIEST_YEAR`] (a `0000-01-01`
/// period end is no discharge time): then no time, which callers treat as
/// an absent one (a fallback with a warning, or a rejection).
fn plausible(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (t.year() >= tocsin_event::EARLIEST_YEAR).then_some(t)
}

/// A FHIR `instant` in UTC.
pub(crate) fn instant_utc(i: &Instant) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i.0.unix_timestamp(), i.0.nanosecond()).and_then(plausible)
}

/// A FHIR `dateTime` in UTC: a partial date is the start of its period in
/// local time.
pub(crate) fn datetime_utc(d: &fhir_sdk::DateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match d {
        fhir_sdk::DateTime::DateTime(i) => instant_utc(i),
        fhir_sdk::DateTime::Date(date) => date_utc(date, tz),
    }
}

/// A FHIR Period's `end` in UTC. A partial date ends with its period
/// (FHIR: the end "includes any matching date/time"): `2024-01-15` ends at
/// 23:59:59 local on the 15th, `2024-01` on 31 January, `2024` on 31
/// December. Read as its first instant, a discharge dated only by its day
/// was due 24 hours after the midnight before it (a summary sent that
/// evening was late), and one dated by its month ended before it began.
pub(crate) fn period_end_utc(d: &fhir_sdk::DateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let date = match d {
        fhir_sdk::DateTime::DateTime(i) => return instant_utc(i),
        fhir_sdk::DateTime::Date(date) => date,
    };
    let first = first_day(date)?;
    let last = match date {
        Date::Year(_) => first.checked_add_months(Months::new(12))?.pred_opt()?,
        Date::YearMonth(..) => first.checked_add_months(Months::new(1))?.pred_opt()?,
        Date::Date(_) => first,
    };
    plausible(local_to_utc(last.and_hms_opt(23, 59, 59)?, tz))
}

/// A FHIR `date` as local midnight (of its first day) in UTC.
pub(crate) fn date_utc(d: &Date, tz: Tz) -> Option<DateTime<Utc>> {
    plausible(local_to_utc(first_day(d)?.and_hms_opt(0, 0, 0)?, tz))
}

/// The first day of a FHIR `date`'s period (a year, a month or a day).
fn first_day(d: &Date) -> Option<NaiveDate> {
    match d {
        Date::Year(y) => NaiveDate::from_ymd_opt(*y, 1, 1),
        Date::YearMonth(y, m) => NaiveDate::from_ymd_opt(*y, u8::from(*m).into(), 1),
        Date::Date(d) => {
            NaiveDate::from_ymd_opt(d.year(), u8::from(d.month()).into(), d.day().into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    /// A partial period end is the last second of its period, local time.
    #[test]
    fn a_partial_period_end_is_the_end_of_its_period() {
        let end = |s: &str| {
            let d: fhir_sdk::DateTime = serde_json::from_value(Value::from(s)).unwrap();
            period_end_utc(&d, London).map(|t| t.to_rfc3339())
        };
        let at = |s: &str| Some(s.to_string());
        assert_eq!(end("2024-01-15"), at("2024-01-15T23:59:59+00:00"));
        assert_eq!(end("2024-07-15"), at("2024-07-15T22:59:59+00:00"));
        assert_eq!(end("2024-02"), at("2024-02-29T23:59:59+00:00"));
        assert_eq!(end("2023-12"), at("2023-12-31T23:59:59+00:00"));
        assert_eq!(end("2024"), at("2024-12-31T23:59:59+00:00"));
        assert_eq!(end("2024-01-15T10:00:00Z"), at("2024-01-15T10:00:00+00:00"));
        assert_eq!(end("1799-05"), None);
    }

    /// A time before 1800 is no time at all.
    #[test]
    fn times_before_1800_are_none() {
        assert_eq!(date_utc(&Date::Year(0), London), None);
        assert_eq!(date_utc(&Date::Year(1799), London), None);
        assert!(date_utc(&Date::Year(1800), London).is_some());
        let instant = |s: &str| -> Instant { serde_json::from_value(Value::from(s)).unwrap() };
        assert_eq!(instant_utc(&instant("0000-01-01T00:00:00Z")), None);
        assert!(instant_utc(&instant("2024-01-01T00:00:00Z")).is_some());
    }

    #[test]
    fn offsetless_times_are_local_with_summer_time() {
        let fixed = |s| fix_datetime(s, London);
        let local = |s: &str| Some((s.to_owned(), true));
        assert_eq!(
            fixed("2024-07-01T10:00:00"),
            local("2024-07-01T10:00:00+01:00")
        );
        assert_eq!(
            fixed("2024-01-01T10:00"),
            local("2024-01-01T10:00:00+00:00")
        );
        // Only the seconds missing: not read as local time.
        assert_eq!(
            fixed("2024-01-01T10:00+02:00"),
            Some(("2024-01-01T10:00:00+02:00".to_owned(), false))
        );
        assert_eq!(fix_datetime("2024-01-01T10:00:00Z", London), None);
        assert_eq!(fix_datetime("2024-01-01", London), None);
        assert_eq!(fix_datetime("not a time at all..", London), None);
    }

    /// As some engines write a date-time: a space for the `T`, an offset
    /// without its colon. Rewritten as they say (no local-time guess), so
    /// that a summary is not rejected for the form of its date.
    #[test]
    fn a_space_for_the_t_and_an_offset_without_its_colon_are_read() {
        let fixed = |s| fix_datetime(s, London);
        let exact = |s: &str| Some((s.to_owned(), false));
        assert_eq!(
            fixed("2024-07-01 10:00:00+01:00"),
            exact("2024-07-01T10:00:00+01:00")
        );
        assert_eq!(
            fixed("2024-07-01T10:00:00+0100"),
            exact("2024-07-01T10:00:00+01:00")
        );
        assert_eq!(
            fixed("2024-07-01 10:00-0500"),
            exact("2024-07-01T10:00:00-05:00")
        );
        assert_eq!(
            fixed("2024-07-01 10:00:00"),
            Some(("2024-07-01T10:00:00+01:00".to_owned(), true))
        );
        assert_eq!(fixed("2024-07-01T10:00:00+01"), None);
        assert_eq!(fixed("2024-07-01 and more text"), None);
    }

    #[test]
    fn ambiguous_and_missing_hours() {
        // 27 Oct 2024 01:30 happens twice in London: the earlier (BST) reading.
        let t = NaiveDateTime::parse_from_str("2024-10-27T01:30:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(
            local_to_utc(t, London).to_rfc3339(),
            "2024-10-27T00:30:00+00:00"
        );
        // 31 Mar 2024 01:30 does not exist in London: read with GMT.
        let t = NaiveDateTime::parse_from_str("2024-03-31T01:30:00", "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(
            local_to_utc(t, London).to_rfc3339(),
            "2024-03-31T01:30:00+00:00"
        );
    }

    #[test]
    fn prepass_skips_text_fields() {
        let mut v = serde_json::json!({
            "start": "2024-07-01T10:00:00",
            "value": "2024-07-01T10:00:00",
            "x": ["2024-07-01T10:00:00"]
        });
        tolerate_times(&mut v, London);
        assert_eq!(v["start"], "2024-07-01T10:00:00+01:00");
        assert_eq!(v["value"], "2024-07-01T10:00:00");
        assert_eq!(v["x"][0], "2024-07-01T10:00:00+01:00");
    }

    #[test]
    fn tolerated_text_reads_as_if_sent_with_offsets() {
        use fhir_sdk::r4b::resources::Encounter;
        let text = |start: &str| {
            format!(
                r#"{{"resourceType":"Encounter","status":"finished",
                "class":{{"code":"IMP"}},"period":{{"start":"{start}"}}}}"#
            )
        };
        let tolerated: Encounter =
            model(&text("2024-07-01T10:00"), London, &LocalTimes::default()).unwrap();
        let strict: Encounter = model(
            &text("2024-07-01T10:00:00+01:00"),
            London,
            &LocalTimes::default(),
        )
        .unwrap();
        assert_eq!(tolerated, strict);
    }

    #[test]
    fn errors_after_the_prepass_name_no_position() {
        use fhir_sdk::r4b::resources::Encounter;
        // The offset-less time sends it through the pre-pass; the status is
        // what the model then refuses.
        let text = r#"{"resourceType":"Encounter","status":"no-such-status",
            "class":{"code":"IMP"},"period":{"start":"2024-07-01T10:00"}}"#;
        let e = model::<Encounter>(text, London, &LocalTimes::default()).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("no-such-status"), "{message}");
        assert!(!message.contains(" at line "), "{message}");
        assert_eq!(e.line(), 0);
    }
}
