//! One HL7 message to one interface event.

use std::borrow::Cow;

use tocsin_event::{
    Ack, EventId, EventType, Format, InterfaceEvent, MergeScope, Source, WarningCode,
};

use crate::context::Ctx;
use crate::document::ResultStatus;
use crate::header::{Header, SentAtNote, missing};
use crate::message::{Parsed, prepare};
use crate::{Hl7Config, Hl7Error, document, patient, visit};

/// Normalises one message (as given by [`crate::split_messages`], or a whole
/// AMQP body holding one message; MLLP framing is tolerated).
///
/// The event type follows MSH-9 (see [`event_type`]); unknown types and
/// triggers give `other`, never an error; so does a document whose TXA-17
/// completion status is a draft's (`[hl7] draft_statuses`), or an ORU
/// document's result status a preliminary one (`draft_result_statuses`),
/// with a warning. An ORU result status `C` is a replacement and `X`, `D`
/// or `W` a cancellation. `event_id` is derived from the raw bytes, so a
/// redelivered message gets the same id. `occurred_at` is EVN-2,
/// else MSH-7; for an A03 it is the discharge time (PV1-45, EVN-6, EVN-2;
/// a PV1-45 of a date only takes EVN-6, else EVN-2, on that day).
pub fn normalise_message(msg: &[u8], cfg: &Hl7Config) -> Result<InterfaceEvent, Hl7Error> {
    let text = prepare(msg, cfg)?;
    let parsed = Parsed::parse(&text)?;
    let header = Header::read(&parsed, cfg)?;
    let mut ctx = Ctx {
        p: &parsed,
        cfg,
        header,
        warnings: Vec::new(),
    };
    if matches!(text, std::borrow::Cow::Owned(_)) {
        latin1_read(&mut ctx);
    }
    // MSH-7 is a document's issue time and many messages' event time.
    if let Some((raw, change)) = ctx.header.sent_at_guess.take() {
        ctx.clock_change(change, "MSH-7".to_owned(), raw);
    }
    sent_at_note(&mut ctx);
    let code = ctx.header.code.clone();
    let trigger = ctx.header.trigger.clone();
    check_required_segments(&ctx, &code, &trigger)?;

    let mut event_type = event_type(&ctx, &code, &trigger);
    let patient = patient::patient(&mut ctx);
    let discharge = code == "ADT" && trigger == "A03";
    // An A04 of a configured patient class is the attendance itself, for a
    // PAS that sends no A03 when the patient leaves clinic.
    let attendance = code == "ADT"
        && trigger == "A04"
        && parsed
            .segment("PV1")
            .and_then(|pv1| pv1.value(2))
            .is_some_and(|class| ctx.cfg.a04_is_attendance(&class));
    if attendance {
        event_type = EventType::EncounterEnded;
    }
    let ending = if discharge {
        visit::Ending::Discharge
    } else if attendance {
        visit::Ending::Attendance
    } else {
        visit::Ending::None
    };
    let encounter = visit::encounter(&mut ctx, ending);
    let appointment = if code == "SIU" {
        visit::appointment(&mut ctx)
    } else {
        None
    };
    let has_txa = parsed.segment("TXA").is_some();
    // A document not yet final: its status, where it was read and what that
    // field is called.
    let mut draft = None;
    if event_type == EventType::DocumentIssued && code == "ORU" && !has_txa {
        match document::oru_result_status(&ctx) {
            ResultStatus::Final => {}
            ResultStatus::Corrected => event_type = EventType::DocumentReplaced,
            ResultStatus::Withdrawn => event_type = EventType::DocumentCancelled,
            ResultStatus::Draft { status, location } => {
                draft = Some((status, location, "result status"));
            }
        }
    }
    let document = match event_type {
        EventType::DocumentIssued | EventType::DocumentReplaced | EventType::DocumentCancelled
            if has_txa || code == "MDM" =>
        {
            Some(document::from_txa(&mut ctx)?)
        }
        EventType::DocumentIssued | EventType::DocumentReplaced | EventType::DocumentCancelled => {
            Some(document::from_obr(&mut ctx))
        }
        _ => None,
    }
    .map(tocsin_event::Document::with_lowercase_uuids);
    if matches!(
        event_type,
        EventType::DocumentIssued | EventType::DocumentReplaced
    ) {
        draft = draft
            .or_else(|| document::draft_status(&ctx).map(|s| (s, "TXA-17", "completion status")))
            .or_else(|| {
                document::unavailable_status(&ctx).map(|s| (s, "TXA-19", "availability status"))
            });
    }
    if let Some((status, location, what)) = draft {
        ctx.warn(
            WarningCode::Other,
            format!(
                "{location} {what} {status} is not a final document available for patient \
                 care: it is not taken as a transmission"
            ),
            Some(status),
            location.into(),
        );
        event_type = EventType::Other;
    }
    let mut merge = match parsed.segment("MRG") {
        Some(mrg) if event_type == EventType::PatientMerged => Some(patient::merge(&mut ctx, mrg)),
        _ => None,
    };
    // ADT_A39 lets the patient group repeat; one event carries one merge.
    // (Counted for a merge only: not every message's segments scanned.)
    let pairs = if merge.is_some() {
        parsed.segments("MRG").count()
    } else {
        0
    };
    if pairs > 1 {
        ctx.warn(
            WarningCode::Other,
            format!(
                "the message holds {pairs} merges (PID and MRG groups): only the first is \
                 applied; send one merge a message"
            ),
            None,
            "MRG[2]".to_owned(),
        );
    }
    // A45 moves one visit: MRG-5 names it (PV1-19 is the same visit, under
    // the right patient); a move naming no visit would move nothing.
    if let Some(m) = merge.as_mut().filter(|_| trigger == "A45") {
        m.scope = MergeScope::Visit;
        m.prior_encounter_id = m
            .prior_encounter_id
            .take()
            .or_else(|| encounter.as_ref().and_then(|e| e.id.clone()));
        if m.prior_encounter_id.is_none() {
            return Err(missing("MRG-5"));
        }
    }
    let ack = ack(&ctx)?;
    if event_type == EventType::Other
        && let Some(a) = &ack
        && !acknowledges_no_document(&trigger)
    {
        // An acknowledgement tocsin cannot read would leave its
        // transmission unconfirmed, or its refusal unseen, without a word.
        ctx.warn(
            WarningCode::UnmappedCode,
            "MSA-1 is not an acknowledgement code (AA, AE, AR, CA, CE, CR): the \
             acknowledgement is not applied"
                .to_owned(),
            Some(a.code.clone()),
            "MSA-1".to_owned(),
        );
    }
    let gp_practice = patient::gp_practice(&ctx);

    let evn = parsed.segment("EVN");
    let occurred_at = match encounter.as_ref().and_then(|e| e.ended_at) {
        Some(t) if discharge || attendance => t,
        _ => ctx.timestamp(evn, 2).unwrap_or(ctx.header.sent_at),
    };
    let Header {
        message_type,
        message_id,
        sending_facility,
        sending_application,
        ..
    } = ctx.header;
    Ok(InterfaceEvent {
        event_id: EventId::derive(Format::Hl7v2, msg, 0),
        event_type,
        occurred_at,
        source: Source {
            format: Format::Hl7v2,
            message_id,
            message_type,
            sending_facility,
            sending_application,
            sequence: 0,
        },
        patient,
        encounter,
        document,
        appointment,
        gp_practice,
        ack,
        merge,
        warnings: ctx.warnings,
    })
}

