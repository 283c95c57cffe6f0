//! The interface-event model.
//!
//! Every input tocsin reads (HL7 v2 ADT, MDM, SIU, ORU and ACK messages; FHIR R4
//! resources and bundles; ITK3 STU3 messages) is normalised into one or more
//! [`InterfaceEvent`]s. The tracker consumes nothing else, so an HL7 discharge
//! and a FHIR document for the same visit meet in one vocabulary.
//!
//! This crate is pure data: serde types, a JSON Schema generated from them
//! (`schemas/interface-event.schema.json`), deterministic identifiers and the
//! NHS number check. It does no I/O.

mod id;
mod nhs_number;

pub use id::{EventId, EventIdSeed};
pub use nhs_number::{NhsNumberError, validate_nhs_number};

/// The earliest year a message's time may name, in HL7 and FHIR alike:
/// older than any patient's birth. A placeholder such as `00000101` was
/// read as a discharge in year 0, which then went untracked without a
/// word (no rule was in force then).
pub const EARLIEST_YEAR: i32 = 1800;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One normalised happening at the primary/secondary care interface.
///
/// Optional fields serialise as `null` rather than being omitted, so consumers
/// see one stable shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceEvent {
    /// Deterministic identifier: the same input message always yields the same
    /// id, so a redelivered message is recognisable downstream.
    pub event_id: EventId,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened, by the clock of the message (not of arrival), in UTC.
    pub occurred_at: DateTime<Utc>,
    /// Where the event came from.
    pub source: Source,
    /// Who it concerns.
    pub patient: Patient,
    /// The encounter (visit) concerned, when there is one.
    #[serde(default)]
    pub encounter: Option<Encounter>,
    /// The document concerned, when there is one.
    #[serde(default)]
    pub document: Option<Document>,
    /// The appointment concerned, for scheduling events.
    #[serde(default)]
    pub appointment: Option<Appointment>,
    /// ODS code of the patient's registered GP practice (PD1-3, FHIR
    /// `generalPractitioner`), when known.
    #[serde(default)]
    pub gp_practice: Option<String>,
    /// For acknowledgements: which transmission is acknowledged, and how.
    #[serde(default)]
    pub ack: Option<Ack>,
    /// For merges: the identifiers that were merged away.
    #[serde(default)]
    pub merge: Option<Merge>,
    /// Things the normaliser noticed but tolerated (an NHS number failing its
    /// check digit, an unresolved reference, an unmapped code).
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// The kinds of interface event. Unknown trigger events are `other`, never
/// rejected.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Admission or registration (ADT A01, A04; FHIR Encounter arrived,
    /// triaged or in-progress; a planned one is `other`).
    EncounterStarted,
    /// Transfer or update (A02, A08, A31).
    EncounterUpdated,
    /// Discharge or end of visit (A03; FHIR Encounter finished).
    EncounterEnded,
    /// Discharge cancelled (A13).
    EncounterDischargeCancelled,
    /// Admission or visit cancelled (A11; FHIR Encounter cancelled or entered-in-error).
    EncounterCancelled,
    /// Patient or visit merge, or a changed identifier: re-keys what was
    /// known under the old one (HL7 A34, A36, A39, A40, A42, A46, A47, A50;
    /// A45 moves one visit to another patient, merge scope `visit`).
    PatientMerged,
    /// Appointment booked (SIU S12).
    AppointmentBooked,
    /// Appointment cancelled (SIU S15).
    AppointmentCancelled,
    /// Appointment not attended (SIU S26).
    AppointmentMissed,
    /// A document left the trust (MDM T02, T04; ORU R01 with a document;
    /// FHIR DocumentReference, document bundle, ITK3 message).
    DocumentIssued,
    /// A document was replaced or amended (MDM T06, T08, T10; FHIR relatesTo replaces).
    DocumentReplaced,
    /// A document was withdrawn (MDM T11; FHIR entered-in-error).
    DocumentCancelled,
    /// The recipient accepted a transmission (ACK AA/CA; ITK3 response ok).
    DeliveryAcknowledged,
    /// The recipient refused a transmission or it failed (ACK AE/AR/CE/CR; ITK3 error).
    DeliveryFailed,
    /// Anything else; kept so that nothing is silently dropped.
    Other,
}

