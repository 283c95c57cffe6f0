//! From raw bytes to a parsed message with decoded field access.
//!
//! hl7-parser reads the separators declared in MSH-1/MSH-2
//! (`parser::parse_msh`). Around it tocsin works around what hl7-parser does
//! not do:
//! - `Message::parse` stops silently at the first line it cannot parse (an
//!   empty line, a bare segment name, a line that is not a segment) and
//!   returns the segments before it; tocsin drops blank lines, reads a bare
//!   segment name as a segment with no fields, and rejects any other such
//!   line (`malformed_segment`) rather than lose the rest of the message;
//! - `Message::parse` (and `parse_field_with_separators`, for one field)
//!   builds vectors for every field, repetition, component and subcomponent,
//!   which dominated the cost of a message; tocsin splits segments and fields
//!   once and repetitions, components and subcomponents on demand, by the
//!   same rules (a test checks the splitting against hl7-parser's
//!   `parse_field_with_separators` on random fields);
//! - it reads `str` only; tocsin reads UTF-8, and any other bytes as latin-1
//!   (ISO-8859-1, common in UK feeds for `£` and accented names);
//! - it treats segment separators as `\r` (or, leniently, `\n`/`\r\n`, but
//!   not a mix); tocsin splits lines on any of them;
//! - it accepts any five ASCII characters as separators; tocsin requires
//!   five distinct punctuation characters (`bad_separators`).

use std::borrow::Cow;
use std::ops::Range;

use hl7_parser::message::Separators;

use crate::{Hl7Config, Hl7Error, escape};

const MLLP_START: u8 = 0x0B;
const MLLP_END: u8 = 0x1C;

/// Checks size and content and returns the message text (MLLP framing, a
/// byte-order mark and surrounding white space removed; latin-1 decoded when
/// the bytes are not UTF-8). Borrowed unless latin-1 decoding was needed.
pub(crate) fn prepare<'m>(msg: &'m [u8], cfg: &Hl7Config) -> Result<Cow<'m, str>, Hl7Error> {
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
    if let Some(i) = first_control_byte(body) {
        return Err(Hl7Error::Binary {
            byte: body[i],
            offset: start + i,
        });
    }
    let text: Cow<'m, str> = match std::str::from_utf8(body) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(body.iter().map(|&b| char::from(b)).collect()),
    };
    if !text.starts_with("MSH") {
        return Err(Hl7Error::NotHl7);
    }
    check_separators(&text)?;
    Ok(text)
}

/// The position of the first control byte other than tab, CR and LF.
fn first_control_byte(body: &[u8]) -> Option<usize> {
    let bad = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7F;
    // Test whole chunks without an early exit (which the compiler can
    // vectorise), and look for the position only in a chunk that has one.
    const CHUNK: usize = 32;
    body.chunks(CHUNK).enumerate().find_map(|(n, chunk)| {
        chunk
            .iter()
            .fold(false, |found, &b| found | bad(b))
            .then(|| n * CHUNK + chunk.iter().position(|&b| bad(b)).unwrap_or_default())
    })
}

/// The lines of a message: split on `\r`, `\n` or both.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    SplitAt {
        rest: Some(text),
        find: |b: &[u8]| memchr::memchr2(b'\r', b'\n', b),
    }
}

/// Whether the line starting at `at` follows a bare line feed: a `\n` not
/// preceded by `\r`. Where segments end with `\r`, such a line feed is
/// inside letter text, not a segment break (here and in the splitter).
pub(crate) fn follows_bare_lf(bytes: &[u8], at: usize) -> bool {
    at >= 1 && bytes.get(at - 1) == Some(&b'\n') && (at < 2 || bytes.get(at - 2) != Some(&b'\r'))
}

