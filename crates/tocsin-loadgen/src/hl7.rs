//! HL7 v2.4 rendering: ADT^A01/A02/A03/A04, MDM^T02 and ACK, shaped like a
//! UK PAS and EPR send them (NHS number in PID-3 typed `NH`, GP practice in
//! PD1-3, visit number in PV1-19, local times with their offset).

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::context::{Ctx, Patient};
use crate::model::EncounterKind;
use crate::plan::Encounter;
use crate::rng::Rng;

/// The ADT trigger events rendered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Adt {
    A01,
    A02,
    A03,
    A04,
}

impl Adt {
    fn code(self) -> &'static str {
        match self {
            Self::A01 => "A01",
            Self::A02 => "A02",
            Self::A03 => "A03",
            Self::A04 => "A04",
        }
    }
    /// MSH-9.3, the message structure (v2.4's table 0354): A04 shares
    /// A01's; a receiver that checks it refused `ADT_A01` on an A02 or A03.
    fn structure(self) -> &'static str {
        match self {
            Self::A01 | Self::A04 => "ADT_A01",
            Self::A02 => "ADT_A02",
            Self::A03 => "ADT_A03",
        }
    }
    fn step(self) -> char {
        match self {
            Self::A01 | Self::A04 => 'S',
            Self::A02 => 'T',
            Self::A03 => 'E',
        }
    }
}

fn class(ctx: &Ctx, kind: EncounterKind) -> &str {
    let d = &ctx.profile.discharges;
    match kind {
        EncounterKind::Inpatient => &d.inpatient_class,
        EncounterKind::DayCase => &d.day_case_class,
        EncounterKind::Emergency => &d.emergency_class,
        EncounterKind::Outpatient => &d.outpatient_class,
    }
}

fn msh(out: &mut String, ctx: &Ctx, e: &Encounter, ts: &str, kind: &str, mid: &str, to: &str) {
    let site = &ctx.profile.sites[e.site];
    let _ = write!(
        out,
        "MSH|^~\\&|PAS|{site}|TIE|{to}|{ts}||{kind}|{mid}|P|2.4|||AL|NE|GBR\r"
    );
}

fn pid(out: &mut String, ctx: &Ctx, p: &Patient<'_>) {
    let trust = &ctx.profile.trust;
    let _ = write!(
        out,
        "PID|1||{}^^^NHS^NH~{}^^^{trust}^MR||{}^{}^^^{}||{}|{}|||{} {}^^{}^^{}^GBR^H||{}^PRN^PH||ENG|S|C|||||A^White British^NHSETH||||||||\r",
        p.nhs,
        p.mrn,
        p.family,
        p.given,
        if p.female { "MS" } else { "MR" },
        p.birth.format("%Y%m%d"),
        if p.female { "F" } else { "M" },
        p.house,
        p.street,
        p.town,
        p.postcode,
        p.phone,
    );
    let _ = write!(
        out,
        "PD1|||{} SURGERY^^{}|{}^{}^{}^^^DR\r",
        p.town, p.practice, p.gp_code, p.family, p.given
    );
}

fn pv1(out: &mut String, ctx: &Ctx, e: &Encounter, ward_step: usize, discharged: bool) {
    let n = &ctx.profile.names;
    let site = &ctx.profile.sites[e.site];
    let (loc, service) = match e.kind {
        EncounterKind::Outpatient => (n.clinics[e.place].clone(), n.clinics[e.place].as_str()),
        _ => {
            let ward = &n.wards[(e.place + ward_step) % n.wards.len()];
            (format!("{ward}^BED{}^1^{site}", 1 + (e.index % 24)), "430")
        }
    };
    let mut f: Vec<String> = vec![String::new(); 46];
    f[0] = "PV1".into();
    f[1] = "1".into();
    f[2] = class(ctx, e.kind).into();
    f[3] = loc;
    f[4] = if e.kind == EncounterKind::Emergency {
        "EM"
    } else {
        "EL"
    }
    .into();
    f[7] = format!(
        "C{:06}^CONSULTANT^{}",
        e.index % 997,
        n.family[e.index as usize % n.family.len()]
    );
    f[10] = service.into();
    f[14] = "GP".into();
    f[18] = "NHS".into();
    f[19] = format!("{}^^^{}^VN", ctx.visit(e), ctx.profile.trust);
    f[39] = site.clone();
    f[44] = ctx.hl7_ts(e.start);
    if discharged {
        f[36] = "01".into();
        f[37] = "HOME".into();
        f[45] = ctx.hl7_ts(e.end);
    }
    out.push_str(&f.join("|"));
    out.push('\r');
}

