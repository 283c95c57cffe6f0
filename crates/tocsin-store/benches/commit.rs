//! Batch commit throughput: one batch of 500 new expectations, 500 state
//! records and 500 outbox messages (1,500 rows), committed as one
//! transaction, on SQLite (WAL, a temporary file, with synchronous NORMAL, FULL and OFF) and on
//! PostgreSQL (a database of its own on 127.0.0.1:5432). The figures are in
//! docs/performance.md under "Store".

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Backend, Postgres, Sqlite, open_expectation};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use tocsin_store::{Batch, SqliteStore, Store, Synchronous};
use tocsin_tracker::{JsonText, StateRecord};

const PER_KIND: usize = 500;

/// A batch of fresh rows: batch `n` never repeats an earlier batch's ids,
/// and its encounters end after those of batch `n - 1`, as in real traffic
/// (event time moves forward), so deadline and encounter-end index inserts
/// land near the right edge of their indexes.
fn batch(n: u64) -> Batch {
    let mut b = Batch::default();
    for i in 0..PER_KIND {
        let id: &'static str = Box::leak(format!("bench-{n}-{i}").into_boxed_str());
        let e = open_expectation(id, (n as i64) * PER_KIND as i64 + i as i64);
        b.push_state_put(StateRecord {
            namespace: "seen".into(),
            key: format!("hl7v2:MSG-{n}-{i}"),
            value: JsonText::of(
                &json!({"at": "2019-03-31T00:00:00Z", "event": format!("evt-{n}-{i}")}),
            ),
        });
        b.push_outbox(tocsin_store::OutboxMessage {
            id: format!("evt-{n}-{i}"),
            exchange: "tocsin.events".into(),
            routing_key: "hl7v2.encounter_ended".into(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(&e).expect("serialise"),
        });
        b.push_expectation(e);
    }
    b
}

fn bench_backend(c: &mut Criterion, name: &str, store: &mut dyn Store) {
    let mut group = c.benchmark_group("store_commit");
    group.throughput(Throughput::Elements(3 * PER_KIND as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                n += 1;
                batch(n)
            },
            |batch| store.commit(&batch).expect("commit"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn commit(c: &mut Criterion) {
    for (name, sync) in [
        ("sqlite_normal_500x3", Synchronous::Normal),
        ("sqlite_full_500x3", Synchronous::Full),
        ("sqlite_off_500x3", Synchronous::Off),
    ] {
        let sqlite = Sqlite::new();
        let mut store = SqliteStore::open_with(&sqlite.path, sync).expect("open SQLite");
        bench_backend(c, name, &mut store);
    }
    let pg = Postgres::new();
    bench_backend(c, "postgres_500x3", pg.open().as_mut());
}

criterion_group!(benches, commit);
criterion_main!(benches);
