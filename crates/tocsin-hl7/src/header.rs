//! The MSH header: identity, type and version of a message.

use chrono::{DateTime, Utc};

use crate::message::Parsed;
use crate::time::{ClockChange, parse_noting};
use crate::{Hl7Config, Hl7Error};

/// Highest MSH field tocsin requires to be present (MSH-12, the version).
const LAST_REQUIRED_MSH_FIELD: usize = 12;

/// What MSH says about a message.
pub(crate) struct Header {
    /// MSH-9.1, e.g. `ADT`.
    pub code: String,
    /// MSH-9.2, else EVN-1 for ADT and MDM, e.g. `A03` (empty for a bare `ACK`).
    pub trigger: String,
    /// `ADT^A03`, or `ACK` when there is no trigger.
    pub message_type: String,
    /// MSH-10.
    pub message_id: String,
    /// MSH-7.
    pub sent_at: DateTime<Utc>,
    /// MSH-7 as sent, with the clock change it fell in when it gave no
    /// offset: the time taken is a guess, to be warned of.
    pub sent_at_guess: Option<(String, ClockChange)>,
    /// What is uncertain in `sent_at`, to be warned of: MSH-7 a date
    /// alone, or empty and EVN-2 taken.
    pub sent_at_note: Option<SentAtNote>,
    /// The latest the message can have been sent ([`Header::sent_by`]).
    sent_by: DateTime<Utc>,
    /// MSH-4.1.
    pub sending_facility: Option<String>,
    /// MSH-3.1.
    pub sending_application: Option<String>,
    /// MSH-6.1.
    pub receiving_facility: Option<String>,
    /// MSH-12.1.
    pub version: String,
}

/// Why the time a message was sent is less than MSH-7 precisely given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SentAtNote {
    /// MSH-7 is a date without a time: local midnight at its start is
    /// taken, and the message may have been sent up to a day later.
    DateOnly,
    /// MSH-7 is a date without a time, and EVN-2 a time that day: EVN-2
    /// is taken (a letter sent that evening was dated midnight, on time).
    DateTimedByEvn2,
    /// MSH-7 is empty (optional before v2.5): EVN-2, when the event was
    /// recorded, is taken.
    FromEvn2,
}

impl Header {
    /// The latest time the message can have been sent: the end of MSH-7's
    /// day when it gives a date alone (a day of 25 hours in autumn is
    /// within the hour's tolerance callers add). An end or a time checked
    /// against MSH-7 is checked against this: against the day's midnight,
    /// a discharge at 14:00 that day was "after sending" and replaced by
    /// midnight, its deadline 14 hours early.
    pub(crate) fn sent_by(&self) -> DateTime<Utc> {
        self.sent_by
    }

    /// Reads and checks MSH.
    pub(crate) fn read(p: &Parsed<'_>, cfg: &Hl7Config) -> Result<Self, Hl7Error> {
        let msh = p.segment("MSH").ok_or(Hl7Error::NotHl7)?;
        if msh.field_count() < LAST_REQUIRED_MSH_FIELD {
            return Err(Hl7Error::TruncatedMsh {
                location: format!("MSH-{}", msh.field_count() + 1),
            });
        }
        let version = msh.value(12).ok_or_else(|| missing("MSH-12"))?.into_owned();
        if !cfg.supported_versions.contains(&version) {
            // Quoted only when it looks like a version (`2.6`, `231`): MSH-12
            // holding something else may hold anything, a patient's
            // number or name among it.
            let looks_like_version = (1..=8).contains(&version.len())
                && version.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            return Err(Hl7Error::UnsupportedVersion {
                version: if looks_like_version {
                    version
                } else {
                    "(not shown: not a version number)".to_owned()
                },
                supported: cfg.supported_versions.join(", "),
            });
        }
        // In capitals, trimmed, as MSA-1 and the mapped codes are read: an
        // engine that sent `adt^a03` had its discharge read as `other`,
        // tracked by nothing and warned of by nothing.
        let code = msh
            .comp(9, 1)
            .ok_or_else(|| missing("MSH-9"))?
            .trim()
            .to_ascii_uppercase();
        // HL7 v2.3 ADT and MDM (both carry EVN) may leave the trigger out
        // of MSH-9 and give it in EVN-1.
        let trigger = msh
            .comp(9, 2)
            .or_else(|| {
                matches!(code.as_str(), "ADT" | "MDM")
                    .then(|| p.segment("EVN").and_then(|e| e.value(1)))
                    .flatten()
            })
            .map(|t| t.trim().to_ascii_uppercase())
            .unwrap_or_default();
        let message_type = if trigger.is_empty() {
            code.clone()
        } else {
            format!("{code}^{trigger}")
        };
        // A GUID in capitals is the same id as in lowercase: an ITK3 response
        // names it in lowercase (`tocsin_event::lowercase_uuid`).
        let message_id = msh.value(10).ok_or_else(|| missing("MSH-10"))?.into_owned();
        let message_id = tocsin_event::lowercase_uuid(message_id);
        // MSH-7 is optional before v2.5: EVN-2 (when the event was
        // recorded) stands in, as it does for the event's time.
        let evn2 = || p.segment("EVN").and_then(|e| e.value(2));
        let (raw_time, location, mut sent_at_note) = match msh.value(7) {
            Some(t) => (t, "MSH-7", None),
            None => (
                evn2().ok_or_else(|| missing("MSH-7"))?,
                "EVN-2",
                Some(SentAtNote::FromEvn2),
            ),
        };
        let (mut sent_at, change) =
            parse_noting(&raw_time, cfg.timezone).map_err(|e| Hl7Error::BadTimestamp {
                location: location.to_owned(),
                reason: e.to_string(),
            })?;
        let mut sent_by = sent_at;
        if sent_at_note.is_none() && crate::time::date_only(&raw_time) {
            sent_at_note = Some(SentAtNote::DateOnly);
            sent_by = sent_at + chrono::TimeDelta::days(1);
            // EVN-2 at a time that day says when, better than midnight.
            let day = |t: DateTime<Utc>| t.with_timezone(&cfg.timezone).date_naive();
            let evn2 = evn2()
                .filter(|raw| !crate::time::date_only(raw))
                .and_then(|raw| crate::time::parse_timestamp(&raw, cfg.timezone).ok())
                .filter(|t| day(*t) == day(sent_at));
            if let Some(t) = evn2 {
                sent_at = t;
                sent_at_note = Some(SentAtNote::DateTimedByEvn2);
            }
        }
        let sent_at_guess = change.map(|c| (raw_time.into_owned(), c));
        Ok(Self {
            code,
            trigger,
            message_type,
            message_id,
            sent_at,
            sent_at_guess,
            sent_at_note,
            sent_by,
            sending_facility: msh.value(4).map(|v| v.into_owned()),
            sending_application: msh.value(3).map(|v| v.into_owned()),
            receiving_facility: msh.value(6).map(|v| v.into_owned()),
            version,
        })
    }

    /// Whether the version's XON type carries the organisation identifier in
    /// component 10 (v2.5 and later) rather than component 3.
    pub(crate) fn xon_id_in_component_10(&self) -> bool {
        !["2.1", "2.2", "2.3", "2.4"]
            .iter()
            .any(|old| self.version.starts_with(old))
    }
}

pub(crate) fn missing(location: &str) -> Hl7Error {
    Hl7Error::MissingField {
        location: location.to_owned(),
    }
}
