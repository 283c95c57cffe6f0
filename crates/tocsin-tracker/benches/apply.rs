//! Cost of `Tracker::apply` with 1,000 to 1,000,000 open expectations, and
//! the memory each open expectation takes.
//!
//! `TOCSIN_BENCH_OPEN` (comma-separated, default `1000,10000,100000,1000000`)
//! chooses the sizes, e.g. `TOCSIN_BENCH_OPEN=1000` for a quick run or for
//! `valgrind --tool=callgrind`.
//!
//! Each measured iteration applies two messages: a discharge (creating an
//! expectation) and its discharge summary (settling an older one), so the
//! number open stays constant. Memory is counted by a global allocator that
//! sums requested bytes (allocator overhead not included); it is printed
//! once per size as `memory: ...` lines. Figures go in docs/performance.md.

use chrono::{DateTime, Duration, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;
use tocsin_event::{
    Ack, Document, DocumentKind, Encounter, EncounterKind, EventId, EventType, Format, Identifier,
    InterfaceEvent, Patient, Source,
};
use tocsin_tracker::{Policy, Tracker, TrackerConfig};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-10T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A plausible NHS number-shaped string and hospital number for patient `i`.
fn patient(i: u64) -> Patient {
    Patient {
        nhs_number: Some(format!("{:010}", 4_000_000_000 + i)),
        local_ids: vec![Identifier {
            system: "RXX-MRN".into(),
            value: format!("H{i:08}"),
        }],
    }
}

fn event(msg: String, ty: EventType, at: DateTime<Utc>, i: u64) -> InterfaceEvent {
    InterfaceEvent {
        event_id: EventId::derive(Format::Hl7v2, msg.as_bytes(), 0),
        event_type: ty,
        occurred_at: at,
        source: Source {
            format: Format::Hl7v2,
            message_id: msg,
            message_type: "bench".into(),
            sending_facility: None,
            sending_application: None,
            sequence: 0,
        },
        patient: patient(i),
        encounter: None,
        document: None,
        appointment: None,
        gp_practice: Some(format!("A8{:04}", i % 7000)),
        ack: None,
        merge: None,
        warnings: vec![],
    }
}

/// Discharge number `i`, `i` milliseconds after the base (all within the
/// deadline window, so nothing fires during the benchmark).
fn discharge(i: u64) -> InterfaceEvent {
    let at = base() + Duration::milliseconds(i as i64);
    let mut e = event(format!("ADT{i}"), EventType::EncounterEnded, at, i);
    e.encounter = Some(Encounter {
        id: Some(format!("V{i:09}")),
        kind: Some(EncounterKind::Inpatient),
        ended_at: Some(at),
        site: Some(format!("RXX0{}", i % 4)),
        specialty: Some(format!("{}", 100 + i % 60)),
        ..Encounter::default()
    });
    e
}

fn summary(i: u64, at_ms: u64) -> InterfaceEvent {
    let at = base() + Duration::milliseconds(at_ms as i64);
    let mut e = event(format!("MDM{i}"), EventType::DocumentIssued, at, i);
    e.encounter = Some(Encounter {
        id: Some(format!("V{i:09}")),
        ..Encounter::default()
    });
    e.document = Some(Document {
        id: format!("DOC{i}"),
        kind: DocumentKind::DischargeSummary,
        type_code: None,
        issued_at: at,
        authored_at: None,
        recipient: None,
        replaces: None,
    });
    e
}

fn filled(n: u64) -> Tracker {
    let mut tr = Tracker::new(Policy::default_contract(), TrackerConfig::default());
    for i in 0..n {
        black_box(tr.apply(&discharge(i)));
    }
    tr
}

fn report_memory(n: u64) {
    let before = LIVE.load(Ordering::Relaxed);
    let tr = filled(n);
    let with_open = LIVE.load(Ordering::Relaxed) - before;
    // The duplicate keys of the same number of messages that create nothing
    // (acknowledgements naming no transmission), to separate them out.
    let before = LIVE.load(Ordering::Relaxed);
    let mut keys_only = Tracker::new(Policy::default_contract(), TrackerConfig::default());
    for i in 0..n {
        let mut e = event(
            format!("ACK{i}"),
            EventType::DeliveryAcknowledged,
            base(),
            i,
        );
        e.ack = Some(Ack {
            of_message_id: "none".into(),
            code: "AA".into(),
            detail_code: None,
            text: None,
        });
        black_box(keys_only.apply(&e));
    }
    let seen = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(tr.open_count() as u64, n);
    println!(
        "memory: {n} open: {:.0} bytes per open expectation including its message's duplicate key; \
         duplicate key alone {:.0} bytes; open expectation alone {:.0} bytes",
        with_open as f64 / n as f64,
        seen as f64 / n as f64,
        (with_open - seen) as f64 / n as f64
    );
    drop(keys_only);
    drop(tr);
}

/// The open-expectation counts to measure.
fn sizes() -> Vec<u64> {
    std::env::var("TOCSIN_BENCH_OPEN")
        .unwrap_or_else(|_| "1000,10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn bench_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(2));
    g.sample_size(20);
    for n in sizes() {
        report_memory(n);
        let mut tr = filled(n);
        let mut next = n;
        g.bench_with_input(BenchmarkId::new("discharge+summary", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let batch: Vec<(InterfaceEvent, InterfaceEvent)> = (0..iters)
                    .map(|k| {
                        let i = next + k;
                        // Settle the oldest open one; time moves on by 1 ms.
                        (discharge(i), summary(i - n, i))
                    })
                    .collect();
                next += iters;
                let start = Instant::now();
                for (d, s) in &batch {
                    black_box(tr.apply(d));
                    black_box(tr.apply(s));
                }
                let took = start.elapsed();
                drop(batch);
                took
            });
        });
        assert_eq!(tr.open_count() as u64, n);
    }
    g.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
