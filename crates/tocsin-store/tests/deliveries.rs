//! The delivery queue and the Alertmanager groups, on both backends
//! (PostgreSQL on 127.0.0.1:5432 in a database of its own; the tests fail
//! when it is unreachable).

mod common;

use chrono::Duration;
use common::{Backend, Spec, alert, at, expectation};
use tocsin_event::{DocumentKind, EncounterKind};
use tocsin_store::{Batch, DeliveryCounts, DeliveryOutcome, Grouping, QueuedDelivery};
use tocsin_tracker::{AlertKind, DeliveryStatus, ExpectationStatus};

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { super::$name(&super::common::Sqlite::new()); } )*
        }
        mod on_postgres {
            $( #[test] fn $name() { super::$name(&super::common::Postgres::new()); } )*
        }
    };
}

on_both!(
    deliveries_commit_with_their_alert_and_survive_reopen,
    attempts_settle_or_reschedule_and_settled_rows_are_never_due_again,
    subscribers_have_their_own_queues,
    the_backlog_counts_each_subscribers_pending_and_its_oldest,
    overdue_and_alert_groups_count_without_patients,
    a_failed_delivery_accepted_on_resend_is_no_longer_grouped,
);

fn queued(subscriber: &str, alert_id: &str) -> QueuedDelivery {
    QueuedDelivery {
        subscriber: subscriber.into(),
        alert_id: alert_id.into(),
        body: format!("{{\"alert_id\":\"{alert_id}\"}}").into_bytes(),
    }
}

fn deliveries_commit_with_their_alert_and_survive_reopen(b: &dyn Backend) {
    let mut store = b.open();
    let mut batch = Batch::default();
    batch.alerts.push(alert("a1", AlertKind::Overdue, 0));
    batch.push_delivery(queued("ward", "a1"));
    store.commit(&batch).unwrap();
    // A replayed commit (same alert, same subscriber) queues nothing new.
    store.commit(&batch).unwrap();
    drop(store);

    let mut store = b.open();
    let far = chrono::Utc::now() + Duration::hours(1);
    let due = store.deliveries_due("ward", far, 10).unwrap();
    assert_eq!(due.len(), 1, "{}", b.name());
    assert_eq!(due[0].alert_id, "a1");
    assert_eq!(due[0].body, b"{\"alert_id\":\"a1\"}");
    assert_eq!(due[0].attempts, 0);
    assert!(store.delivery_next_due("ward").unwrap().is_some());
}

fn attempts_settle_or_reschedule_and_settled_rows_are_never_due_again(b: &dyn Backend) {
    let mut store = b.open();
    let mut batch = Batch::default();
    for id in ["a1", "a2", "a3", "a4"] {
        batch.push_delivery(queued("ward", id));
    }
    store.commit(&batch).unwrap();
    let now = chrono::Utc::now() + Duration::seconds(1);
    let due = store.deliveries_due("ward", now, 10).unwrap();
    let ids: Vec<&str> = due.iter().map(|d| d.alert_id.as_str()).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "a4"], "commit order");

    let later = now + Duration::minutes(5);
    store
        .delivery_record(due[0].seq, &DeliveryOutcome::Delivered, now)
        .unwrap();
    store
        .delivery_record(
            due[1].seq,
            &DeliveryOutcome::Retry {
                at: later,
                error: "HTTP 503".into(),
            },
            now,
        )
        .unwrap();
    store
        .delivery_record(
            due[2].seq,
            &DeliveryOutcome::Failed {
                error: "timed out".into(),
            },
            now,
        )
        .unwrap();
    // Given up without an attempt: failed, its attempts as they were.
    store
        .delivery_record(
            due[3].seq,
            &DeliveryOutcome::GivenUp {
                error: "reached its maximum age".into(),
            },
            now,
        )
        .unwrap();
    let attempts = |id: &str| {
        b.raw_i64(&format!(
            "SELECT CAST(attempts AS BIGINT) FROM deliveries WHERE alert_id = '{id}'"
        ))
    };
    assert_eq!((attempts("a3"), attempts("a4")), (1, 0), "{}", b.name());
    assert!(store.deliveries_due("ward", now, 10).unwrap().is_empty());
    let next = store.delivery_next_due("ward").unwrap().unwrap();
    assert_eq!(next.timestamp_millis(), later.timestamp_millis());
    let again = store.deliveries_due("ward", later, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].alert_id, "a2");
    assert_eq!(again[0].attempts, 1);

    // Recording on a settled row changes nothing: a delivered alert stays
    // delivered whatever a late duplicate attempt reports.
    store
        .delivery_record(
            due[0].seq,
            &DeliveryOutcome::Retry {
                at: now,
                error: "late".into(),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        store.delivery_counts("ward").unwrap(),
        DeliveryCounts {
            pending: 1,
            delivered: 1,
            failed: 2
        }
    );
}

