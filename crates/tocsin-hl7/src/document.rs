//! Documents carried by MDM (TXA) and ORU^R01 (OBR/OBX) messages.

use tocsin_event::{Document, DocumentKind, WarningCode};

use crate::Hl7Error;
use crate::context::Ctx;
use crate::header::missing;
use crate::message::Seg;

/// Whether an ORU^R01 carries a document: it has a TXA, or its first OBR's
/// service (OBR-4) is in `[hl7.oru_document_type]` and an OBX's value type
/// (OBX-2) is one of `document_value_types` (TX, FT, ED by default). Not
/// the OBX alone: laboratory results carry comments as TX.
pub(crate) fn oru_carries_document(ctx: &Ctx<'_, '_>) -> bool {
    ctx.p.segment("TXA").is_some()
        || (oru_kind(ctx, ctx.p.segment("OBR")).is_some() && content_obx(ctx).is_some())
}

/// The document kind an ORU's OBR group names in OBR-4 (its code, else its
/// text), through `[hl7.oru_document_type]`.
fn oru_kind(ctx: &Ctx<'_, '_>, obr: Option<Seg<'_>>) -> Option<DocumentKind> {
    let obr = obr?;
    ctx.cfg
        .oru_document_kind(obr.comp(4, 1).as_deref(), obr.comp(4, 2).as_deref())
}

/// The first OBX whose value type (OBX-2) is one of `document_value_types`:
/// the one that holds the document's text.
fn content_obx<'p>(ctx: &Ctx<'p, '_>) -> Option<Seg<'p>> {
    ctx.p.segments("OBX").find(|obx| {
        obx.value(2).is_some_and(|t| {
            ctx.cfg
                .document_value_types
                .iter()
                .any(|v| v.eq_ignore_ascii_case(&t))
        })
    })
}

/// What the result status of an ORU^R01 document without TXA says of it. A
/// results feed sends a letter as preliminary, then final, then perhaps
/// corrected: only the final one is the transmission the contract counts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResultStatus {
    /// `F`, no status, or one not named below: the document was sent.
    Final,
    /// `C`: an amendment of a document already sent.
    Corrected,
    /// `X`, `D` or `W` (cancelled, deleted, sent for the wrong patient).
    Withdrawn,
    /// One of `[hl7] draft_result_statuses`: not sent as final yet.
    Draft {
        /// The status as sent.
        status: String,
        /// `OBR-25` or `OBX-11`.
        location: &'static str,
    },
}

/// The result status of an ORU^R01 without TXA: OBR-25 of the first OBR
/// (HL7 table 0123), else OBX-11 of the OBX holding the text (table 0085).
pub(crate) fn oru_result_status(ctx: &Ctx<'_, '_>) -> ResultStatus {
    let read = ctx
        .p
        .segment("OBR")
        .and_then(|obr| obr.value(25))
        .map(|v| (v, "OBR-25"))
        .or_else(|| content_obx(ctx)?.value(11).map(|v| (v, "OBX-11")));
    let Some((status, location)) = read else {
        return ResultStatus::Final;
    };
    let status = status.trim();
    match status.to_ascii_uppercase().as_str() {
        "C" => ResultStatus::Corrected,
        "X" | "D" | "W" => ResultStatus::Withdrawn,
        _ if ctx
            .cfg
            .draft_result_statuses
            .iter()
            .any(|d| d.eq_ignore_ascii_case(status)) =>
        {
            ResultStatus::Draft {
                status: status.to_owned(),
                location,
            }
        }
        _ => ResultStatus::Final,
    }
}

/// TXA-17 (completion status, first component) when it is one of the
/// configured draft statuses: the document is not final.
pub(crate) fn draft_status(ctx: &Ctx<'_, '_>) -> Option<String> {
    txa_status_in(ctx, 17, &ctx.cfg.draft_statuses)
}

/// TXA-19 (availability status) when it is one of the configured
/// unavailable statuses: the document is not there for patient care.
pub(crate) fn unavailable_status(ctx: &Ctx<'_, '_>) -> Option<String> {
    txa_status_in(ctx, 19, &ctx.cfg.unavailable_statuses)
}

/// TXA-`field` (first component, trimmed) when `listed` holds it, in any
/// case.
fn txa_status_in(ctx: &Ctx<'_, '_>, field: usize, listed: &[String]) -> Option<String> {
    let status = ctx.p.segment("TXA")?.value(field)?;
    let status = status.trim();
    listed
        .iter()
        .any(|d| d.eq_ignore_ascii_case(status))
        .then(|| status.to_string())
}

/// The document described by TXA (MDM, and ORU when it has a TXA).
///
/// - id: TXA-12 (unique document number, first component), required;
/// - kind: TXA-2 (its code, else its text) through `[hl7.document_type]`
///   (unmapped or absent: `other` and an `unmapped_code` warning);
///   `type_code` keeps what was looked up;
/// - issued_at: MSH-7 of this message, the moment it left the trust;
/// - authored_at: TXA-6 (origination), else TXA-4 (activity);
/// - recipient: see [`recipient`];
/// - replaces: TXA-13 (parent document number).
pub(crate) fn from_txa(ctx: &mut Ctx<'_, '_>) -> Result<Document, Hl7Error> {
    let txa = ctx
        .p
        .segment("TXA")
        .ok_or_else(|| Hl7Error::MissingSegment {
            segment: "TXA",
            message_type: ctx.header.message_type.clone(),
        })?;
    let id = txa.value(12).ok_or_else(|| missing("TXA-12"))?.into_owned();
    let (type_code, location) = type_of(Some(txa), "TXA", 2);
    let kind = kind_of(ctx, type_code.as_deref(), &location);
    let authored_at = ctx
        .timestamp(Some(txa), 6)
        .or_else(|| ctx.timestamp(Some(txa), 4));
    Ok(Document {
        id,
        kind,
        type_code,
        issued_at: ctx.header.sent_at,
        authored_at,
        recipient: recipient(ctx),
        replaces: txa.value(13).map(|v| v.into_owned()),
    })
}

