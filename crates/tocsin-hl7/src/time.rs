//! HL7 timestamps (TS / DTM) to UTC instants.
//!
//! hl7-parser has `datetime::parse_timestamp`, but it silently ignores an
//! offset given in hours only, does not check that the date exists, and
//! leaves zone resolution to the caller; this module is a small strict parser
//! that reports what is wrong instead.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use tocsin_event::EARLIEST_YEAR;

/// Why a timestamp cannot be read. The text is patient-free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The digits do not form `YYYY[MM[DD[HH[MM[SS[.S...]]]]]]`.
    #[error("expected YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ], found {0} digits")]
    Shape(usize),
    /// A character other than digits, `.` and an offset sign.
    #[error("unexpected character in timestamp")]
    Character,
    /// The offset is not `+HHMM` or `-HHMM` within ±14:00.
    #[error("the UTC offset must be +HHMM or -HHMM")]
    Offset,
    /// The date or time does not exist (month 13, 31 April, hour 24...).
    #[error("the date or time does not exist")]
    OutOfRange,
    /// A year before [`EARLIEST_YEAR`]: a placeholder (`00000101`) or a
    /// typing error, not a time anything in a hospital happened.
    #[error("the year is before {EARLIEST_YEAR}")]
    Implausible,
}

/// Whether an HL7 timestamp gives a date at most (`YYYY[MM[DD]]`), no hour.
pub(crate) fn date_only(raw: &str) -> bool {
    raw.trim().bytes().take_while(u8::is_ascii_digit).count() <= 8
}

/// Parses an HL7 timestamp of any precision, from `YYYY` to fractional
/// seconds, with or without a `+/-HHMM` offset.
///
/// Missing parts take their lowest value (`2024` is 1 January 2024 00:00).
/// Without an offset the time is local time in `tz`:
/// - in the autumn repeated hour (01:00-02:00 on the last Sunday of October
///   in London) the earlier instant, the first pass still in summer time, is
///   taken: a discharge recorded then is not made to look an hour later than
///   it may have been;
/// - a time in the spring gap (01:00-02:00 on the last Sunday of March in
///   London), which no clock shows, is read with the offset in force before
///   the gap, which shifts it forward by the gap's length (01:30 is read as
///   01:30 GMT, which the clocks show as 02:30 BST).
pub fn parse_timestamp(raw: &str, tz: Tz) -> Result<DateTime<Utc>, TimestampError> {
    parse_noting(raw, tz).map(|(t, _)| t)
}

/// A local time (no offset) that the zone's clock change makes a guess of:
/// what [`parse_timestamp`] chose is right only if the sender meant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChange {
    /// In the autumn's repeated hour: the earlier of two instants taken.
    Repeated,
    /// In the spring's gap, which no clock shows: read with the offset
    /// before it.
    Missing,
}

/// As [`parse_timestamp`], and whether the time fell in a clock change's
/// repeated or missing hour, so that the guess can be told.
pub fn parse_noting(
    raw: &str,
    tz: Tz,
) -> Result<(DateTime<Utc>, Option<ClockChange>), TimestampError> {
    let raw = raw.trim();
    let (main, offset) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i..])),
        None => (raw, None),
    };
    let (digits, fraction) = match main.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (main, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Character);
    }
    let n = digits.len();
    if !matches!(n, 4 | 6 | 8 | 10 | 12 | 14) || (fraction.is_some() && n != 14) {
        return Err(TimestampError::Shape(n));
    }
    let part = |at: usize, default: u32| -> u32 {
        digits
            .get(at..at + 2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let year: i32 = digits[..4].parse().map_err(|_| TimestampError::Shape(n))?;
    if year < EARLIEST_YEAR {
        return Err(TimestampError::Implausible);
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let v: u32 = f.parse().map_err(|_| TimestampError::Character)?;
            v * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return Err(TimestampError::Character),
    };
    let naive = NaiveDate::from_ymd_opt(year, part(4, 1), part(6, 1))
        .and_then(|d| d.and_hms_nano_opt(part(8, 0), part(10, 0), part(12, 0), nanos))
        .ok_or(TimestampError::OutOfRange)?;
    match offset {
        Some(o) => {
            let fixed = parse_offset(o)?;
            fixed
                .from_local_datetime(&naive)
                .single()
                .map(|t| (t.with_timezone(&Utc), None))
                .ok_or(TimestampError::OutOfRange)
        }
        None => Ok(resolve_local(naive, tz)),
    }
}

fn parse_offset(o: &str) -> Result<FixedOffset, TimestampError> {
    let (sign, rest) = o.split_at(1);
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Offset);
    }
    let hh: i32 = rest[..2].parse().map_err(|_| TimestampError::Offset)?;
    let mm: i32 = rest[2..].parse().map_err(|_| TimestampError::Offset)?;
    // ±14:00 at most, as the error says (+1459 was let through).
    if hh * 60 + mm > 14 * 60 || mm > 59 {
        return Err(TimestampError::Offset);
    }
    let secs = (hh * 3600 + mm * 60) * if sign == "-" { -1 } else { 1 };
    FixedOffset::east_opt(secs).ok_or(TimestampError::Offset)
}

