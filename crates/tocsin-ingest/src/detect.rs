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
    /// The hint a file name gives, if any (`.ndjson`, `.jsonl`, `.xml`, in
    /// any case). Content detection decides the rest: `.json` may hold one
    /// resource or NDJSON, and an `.hl7` file holding no message at all is
    /// better refused as no format than as a message.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "xml" => Some(Self::FhirXml),
            _ => None,
        }
    }
}

/// Detects the format from the content.
///
/// JSON starts with `{`, and is NDJSON when its first line is a complete
/// JSON object and another line follows, or when the whole is not one
/// document and a later line (of the first [`NDJSON_PROBE_LINES`]) is a
/// complete object; XML starts with `<`; HL7 is any other text with a line
/// or MLLP frame starting `MSH`, `FHS` or `BHS` in its first
/// [`HL7_PROBE_BYTES`]: text before the first message (a header line, an
/// end block left over from the previous file) becomes a unit of its own,
/// rejected with its reason, and the messages after it are read. A UTF-8
/// byte-order mark and leading white space are skipped.
pub fn detect(bytes: &[u8]) -> Result<ContentHint, IngestError> {
    let body = text_content(bytes)?;
    match body[0] {
        b'{' => Ok(if is_ndjson(body) {
            ContentHint::Ndjson
        } else {
            ContentHint::FhirJson
        }),
        b'<' => Ok(ContentHint::FhirXml),
        b'[' => Err(IngestError::Unrecognised {
            looks_like: Some("a JSON array: send one resource or Bundle per input, or NDJSON"),
        }),
        _ if has_hl7_start(body) => Ok(ContentHint::Hl7),
        _ => Err(IngestError::Unrecognised { looks_like: None }),
    }
}

/// The format of `body` (text content) whose file name gave `hint`: the
/// hint, unless the content cannot be of it. XML begins with `<`: HL7 or
/// JSON named `.xml` was refused as "text outside an XHTML narrative".
/// NDJSON's first line is a whole object: one pretty-printed document
/// named `.ndjson` was refused line by line, hundreds of rejections for
/// one resource. Then the content decides, as for a file with no hint.
pub(crate) fn against_hint(hint: ContentHint, body: &[u8]) -> Result<ContentHint, IngestError> {
    let is_value = |b: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok();
    match hint {
        // Only content of a format recognised for sure: NDJSON whose first
        // line is junk stays NDJSON, its other lines read.
        ContentHint::FhirXml | ContentHint::Ndjson if body[0] != b'<' && body[0] != b'{' => {
            Ok(match detect(body) {
                Ok(found @ (ContentHint::Hl7 | ContentHint::FhirXml)) => found,
                _ => hint,
            })
        }
        ContentHint::FhirXml if body[0] == b'{' => detect(body),
        ContentHint::Ndjson if body[0] == b'<' => Ok(ContentHint::FhirXml),
        ContentHint::Ndjson => {
            let first = body.split(|b| *b == b'\n').next().unwrap_or_default();
            if !is_value(first.trim_ascii_end()) && is_value(body) {
                Ok(ContentHint::FhirJson)
            } else {
                Ok(hint)
            }
        }
        _ => Ok(hint),
    }
}

/// The content of an input that is text of some kind (less a byte-order
/// mark and leading white space), never empty; else why not: an archive or
/// UTF-16 text, named, or nothing at all. Checked whatever format a hint
/// names.
pub(crate) fn text_content(bytes: &[u8]) -> Result<&[u8], IngestError> {
    if let Some(looks_like) = not_text(bytes) {
        return Err(IngestError::Unrecognised {
            looks_like: Some(looks_like),
        });
    }
    let body = content(bytes);
    if body.is_empty() {
        return Err(IngestError::Empty);
    }
    Ok(body)
}

/// The content less a UTF-8 byte-order mark and leading white space: empty
/// when there is nothing else.
pub(crate) fn content(bytes: &[u8]) -> &[u8] {
    bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(bytes)
        .trim_ascii_start()
}

/// How far into an input detection looks for an HL7 message start.
pub const HL7_PROBE_BYTES: usize = 64 * 1024;

/// How many non-blank lines of a JSON input detection looks at for a
/// complete object, when the whole is not one document.
pub const NDJSON_PROBE_LINES: usize = 100;

/// Whether a segment of HL7 starts at the input's start or at the start of
/// a line or MLLP frame within the first [`HL7_PROBE_BYTES`]: `MSH`, `FHS`
/// or `BHS` and then a field separator (not a letter, digit or white
/// space), after white space and a UTF-8 byte-order mark if any: an MLLP
/// frame whose payload was written with a mark (`0x0B`, mark, `MSH`) made
/// the whole input no format at all.
fn has_hl7_start(body: &[u8]) -> bool {
    let probe = &body[..body.len().min(HL7_PROBE_BYTES)];
    let header_at = |rest: &[u8]| {
        rest.len() > 3
            && matches!(&rest[..3], b"MSH" | b"FHS" | b"BHS")
            && !rest[3].is_ascii_alphanumeric()
            && !rest[3].is_ascii_whitespace()
    };
    // One pass: at the start and after each line end or MLLP start block,
    // white space and a byte-order mark are passed over and the first byte
    // after them tested. (Trimming again after every line end was
    // quadratic: 5.5 s to refuse 64 KB of blank lines.)
    let mut line_start = true;
    let mut i = 0;
    while i < probe.len() {
        let b = probe[i];
        if matches!(b, b'\r' | b'\n' | 0x0B) {
            line_start = true;
        } else if line_start && b.is_ascii_whitespace() {
        } else if line_start && probe[i..].starts_with(b"\xEF\xBB\xBF") {
            i += 3;
            continue;
        } else if line_start {
            if header_at(&probe[i..]) {
                return true;
            }
            line_start = false;
        }
        i += 1;
    }
    false
}