impl EventType {
    /// The snake_case name used on the wire, in routing keys and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EncounterStarted => "encounter_started",
            Self::EncounterUpdated => "encounter_updated",
            Self::EncounterEnded => "encounter_ended",
            Self::EncounterDischargeCancelled => "encounter_discharge_cancelled",
            Self::EncounterCancelled => "encounter_cancelled",
            Self::PatientMerged => "patient_merged",
            Self::AppointmentBooked => "appointment_booked",
            Self::AppointmentCancelled => "appointment_cancelled",
            Self::AppointmentMissed => "appointment_missed",
            Self::DocumentIssued => "document_issued",
            Self::DocumentReplaced => "document_replaced",
            Self::DocumentCancelled => "document_cancelled",
            Self::DeliveryAcknowledged => "delivery_acknowledged",
            Self::DeliveryFailed => "delivery_failed",
            Self::Other => "other",
        }
    }
}

/// The wire format an event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Format {
    /// HL7 version 2 (ER7 encoding), versions 2.3 to 2.5.1.
    #[serde(rename = "hl7v2")]
    Hl7v2,
    /// FHIR R4 (UK Core), read through fhir-sdk's R4B models.
    #[serde(rename = "fhir-r4")]
    FhirR4,
    /// FHIR STU3 (ITK3 Transfer of Care).
    #[serde(rename = "fhir-stu3")]
    FhirStu3,
}

impl Format {
    /// The name used on the wire and in routing keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hl7v2 => "hl7v2",
            Self::FhirR4 => "fhir-r4",
            Self::FhirStu3 => "fhir-stu3",
        }
    }
}

/// An id that is a UUID, in lowercase (`urn:uuid:` prefix included):
/// what both normalisers write for message ids and the ids acknowledgements
/// name.
///
/// A UUID's hex digits are case-insensitive (RFC 9562): a receiver that
/// answers `0A1B…` for the `0a1b…` it was sent (SQL Server and some .NET
/// stacks write UUIDs in capitals), or an ITK3 response to an HL7 message
/// numbered by a GUID, names the same transmission, and a resend in capitals
/// is the same message. Anything else is kept as sent, since HL7 and FHIR
/// ids are case-sensitive.
pub fn lowercase_uuid(id: String) -> String {
    let body = match id.get(..9) {
        Some(p) if p.eq_ignore_ascii_case("urn:uuid:") => &id[9..],
        _ => &id[..],
    };
    let is_uuid = body.len() == 36
        && body.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if is_uuid && id.bytes().any(|b| b.is_ascii_uppercase()) {
        id.to_ascii_lowercase()
    } else {
        id
    }
}

/// Provenance of an event: enough to find the original message and to
/// recognise an exact duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The format the message was read in.
    pub format: Format,
    /// The message's own identifier, used to recognise duplicates: MSH-10 for
    /// HL7; MessageHeader id for FHIR messages; Bundle.identifier (else
    /// Bundle.id) for document bundles; `Type/id/_history/version` (or
    /// `Type/id`) for standalone resources, with `#cancelled` or
    /// `#entered-in-error` after it for a withdrawal, and `#end=` and the
    /// end it states after an Encounter's (a corrected end under the same
    /// version is no duplicate). An id that is a UUID
    /// is written in lowercase ([`lowercase_uuid`]), as its acknowledgement
    /// names it.
    pub message_id: String,
    /// Message type, e.g. `ADT^A03`, `MDM^T02`, `Bundle/document`,
    /// `ITK003D`, `Encounter`.
    pub message_type: String,
    /// MSH-4, or the FHIR message source / bundle author organisation.
    #[serde(default)]
    pub sending_facility: Option<String>,
    /// The sending system: MSH-3 (the PAS, the EPR, the letters system
    /// behind one MSH-4, each numbering its own messages). Absent for FHIR,
    /// whose message ids are unique without it.
    #[serde(default)]
    pub sending_application: Option<String>,
    /// 0-based position of this event among the events of its message
    /// (a collection bundle or NDJSON line yields several).
    #[serde(default)]
    pub sequence: u32,
}

/// The patient an event concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// The NHS number, only when it passes the modulus-11 check (else `null`
    /// and a [`WarningCode::InvalidNhsNumber`] warning keeps the raw value).
    #[serde(default)]
    pub nhs_number: Option<String>,
    /// Local identifiers (hospital numbers and the like).
    #[serde(default)]
    pub local_ids: Vec<Identifier>,
}

/// A system/value identifier pair.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// The namespace: HL7 assigning authority or identifier type, FHIR system.
    pub system: String,
    /// The identifier within that namespace.
    pub value: String,
}

/// The kind of encounter, which decides which contract rules apply.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EncounterKind {
    /// Admitted patient care.
    Inpatient,
    /// Day case.
    DayCase,
    /// A&E / emergency care.
    Emergency,
    /// Outpatient attendance.
    Outpatient,
    /// Mental health inpatient care.
    MentalHealth,
    /// Anything else.
    Other,
}

impl EncounterKind {
    /// The snake_case name used on the wire and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inpatient => "inpatient",
            Self::DayCase => "day_case",
            Self::Emergency => "emergency",
            Self::Outpatient => "outpatient",
            Self::MentalHealth => "mental_health",
            Self::Other => "other",
        }
    }
}

