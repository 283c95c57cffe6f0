//! Throughput of normalising a typical discharge-summary document bundle
//! (Composition, Patient, Encounter, two Organizations, Condition, two
//! MedicationStatements, AllergyIntolerance, Practitioner: 10 entries,
//! about 12 KB). Target: 30,000 bundles a second on one core.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tocsin_fhir::{FhirConfig, normalise_json};

fn bench(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/fhir/r4/bundle-document-discharge-summary.json"
    );
    let bytes = std::fs::read(path).expect("fixture present");
    let itk = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/fhir/stu3/itk3-edischarge-ITK003D.json"
    ))
    .expect("fixture present");
    let cfg = FhirConfig::default();
    assert_eq!(normalise_json(&bytes, &cfg).expect("normalises").len(), 1);
    let mut g = c.benchmark_group("fhir");
    g.throughput(Throughput::Elements(1));
    g.bench_function("discharge_summary_document_bundle_r4", |b| {
        b.iter(|| normalise_json(black_box(&bytes), &cfg))
    });
    g.bench_function("itk3_edischarge_message_stu3", |b| {
        b.iter(|| normalise_json(black_box(&itk), &cfg))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
