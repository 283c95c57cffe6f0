//! Parse plus normalise of a typical 600-byte ADT^A03 (`adt_a03.hl7` beside
//! this file: MSH, EVN, PID, PD1, NK1, PV1, DG1). Target: under 5 µs per
//! message on one core; the measured figure is in docs/performance.md ("HL7
//! v2 normalisation"). `event_id_derive` measures the share of
//! `EventId::derive` (SHA-256 over the raw message) alone.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tocsin_event::{EventId, Format};
use tocsin_hl7::{Hl7Config, normalise_message, split_messages};

fn bench(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/adt_a03.hl7");
    let msg = std::fs::read(path).expect("the benchmark's ADT^A03");
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
    group.bench_function("event_id_derive", |b| {
        b.iter(|| EventId::derive(Format::Hl7v2, black_box(&msg), 0))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
