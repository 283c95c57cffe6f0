//! Normalises one FHIR file N times (default 1,000): a fixed amount of work
//! for instruction-count profiling, which a shared, loaded machine does not
//! disturb the way it disturbs timings. A file whose name ends in `.xml`
//! goes through the XML path, any other through the JSON path:
//! `valgrind --tool=callgrind target/release/examples/repeat FILE 1000`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: repeat FILE [N]");
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N is a number"))
        .unwrap_or(1000);
    let bytes = std::fs::read(&path).expect("readable file");
    let xml = path.ends_with(".xml");
    let cfg = tocsin_fhir::FhirConfig::default();
    let mut events = 0;
    for _ in 0..n {
        let input = std::hint::black_box(&bytes);
        events += if xml {
            tocsin_fhir::normalise_xml(input, &cfg)
                .expect("normalises")
                .len()
        } else {
            tocsin_fhir::normalise_json(input, &cfg)
                .expect("normalises")
                .len()
        };
    }
    println!("{n} runs, {events} events");
}
