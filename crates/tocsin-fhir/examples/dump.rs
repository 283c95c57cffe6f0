//! Prints the events (or the error) for each FHIR file named on the command
//! line: a quick way to see what the normaliser makes of a sample.
fn main() {
    let cfg = tocsin_fhir::FhirConfig::default();
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        println!("== {path}");
        match tocsin_fhir::normalise_json(&bytes, &cfg) {
            Ok(events) => println!(
                "{}",
                serde_json::to_string_pretty(&events).expect("serialises")
            ),
            Err(e) => println!("ERROR {} at {:?}: {e}", e.reason_code(), e.location()),
        }
    }
}
