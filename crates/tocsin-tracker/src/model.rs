//! The tracker's durable vocabulary: expectations, alerts and the effects the
//! core returns. The store persists these types (as JSON bodies with a few
//! indexed columns), so changing them changes what is stored.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tocsin_event::{DocumentKind, EncounterKind, EventId, Identifier};

/// Identifies an expectation: deterministic from the encounter and the rule,
/// so the same discharge read twice yields the same expectation.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct ExpectationId(pub String);

/// Where an expectation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExpectationStatus {
    /// Waiting for its document; the deadline has not passed.
    Open,
    /// Still missing after its deadline (an `overdue` alert was raised).
    Overdue,
    /// Settled by a document issued by the deadline.
    OnTime,
    /// Settled by a document issued after the deadline.
    Late,
    /// Withdrawn: discharge cancelled (A13), visit cancelled (A11) or the
    /// encounter entered in error.
    Cancelled,
}

impl ExpectationStatus {
    /// The snake_case name used in the store, the API and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Overdue => "overdue",
            Self::OnTime => "on_time",
            Self::Late => "late",
            Self::Cancelled => "cancelled",
        }
    }

    /// True while the expectation still waits for a document.
    pub fn is_unsettled(self) -> bool {
        matches!(self, Self::Open | Self::Overdue)
    }
}

/// How a document was matched to an expectation (recorded for audit).
/// Ordered from the strongest match to the weakest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    /// Same encounter id (visit number).
    EncounterId,
    /// The document's FHIR reference names the encounter.
    FhirReference,
    /// Same patient and document kind, issued within the window around the
    /// encounter's end; the nearest open expectation.
    PatientWindow,
}

/// The rule an expectation was created under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleRef {
    /// The rule's id in the policy file.
    pub id: String,
    /// The contract clause it comes from, e.g. `SC11.6`.
    pub clause: String,
}

/// The encounter facts an expectation keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EncounterSummary {
    /// Visit number, when known.
    pub id: Option<String>,
    /// FHIR logical reference, when known.
    pub reference: Option<String>,
    /// Encounter kind.
    pub kind: EncounterKind,
    /// When the encounter ended: the start of the clock for the deadline.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub ended_at: DateTime<Utc>,
    /// Site, for per-site reporting.
    pub site: Option<String>,
    /// Specialty, for optional labels.
    pub specialty: Option<String>,
}

/// The patient keys an expectation keeps (for matching by patient, and for
/// alert subscribers who are clinical teams).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PatientKeys {
    /// Valid NHS number, when known.
    pub nhs_number: Option<String>,
    /// Local identifiers.
    pub local_ids: Vec<Identifier>,
}

impl PatientKeys {
    /// Whether `patient` is someone else (see [`patients_contradict`]).
    pub(crate) fn contradicts(&self, patient: &tocsin_event::Patient) -> bool {
        patients_contradict(self.nhs_number.as_deref(), &self.local_ids, patient)
    }
}

/// Whether `patient` is someone else than the patient of `nhs_number` and
/// `local_ids`: both NHS numbers known and different; else a local id of the
/// same issuer with another value and none that agrees. Unknown is not
/// someone else.
pub(crate) fn patients_contradict(
    nhs_number: Option<&str>,
    local_ids: &[Identifier],
    patient: &tocsin_event::Patient,
) -> bool {
    if let (Some(a), Some(b)) = (nhs_number, patient.nhs_number.as_deref()) {
        return a != b;
    }
    let mut same_issuer = false;
    for theirs in &patient.local_ids {
        for ours in local_ids.iter().filter(|o| o.system == theirs.system) {
            if ours.value == theirs.value {
                return false;
            }
            same_issuer = true;
        }
    }
    same_issuer
}

/// The document that settled an expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Settlement {
    /// The document's id.
    pub document_id: String,
    /// When it first left the trust (a later replacement does not move it).
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub issued_at: DateTime<Utc>,
    /// Seconds from the encounter's end to `issued_at`, rounded up to the
    /// whole second (negative if issued before the end): a late document's
    /// delay always exceeds the time its rule allows.
    pub delay_seconds: i64,
    /// How the document was matched.
    pub matched_by: MatchMethod,
    /// The transmitting message's id, to which acknowledgements attach.
    pub message_id: String,
    /// The event that carried the document.
    pub event_id: EventId,
}

/// Delivery state of the settling transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Sent, no acknowledgement yet.
    Pending,
    /// The recipient accepted it.
    Acknowledged,
    /// The recipient refused it or it failed.
    Failed,
}

impl DeliveryStatus {
    /// The snake_case name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Acknowledged => "acknowledged",
            Self::Failed => "failed",
        }
    }
}