/// An encounter (visit), as far as the message tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encounter {
    /// The visit number: PV1-19 for HL7, the identifier value for FHIR.
    #[serde(default)]
    pub id: Option<String>,
    /// The FHIR logical reference of the encounter (`Encounter/123`, or a
    /// bundle `urn:uuid:`), used to correlate documents that name the
    /// encounter only by reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// The encounter's kind; unknown when the message only refers to it.
    #[serde(default)]
    pub kind: Option<EncounterKind>,
    /// Admission / attendance time.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// Discharge / end time (PV1-45, else EVN-6, else EVN-2; FHIR period.end).
    /// Never later than the HL7 message was sent (more than an hour after
    /// MSH-7, it gives way to EVN-6, EVN-2 or MSH-7, with a warning). On an
    /// update (A08) only a PV1-45 with a time of day, not before PV1-44: it
    /// corrects the end.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Site (facility code) where care was given, for per-site reporting.
    #[serde(default)]
    pub site: Option<String>,
    /// Where the patient went at the end (PV1-36 discharge disposition;
    /// FHIR `hospitalization.dischargeDisposition` code), as sent: a policy
    /// exclusion may name the codes of an attendance that ended in
    /// admission, which the inpatient summary covers.
    #[serde(default)]
    pub discharge_disposition: Option<String>,
    /// Specialty / hospital service (PV1-10; FHIR serviceType).
    #[serde(default)]
    pub specialty: Option<String>,
}

impl Encounter {
    /// The warning for an encounter said to end before it started
    /// (`location`: where the end was read). The end still stands, as the
    /// time the deadline runs from, but the integration team should know
    /// it is suspect: times swapped, or one written in another time zone,
    /// moved the deadline without a word.
    pub fn ends_before_start(&self, location: String) -> Option<Warning> {
        let (start, end) = (self.started_at?, self.ended_at?);
        (end < start).then(|| Warning {
            code: WarningCode::BadTimestamp,
            message: format!(
                "the encounter ends ({}) before it starts ({}): the end is taken as sent, \
                 and the deadline runs from it",
                end.to_rfc3339(),
                start.to_rfc3339()
            ),
            raw: None,
            location: Some(location),
        })
    }
}

/// The kind of document, which decides which expectation it settles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Discharge summary (SNOMED CT 373942005).
    DischargeSummary,
    /// Outpatient clinic letter (SNOMED CT 371531000).
    ClinicLetter,
    /// Anything else.
    Other,
}

impl DocumentKind {
    /// The snake_case name used on the wire and in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DischargeSummary => "discharge_summary",
            Self::ClinicLetter => "clinic_letter",
            Self::Other => "other",
        }
    }
}

/// A document seen leaving the trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The document's own identifier (TXA-12; FHIR Composition.identifier,
    /// else the document bundle's; DocumentReference masterIdentifier,
    /// else its identifier or id): what a replacement's `replaces` names.
    /// A UUID is written in lowercase ([`lowercase_uuid`]).
    pub id: String,
    /// Kind, from the configured code tables.
    pub kind: DocumentKind,
    /// The code the sender used (TXA-2, SNOMED or local code), kept for audit.
    #[serde(default)]
    pub type_code: Option<String>,
    /// When it left the trust: MSH-7 of the transmitting message, FHIR
    /// `DocumentReference.date`, `Bundle.timestamp` or `MessageHeader.timestamp`.
    pub issued_at: DateTime<Utc>,
    /// When it was written (TXA-4/TXA-6; Composition.date), when known.
    #[serde(default)]
    pub authored_at: Option<DateTime<Utc>>,
    /// Intended recipient, as an ODS code, when known.
    #[serde(default)]
    pub recipient: Option<String>,
    /// The document this one replaces (TXA-13; FHIR relatesTo replaces).
    #[serde(default)]
    pub replaces: Option<String>,
}

impl Document {
    /// The document with its id and the id it replaces in lowercase where
    /// they are UUIDs ([`lowercase_uuid`]): what both normalisers emit, so
    /// that a resend or a replacement that writes the GUID in capitals names
    /// the same document.
    pub fn with_lowercase_uuids(self) -> Self {
        Document {
            id: lowercase_uuid(self.id),
            replaces: self.replaces.map(lowercase_uuid),
            ..self
        }
    }
}

/// A scheduled appointment (SIU).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Appointment {
    /// Placer/filler appointment id.
    #[serde(default)]
    pub id: Option<String>,
    /// When the appointment starts.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
}