/// When `line` continues the segment before it rather than starting one:
/// it follows a bare line feed (not a carriage return, nor CR LF) and does
/// not begin with a segment name (an upper-case letter, two upper-case
/// letters or digits) and the field separator. Senders that end segments
/// with `\r` put line feeds inside letter text; read as a segment break,
/// the text after one would refuse the whole message, and the letter's
/// tracking with it. Returns the segment's text joined with the line, line
/// breaks included.
///
/// A line that is only a segment name is text where segments end with CR
/// (any CR in the message): after a line feed there, `TTO` or `ECG` is a line of the
/// letter. Where no segment ends with CR (an LF-ended message) every line
/// follows a line feed, and such a line is an empty segment (`EVN`, `PD1`,
/// `ZU1`: an engine stripped its trailing separators): taken for text, it
/// was glued onto the segment before, so MSH-12 read `2.4\nEVN` (refused as
/// an unsupported version) and PV1-45 read its time and `\nZU1` (the
/// discharge time fell back to EVN-6, wrong and silent). Only a name HL7
/// defines ([`SEGMENT_IDS`]) or a Z-segment's is taken so: a letter line
/// `CXR` or `ECG` was read as an empty segment, cutting the letter and the
/// fields after it (a draft's status: the draft was counted sent).
fn continuation<'a>(
    text: &'a str,
    last: &'a str,
    line: &'a str,
    sep: u8,
    any_cr: bool,
) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let start = (line.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let from = (last.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let after_bare_lf = follows_bare_lf(bytes, start);
    let l = line.as_bytes();
    let named = l.len() >= 3
        && l[0].is_ascii_uppercase()
        && l[1..3]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && match l.get(3) {
            Some(b) => *b == sep,
            None => !any_cr && (l[0] == b'Z' || SEGMENT_IDS.binary_search(&&l[..3]).is_ok()),
        };
    if !after_bare_lf || named {
        return None;
    }
    text.get(from..start + line.len())
}

/// The segment names HL7 v2 defines (v2.1 to v2.8, sorted): in a message
/// whose segments end with LF, a line of one of these alone is an empty
/// segment, any other three capitals a line of letter text.
const SEGMENT_IDS: &[&[u8]] = &[
    b"ABS", b"ACC", b"ADD", b"ADJ", b"AFF", b"AIG", b"AIL", b"AIP", b"AIS", b"AL1", b"APR", b"ARQ",
    b"ARV", b"AUT", b"BHS", b"BLC", b"BLG", b"BPO", b"BPX", b"BTS", b"BTX", b"BUI", b"CDM", b"CDO",
    b"CER", b"CM0", b"CM1", b"CM2", b"CNS", b"CON", b"CSP", b"CSR", b"CSS", b"CTD", b"CTI", b"CTR",
    b"DB1", b"DEV", b"DG1", b"DMI", b"DON", b"DPS", b"DRG", b"DSC", b"DSP", b"DST", b"ECD", b"ECR",
    b"EDU", b"EQP", b"EQU", b"ERR", b"EVN", b"FAC", b"FHS", b"FT1", b"FTS", b"GOL", b"GP1", b"GP2",
    b"GT1", b"IAM", b"IAR", b"IIM", b"ILT", b"IN1", b"IN2", b"IN3", b"INV", b"IPC", b"IPR", b"ISD",
    b"ITM", b"IVC", b"IVT", b"LAN", b"LCC", b"LCH", b"LDP", b"LOC", b"LRL", b"MCP", b"MFA", b"MFE",
    b"MFI", b"MRG", b"MSA", b"MSH", b"NCK", b"NDS", b"NK1", b"NPU", b"NSC", b"NST", b"NTE", b"OBR",
    b"OBX", b"ODS", b"ODT", b"OH1", b"OH2", b"OH3", b"OH4", b"OM1", b"OM2", b"OM3", b"OM4", b"OM5",
    b"OM6", b"OM7", b"ORC", b"ORG", b"OVR", b"PAC", b"PCE", b"PCR", b"PD1", b"PDA", b"PDC", b"PEO",
    b"PES", b"PID", b"PKG", b"PMT", b"PR1", b"PRA", b"PRB", b"PRC", b"PRD", b"PRT", b"PSG", b"PSH",
    b"PSL", b"PSS", b"PTH", b"PV1", b"PV2", b"PYE", b"QAK", b"QID", b"QPD", b"QRD", b"QRF", b"QRI",
    b"RCP", b"RDF", b"RDT", b"REL", b"RF1", b"RFI", b"RGS", b"RMI", b"ROL", b"RQ1", b"RQD", b"RXA",
    b"RXC", b"RXD", b"RXE", b"RXG", b"RXO", b"RXR", b"RXV", b"SAC", b"SCD", b"SCH", b"SCP", b"SDD",
    b"SFT", b"SGH", b"SGT", b"SHP", b"SID", b"SLT", b"SPM", b"STF", b"STZ", b"TCC", b"TCD", b"TQ1",
    b"TQ2", b"TXA", b"UAC", b"UB1", b"UB2", b"URD", b"URS", b"VAR", b"VND",
];

/// `str::split` at ASCII bytes, found with the `memchr` crate's vectorised
/// search: splitting every segment into fields and every field into
/// components is the largest cost of normalising, and `str::split` with a
/// `char` pattern searches a byte at a time. Only for ASCII separators
/// (`check_separators` refuses others), so each cut is a char boundary.
struct SplitAt<'a, F> {
    rest: Option<&'a str>,
    find: F,
}

