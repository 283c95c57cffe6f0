//! Encounters (PV1) and appointments (SCH, AIS).

use tocsin_event::{Appointment, Encounter, EncounterKind, WarningCode};

use crate::context::Ctx;

/// Which end, if any, a message marks: where its encounter's end is read
/// from when PV1-45 (discharge date/time) is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Not an end: PV1-45 only.
    None,
    /// An A03: EVN-6 (event occurred), else EVN-2 (recorded).
    Discharge,
    /// An A04 taken as an outpatient attendance: PV1-44 (the attendance's
    /// start), else as a discharge.
    Attendance,
}

/// The encounter from PV1, or `None` when the message has no PV1.
///
/// `ending` says which fallbacks fill an empty PV1-45 (see [`Ending`]).
pub(crate) fn encounter(ctx: &mut Ctx<'_, '_>, ending: Ending) -> Option<Encounter> {
    let pv1 = ctx.p.segment("PV1")?;
    let evn = ctx.p.segment("EVN");
    let kind = match pv1.value(2) {
        Some(code) => Some(ctx.cfg.encounter_kind(&code).unwrap_or_else(|| {
            ctx.warn(
                WarningCode::UnmappedCode,
                "patient class in PV1-2 has no mapping in [hl7.patient_class]".to_owned(),
                Some(code.clone().into_owned()),
                "PV1-2".to_owned(),
            );
            EncounterKind::Other
        })),
        None => None,
    };
    let started_at = ctx.timestamp(Some(pv1), 44);
    let mut ended_at = ctx.timestamp(Some(pv1), 45);
    // PV1-45 as sent: present (else the end came from EVN), and a date
    // without a time of day.
    let (end_sent, end_is_date) = match pv1.value(45) {
        Some(raw) => (true, crate::time::date_only(&raw)),
        None => (false, false),
    };
    if ended_at.is_none() {
        if ending == Ending::Attendance {
            ended_at = started_at;
        }
        if ending != Ending::None && ended_at.is_none() {
            ended_at = ctx.timestamp(evn, 6).or_else(|| ctx.timestamp(evn, 2));
        }
    } else if ending != Ending::None
        && let Some(day) = ended_at
        && end_is_date
    {
        // A PAS that keeps the discharge date without its time: midnight
        // would start the 24 hours up to a day early. The event's own time
        // (EVN-6, else EVN-2) on that same local day is the better reading.
        let tz = ctx.cfg.timezone;
        let precise = ctx.timestamp(evn, 6).or_else(|| ctx.timestamp(evn, 2));
        if let Some(t) = precise
            && t.with_timezone(&tz).date_naive() == day.with_timezone(&tz).date_naive()
        {
            ended_at = Some(t);
        } else {
            // No event time that day (the A03 sent the next morning, or
            // none at all): local midnight stands, said as FHIR says it.
            ctx.warn(
                WarningCode::BadTimestamp,
                "PV1-45 is a date without a time and no event time (EVN-6, EVN-2) falls \
                 on that day: local midnight at its start is taken, which may start the \
                 deadline up to a day early"
                    .to_owned(),
                Some(day.to_rfc3339()),
                "PV1-45".to_owned(),
            );
        }
    }
    let from = if end_sent { "PV1-45" } else { "EVN" };
    if ending != Ending::None {
        ended_at = ended_at.map(|t| not_after_sending(ctx, evn, t, from));
    } else if let Some(t) = ended_at {
        // An update (A08) giving the end corrects the discharge time (see
        // the tracker): only a time it can stand by does. A date alone
        // would move the end to midnight, up to a day early; one after the
        // message was sent is no discharge yet.
        if t > ctx.header.sent_by() + END_AFTER_SENDING {
            warn_after_sending(ctx, t, "PV1-45", "ignored");
            ended_at = None;
        } else if end_is_date {
            ended_at = None;
        } else if let Some(start) = started_at.filter(|s| t < *s) {
            // A correction before the admission is a slip (a year typed
            // wrong): taken, it moved the discharge a year back, out of
            // every rule, and withdrew what was owed without a word.
            ctx.warn(
                WarningCode::BadTimestamp,
                format!(
                    "PV1-45 ({}) is before the admission (PV1-44 {}): the update's end is \
                     ignored, the discharge time stands",
                    t.to_rfc3339(),
                    start.to_rfc3339()
                ),
                None,
                "PV1-45".to_owned(),
            );
            ended_at = None;
        }
    }
    // PV1-39 servicing facility, else the facility of the assigned location.
    let site = pv1
        .value(39)
        .or_else(|| pv1.repeats(3).next().and_then(|r| r.sub(4, 1)))
        .map(|v| v.into_owned());
    let enc = Encounter {
        id: pv1.value(19).map(|v| v.into_owned()),
        reference: None,
        kind,
        started_at,
        ended_at,
        site,
        specialty: pv1.value(10).map(|v| v.into_owned()),
        discharge_disposition: pv1.value(36).map(|v| v.into_owned()),
    };
    ctx.warnings.extend(enc.ends_before_start(from.to_owned()));
    Some(enc)
}

