//! FHIR R4 (UK Core) and STU3 (ITK3 Transfer of Care) JSON into interface
//! events.
//!
//! Trusts send discharge summaries and clinic letters as FHIR: UK Core R4
//! resources and documents from modern EPRs, ITK3 Transfer of Care messages
//! (STU3) over MESH. [`normalise_json`] turns one FHIR JSON resource (a
//! Bundle counts as one) into the same [`InterfaceEvent`]s the HL7 v2
//! normaliser produces, so a FHIR document and an HL7 discharge for the same
//! visit meet in one expectation. Splitting NDJSON and detecting XML is the
//! ingest crate's job.
//!
//! Resources are read through fhir-sdk's models: R4B models for R4 (see the
//! crate README for the differences met and how they are handled) and STU3
//! models for ITK3. Code tables come from [`FhirConfig`].

mod bundle;
mod common;
mod config;
mod error;
mod events;
mod loc;
mod prepare;
mod r4;
mod raw;
mod stu3;
mod subject;
mod time;
mod version;
mod view;
mod xml;

pub use config::FhirConfig;
pub use error::FhirError;
pub use xml::XmlError;

use tocsin_event::{Format, InterfaceEvent};

use crate::events::Ctx;
use crate::prepare::Scope;
use crate::subject::Env;
use crate::version::Version;
use crate::view::Reader;

/// Normalises one FHIR JSON resource of any type, bundles included, into
/// interface events (several for a collection, transaction or batch bundle;
/// one `other` event for a resource type tocsin does not track).
///
/// The FHIR version is told from the content, since FHIR JSON does not name
/// it: declared `meta.profile`s first (UK Core means R4; CareConnect / ITK3
/// `/STU3/` profiles mean STU3), then elements that exist in one version
/// only (STU3 `MessageHeader.event` and `timestamp`,
/// `DocumentReference.indexed`; R4 `MessageHeader.eventCoding`,
/// `Bundle.timestamp`, `DocumentReference.date`...), else R4. R5 or DSTU2
/// content is rejected as [`FhirError::UnsupportedVersion`].
///
/// Errors: oversized input, XML, malformed JSON (with line and column), JSON
/// that is not a FHIR resource, an unsupported version, a resource tocsin
/// uses that does not conform to its model, and a resource without the time
/// its event needs. Nothing panics, whatever the input.
pub fn normalise_json(bytes: &[u8], cfg: &FhirConfig) -> Result<Vec<InterfaceEvent>, FhirError> {
    if bytes.len() > cfg.max_resource_bytes {
        return Err(FhirError::Oversized {
            size: bytes.len(),
            limit: cfg.max_resource_bytes,
        });
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if body.trim_ascii_start().starts_with(b"<") {
        return Err(FhirError::XmlNotSupported);
    }
    // One pass checks the syntax and takes the resource apart (module
    // `raw`); its only errors are syntax errors.
    let root = raw::parse(body).map_err(|e| {
        let mut err = malformed(e);
        // Values one after another on one "line": an NDJSON file whose
        // lines end in CR alone (old Mac), which the reader split on LF.
        if let FhirError::MalformedJson { message, .. } = &mut err
            && message.starts_with("trailing characters")
            && body.windows(2).any(|w| w == b"\r{")
        {
            message.push_str(
                " (values separated by carriage returns alone: NDJSON lines must end in \
                 LF or CRLF)",
            );
        }
        err
    })?;
    normalise_parsed(&root, bytes, cfg)
}

/// The JSON path from the parsed input; `raw` is the received input, from
/// which event ids are derived.
fn normalise_parsed(
    root: &raw::Val<'_>,
    raw: &[u8],
    cfg: &FhirConfig,
) -> Result<Vec<InterfaceEvent>, FhirError> {
    let (obj, rtype) = prepare::resource(root, &"$").map_err(|e| match e {
        FhirError::NotFhir { reason, .. } => FhirError::NotFhir {
            reason,
            location: None,
        },
        other => other,
    })?;
    let version = version::detect_raw(obj, &rtype)?;
    let (format, reader): (Format, Box<dyn Reader>) = match version {
        Version::R4 => (
            Format::FhirR4,
            Box::new(r4::R4 {
                tz: cfg.timezone,
                local: Default::default(),
            }),
        ),
        Version::Stu3 => (
            Format::FhirStu3,
            Box::new(stu3::Stu3 {
                tz: cfg.timezone,
                local: Default::default(),
            }),
        ),
    };
    let loc = loc::Loc::root(rtype.clone());
    let root = prepare::entry_of(obj, rtype, None, loc, reader.as_ref(), 0)?;
    let mut ctx = Ctx {
        env: Env {
            cfg,
            reader: reader.as_ref(),
        },
        format,
        ids: tocsin_event::EventIdSeed::new(format, raw),
        events: Vec::new(),
    };
    let top = Scope {
        entries: &[],
        from_bundle: false,
        parent: None,
        index: None,
    };
    if root.bundle.is_some() {
        ctx.bundle(&root, &top)?;
    } else {
        ctx.resource(&root, &top)?;
    }
    let mut events = ctx.events;
    if let Some(w) = reader.local_times().warning(cfg.timezone) {
        for e in &mut events {
            e.warnings.push(w.clone());
        }
    }
    Ok(events)
}

/// A serde_json syntax error as a typed error.
fn malformed(e: serde_json::Error) -> FhirError {
    FhirError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: error::redact(&strip_position(&e.to_string())),
    }
}

/// serde_json appends " at line L column C"; the position is kept separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Normalises one FHIR XML resource (R4 or STU3, bundles included) into the
/// same interface events its JSON form gives: the XML is converted to JSON
/// (module `xml`) and read by the JSON path. Only `event_id`, and a
/// `source.message_id` that falls back to a hash of the input, differ, since
/// both identify the received bytes.
///
/// Hostile XML is refused, never expanded: DTDs (so external entities and
/// entity expansion), unknown entity references, nesting deeper than
/// `xml_max_depth`, input larger than `xml_max_bytes`.
pub fn normalise_xml(bytes: &[u8], cfg: &FhirConfig) -> Result<Vec<InterfaceEvent>, XmlError> {
    xml::normalise(bytes, cfg)
}

/// The JSON path from an already parsed resource, for the XML reader; `raw`
/// is the received input, from which event ids are derived.
pub(crate) fn normalise_value(
    value: serde_json::Value,
    raw: &[u8],
    cfg: &FhirConfig,
) -> Result<Vec<InterfaceEvent>, FhirError> {
    // The XML reader builds a tree; the JSON path reads text.
    normalise_text(&value.to_string(), raw, cfg)
}

/// The JSON path from JSON text made by the XML reader (not the received
/// bytes); `raw` is the received input, from which event ids are derived.
pub(crate) fn normalise_text(
    text: &str,
    raw: &[u8],
    cfg: &FhirConfig,
) -> Result<Vec<InterfaceEvent>, FhirError> {
    let root = raw::parse(text.as_bytes()).map_err(malformed)?;
    normalise_parsed(&root, raw, cfg)
}
