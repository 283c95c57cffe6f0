//! Nothing panics on any input: arbitrary bytes, mutated fixtures, and every
//! truncation of every fixture. Each result is either an event or an error
//! with a reason code.

mod common;

use proptest::prelude::*;
use tocsin_hl7::{Hl7Config, normalise_message, raw_fields, split_messages};

fn exercise(input: &[u8], cfg: &Hl7Config) {
    for m in split_messages(input) {
        assert!(m.offset + m.bytes.len() <= input.len());
        match normalise_message(m.bytes, cfg) {
            Ok(ev) => assert!(!ev.source.message_id.is_empty()),
            Err(e) => assert!(!e.reason_code().is_empty() && !e.to_string().is_empty()),
        }
        let _ = raw_fields(m.bytes, cfg);
    }
    let _ = normalise_message(input, cfg);
}

fn fixtures() -> Vec<Vec<u8>> {
    common::fixture_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

#[test]
fn every_prefix_of_every_fixture() {
    let cfg = Hl7Config::default();
    for f in fixtures() {
        for end in 0..=f.len() {
            exercise(&f[..end], &cfg);
        }
    }
}

/// Bytes that matter to the parser, to make mutations hit structure.
const INTERESTING: &[u8] = b"|^~\\&\r\n\x0b\x1c#$%!*MSHPIDPV1TXA+-.0123456789\"\xc3\xa9\xff\x00";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&input, &Hl7Config::default());
    }

    #[test]
    fn msh_prefixed_noise(tail in proptest::collection::vec(
        proptest::sample::select(INTERESTING.to_vec()), 0..300)) {
        let mut input = b"MSH".to_vec();
        input.extend(tail);
        exercise(&input, &Hl7Config::default());
    }

    #[test]
    fn mutated_fixtures(
        which in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec(
            (any::<proptest::sample::Index>(), proptest::sample::select(INTERESTING.to_vec()), 0u8..3),
            1..12),
    ) {
        let all = fixtures();
        let mut input = all[which.index(all.len())].clone();
        for (at, byte, op) in edits {
            if input.is_empty() { break; }
            let i = at.index(input.len());
            match op {
                0 => input[i] = byte,
                1 => input.insert(i, byte),
                _ => { input.remove(i); }
            }
        }
        exercise(&input, &Hl7Config::default());
    }
}