impl<'a, F: Fn(&[u8]) -> Option<usize>> Iterator for SplitAt<'a, F> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match (self.find)(rest.as_bytes()) {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// Splits at one separator character; see [`SplitAt`].
fn split(text: &str, sep: char) -> impl Iterator<Item = &str> {
    // A non-ASCII separator never gets here; if one did, u8::MAX matches no
    // byte of UTF-8 text and the text stays whole.
    let byte = u8::try_from(sep)
        .ok()
        .filter(u8::is_ascii)
        .unwrap_or(u8::MAX);
    SplitAt {
        rest: Some(text),
        find: move |b: &[u8]| memchr::memchr(byte, b),
    }
}

/// MSH-1 and MSH-2 must declare five distinct, non-alphanumeric ASCII
/// characters (hl7-parser would otherwise mis-split or reject the message
/// without saying why).
fn check_separators(text: &str) -> Result<(), Hl7Error> {
    let first_line = lines(text).next().unwrap_or_default();
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
    Ok(())
}

/// A message split into segments and fields, each line checked to be a
/// segment.
///
/// All the fields of the message live in one vector (one allocation);
/// repetitions, components and subcomponents are split only for the fields
/// the normaliser reads.
pub(crate) struct Parsed<'a> {
    segments: Vec<SegData<'a>>,
    /// The fields of every segment as written, segment after segment: index
    /// 0 of a segment's range is its name (for MSH, index 1 is MSH-2, the
    /// encoding characters).
    fields: Vec<&'a str>,
    seps: Separators,
}

/// A segment's name, text and range in [`Parsed::fields`].
struct SegData<'a> {
    name: &'a str,
    line: &'a str,
    fields: Range<usize>,
}

