//! Splitting a file or message body into single HL7 messages.

use crate::message::follows_bare_lf;

/// One message's bytes within a larger input, with where it starts.
///
/// It exists so that a rejected message can be reported by its position in
/// the file or body it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// Byte offset of the message within the input given to [`split_messages`].
    pub offset: usize,
    /// The message: from its `MSH` to the end of its last segment, MLLP
    /// framing and batch envelope segments removed.
    pub bytes: &'a [u8],
    /// It is the last message of an MLLP frame that has no end block
    /// (0x1C): the input ended first (a file rotated in the middle of a
    /// frame), so the message may be cut short and is not to be trusted
    /// ([`crate::Hl7Error::UnterminatedFrame`]).
    pub unterminated_frame: bool,
    /// It began inside the last segment of the message before it (`...|X`
    /// then `MSH|^~\&|` on the same line): a writer left out a segment
    /// terminator. Split there, both are read; the normaliser's caller
    /// warns of it. Not split, the second message's segments were read as
    /// the first's and the second discharge was lost without a word.
    pub joined: bool,
}

const MLLP_START: u8 = 0x0B;
const BOM: &[u8] = b"\xEF\xBB\xBF";
const MLLP_END: u8 = 0x1C;

/// Splits a file or message body into messages.
///
/// Accepts MLLP frames (`0x0B ... 0x1C 0x0D`), FHS/BHS/BTS/FTS batch
/// envelopes (dropped), several MSH-started messages in a row, and `\r`,
/// `\n` or `\r\n` segment separators, and a byte-order mark or white space
/// before a message's `MSH` (left out of the message). Nothing is dropped
/// silently: text that belongs to no message (junk before the first MSH, or
/// bytes outside MLLP frames) comes back as a message of its own, which the
/// normaliser then rejects with a reason.
pub fn split_messages(input: &[u8]) -> Vec<RawMessage<'_>> {
    let mut out = Vec::new();
    // A UTF-8 byte-order mark opening the input (as format detection
    // allows) is not a message: left in, it hid the batch header after it
    // and came back as a junk unit of its own.
    let mut begin = if input.starts_with(BOM) { BOM.len() } else { 0 };
    // White space opening the input, which format detection skips too: left
    // in, `  MSH|...` was no message start and came back as junk.
    while input.get(begin).is_some_and(u8::is_ascii_whitespace) {
        begin += 1;
    }
    // NUL padding (tape and backup tools fill a file to their block size)
    // and a DOS end-of-file mark (0x1A) closing the input belong to no
    // message: left in, they made the last message binary, refused.
    let mut stop = input.len();
    while stop > begin && matches!(input[stop - 1], 0x00 | 0x1A) {
        stop -= 1;
    }
    let input = &input[..stop];
    // Framed when a start block opens the input, or start and end blocks
    // both occur (a leftover end block or junk before the first frame). A
    // lone 0x0B inside unframed text is a stray byte: taken for a frame
    // start, it cut its message short and the shortened message was
    // accepted. Left in, the normaliser refuses that message as binary.
    let framed = input.get(begin) == Some(&MLLP_START)
        || (memchr::memchr(MLLP_START, input).is_some()
            && memchr::memchr(MLLP_END, input).is_some());
    if framed {
        let mut pos = begin;
        while pos < input.len() {
            match memchr::memchr(MLLP_START, &input[pos..]) {
                Some(rel) => {
                    split_unframed(input, pos, pos + rel, &mut out);
                    let start = pos + rel + 1;
                    // The frame ends at its end block, or where the next
                    // frame starts without one (the sender began again
                    // mid-frame): read on from there, not as one frame
                    // with the rest, every message in it lost together.
                    let end_block = memchr::memchr(MLLP_END, &input[start..]);
                    let next_start = memchr::memchr(MLLP_START, &input[start..]);
                    let cut = match (end_block, next_start) {
                        (Some(e), Some(n)) if n < e => Some(n),
                        (None, n) => n,
                        _ => None,
                    };
                    let end = cut.or(end_block).map_or(input.len(), |e| start + e);
                    let before = out.len();
                    split_unframed(input, start, end, &mut out);
                    if (end_block.is_none() || cut.is_some())
                        && out.len() > before
                        && let Some(last) = out.last_mut()
                    {
                        last.unterminated_frame = true;
                    }
                    pos = if cut.is_some() {
                        end
                    } else {
                        (end + 1).min(input.len())
                    };
                    if cut.is_none() && input.get(pos) == Some(&b'\r') {
                        pos += 1;
                    }
                }
                None => {
                    split_unframed(input, pos, input.len(), &mut out);
                    break;
                }
            }
        }
    } else {
        split_unframed(input, begin, input.len(), &mut out);
    }
    out
}