/// The document of an ORU^R01 without TXA, from its first OBR:
/// - id: OBR-3 (filler order number), else OBR-2 (placer order number),
///   else MSH-10, so that a result always has an identity;
/// - type_code: OBR-4 (universal service id) component 1, else its text
///   (component 2); kind: either, through `[hl7.oru_document_type]`;
/// - authored_at: OBR-7 (observation date/time);
/// - issued_at and recipient as for MDM.
pub(crate) fn from_obr(ctx: &mut Ctx<'_, '_>) -> Document {
    let obr = ctx.p.segment("OBR");
    let id = obr
        .and_then(|o| o.value(3).or_else(|| o.value(2)))
        .map_or_else(|| ctx.header.message_id.clone(), |v| v.into_owned());
    let (type_code, _) = type_of(obr, "OBR", 4);
    // Only an ORU whose OBR-4 maps is a document (`oru_carries_document`).
    let kind = oru_kind(ctx, obr).unwrap_or(DocumentKind::Other);
    let authored_at = ctx.timestamp(obr, 7);
    // One event carries one document: a later OBR group that is a document
    // too (its OBR-4 mapped) is said, not lost without a word. Other
    // groups (a result's panels) are no documents.
    let unread: Vec<(usize, String)> = ctx
        .p
        .segments("OBR")
        .enumerate()
        .skip(1)
        .filter_map(|(i, o)| {
            oru_kind(ctx, Some(o))?;
            Some((i + 1, type_of(Some(o), "OBR", 4).0?))
        })
        .collect();
    for (n, code) in unread {
        ctx.warn(
            WarningCode::Other,
            format!(
                "OBR group {n} is a document too ({code} in [hl7.oru_document_type]) but \
                 one message gives one document: only the first OBR's is read"
            ),
            Some(code),
            format!("OBR[{n}]-4"),
        );
    }
    Document {
        id,
        kind,
        type_code,
        issued_at: ctx.header.sent_at,
        authored_at,
        recipient: recipient(ctx),
        replaces: None,
    }
}

/// A document type field (`name`-`field` of `seg`): its code (component
/// 1), else its text (component 2: `^Discharge Summary`), with where it
/// was read (`TXA-2`, `TXA-2.2`; the field when it holds neither).
fn type_of(seg: Option<Seg<'_>>, name: &str, field: usize) -> (Option<String>, String) {
    match seg.and_then(|s| s.comp(field, 1)) {
        Some(code) => (Some(code.into_owned()), format!("{name}-{field}")),
        None => match seg.and_then(|s| s.comp(field, 2)) {
            Some(text) => (Some(text.into_owned()), format!("{name}-{field}.2")),
            None => (None, format!("{name}-{field}")),
        },
    }
}

fn kind_of(ctx: &mut Ctx<'_, '_>, code: Option<&str>, location: &str) -> DocumentKind {
    let Some(code) = code else {
        // Said, as an unmapped code is: a summary of no stated type is
        // tracked as nothing, and its discharge goes overdue.
        ctx.warn(
            WarningCode::UnmappedCode,
            format!("no document type in {location}: the document's kind is `other`"),
            None,
            location.to_owned(),
        );
        return DocumentKind::Other;
    };
    ctx.cfg.document_kind(code).unwrap_or_else(|| {
        ctx.warn(
            WarningCode::UnmappedCode,
            format!("document type in {location} has no mapping in [hl7.document_type]"),
            Some(code.to_owned()),
            location.to_owned(),
        );
        DocumentKind::Other
    })
}

/// The intended recipient: the receiving facility (MSH-6, first component)
/// when it looks like an ODS organisation code.
///
/// Neither TXA nor PV1 has a field for the receiving organisation (TXA-23
/// "distributed copies" names people, not organisations), so MSH-6 is the
/// only place an HL7 v2 document names it. "Looks like an ODS code" means 3
/// to 6 upper-case letters and digits, starting with a letter and holding at
/// least one digit (GP practices `A81001`, trust sites `RTH01`); this keeps
/// application-style names such as `EDT` or `GPCONNECT` out.
pub(crate) fn recipient(ctx: &Ctx<'_, '_>) -> Option<String> {
    let f = ctx.header.receiving_facility.as_deref()?;
    looks_like_ods(f).then(|| f.to_owned())
}

/// Whether `code` looks like an ODS organisation code: 3 to 6 upper-case
/// letters and digits, starting with a letter and holding a digit.
pub(crate) fn looks_like_ods(code: &str) -> bool {
    (3..=6).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_uppercase())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && code.chars().any(|c| c.is_ascii_digit())
}
