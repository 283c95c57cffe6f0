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
    if ended_at.is_none() {
        if ending == Ending::Attendance {
            ended_at = started_at;
        }
        if ending != Ending::None && ended_at.is_none() {
            ended_at = ctx.timestamp(evn, 6).or_else(|| ctx.timestamp(evn, 2));
        }
    } else if ending != Ending::None
        && let Some(day) = ended_at
        && pv1.value(45).is_some_and(|raw| date_only(&raw))
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
        }
    }
    // PV1-39 servicing facility, else the facility of the assigned location.
    let site = pv1
        .value(39)
        .or_else(|| pv1.repeats(3).next().and_then(|r| r.sub(4, 1)))
        .map(|v| v.into_owned());
    Some(Encounter {
        id: pv1.value(19).map(|v| v.into_owned()),
        reference: None,
        kind,
        started_at,
        ended_at,
        site,
        specialty: pv1.value(10).map(|v| v.into_owned()),
    })
}

/// Whether an HL7 timestamp gives a date at most (`YYYY[MM[DD]]`), no hour.
fn date_only(raw: &str) -> bool {
    raw.trim().bytes().take_while(u8::is_ascii_digit).count() <= 8
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
