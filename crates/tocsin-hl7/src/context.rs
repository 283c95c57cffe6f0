//! State shared while one message is normalised: the parsed message, the
//! configuration, its header and the warnings gathered so far.

use chrono::{DateTime, Utc};
use tocsin_event::{Warning, WarningCode};

use crate::Hl7Config;
use crate::header::Header;
use crate::message::{Parsed, Seg};
use crate::time::{ClockChange, parse_noting};

/// One message being normalised.
pub(crate) struct Ctx<'p, 'a> {
    pub p: &'p Parsed<'a>,
    pub cfg: &'p Hl7Config,
    pub header: Header,
    pub warnings: Vec<Warning>,
}

impl Ctx<'_, '_> {
    /// An optional timestamp field (first component). An unreadable value is
    /// `None` plus a `bad_timestamp` warning keeping the raw text.
    pub(crate) fn timestamp(
        &mut self,
        seg: Option<Seg<'_>>,
        field: usize,
    ) -> Option<DateTime<Utc>> {
        let seg = seg?;
        let raw = seg.value(field)?;
        match parse_noting(&raw, self.cfg.timezone) {
            Ok((t, None)) => Some(t),
            Ok((t, Some(change))) => {
                self.clock_change(change, format!("{}-{field}", seg.name()), raw.into_owned());
                Some(t)
            }
            Err(e) => {
                let location = format!("{}-{field}", seg.name());
                self.warn(
                    WarningCode::BadTimestamp,
                    format!("timestamp in {location} ignored: {e}"),
                    Some(raw.into_owned()),
                    location,
                );
                None
            }
        }
    }

    /// Warns that a local time without offset fell in a clock change's
    /// hour: taken, and said, since the sender's clock may have meant the
    /// other reading (an hour either way).
    pub(crate) fn clock_change(&mut self, change: ClockChange, location: String, raw: String) {
        let guess = match change {
            ClockChange::Repeated => {
                "falls in the hour the clocks repeat when summer time ends: \
                 the first pass (summer time) is taken"
            }
            ClockChange::Missing => {
                "falls in the hour the clocks skip when summer time starts: \
                 it is read with the offset before the change, an hour later \
                 on the clock"
            }
        };
        self.warn(
            WarningCode::BadTimestamp,
            format!("local time in {location} {guess}; send an offset to be exact"),
            Some(raw),
            location,
        );
    }

    /// Records a tolerated problem.
    pub(crate) fn warn(
        &mut self,
        code: WarningCode,
        message: String,
        raw: Option<String>,
        location: String,
    ) {
        self.warnings.push(Warning {
            code,
            message,
            raw,
            location: Some(location),
        });
    }
}