/// Rejects messages whose type needs a segment they lack: an encounter ADT
/// without PID or PV1, a merge without PID or MRG, any MDM without TXA (and
/// a document MDM without PID), an SIU without SCH, an ACK without MSA.
/// Unknown types and triggers need nothing beyond MSH.
fn check_required_segments(ctx: &Ctx<'_, '_>, code: &str, trigger: &str) -> Result<(), Hl7Error> {
    let needs: &[&'static str] = match (code, trigger) {
        ("ADT", "A01" | "A02" | "A03" | "A04" | "A08" | "A11" | "A13") => &["PID", "PV1"],
        ("ADT", "A31") => &["PID"],
        ("ADT", "A34" | "A36" | "A39" | "A40" | "A46" | "A47") => &["PID", "MRG"],
        ("ADT", "A42" | "A45" | "A50") => &["PID", "MRG", "PV1"],
        ("MDM", "T02" | "T04" | "T06" | "T08" | "T10" | "T11") => &["PID", "TXA"],
        ("MDM", _) => &["TXA"],
        ("SIU", "S12" | "S15" | "S26") => &["SCH"],
        ("ACK", _) => &["MSA"],
        _ => &[],
    };
    for &segment in needs {
        if ctx.p.segment(segment).is_none() {
            return Err(Hl7Error::MissingSegment {
                segment,
                message_type: ctx.header.message_type.clone(),
            });
        }
    }
    Ok(())
}