/// An ADT message of `e`.
pub(crate) fn adt(ctx: &Ctx, e: &Encounter, trigger: Adt, at: DateTime<Utc>) -> Vec<u8> {
    let mut out = String::with_capacity(1400);
    let ts = ctx.hl7_ts(at);
    let p = ctx.patient(e.patient);
    let code = trigger.code();
    msh(
        &mut out,
        ctx,
        e,
        &ts,
        &format!("ADT^{code}^{}", trigger.structure()),
        &ctx.message_id(e, trigger.step()),
        &ctx.profile.trust,
    );
    let _ = write!(
        out,
        "EVN|{code}|{ts}|||U{:05}^WARD^CLERK|{ts}\r",
        e.index % 10_007
    );
    pid(&mut out, ctx, &p);
    let _ = write!(
        out,
        "NK1|1|{}^PARTNER|SPO^Spouse|{} {}^^{}^^{}^GBR|{}\r",
        p.family, p.house, p.street, p.town, p.postcode, p.phone
    );
    let _ = write!(
        out,
        "ROL|1|AD|PP^Primary care provider|{}^{}^{}^^^DR\r",
        p.gp_code, p.family, p.given
    );
    let discharged = matches!(trigger, Adt::A03);
    pv1(
        &mut out,
        ctx,
        e,
        usize::from(matches!(trigger, Adt::A02 | Adt::A03) && e.transfer.is_some()),
        discharged,
    );
    let n = &ctx.profile.names;
    let mut r = Rng::derive(ctx.seed, 0x4443_0000_0000_0000 ^ e.index);
    let _ = write!(
        out,
        "PV2|||^{}\r",
        n.diagnoses[r.below(n.diagnoses.len())]
            .split('^')
            .nth(1)
            .unwrap_or("")
    );
    for i in 0..r.below(3) {
        let _ = write!(out, "AL1|{}|DA|^{}|MO\r", i + 1, r.pick(&n.allergies));
    }
    if discharged {
        for i in 0..1 + r.below(3) {
            let _ = write!(out, "DG1|{}||{}^I10|||F\r", i + 1, r.pick(&n.diagnoses));
        }
    }
    out.into_bytes()
}

/// An MDM^T02 carrying `e`'s document, issued at `at`.
pub(crate) fn mdm(ctx: &Ctx, e: &Encounter, at: DateTime<Utc>) -> Vec<u8> {
    let lines = ctx.text_lines(e);
    let mut out = String::with_capacity(1200 + lines.len() * 80);
    let ts = ctx.hl7_ts(at);
    let p = ctx.patient(e.patient);
    let docs = &ctx.profile.documents;
    let (doc_type, title) = match e.kind {
        EncounterKind::Outpatient => (&docs.hl7_clinic_letter, "Clinic letter"),
        _ => (&docs.hl7_discharge_summary, "Discharge summary"),
    };
    msh(
        &mut out,
        ctx,
        e,
        &ts,
        "MDM^T02^MDM_T02",
        &ctx.message_id(e, 'D'),
        p.practice,
    );
    let _ = write!(out, "EVN|T02|{ts}\r");
    pid(&mut out, ctx, &p);
    pv1(&mut out, ctx, e, 0, true);
    let _ = write!(
        out,
        "TXA|1|{doc_type}|TX|{ts}|C{:06}^CONSULTANT|{ts}||||||{}^{}|||||AU||AV\r",
        e.index % 997,
        ctx.document_id(e),
        ctx.profile.trust
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = write!(out, "OBX|{}|TX|{doc_type}^{title}||{line}||||||F\r", i + 1);
    }
    out.into_bytes()
}

/// The GP system's ACK of `e`'s MDM message.
pub(crate) fn ack(ctx: &Ctx, e: &Encounter, at: DateTime<Utc>, accepted: bool) -> Vec<u8> {
    let p = ctx.patient(e.patient);
    let site = &ctx.profile.sites[e.site];
    let code = if accepted { "AA" } else { "AE" };
    let text = if accepted {
        ""
    } else {
        "|Patient not registered at this practice"
    };
    format!(
        "MSH|^~\\&|GPSYS|{}|PAS|{site}|{}||ACK^T02^ACK|{}|P|2.4\rMSA|{code}|{}{text}\r",
        p.practice,
        ctx.hl7_ts(at),
        ctx.message_id(e, 'A'),
        ctx.message_id(e, 'D'),
    )
    .into_bytes()
}
