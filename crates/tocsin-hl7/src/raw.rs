//! Raw field extraction, for checking tocsin's parsing against an
//! independent HL7 parser (tests/hl7-differential).

use std::collections::BTreeMap;

use crate::message::{Parsed, prepare};
use crate::{Hl7Config, Hl7Error};

/// The fields the normaliser reads, as written and as decoded.
pub const RAW_FIELDS: [(&str, usize); 7] = [
    ("PID", 3),
    ("PV1", 2),
    ("PV1", 19),
    ("PV1", 45),
    ("MSH", 10),
    ("TXA", 2),
    ("TXA", 12),
];

/// Extracts the fields the normaliser reads (PID-3, PV1-2, PV1-19, PV1-45,
/// MSH-10, TXA-2, TXA-12) from the first segment of each name.
///
/// It exists so that a test can compare tocsin's splitting, separators and
/// escape decoding with another parser's. Keys, for each field present in a
/// segment the message has (a field beyond the segment's end reads as empty):
/// - `PV1-19`: the field as written (repetitions, components, escapes);
/// - `PV1-19.1`: component 1 of repetition 1, escapes decoded, untrimmed;
/// - for PID-3 also `PID-3(r).1` and `PID-3(r).5`: components 1 and 5 of
///   repetition `r` (1-based), decoded.
///
/// Only the text checks of [`crate::normalise_message`] apply (size, binary,
/// MSH and separators); message-type rules do not. May hold patient data.
pub fn raw_fields(msg: &[u8], cfg: &Hl7Config) -> Result<BTreeMap<String, String>, Hl7Error> {
    let text = prepare(msg, cfg)?;
    let parsed = Parsed::parse(&text)?;
    let mut out = BTreeMap::new();
    for (name, field) in RAW_FIELDS {
        let Some(seg) = parsed.segment(name) else {
            continue;
        };
        let key = format!("{name}-{field}");
        out.insert(format!("{key}.1"), seg.decoded_component(field, 1, 1));
        if name == "PID" {
            let reps = seg.repeats(field).count();
            for r in 1..=reps {
                for c in [1, 5] {
                    out.insert(
                        format!("{key}({r}).{c}"),
                        seg.decoded_component(field, r, c),
                    );
                }
            }
        }
        out.insert(key, seg.raw(field).to_owned());
    }
    Ok(out)
}