impl<'a> Parsed<'a> {
    /// Splits text from [`prepare`] (MSH first, checked by
    /// [`check_separators`]). Blank lines are skipped; a line holding only a
    /// three-character name is a segment with no fields.
    pub(crate) fn parse(text: &'a str) -> Result<Self, Hl7Error> {
        let mut lines = lines(text).filter(|l| !l.trim().is_empty());
        let first = lines.next().unwrap_or_default();
        // MSH, the field separator and MSH-2 (ASCII: checked by prepare).
        let msh_start = first.get(..8).unwrap_or(first);
        let (seps, _) =
            hl7_parser::parser::parse_msh(msh_start).map_err(|_| Hl7Error::MalformedSegment {
                index: 1,
                name: "MSH".to_owned(),
                detail: "the MSH segment cannot be parsed",
            })?;
        let sep = seps.field;
        let sep_byte = u8::try_from(sep).unwrap_or(u8::MAX);
        let mut fields =
            Vec::with_capacity(memchr::memchr_iter(sep_byte, text.as_bytes()).count() + 16);
        let mut segments: Vec<SegData<'a>> = Vec::with_capacity(16);
        let push = |segments: &mut Vec<SegData<'a>>,
                    fields: &mut Vec<&'a str>,
                    name: &'a str,
                    line: &'a str,
                    bare: bool| {
            let from = fields.len();
            fields.extend(split(line, sep));
            if bare {
                fields.push("");
            }
            segments.push(SegData {
                name,
                line,
                fields: from..fields.len(),
            });
        };
        // The segment being read: split into fields once its continuation
        // lines are all known (re-split at each one, a letter of n lines
        // cost n times its length: seconds for a wrapped base64 PDF).
        let mut open: (&'a str, &'a str, bool) = ("MSH", first, false);
        let any_cr = memchr::memchr(b'\r', text.as_bytes()).is_some();
        for (i, line) in lines.enumerate() {
            if let Some(joined) = continuation(text, open.1, line, sep_byte, any_cr) {
                // A bare line feed inside a field (letter text), not a
                // segment break: the line belongs to the segment before.
                open = (open.0, joined, false);
                continue;
            }
            let name = line
                .get(..3)
                .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric()));
            let bare = line.len() <= 12 && line.chars().count() == 3;
            let rest_ok = if bare {
                line.len() == 3
            } else {
                // The separator is ASCII (`check_separators`), so one byte:
                // `str::starts_with(char)` compared it through a `memcmp`
                // call, 2 % of a replay's time.
                line.as_bytes().get(3) == Some(&sep_byte)
            };
            match name {
                Some(name) if rest_ok => {
                    let (n, l, b) = std::mem::replace(&mut open, (name, line, bare));
                    push(&mut segments, &mut fields, n, l, b);
                }
                _ => {
                    return Err(Hl7Error::MalformedSegment {
                        index: i + 2,
                        // Only what a segment name could be (no lower case
                        // letters): the line may be free text about the
                        // patient.
                        name: line
                            .chars()
                            .take(3)
                            .map(|c| {
                                if c.is_ascii_uppercase()
                                    || c.is_ascii_digit()
                                    || c.is_ascii_punctuation()
                                {
                                    c
                                } else {
                                    '?'
                                }
                            })
                            .collect(),
                        detail: "a segment starts with a three-character name and the field separator",
                    });
                }
            }
        }
        let (n, l, b) = open;
        push(&mut segments, &mut fields, n, l, b);
        Ok(Self {
            segments,
            fields,
            seps,
        })
    }

    fn seg<'p>(&'p self, d: &'p SegData<'a>) -> Seg<'p> {
        Seg {
            name: d.name,
            line: d.line,
            fields: &self.fields[d.fields.clone()],
            seps: &self.seps,
        }
    }

    /// The first segment of that name.
    pub(crate) fn segment(&self, name: &str) -> Option<Seg<'_>> {
        self.segments
            .iter()
            .find(|s| s.name == name)
            .map(|d| self.seg(d))
    }

    /// Every segment of that name, in order.
    pub(crate) fn segments<'p>(&'p self, name: &'p str) -> impl Iterator<Item = Seg<'p>> + 'p {
        self.segments
            .iter()
            .filter(move |s| s.name == name)
            .map(|d| self.seg(d))
    }
}

/// One segment with its message's separators, for decoded access.
#[derive(Clone, Copy)]
pub(crate) struct Seg<'a> {
    name: &'a str,
    line: &'a str,
    fields: &'a [&'a str],
    seps: &'a Separators,
}

impl<'a> Seg<'a> {
    /// The segment's name, e.g. `PV1`.
    pub(crate) fn name(&self) -> &'a str {
        self.name
    }

    /// The field as written (repetitions, components and escapes included);
    /// empty when the segment is shorter.
    pub(crate) fn raw(&self, field: usize) -> &'a str {
        match field {
            0 => "",
            // MSH-1 is the field separator itself; MSH-2 is index 1.
            1 if self.name == "MSH" => self.line.get(3..4).unwrap_or_default(),
            n if self.name == "MSH" => self.fields.get(n - 1).copied().unwrap_or_default(),
            n => self.fields.get(n).copied().unwrap_or_default(),
        }
    }

    /// Number of fields present (MSH counts MSH-1 and MSH-2).
    pub(crate) fn field_count(&self) -> usize {
        let parts = self.fields.len();
        if self.name == "MSH" { parts } else { parts - 1 }
    }

    /// The repetitions of a field (an empty field has one, empty).
    pub(crate) fn repeats(&self, field: usize) -> impl Iterator<Item = Rep<'a>> + use<'a> {
        let seps = self.seps;
        split(self.raw(field), seps.repetition).map(move |raw| Rep { raw, seps })
    }

    /// Component `comp` of the first repetition, decoded and trimmed; `None`
    /// when empty or the HL7 null `""`.
    pub(crate) fn comp(&self, field: usize, comp: usize) -> Option<Cow<'a, str>> {
        self.repeats(field).next()?.comp(comp)
    }

    /// The first component of the first repetition (the usual value).
    pub(crate) fn value(&self, field: usize) -> Option<Cow<'a, str>> {
        self.comp(field, 1)
    }

    /// Component `comp` of repetition `rep` (1-based), decoded but not
    /// trimmed; empty when absent. For raw comparisons.
    pub(crate) fn decoded_component(&self, field: usize, rep: usize, comp: usize) -> String {
        self.repeats(field)
            .nth(rep.wrapping_sub(1))
            .and_then(|r| r.component(comp))
            .map(|c| escape::decode(c, self.seps).into_owned())
            .unwrap_or_default()
    }
}

