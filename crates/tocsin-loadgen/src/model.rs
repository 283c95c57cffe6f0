//! What the generator hands out: messages with their event time, kind and
//! wire format, plus the ground truth of what it planned.

use chrono::{DateTime, Utc};

/// The wire format of a generated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageFormat {
    /// HL7 v2 (ER7, segments ended by CR).
    Hl7,
    /// FHIR JSON, one resource (a Bundle) on one line.
    FhirJson,
}

impl MessageFormat {
    /// The AMQP content type the gateway reads the format from.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Hl7 => "x-application/hl7-v2+er7",
            Self::FhirJson => "application/fhir+json",
        }
    }

    /// The file extension `tocsin replay` recognises for one message.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Hl7 => "hl7",
            Self::FhirJson => "json",
        }
    }
}

/// What a generated message is, for file names, counts and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// ADT^A01 admission (inpatient, day case).
    Admission,
    /// ADT^A04 registration (emergency or outpatient arrival).
    Registration,
    /// ADT^A02 ward transfer.
    Transfer,
    /// ADT^A03 discharge or end of attendance.
    Discharge,
    /// MDM^T02 carrying a discharge summary or clinic letter.
    Hl7Document,
    /// FHIR R4 document bundle.
    FhirDocument,
    /// ITK3 (FHIR STU3) message carrying a document.
    Itk3Document,
    /// HL7 ACK of an MDM message.
    Hl7Ack,
    /// ITK3 response (ITK008M).
    Itk3Response,
}

impl MessageKind {
    /// A short lower-case name for file names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admission => "adt-a01",
            Self::Registration => "adt-a04",
            Self::Transfer => "adt-a02",
            Self::Discharge => "adt-a03",
            Self::Hl7Document => "mdm-t02",
            Self::FhirDocument => "fhir-document",
            Self::Itk3Document => "itk3-document",
            Self::Hl7Ack => "ack",
            Self::Itk3Response => "itk3-response",
        }
    }

    /// The wire format of this kind.
    pub fn format(self) -> MessageFormat {
        match self {
            Self::FhirDocument | Self::Itk3Document | Self::Itk3Response => MessageFormat::FhirJson,
            _ => MessageFormat::Hl7,
        }
    }
}

/// One generated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 0-based position in the generated stream (time order).
    pub seq: u64,
    /// Its event time (what the tracker's clock follows).
    pub time: DateTime<Utc>,
    /// What it is.
    pub kind: MessageKind,
    /// The bytes as an integration engine would send them.
    pub body: Vec<u8>,
}

impl Message {
    /// Its wire format.
    pub fn format(&self) -> MessageFormat {
        self.kind.format()
    }

    /// A file name whose order is the stream's order (and so time order):
    /// `000000042-20250106T101500Z-adt-a03.hl7`.
    pub fn file_name(&self) -> String {
        format!(
            "{:09}-{}-{}.{}",
            self.seq,
            self.time.format("%Y%m%dT%H%M%SZ"),
            self.kind.as_str(),
            self.format().extension()
        )
    }
}

/// The encounter kinds the generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncounterKind {
    /// Inpatient stay.
    Inpatient,
    /// Day case.
    DayCase,
    /// Emergency department attendance.
    Emergency,
    /// Outpatient attendance.
    Outpatient,
}

/// How a planned document turns out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Issued before its deadline.
    OnTime,
    /// Issued after its deadline.
    Late,
    /// Never issued.
    Missing,
}

/// The ground truth of what has been generated so far, for tests and
/// reports to compare the tracker's judgement with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed out.
    pub messages: u64,
    /// Encounters planned (each creates one expected document).
    pub encounters: u64,
    /// Of those, discharges (inpatient, day case, emergency).
    pub discharges: u64,
    /// Of those, outpatient attendances.
    pub attendances: u64,
    /// Documents handed out on time (by their deadline in the profile).
    pub on_time: u64,
    /// Documents handed out late.
    pub late: u64,
    /// Encounters ended whose document was not handed out: planned
    /// missing, or not reached before a message count ended the run.
    pub missing: u64,
}
