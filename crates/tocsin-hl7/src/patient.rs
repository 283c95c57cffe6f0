//! Patient identity (PID-3, MRG-1) and registered GP practice (PD1-3).

use tocsin_event::{Identifier, Merge, MergeScope, Patient, WarningCode, validate_nhs_number};

use crate::context::Ctx;
use crate::message::{Rep, Seg};

/// The patient from PID, or an empty patient when the message has none.
pub(crate) fn patient(ctx: &mut Ctx<'_, '_>) -> Patient {
    let Some(pid) = ctx.p.segment("PID") else {
        return Patient::default();
    };
    let (mut nhs_number, local_ids) = identifiers(ctx, pid, 3);
    if nhs_number.is_none()
        && ctx.cfg.nhs_number_in_pid2
        && let Some(value) = pid.comp(2, 1)
    {
        nhs_number = checked_nhs(ctx, value, "PID", 2);
    }
    Patient {
        nhs_number,
        local_ids,
    }
}

/// The identifiers a merge or identifier change (A34, A36, A39, A40, A42,
/// A46, A47, A50) retired, or a visit move (A45) took from: MRG-1 and the
/// visit in MRG-5.
pub(crate) fn merge(ctx: &mut Ctx<'_, '_>, mrg: Seg<'_>) -> Merge {
    let (prior_nhs_number, prior_local_ids) = identifiers(ctx, mrg, 1);
    Merge {
        prior_nhs_number,
        prior_local_ids,
        prior_encounter_id: mrg.value(5).map(|v| v.into_owned()),
        scope: MergeScope::Patient,
    }
}

/// An NHS number read from `segment`-`field`, when it passes the
/// modulus-11 check; else `None`, with an `invalid_nhs_number` warning that
/// keeps the raw value.
fn checked_nhs(
    ctx: &mut Ctx<'_, '_>,
    value: std::borrow::Cow<'_, str>,
    segment: &str,
    field: usize,
) -> Option<String> {
    match validate_nhs_number(&value) {
        Ok(n) => Some(n),
        Err(e) => {
            let location = format!("{segment}-{field}");
            ctx.warn(
                WarningCode::InvalidNhsNumber,
                format!("NHS number in {location} ignored: {e}"),
                Some(value.into_owned()),
                location,
            );
            None
        }
    }
}

/// Reads a CX list: the first valid NHS number, and every other identifier as
/// a local id. An NHS-marked value failing the modulus-11 check is dropped
/// with an `invalid_nhs_number` warning that keeps the raw value; so is a
/// second valid one that differs from the first (which patient the message
/// is about is then in doubt, and it was dropped without a word).
fn identifiers(
    ctx: &mut Ctx<'_, '_>,
    seg: Seg<'_>,
    field: usize,
) -> (Option<String>, Vec<Identifier>) {
    let mut nhs = None;
    let mut local = Vec::new();
    for rep in seg.repeats(field) {
        let Some(value) = rep.comp(1) else { continue };
        if is_nhs(ctx, &rep) {
            if let Some(n) = checked_nhs(ctx, value, seg.name(), field) {
                match &nhs {
                    None => nhs = Some(n),
                    Some(first) if *first != n => {
                        let location = format!("{}-{field}", seg.name());
                        ctx.warn(
                            WarningCode::InvalidNhsNumber,
                            format!(
                                "a second, different NHS number in {location} ignored: the first is kept"
                            ),
                            Some(n),
                            location,
                        );
                    }
                    Some(_) => {}
                }
            }
            continue;
        }
        // system: assigning authority (namespace, else universal id), else
        // identifier type, else "local" when the sender names neither.
        let system = rep
            .sub(4, 1)
            .or_else(|| rep.sub(4, 2))
            .or_else(|| rep.comp(5))
            .map_or_else(|| "local".to_owned(), |s| s.into_owned());
        local.push(Identifier {
            system,
            value: value.into_owned(),
        });
    }
    (nhs, local)
}

fn is_nhs(ctx: &Ctx<'_, '_>, rep: &Rep<'_>) -> bool {
    let cfg = ctx.cfg;
    let by_type = rep.comp(5).is_some_and(|t| {
        cfg.nhs_identifier_types
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&t))
    });
    by_type
        || [rep.sub(4, 1), rep.sub(4, 2)]
            .into_iter()
            .flatten()
            .any(|a| {
                cfg.nhs_assigning_authorities
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&a))
            })
}

/// The registered GP practice's ODS code from PD1-3 (XON).
///
/// HL7 v2.3 and v2.4 carry the organisation's id in XON component 3 ("ID
/// number"); v2.5 deprecated that numeric component and added component 10
/// ("organization identifier"), which suits alphanumeric ODS codes. The
/// component of the message's version is read first and the other one is the
/// fallback, since UK senders mix the two.
pub(crate) fn gp_practice(ctx: &Ctx<'_, '_>) -> Option<String> {
    let pd1 = ctx.p.segment("PD1")?;
    let (first, second) = if ctx.header.xon_id_in_component_10() {
        (10, 3)
    } else {
        (3, 10)
    };
    // The version's component first, but one that looks like an ODS code
    // before one that does not: a v2.4 feed giving a local number in
    // component 3 and the practice's code in 10 (`Leeds^L^12345^^^^^^^
    // B86001`) grouped and filtered by the local number.
    let candidates = [pd1.comp(3, first), pd1.comp(3, second)];
    let ods = candidates
        .iter()
        .flatten()
        .find(|c| crate::document::looks_like_ods(c));
    ods.or_else(|| candidates.iter().flatten().next())
        .map(|v| v.clone().into_owned())
}