/// Splits `input[start..end]` (no MLLP framing inside) at lines starting
/// with `MSH` and its field separator, dropping blank lines and envelope
/// segments.
fn split_unframed<'a>(input: &'a [u8], start: usize, end: usize, out: &mut Vec<RawMessage<'a>>) {
    // The message being gathered: its start and the end of its last line.
    let mut current: Option<(usize, usize)> = None;
    // Message headers inside a line, where a terminator was left out.
    let joins = joined_headers(input, start, end);
    let mut next_join = joins.iter().copied().peekable();
    let flush = |cur: &mut Option<(usize, usize)>, out: &mut Vec<RawMessage<'a>>| {
        if let Some((s, e)) = cur.take() {
            out.push(RawMessage {
                offset: s,
                bytes: &input[s..e],
                unterminated_frame: false,
                joined: joins.binary_search(&s).is_ok(),
            });
        }
    };
    // The field separator the last MSH, FHS or BHS line declared, and the
    // last FHS or BHS's: a BTS or FTS line uses one of them (an envelope
    // may declare another than its messages).
    let mut sep = b'|';
    let mut envelope_sep = None;
    // Whether segments end with CR here: only then is a line after a bare
    // line feed inside a message letter text. In a file of LF-ended
    // segments every line follows one.
    let cr_ended = memchr::memchr(b'\r', &input[start..end]).is_some();
    let mut pos = start;
    while pos < end {
        // memchr2, not a byte-by-byte search: a packed replay file is
        // megabytes of segments, and this loop was 3 % of a replay's CPU.
        let mut line_end = memchr::memchr2(b'\r', b'\n', &input[pos..end]).map_or(end, |e| pos + e);
        while next_join.next_if(|&j| j <= pos).is_some() {}
        if let Some(&j) = next_join.peek()
            && j < line_end
        {
            line_end = j;
        }
        let line = &input[pos..line_end];
        let mut next = line_end;
        while next < end && (input[next] == b'\r' || input[next] == b'\n') {
            next += 1;
        }
        let after_bare_lf = cr_ended && pos > start && follows_bare_lf(input, pos);
        // A header may open its line after a byte-order mark or white space
        // (`cat` of files each written with a mark, an indented message).
        let lead = header_lead(line, after_bare_lf);
        let head = &line[lead..];
        // Inside a message's letter text only a whole header opening starts
        // one (`MSH|^~\&|`): `BHS: target BP 140/90.` is a line of the letter,
        // and cut there, the message lost the fields after it (a draft's
        // status, so the draft was counted sent).
        // (A byte-order mark before it is never letter text.)
        let in_text = after_bare_lf && current.is_some() && lead == 0;
        let header = |name: &[u8; 3]| {
            if in_text {
                full_header(head, name)
            } else {
                header(head, name)
            }
        };
        if let Some(declared) = header(b"MSH") {
            sep = declared;
            flush(&mut current, out);
            current = Some((pos + lead, line_end));
        } else if line.iter().all(u8::is_ascii_whitespace) {
            // blank line: belongs to nothing
        } else if let Some(declared) = header(b"FHS").or_else(|| header(b"BHS")) {
            sep = declared;
            envelope_sep = Some(declared);
            flush(&mut current, out);
        } else if [b"BTS", b"FTS"].iter().any(|name| {
            line.starts_with(*name)
                && match line.get(3) {
                    Some(b) => *b == sep || Some(*b) == envelope_sep,
                    // A bare `BTS` ends a batch, unless it follows a line
                    // feed inside a message: then it is a line of text.
                    None => !(after_bare_lf && current.is_some()),
                }
        }) {
            flush(&mut current, out);
        } else {
            match current.as_mut() {
                Some((_, e)) => *e = line_end,
                None => current = Some((pos, line_end)),
            }
        }
        pos = next;
    }
    flush(&mut current, out);
}