fn subscribers_have_their_own_queues(b: &dyn Backend) {
    let mut store = b.open();
    let mut batch = Batch::default();
    batch.push_delivery(queued("ward", "a1"));
    batch.push_delivery(queued("letters", "a1"));
    batch.push_delivery(queued("letters", "a2"));
    store.commit(&batch).unwrap();
    let now = chrono::Utc::now() + Duration::seconds(1);
    assert_eq!(store.deliveries_due("ward", now, 10).unwrap().len(), 1);
    assert_eq!(store.deliveries_due("letters", now, 10).unwrap().len(), 2);
    assert_eq!(store.deliveries_due("letters", now, 1).unwrap().len(), 1);
    assert!(store.deliveries_due("nobody", now, 10).unwrap().is_empty());
    assert!(store.delivery_next_due("nobody").unwrap().is_none());
}

fn the_backlog_counts_each_subscribers_pending_and_its_oldest(b: &dyn Backend) {
    let mut store = b.open();
    assert!(store.delivery_backlog().unwrap().is_empty(), "{}", b.name());
    let mut first = Batch::default();
    first.push_delivery(queued("ward", "a1"));
    first.push_delivery(queued("letters", "a1"));
    store.commit(&first).unwrap();
    let mut second = Batch::default();
    second.push_delivery(queued("ward", "a2"));
    second.push_delivery(queued("ward", "a3"));
    second.push_delivery(queued("gone", "a2"));
    store.commit(&second).unwrap();
    let after = chrono::Utc::now() + Duration::seconds(1);

    // The oldest of ward's is delivered: its backlog starts at the next.
    let due = store.deliveries_due("ward", after, 10).unwrap();
    store
        .delivery_record(due[0].seq, &DeliveryOutcome::Delivered, after)
        .unwrap();
    let letters = store.deliveries_due("letters", after, 10).unwrap();
    store
        .delivery_record(
            letters[0].seq,
            &DeliveryOutcome::Failed {
                error: "HTTP 500".into(),
            },
            after,
        )
        .unwrap();

    let backlog = store.delivery_backlog().unwrap();
    let names: Vec<(&str, u64)> = backlog
        .iter()
        .map(|s| (s.subscriber.as_str(), s.pending))
        .collect();
    assert_eq!(
        names,
        [("gone", 1), ("ward", 2)],
        "settled rows and subscribers with nothing pending are left out ({})",
        b.name()
    );
    let gone = store.deliveries_due("gone", after, 10).unwrap();
    assert_ne!(due[0].created_at, due[1].created_at, "two commits");
    assert_eq!(
        (backlog[0].oldest, backlog[1].oldest),
        (gone[0].created_at, due[1].created_at),
        "the oldest still pending, not the delivered one before it ({})",
        b.name()
    );
}

