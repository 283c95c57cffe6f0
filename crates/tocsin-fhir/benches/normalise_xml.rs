//! Throughput of normalising a typical discharge-summary document bundle
//! sent as FHIR XML: the XML twin of the JSON benchmark's bundle
//! (Composition, Patient, Encounter, two Organizations, Condition, two
//! MedicationStatements, AllergyIntolerance, Practitioner: 10 entries,
//! about 12 KB), beside the same bundle as JSON (the JSON path the XML is
//! converted into), and the ITK3 eDischarge message (STU3: written once, its
//! STU3 profiles near the start telling the first pass's tables; see
//! src/xml/stream.rs). Target: 10,000 XML bundles a second on one core.
//! The XML-to-JSON step alone is not public; its share is measured with
//! callgrind on `examples/repeat` with an `.xml` file (docs/performance.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tocsin_fhir::{FhirConfig, normalise_json, normalise_xml};

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/fhir/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let xml = fixture("xml/twins/r4/bundle-document-discharge-summary.xml");
    let json = fixture("r4/bundle-document-discharge-summary.json");
    let itk = fixture("xml/twins/stu3/itk3-edischarge-ITK003D.xml");
    let cfg = FhirConfig::default();
    assert_eq!(normalise_xml(&xml, &cfg).expect("normalises").len(), 1);
    assert_eq!(normalise_xml(&itk, &cfg).expect("normalises").len(), 1);
    let mut g = c.benchmark_group("fhir_xml");
    g.throughput(Throughput::Elements(1));
    g.bench_function("discharge_summary_document_bundle_r4_xml", |b| {
        b.iter(|| normalise_xml(black_box(&xml), &cfg))
    });
    g.bench_function("discharge_summary_document_bundle_r4_json", |b| {
        b.iter(|| normalise_json(black_box(&json), &cfg))
    });
    g.bench_function("itk3_edischarge_message_stu3_xml", |b| {
        b.iter(|| normalise_xml(black_box(&itk), &cfg))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
