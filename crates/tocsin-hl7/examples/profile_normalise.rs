//! A fixed number of parse-plus-normalise runs of the benchmark's ADT^A03,
//! for instruction counts under `valgrind --tool=callgrind` (load-independent,
//! unlike criterion's timings on a shared machine):
//!
//! ```sh
//! cargo build --profile bench -p tocsin-hl7 --example profile_normalise
//! valgrind --tool=callgrind target/release/examples/profile_normalise 10000
//! ```
//!
//! Divide the total instruction count by the run count (the setup — reading
//! the file and the configuration — is paid once; run it with 0 to see it).

use std::hint::black_box;
use tocsin_hl7::{Hl7Config, normalise_message};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(Ok(10_000), |a| a.parse())
        .expect("the argument is a run count");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/adt_a03.hl7");
    let msg = std::fs::read(path).expect("the benchmark's ADT^A03");
    let cfg = Hl7Config::default();
    for _ in 0..runs {
        black_box(normalise_message(black_box(&msg), &cfg).expect("normalises"));
    }
}
