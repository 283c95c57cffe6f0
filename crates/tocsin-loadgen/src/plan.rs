//! Planning: which encounters end on a day, when each of their messages
//! falls, and how their documents turn out. Rendering is elsewhere.

use chrono::{DateTime, Duration, Utc};

use crate::model::{EncounterKind, Outcome};
use crate::profile::Profile;
use crate::rng::Rng;

/// How a document is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocFormat {
    /// HL7 MDM^T02.
    Hl7Mdm,
    /// FHIR R4 document bundle.
    FhirDocument,
    /// ITK3 STU3 message.
    Itk3,
}

/// The acknowledgement of a transmission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AckPlan {
    /// When it comes.
    pub(crate) time: DateTime<Utc>,
    /// Accepted (AA / ok) or refused (AE / fatal-error).
    pub(crate) accepted: bool,
}

/// The document an encounter expects, when it comes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocPlan {
    /// When it is issued (and sent).
    pub(crate) time: DateTime<Utc>,
    /// How it is sent.
    pub(crate) format: DocFormat,
    /// Its acknowledgement, if any.
    pub(crate) ack: Option<AckPlan>,
}

/// One planned encounter and everything that follows from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encounter {
    /// 0-based, in planning order; every identifier derives from it.
    pub(crate) index: u64,
    /// Its kind.
    pub(crate) kind: EncounterKind,
    /// Index into the population.
    pub(crate) patient: u32,
    /// Index into `sites`.
    pub(crate) site: usize,
    /// Index into `wards` (inpatients) or `clinics` (outpatients).
    pub(crate) place: usize,
    /// Admission or arrival.
    pub(crate) start: DateTime<Utc>,
    /// Ward transfer, inpatients only.
    pub(crate) transfer: Option<DateTime<Utc>>,
    /// Discharge or end of attendance.
    pub(crate) end: DateTime<Utc>,
    /// The document, unless missing.
    pub(crate) document: Option<DocPlan>,
    /// The planned outcome.
    pub(crate) outcome: Outcome,
}

fn secs(hours: f64) -> Duration {
    Duration::milliseconds((hours * 3_600_000.0) as i64)
}

/// Plans one encounter ending at `end`.
pub(crate) fn encounter(
    p: &Profile,
    rng: &mut Rng,
    index: u64,
    kind: EncounterKind,
    end: DateTime<Utc>,
    patients: usize,
) -> Encounter {
    let d = &p.discharges;
    let stay = match kind {
        EncounterKind::Inpatient => {
            // Skewed towards short stays: most are a few days.
            let [lo, hi] = d.inpatient_stay_hours;
            let u = rng.unit();
            secs(lo + (hi - lo) * u * u * u)
        }
        EncounterKind::DayCase => secs(rng.range(d.day_case_stay_hours)),
        EncounterKind::Emergency => secs(rng.range(d.emergency_stay_hours)),
        EncounterKind::Outpatient => secs(rng.range(d.outpatient_minutes) / 60.0),
    };
    let start = end - stay;
    let transfer = (kind == EncounterKind::Inpatient && rng.chance(d.transfer_share)).then(|| {
        start
            + Duration::milliseconds(
                (stay.num_milliseconds() as f64 * rng.range([0.1, 0.6])) as i64,
            )
    });
    let docs = &p.documents;
    let due = secs(match kind {
        EncounterKind::Outpatient => docs.clinic_letter_due_hours,
        _ => docs.discharge_summary_due_hours,
    });
    let u = rng.unit();
    let (outcome, multiple) = if u < docs.missing_share {
        (Outcome::Missing, None)
    } else if u < docs.missing_share + docs.late_share {
        (Outcome::Late, Some(rng.range(docs.late_multiple)))
    } else {
        (Outcome::OnTime, Some(rng.range(docs.on_time_fraction)))
    };
    let document = multiple.map(|m| {
        let time = end + Duration::milliseconds((due.num_milliseconds() as f64 * m) as i64);
        let format = match rng.weighted(&[docs.hl7_mdm, docs.fhir_document, docs.itk3]) {
            0 => DocFormat::Hl7Mdm,
            1 => DocFormat::FhirDocument,
            _ => DocFormat::Itk3,
        };
        let ack =
            (format != DocFormat::FhirDocument && rng.chance(p.acks.share)).then(|| AckPlan {
                time: time + secs(rng.range(p.acks.delay_seconds) / 3600.0),
                accepted: !rng.chance(p.acks.error_share),
            });
        DocPlan { time, format, ack }
    });
    let places = match kind {
        EncounterKind::Outpatient => p.names.clinics.len(),
        _ => p.names.wards.len(),
    };
    Encounter {
        index,
        kind,
        patient: rng.below(patients) as u32,
        site: rng.below(p.sites.len()),
        place: rng.below(places),
        start,
        transfer,
        end,
        document,
        outcome,
    }
}