/// One repetition of a field, as written.
#[derive(Clone, Copy)]
pub(crate) struct Rep<'a> {
    raw: &'a str,
    seps: &'a Separators,
}

impl<'a> Rep<'a> {
    /// Component `comp` (1-based) as written, subcomponents included.
    fn component(&self, comp: usize) -> Option<&'a str> {
        split(self.raw, self.seps.component).nth(comp.wrapping_sub(1))
    }

    /// Component `comp`, decoded and trimmed; `None` when empty.
    pub(crate) fn comp(&self, comp: usize) -> Option<Cow<'a, str>> {
        nonempty(escape::decode(self.component(comp)?, self.seps))
    }

    /// Subcomponent `sub` of component `comp`, decoded and trimmed.
    pub(crate) fn sub(&self, comp: usize, sub: usize) -> Option<Cow<'a, str>> {
        let raw = split(self.component(comp)?, self.seps.subcomponent).nth(sub.wrapping_sub(1))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// tocsin's splitting of a field into repetitions, components and
        /// subcomponents agrees with hl7-parser's `parse_field_with_separators`.
        #[test]
        fn splitting_agrees_with_hl7_parser(raw in "[ab^~&\\\\é ]{0,24}") {
            let text = format!("MSH|^~\\&|\rZZZ|{raw}");
            let parsed = Parsed::parse(&text).unwrap();
            let seg = parsed.segment("ZZZ").unwrap();
            let theirs = hl7_parser::parser::parse_field_with_separators(&raw, *seg.seps).unwrap();
            let mine: Vec<Rep<'_>> = seg.repeats(1).collect();
            prop_assert_eq!(mine.len(), theirs.repeats.len());
            for (m, t) in mine.iter().zip(&theirs.repeats) {
                prop_assert_eq!(m.raw, t.raw_value());
                for c in 1..=t.components().count() + 1 {
                    let tc = t.component(c);
                    prop_assert_eq!(m.component(c), tc.map(|x| x.raw_value()));
                    let Some(tc) = tc else { continue };
                    for s in 1..=tc.subcomponents().count() + 1 {
                        let ts = tc.subcomponent(s).map(|x| x.raw_value());
                        let ms = m.component(c).and_then(|x| x.split('&').nth(s - 1));
                        prop_assert_eq!(ms, ts);
                    }
                }
            }
        }
    }

    /// Where no segment ends with CR, a line that is only a segment name is
    /// an empty segment, not text glued onto the segment before (MSH-12
    /// read `2.4\nEVN`, PV1-45 its time and `\nZU1`, a bare PV1 vanished);
    /// other lines after a line feed are still letter text.
    #[test]
    fn bare_segment_names_in_lf_ended_messages_are_segments() {
        let text = "MSH|^~\\&|A|||||||||2.4\nEVN\nPID|1\nPD1\nPV1|1|I|||||||||||||||||||||||||||||||||||||||||||20240115140000\nZU1";
        let p = Parsed::parse(text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "EVN", "PID", "PD1", "PV1", "ZU1"]);
        assert_eq!(p.segment("MSH").unwrap().raw(12), "2.4");
        assert_eq!(p.segment("PV1").unwrap().raw(45), "20240115140000");
        assert_eq!(p.segment("EVN").unwrap().raw(1), "");
        let p = Parsed::parse("MSH|^~\\&|A\nPID|1\nPV1").unwrap();
        assert!(p.segment("PV1").is_some());
        assert_eq!(p.segment("PID").unwrap().raw(1), "1");
        // Letter text after a line feed still continues its segment, in
        // an LF-ended message as in a CR-ended one.
        let text = "MSH|^~\\&|A\nOBX|1|TX|DS||Dear Dr Jones,\nPlan: review\nYes\nTTO:\nFollow up||||||F\nPV1|1|I";
        let p = Parsed::parse(text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "OBX", "PV1"]);
        let obx = p.segment("OBX").unwrap();
        assert_eq!(
            obx.raw(5),
            "Dear Dr Jones,\nPlan: review\nYes\nTTO:\nFollow up"
        );
        assert_eq!(obx.raw(11), "F");
    }

    #[test]
    fn bare_segments_blank_lines_and_mixed_line_ends() {
        let text = "MSH|^~\\&|A\n\nEVN|x\r\nNTE\r  \rPV1|1|I";
        let p = Parsed::parse(text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "EVN", "NTE", "PV1"]);
        assert_eq!(p.segment("NTE").unwrap().raw(1), "");
        assert_eq!(p.segment("PV1").unwrap().value(2).as_deref(), Some("I"));
        assert_eq!(p.segment("MSH").unwrap().raw(3), "A");
        // A line feed inside a field of a message whose segments end with
        // `\r` is text, not a segment break (blank lines in it too); a line
        // that names a segment after one is still a segment.
        let text = "MSH|^~\\&|A\rOBX|1|TX|DS||Dear Dr Jones,\n\nPlan: review\nYes\nTTO\nFollow up||||||F\rNTE|1\nPV1|1|I";
        let p = Parsed::parse(text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "OBX", "NTE", "PV1"]);
        let obx = p.segment("OBX").unwrap();
        assert_eq!(
            obx.raw(5),
            "Dear Dr Jones,\n\nPlan: review\nYes\nTTO\nFollow up"
        );
        assert_eq!(obx.raw(11), "F");
        // After a carriage return a line must still be a segment, and the
        // error quotes nothing of it that could be text about a patient.
        match Parsed::parse("MSH|^~\\&|A\rEVN|x\rPlan: review") {
            Err(Hl7Error::MalformedSegment { index, name, .. }) => {
                assert_eq!((index, name.as_str()), (3, "P??"));
            }
            other => panic!("{:?}", other.err()),
        }
        let bad = Parsed::parse("MSH|^~\\&|A\rEVN|x\rPV\u{e9}");
        assert!(matches!(
            bad,
            Err(Hl7Error::MalformedSegment { index: 3, .. })
        ));
    }

    /// A letter of many lines (a wrapped base64 PDF, tens of thousands of
    /// line feeds) is one field, its segment split once: it was split again
    /// at every line, seconds for one message. The fields after it and the
    /// segments before and after are intact.
    #[test]
    fn a_letter_of_many_lines_is_one_field() {
        let body: Vec<String> = (0..20_000).map(|i| format!("line {i} QUJDRA==")).collect();
        let text = format!(
            "MSH|^~\\&|A\rPID|1\rOBX|1|ED|PDF||{}||||||P\rNTE|1",
            body.join("\n")
        );
        let p = Parsed::parse(&text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "PID", "OBX", "NTE"]);
        let obx = p.segment("OBX").unwrap();
        assert_eq!(obx.raw(5), body.join("\n"));
        assert_eq!(obx.raw(11), "P");
    }

    #[test]
    fn segment_ids_are_sorted_for_the_binary_search() {
        assert!(SEGMENT_IDS.windows(2).all(|w| w[0] < w[1]));
    }

    /// In a message of LF-ended segments, a letter line of three capitals
    /// that names no segment (`CXR`) is text of the letter, and the fields
    /// after it (a draft's status) are read; an HL7 or Z-segment name alone
    /// is still an empty segment.
    #[test]
    fn a_letter_line_of_three_capitals_is_text_unless_it_names_a_segment() {
        let text = "MSH|^~\\&|A\nOBX|1|TX|CL||Findings:\nCXR\nClear.||||||P\nPD1\nZU1\nPV1|1|O";
        let p = Parsed::parse(text).unwrap();
        let names: Vec<&str> = p.segments.iter().map(|s| s.name).collect();
        assert_eq!(names, ["MSH", "OBX", "PD1", "ZU1", "PV1"]);
        let obx = p.segment("OBX").unwrap();
        assert_eq!(obx.raw(5), "Findings:\nCXR\nClear.");
        assert_eq!(obx.raw(11), "P");
    }
}