/// Whether JSON content (starting `{`) is NDJSON rather than one document.
fn is_ndjson(body: &[u8]) -> bool {
    let is_object = |l: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok();
    let mut lines = body
        .split(|b| *b == b'\n')
        .map(|l| content(l).trim_ascii_end())
        .filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let mut rest = lines.take(NDJSON_PROBE_LINES).peekable();
    if rest.peek().is_none() {
        return false;
    }
    // The usual case, decided without reading the whole input.
    if is_object(first) {
        return true;
    }
    // A first line cut short (or two): NDJSON still when a later line is a
    // whole object and the whole is not one document (a pretty-printed
    // Bundle's lines are no objects of their own). Read as one document,
    // every resource in the file was refused with the first.
    !is_object(body) && rest.any(|l| l.starts_with(b"{") && is_object(l))
}

/// What an input that is not text of any kind tocsin reads looks like, by
/// its first bytes: archives must be unpacked and UTF-16 converted first,
/// and saying so spares the reader a hunt.
fn not_text(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x1f\x8b") {
        Some("gzip-compressed: decompress it first")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("a zip archive: unpack it first")
    } else if bytes.starts_with(b"\xFF\xFE")
        || bytes.starts_with(b"\xFE\xFF")
        || utf16_without_bom(bytes)
    {
        Some("UTF-16 text: convert it to UTF-8")
    } else if bytes.get(257..262) == Some(b"ustar") {
        // A tar archive (a `.tar.gz` arrives here decompressed) names its
        // magic at byte 257 of its first header.
        Some("a tar archive: unpack it first")
    } else {
        None
    }
}

/// UTF-16 text without a byte-order mark: its first characters are ASCII
/// (`MSH`, `{`, `<`), each with a NUL beside it (after it little-endian,
/// before it big-endian).
fn utf16_without_bom(bytes: &[u8]) -> bool {
    let Some(head) = bytes.get(..8) else {
        return false;
    };
    let pairs = || head.chunks_exact(2);
    let le = pairs().all(|p| p[0] != 0 && p[0].is_ascii() && p[1] == 0);
    let be = pairs().all(|p| p[0] == 0 && p[1] != 0 && p[1].is_ascii());
    le || be
}

#[cfg(test)]
mod tests {
    use super::has_hl7_start;

    /// A name's hint gives way to content that cannot be of its format:
    /// HL7 or JSON named `.xml`, HL7 named `.ndjson`, one pretty-printed
    /// document named `.ndjson`. NDJSON whose first line is broken stays
    /// NDJSON (its other lines are read).
    #[test]
    fn content_that_cannot_be_the_hinted_format_decides() {
        use super::{ContentHint as H, against_hint};
        let hl7 = b"MSH|^~\\&|PAS|X\r";
        let pretty = b"{\n  \"resourceType\": \"Patient\",\n  \"id\": \"1\"\n}\n";
        let lines = b"{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Patient\"}\n";
        let broken = b"{\"resourceType\":\n{\"resourceType\":\"Patient\"}\n";
        for (hint, body, want) in [
            (H::FhirXml, &hl7[..], H::Hl7),
            (H::FhirXml, pretty, H::FhirJson),
            (H::FhirXml, b"<Patient/>", H::FhirXml),
            (H::Ndjson, hl7, H::Hl7),
            (H::Ndjson, pretty, H::FhirJson),
            (H::Ndjson, lines, H::Ndjson),
            (H::Ndjson, broken, H::Ndjson),
            (
                H::Ndjson,
                b"not a resource\n{\"resourceType\":\"Patient\"}\n",
                H::Ndjson,
            ),
            (H::FhirXml, b"not xml at all", H::FhirXml),
            (H::Ndjson, b"<Patient/>", H::FhirXml),
        ] {
            assert_eq!(
                against_hint(hint, body).unwrap(),
                want,
                "{hint:?} {}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// A header is found at the start of the probe or of any line within
    /// it, after white space and a byte-order mark; nowhere else.
    #[test]
    fn an_hl7_start_is_found_at_a_line_start_only() {
        for yes in [
            &b"MSH|^~\\&|"[..],
            b"junk\n   MSH|^~\\&|",
            b"junk\r\n\xEF\xBB\xBF MSH|^~\\&|",
            b"\x0bMSH|^~\\&|",
            b"x\n\n\n\t BHS|^~\\&|",
        ] {
            assert!(has_hl7_start(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &b"xMSH|^~\\&|"[..],
            b"junk\n MSHA|",
            b"junk\nMSH ",
            b"a line\nwith MSH| inside",
            b"",
        ] {
            assert!(!has_hl7_start(no), "{}", String::from_utf8_lossy(no));
        }
        // Blank lines by the thousand are passed in one pass (a junk file
        // of 64 KB of line ends took 5.5 s).
        let mut blank = b"x".to_vec();
        blank.extend(std::iter::repeat_n(b'\n', 65_535));
        assert!(!has_hl7_start(&blank));
        blank.extend_from_slice(b"MSH|^~\\&|");
        assert!(!has_hl7_start(&blank), "past the probe");
    }
}
