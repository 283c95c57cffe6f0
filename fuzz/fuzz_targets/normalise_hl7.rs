//! Fuzz target: splitting and normalising arbitrary bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tocsin_hl7::{Hl7Config, normalise_message, raw_fields, split_messages};

fn cfg() -> &'static Hl7Config {
    static CFG: OnceLock<Hl7Config> = OnceLock::new();
    CFG.get_or_init(Hl7Config::default)
}

fuzz_target!(|data: &[u8]| {
    let cfg = cfg();
    for m in split_messages(data) {
        let _ = normalise_message(m.bytes, cfg);
        let _ = raw_fields(m.bytes, cfg);
    }
    let _ = normalise_message(data, cfg);
});