/// Local wall-clock time in `tz` to UTC; see [`parse_timestamp`] for the
/// repeated and missing hours.
fn resolve_local(naive: NaiveDateTime, tz: Tz) -> (DateTime<Utc>, Option<ClockChange>) {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), None),
        LocalResult::Ambiguous(earlier, _) => {
            (earlier.with_timezone(&Utc), Some(ClockChange::Repeated))
        }
        LocalResult::None => {
            // In the gap: read with the offset in force a day before (the
            // offset before the gap), which moves the instant past the gap.
            let before = naive.and_utc() - Duration::days(1);
            let offset = tz.offset_from_utc_datetime(&before.naive_utc());
            let fixed = chrono::Offset::fix(&offset);
            let t = (naive - Duration::seconds(i64::from(fixed.local_minus_utc()))).and_utc();
            (t, Some(ClockChange::Missing))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A year before 1800 is no time anything in a hospital happened: a
    /// placeholder refused, not a discharge in year 0.
    #[test]
    fn implausible_years_are_refused() {
        for raw in ["00000101000000", "0000", "17991231235959+0000"] {
            assert_eq!(
                parse_timestamp(raw, London),
                Err(TimestampError::Implausible),
                "{raw}"
            );
        }
        assert_eq!(
            parse_timestamp("18000101000000+0000", London),
            Ok(utc("1800-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn every_precision() {
        assert_eq!(
            parse_timestamp("2024", London),
            Ok(utc("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("202402", London),
            Ok(utc("2024-02-01T00:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240215", London),
            Ok(utc("2024-02-15T00:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("2024021514", London),
            Ok(utc("2024-02-15T14:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("202402151430", London),
            Ok(utc("2024-02-15T14:30:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240215143005", London),
            Ok(utc("2024-02-15T14:30:05Z"))
        );
        assert_eq!(
            parse_timestamp("20240215143005.1234", London),
            Ok(utc("2024-02-15T14:30:05.1234Z"))
        );
    }

    #[test]
    fn summer_winter_and_explicit_offsets() {
        // BST: local 10:00 is 09:00 UTC.
        assert_eq!(
            parse_timestamp("20240715100000", London),
            Ok(utc("2024-07-15T09:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240115100000", London),
            Ok(utc("2024-01-15T10:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240715100000+0100", London),
            Ok(utc("2024-07-15T09:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240115100000-0500", London),
            Ok(utc("2024-01-15T15:00:00Z"))
        );
        assert_eq!(
            parse_timestamp("20240715100000.5+0000", London),
            Ok(utc("2024-07-15T10:00:00.5Z"))
        );
    }

    #[test]
    fn changeover_hours() {
        // 27 Oct 2024: 01:30 happens twice; the earlier (BST) instant is taken.
        assert_eq!(
            parse_timestamp("202410270130", London),
            Ok(utc("2024-10-27T00:30:00Z"))
        );
        // 31 Mar 2024: 01:30 never happens; read as 01:30 GMT (02:30 BST).
        assert_eq!(
            parse_timestamp("202403310130", London),
            Ok(utc("2024-03-31T01:30:00Z"))
        );
        assert_eq!(
            parse_timestamp("202403310230", London),
            Ok(utc("2024-03-31T01:30:00Z"))
        );
    }

    #[test]
    fn rejects_nonsense() {
        assert_eq!(
            parse_timestamp("20241301", London),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("20240431", London),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("2024013124", London),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_timestamp("20240", London),
            Err(TimestampError::Shape(5))
        );
        assert_eq!(parse_timestamp("", London), Err(TimestampError::Shape(0)));
        assert_eq!(
            parse_timestamp("2024x1", London),
            Err(TimestampError::Character)
        );
        assert_eq!(
            parse_timestamp("20240101+01", London),
            Err(TimestampError::Offset)
        );
        for beyond in ["20240101+1459", "20240101-1401", "20240101+1500"] {
            assert_eq!(
                parse_timestamp(beyond, London),
                Err(TimestampError::Offset),
                "{beyond}"
            );
        }
        assert!(parse_timestamp("20240101+1400", London).is_ok());
        assert!(parse_timestamp("20240101-1400", London).is_ok());
        assert_eq!(
            parse_timestamp("2024010112.5", London),
            Err(TimestampError::Shape(10))
        );
        assert_eq!(
            parse_timestamp("20240101120000.", London),
            Err(TimestampError::Character)
        );
        assert_eq!(parse_timestamp("-", London), Err(TimestampError::Shape(0)));
    }
}