/// How far after its message was sent (MSH-7) an end may fall: the systems'
/// clocks differ a little, and a discharge may be keyed a few minutes ahead.
const END_AFTER_SENDING: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// An end no message can record: later than the message was sent (a typed
/// date, `20240604` for `20240401`). Taken as it stands, it set the
/// expectation weeks ahead and, in a replay, moved the clock there: summaries
/// on time for other discharges were then stale and later discharges never
/// tracked. The first of EVN-6, EVN-2 and MSH-7 that is not later stands in,
/// with a warning.
fn not_after_sending(
    ctx: &mut Ctx<'_, '_>,
    evn: Option<crate::message::Seg<'_>>,
    end: chrono::DateTime<chrono::Utc>,
    from: &str,
) -> chrono::DateTime<chrono::Utc> {
    let sent = ctx.header.sent_at;
    let latest = ctx.header.sent_by() + END_AFTER_SENDING;
    if end <= latest {
        return end;
    }
    let stand_in = [ctx.timestamp(evn, 6), ctx.timestamp(evn, 2)]
        .into_iter()
        .flatten()
        .find(|t| *t <= latest)
        .unwrap_or(sent);
    let then = format!("{} taken instead", stand_in.to_rfc3339());
    warn_after_sending(ctx, end, from, &then);
    stand_in
}

/// The warning for an end later than its message was sent (read at
/// `location`), saying what became of it (`then`).
fn warn_after_sending(
    ctx: &mut Ctx<'_, '_>,
    end: chrono::DateTime<chrono::Utc>,
    location: &str,
    then: &str,
) {
    let message = format!(
        "the encounter's end ({}) is later than the message was sent (MSH-7 {}): {then}",
        end.to_rfc3339(),
        ctx.header.sent_at.to_rfc3339()
    );
    ctx.warn(
        WarningCode::BadTimestamp,
        message,
        Some(end.to_rfc3339()),
        location.to_owned(),
    );
}

/// The appointment of an SIU message: SCH-1 placer id (else SCH-2 filler
/// id); start from SCH-11 component 4 (TQ start date/time), else AIS-4.
pub(crate) fn appointment(ctx: &mut Ctx<'_, '_>) -> Option<Appointment> {
    let sch = ctx.p.segment("SCH")?;
    let mut starts_at = None;
    if let Some(raw) = sch.comp(11, 4) {
        match crate::time::parse_timestamp(&raw, ctx.cfg.timezone) {
            Ok(t) => starts_at = Some(t),
            Err(e) => ctx.warn(
                WarningCode::BadTimestamp,
                format!("appointment start in SCH-11 ignored: {e}"),
                Some(raw.into_owned()),
                "SCH-11".to_owned(),
            ),
        }
    }
    if starts_at.is_none() {
        let ais = ctx.p.segment("AIS");
        starts_at = ctx.timestamp(ais, 4);
    }
    Some(Appointment {
        id: sch
            .value(1)
            .or_else(|| sch.value(2))
            .map(|v| v.into_owned()),
        starts_at,
    })
}
