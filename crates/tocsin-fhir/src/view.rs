//! Version-neutral views of the resources tocsin reads.
//!
//! The R4 (R4B models) and STU3 readers each turn fhir-sdk model structs into
//! these, so that the event semantics live once, in `build`.

use chrono::{DateTime, Utc};

/// An identifier: system and value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ident {
    pub system: Option<String>,
    pub value: Option<String>,
    /// The first coding of `Identifier.type`, for identifiers sent without a system.
    pub type_code: Option<String>,
}

/// A coding: system and code.
#[derive(Debug, Clone, Default)]
pub(crate) struct Code {
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A reference: literal (`Patient/1`, `urn:uuid:…`, `#c1`) and/or logical.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ref {
    pub reference: Option<String>,
    pub identifier: Option<Ident>,
}

/// Resource metadata used for provenance.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub id: Option<String>,
    pub version_id: Option<String>,
    pub last_updated: Option<DateTime<Utc>>,
}

/// An Encounter.
#[derive(Debug, Clone, Default)]
pub(crate) struct EncounterView {
    pub meta: Meta,
    pub identifiers: Vec<Ident>,
    pub status: String,
    pub class: Option<Code>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub subject: Option<Ref>,
    pub service_provider: Option<Ref>,
    pub locations: Vec<Ref>,
    pub specialty: Option<String>,
}

/// A DocumentReference.
#[derive(Debug, Clone, Default)]
pub(crate) struct DocRefView {
    pub meta: Meta,
    pub master_identifier: Option<Ident>,
    pub identifiers: Vec<Ident>,
    pub status: String,
    /// `docStatus` (preliminary, final, amended, entered-in-error), if sent.
    pub doc_status: Option<String>,
    pub types: Vec<Code>,
    /// R4 `date`; STU3 `indexed`.
    pub date: Option<DateTime<Utc>>,
    /// STU3 `created`.
    pub created: Option<DateTime<Utc>>,
    /// The first `content.attachment.creation`: when the attached document
    /// was created, the only time some DocumentReferences carry.
    pub attachment_created: Option<DateTime<Utc>>,
    pub subject: Option<Ref>,
    pub encounters: Vec<Ref>,
    pub relates_to: Vec<(String, Ref)>,
    pub custodian: Option<Ref>,
}

/// A Composition.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompositionView {
    pub meta: Meta,
    pub identifier: Option<Ident>,
    pub status: String,
    pub types: Vec<Code>,
    pub subject: Option<Ref>,
    pub encounter: Option<Ref>,
    pub date: Option<DateTime<Utc>>,
    pub custodian: Option<Ref>,
    pub authors: Vec<Ref>,
    pub replaces: Option<Ref>,
}

/// A MessageHeader.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageHeaderView {
    pub meta: Meta,
    pub event: Option<Code>,
    /// STU3 only; R4 carries the time on `Bundle.timestamp`.
    pub timestamp: Option<DateTime<Utc>>,
    /// R4 `destination.receiver`; STU3 `receiver`.
    pub receivers: Vec<Ref>,
    pub destination_endpoints: Vec<String>,
    pub sender: Option<Ref>,
    pub source_endpoint: Option<String>,
    /// `response.identifier` and `response.code`.
    pub response: Option<(String, String)>,
    pub response_details: Option<Ref>,
    pub focus: Vec<Ref>,
}

/// A Patient.
#[derive(Debug, Clone, Default)]
pub(crate) struct PatientView {
    pub identifiers: Vec<Ident>,
    pub general_practitioners: Vec<Ref>,
}

/// An Organization (or anything else tocsin reads only identifiers from).
#[derive(Debug, Clone, Default)]
pub(crate) struct OrganizationView {
    pub identifiers: Vec<Ident>,
}

/// A Bundle without its entries' resources (those are read one by one;
/// their `fullUrl`s are borrowed from the input, see `prepare::bundle`).
#[derive(Debug, Clone, Default)]
pub(crate) struct BundleView {
    pub meta: Meta,
    pub identifier: Option<Ident>,
    pub bundle_type: String,
    /// R4 only.
    pub timestamp: Option<DateTime<Utc>>,
}

/// Reads resources of one FHIR version into views, from the JSON text of
/// one resource (read through [`crate::time::model`], so date-times without
/// an offset are tolerated); errors are the model's deserialisation errors.
pub(crate) trait Reader {
    /// The input's date-times read as local time so far.
    fn local_times(&self) -> &crate::time::LocalTimes;
    fn encounter(&self, v: &str) -> Result<EncounterView, serde_json::Error>;
    fn document_reference(&self, v: &str) -> Result<DocRefView, serde_json::Error>;
    fn composition(&self, v: &str) -> Result<CompositionView, serde_json::Error>;
    fn message_header(&self, v: &str) -> Result<MessageHeaderView, serde_json::Error>;
    fn patient(&self, v: &str) -> Result<PatientView, serde_json::Error>;
    fn organization(&self, v: &str) -> Result<OrganizationView, serde_json::Error>;
    /// A bundle whose entries have had `resource` removed.
    fn bundle(&self, v: &str) -> Result<BundleView, serde_json::Error>;
}
