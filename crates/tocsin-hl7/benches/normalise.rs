//! Parse plus normalise of a typical ADT^A03 (the ~560-byte discharge
//! fixture). Target: under 5 µs per message on one core; the measured figure
//! is in docs/performance.md ("HL7 v2 normalisation").

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tocsin_hl7::{Hl7Config, normalise_message, split_messages};

fn bench(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/hl7/adt_a03_discharge.hl7"
    );
    let msg = std::fs::read(path).expect("A03 fixture");
    let cfg = Hl7Config::default();
    let mut group = c.benchmark_group("hl7");
    group.throughput(Throughput::Bytes(msg.len() as u64));
    group.bench_function("normalise_adt_a03", |b| {
        b.iter(|| normalise_message(black_box(&msg), &cfg).expect("normalises"))
    });
    group.bench_function("split_and_normalise_adt_a03", |b| {
        b.iter(|| {
            for m in split_messages(black_box(&msg)) {
                black_box(normalise_message(m.bytes, &cfg).expect("normalises"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
