//! Telling formats apart by content.

use crate::IngestError;

/// The format of an input, as a transport says it (file name, AMQP
/// `content_type`) or as the content shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentHint {
    /// HL7 v2 ER7, possibly MLLP-framed or batched.
    Hl7,
    /// One FHIR JSON resource (any type, including Bundles).
    FhirJson,
    /// Newline-delimited FHIR JSON, one resource per line.
    Ndjson,
    /// One FHIR XML resource (R4 or STU3, any type, including Bundles).
    FhirXml,
}

impl ContentHint {
    /// The hint a file name gives, if any (`.hl7`, `.er7`, `.json`,
    /// `.ndjson`, `.xml`). Content detection decides the rest.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "xml" => Some(Self::FhirXml),
            _ => None,
        }
    }
}

/// Detects the format from the first bytes of the content.
///
/// HL7 starts with `MSH`, `FHS` or `BHS` (after an optional MLLP start block
/// 0x0B); JSON with `{`, and is NDJSON when its first line is a complete JSON
/// object and another line follows; XML with `<`. A UTF-8 byte-order mark and
/// leading white space are skipped.
pub fn detect(bytes: &[u8]) -> Result<ContentHint, IngestError> {
    if let Some(looks_like) = not_text(bytes) {
        return Err(IngestError::Unrecognised {
            looks_like: Some(looks_like),
        });
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let body = body.trim_ascii_start();
    let body = body.strip_prefix(b"\x0B").unwrap_or(body);
    if body.is_empty() {
        return Err(IngestError::Empty);
    }
    if body.starts_with(b"MSH") || body.starts_with(b"FHS") || body.starts_with(b"BHS") {
        return Ok(ContentHint::Hl7);
    }
    match body[0] {
        b'{' => {
            let mut lines = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty());
            let first = lines.next().unwrap_or_default();
            let is_object = |l: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok();
            let ndjson = match lines.next() {
                None => false,
                Some(_) if is_object(first) => true,
                // A first line cut short: NDJSON still when the second line
                // is a whole object at the line's start and the whole is
                // not one document (a Bundle can lay an entry out so).
                // Read as one document, every resource in the file was
                // refused with the first.
                Some(second) => second.starts_with(b"{") && is_object(second) && !is_object(body),
            };
            Ok(if ndjson {
                ContentHint::Ndjson
            } else {
                ContentHint::FhirJson
            })
        }
        b'<' => Ok(ContentHint::FhirXml),
        b'[' => Err(IngestError::Unrecognised {
            looks_like: Some("a JSON array: send one resource or Bundle per input, or NDJSON"),
        }),
        _ => Err(IngestError::Unrecognised { looks_like: None }),
    }
}

/// What an input that is not text of any kind tocsin reads looks like, by
/// its first bytes: archives must be unpacked and UTF-16 converted first,
/// and saying so spares the reader a hunt.
fn not_text(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x1f\x8b") {
        Some("gzip-compressed: decompress it first")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("a zip archive: unpack it first")
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        Some("UTF-16 text: convert it to UTF-8")
    } else {
        None
    }
}