fn overdue_and_alert_groups_count_without_patients(b: &dyn Backend) {
    let mut store = b.open();
    let spec = |id, status, site, deadline| Spec {
        id,
        status,
        document_kind: DocumentKind::DischargeSummary,
        encounter_kind: EncounterKind::Inpatient,
        site,
        ended_at: deadline - 24 * 60,
        deadline,
    };
    let mut batch = Batch::default();
    for s in [
        spec("e1", ExpectationStatus::Overdue, Some("RXX01"), 10),
        spec("e2", ExpectationStatus::Overdue, Some("RXX01"), 20),
        spec("e3", ExpectationStatus::Overdue, None, 30),
        spec("e4", ExpectationStatus::Open, Some("RXX01"), 40),
        spec("e5", ExpectationStatus::Late, Some("RXX01"), 5),
    ] {
        let mut e = expectation(&s);
        // Two specialties at RXX01: one group, or two when split.
        if s.id == "e2" {
            e.encounter.specialty = Some("101".into());
        }
        batch.push_expectation(e);
    }
    batch
        .alerts
        .push(alert("f1", AlertKind::DeliveryFailed, 100));
    let mut f2 = alert("f2", AlertKind::DeliveryFailed, 200);
    f2.encounter.specialty = Some("101".into());
    batch.alerts.push(f2);
    batch.alerts.push(alert("o1", AlertKind::Overdue, 200));
    store.commit(&batch).unwrap();

    let whole = Grouping::default();
    let groups = store.overdue_groups(whole).unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let site = groups
        .iter()
        .find(|g| g.site.as_deref() == Some("RXX01"))
        .unwrap();
    assert_eq!(site.count, 2);
    assert_eq!(site.document_kind, "discharge_summary");
    assert_eq!(site.encounter_kind, "inpatient");
    assert_eq!(site.first, at(10));
    assert_eq!(site.last, at(20));
    let none = groups.iter().find(|g| g.site.is_none()).unwrap();
    assert_eq!(none.count, 1);

    assert!(groups.iter().all(|g| g.specialty.is_none()), "{groups:?}");
    let failed = store.failed_delivery_groups(at(150), whole).unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].count, 1, "only f2 is recent enough");
    assert_eq!(failed[0].last, at(200));
    let all = store.failed_delivery_groups(at(0), whole).unwrap();
    assert_eq!(all[0].count, 2);

    // Split by specialty: RXX01's two overdue are one each of 300 and 101.
    let split = Grouping { by_specialty: true };
    let groups = store.overdue_groups(split).unwrap();
    // (PostgreSQL sorts nulls last, SQLite first: compare sorted.)
    let mut counts: Vec<_> = groups
        .iter()
        .map(|g| (g.site.as_deref(), g.specialty.as_deref(), g.count))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            (None, Some("300"), 1),
            (Some("RXX01"), Some("101"), 1),
            (Some("RXX01"), Some("300"), 1)
        ],
        "{}",
        b.name()
    );
    let failed = store.failed_delivery_groups(at(0), split).unwrap();
    let mut counts: Vec<_> = failed
        .iter()
        .map(|g| (g.specialty.as_deref(), g.count, g.last))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [(None, 1, at(100)), (Some("101"), 1, at(200))],
        "{}",
        b.name()
    );
}

/// A `delivery_failed` alert stops counting in Alertmanager's groups once
/// its expectation's delivery is acknowledged (the summary sent again and
/// accepted); one whose resend is only pending, or failed again, still
/// counts. A body holding the JSON escape of NUL does not stop the query.
fn a_failed_delivery_accepted_on_resend_is_no_longer_grouped(b: &dyn Backend) {
    let mut store = b.open();
    let mut batch = Batch::default();
    // `alert(id, ..)` names expectation `exp-{id}`.
    for (id, expectation_id, delivery) in [
        ("f1", "exp-f1", DeliveryStatus::Acknowledged),
        ("f2", "exp-f2", DeliveryStatus::Pending),
        ("f3", "exp-f3", DeliveryStatus::Failed),
    ] {
        let mut e = expectation(&Spec {
            id: expectation_id,
            status: ExpectationStatus::OnTime,
            document_kind: DocumentKind::DischargeSummary,
            encounter_kind: EncounterKind::Inpatient,
            site: Some("RXX01"),
            ended_at: 0,
            deadline: 24 * 60,
        });
        e.delivery = Some(delivery);
        e.gp_practice = Some("A81\u{0}001".into());
        batch.push_expectation(e);
        batch.alerts.push(alert(id, AlertKind::DeliveryFailed, 100));
    }
    store.commit(&batch).unwrap();
    let failed = store
        .failed_delivery_groups(at(0), Grouping::default())
        .unwrap();
    assert_eq!(failed.len(), 1, "{}: {failed:?}", b.name());
    assert_eq!(failed[0].count, 2, "{}: f2 and f3, not f1", b.name());
}
