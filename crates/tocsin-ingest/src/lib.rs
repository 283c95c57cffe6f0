//! Ingestion: from raw bytes (a file, an AMQP body) to interface events.
//!
//! The gateway's three entry points (`tocsin normalise`, `tocsin replay` and
//! the live consumer) all read input through [`ingest`], so a message is
//! judged the same way wherever it comes from. This crate tells formats apart
//! (by an optional hint, else by content), splits the input into units (HL7
//! messages, NDJSON lines, one FHIR resource) and hands each unit to its
//! normaliser. It does no I/O.

mod config;
mod detect;
mod error;

pub use config::{ConfigError, IngestConfig};
pub use detect::{ContentHint, detect};
pub use error::IngestError;

use tocsin_event::InterfaceEvent;

/// Where in an input a unit sits, for error reports (`file:position`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The whole input (one FHIR resource).
    Whole,
    /// The n-th HL7 message (1-based) starting at a byte offset.
    Message {
        /// 1-based message number within the input.
        index: usize,
        /// Byte offset of the message's start.
        offset: usize,
    },
    /// A 1-based line of an NDJSON input.
    Line(usize),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Whole => f.write_str("whole input"),
            Self::Message { index, offset } => write!(f, "message {index} (byte {offset})"),
            Self::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// One unit of input and what became of it.
#[derive(Debug)]
pub struct Unit {
    /// Where the unit sits in its input.
    pub position: Position,
    /// Its events, or why it could not be normalised.
    pub outcome: Result<Vec<InterfaceEvent>, IngestError>,
}

/// Normalises a whole input. Never panics and never stops early: every unit
/// is either normalised or reported with its reason, in input order.
///
/// `max_input_bytes` bounds each unit: a whole FHIR resource, one NDJSON
/// line (HL7 messages have their own `[hl7] max_message_bytes`). A batch
/// file or a bulk export larger than the limit is read unit by unit: an
/// archive's 200 MB NDJSON file was refused whole, every resource in it
/// with it.
pub fn ingest(bytes: &[u8], hint: Option<ContentHint>, cfg: &IngestConfig) -> Vec<Unit> {
    ingest_units(bytes, hint, cfg).collect()
}

/// [`ingest`], one unit at a time: each is normalised when it is taken, so
/// that a bulk export or a batch file is held as bytes and one unit's
/// events, not as every unit's events at once (a 43 MB NDJSON export of a
/// million resources took 3.7 GB collected whole).
pub fn ingest_units<'a>(
    bytes: &'a [u8],
    hint: Option<ContentHint>,
    cfg: &'a IngestConfig,
) -> Units<'a> {
    // Whatever the hint says: a gzip body named `.ndjson`, or a UTF-16
    // file, is refused once with what to do about it, not line by line
    // as malformed JSON; an empty one is empty, whatever its format.
    let kind = match hint {
        Some(h) => detect::text_content(bytes).and_then(|body| detect::against_hint(h, body)),
        None => detect(bytes),
    };
    let kind = match kind {
        Ok(h) => h,
        Err(e) => return whole(Err(e)),
    };
    match kind {
        ContentHint::Hl7 => ingest_hl7(bytes, cfg),
        ContentHint::Ndjson => ingest_ndjson(bytes, cfg),
        _ if bytes.len() > cfg.max_input_bytes => whole(Err(IngestError::Oversized {
            size: bytes.len(),
            limit: cfg.max_input_bytes,
        })),
        ContentHint::FhirJson => {
            whole(tocsin_fhir::normalise_json(bytes, &cfg.fhir).map_err(IngestError::from))
        }
        ContentHint::FhirXml => {
            whole(tocsin_fhir::normalise_xml(bytes, &cfg.fhir).map_err(IngestError::from))
        }
    }
}

/// An input's units, normalised as they are taken ([`ingest_units`]).
pub type Units<'a> = Box<dyn Iterator<Item = Unit> + Send + 'a>;

/// The one unit of an input read whole (a FHIR resource, or an input
/// refused whole).
fn whole<'a>(outcome: Result<Vec<InterfaceEvent>, IngestError>) -> Units<'a> {
    Box::new(std::iter::once(Unit {
        position: Position::Whole,
        outcome,
    }))
}

fn ingest_hl7<'a>(bytes: &'a [u8], cfg: &'a IngestConfig) -> Units<'a> {
    let messages = tocsin_hl7::split_messages(bytes);
    if messages.is_empty() {
        return whole(Err(IngestError::Empty));
    }
    Box::new(messages.into_iter().enumerate().map(move |(i, m)| Unit {
        position: Position::Message {
            index: i + 1,
            offset: m.offset,
        },
        outcome: if m.unterminated_frame {
            Err(IngestError::from(tocsin_hl7::Hl7Error::UnterminatedFrame))
        } else {
            tocsin_hl7::normalise_message(m.bytes, &cfg.hl7)
                .map(|mut e| {
                    if m.joined {
                        e.warnings.push(joined_warning());
                    }
                    vec![e]
                })
                .map_err(IngestError::from)
        },
    }))
}

/// Said of a message that began inside the last segment of the one before
/// it ([`tocsin_hl7::RawMessage::joined`]): both were read, but the sender
/// drops segment terminators, and the segment before lost its end.
fn joined_warning() -> tocsin_event::Warning {
    tocsin_event::Warning {
        code: tocsin_event::WarningCode::Other,
        message: "this message began inside the last segment of the message before it (a \
                  segment terminator was missing): read as two messages"
            .into(),
        raw: None,
        location: Some("MSH".into()),
    }
}

fn ingest_ndjson<'a>(bytes: &'a [u8], cfg: &'a IngestConfig) -> Units<'a> {
    let lines = || {
        bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
    };
    if lines().next().is_none() {
        return whole(Err(IngestError::Empty));
    }
    Box::new(lines().map(move |(i, line)| Unit {
        position: Position::Line(i + 1),
        outcome: if line.len() > cfg.max_input_bytes {
            Err(IngestError::Oversized {
                size: line.len(),
                limit: cfg.max_input_bytes,
            })
        } else {
            // A line may open with a byte-order mark: `cat` of files
            // each written with one.
            tocsin_fhir::normalise_json(detect::content(line).trim_ascii_end(), &cfg.fhir)
                .map_err(IngestError::from)
        },
    }))
}
