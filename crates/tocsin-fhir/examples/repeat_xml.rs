//! Normalises one FHIR XML file N times (default 1,000): a fixed amount of
//! work for instruction-count profiling of the XML path (see `repeat.rs`):
//! `valgrind --tool=callgrind target/release/examples/repeat_xml FILE 1000`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: repeat_xml FILE [N]");
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N is a number"))
        .unwrap_or(1000);
    let bytes = std::fs::read(&path).expect("readable file");
    let cfg = tocsin_fhir::FhirConfig::default();
    let mut events = 0;
    for _ in 0..n {
        events += tocsin_fhir::normalise_xml(std::hint::black_box(&bytes), &cfg)
            .expect("normalises")
            .len();
    }
    println!("{n} runs, {events} events");
}
