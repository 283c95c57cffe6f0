//! Fuzz target: normalising arbitrary bytes as FHIR JSON never panics; it
//! returns events or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tocsin_fhir::{FhirConfig, normalise_json};

fn cfg() -> &'static FhirConfig {
    static CFG: OnceLock<FhirConfig> = OnceLock::new();
    CFG.get_or_init(FhirConfig::default)
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = normalise_json(data, cfg()) {
        // Every error must name its reason and render.
        assert!(!e.reason_code().is_empty());
        let _ = e.to_string();
        let _ = e.location();
    }
});