/// Where in `input[start..end]` a message header (`MSH|^~\&|`, whole)
/// opens in the middle of a line, after text that is not white space: two
/// messages run together because a writer left out the segment terminator
/// between them. Letter text cannot hold one: its field separators would
/// be escaped (`\F\`). One pass over the input for `MSH`, so that the
/// split loop pays nothing per line.
fn joined_headers(input: &[u8], start: usize, end: usize) -> Vec<usize> {
    memchr::memmem::find_iter(&input[start..end], b"MSH")
        .map(|p| start + p)
        .filter(|&p| {
            let line_start =
                memchr::memrchr2(b'\r', b'\n', &input[start..p]).map_or(start, |e| start + e + 1);
            // Not a header the split loop finds at its line's start after
            // white space and a byte-order mark (`header_lead`).
            let before = &input[line_start..p];
            header_lead(before, false) < before.len()
                && full_header(&input[p..end], b"MSH").is_some()
        })
        .collect()
}

/// How many bytes before a header (MSH, FHS, BHS) on `line` are no part of
/// it: ASCII white space, a UTF-8 byte-order mark, white space after it.
///
/// It exists because `cat` of files each written with a byte-order mark
/// leaves one before every file's first MSH, and some engines indent
/// messages: the input's start is stripped of both, but mid-input the line
/// was no message start, so the message after it was glued onto the one
/// before and both were refused as one ("segment 5 (?MS)"). Inside letter
/// text (`text_line`: after a bare line feed where segments end with CR)
/// an indented `MSH` is a line of the letter, so white space alone is not
/// skipped there; a byte-order mark is never letter text and still is.
fn header_lead(line: &[u8], text_line: bool) -> usize {
    let space = |at: usize| {
        line.get(at..)
            .map_or(0, |rest| rest.len() - rest.trim_ascii_start().len())
    };
    let before = if text_line { 0 } else { space(0) };
    if line[before..].starts_with(BOM) {
        let after = before + BOM.len();
        after + space(after)
    } else {
        before
    }
}

/// The field separator `line` declares if it is a segment `name` that
/// declares one (MSH, FHS, BHS): the name followed by an ASCII punctuation
/// character. A line of letter text that merely begins with the same three
/// letters (`BTS guidelines followed.`, `MSHA`) is text, not a segment:
/// taken for an envelope, it cut the message before it and was lost.
fn header(line: &[u8], name: &[u8; 3]) -> Option<u8> {
    line.starts_with(name)
        .then(|| line.get(3).copied())
        .flatten()
        .filter(u8::is_ascii_punctuation)
}

