//! Durations as written in configuration: `"24h"`, `"14d"`, `"1d12h"`,
//! `"90m"`, `"30s"`, `"2w"`, or a bare integer number of seconds.
//!
//! Every unit is real elapsed time: a day is 86,400 seconds, so "24h" across
//! the change to summer time is still 24 hours of the clock on the wall of a
//! server running UTC, which is what the contract measures.

use chrono::TimeDelta;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A non-negative elapsed-time length read from configuration.
///
/// It exists so that policy and tracker settings share one documented,
/// human-friendly format with one error message for bad values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigDuration(TimeDelta);

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text was empty.
    #[error("empty duration (write e.g. \"24h\", \"14d\" or a number of seconds)")]
    Empty,
    /// A number was not followed by a unit.
    #[error(
        "duration `{0}`: a number must be followed by a unit (s, m, h, d or w, or seconds, minutes, hours, days, weeks)"
    )]
    MissingUnit(String),
    /// An unknown unit.
    #[error(
        "duration `{text}`: unknown unit `{unit}` (use s, m, h, d or w, or seconds, minutes, hours, days, weeks)"
    )]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit found.
        unit: String,
    },
    /// A unit without a number, or junk.
    #[error("duration `{0}`: expected a number before each unit")]
    MissingNumber(String),
    /// A number with a fractional part (`1.5d`).
    #[error(
        "duration `{0}`: whole numbers only; combine units instead (`1d12h` for a day and a half, `90m` for an hour and a half)"
    )]
    Fraction(String),
    /// Longer than [`ConfigDuration::MAX_SECS`].
    #[error("duration `{0}` is too large (at most 36500d, a hundred years)")]
    Overflow(String),
    /// Negative.
    #[error("duration {0} is negative")]
    Negative(i64),
}

impl ConfigDuration {
    /// The longest duration read: a hundred years. Far beyond any deadline
    /// or window, and short enough that adding it to any timestamp in
    /// milliseconds cannot overflow (nor make chrono panic).
    pub const MAX_SECS: i64 = 36_500 * 86_400;

    /// Builds from seconds (negative values and more than
    /// [`ConfigDuration::MAX_SECS`] are refused).
    pub fn from_secs(secs: i64) -> Result<Self, DurationError> {
        if secs < 0 {
            return Err(DurationError::Negative(secs));
        }
        if secs > Self::MAX_SECS {
            return Err(DurationError::Overflow(secs.to_string()));
        }
        Ok(Self(TimeDelta::seconds(secs)))
    }

    /// Builds from hours; for defaults in code.
    pub const fn hours(h: i64) -> Self {
        Self(TimeDelta::seconds(h * 3600))
    }

    /// Builds from days of 24 hours; for defaults in code.
    pub const fn days(d: i64) -> Self {
        Self(TimeDelta::seconds(d * 86_400))
    }

    /// Builds from minutes; for defaults in code.
    pub const fn minutes(m: i64) -> Self {
        Self(TimeDelta::seconds(m * 60))
    }

    /// The length as a chrono delta.
    pub fn delta(self) -> TimeDelta {
        self.0
    }

    /// The length in whole seconds.
    pub fn as_secs(self) -> i64 {
        self.0.num_seconds()
    }

    /// Parses the textual form (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(DurationError::Empty);
        }
        if let Ok(secs) = t.parse::<i64>() {
            return Self::from_secs(secs);
        }
        let mut total: i64 = 0;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(DurationError::MissingNumber(text.to_string()));
            }
            let n: i64 = rest[..digits]
                .parse()
                .map_err(|_| DurationError::Overflow(text.to_string()))?;
            rest = rest[digits..].trim_start();
            if rest.starts_with(['.', ',']) {
                return Err(DurationError::Fraction(text.to_string()));
            }
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            if unit_len == 0 {
                return Err(DurationError::MissingUnit(text.to_string()));
            }
            let unit = &rest[..unit_len];
            let scale = match unit {
                "s" | "sec" | "secs" | "second" | "seconds" => 1,
                "m" | "min" | "mins" | "minute" | "minutes" => 60,
                "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
                "d" | "day" | "days" => 86_400,
                "w" | "week" | "weeks" => 604_800,
                _ => {
                    return Err(DurationError::UnknownUnit {
                        text: text.to_string(),
                        unit: unit.to_string(),
                    });
                }
            };
            total = n
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .filter(|v| *v <= Self::MAX_SECS)
                .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
            rest = rest[unit_len..].trim_start();
        }
        Self::from_secs(total)
    }
}

impl fmt::Display for ConfigDuration {
    /// Writes the shortest exact form, e.g. `1d12h`, `90s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.as_secs();
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= scale {
                write!(f, "{}{unit}", s / scale)?;
                s %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"24h\" or \"14d\", or a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                ConfigDuration::from_secs(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                let v = i64::try_from(v).map_err(|_| E::custom("duration too large"))?;
                ConfigDuration::from_secs(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(ConfigDuration::parse("24h").unwrap().as_secs(), 86_400);
        assert_eq!(ConfigDuration::parse("14d").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(ConfigDuration::parse("1d 12h").unwrap().as_secs(), 129_600);
        assert_eq!(ConfigDuration::parse("90").unwrap().as_secs(), 90);
        assert_eq!(ConfigDuration::parse("2w").unwrap().as_secs(), 1_209_600);
        // Words as people write them, singular or plural.
        assert_eq!(ConfigDuration::parse("5 minutes").unwrap().as_secs(), 300);
        assert_eq!(
            ConfigDuration::parse("1 minute 30 seconds")
                .unwrap()
                .as_secs(),
            90
        );
        assert_eq!(ConfigDuration::parse("1 second").unwrap().as_secs(), 1);
        assert_eq!(ConfigDuration::parse("2 days").unwrap().as_secs(), 172_800);
        assert_eq!(ConfigDuration::parse("1d12h").unwrap().to_string(), "1d12h");
    }

    #[test]
    fn refuses_bad_text_with_reason() {
        assert!(matches!(
            ConfigDuration::parse("24x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            ConfigDuration::parse("h"),
            Err(DurationError::MissingNumber(_))
        ));
        // A policy author's `1.5d` was told a number must be followed by a
        // unit: it is told to combine units.
        for text in ["1.5d", "0,5h", "2.5"] {
            let e = ConfigDuration::parse(text).unwrap_err();
            assert_eq!(e, DurationError::Fraction(text.into()), "{text}");
            assert!(e.to_string().contains("`1d12h`"), "{e}");
        }
        assert!(matches!(
            ConfigDuration::parse("-5"),
            Err(DurationError::Negative(-5))
        ));
        assert!(matches!(
            ConfigDuration::parse(""),
            Err(DurationError::Empty)
        ));
        assert!(matches!(
            ConfigDuration::parse("99999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        // A bare number of seconds is bounded alike (chrono would panic on
        // this one), and so is a number written as TOML's integer.
        for text in ["9223372036854776", "36501d"] {
            assert!(
                matches!(ConfigDuration::parse(text), Err(DurationError::Overflow(_))),
                "{text}"
            );
        }
        assert_eq!(
            ConfigDuration::parse("36500d").unwrap().as_secs(),
            ConfigDuration::MAX_SECS
        );
        let e = toml::from_str::<toml::Value>("x = 9223372036854776")
            .unwrap()
            .get("x")
            .cloned()
            .unwrap()
            .try_into::<ConfigDuration>()
            .unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
