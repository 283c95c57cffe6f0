//! From raw bytes to a parsed message with decoded field access.
//!
//! Parsing is hl7-parser's `Message::parse`. Before it, tocsin cleans the
//! text, working around what hl7-parser does not do:
//! - it stops silently at the first line it cannot parse (an empty line, a
//!   bare segment name, a line that is not a segment) and returns the
//!   segments before it; tocsin drops blank lines, gives a bare segment name
//!   its field separator, and rejects any other line it could not parse
//!   rather than lose the rest of the message;
//! - it reads `str` only; tocsin reads UTF-8, and any other bytes as latin-1
//!   (ISO-8859-1, common in UK feeds for `£` and accented names);
//! - it treats segment separators as `\r` (or, leniently, `\n`/`\r\n`, but
//!   not a mix); tocsin splits lines itself and rejoins them with `\r`.

use std::borrow::Cow;

use hl7_parser::Message;
use hl7_parser::message::{Repeat, Segment, Separators};

use crate::{Hl7Config, Hl7Error, escape};

const MLLP_START: u8 = 0x0B;
const MLLP_END: u8 = 0x1C;

/// Checks size and content and returns the message as `\r`-separated text.
pub(crate) fn prepare(msg: &[u8], cfg: &Hl7Config) -> Result<String, Hl7Error> {
    if msg.len() > cfg.max_message_bytes {
        return Err(Hl7Error::Oversized {
            size: msg.len(),
            limit: cfg.max_message_bytes,
        });
    }
    let mut start = 0;
    let mut end = msg.len();
    while start < end && (msg[start].is_ascii_whitespace() || msg[start] == MLLP_START) {
        start += 1;
    }
    if msg[start..end].starts_with(b"\xEF\xBB\xBF") {
        start += 3;
    }
    while end > start && (msg[end - 1].is_ascii_whitespace() || msg[end - 1] == MLLP_END) {
        end -= 1;
    }
    let body = &msg[start..end];
    if body.is_empty() {
        return Err(Hl7Error::Empty);
    }
    if let Some(i) = body
        .iter()
        .position(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7F)
    {
        return Err(Hl7Error::Binary {
            byte: body[i],
            offset: start + i,
        });
    }
    let text: Cow<'_, str> = match std::str::from_utf8(body) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(body.iter().map(|&b| char::from(b)).collect()),
    };
    if !text.starts_with("MSH") {
        return Err(Hl7Error::NotHl7);
    }
    let field_sep = check_separators(&text)?;

    let mut out = String::with_capacity(text.len() + 8);
    for line in text.split(['\r', '\n']) {
        if line.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\r');
        }
        out.push_str(line);
        if line.chars().count() == 3 {
            out.push(field_sep);
        }
    }
    Ok(out)
}

/// MSH-1 and MSH-2 must declare five distinct, non-alphanumeric ASCII
/// characters (hl7-parser would otherwise mis-split or reject the message
/// without saying why). Returns the field separator.
fn check_separators(text: &str) -> Result<char, Hl7Error> {
    let first_line = text.split(['\r', '\n']).next().unwrap_or_default();
    let seps: Vec<char> = first_line.chars().skip(3).take(5).collect();
    if seps.len() < 5 {
        let location = if seps.is_empty() { "MSH-1" } else { "MSH-2" };
        return Err(Hl7Error::TruncatedMsh {
            location: location.to_owned(),
        });
    }
    if seps
        .iter()
        .any(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c.is_ascii_whitespace())
    {
        return Err(Hl7Error::BadSeparators {
            detail: "separators must be ASCII punctuation",
        });
    }
    for (i, c) in seps.iter().enumerate() {
        if seps[i + 1..].contains(c) {
            return Err(Hl7Error::BadSeparators {
                detail: "the five separator characters must all differ",
            });
        }
    }
    Ok(seps[0])
}

/// A parsed message whose every line was understood.
pub(crate) struct Parsed<'a> {
    msg: Message<'a>,
}

