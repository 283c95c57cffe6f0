//! From raw bytes to a parsed message with decoded field access.
//!
//! hl7-parser reads the separators (`parser::parse_msh`) and the structure
//! of each field the normaliser reads (`parser::parse_field_with_separators`).
//! Around it tocsin works around what hl7-parser does not do:
//! - `Message::parse` stops silently at the first line it cannot parse (an
//!   empty line, a bare segment name, a line that is not a segment) and
//!   returns the segments before it; tocsin drops blank lines, gives a bare
//!   segment name its field separator, and rejects any other such line
//!   (`malformed_segment`) rather than lose the rest of the message;
//! - `Message::parse` allocates for every field of the message; tocsin
//!   splits segments and fields itself and parses only the fields it reads
//!   (see [`Parsed`]);
//! - it reads `str` only; tocsin reads UTF-8, and any other bytes as latin-1
//!   (ISO-8859-1, common in UK feeds for `£` and accented names);
//! - it treats segment separators as `\r` (or, leniently, `\n`/`\r\n`, but
//!   not a mix); tocsin splits lines itself and rejoins them with `\r`;
//! - it accepts any five ASCII characters as separators; tocsin requires
//!   five distinct punctuation characters (`bad_separators`).

use std::borrow::Cow;

use hl7_parser::message::{Field, Repeat, Separators};

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
        if line.len() <= 12 && line.chars().count() == 3 {
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

/// A message split into segments, each checked to be a segment.
///
/// hl7-parser's `Message::parse` builds vectors for every field, repetition,
/// component and subcomponent of the whole message, which costs tens of
/// microseconds on a typical ADT; the normaliser reads about twenty fields.
/// So tocsin splits segments and fields itself and hands only the fields it
/// reads to hl7-parser (`parse_field_with_separators`), with the separators
/// hl7-parser read from MSH (`parse_msh`).
pub(crate) struct Parsed<'a> {
    segments: Vec<SegData<'a>>,
}

/// A segment's text, split into fields once.
struct SegData<'a> {
    name: &'a str,
    line: &'a str,
    /// The fields as written: index 0 is the name (for MSH, index 1 is MSH-2,
    /// the encoding characters).
    fields: Vec<&'a str>,
    seps: Separators,
}

impl<'a> SegData<'a> {
    fn new(name: &'a str, line: &'a str, seps: Separators) -> Self {
        Self {
            name,
            line,
            fields: line.split(seps.field).collect(),
            seps,
        }
    }
}

impl<'a> Parsed<'a> {
    /// Splits text from [`prepare`] (segments separated by `\r`, MSH first).
    pub(crate) fn parse(text: &'a str) -> Result<Self, Hl7Error> {
        let mut lines = text.split('\r');
        let first = lines.next().unwrap_or_default();
        let (seps, _) =
            hl7_parser::parser::parse_msh(first).map_err(|_| Hl7Error::MalformedSegment {
                index: 1,
                name: "MSH".to_owned(),
                detail: "the MSH segment cannot be parsed",
            })?;
        let mut segments = vec![SegData::new("MSH", first, seps)];
        for (i, line) in lines.enumerate() {
            let name = line
                .get(..3)
                .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric()));
            let rest_ok = line.get(3..).is_some_and(|r| r.starts_with(seps.field));
            match name {
                Some(name) if rest_ok => segments.push(SegData::new(name, line, seps)),
                _ => {
                    return Err(Hl7Error::MalformedSegment {
                        index: i + 2,
                        name: line
                            .chars()
                            .take(3)
                            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                            .collect(),
                        detail: "a segment starts with a three-character name and the field separator",
                    });
                }
            }
        }
        Ok(Self { segments })
    }

    /// The first segment of that name.
    pub(crate) fn segment(&self, name: &str) -> Option<Seg<'_>> {
        self.segments
            .iter()
            .find(|s| s.name == name)
            .map(|d| Seg { d })
    }

    /// Every segment of that name, in order.
    pub(crate) fn segments<'p>(&'p self, name: &'p str) -> impl Iterator<Item = Seg<'p>> + 'p {
        self.segments
            .iter()
            .filter(move |s| s.name == name)
            .map(|d| Seg { d })
    }
}

/// One segment with its message's separators, for decoded access.
#[derive(Clone, Copy)]
pub(crate) struct Seg<'a> {
    d: &'a SegData<'a>,
}

impl<'a> Seg<'a> {
    /// The segment's name, e.g. `PV1`.
    pub(crate) fn name(&self) -> &'a str {
        self.d.name
    }

    /// The field as written (repetitions, components and escapes included);
    /// empty when the segment is shorter.
    pub(crate) fn raw(&self, field: usize) -> &'a str {
        let d = self.d;
        match field {
            0 => "",
            // MSH-1 is the field separator itself; MSH-2 is index 1.
            1 if d.name == "MSH" => d.line.get(3..4).unwrap_or_default(),
            n if d.name == "MSH" => d.fields.get(n - 1).copied().unwrap_or_default(),
            n => d.fields.get(n).copied().unwrap_or_default(),
        }
    }

    /// Number of fields present (MSH counts MSH-1 and MSH-2).
    pub(crate) fn field_count(&self) -> usize {
        let parts = self.d.fields.len();
        if self.d.name == "MSH" {
            parts
        } else {
            parts - 1
        }
    }

    /// The field's structure, parsed by hl7-parser.
    pub(crate) fn field(&self, field: usize) -> Option<Fld<'a>> {
        let raw = self.raw(field);
        hl7_parser::parser::parse_field_with_separators(raw, self.d.seps)
            .ok()
            .map(|f| Fld {
                f,
                seps: self.d.seps,
            })
    }

    /// Component `comp` of the first repetition, decoded and trimmed; `None`
    /// when empty or the HL7 null `""`.
    pub(crate) fn comp(&self, field: usize, comp: usize) -> Option<Cow<'a, str>> {
        let raw = self.raw(field);
        let s = &self.d.seps;
        if !raw.contains([s.repetition, s.subcomponent]) {
            // Components only (the common case): split them directly rather
            // than build hl7-parser's vectors for the whole field.
            return raw
                .split(s.component)
                .nth(comp.saturating_sub(1))
                .and_then(|c| nonempty(escape::decode(c, s)));
        }
        self.field(field)?.repeats().next()?.comp(comp)
    }

    /// The first component of the first repetition (the usual value).
    pub(crate) fn value(&self, field: usize) -> Option<Cow<'a, str>> {
        self.comp(field, 1)
    }

    /// Component `comp` of repetition `rep` (1-based), decoded but not
    /// trimmed; empty when absent. For raw comparisons.
    pub(crate) fn decoded_component(&self, field: usize, rep: usize, comp: usize) -> String {
        self.field(field)
            .and_then(|f| {
                f.f.repeats
                    .get(rep.saturating_sub(1))
                    .and_then(|r| r.component(comp))
                    .map(|c| escape::decode(c.raw_value(), &self.d.seps).into_owned())
            })
            .unwrap_or_default()
    }
}

/// One field, parsed into repetitions, components and subcomponents.
pub(crate) struct Fld<'a> {
    f: Field<'a>,
    seps: Separators,
}

impl<'a> Fld<'a> {
    /// The repetitions of the field.
    pub(crate) fn repeats(&self) -> impl Iterator<Item = Rep<'_, 'a>> {
        self.f.repeats.iter().map(|rep| Rep {
            rep,
            seps: &self.seps,
        })
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