/// As [`header`], for a line that may be letter text: the name, the
/// separator, one to five encoding characters (punctuation) and the
/// separator again, as every real header opens (`MSH|^~\&|`).
fn full_header(line: &[u8], name: &[u8; 3]) -> Option<u8> {
    let sep = header(line, name)?;
    let rest = line.get(4..)?;
    let n = memchr::memchr(sep, rest)?;
    ((1..=5).contains(&n) && rest[..n].iter().all(u8::is_ascii_punctuation)).then_some(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &[u8]) -> Vec<(usize, String)> {
        split_messages(input)
            .into_iter()
            .map(|m| (m.offset, String::from_utf8_lossy(m.bytes).into_owned()))
            .collect()
    }

    #[test]
    fn several_messages_any_line_ending() {
        // (The last follows a bare line feed in input that has CRs: only a
        // whole header opening, as every real one has, starts a message
        // there; see `a_letter_line_opening_like_a_header_with_a_separator_is_text`.)
        let input = b"MSH|a\r\nPID|1\r\nMSH|b\nPID|2\n\nMSH|^~\\&|c\rPID|3\r";
        assert_eq!(
            texts(input),
            vec![
                (0, "MSH|a\r\nPID|1".to_owned()),
                (14, "MSH|b\nPID|2".to_owned()),
                (27, "MSH|^~\\&|c\rPID|3".to_owned()),
            ]
        );
    }

    /// Two messages run together, the segment terminator between them
    /// left out: split where the second's header opens, both kept whole,
    /// the second marked. A header opening indented, or `MSH` in text
    /// without a whole header after it, is no join.
    #[test]
    fn a_message_header_inside_a_line_starts_a_message() {
        let input = b"MSH|^~\\&|a\rPV1|1|I|V1\rZUK|XMSH|^~\\&|b\rPV1|1|I|V2\r";
        let got = split_messages(input);
        let parts: Vec<_> = got
            .iter()
            .map(|m| (String::from_utf8_lossy(m.bytes).into_owned(), m.joined))
            .collect();
        assert_eq!(
            parts,
            [
                ("MSH|^~\\&|a\rPV1|1|I|V1\rZUK|X".to_owned(), false),
                ("MSH|^~\\&|b\rPV1|1|I|V2".to_owned(), true),
            ]
        );
        for text in [
            &b"MSH|^~\\&|a\rOBX|1|TX|||Seen in MSH clinic\r"[..],
            b"MSH|^~\\&|a\rOBX|1|TX|||MSH|x\r",
            b"MSH|^~\\&|a\r  MSH|^~\\&|b\r",
        ] {
            assert!(
                split_messages(text).iter().all(|m| !m.joined),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(split_messages(b"MSH|^~\\&|a\rOBX|1|TX|||MSH|x\r").len(), 1);
    }

    #[test]
    fn batch_envelope_is_dropped() {
        let input = b"FHS|^~\\&\rBHS|^~\\&\rMSH|a\rPID|1\rMSH|b\rBTS|2\rFTS|1\r";
        assert_eq!(
            texts(input),
            vec![(18, "MSH|a\rPID|1".to_owned()), (30, "MSH|b".to_owned())]
        );
    }

    #[test]
    fn a_byte_order_mark_before_the_batch_or_the_frame_is_no_unit() {
        let input = b"\xEF\xBB\xBFFHS|^~\\&\rBHS|^~\\&\rMSH|a\rPID|1\rBTS|1\rFTS|1\r";
        assert_eq!(texts(input), vec![(21, "MSH|a\rPID|1".to_owned())]);
        let framed = b"\xEF\xBB\xBF\x0bMSH|a\r\x1c\r";
        assert_eq!(texts(framed), vec![(4, "MSH|a".to_owned())]);
        assert_eq!(texts(b" \r\n\tMSH|a\r"), vec![(4, "MSH|a".to_owned())]);
    }

    #[test]
    fn a_byte_order_mark_or_indentation_before_a_later_msh_starts_a_message() {
        // `cat a.hl7 b.hl7` of files each written with a byte-order mark.
        let cat = b"\xEF\xBB\xBFMSH|a\rPID|1\r\xEF\xBB\xBFMSH|b\rPID|2\r";
        assert_eq!(
            texts(cat),
            vec![
                (3, "MSH|a\rPID|1".to_owned()),
                (18, "MSH|b\rPID|2".to_owned())
            ]
        );
        // After a file without one, after CR LF, and an indented message.
        assert_eq!(
            texts(b"MSH|a\r\n\xEF\xBB\xBFMSH|b\r  \tMSH|c\r\xEF\xBB\xBF MSH|d"),
            vec![
                (0, "MSH|a".to_owned()),
                (10, "MSH|b".to_owned()),
                (19, "MSH|c".to_owned()),
                (29, "MSH|d".to_owned()),
            ]
        );
        // A batch file's header after a mark, and a frame's payload.
        assert_eq!(
            texts(b"MSH|a\r\xEF\xBB\xBFFHS|^~\\&\rBHS|^~\\&\rMSH|b\rBTS|1\rFTS|1\r"),
            vec![(0, "MSH|a".to_owned()), (27, "MSH|b".to_owned())]
        );
        assert_eq!(
            texts(b"\x0b\xEF\xBB\xBFMSH|a\r\x1c\r"),
            vec![(4, "MSH|a".to_owned())]
        );
        // In letter text (after a bare line feed where segments end with
        // CR) an indented MSH line is the letter's, a mark is not.
        assert_eq!(
            texts(b"MSH|a\rOBX|1|TX|||Seen.\n  MSH| see above\rPV1|1\n\xEF\xBB\xBFMSH|b\r"),
            vec![
                (
                    0,
                    "MSH|a\rOBX|1|TX|||Seen.\n  MSH| see above\rPV1|1".to_owned()
                ),
                (49, "MSH|b".to_owned()),
            ]
        );
        // White space before anything else is no message start.
        assert_eq!(texts(b"MSH|a\r  hello\r")[0].1, "MSH|a\r  hello");
    }

    #[test]
    fn nul_padding_and_an_end_of_file_mark_close_no_message() {
        for tail in [&b"\x00\x00\x00"[..], b"\x1a", b"\r\x1a\x00\x00"] {
            let input = [&b"MSH|a\rPID|1\r"[..], tail].concat();
            assert_eq!(
                texts(&input),
                vec![(0, "MSH|a\rPID|1".to_owned())],
                "{tail:?}"
            );
        }
        // Inside a message they stay, for the normaliser to refuse.
        assert_eq!(texts(b"MSH|a\x00\rPID|1\r").len(), 1);
        assert!(texts(b"MSH|a\x00\rPID|1\r")[0].1.contains('\0'));
    }

    #[test]
    fn only_a_frame_the_input_ends_inside_is_unterminated() {
        let input = b"\x0bMSH|a\r\x1c\r\x0bMSH|b\rPID|1\r";
        let flags: Vec<bool> = split_messages(input)
            .iter()
            .map(|m| m.unterminated_frame)
            .collect();
        assert_eq!(flags, [false, true]);
        // Unframed input has no frames to leave unterminated.
        assert!(!split_messages(b"MSH|a\rPID|1")[0].unterminated_frame);
    }

    /// A start block inside a frame begins the next frame: the frame it
    /// cuts is unterminated (refused: it may be cut short), and the frames
    /// after it are read. They were one frame, lost together with one
    /// misleading reason.
    #[test]
    fn a_start_block_inside_a_frame_begins_the_next() {
        let input = b"\x0bMSH|a\r\x1c\r\x0bMSH|b\rPID|1\r\x0bMSH|c\r\x1c\r";
        let got: Vec<_> = split_messages(input)
            .iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(m.bytes).into_owned(),
                    m.unterminated_frame,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("MSH|a".to_owned(), false),
                ("MSH|b\rPID|1".to_owned(), true),
                ("MSH|c".to_owned(), false),
            ]
        );
    }

    #[test]
    fn mllp_frames_and_junk_between_them() {
        let input = b"\x0bMSH|a\rPID|1\r\x1c\r\x0bMSH|b\r\x1c\rjunk\x0bMSH|c";
        assert_eq!(
            texts(input),
            vec![
                (1, "MSH|a\rPID|1".to_owned()),
                (16, "MSH|b".to_owned()),
                (24, "junk".to_owned()),
                (29, "MSH|c".to_owned()),
            ]
        );
    }

    #[test]
    fn letter_text_that_begins_like_a_header_stays_in_its_message() {
        // Segments end with CR; the letter's lines with LF. Lines of text
        // beginning BTS, FTS, FHS, BHS or MSH are not segments.
        let input = b"MSH|^~\\&|a\rOBX|1|TX|DS||Plan:\nBTS guidelines followed.\nFTS\nMSHA review\nBHS team||||||F\rPV1|1\rMSH|^~\\&|b\rBTS|1\r";
        let got = texts(input);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].1,
            "MSH|^~\\&|a\rOBX|1|TX|DS||Plan:\nBTS guidelines followed.\nFTS\nMSHA review\nBHS team||||||F\rPV1|1"
        );
        assert_eq!(got[1].1, "MSH|^~\\&|b");
        // A bare BTS line between messages still ends the batch, and an
        // envelope uses the separator its header declared.
        let batch = b"BHS#^~\\&\rMSH#^~\\&#a\rBTS\rMSH#^~\\&#b\rBTS#1\rFTS#1";
        assert_eq!(
            texts(batch),
            vec![
                (9, "MSH#^~\\&#a".to_owned()),
                (24, "MSH#^~\\&#b".to_owned())
            ]
        );
        // In a file of LF-ended segments a bare BTS still ends the batch.
        assert_eq!(
            texts(b"BHS|^~\\&\nMSH|^~\\&|a\nPID|1\nBTS\nFTS\n"),
            vec![(9, "MSH|^~\\&|a\nPID|1".to_owned())]
        );
        // With `|` declared, `BTS#1` would be text of the message before.
        assert_eq!(texts(b"MSH|a\rBTS#1")[0].1, "MSH|a\rBTS#1");
        // ...unless the envelope declared `#` for its own segments.
        assert_eq!(
            texts(b"FHS#^~\\&\rBHS#^~\\&\rMSH|^~\\&|a\rPID|1\rBTS#1\rFTS#1\r"),
            vec![(18, "MSH|^~\\&|a\rPID|1".to_owned())]
        );
    }

    /// A line of letter text after a line feed that opens like a header
    /// with a separator (`BHS: target`, `MSH: ...`) stays in its message;
    /// a whole header there (messages one a line, segments CR-ended) still
    /// starts the next.
    #[test]
    fn a_letter_line_opening_like_a_header_with_a_separator_is_text() {
        for line in [
            "BHS: target BP 140/90.",
            "MSH: see plan",
            "FHS- none",
            "MSH|",
        ] {
            let input =
                format!("MSH|^~\\&|a\rOBX|1|FT|CL||Dear Dr Jones,\n{line}\nRegards||||||P\rPV1|1");
            let got = texts(input.as_bytes());
            assert_eq!(got.len(), 1, "{line}: {got:?}");
            assert!(got[0].1.ends_with("Regards||||||P\rPV1|1"), "{got:?}");
        }
        let input = b"MSH|^~\\&|a\rPID|1\nMSH|^~\\&|b\rPID|2\n";
        assert_eq!(
            texts(input),
            vec![
                (0, "MSH|^~\\&|a\rPID|1".to_owned()),
                (17, "MSH|^~\\&|b\rPID|2".to_owned())
            ]
        );
    }

    #[test]
    fn text_before_first_msh_is_kept_as_its_own_unit() {
        assert_eq!(
            texts(b"hello\rMSH|a"),
            vec![(0, "hello".to_owned()), (6, "MSH|a".to_owned())]
        );
        assert!(split_messages(b"").is_empty());
        assert!(split_messages(b"\r\n \n").is_empty());
    }
}