impl<'a> Parsed<'a> {
    /// Parses text from [`prepare`].
    pub(crate) fn parse(text: &'a str) -> Result<Self, Hl7Error> {
        let msg = Message::parse(text).map_err(|_| Hl7Error::MalformedSegment {
            index: 1,
            name: "MSH".to_owned(),
            detail: "the MSH segment cannot be parsed",
        })?;
        let parsed_len = msg.raw_value().len();
        if parsed_len < text.len() {
            let rest = text[parsed_len..].trim_start_matches('\r');
            let name: String = rest
                .chars()
                .take(3)
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect();
            return Err(Hl7Error::MalformedSegment {
                index: msg.segments.len() + 1,
                name,
                detail: "a segment starts with a three-character name and the field separator",
            });
        }
        Ok(Self { msg })
    }

    /// The first segment of that name.
    pub(crate) fn segment(&self, name: &str) -> Option<Seg<'_, 'a>> {
        let seps = &self.msg.separators;
        self.msg
            .segments
            .iter()
            .find(|s| s.name == name)
            .map(|seg| Seg { seg, seps })
    }

    /// Every segment of that name, in order.
    pub(crate) fn segments<'p>(&'p self, name: &'p str) -> impl Iterator<Item = Seg<'p, 'a>> + 'p {
        let seps = &self.msg.separators;
        self.msg
            .segments
            .iter()
            .filter(move |s| s.name == name)
            .map(move |seg| Seg { seg, seps })
    }
}

/// One segment with its message's separators, for decoded access.
#[derive(Clone, Copy)]
pub(crate) struct Seg<'p, 'a> {
    seg: &'p Segment<'a>,
    seps: &'p Separators,
}

impl<'p, 'a> Seg<'p, 'a> {
    /// The field as written (repetitions, components and escapes included);
    /// empty when the segment is shorter.
    pub(crate) fn raw(&self, field: usize) -> &'a str {
        self.seg.field(field).map_or("", |f| f.raw_value())
    }

    /// The segment's name, e.g. `PV1`.
    pub(crate) fn name(&self) -> &'a str {
        self.seg.name
    }

    /// Number of fields present (MSH counts MSH-1 and MSH-2).
    pub(crate) fn field_count(&self) -> usize {
        self.seg.fields.len()
    }

    /// The repetitions of a field.
    pub(crate) fn repeats(&self, field: usize) -> impl Iterator<Item = Rep<'p, 'a>> + 'p {
        let seps = self.seps;
        self.seg
            .field(field)
            .into_iter()
            .flat_map(|f| f.repeats.iter())
            .map(move |rep| Rep { rep, seps })
    }

    /// Component `comp` of the first repetition, decoded and trimmed; `None`
    /// when empty or the HL7 null `""`.
    pub(crate) fn comp(&self, field: usize, comp: usize) -> Option<Cow<'a, str>> {
        self.repeats(field).next().and_then(|r| r.comp(comp))
    }

    /// Component `comp` of repetition `rep` (1-based), decoded but not
    /// trimmed; empty when absent. For raw comparisons.
    pub(crate) fn decoded_component(&self, field: usize, rep: usize, comp: usize) -> String {
        self.repeats(field)
            .nth(rep.saturating_sub(1))
            .and_then(|r| r.rep.component(comp))
            .map(|c| escape::decode(c.raw_value(), self.seps).into_owned())
            .unwrap_or_default()
    }

    /// The first component of the first repetition (the usual value).
    pub(crate) fn value(&self, field: usize) -> Option<Cow<'a, str>> {
        self.comp(field, 1)
    }
}

/// One repetition of a field.
#[derive(Clone, Copy)]
pub(crate) struct Rep<'p, 'a> {
    rep: &'p Repeat<'a>,
    seps: &'p Separators,
}

impl<'a> Rep<'_, 'a> {
    /// Component `comp`, decoded and trimmed; `None` when empty.
    pub(crate) fn comp(&self, comp: usize) -> Option<Cow<'a, str>> {
        let raw = self.rep.component(comp)?.raw_value();
        nonempty(escape::decode(raw, self.seps))
    }

    /// Subcomponent `sub` of component `comp`, decoded and trimmed.
    pub(crate) fn sub(&self, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        let raw = self.rep.component(comp)?.subcomponent(sub)?.raw_value();
        nonempty(escape::decode(raw, self.seps))
    }
}

fn nonempty(v: Cow<'_, str>) -> Option<Cow<'_, str>> {
    let trimmed = v.trim();
    if trimmed.is_empty() || trimmed == "\"\"" {
        return None;
    }
    Some(match v {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.len() == trimmed.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    })
}