/// An acknowledgement of a transmission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// The acknowledged message's id (MSA-2; ITK3 `response.identifier`
    /// without a `urn:uuid:` prefix, which a MessageHeader id cannot hold),
    /// in lowercase when it is a UUID ([`lowercase_uuid`]).
    pub of_message_id: String,
    /// The acknowledgement code as sent (MSA-1, or the FHIR
    /// `MessageHeader.response.code`: `ok`, `transient-error`,
    /// `fatal-error`).
    pub code: String,
    /// The code detailing it, when one is sent: the ITK3 response code of
    /// an ITK008M (its OperationOutcome's first issue, e.g. `20013`
    /// infrastructure success, `30001` patient known here, `30002` patient
    /// not known here, `20007` duplicate message received), or the HL7
    /// error code of an ACK's first ERR segment (ERR-3, else ERR-1's
    /// fourth component; table 0357, e.g. `204` unknown key identifier).
    #[serde(default)]
    pub detail_code: Option<String>,
    /// Free text of the acknowledgement, when any (never logged above
    /// debug): MSA-3, else the first ERR's user message, diagnostic
    /// information or error text.
    #[serde(default)]
    pub text: Option<String>,
}

/// The identifiers a merge retired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The retired NHS number, when valid.
    #[serde(default)]
    pub prior_nhs_number: Option<String>,
    /// The retired local identifiers (MRG-1).
    #[serde(default)]
    pub prior_local_ids: Vec<Identifier>,
    /// The retired visit number (MRG-5), for account merges; for a visit
    /// moved to another patient, the visit moved.
    #[serde(default)]
    pub prior_encounter_id: Option<String>,
    /// What moves: the whole patient record (the default), or one visit.
    #[serde(default)]
    pub scope: MergeScope,
}

/// What a merge moves to the surviving patient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MergeScope {
    /// Everything filed under the retired identifiers (A34, A36, A39, A40,
    /// A46, A47; A42 and A50 also re-key one visit number). FHIR has none.
    #[default]
    Patient,
    /// One visit, filed under the wrong patient, moved to the right one
    /// (A45): the retired patient keeps the rest of their record.
    Visit,
}

/// Something tolerated during normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Warning {
    /// Machine-readable reason.
    pub code: WarningCode,
    /// Human-readable explanation (patient-free).
    pub message: String,
    /// The raw value concerned, when keeping it helps (e.g. the NHS number
    /// that failed its check digit). May hold patient data: never log it above
    /// debug.
    #[serde(default)]
    pub raw: Option<String>,
    /// Where in the message, e.g. `PID-3` or `Bundle.entry[2]`.
    #[serde(default)]
    pub location: Option<String>,
}

/// Machine-readable warning reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarningCode {
    /// An NHS number failed the modulus-11 check.
    InvalidNhsNumber,
    /// A reference inside a bundle did not resolve.
    UnresolvedReference,
    /// A code had no mapping in the configuration.
    UnmappedCode,
    /// A timestamp could not be read and was replaced by the message time.
    BadTimestamp,
    /// Anything else worth recording.
    Other,
}

impl WarningCode {
    /// Every code, for metric series that start at zero.
    pub const ALL: [WarningCode; 5] = [
        Self::InvalidNhsNumber,
        Self::UnresolvedReference,
        Self::UnmappedCode,
        Self::BadTimestamp,
        Self::Other,
    ];

    /// The snake_case name used on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidNhsNumber => "invalid_nhs_number",
            Self::UnresolvedReference => "unresolved_reference",
            Self::UnmappedCode => "unmapped_code",
            Self::BadTimestamp => "bad_timestamp",
            Self::Other => "other",
        }
    }
}

/// The JSON Schema of [`InterfaceEvent`], as checked in at
/// `schemas/interface-event.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(InterfaceEvent)).expect("schema serialises")
}

#[cfg(test)]
mod uuid_tests {
    use crate::lowercase_uuid;

    #[test]
    fn uuids_are_lowercased_and_other_ids_kept() {
        let up = "9A1B0000-0000-4000-8000-00000000000F";
        assert_eq!(lowercase_uuid(up.into()), up.to_ascii_lowercase());
        assert_eq!(
            lowercase_uuid(format!("URN:UUID:{up}")),
            format!("urn:uuid:{}", up.to_ascii_lowercase())
        );
        for kept in [
            "9a1b0000-0000-4000-8000-00000000000f",
            "Encounter/ABC/_history/2",
            "9A1B0000-0000-4000-8000-00000000000G",
            "9A1B0000X0000-4000-8000-00000000000F",
            "9A1B0000-0000-4000-8000-00000000000FF",
            "MSG-ÀB",
            "",
        ] {
            assert_eq!(lowercase_uuid(kept.into()), kept, "{kept}");
        }
    }
}