/// The event type of a message type and trigger (issue 2's table).
fn event_type(ctx: &Ctx<'_, '_>, code: &str, trigger: &str) -> EventType {
    use EventType::*;
    match (code, trigger) {
        ("ADT", "A01" | "A04") => EncounterStarted,
        ("ADT", "A02" | "A08" | "A31") => EncounterUpdated,
        ("ADT", "A03") => EncounterEnded,
        ("ADT", "A13") => EncounterDischargeCancelled,
        ("ADT", "A11") => EncounterCancelled,
        // Merges and identifier changes re-key: the patient's (A34, A36,
        // A39, A40; A46, A47 change the identifier) or the visit's (A42
        // merges one visit into another, A50 renumbers it, MRG-5 naming the
        // old number and PV1-19 the new). A45 moves one visit to another
        // patient (merge scope `visit`). A44 moves an account (PID-18),
        // which tocsin does not key by, and stays `other`.
        ("ADT", "A34" | "A36" | "A39" | "A40" | "A42" | "A45" | "A46" | "A47" | "A50") => {
            PatientMerged
        }
        ("SIU", "S12") => AppointmentBooked,
        ("SIU", "S15") => AppointmentCancelled,
        ("SIU", "S26") => AppointmentMissed,
        ("MDM", "T02" | "T04") => DocumentIssued,
        ("MDM", "T06" | "T08" | "T10") => DocumentReplaced,
        ("MDM", "T11") => DocumentCancelled,
        ("ORU", "R01") if document::oru_carries_document(ctx) => DocumentIssued,
        // An ACK names the trigger it acknowledges (MSH-9.2): one for an
        // ADT or scheduling message (A.., S..) acknowledges no document,
        // and its MSA-2 may repeat a document's message id by chance
        // (each system numbers its own messages).
        ("ACK", t) if acknowledges_no_document(t) => Other,
        ("ACK", _) => match ack_code(ctx).as_deref() {
            Some("AA" | "CA") => DeliveryAcknowledged,
            Some("AE" | "AR" | "CE" | "CR") => DeliveryFailed,
            _ => Other,
        },
        _ => Other,
    }
}

/// Whether an ACK's trigger (MSH-9.2) is an ADT or scheduling one (`A03`,
/// `S12`): what it acknowledges is no document. A bare `ACK` or a document
/// trigger (`T02`, `R01`) may acknowledge a document.
fn acknowledges_no_document(trigger: &str) -> bool {
    let b = trigger.as_bytes();
    b.len() == 3 && matches!(b[0], b'A' | b'S') && b[1..].iter().all(u8::is_ascii_digit)
}

/// A message that is not UTF-8 is read as ISO 8859-1, byte for byte (see
/// `prepare`). Said unless MSH-18 declares an 8859 character set: without
/// one HL7 means ASCII, and under `UNICODE UTF-8` one stray byte has turned
/// every other accented letter of the message into two (a visit number
/// with one then matches nothing), which was silent.
fn latin1_read(ctx: &mut Ctx<'_, '_>) {
    let declared = ctx
        .p
        .segment("MSH")
        .and_then(|m| m.value(18))
        .map(|v| v.trim().to_ascii_uppercase());
    if declared.as_deref().is_some_and(|d| d.starts_with("8859")) {
        return;
    }
    ctx.warn(
        WarningCode::Other,
        "the message is not valid UTF-8 and MSH-18 declares no ISO 8859 character set: \
         it is read as ISO 8859-1, byte for byte, so its non-ASCII characters may be wrong"
            .to_owned(),
        declared,
        "MSH-18".to_owned(),
    );
}

