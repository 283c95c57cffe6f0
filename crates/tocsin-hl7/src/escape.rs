//! Decoding HL7 escape sequences in field values.
//!
//! hl7-parser has `Separators::decode`, but it indexes the value by character
//! count as if it were byte offsets (wrong, and able to panic, on non-ASCII
//! text such as a latin-1 `£` or an accented name) and passes `\Xhh\` hex
//! data through undecoded, so tocsin decodes values itself.

use std::borrow::Cow;

use hl7_parser::message::Separators;

/// Decodes `\F\ \S\ \T\ \R\ \E\` (the separators declared in MSH-1/MSH-2),
/// `\Xhh...\` hex data (as UTF-8 when valid, else one latin-1 character per
/// byte), `\.br\` and `\.sp\` (line break); formatting and character-set
/// escapes (`\H\ \N\ \.in..\ \Cxxyy\ \Mxxyyzz\ \Zxx\`) are dropped. An
/// unterminated escape is kept as written.
pub fn decode<'a>(value: &'a str, seps: &Separators) -> Cow<'a, str> {
    let esc = seps.escape;
    if !value.contains(esc) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            // Unterminated: keep the remainder literally.
            out.push_str(&rest[start..]);
            return Cow::Owned(out);
        };
        let body = &after[..end];
        match body {
            "F" => out.push(seps.field),
            "S" => out.push(seps.component),
            "T" => out.push(seps.subcomponent),
            "R" => out.push(seps.repetition),
            "E" => out.push(esc),
            ".br" | ".sp" => out.push('\n'),
            _ if body.starts_with('X') => push_hex(&body[1..], esc, &mut out),
            _ if body.starts_with(['H', 'N', 'C', 'M', 'Z', '.']) => {}
            // Not an escape we know: keep it as written.
            _ => {
                out.push(esc);
                out.push_str(body);
                out.push(esc);
            }
        }
        rest = &after[end + esc.len_utf8()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn push_hex(hex: &str, esc: char, out: &mut String) {
    let bytes: Option<Vec<u8>> = hex
        .len()
        .is_multiple_of(2)
        .then(|| {
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect()
        })
        .flatten();
    match bytes {
        Some(b) => match std::str::from_utf8(&b) {
            Ok(s) => out.push_str(s),
            Err(_) => out.extend(b.iter().map(|&c| char::from(c))),
        },
        // Malformed hex: keep it as written rather than guess.
        None => {
            out.push(esc);
            out.push('X');
            out.push_str(hex);
            out.push(esc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_escapes() {
        let s = Separators::default();
        assert_eq!(decode(r"a\F\b\S\c\T\d\R\e\E\f", &s), "a|b^c&d~e\\f");
        assert_eq!(decode("plain", &s), "plain");
        assert!(matches!(decode("plain", &s), Cow::Borrowed(_)));
    }

    #[test]
    fn hex_formatting_and_oddities() {
        let s = Separators::default();
        assert_eq!(decode(r"\X41\\XC2A3\\XA3\", &s), "A££");
        assert_eq!(decode(r"line\.br\two\H\bold\N\", &s), "line\ntwobold");
        assert_eq!(decode(r"odd\Q\x", &s), r"odd\Q\x");
        assert_eq!(decode(r"bad\X4\hex", &s), r"bad\X4\hex");
        assert_eq!(decode(r"tail\F", &s), r"tail\F");
        assert_eq!(decode("é\\F\\ü", &s), "é|ü");
    }

    #[test]
    fn custom_separators() {
        let s = Separators {
            field: '#',
            component: '!',
            repetition: '*',
            escape: '$',
            subcomponent: '%',
            lenient_newlines: false,
        };
        assert_eq!(decode("a$F$b$S$c$E$", &s), "a#b!c$");
    }
}