/// An obligation created by an encounter: this document kind, for this
/// patient and encounter, due by this time, under this rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Expectation {
    /// Deterministic id.
    pub id: ExpectationId,
    /// Where it stands.
    pub status: ExpectationStatus,
    /// The document kind expected.
    pub document_kind: DocumentKind,
    /// The encounter that created it.
    pub encounter: EncounterSummary,
    /// The patient.
    pub patient: PatientKeys,
    /// ODS code of the GP practice, when known.
    pub gp_practice: Option<String>,
    /// The rule that created it.
    pub rule: RuleRef,
    /// When the document is due.
    #[serde(serialize_with = "crate::time_text::serialize")]
    pub deadline: DateTime<Utc>,
    /// When a `due_soon` warning falls, if the rule has one.
    #[serde(serialize_with = "crate::time_text::serialize_option")]
    pub due_soon_at: Option<DateTime<Utc>>,
    /// The event that created it.
    pub created_by: EventId,
    /// The settling document, once there is one.
    pub settlement: Option<Settlement>,
    /// Delivery state of the settling transmission.
    pub delivery: Option<DeliveryStatus>,
    /// Alert kinds already raised for it, so none is raised twice.
    pub alerts_raised: Vec<crate::AlertKind>,
}

/// A named piece of auxiliary tracker state (a document that arrived before its
/// encounter ended, a transmission awaiting acknowledgement, a message key
/// already seen, the clock). The store keeps these as opaque JSON records so
/// that the tracker can be rebuilt after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    /// Which kind of state, e.g. `pending_document`, `seen`, `clock`.
    pub namespace: String,
    /// The record's key within its namespace.
    pub key: String,
    /// The record itself.
    pub value: JsonText,
}

/// The auxiliary state records of one namespace whose keys sort (byte by
/// byte) at or after `from` and before `to`: how the tracker forgets the
/// duplicate keys that have aged past their horizon, whose stored keys
/// begin with the time they were seen. One range for every key, so that the
/// tracker need not keep each key whole to name it, and the store deletes
/// them in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRange {
    /// Namespace of the records.
    pub namespace: String,
    /// The first key in the range.
    pub from: String,
    /// The first key past the range.
    pub to: String,
}

impl StateRange {
    /// Whether the range holds this record.
    pub fn contains(&self, namespace: &str, key: &str) -> bool {
        self.namespace == namespace && self.from.as_str() <= key && key < self.to.as_str()
    }
}

/// `serde_json::to_string`, written into a buffer kept by the thread and
/// copied out at its final length. `to_string` starts at 128 bytes and
/// doubles: an expectation's or transmission's 800 bytes of JSON took three
/// reallocations, each a copy.
pub fn json_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, value)?;
        let text = std::str::from_utf8(buf).map(str::to_owned);
        // Not kept past 64 KiB: one huge record must not pin its size.
        if buf.capacity() > 1 << 16 {
            *buf = Vec::new();
        }
        // serde_json writes UTF-8 only.
        text.map_err(|_| serde::ser::Error::custom("serde_json wrote invalid UTF-8"))
    })
}

/// A state record's value as JSON text: the tracker writes it once and the
/// store keeps it as it is. Built as a `serde_json::Value` tree instead, a
/// transmission record (the settled expectations it carries) cost an
/// allocation per field in the tracker, a walk back to text in the store and
/// a free per field after, about a tenth of a replay's time
/// (docs/performance.md, "Sixth session").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// The JSON of a value. tocsin's own state types always serialise (they
    /// have string keys only); should one ever fail, the record is `null`,
    /// which restoring refuses as a bad record wherever it reads the value
    /// (a `seen` record's time is read from its key instead).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        Self(json_string(value).unwrap_or_else(|_| "null".into()))
    }

    /// Text read back from a store, checked to be exactly one JSON value.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Self(text))
    }

    /// The JSON text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the value back as a `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

/// What the core asks its driver to do. The driver persists every effect of
/// a batch atomically before acknowledging the inputs that caused them.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// An expectation was created or changed: store its new state.
    ExpectationChanged(Expectation),
    /// An alert was raised: store it and queue it for delivery.
    AlertRaised(crate::Alert),
    /// Put an auxiliary state record.
    StatePut(StateRecord),
    /// Delete an auxiliary state record.
    StateDeleted {
        /// Namespace of the record.
        namespace: String,
        /// Key of the record.
        key: String,
    },
    /// Delete every auxiliary state record in a range of keys.
    StateRangeDeleted(StateRange),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's buffer never leaks one value's text into the next: a
    /// long value, a short one after it, one past the 64 KiB the buffer
    /// keeps, then a short one again, each exactly `serde_json::to_string`.
    #[test]
    fn json_string_is_to_string_value_after_value() {
        let long = "é\"\n".repeat(10_000);
        let values = [
            serde_json::json!({"text": long}),
            serde_json::json!({"n": 1}),
            serde_json::json!(["x".repeat(100_000)]),
            serde_json::json!("short"),
        ];
        for v in &values {
            let ours = json_string(v).unwrap();
            assert_eq!(ours, serde_json::to_string(v).unwrap());
            assert_eq!(JsonText::of(v).as_str(), ours);
        }
    }
}