/// MSA-1 as a code: trimmed and in capitals, as some engines send `aa`.
fn ack_code(ctx: &Ctx<'_, '_>) -> Option<String> {
    let m = ctx.p.segment("MSA")?;
    Some(m.value(1)?.trim().to_ascii_uppercase())
}

/// The acknowledgement of an ACK: MSA-2 (required) is the acknowledged
/// message's MSH-10, MSA-1 the code; the detail code and text from the
/// first ERR ([`err_detail`]), MSA-3 (deprecated from v2.4, still sent)
/// first for the text.
fn ack(ctx: &Ctx<'_, '_>) -> Result<Option<Ack>, Hl7Error> {
    if ctx.header.code != "ACK" {
        return Ok(None);
    }
    let Some(msa) = ctx.p.segment("MSA") else {
        return Ok(None);
    };
    let detail = err_detail(ctx);
    Ok(Some(Ack {
        of_message_id: tocsin_event::lowercase_uuid(
            msa.value(2).ok_or_else(|| missing("MSA-2"))?.into_owned(),
        ),
        code: msa
            .value(1)
            .ok_or_else(|| missing("MSA-1"))?
            .trim()
            .to_ascii_uppercase(),
        detail_code: detail.code,
        text: msa.value(3).map(|v| v.into_owned()).or(detail.text),
    }))
}

/// What an ACK's first ERR segment says of a refusal.
#[derive(Default)]
struct ErrDetail {
    code: Option<String>,
    text: Option<String>,
}

/// The first ERR segment's error code and text: from v2.5, ERR-3 (HL7
/// error code, table 0357: code, text), and ERR-8 (user message), else
/// ERR-7 (diagnostic information), before ERR-3's text; before v2.5,
/// ERR-1 (location and code: its fourth component is the code, code and
/// text as subcomponents). Without them a refusal's reason (`Patient not
/// registered at this practice`) was lost.
fn err_detail(ctx: &Ctx<'_, '_>) -> ErrDetail {
    let Some(err) = ctx.p.segment("ERR") else {
        return ErrDetail::default();
    };
    let owned = |v: Option<Cow<'_, str>>| v.map(Cow::into_owned);
    let eld = err.repeats(1).next();
    ErrDetail {
        code: owned(err.comp(3, 1)).or_else(|| owned(eld?.sub(4, 1))),
        text: owned(err.value(8))
            .or_else(|| owned(err.value(7)))
            .or_else(|| owned(err.comp(3, 2)))
            .or_else(|| owned(eld?.sub(4, 2))),
    }
}

/// Warns of a time sent that MSH-7 does not give precisely: it is a
/// document's issue time, so a date alone may count a letter sent that
/// evening as sent at midnight, on time.
fn sent_at_note(ctx: &mut Ctx<'_, '_>) {
    let (message, location) = match ctx.header.sent_at_note {
        None => return,
        Some(SentAtNote::DateOnly) => (
            "MSH-7 is a date without a time: the message is taken as sent at local midnight \
             at its start (a document's issue time up to a day early); an encounter's end \
             that day is not taken for one after sending",
            "MSH-7",
        ),
        Some(SentAtNote::DateTimedByEvn2) => (
            "MSH-7 is a date without a time: EVN-2, a time that day, is taken as the time \
             the message was sent (a document's issue time)",
            "MSH-7",
        ),
        Some(SentAtNote::FromEvn2) => (
            "MSH-7 is empty (optional before HL7 v2.5): EVN-2, when the event was recorded, \
             is taken as the time the message was sent",
            "EVN-2",
        ),
    };
    let raw = Some(ctx.header.sent_at.to_rfc3339());
    ctx.warn(
        WarningCode::BadTimestamp,
        message.to_owned(),
        raw,
        location.to_owned(),
    );
}
