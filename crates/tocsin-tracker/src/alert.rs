//! Alerts: what subscribers receive. One JSON object each, schema in
//! `schemas/alert.schema.json`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tocsin_event::{DocumentKind, EncounterKind};

use crate::model::{ExpectationId, MatchMethod, RuleRef};

/// What an alert says.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The deadline is near and the document has not been seen.
    DueSoon,
    /// The deadline passed and the document is still missing.
    Overdue,
    /// The document came, after its deadline.
    Late,
    /// A document settled an expectation for which `overdue` (or the
    /// `due_soon` warning) was raised: stop chasing it.
    Resolved,
    /// The recipient refused the transmission, or it failed.
    DeliveryFailed,
    /// No acknowledgement within the configured time (off by default).
    Unconfirmed,
    /// The expectation was withdrawn (discharge cancelled, attendance
    /// entered in error, a merged duplicate) after `due_soon` or `overdue`
    /// was raised for it: subscribers who were told to chase the document
    /// are told to stop.
    Cancelled,
}

impl AlertKind {
    /// The snake_case name used on the wire, in routing keys and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DueSoon => "due_soon",
            Self::Overdue => "overdue",
            Self::Late => "late",
            Self::Resolved => "resolved",
            Self::DeliveryFailed => "delivery_failed",
            Self::Unconfirmed => "unconfirmed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The encounter an alert concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertEncounter {
    /// Visit number, when known.
    pub id: Option<String>,
    /// Encounter kind.
    pub kind: EncounterKind,
    /// When it ended.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub ended_at: DateTime<Utc>,
    /// Site, when known.
    pub site: Option<String>,
    /// Specialty (treatment function code), when known: clinical-letter
    /// teams are organised by specialty and take their own alerts by it.
    /// Absent from alerts stored before it was added.
    #[serde(default)]
    pub specialty: Option<String>,
}

/// The patient an alert concerns (subscribers are clinical teams; the
/// Alertmanager channel strips this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertPatient {
    /// Valid NHS number, when known.
    pub nhs_number: Option<String>,
}

/// The document a `late`, `resolved`, `delivery_failed` or `unconfirmed`
/// alert reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlertDocument {
    /// The document's id.
    pub id: String,
    /// When it left the trust.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub issued_at: DateTime<Utc>,
    /// How it was matched.
    pub matched_by: MatchMethod,
}

/// Why a transmission was refused, as its acknowledgement's codes say: what
/// the team that sends the document again needs to know first (the patient
/// unknown at the practice, a message the recipient could not parse, a
/// fault at its end). Never the acknowledgement's free text, which may
/// quote the patient's identifiers: alerts reach subscribers who receive
/// NHS numbers only hashed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryFailure {
    /// The acknowledgement code as sent: HL7 MSA-1 (`AE`, `AR`, `CE`,
    /// `CR`), or the ITK3 response code (`transient-error`,
    /// `fatal-error`).
    pub code: String,
    /// The code detailing it, when one was sent: the HL7 ACK's ERR-3 (table
    /// 0357, e.g. `204` unknown key identifier), or the ITK3 response's
    /// issue code (e.g. `30002` patient not known here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_code: Option<String>,
}

impl DeliveryFailure {
    /// The failure an acknowledgement's codes tell, each kept only when it
    /// looks like a code ([`looks_like_a_code`]): a GP system may put free
    /// text, the patient's NHS number and name among it, where a code
    /// belongs (FHIR's `code` type allows spaces), and the alert must not
    /// carry it.
    pub fn from_codes(code: &str, detail_code: Option<&str>) -> Self {
        let keep = |c: &str| looks_like_a_code(c).then(|| c.to_owned());
        DeliveryFailure {
            code: keep(code).unwrap_or_else(|| "unknown".to_owned()),
            detail_code: detail_code.and_then(keep),
        }
    }

    /// A refusal the sender meant as final: ITK3's `fatal-error` ("no point
    /// in sending again without change"). An acceptance of the same
    /// message timed after it (an infrastructure acknowledgement, 20013,
    /// read after the business refusal) does not clear it, as a retry's
    /// acceptance after a `transient-error`, or an HL7 resend's after an
    /// AE or AR, does.
    pub fn is_final(&self) -> bool {
        self.code == "fatal-error"
    }
}

/// Whether `c` is shaped as an acknowledgement code: 1 to 16 letters,
/// digits, `.`, `_` or `-` (`AE`, `fatal-error`, `30002`, `204`), and, when
/// all digits, at most 6 of them (ITK3's codes have 5, HL7 table 0357's
/// 3): a 10-digit run is an NHS number's shape.
pub fn looks_like_a_code(c: &str) -> bool {
    let shaped = (1..=16).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    shaped && (c.len() <= 6 || !c.bytes().all(|b| b.is_ascii_digit()))
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Deterministic (expectation id + kind), so a repeat is recognisable.
    pub alert_id: String,
    /// What the alert says.
    pub kind: AlertKind,
    /// The expectation concerned.
    pub expectation_id: ExpectationId,
    /// The document kind expected.
    pub document_kind: DocumentKind,
    /// The encounter concerned.
    pub encounter: AlertEncounter,
    /// The patient concerned.
    pub patient: AlertPatient,
    /// ODS code of the GP practice, when known.
    pub gp_practice: Option<String>,
    /// When the document is or was due.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub deadline: DateTime<Utc>,
    /// When, in event time, the alert's condition arose: the deadline (or
    /// warning point, or confirmation limit, not before the encounter's
    /// end) for `overdue`, `due_soon` and `unconfirmed`; the document's
    /// issue, not before the deadline, for `late` and `resolved`; the
    /// refusal's own time (MSH-7, the response's timestamp), not before
    /// the document's issue, for `delivery_failed`; the cancelling
    /// message's time, not before the alert it withdraws, for
    /// `cancelled`. It does not depend on when the
    /// input was read, so a replay and the live gateway raise identical
    /// alerts.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub raised_at: DateTime<Utc>,
    /// The rule behind the expectation.
    pub rule: RuleRef,
    /// For `late` and `resolved`: the document; for `delivery_failed` and
    /// `unconfirmed`: the document transmitted.
    pub document: Option<AlertDocument>,
    /// Whenever `document` is given: seconds from the encounter's end to the
    /// document's issue, rounded up to the whole second.
    pub delay_seconds: Option<i64>,
    /// For `delivery_failed`: what the refusing acknowledgement's codes
    /// said. Absent from other alerts, and from alerts raised before it was
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<DeliveryFailure>,
}

/// The JSON Schema of [`Alert`], as checked in at `schemas/alert.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Alert)).expect("schema serialises")
}
