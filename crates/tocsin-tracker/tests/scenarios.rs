//! Scenario tests: one per contract rule and tracker behaviour, with
//! constructed interface events.

mod common;

use common::*;
use tocsin_event::{DocumentKind as D, EncounterKind as K, EventType};
use tocsin_tracker::{
    AlertKind as A, ConfigDuration, DeliveryStatus, Effect, ExpectationStatus as S, MatchMethod,
    Policy, Tracker, TrackerConfig,
};

const NHS: &str = "9434765919";
const NHS2: &str = "9434765870";

fn tracker() -> Tracker {
    Tracker::new(Policy::default_contract(), strict())
}

/// A tracker under the contract policy with its example warning point on:
/// `due_soon` 20 hours after discharge.
fn warning_tracker() -> Tracker {
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml")
        .replace("# due_soon = \"20h\"", "due_soon = \"20h\"");
    Tracker::new(Policy::from_toml(&text).unwrap(), strict())
}

#[test]
fn discharge_summary_on_time_settles_without_alerts() {
    let mut tr = tracker();
    let fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let e = &changed(&fx)[0];
    assert_eq!(e.status, S::Open);
    assert_eq!(e.rule.id, "discharge-summary-24h");
    assert_eq!(e.deadline, t("2024-01-11T10:00:00Z"));
    assert_eq!(tr.open_count(), 1);
    assert_eq!(tr.next_deadline(), Some(t("2024-01-11T10:00:00Z")));

    // Issued exactly at the deadline is on time.
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T10:00:00Z"),
        Some(NHS),
    ));
    assert!(kinds(&fx).is_empty());
    let e = &changed(&fx)[0];
    assert_eq!(e.status, S::OnTime);
    let s = e.settlement.as_ref().unwrap();
    assert_eq!(
        (s.delay_seconds, s.matched_by),
        (86_400, MatchMethod::EncounterId)
    );
    assert_eq!(s.message_id, "m2");
    assert_eq!(tr.open_count(), 0);
    assert!(kinds(&tr.advance_to(t("2024-02-01T00:00:00Z"))).is_empty());
}

/// A document a fraction of a second past its deadline is late, and its
/// delay (whole seconds, rounded up) says so: beyond the 24 hours allowed.
#[test]
fn a_document_a_fraction_of_a_second_late_shows_a_delay_beyond_the_limit() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&end(
        "m2",
        "V2",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS2,
    ));
    let fx = tr.apply(&doc(
        "m3",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T09:59:59.600Z"),
        Some(NHS),
    ));
    let e = &changed(&fx)[0];
    assert_eq!(e.status, S::OnTime);
    assert_eq!(e.settlement.as_ref().unwrap().delay_seconds, 86_400);
    let fx = tr.apply(&doc(
        "m4",
        Some("V2"),
        D::DischargeSummary,
        t("2024-01-11T10:00:00.400Z"),
        Some(NHS2),
    ));
    let e = changed(&fx).pop().unwrap();
    assert_eq!(e.status, S::Late);
    assert_eq!(e.settlement.as_ref().unwrap().delay_seconds, 86_401);
    let late = alerts(&fx);
    let late = late
        .iter()
        .find(|a| a.kind == A::Late)
        .expect("late raised");
    assert_eq!(late.delay_seconds, Some(86_401));
}

#[test]
fn missing_document_raises_overdue_once_when_the_clock_passes_the_deadline() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Emergency,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    // At the deadline itself the clock has not passed it.
    assert!(kinds(&tr.advance_to(t("2024-01-11T10:00:00Z"))).is_empty());
    let fx = tr.advance_to(t("2024-01-11T10:00:01Z"));
    let a = alerts(&fx);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, A::Overdue);
    assert_eq!(a[0].alert_id, format!("{}:overdue", a[0].expectation_id.0));
    assert_eq!(a[0].patient.nhs_number.as_deref(), Some(NHS));
    assert_eq!(a[0].gp_practice.as_deref(), Some("A81001"));
    assert_eq!(a[0].rule.clause, "SC11.6");
    assert_eq!(changed(&fx)[0].status, S::Overdue);
    assert_eq!(changed(&fx)[0].alerts_raised, vec![A::Overdue]);
    assert!(kinds(&tr.advance_to(t("2024-03-01T00:00:00Z"))).is_empty());
    assert_eq!(tr.open_count(), 1);
    let g: Vec<_> = tr.gauges().collect();
    assert_eq!(g.len(), 1);
    assert_eq!((g[0].2.open, g[0].2.overdue), (0, 1));
}

#[test]
fn late_document_meets_the_overdue_already_raised_then_late_and_resolved() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    // One input past the deadline: overdue fires before the document applies.
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T13:00:00Z"),
        Some(NHS),
    ));
    assert_eq!(kinds(&fx), vec![A::Overdue, A::Late, A::Resolved]);
    let a = alerts(&fx);
    assert_eq!(a[1].delay_seconds, Some(27 * 3600));
    assert_eq!(a[1].document.as_ref().unwrap().id, "DOC-m2");
    let last = changed(&fx).pop().unwrap();
    assert_eq!(last.status, S::Late);
    assert_eq!(last.alerts_raised, vec![A::Overdue, A::Late, A::Resolved]);
}

#[test]
fn within_allowed_lateness_a_late_document_is_late_but_never_overdue() {
    let cfg = TrackerConfig {
        allowed_lateness: ConfigDuration::hours(1),
        ..TrackerConfig::default()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T10:30:00Z"),
        Some(NHS),
    ));
    assert_eq!(kinds(&fx), vec![A::Late]);
    assert_eq!(tr.clock(), Some(t("2024-01-11T09:30:00Z")));
}

/// Subscribers told to chase a summary (`overdue`, or `due_soon` where a
/// rule warns) are told when the discharge is withdrawn: `cancelled`, once,
/// stamped at the cancelling message and never before the alert it
/// withdraws, with no document. One withdrawn before any alert raises
/// nothing, as before.
#[test]
fn a_withdrawal_after_overdue_or_due_soon_raises_cancelled_once() {
    for ty in [
        EventType::EncounterDischargeCancelled,
        EventType::EncounterCancelled,
    ] {
        let mut tr = tracker();
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        ));
        let overdue = alerts(&tr.advance_to(t("2024-01-11T12:00:00Z")));
        assert_eq!(overdue.len(), 1);
        let fx = tr.apply(&cancel("m2", ty, "V1", t("2024-01-11T13:00:00Z")));
        let withdrawn = alerts(&fx);
        assert_eq!(withdrawn.len(), 1, "{ty:?}: {fx:?}");
        let a = &withdrawn[0];
        assert_eq!(a.kind, A::Cancelled);
        assert_eq!(a.expectation_id, overdue[0].expectation_id);
        assert_eq!(a.alert_id, format!("{}:cancelled", a.expectation_id.0));
        assert_eq!(a.raised_at, t("2024-01-11T13:00:00Z"));
        assert_eq!((a.document.clone(), a.delay_seconds), (None, None));
        let exp = changed(&fx).pop().unwrap();
        assert_eq!(exp.status, S::Cancelled);
        assert_eq!(exp.alerts_raised, [A::Overdue, A::Cancelled]);
        // The same cancellation again (another message id): nothing more.
        let fx = tr.apply(&cancel("m3", ty, "V1", t("2024-01-11T14:00:00Z")));
        assert!(kinds(&fx).is_empty(), "{fx:?}");
    }

    // Only `due_soon` raised: `cancelled`, not before the warning point.
    let mut tr = warning_tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    assert_eq!(
        kinds(&tr.advance_to(t("2024-01-11T07:00:00Z"))),
        [A::DueSoon]
    );
    // Stamped before the warning (clocks apart): raised at the warning.
    let fx = tr.apply(&cancel(
        "m2",
        EventType::EncounterDischargeCancelled,
        "V1",
        t("2024-01-11T05:00:00Z"),
    ));
    let withdrawn = alerts(&fx);
    assert_eq!(withdrawn.len(), 1, "{fx:?}");
    assert_eq!(withdrawn[0].kind, A::Cancelled);
    assert_eq!(withdrawn[0].raised_at, t("2024-01-11T06:00:00Z"));

    // Withdrawn before any alert: nothing to tell.
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&cancel(
        "m2",
        EventType::EncounterDischargeCancelled,
        "V1",
        t("2024-01-10T11:00:00Z"),
    ));
    assert_eq!(changed(&fx)[0].status, S::Cancelled);
    assert!(kinds(&fx).is_empty(), "{fx:?}");
}

#[test]
fn discharge_cancelled_a13_and_visit_cancelled_a11_withdraw_the_expectation() {
    for ty in [
        EventType::EncounterDischargeCancelled,
        EventType::EncounterCancelled,
    ] {
        let mut tr = tracker();
        tr.apply(&end("m1", "V1", K::DayCase, t("2024-01-10T10:00:00Z"), NHS));
        let fx = tr.apply(&cancel("m2", ty, "V1", t("2024-01-10T11:00:00Z")));
        assert_eq!(changed(&fx)[0].status, S::Cancelled, "{ty:?}");
        assert_eq!(tr.open_count(), 0);
        assert!(kinds(&tr.advance_to(t("2024-02-01T00:00:00Z"))).is_empty());
        // A cancellation naming nothing open is counted, not an error.
        tr.apply(&cancel("m3", ty, "V9", t("2024-02-01T00:00:00Z")));
        assert_eq!(tr.counters().cancellations_unmatched, 1);
    }
}

#[test]
fn clinic_letter_periods_are_judged_by_the_attendance_end_date() {
    for (ended, rule, days) in [
        ("2017-06-01T10:00:00Z", "clinic-letter-14d", 14),
        ("2018-06-01T10:00:00Z", "clinic-letter-10d", 10),
        ("2019-06-01T10:00:00Z", "clinic-letter-7d", 7),
        ("2026-06-01T10:00:00Z", "clinic-letter-7d", 7),
    ] {
        let mut tr = tracker();
        let fx = tr.apply(&end("m1", "OP1", K::Outpatient, t(ended), NHS));
        let e = &changed(&fx)[0];
        assert_eq!(e.rule.id, rule);
        assert_eq!(e.document_kind, D::ClinicLetter);
        assert_eq!(e.deadline - t(ended), chrono::Duration::days(days));
    }
    // An attendance before the contract creates nothing.
    let mut tr = tracker();
    assert!(
        changed(&tr.apply(&end(
            "m1",
            "OP1",
            K::Outpatient,
            t("2016-06-01T10:00:00Z"),
            NHS
        )))
        .is_empty()
    );
}

#[test]
fn document_before_discharge_settles_when_the_end_event_comes() {
    let mut tr = tracker();
    let fx = tr.apply(&doc(
        "m1",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T09:00:00Z"),
        Some(NHS),
    ));
    assert!(changed(&fx).is_empty());
    assert_eq!(tr.pending_document_count(), 1);
    let fx = tr.apply(&end(
        "m2",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let e = changed(&fx);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].status, S::OnTime);
    assert_eq!(e[0].settlement.as_ref().unwrap().delay_seconds, -3600);
    assert!(fx.iter().any(
        |f| matches!(f, Effect::StateDeleted { namespace, .. } if namespace == "pending_document")
    ));
    assert_eq!(tr.pending_document_count(), 0);
}

#[test]
fn a_withdrawn_waiting_document_settles_nothing() {
    let mut tr = tracker();
    tr.apply(&doc(
        "m1",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T09:00:00Z"),
        Some(NHS),
    ));
    let mut c = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T09:30:00Z"),
        Some(NHS),
    );
    c.event_type = EventType::DocumentCancelled;
    c.document.as_mut().unwrap().id = "DOC-m1".into();
    tr.apply(&c);
    assert_eq!(tr.pending_document_count(), 0);
    let fx = tr.apply(&end(
        "m3",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    assert_eq!(changed(&fx)[0].status, S::Open);
}

#[test]
fn exact_duplicates_change_nothing() {
    let mut tr = tracker();
    let e = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
    assert!(!tr.apply(&e).is_empty());
    assert!(tr.apply(&e).is_empty());
    let d = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    );
    assert_eq!(changed(&tr.apply(&d)).len(), 1);
    assert!(tr.apply(&d).is_empty());
    assert_eq!(tr.counters().duplicates, 2);
    // Same message id but another event of the message is not a duplicate.
    let mut other = d.clone();
    other.source.sequence = 1;
    assert!(!tr.apply(&other).is_empty());
    // A repeated discharge under a new message id keeps the first expectation.
    let mut tr = tracker();
    tr.apply(&e);
    assert!(
        changed(&tr.apply(&end(
            "m9",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:05:00Z"),
            NHS
        )))
        .is_empty()
    );
    assert_eq!((tr.open_count(), tr.counters().repeated_ends), (1, 1));
}

/// An end event repeated after the document settled the expectation (a
/// FHIR Encounter's later version, an A03 sent again) changes nothing: no
/// expectation opened again, no false `overdue`, also after a restart.
/// A discharge cancelled (A13) and then discharged again is tracked anew.
#[test]
fn an_end_repeated_after_the_document_changes_nothing() {
    let mut tr = tracker();
    let mut store = Store::default();
    let ended = t("2024-01-10T10:00:00Z");
    store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS)));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
    store.commit(&fx);
    // The same end again under new message ids: one read at once, one a
    // later version stamped days after, as a FHIR feed sends them.
    let mut later = end("m3", "V1", K::Inpatient, ended, NHS);
    later.occurred_at = t("2024-01-15T09:00:00Z");
    for e in [end("m3b", "V1", K::Inpatient, ended, NHS), later] {
        let fx = tr.apply(&e);
        assert!(changed(&fx).is_empty(), "{fx:?}");
        store.commit(&fx);
    }
    assert_eq!((tr.open_count(), tr.counters().repeated_ends), (0, 2));
    let fx = tr.advance_to(t("2024-01-20T00:00:00Z"));
    assert!(kinds(&fx).is_empty());
    store.commit(&fx);
    let stored: Vec<S> = store.all().iter().map(|e| e.status).collect();
    assert_eq!(stored, [S::OnTime]);

    // After a restart the settlement is still remembered.
    let mut tr = store.restored();
    let fx = tr.apply(&end("m4", "V1", K::Inpatient, ended, NHS));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert!(kinds(&tr.advance_to(t("2024-02-01T00:00:00Z"))).is_empty());
    assert_eq!(tr.open_count(), 0);

    // Cancelled, then discharged again: a new obligation.
    let mut tr = tracker();
    tr.apply(&end("c1", "V2", K::Inpatient, ended, NHS));
    tr.apply(&cancel(
        "c2",
        EventType::EncounterDischargeCancelled,
        "V2",
        t("2024-01-10T11:00:00Z"),
    ));
    let fx = tr.apply(&end(
        "c3",
        "V2",
        K::Inpatient,
        t("2024-01-12T10:00:00Z"),
        NHS,
    ));
    assert_eq!(changed(&fx)[0].status, S::Open);
    assert_eq!(tr.open_count(), 1);

    // Settled, then the discharge cancelled (recorded in error), then the
    // real discharge days later: a new obligation, not a repeat, also
    // after a restart between them.
    let mut tr = tracker();
    let mut store = Store::default();
    store.commit(&tr.apply(&end("d1", "V3", K::Inpatient, ended, NHS)));
    store.commit(&tr.apply(&doc(
        "d2",
        Some("V3"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    )));
    store.commit(&tr.apply(&cancel(
        "d3",
        EventType::EncounterDischargeCancelled,
        "V3",
        t("2024-01-10T13:00:00Z"),
    )));
    let mut tr = store.restored();
    let fx = tr.apply(&end(
        "d4",
        "V3",
        K::Inpatient,
        t("2024-01-14T10:00:00Z"),
        NHS,
    ));
    let opened = changed(&fx);
    assert_eq!(opened.len(), 1, "{fx:?}");
    assert_eq!(
        (opened[0].status, opened[0].deadline),
        (S::Open, t("2024-01-15T10:00:00Z"))
    );
}

/// An account merge moves an open expectation to the surviving visit; the
/// surviving visit's own end event then finds it rather than opening a
/// second one for the same discharge.
#[test]
fn an_end_for_the_surviving_visit_after_an_account_merge_is_a_repeat() {
    let mut tr = tracker();
    let ended = t("2024-01-10T10:00:00Z");
    tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS));
    let mut m = merge("m2", NHS, NHS, t("2024-01-10T10:30:00Z"));
    m.encounter = Some(tocsin_event::Encounter {
        id: Some("V2".into()),
        ..Default::default()
    });
    m.merge.as_mut().unwrap().prior_encounter_id = Some("V1".into());
    tr.apply(&m);
    let fx = tr.apply(&end("m3", "V2", K::Inpatient, ended, NHS));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!((tr.open_count(), tr.counters().repeated_ends), (1, 1));
}

/// After the merge renumbers the visit and a summary settles it, the end
/// re-sent under the new number is a repeat: it opened the discharge
/// again, one on time and one overdue.
#[test]
fn an_end_resent_under_a_renumbered_visit_after_its_summary_is_a_repeat() {
    let mut tr = tracker();
    let ended = t("2024-01-10T10:00:00Z");
    tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS));
    let mut m = merge("m2", NHS, NHS, t("2024-01-10T10:30:00Z"));
    m.encounter = Some(tocsin_event::Encounter {
        id: Some("V2".into()),
        ..Default::default()
    });
    m.merge.as_mut().unwrap().prior_encounter_id = Some("V1".into());
    tr.apply(&m);
    let fx = tr.apply(&doc(
        "m3",
        Some("V2"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        Some(NHS),
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
    let fx = tr.apply(&end("m4", "V2", K::Inpatient, ended, NHS));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!((tr.open_count(), tr.counters().repeated_ends), (0, 1));
    assert!(kinds(&tr.advance_to(t("2024-02-01T00:00:00Z"))).is_empty());
}

/// Visit numbers collide across patients (and PAS systems): a summary for
/// another patient that names the same visit number settles nothing.
#[test]
fn a_document_for_another_patient_never_settles_by_visit_number() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "100",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("100"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        Some(NHS2),
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!((tr.open_count(), tr.pending_document_count()), (1, 1));
    assert_eq!(
        kinds(&tr.advance_to(t("2024-01-12T00:00:00Z"))),
        vec![A::Overdue]
    );
    // Without an NHS number on one side the visit number still decides.
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "100",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("100"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        None,
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
}

/// The same document come again after the patient's next discharge (an
/// MDM T04 of its status changing, a DocumentReference's next version), with
/// no visit number: it settled the first stay and settles nothing more, so
/// the readmission's summary, never sent, goes overdue.
#[test]
fn a_settled_document_come_again_does_not_settle_the_next_stay() {
    let at = |s: &str| t(&format!("2024-01-{s}:00Z"));
    let mut tr = tracker();
    tr.apply(&end("m1", "V1", K::Inpatient, at("15T14:00"), NHS));
    let fx = tr.apply(&doc(
        "m2",
        None,
        D::DischargeSummary,
        at("16T09:00"),
        Some(NHS),
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
    tr.apply(&end("m3", "V2", K::Inpatient, at("20T12:00"), NHS));
    let mut again = doc("m4", None, D::DischargeSummary, at("20T13:00"), Some(NHS));
    again.document.as_mut().unwrap().id = "DOC-m2".into();
    let fx = tr.apply(&again);
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.counters().documents_repeated, 1);
    let fx = tr.advance_to(at("22T00:00"));
    let overdue = alerts(&fx);
    assert_eq!(kinds(&fx), [A::Overdue], "{fx:?}");
    assert_eq!(overdue[0].encounter.id.as_deref(), Some("V2"));
    // Named by its visit number, the same document settles what it names
    // (a summary filed against the wrong stay, then moved).
    let mut named = doc(
        "m5",
        Some("V2"),
        D::DischargeSummary,
        at("22T01:00"),
        Some(NHS),
    );
    named.document.as_mut().unwrap().id = "DOC-m2".into();
    let fx = tr.apply(&named);
    assert_eq!(changed(&fx)[0].status, S::Late, "{fx:?}");
}

/// A copy of the last stay's summary (the same document, no visit number,
/// sent again to a second recipient) settles nothing more and does not
/// wait; and a document issued before a stay began, waiting, is not that
/// stay's summary: the readmission is still owed its own.
#[test]
fn a_waiting_document_issued_before_a_stay_began_does_not_settle_it() {
    let at = |s: &str| t(&format!("2024-01-{s}:00Z"));
    let mut tr = tracker();
    tr.apply(&end("m1", "V1", K::Inpatient, at("10T10:00"), NHS));
    tr.apply(&doc(
        "m2",
        None,
        D::DischargeSummary,
        at("10T16:00"),
        Some(NHS),
    ));
    let mut copy = doc("m3", None, D::DischargeSummary, at("10T16:05"), Some(NHS));
    copy.document.as_mut().unwrap().id = "DOC-m2".into();
    let fx = tr.apply(&copy);
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.pending_document_count(), 0, "the copy does not wait");
    assert_eq!(tr.counters().documents_repeated, 1);
    // Another document, before the readmission began: it waits, and the
    // readmission does not take it.
    tr.apply(&doc(
        "m5",
        None,
        D::DischargeSummary,
        at("10T17:00"),
        Some(NHS),
    ));
    assert_eq!(tr.pending_document_count(), 1);
    let mut readmitted = end("m4", "V2", K::Inpatient, at("11T18:00"), NHS);
    readmitted.encounter.as_mut().unwrap().started_at = Some(at("11T08:00"));
    let fx = tr.apply(&readmitted);
    assert!(changed(&fx).iter().all(|e| e.status != S::OnTime), "{fx:?}");
    assert_eq!(tr.open_count(), 1);
    assert_eq!(kinds(&tr.advance_to(at("13T00:00"))), vec![A::Overdue]);
    // Without a start time it is taken, as before.
    let mut tr = tracker();
    tr.apply(&doc(
        "m5",
        None,
        D::DischargeSummary,
        at("10T17:00"),
        Some(NHS),
    ));
    let fx = tr.apply(&end("m4", "V2", K::Inpatient, at("11T18:00"), NHS));
    assert_eq!(changed(&fx).last().unwrap().status, S::OnTime);
}

/// A discharge recorded under a temporary record with no NHS number, then
/// merged into the traced patient: the expectation takes the survivor's
/// NHS number, so a summary carrying only that number (and no visit) meets
/// it; and a summary that came first under the traced record, waiting,
/// is taken when the merge re-keys the expectation.
#[test]
fn a_merge_gives_a_temporary_record_the_survivors_number_and_its_waiting_summary() {
    for summary_first in [false, true] {
        let mut tr = tracker();
        let mut e = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
        e.patient.nhs_number = None;
        tr.apply(&with_local(e, "RXX", "TEMP1"));
        let summary = doc(
            "m3",
            None,
            D::DischargeSummary,
            t("2024-01-10T15:00:00Z"),
            Some(NHS),
        );
        if summary_first {
            let fx = tr.apply(&summary);
            assert!(changed(&fx).is_empty(), "no patient in common yet");
        }
        let mut m = merge("m2", NHS, NHS, t("2024-01-10T14:00:00Z"));
        let mm = m.merge.as_mut().unwrap();
        mm.prior_nhs_number = None;
        mm.prior_local_ids = vec![tocsin_event::Identifier {
            system: "RXX".into(),
            value: "TEMP1".into(),
        }];
        let m = with_local(m, "RXX", "REAL1");
        let fx = tr.apply(&m);
        let fx = if summary_first {
            fx
        } else {
            tr.apply(&summary)
        };
        let settled = changed(&fx);
        assert_eq!(
            settled.last().map(|e| e.status),
            Some(S::OnTime),
            "summary first: {summary_first}: {fx:?}"
        );
        assert_eq!(tr.open_count(), 0);
    }
}

/// Each system numbers its own messages: the EPR's summary that happens to
/// carry the PAS discharge's message id is no duplicate of it. A resend of
/// the same message still is.
#[test]
fn a_message_id_repeated_by_another_kind_of_message_is_no_duplicate() {
    let mut tr = tracker();
    let mut a03 = end("1000", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
    a03.source.message_type = "ADT^A03".into();
    tr.apply(&a03);
    let mut mdm = doc(
        "1000",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        Some(NHS),
    );
    mdm.source.message_type = "MDM^T02".into();
    let fx = tr.apply(&mdm);
    assert_eq!(changed(&fx)[0].status, S::OnTime, "{fx:?}");
    assert_eq!(tr.counters().duplicates, 0);
    tr.apply(&mdm);
    assert_eq!(tr.counters().duplicates, 1);
}

/// Two systems behind one sending facility (MSH-4), each numbering its own
/// messages: the letters system's summary that carries the EPR's message id
/// and type is no duplicate of the EPR's, told apart by MSH-3. A resend
/// from either still is.
#[test]
fn a_message_id_repeated_by_another_application_of_the_facility_is_no_duplicate() {
    let mut tr = tracker();
    let ended = t("2024-01-10T10:00:00Z");
    tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS));
    tr.apply(&end("m2", "V2", K::Outpatient, ended, NHS2));
    let from = |app: &str, visit: &str, kind: D, nhs: &str| {
        let mut e = doc(
            "2000",
            Some(visit),
            kind,
            t("2024-01-10T15:00:00Z"),
            Some(nhs),
        );
        e.source.message_type = "MDM^T02".into();
        e.source.sending_facility = Some("RXX01".into());
        e.source.sending_application = Some(app.into());
        e
    };
    let epr = from("EPR", "V1", D::DischargeSummary, NHS);
    let letters = from("LETTERS", "V2", D::ClinicLetter, NHS2);
    assert_eq!(changed(&tr.apply(&epr))[0].status, S::OnTime);
    let fx = tr.apply(&letters);
    assert_eq!(changed(&fx)[0].status, S::OnTime, "{fx:?}");
    assert_eq!(tr.counters().duplicates, 0);
    tr.apply(&letters);
    tr.apply(&epr);
    assert_eq!(tr.counters().duplicates, 2);
    assert_eq!(tr.open_count(), 0);
}

/// A sender whose template never renews its message id sends every
/// patient's summary under one id: each is a message of its own (its
/// patient, visit and document differ), not a duplicate of the first, and
/// settles its own discharge. A resend of any of them still is a duplicate.
#[test]
fn one_message_id_reused_for_other_patients_documents_is_no_duplicate() {
    let mut tr = tracker();
    let ended = t("2024-01-10T10:00:00Z");
    tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS));
    tr.apply(&end("m2", "V2", K::Inpatient, ended, NHS2));
    let summary = |visit: &str, nhs: &str, id: &str| {
        let mut e = doc(
            "TEMPLATE-ID",
            Some(visit),
            D::DischargeSummary,
            t("2024-01-10T15:00:00Z"),
            Some(nhs),
        );
        e.document.as_mut().unwrap().id = id.into();
        e
    };
    let first = summary("V1", NHS, "DOC-1");
    let second = summary("V2", NHS2, "DOC-2");
    assert_eq!(changed(&tr.apply(&first))[0].status, S::OnTime);
    let fx = tr.apply(&second);
    assert_eq!(changed(&fx)[0].status, S::OnTime, "{fx:?}");
    assert_eq!(tr.counters().duplicates, 0);
    assert_eq!(tr.open_count(), 0);
    tr.apply(&second);
    tr.apply(&first);
    assert_eq!(tr.counters().duplicates, 2);
}

/// A13 then A03 is how a PAS corrects a discharge time. When the summary
/// was already sent, the corrected discharge is judged against it (on
/// time here), not opened again as owed; a discharge recorded again long
/// after (the patient stayed, went home days later) is owed its own.
#[test]
fn a_corrected_discharge_keeps_the_summary_already_sent() {
    for (again, owed) in [
        ("2024-01-10T14:30:00Z", false),
        ("2024-01-20T10:00:00Z", true),
    ] {
        let mut tr = tracker();
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T14:00:00Z"),
            NHS,
        ));
        tr.apply(&doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T16:00:00Z"),
            Some(NHS),
        ));
        tr.apply(&cancel(
            "m3",
            EventType::EncounterDischargeCancelled,
            "V1",
            t("2024-01-10T16:30:00Z"),
        ));
        let fx = tr.apply(&end("m4", "V1", K::Inpatient, t(again), NHS));
        let later = tr.advance_to(t("2024-02-01T00:00:00Z"));
        if owed {
            assert_eq!(tr.open_count(), 1, "{again}");
            assert_eq!(kinds(&later), vec![A::Overdue], "{again}");
        } else {
            let settled = changed(&fx);
            let last = settled.last().expect("settled");
            assert_eq!(last.status, S::OnTime, "{fx:?}");
            assert_eq!(last.encounter.ended_at, t(again));
            assert_eq!(
                last.settlement.as_ref().unwrap().matched_by,
                MatchMethod::EncounterId
            );
            assert_eq!(tr.open_count(), 0);
            assert!(kinds(&later).is_empty(), "{later:?}");
        }
    }
}

/// A refusal read a moment before the summary it names (the engine copies
/// the outbound message to tocsin after the GP system has answered) is
/// held for the allowed lateness: the summary meets it, and
/// `delivery_failed` is raised, with the refusal's codes, whether the
/// summary settles at once or waits for its discharge, and after a restart
/// in between.
#[test]
fn an_acknowledgement_read_before_its_document_still_reaches_it() {
    let config = TrackerConfig {
        allowed_lateness: ConfigDuration::minutes(5),
        ..TrackerConfig::default()
    };
    for (summary_first, restart) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut tr = Tracker::new(Policy::default_contract(), config.clone());
        let mut store = Store::default();
        let discharge = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
        let summary = doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T12:00:00Z"),
            Some(NHS),
        );
        if !summary_first {
            store.commit(&tr.apply(&discharge));
        }
        let mut fx = Vec::new();
        if summary_first {
            fx.extend(tr.apply(&summary));
        }
        fx.extend(tr.apply(&ack("a1", "m2", true, t("2024-01-10T12:00:01Z"))));
        store.commit(&fx);
        assert!(kinds(&fx).is_empty());
        if restart {
            tr = Tracker::restore(
                Policy::default_contract(),
                config.clone(),
                store.all(),
                store.records(),
            )
            .expect("restores");
        }
        let fx = tr.apply(if summary_first { &discharge } else { &summary });
        assert_eq!(
            kinds(&fx),
            vec![A::DeliveryFailed],
            "summary first: {summary_first}, restart: {restart}: {fx:?}"
        );
        assert_eq!(alerts(&fx)[0].failure, Some(ack_failure()));
        assert_eq!(
            changed(&fx).last().unwrap().delivery,
            Some(DeliveryStatus::Failed)
        );
        tr.advance_to(t("2024-01-11T00:00:00Z"));
        assert_eq!(tr.counters().acks_unmatched, 0);
    }
}

/// An A13 after the summary settled the discharge acts on it (the
/// discharge may be recorded again): it is no unmatched cancellation.
#[test]
fn a_cancellation_of_a_settled_discharge_is_not_counted_unmatched() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        Some(NHS),
    ));
    tr.apply(&cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        t("2024-01-10T16:00:00Z"),
    ));
    assert_eq!(tr.counters().cancellations_unmatched, 0);
    tr.apply(&cancel(
        "m4",
        EventType::EncounterDischargeCancelled,
        "V9",
        t("2024-01-10T16:01:00Z"),
    ));
    assert_eq!(tr.counters().cancellations_unmatched, 1);
}

/// Document numbers collide across systems and patients: another
/// patient's summary that carries the refused summary's document id is no
/// resend of it. It settles its own patient's discharge, and its
/// acceptance leaves the first patient's failure standing (before, it was
/// taken for the resend: its own patient's discharge went overdue and the
/// refused summary was reported delivered).
#[test]
fn another_patients_document_under_a_refused_documents_id_is_no_resend() {
    let mut tr = tracker();
    let mut store = Store::default();
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let summary = |msg: &str, visit: &str, nhs: &str, time: &str| {
        let mut d = doc(msg, Some(visit), D::DischargeSummary, at(time), Some(nhs));
        d.document.as_mut().unwrap().id = "DOC-1".into();
        d
    };
    store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS)));
    store.commit(&tr.apply(&end("m2", "W7", K::Inpatient, at("10:30:00"), NHS2)));
    store.commit(&tr.apply(&summary("d1", "V1", NHS, "12:00:00")));
    let fx = tr.apply(&ack("a1", "d1", true, at("12:01:00")));
    assert_eq!(kinds(&fx), [A::DeliveryFailed]);
    store.commit(&fx);

    let fx = tr.apply(&summary("d2", "W7", NHS2, "13:00:00"));
    let settled = changed(&fx);
    assert_eq!(settled.len(), 1, "{fx:?}");
    assert_eq!(settled[0].encounter.id.as_deref(), Some("W7"));
    assert_eq!(settled[0].status, S::OnTime);
    assert_eq!(tr.counters().deliveries_resent, 0);
    store.commit(&fx);

    let fx = tr.apply(&ack("a2", "d2", false, at("13:01:00")));
    let acked = changed(&fx);
    assert_eq!(acked.len(), 1, "{fx:?}");
    assert_eq!(acked[0].encounter.id.as_deref(), Some("W7"));
    assert_eq!(acked[0].delivery, Some(DeliveryStatus::Acknowledged));
    store.commit(&fx);
    assert_eq!(tr.open_count(), 0);
    let delivery = |visit: &str| {
        let e = store
            .all()
            .into_iter()
            .find(|e| e.encounter.id.as_deref() == Some(visit));
        e.and_then(|e| e.delivery)
    };
    assert_eq!(delivery("V1"), Some(DeliveryStatus::Failed));
    assert_eq!(delivery("W7"), Some(DeliveryStatus::Acknowledged));
}

/// A summary the GP system refused, sent again by the engine once the
/// fault is mended (same document, another message id): the resend is the
/// transmission the expectation waits on, so its acceptance clears the
/// failure, with or without a restart in between. The refused one's late
/// acknowledgement no longer counts; a refused resend raises nothing new.
#[test]
fn a_refused_summary_sent_again_and_accepted_clears_the_failure() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
        let first = doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            at("12:00:00"),
            Some(NHS),
        );
        let mut again = doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            at("14:00:00"),
            Some(NHS),
        );
        again.document = first.document.clone();
        again.document.as_mut().unwrap().issued_at = at("14:00:00");
        store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS)));
        store.commit(&tr.apply(&first));
        let fx = tr.apply(&ack("a1", "m2", true, at("12:01:00")));
        assert_eq!(kinds(&fx), [A::DeliveryFailed]);
        store.commit(&fx);

        let fx = tr.apply(&again);
        assert!(kinds(&fx).is_empty(), "{fx:?}");
        let resent = changed(&fx);
        assert_eq!(resent.len(), 1, "{fx:?}");
        assert_eq!(resent[0].delivery, Some(DeliveryStatus::Pending));
        let settlement = resent[0].settlement.as_ref().unwrap();
        assert_eq!(
            (settlement.message_id.as_str(), settlement.issued_at),
            ("m2", at("12:00:00")),
            "the first transmission still counts"
        );
        assert_eq!(resent[0].status, S::OnTime);
        assert_eq!(tr.counters().deliveries_resent, 1);
        assert_eq!(tr.counters().documents_repeated, 0);
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }

        // A late copy of the first refusal reaches nothing now.
        let fx = tr.apply(&ack("a2", "m2", true, at("14:00:30")));
        assert!(
            changed(&fx).is_empty() && kinds(&fx).is_empty(),
            "restart {restart}: {fx:?}"
        );
        let fx = tr.apply(&ack("a3", "m3", false, at("14:01:00")));
        assert!(kinds(&fx).is_empty(), "{fx:?}");
        let last = changed(&fx);
        assert_eq!(last.len(), 1, "restart {restart}: {fx:?}");
        assert_eq!(last[0].delivery, Some(DeliveryStatus::Acknowledged));
        assert_eq!(last[0].alerts_raised, [A::DeliveryFailed]);
        tr.advance_to(at("23:00:00"));
        assert_eq!(tr.counters().acks_unmatched, 1, "restart {restart}");
    }

    // A resend refused too: failed again, no second alert; a third copy
    // is the next resend.
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let copy = |msg: &str, time: &str| {
        let mut d = doc(msg, Some("V1"), D::DischargeSummary, at(time), Some(NHS));
        d.document.as_mut().unwrap().id = "DOC-S".into();
        d
    };
    tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS));
    tr.apply(&copy("m2", "12:00:00"));
    tr.apply(&ack("a1", "m2", true, at("12:01:00")));
    tr.apply(&copy("m3", "13:00:00"));
    let fx = tr.apply(&ack("a2", "m3", true, at("13:01:00")));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Failed));
    tr.apply(&copy("m4", "15:00:00"));
    let fx = tr.apply(&ack("a3", "m4", false, at("15:01:00")));
    assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Acknowledged));
    assert_eq!(tr.counters().deliveries_resent, 2);
    // A copy of a summary whose delivery did not fail is a repeat, as before.
    tr.apply(&copy("m5", "16:00:00"));
    assert_eq!(tr.counters().documents_repeated, 1);
    assert_eq!(tr.counters().deliveries_resent, 2);
}

/// A summary refused (HL7 AE, an ITK3 `transient-error`) and sent again
/// by the engine under the same message id, which tocsin drops as an
/// exact duplicate: the acceptance that follows, timed after the refusal,
/// clears the failure, with or without a restart in between (before, the
/// failure was final for its transmission and TocsinDeliveryFailed fired
/// for a day after the GP system had the summary). An acceptance timed
/// before the refusal (a commit accept read after it) does not; a refusal
/// of the retry fails it again without a second alert.
#[test]
fn a_refusal_then_an_acceptance_of_the_same_message_sent_again_clears_the_failure() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
        store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS)));
        let summary = doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            at("12:00:00"),
            Some(NHS),
        );
        store.commit(&tr.apply(&summary));
        let fx = tr.apply(&ack("a1", "m2", true, at("12:05:00")));
        assert_eq!(kinds(&fx), [A::DeliveryFailed]);
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }
        // The retry itself: an exact duplicate, changing nothing.
        assert!(tr.apply(&summary).is_empty());
        assert_eq!(tr.counters().duplicates, 1);

        // Accepted before the refusal: a commit accept read late.
        let fx = tr.apply(&ack("a2", "m2", false, at("12:04:00")));
        assert!(changed(&fx).is_empty(), "restart {restart}: {fx:?}");
        assert_eq!(tr.counters().deliveries_resent, 0);

        let fx = tr.apply(&ack("a3", "m2", false, at("13:00:00")));
        assert!(kinds(&fx).is_empty(), "{fx:?}");
        let cleared = changed(&fx);
        assert_eq!(cleared.len(), 1, "restart {restart}: {fx:?}");
        assert_eq!(cleared[0].delivery, Some(DeliveryStatus::Acknowledged));
        assert_eq!(cleared[0].alerts_raised, [A::DeliveryFailed]);
        assert_eq!(tr.counters().deliveries_resent, 1);
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }

        // Refused again (another retry): failed, no second alert; accepted
        // again after that, cleared again.
        let fx = tr.apply(&ack("a4", "m2", true, at("14:00:00")));
        assert!(kinds(&fx).is_empty(), "restart {restart}: {fx:?}");
        assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Failed));
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }
        let fx = tr.apply(&ack("a5", "m2", false, at("13:30:00")));
        assert!(changed(&fx).is_empty(), "restart {restart}: {fx:?}");
        let fx = tr.apply(&ack("a6", "m2", false, at("14:30:00")));
        assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Acknowledged));
        assert_eq!(tr.counters().acks_unmatched, 0);

        // A copy of the document now is a repeat, not a resend: the
        // failure it would answer is gone.
        let mut copy = doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            at("15:00:00"),
            Some(NHS),
        );
        copy.document = summary.document.clone();
        tr.apply(&copy);
        assert_eq!(tr.counters().documents_repeated, 1, "restart {restart}");
    }
}

/// The acknowledgements of one summary judge the same whatever order they
/// are read in, before or after the summary and its discharge, with a
/// restart after any message. A commit accept, the GP system's refusal,
/// then its acceptance of the engine's resend under the same message id:
/// `delivery_failed` is raised once, at the refusal's time (no earlier
/// than the discharge), and the delivery ends accepted (before, a refusal
/// read after the later acceptance stood, and acknowledgements held for a
/// document not yet settled kept only the refusal). The same with the
/// summary written before the discharge was recorded, the acknowledgements
/// held with it (before, they were judged at the discharge's time, so the
/// resend's acceptance no longer came after the refusal). A commit accept
/// then a refusal: failed (before, the accept moved up to the discharge
/// answered the refusal).
#[test]
fn acknowledgements_judge_alike_in_any_read_order() {
    let cfg = TrackerConfig {
        allowed_lateness: ConfigDuration::hours(2),
        ..strict()
    };
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let summary = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        at("12:00:00"),
        Some(NHS),
    );
    // The discharge ended at `ended`, the summary, then each
    // acknowledgement `(refused, at)`.
    let traffic = |ended: &str, acks: &[(bool, &str)]| {
        let mut events = vec![
            end("m1", "V1", K::Inpatient, at(ended), NHS),
            summary.clone(),
        ];
        for (i, (refused, when)) in acks.iter().enumerate() {
            events.push(ack(&format!("a{i}"), "m2", *refused, at(when)));
        }
        events
    };
    let accept_refuse_accept = [(false, "12:04:00"), (true, "12:05:00"), (false, "13:00:00")];
    let accepted = Some(DeliveryStatus::Acknowledged);
    let scenarios = [
        (
            traffic("10:00:00", &accept_refuse_accept),
            at("12:05:00"),
            accepted,
            1,
        ),
        (
            traffic("14:00:00", &accept_refuse_accept),
            at("14:00:00"),
            accepted,
            1,
        ),
        (
            traffic("14:00:00", &[(false, "12:05:00"), (true, "13:00:00")]),
            at("14:00:00"),
            Some(DeliveryStatus::Failed),
            0,
        ),
    ];
    for (events, raised_at, delivery, resent) in scenarios {
        let judge = |order: &[usize], restart_after: Option<usize>| {
            let mut tr = Tracker::new(Policy::default_contract(), cfg.clone());
            let mut store = Store::default();
            let mut raised = Vec::new();
            for (n, &i) in order.iter().enumerate() {
                let fx = tr.apply(&events[i]);
                raised.extend(alerts(&fx));
                store.commit(&fx);
                if restart_after == Some(n) {
                    tr = Tracker::restore(
                        Policy::default_contract(),
                        cfg.clone(),
                        store.all(),
                        store.records(),
                    )
                    .expect("restores");
                }
            }
            let fx = tr.advance_to(at("23:00:00"));
            raised.extend(alerts(&fx));
            store.commit(&fx);
            let alerts: Vec<_> = raised
                .into_iter()
                .map(|a| (a.kind, a.raised_at, a.failure))
                .collect();
            let exp: Vec<_> = store
                .expectations
                .values()
                .map(|e| (e.status, e.delivery, e.alerts_raised.clone()))
                .collect();
            let c = tr.counters();
            (alerts, exp, c.deliveries_resent, c.acks_unmatched)
        };
        let n = events.len();
        let in_time_order = judge(&[0, 1, 2, 3, 4][..n], None);
        assert_eq!(
            in_time_order.0,
            [(A::DeliveryFailed, raised_at, Some(ack_failure()))]
        );
        assert_eq!(
            in_time_order.1,
            [(S::OnTime, delivery, vec![A::DeliveryFailed])]
        );
        assert_eq!((in_time_order.2, in_time_order.3), (resent, 0));
        let mut order: Vec<usize> = (0..n).collect();
        let mut seen = 0;
        permute(&mut order, 0, &mut |order| {
            seen += 1;
            assert_eq!(judge(order, None), in_time_order, "order {order:?}");
            // Counters start again at a restart: the alerts and the stored
            // expectation are what must come out the same.
            for restart_after in 0..n - 1 {
                let (alerts, exp, ..) = judge(order, Some(restart_after));
                assert_eq!(
                    (alerts, exp),
                    (in_time_order.0.clone(), in_time_order.1.clone()),
                    "order {order:?}, restart after message {restart_after}"
                );
            }
        });
        assert_eq!(seen, (1..=n).product::<usize>());
    }
}

/// A store written before every held acknowledgement was kept holds one
/// per waiting document (`delivery`, `failed_at`, `failure`) and one
/// object per early acknowledgement: both still restore, and the refusal
/// they hold raises its `delivery_failed`, at its time with its codes,
/// when its summary settles.
#[test]
fn acknowledgements_held_in_records_of_older_stores_still_apply() {
    let cfg = TrackerConfig {
        allowed_lateness: ConfigDuration::hours(2),
        ..strict()
    };
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let summary = |m: &str, visit: &str| {
        doc(
            m,
            Some(visit),
            D::DischargeSummary,
            at("12:00:00"),
            Some(NHS),
        )
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg.clone());
    let mut store = Store::default();
    // A summary waiting for its discharge, refused meanwhile; a refusal
    // read before the summary it names.
    store.commit(&tr.apply(&summary("m2", "V1")));
    store.commit(&tr.apply(&ack("a1", "m2", true, at("12:05:00"))));
    store.commit(&tr.apply(&ack("a2", "m3", true, at("12:06:00"))));
    let old_form = |ns: &str, v: serde_json::Value| -> serde_json::Value {
        if ns == "early_ack" {
            return v[0].clone();
        }
        let mut v = v;
        let held = v["acks"][0].clone();
        let o = v.as_object_mut().unwrap();
        o.remove("acks");
        o.insert("delivery".into(), "failed".into());
        o.insert("failed_at".into(), held["at"].clone());
        o.insert("failure".into(), held["failure"].clone());
        v
    };
    let mut rewritten = 0;
    for ((ns, _), text) in store.state.iter_mut() {
        if ns == "early_ack" || ns == "pending_document" {
            let v: serde_json::Value = text.decode().unwrap();
            *text = tocsin_tracker::JsonText::of(&old_form(ns, v));
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 2, "{:?}", store.state.keys());
    let mut tr = Tracker::restore(
        Policy::default_contract(),
        cfg,
        store.all(),
        store.records(),
    )
    .expect("restores");
    for (visit, first, refused) in [("V1", None, "12:05:00"), ("V2", Some("m3"), "12:06:00")] {
        let mut fx = tr.apply(&end(
            &format!("e{visit}"),
            visit,
            K::Inpatient,
            at("10:00:00"),
            NHS,
        ));
        if let Some(m) = first {
            fx.extend(tr.apply(&summary(m, visit)));
        }
        let raised = alerts(&fx);
        assert_eq!(raised.len(), 1, "{visit}: {fx:?}");
        assert_eq!(
            (
                raised[0].kind,
                raised[0].raised_at,
                raised[0].failure.clone()
            ),
            (A::DeliveryFailed, at(refused), Some(ack_failure())),
            "{visit}"
        );
    }
}

/// A receiver that answers one message dozens of times (each
/// acknowledgement held while the summary waits for its discharge) cannot
/// crowd out its refusal: past the sixteen held, an acceptance followed by
/// another is let go, never a refusal (before, the refusal read after
/// sixteen commit accepts was dropped and the delivery counted accepted).
#[test]
fn a_refusal_among_many_held_acceptances_is_kept() {
    let at = |m: u32| t("2024-01-10T12:00:00Z") + chrono::Duration::minutes(i64::from(m));
    for (refused_at, last_accepted, delivery) in [
        (40, 30, DeliveryStatus::Failed),
        (10, 30, DeliveryStatus::Acknowledged),
    ] {
        let mut tr = tracker();
        tr.apply(&doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            at(0),
            Some(NHS),
        ));
        for m in 1..=last_accepted {
            tr.apply(&ack(&format!("a{m}"), "m2", false, at(m)));
        }
        tr.apply(&ack("r", "m2", true, at(refused_at)));
        let fx = tr.apply(&end("m1", "V1", K::Inpatient, at(50), NHS));
        assert_eq!(kinds(&fx), [A::DeliveryFailed], "refused at {refused_at}");
        assert_eq!(changed(&fx).last().unwrap().delivery, Some(delivery));
        assert_eq!(tr.counters().acks_unmatched, 0);
    }
}

/// A refusal read after the discharge it concerns was cancelled (A13),
/// timed before the A13, the discharge never recorded again: it waits with
/// the revived summary, and when that expires it is counted
/// `ack_unmatched` (it went without a word). The acceptance the summary
/// carried from its transmission, applied when it first settled, is not
/// counted.
#[test]
fn a_refusal_left_with_a_revived_summary_is_counted_when_it_expires() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-{s}Z"));
    tr.apply(&end("m1", "V1", K::Inpatient, at("15T10:00:00"), NHS));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        at("16T09:30:00"),
        Some(NHS),
    ));
    tr.apply(&ack("a1", "m2", false, at("16T09:31:00")));
    tr.apply(&cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        at("16T12:00:00"),
    ));
    tr.apply(&ack("a2", "m2", true, at("16T09:35:00")));
    assert_eq!(tr.counters().acks_unmatched, 0);
    tr.advance_to(t("2024-03-01T00:00:00Z"));
    assert_eq!(tr.counters().pending_expired, 1);
    assert_eq!(tr.counters().acks_unmatched, 1);
}

/// Calls `f` with every ordering of `xs[k..]` (Heap's algorithm would do;
/// this is the plain recursive one).
fn permute(xs: &mut [usize], k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == xs.len() {
        f(xs);
        return;
    }
    for i in k..xs.len() {
        xs.swap(k, i);
        permute(xs, k + 1, f);
        xs.swap(k, i);
    }
}

/// A refused summary matched by patient (no visit number), the patient
/// readmitted and discharged again, then the summary sent again: it is the
/// refused one's resend, and settles nothing of the readmission (before, it
/// settled the second discharge by patient and window, and the first
/// stayed failed).
#[test]
fn a_resend_goes_to_the_refused_expectation_before_any_open_one() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-{s}Z"));
    let copy = |msg: &str, time: &str| {
        let mut d = doc(msg, None, D::DischargeSummary, at(time), Some(NHS));
        d.document.as_mut().unwrap().id = "DOC-T".into();
        d
    };
    tr.apply(&end("m1", "VT1", K::Inpatient, at("15T14:00:00"), NHS));
    let fx = tr.apply(&copy("t2", "16T09:30:00"));
    let first = changed(&fx).pop().unwrap();
    assert_eq!(
        first.settlement.unwrap().matched_by,
        MatchMethod::PatientWindow
    );
    assert_eq!(
        kinds(&tr.apply(&ack("a1", "t2", true, at("16T09:35:00")))),
        [A::DeliveryFailed]
    );
    tr.apply(&end("m3", "VT2", K::Inpatient, at("16T20:00:00"), NHS));
    let fx = tr.apply(&copy("t5", "16T21:00:00"));
    assert_eq!(tr.counters().deliveries_resent, 1);
    let resent = changed(&fx);
    assert_eq!(resent.len(), 1, "{fx:?}");
    assert_eq!(resent[0].id, first.id);
    assert_eq!(
        tr.open_count(),
        1,
        "the readmission still waits for its own"
    );
    let fx = tr.apply(&ack("a2", "t5", false, at("16T21:05:00")));
    let done = changed(&fx).pop().unwrap();
    assert_eq!(
        (done.id, done.delivery),
        (first.id, Some(DeliveryStatus::Acknowledged))
    );
}

/// The summary, its refusal, the engine's resend and the resend's
/// acceptance all read before the discharge: when the discharge comes,
/// the first copy settles it, refused, and the second is its resend,
/// accepted, as in time order (before, the resend waited until it expired
/// unmatched and the delivery stayed failed). A third copy after the
/// acceptance is a repeat.
#[test]
fn copies_waiting_for_their_discharge_are_taken_as_resends_in_issue_order() {
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let copy = |msg: &str, time: &str| {
        let mut d = doc(msg, Some("V1"), D::DischargeSummary, at(time), Some(NHS));
        d.document.as_mut().unwrap().id = "DOC-S".into();
        d
    };
    let discharge = end("m1", "V1", K::Inpatient, at("09:00:00"), NHS);
    let before = [
        copy("m2", "09:30:00"),
        ack("a1", "m2", true, at("09:35:00")),
        copy("m4", "09:36:00"),
        ack("a2", "m4", false, at("09:37:00")),
        copy("m6", "09:40:00"),
    ];
    // Read in time order, the discharge first...
    let mut in_order = tracker();
    let mut fx = in_order.apply(&discharge);
    for e in &before {
        fx.extend(in_order.apply(e));
    }
    // ...and with the discharge read last.
    let mut late = tracker();
    let mut fx_late = Vec::new();
    for e in &before {
        fx_late.extend(late.apply(e));
    }
    fx_late.extend(late.apply(&discharge));
    for (name, tr, fx) in [
        ("in order", &in_order, &fx),
        ("discharge last", &late, &fx_late),
    ] {
        assert_eq!(kinds(fx), [A::DeliveryFailed], "{name}");
        let last = changed(fx).pop().unwrap();
        assert_eq!(last.delivery, Some(DeliveryStatus::Acknowledged), "{name}");
        assert_eq!(last.settlement.unwrap().message_id, "m2", "{name}");
        assert_eq!(tr.counters().deliveries_resent, 1, "{name}");
        assert_eq!(tr.counters().documents_repeated, 1, "{name}");
        assert_eq!(tr.pending_document_count(), 0, "{name}");
    }
}

/// A summary refused, its discharge cancelled (A13) and recorded again:
/// the summary settles the discharge recorded again carrying its failure,
/// and `delivery_failed`, told once, is not raised a second time.
#[test]
fn a_refused_summary_revived_by_a13_does_not_raise_delivery_failed_again() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        at("12:00:00"),
        Some(NHS),
    ));
    assert_eq!(
        kinds(&tr.apply(&ack("a1", "m2", true, at("12:01:00")))),
        [A::DeliveryFailed]
    );
    tr.apply(&cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        at("13:00:00"),
    ));
    let fx = tr.apply(&end("m4", "V1", K::Inpatient, at("11:00:00"), NHS));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    let last = changed(&fx).pop().unwrap();
    assert_eq!(last.delivery, Some(DeliveryStatus::Failed));
    assert!(last.alerts_raised.contains(&A::DeliveryFailed));
}

/// A summary whose discharge was cancelled (A13) waits again; a refusal
/// read while it waits was never told, so the discharge recorded again
/// raises `delivery_failed` for it, once (before, the revived summary was
/// taken to have told its refusal already: the report counted a failed
/// delivery no alert had named).
#[test]
fn a_refusal_read_while_a_revived_summary_waits_is_raised_once() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS));
    let summary = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        at("12:00:00"),
        Some(NHS),
    );
    assert_eq!(changed(&tr.apply(&summary))[0].status, S::OnTime);
    let a13 = cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        at("12:30:00"),
    );
    tr.apply(&a13);
    let fx = tr.apply(&ack("a1", "m2", true, at("12:35:00")));
    assert!(
        kinds(&fx).is_empty(),
        "told when the discharge is recorded again: {fx:?}"
    );
    let fx = tr.apply(&end("m4", "V1", K::Inpatient, at("11:00:00"), NHS));
    assert_eq!(kinds(&fx), [A::DeliveryFailed], "{fx:?}");
    let last = changed(&fx).pop().unwrap();
    assert_eq!(last.delivery, Some(DeliveryStatus::Failed));
    let again = cancel(
        "m5",
        EventType::EncounterDischargeCancelled,
        "V1",
        at("13:00:00"),
    );
    tr.apply(&again);
    let fx = tr.apply(&end("m6", "V1", K::Inpatient, at("11:30:00"), NHS));
    assert!(kinds(&fx).is_empty(), "raised once: {fx:?}");
}

/// A late summary, its discharge cancelled (A13) and recorded again: the
/// summary settles the discharge recorded again, under the same id, and
/// its `late` (and the `overdue` and `resolved` before it) are not raised
/// a second time (a second `late` under one alert id went out before).
#[test]
fn a_late_summary_revived_by_a13_does_not_raise_late_again() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-1{s}Z"));
    tr.apply(&end("m1", "V1", K::Inpatient, at("0T10:00:00"), NHS));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        at("1T12:00:00"),
        Some(NHS),
    ));
    assert_eq!(kinds(&fx), [A::Overdue, A::Late, A::Resolved]);
    let a13 = cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        at("1T12:30:00"),
    );
    tr.apply(&a13);
    let fx = tr.apply(&end("m4", "V1", K::Inpatient, at("0T11:00:00"), NHS));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    let last = changed(&fx).pop().unwrap();
    assert_eq!(last.status, S::Late);
    assert_eq!(last.encounter.ended_at, at("0T11:00:00"));
}

/// The engine resends a refused summary (another message id) while the PAS
/// corrects the discharge (A13 then A03): the resend waits with the revived
/// summary and is taken as its resend when the discharge is recorded
/// again, so its acceptance clears the failure (before, it was counted a
/// repeat, its acceptance unmatched, and the failure stood).
#[test]
fn a_resend_read_while_a_revived_summary_waits_clears_its_failure() {
    for accepted_before_the_end in [false, true] {
        let mut tr = tracker();
        let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
        tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS));
        tr.apply(&doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            at("12:00:00"),
            Some(NHS),
        ));
        assert_eq!(
            kinds(&tr.apply(&ack("a1", "m2", true, at("12:01:00")))),
            [A::DeliveryFailed]
        );
        tr.apply(&cancel(
            "m3",
            EventType::EncounterDischargeCancelled,
            "V1",
            at("12:30:00"),
        ));
        let mut resend = doc(
            "m4",
            Some("V1"),
            D::DischargeSummary,
            at("13:00:00"),
            Some(NHS),
        );
        resend.document.as_mut().unwrap().id = "DOC-m2".into();
        tr.apply(&resend);
        assert_eq!(tr.counters().documents_repeated, 0);
        let accept = ack("a2", "m4", false, at("13:01:00"));
        if accepted_before_the_end {
            tr.apply(&accept);
        }
        let mut fx = tr.apply(&end("m5", "V1", K::Inpatient, at("11:00:00"), NHS));
        if !accepted_before_the_end {
            fx.extend(tr.apply(&accept));
        }
        assert!(kinds(&fx).is_empty(), "{fx:?}");
        let last = changed(&fx).pop().unwrap();
        assert_eq!(last.delivery, Some(DeliveryStatus::Acknowledged), "{fx:?}");
        assert_eq!(
            last.settlement.unwrap().message_id,
            "m2",
            "first transmission counts"
        );
        assert_eq!(tr.counters().deliveries_resent, 1);
        assert_eq!(tr.counters().acks_unmatched, 0);
        assert_eq!(tr.pending_document_count(), 0);
    }
}

/// A refused transmission is remembered `ack_horizon` (7 days) after its
/// refusal, not its issue: a refusal that came six days after the summary
/// and the engine's resend two days later still meet, with or without a
/// restart in between (before, the transmission was forgotten 7 days after
/// the issue and the resend was a repeat, its acceptance unmatched). A
/// resend more than the horizon after the refusal is a repeat.
#[test]
fn a_refused_transmission_is_remembered_for_the_horizon_after_its_refusal() {
    for (restart, resent_on, resent) in [
        (false, "18", true),
        (true, "18", true),
        (false, "24", false),
    ] {
        let mut tr = tracker();
        let mut store = Store::default();
        let at = |day: &str, time: &str| t(&format!("2024-01-{day}T{time}Z"));
        store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, at("10", "10:00:00"), NHS)));
        let first = doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            at("10", "12:00:00"),
            Some(NHS),
        );
        store.commit(&tr.apply(&first));
        let fx = tr.apply(&ack("a1", "m2", true, at("16", "12:00:00")));
        assert_eq!(kinds(&fx), [A::DeliveryFailed]);
        store.commit(&fx);
        if restart {
            store.commit(&tr.advance_to(at("17", "13:00:00")));
            tr = store.restored();
        }
        let mut again = doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            at(resent_on, "09:00:00"),
            Some(NHS),
        );
        again.document = first.document.clone();
        again.document.as_mut().unwrap().issued_at = at(resent_on, "09:00:00");
        store.commit(&tr.apply(&again));
        let fx = tr.apply(&ack("a2", "m3", false, at(resent_on, "09:01:00")));
        let cleared = changed(&fx).pop().map(|e| e.delivery);
        let context = format!("restart {restart}, resent on the {resent_on}th: {fx:?}");
        if resent {
            assert_eq!(
                cleared,
                Some(Some(DeliveryStatus::Acknowledged)),
                "{context}"
            );
            assert_eq!(tr.counters().deliveries_resent, 1, "{context}");
        } else {
            assert_eq!(cleared, None, "{context}");
            assert_eq!(tr.counters().documents_repeated, 1, "{context}");
        }
    }
}

/// A document that names an encounter whose expectation for its kind has
/// settled (an addendum, an amended version not named as a replacement, a
/// second letter) waits as any other, but expiring it is routine traffic,
/// counted `extra_document_expired`, not `pending_document_expired`,
/// which pages the operators. One naming an encounter never settled
/// expires as before.
#[test]
fn a_document_for_a_settled_encounter_expires_as_an_extra() {
    let at = |s: &str| t(&format!("2024-01-{s}Z"));
    for settled in [true, false] {
        let mut tr = tracker();
        tr.apply(&end("m1", "V1", K::Inpatient, at("10T10:00:00"), NHS));
        if settled {
            tr.apply(&doc(
                "m2",
                Some("V1"),
                D::DischargeSummary,
                at("10T12:00:00"),
                Some(NHS),
            ));
        }
        let visit = if settled { "V1" } else { "V9" };
        let extra = doc(
            "m3",
            Some(visit),
            D::DischargeSummary,
            at("11T09:00:00"),
            Some(NHS),
        );
        assert!(changed(&tr.apply(&extra)).is_empty());
        assert_eq!(tr.pending_document_count(), 1);
        tr.advance_to(t("2024-04-01T00:00:00Z"));
        assert_eq!(tr.pending_document_count(), 0);
        let c = tr.counters();
        let counted = (c.extras_expired, c.pending_expired);
        assert_eq!(counted, if settled { (1, 0) } else { (0, 1) });
    }
}

/// Two copies of one summary (the engine's, to the GP and to a second
/// recipient) both read before the discharge: the first settles it and the
/// second is a repeat, as had the discharge come first (before, the second
/// waited until it expired as `pending_document_expired`, which pages the
/// operators).
#[test]
fn a_second_copy_waiting_for_the_discharge_is_a_repeat() {
    let mut tr = tracker();
    let at = |s: &str| t(&format!("2024-01-10T{s}Z"));
    let copy = |msg: &str, time: &str| {
        let mut d = doc(msg, Some("V1"), D::DischargeSummary, at(time), Some(NHS));
        d.document.as_mut().unwrap().id = "DOC-1".into();
        d
    };
    tr.apply(&copy("d1", "09:00:00"));
    tr.apply(&copy("d2", "09:05:00"));
    assert_eq!(tr.pending_document_count(), 2);
    let fx = tr.apply(&end("m1", "V1", K::Inpatient, at("10:00:00"), NHS));
    let settled = changed(&fx).pop().unwrap();
    assert_eq!(settled.settlement.unwrap().message_id, "d1");
    assert_eq!(tr.pending_document_count(), 0);
    assert_eq!(tr.counters().documents_repeated, 1);
    tr.advance_to(t("2024-03-01T00:00:00Z"));
    assert_eq!(tr.counters().pending_expired, 0);
}

/// `delivery_failed` is raised at the failing acknowledgement's own time
/// (never before the document's issue), whatever else was read before it:
/// the same input gives the same alert whether read at once or over days.
#[test]
fn delivery_failed_is_raised_at_the_acknowledgements_time() {
    let ended = t("2024-01-10T10:00:00Z");
    let e = end("m1", "V1", K::Inpatient, ended, NHS);
    let d = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    );
    let nack = ack("a1", "m2", true, t("2024-01-10T12:01:00Z"));
    // A message stamped far later, read between the document and its ack.
    let other = doc("x1", None, D::Other, t("2024-01-10T18:00:00Z"), Some(NHS2));
    let lenient = || {
        Tracker::new(
            Policy::default_contract(),
            TrackerConfig {
                allowed_lateness: ConfigDuration::minutes(5),
                ..strict()
            },
        )
    };
    let raised = |events: &[&tocsin_event::InterfaceEvent]| {
        let mut tr = lenient();
        let fx: Vec<Effect> = events.iter().flat_map(|e| tr.apply(e)).collect();
        let failed: Vec<_> = alerts(&fx)
            .into_iter()
            .filter(|a| a.kind == A::DeliveryFailed)
            .map(|a| a.raised_at)
            .collect();
        failed
    };
    let at = t("2024-01-10T12:01:00Z");
    assert_eq!(raised(&[&e, &d, &nack]), [at]);
    assert_eq!(raised(&[&e, &d, &other, &nack]), [at]);
    // The document and its ack before the discharge: the ack waits with the
    // document and raises its alert, at its own time, when the end comes,
    // as read in the other order; so too when the end event is stamped
    // later than the end it states (it was raised at the end event's time,
    // read this way only).
    assert_eq!(raised(&[&d, &nack, &e]), [at]);
    let mut recorded_late = e.clone();
    recorded_late.occurred_at = t("2024-01-12T09:00:00Z");
    assert_eq!(raised(&[&d, &nack, &recorded_late]), [at]);
    assert_eq!(raised(&[&recorded_late, &d, &nack]), [at]);
    // An acknowledgement stamped before the document (clocks apart) is
    // raised at the document's issue.
    let early = ack("a2", "m2", true, t("2024-01-10T11:00:00Z"));
    assert_eq!(raised(&[&e, &d, &early]), [t("2024-01-10T12:00:00Z")]);
}

/// Live, the clock follows the wall clock less the allowed lateness, as it
/// follows an event's time: a document stamped within the lateness after
/// its deadline is `late` and never `overdue` first, live as in replay.
#[test]
fn the_live_clock_keeps_the_allowed_lateness() {
    let cfg = TrackerConfig {
        allowed_lateness: ConfigDuration::minutes(5),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let wall = t("2024-01-11T10:00:30Z");
    assert_eq!(tr.engine_time_at(wall), t("2024-01-11T09:55:30Z"));
    assert!(kinds(&tr.advance_to(tr.engine_time_at(wall))).is_empty());
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T10:02:00Z"),
        Some(NHS),
    ));
    assert_eq!(kinds(&fx), [A::Late]);
}

#[test]
fn duplicate_keys_are_forgotten_after_the_horizon() {
    let cfg = TrackerConfig {
        duplicate_horizon: ConfigDuration::days(1),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    let e = doc("m1", None, D::Other, t("2024-01-10T10:00:00Z"), Some(NHS));
    let mut store = Store::default();
    store.commit(&tr.apply(&e));
    assert_eq!(store.state.keys().filter(|(ns, _)| ns == "seen").count(), 1);
    let fx = tr.advance_to(t("2024-01-12T00:00:00Z"));
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::StateRangeDeleted(r) if r.namespace == "seen"))
    );
    store.commit(&fx);
    assert_eq!(
        store.state.keys().filter(|(ns, _)| ns == "seen").count(),
        0,
        "its stored key is in the range deleted"
    );
    // Its key is gone, but so is its time: it is ignored as stale, not re-applied.
    assert!(tr.apply(&e).is_empty());
    assert_eq!(
        (tr.counters().duplicates, tr.counters().stale_events),
        (0, 1)
    );
}

/// Keys are swept a 32nd of the horizon at a time; a key past the horizon
/// but not yet swept must judge as if it were gone, and its stored record
/// must not outlive the key that replaces it.
#[test]
fn a_message_id_reused_after_the_horizon_is_applied_before_its_old_key_is_swept() {
    let cfg = TrackerConfig {
        duplicate_horizon: ConfigDuration::days(1),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    let mut store = Store::default();
    let seen_keys = |s: &Store| s.state.keys().filter(|(ns, _)| ns == "seen").count();
    // Letters of a kind no rule expects: each one applied is counted.
    let letter = |msg: &str, at: &str| doc(msg, None, D::Other, t(at), Some(NHS));
    let applied = |tr: &Tracker| tr.counters().documents_untracked_kind;
    store.commit(&tr.apply(&letter("m1", "2024-01-10T10:00:00Z")));
    // The clock reaches a day later: m1's key is exactly at the horizon,
    // so it is live and survives this sweep.
    store.commit(&tr.apply(&letter("m2", "2024-01-11T10:00:00Z")));
    assert_eq!(seen_keys(&store), 2);
    // Twenty minutes on, m1's key is dead, but the next sweep is due only
    // when the horizon has moved 45 minutes past the last one: the key is
    // still held. The same message read again now is new, not a duplicate.
    store.commit(&tr.apply(&letter("m3", "2024-01-11T10:20:00Z")));
    assert_eq!(seen_keys(&store), 3, "no sweep yet");
    assert_eq!(applied(&tr), 3);
    let fx = tr.apply(&letter("m1", "2024-01-11T10:30:00Z"));
    assert_eq!(applied(&tr), 4, "m1 is applied again");
    assert_eq!(tr.counters().duplicates, 0);
    store.commit(&fx);
    assert_eq!(
        seen_keys(&store),
        3,
        "m1's old record went with its new one"
    );
    // Read again at once, it is a duplicate.
    tr.apply(&letter("m1", "2024-01-11T10:30:00Z"));
    assert_eq!(applied(&tr), 4);
    assert_eq!(tr.counters().duplicates, 1);
}

#[test]
fn matching_by_patient_takes_the_nearest_open_expectation_within_the_window() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "OP1",
        K::Outpatient,
        t("2024-01-01T10:00:00Z"),
        NHS,
    ));
    tr.apply(&end(
        "m2",
        "OP2",
        K::Outpatient,
        t("2024-01-05T10:00:00Z"),
        NHS,
    ));
    tr.apply(&end(
        "m3",
        "OP3",
        K::Outpatient,
        t("2024-01-05T11:00:00Z"),
        NHS2,
    ));
    // No encounter named: same NHS number and kind, nearest end (OP2).
    let fx = tr.apply(&doc(
        "m4",
        None,
        D::ClinicLetter,
        t("2024-01-06T10:00:00Z"),
        Some(NHS),
    ));
    let e = &changed(&fx)[0];
    assert_eq!(e.encounter.id.as_deref(), Some("OP2"));
    assert_eq!(
        e.settlement.as_ref().unwrap().matched_by,
        MatchMethod::PatientWindow
    );
    // A discharge summary does not settle a clinic letter expectation.
    let fx = tr.apply(&doc(
        "m5",
        None,
        D::DischargeSummary,
        t("2024-01-06T11:00:00Z"),
        Some(NHS),
    ));
    assert!(changed(&fx).is_empty());
    // Outside the window (more than 30 days after the end): no match, it waits.
    let fx = tr.apply(&doc(
        "m6",
        None,
        D::ClinicLetter,
        t("2024-02-05T10:00:00Z"),
        Some(NHS2),
    ));
    assert!(
        changed(&fx)
            .iter()
            .all(|e| e.encounter.id.as_deref() != Some("OP3") || e.status != S::OnTime)
    );
    // A document naming another encounter never settles this one by patient.
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "OP1",
        K::Outpatient,
        t("2024-01-01T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("OPX"),
        D::ClinicLetter,
        t("2024-01-02T10:00:00Z"),
        Some(NHS),
    ));
    assert!(changed(&fx).is_empty());
    assert_eq!(tr.pending_document_count(), 1);
}

/// A summary that names no visit number but gives its stay's end (a FHIR
/// Encounter's period, an MDM's PV1-45) is matched by patient to the stay
/// whose end is nearest that end, not nearest its issue: the late summary
/// of last week's stay, sent the morning a day case ended, settles last
/// week's stay, and the day case stays owed (before, it settled the day
/// case and last week's stay was reported missing).
#[test]
fn matching_by_patient_takes_the_stay_nearest_the_end_the_document_gives() {
    // Last week's inpatient stay, and this morning's day case.
    let two_stays = || {
        let mut tr = tracker();
        tr.apply(&end(
            "m1",
            "IP1",
            K::Inpatient,
            t("2024-01-08T10:00:00Z"),
            NHS,
        ));
        tr.apply(&end(
            "m2",
            "DC1",
            K::DayCase,
            t("2024-01-15T09:00:00Z"),
            NHS,
        ));
        tr
    };
    let mut tr = two_stays();
    let mut late = doc(
        "m3",
        None,
        D::DischargeSummary,
        t("2024-01-15T12:00:00Z"),
        Some(NHS),
    );
    late.encounter = Some(tocsin_event::Encounter {
        started_at: Some(t("2024-01-05T08:00:00Z")),
        ended_at: Some(t("2024-01-08T10:00:00Z")),
        ..Default::default()
    });
    let fx = tr.apply(&late);
    let settled = changed(&fx);
    assert_eq!(settled.len(), 1, "{fx:?}");
    assert_eq!(settled[0].encounter.id.as_deref(), Some("IP1"));
    assert_eq!(settled[0].status, S::Late);
    // Without its stay's end, or with one it could not have been issued in
    // the match window of (a junk PV1-45), the nearest to its issue: the
    // day case.
    for stated in [None, Some(t("1900-01-01T00:00:00Z"))] {
        let mut tr = two_stays();
        late.encounter = stated.map(|at| tocsin_event::Encounter {
            ended_at: Some(at),
            ..Default::default()
        });
        let settled = changed(&tr.apply(&late));
        assert_eq!(
            settled[0].encounter.id.as_deref(),
            Some("DC1"),
            "{stated:?}"
        );
    }
}

#[test]
fn matching_by_local_id_when_no_nhs_number() {
    let mut tr = tracker();
    let e = with_local(
        end("m1", "OP1", K::Outpatient, t("2024-01-01T10:00:00Z"), NHS),
        "MRN",
        "H123",
    );
    tr.apply(&e);
    let d = with_local(
        doc("m2", None, D::ClinicLetter, t("2024-01-02T10:00:00Z"), None),
        "MRN",
        "H123",
    );
    let fx = tr.apply(&d);
    assert_eq!(
        changed(&fx)[0].settlement.as_ref().unwrap().matched_by,
        MatchMethod::PatientWindow
    );
    let d = with_local(
        doc("m3", None, D::ClinicLetter, t("2024-01-02T10:00:00Z"), None),
        "OTHER",
        "H123",
    );
    assert!(changed(&tr.apply(&d)).is_empty());
}

/// An expectation without an NHS number (an A03 whose number failed its
/// check, a temporary record) meets a document that has both the number and
/// the same hospital number; two NHS numbers that differ never match, even
/// with a shared local id.
#[test]
fn matching_by_local_id_when_only_the_document_has_an_nhs_number() {
    let mut tr = tracker();
    let mut e = with_local(
        end("m1", "OP1", K::Outpatient, t("2024-01-01T10:00:00Z"), NHS),
        "MRN",
        "H123",
    );
    e.patient.nhs_number = None;
    tr.apply(&e);
    let d = with_local(
        doc(
            "m2",
            None,
            D::ClinicLetter,
            t("2024-01-02T10:00:00Z"),
            Some(NHS),
        ),
        "MRN",
        "H123",
    );
    let fx = tr.apply(&d);
    assert_eq!(
        changed(&fx)[0].settlement.as_ref().unwrap().matched_by,
        MatchMethod::PatientWindow
    );

    let mut tr = tracker();
    tr.apply(&with_local(
        end("m1", "OP1", K::Outpatient, t("2024-01-01T10:00:00Z"), NHS),
        "MRN",
        "H123",
    ));
    let d = with_local(
        doc(
            "m2",
            None,
            D::ClinicLetter,
            t("2024-01-02T10:00:00Z"),
            Some(NHS2),
        ),
        "MRN",
        "H123",
    );
    assert!(changed(&tr.apply(&d)).is_empty());
    assert_eq!(tr.open_count(), 1);
}

#[test]
fn matching_by_fhir_reference() {
    let mut tr = tracker();
    let mut e = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
    let enc = e.encounter.as_mut().unwrap();
    enc.id = None;
    enc.reference = Some("Encounter/abc".into());
    tr.apply(&e);
    let mut d = doc(
        "m2",
        None,
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        None,
    );
    d.encounter = Some(tocsin_event::Encounter {
        reference: Some("Encounter/abc".into()),
        ..Default::default()
    });
    let fx = tr.apply(&d);
    assert_eq!(
        changed(&fx)[0].settlement.as_ref().unwrap().matched_by,
        MatchMethod::FhirReference
    );
}

/// A document bundle's copy of the Encounter is named by its `urn:uuid:`
/// fullUrl, minted by that message: it says nothing about which encounter
/// `Encounter/e5` was, so the summary settles it by patient and window
/// (before, the unequal references counted as two encounters and the
/// discharge went overdue). Two resources' own addresses that differ still
/// name two encounters.
#[test]
fn a_bundle_local_encounter_reference_is_no_other_encounter() {
    for (named, settles) in [
        ("urn:uuid:0c1f5e55-2f44-4bb1-9d4c-6d1b0b6c2a10", true),
        ("Encounter/e6", false),
    ] {
        let mut tr = tracker();
        let mut e = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
        let enc = e.encounter.as_mut().unwrap();
        enc.id = None;
        enc.reference = Some("Encounter/e5".into());
        tr.apply(&e);
        let mut d = doc(
            "m2",
            None,
            D::DischargeSummary,
            t("2024-01-10T12:00:00Z"),
            Some(NHS),
        );
        d.encounter = Some(tocsin_event::Encounter {
            reference: Some(named.into()),
            ..Default::default()
        });
        let fx = tr.apply(&d);
        let settled = changed(&fx);
        if settles {
            assert_eq!(
                settled[0].settlement.as_ref().unwrap().matched_by,
                MatchMethod::PatientWindow,
                "{named}"
            );
        } else {
            assert!(settled.is_empty(), "{named}: {fx:?}");
            assert_eq!(tr.open_count(), 1);
        }
    }
}

/// Whether effects write a transmission record (what acknowledgements
/// attach to after a restart).
fn writes_transmission(fx: &[Effect]) -> bool {
    fx.iter().any(|e| {
        matches!(e, Effect::StatePut(r) if r.namespace == tocsin_tracker::namespaces::TRANSMISSION)
    })
}

#[test]
fn acknowledgements_attach_to_the_transmission_and_failure_raises_an_alert() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    ));
    assert_eq!(tr.transmission_count(), 1);
    let fx = tr.apply(&ack("a1", "m2", true, t("2024-01-10T12:01:00Z")));
    assert_eq!(kinds(&fx), vec![A::DeliveryFailed]);
    assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Failed));
    // It says why in codes, never the acknowledgement's free text (which
    // here quotes another NHS number).
    assert_eq!(alerts(&fx)[0].failure, Some(ack_failure()));
    let json = serde_json::to_string(&alerts(&fx)[0]).unwrap();
    assert!(!json.contains("4010232137"), "{json}");
    // It names the document refused, so the team knows which to send again.
    let refused = alerts(&fx)[0].document.clone().expect("document");
    assert_eq!(
        (refused.id.as_str(), refused.issued_at),
        ("DOC-m2", t("2024-01-10T12:00:00Z"))
    );
    assert_eq!(alerts(&fx)[0].delay_seconds, Some(2 * 3600));
    assert!(writes_transmission(&fx));
    // A second failure does not repeat the alert, nor rewrite the stored
    // transmission when it is no later (a copy of the same refusal); a
    // later one is kept as the refusal an acceptance must follow.
    let again = tr.apply(&ack("a2", "m2", true, t("2024-01-10T12:01:00Z")));
    assert!(kinds(&again).is_empty());
    assert!(changed(&again).is_empty());
    assert!(!writes_transmission(&again));
    let later = tr.apply(&ack("a4", "m2", true, t("2024-01-10T12:02:00Z")));
    assert!(kinds(&later).is_empty() && changed(&later).is_empty());
    assert!(writes_transmission(&later));
    // An ack for nothing is counted.
    tr.apply(&ack("a3", "nope", false, t("2024-01-10T12:03:00Z")));
    // Counted once the allowed lateness has passed without its document.
    tr.advance_to(t("2024-01-10T13:00:00Z"));
    assert_eq!(tr.counters().acks_unmatched, 1);

    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    ));
    let fx = tr.apply(&ack("a1", "m2", false, t("2024-01-10T12:01:00Z")));
    assert!(kinds(&fx).is_empty());
    assert_eq!(changed(&fx)[0].delivery, Some(DeliveryStatus::Acknowledged));
    assert!(writes_transmission(&fx));
    // The same outcome again (an infrastructure then a business response)
    // changes no expectation; the stored record keeps the latest
    // acceptance's time (a refusal timed before it, read after it, was
    // answered by it, after a restart too). One no later writes nothing.
    let again = tr.apply(&ack("a1b", "m2", false, t("2024-01-10T12:01:30Z")));
    assert!(changed(&again).is_empty());
    assert!(writes_transmission(&again));
    for (id, at) in [("a1c", "12:01:30"), ("a1d", "12:00:30")] {
        let repeat = tr.apply(&ack(id, "m2", false, t(&format!("2024-01-10T{at}Z"))));
        assert!(changed(&repeat).is_empty());
        assert!(!writes_transmission(&repeat), "{at}");
    }
    // The transmission is forgotten after the acknowledgement horizon.
    tr.advance_to(t("2024-01-20T00:00:00Z"));
    assert_eq!(tr.transmission_count(), 0);
}

#[test]
fn unconfirmed_is_off_by_default_and_raised_when_configured() {
    let run_with = |cfg: TrackerConfig| {
        let mut tr = Tracker::new(Policy::default_contract(), cfg);
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        ));
        tr.apply(&doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T12:00:00Z"),
            Some(NHS),
        ));
        kinds(&tr.advance_to(t("2024-01-12T00:00:00Z")))
    };
    assert!(run_with(strict()).is_empty());
    let cfg = TrackerConfig {
        unconfirmed_after: Some(ConfigDuration::hours(4)),
        ..strict()
    };
    assert_eq!(run_with(cfg), vec![A::Unconfirmed]);
}

/// A summary sent before its discharge was recorded (it waited for the
/// A03) and never acknowledged: `unconfirmed` is raised no earlier than
/// the discharge, not at the confirmation limit before it (the alert
/// preceded the expectation it is about).
#[test]
fn unconfirmed_for_a_document_that_waited_is_raised_no_earlier_than_the_end() {
    let cfg = TrackerConfig {
        unconfirmed_after: Some(ConfigDuration::hours(2)),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-15T10:00:00Z"),
        Some(NHS),
    ));
    let mut fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-15T14:00:00Z"),
        NHS,
    ));
    fx.extend(tr.advance_to(t("2024-01-16T00:00:00Z")));
    let raised = alerts(&fx);
    assert_eq!(raised.len(), 1, "{fx:?}");
    assert_eq!(raised[0].kind, A::Unconfirmed);
    assert_eq!(raised[0].raised_at, t("2024-01-15T14:00:00Z"));
}

#[test]
fn twenty_four_hours_across_the_change_to_summer_time_is_elapsed_time() {
    // Clocks went forward at 01:00 UTC on Sunday 31 March 2024.
    let mut tr = tracker();
    let ended = t("2024-03-30T12:00:00+00:00"); // noon GMT, Saturday
    let fx = tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS));
    let deadline = changed(&fx)[0].deadline;
    assert_eq!(deadline, t("2024-03-31T13:00:00+01:00")); // 1 pm BST, 24 h later
    // 12:30 BST on Sunday is 23.5 h after discharge: on time.
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-03-31T12:30:00+01:00"),
        Some(NHS),
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
}

#[test]
fn merge_rekeys_open_expectations_and_does_not_cancel() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "OP1",
        K::Outpatient,
        t("2024-01-01T10:00:00Z"),
        NHS2,
    ));
    let fx = tr.apply(&merge("m2", NHS, NHS2, t("2024-01-01T11:00:00Z")));
    let e = &changed(&fx)[0];
    assert_eq!(e.status, S::Open);
    assert_eq!(e.patient.nhs_number.as_deref(), Some(NHS));
    assert_eq!(tr.counters().merges_applied, 1);
    // A letter under the surviving number now matches by patient.
    let fx = tr.apply(&doc(
        "m3",
        None,
        D::ClinicLetter,
        t("2024-01-02T10:00:00Z"),
        Some(NHS),
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime);
}

/// The FHIR Encounter of a visit an HL7 A03 opened (its identifier the
/// visit number) is a repeat of that end, and its reference is learnt: a
/// DocumentReference naming only `Encounter/enc-500` settles that visit,
/// not the patient's other stay that ended nearer the document.
#[test]
fn a_fhir_encounter_repeating_an_hl7_end_lends_it_its_reference() {
    let at = |s: &str| t(&format!("2024-01-15T{s}:00Z"));
    let mut tr = tracker();
    tr.apply(&end("m1", "V500", K::Inpatient, at("14:00"), NHS));
    tr.apply(&end("m2", "V501", K::Inpatient, at("20:00"), NHS));
    let mut fhir = end("f1", "V500", K::Inpatient, at("14:00"), NHS);
    fhir.source.format = tocsin_event::Format::FhirR4;
    fhir.encounter.as_mut().unwrap().reference = Some("Encounter/enc-500".into());
    tr.apply(&fhir);
    assert_eq!(tr.counters().repeated_ends, 1);
    let mut d = doc("m3", None, D::DischargeSummary, at("21:00"), Some(NHS));
    d.encounter = Some(tocsin_event::Encounter {
        reference: Some("Encounter/enc-500".into()),
        ..Default::default()
    });
    let fx = tr.apply(&d);
    let settled = &changed(&fx)[0];
    assert_eq!(settled.encounter.id.as_deref(), Some("V500"), "{fx:?}");
    assert_eq!(
        settled.settlement.as_ref().unwrap().matched_by,
        MatchMethod::FhirReference
    );
}

/// An unverified patient discharged under a hospital number alone, then
/// traced: the A31 carrying the NHS number beside the hospital number gives
/// the open expectation the number, and the summary that came under the
/// NHS number alone (waiting) settles it. Another patient's update, and
/// one without an NHS number, change nothing.
#[test]
fn an_nhs_number_traced_after_discharge_is_learnt_from_an_a31() {
    let at = |s: &str| t(&format!("2024-01-10T{s}:00Z"));
    let untraced = |mut e: tocsin_event::InterfaceEvent| {
        e.patient.nhs_number = None;
        with_local(e, "RXX", "L100")
    };
    let update = |msg: &str, nhs: Option<&str>, local: &str, time: &str| {
        with_local(
            base(msg, EventType::EncounterUpdated, at(time), nhs),
            "RXX",
            local,
        )
    };
    let mut tr = tracker();
    tr.apply(&untraced(end("m1", "V1", K::Inpatient, at("10:00"), NHS)));
    let fx = tr.apply(&doc(
        "m2",
        None,
        D::DischargeSummary,
        at("12:00"),
        Some(NHS),
    ));
    assert!(changed(&fx).is_empty(), "waits: {fx:?}");
    assert!(changed(&tr.apply(&update("m3", Some(NHS2), "L999", "12:30"))).is_empty());
    assert!(changed(&tr.apply(&update("m4", None, "L100", "12:40"))).is_empty());
    let fx = tr.apply(&update("m5", Some(NHS), "L100", "13:00"));
    let last = changed(&fx).pop().expect("changed");
    assert_eq!(last.patient.nhs_number.as_deref(), Some(NHS));
    assert_eq!(last.status, S::OnTime, "{fx:?}");
    assert_eq!(tr.counters().nhs_numbers_learnt, 1);
}

/// An A40 whose MRG-1 names the retired hospital number only (no MRG NHS
/// number): the retired record's expectation takes the survivor's NHS
/// number with its hospital number, so the survivor's summary settles it
/// and no alert names the retired number.
#[test]
fn a_merge_naming_only_the_retired_hospital_number_moves_the_nhs_number_too() {
    // RXX:LOLD merged into RXX:LNEW, the NHS number NHS; MRG-1 only.
    let retiring_lold = || {
        let mut m = merge("m2", NHS, "", t("2024-01-10T11:00:00Z"));
        let merge_of = m.merge.as_mut().unwrap();
        merge_of.prior_nhs_number = None;
        merge_of.prior_local_ids = vec![tocsin_event::Identifier {
            system: "RXX".into(),
            value: "LOLD".into(),
        }];
        with_local(m, "RXX", "LNEW")
    };
    let mut tr = tracker();
    tr.apply(&with_local(
        end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS2),
        "RXX",
        "LOLD",
    ));
    let fx = tr.apply(&retiring_lold());
    let e = &changed(&fx)[0];
    assert_eq!(e.patient.nhs_number.as_deref(), Some(NHS));
    assert_eq!(e.patient.local_ids[0].value, "LNEW");
    // The survivor's summary, naming the visit, settles it.
    let fx = tr.apply(&with_local(
        doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T15:00:00Z"),
            Some(NHS),
        ),
        "RXX",
        "LNEW",
    ));
    assert_eq!(changed(&fx)[0].status, S::OnTime, "{fx:?}");
    // Another patient's record, sharing no retired identifier, is untouched.
    let mut tr = tracker();
    tr.apply(&with_local(
        end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS2),
        "RXX",
        "LOTHER",
    ));
    let fx = tr.apply(&retiring_lold());
    assert!(changed(&fx).is_empty(), "{fx:?}");
}

/// The compact open record keeps one local id inline and the rest aside,
/// and an NHS number that is not ten digits in the symbol table: every
/// id must still come back, match, re-key on a merge and survive restore.
#[test]
fn every_local_id_and_an_odd_nhs_number_survive_merge_and_restore() {
    let mut tr = tracker();
    let mut store = Store::default();
    let mut e = end("m1", "OP1", K::Outpatient, t("2024-01-01T10:00:00Z"), NHS);
    e.patient.nhs_number = Some("not ten digits".into());
    let e = with_local(
        with_local(with_local(e, "MRN", "H1"), "PAS", "P1"),
        "ED",
        "E1",
    );
    let fx = tr.apply(&e);
    store.commit(&fx);
    let created = &changed(&fx)[0];
    assert_eq!(
        created.patient.nhs_number.as_deref(),
        Some("not ten digits")
    );
    let ids = |e: &tocsin_tracker::Expectation| -> Vec<(String, String)> {
        e.patient
            .local_ids
            .iter()
            .map(|i| (i.system.clone(), i.value.clone()))
            .collect()
    };
    let pair = |s: &str, v: &str| (s.to_string(), v.to_string());
    assert_eq!(
        ids(created),
        [pair("MRN", "H1"), pair("PAS", "P1"), pair("ED", "E1")]
    );
    // The second id is retired by a merge; the survivor's id is added.
    let mut m = merge("m2", NHS, "9434765870", t("2024-01-01T11:00:00Z"));
    m.merge.as_mut().unwrap().prior_local_ids = vec![tocsin_event::Identifier {
        system: "PAS".into(),
        value: "P1".into(),
    }];
    let m = with_local(m, "PAS", "P2");
    let fx = tr.apply(&m);
    store.commit(&fx);
    let merged = &changed(&fx)[0];
    assert_eq!(
        ids(merged),
        [pair("MRN", "H1"), pair("ED", "E1"), pair("PAS", "P2")]
    );
    assert_eq!(merged.patient.nhs_number.as_deref(), Some("not ten digits"));
    // Rebuilt from the store, a letter naming only the third id settles it.
    let mut tr = store.restored();
    let d = with_local(
        doc("m3", None, D::ClinicLetter, t("2024-01-02T10:00:00Z"), None),
        "PAS",
        "P2",
    );
    let fx = tr.apply(&d);
    let settled = &changed(&fx)[0];
    assert_eq!(settled.status, S::OnTime);
    assert_eq!(ids(settled), ids(merged));
    assert_eq!(
        settled.patient.nhs_number.as_deref(),
        Some("not ten digits")
    );
}

#[test]
fn replacement_does_not_move_the_first_transmission() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    ));
    let mut r = doc(
        "m3",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-12T12:00:00Z"),
        Some(NHS),
    );
    r.event_type = EventType::DocumentReplaced;
    // The same document (an MDM T08 keeps TXA-12), or a new one naming it
    // as the one it replaces (FHIR relatesTo, TXA-13).
    r.document.as_mut().unwrap().id = "DOC-m2".into();
    let fx = tr.apply(&r);
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty());
    let mut named = doc(
        "m4",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-12T13:00:00Z"),
        Some(NHS),
    );
    named.event_type = EventType::DocumentReplaced;
    named.document.as_mut().unwrap().replaces = Some("DOC-m2".into());
    let fx = tr.apply(&named);
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty());
    assert_eq!(tr.counters().replacements_unmatched, 2);
    assert_eq!(tr.pending_document_count(), 0);
}

/// A replacement of a document never seen is the first final version the
/// feed gave (an MDM T08 after a draft T02, which is no transmission): come
/// before the discharge, it waits for it as an issue does. It was dropped
/// as an unmatched replacement, and the summary counted missing, although
/// the same messages with the A03 first were on time.
#[test]
fn a_first_final_version_sent_as_a_replacement_waits_for_its_discharge() {
    let mut tr = tracker();
    let mut r = doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T09:00:00Z"),
        Some(NHS),
    );
    r.event_type = EventType::DocumentReplaced;
    let fx = tr.apply(&r);
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty());
    assert_eq!(tr.pending_document_count(), 1);
    assert_eq!(tr.counters().replacements_unmatched, 0);
    let fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let settled = changed(&fx);
    let last = settled.last().unwrap();
    assert_eq!(last.status, S::OnTime);
    assert_eq!(
        last.settlement.as_ref().unwrap().issued_at,
        t("2024-01-10T09:00:00Z")
    );
    assert_eq!(tr.pending_document_count(), 0);
}

#[test]
fn due_soon_warns_before_the_deadline() {
    let mut tr = warning_tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    assert_eq!(tr.next_deadline(), Some(t("2024-01-11T06:00:00Z")));
    let fx = tr.advance_to(t("2024-01-11T07:00:00Z"));
    assert_eq!(kinds(&fx), vec![A::DueSoon]);
    assert_eq!(tr.next_deadline(), Some(t("2024-01-11T10:00:00Z")));
    assert_eq!(
        kinds(&tr.advance_to(t("2024-01-12T00:00:00Z"))),
        vec![A::Overdue]
    );
}

/// A summary that comes on time after the `due_soon` warning raises
/// `resolved` (with its document and delay), stamped no earlier than the
/// warning, so that a team chasing warnings can stop; one that comes
/// before the warning raises nothing, as before.
#[test]
fn a_document_after_due_soon_raises_resolved_once() {
    let discharged = || {
        let mut tr = warning_tracker();
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        ));
        tr
    };
    let mut tr = discharged();
    let warned = alerts(&tr.advance_to(t("2024-01-11T07:00:00Z")));
    assert_eq!(warned.len(), 1);
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T08:00:00Z"),
        Some(NHS),
    ));
    let a = alerts(&fx);
    assert_eq!(kinds(&fx), vec![A::Resolved], "{fx:?}");
    assert_eq!(a[0].expectation_id, warned[0].expectation_id);
    assert_eq!(a[0].raised_at, t("2024-01-11T08:00:00Z"));
    assert_eq!(a[0].delay_seconds, Some(22 * 3600));
    assert_eq!(a[0].document.as_ref().unwrap().id, "DOC-m2");
    let exp = changed(&fx).pop().unwrap();
    assert_eq!(exp.status, S::OnTime);
    assert_eq!(exp.alerts_raised, [A::DueSoon, A::Resolved]);

    // Stamped before the warning but read after it: raised at the warning.
    let mut tr = discharged();
    tr.advance_to(t("2024-01-11T07:00:00Z"));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T05:00:00Z"),
        Some(NHS),
    ));
    let a = alerts(&fx);
    assert_eq!(kinds(&fx), vec![A::Resolved]);
    assert_eq!(a[0].raised_at, t("2024-01-11T06:00:00Z"));

    // Before the warning: no alert at all, and none later.
    let mut tr = discharged();
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T05:00:00Z"),
        Some(NHS),
    ));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    assert!(kinds(&tr.advance_to(t("2024-01-13T00:00:00Z"))).is_empty());
}

/// A discharge before the earliest rule came into force (an archive from
/// 2016) makes no expectation, and is counted `end_without_rule` rather
/// than passing without a word; one of a kind no rule covers is not
/// counted so (that is `end_without_kind`'s, for unmapped codes).
#[test]
fn an_end_before_any_rule_is_counted() {
    let mut tr = tracker();
    let fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2016-06-01T10:00:00Z"),
        NHS,
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.counters().ends_without_rule, 1);
    tr.apply(&end("m2", "V2", K::Other, t("2016-06-01T11:00:00Z"), NHS));
    assert_eq!(tr.counters().ends_without_rule, 1);
    tr.apply(&end(
        "m3",
        "V3",
        K::Inpatient,
        t("2024-06-01T10:00:00Z"),
        NHS,
    ));
    assert_eq!(tr.counters().ends_without_rule, 1, "a rule is in force");
    assert_eq!(tr.open_count(), 1);
}

#[test]
fn exclusions_create_no_expectation() {
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml").replace(
        "# [[rule.exclude]]\n# reason = \"Maternity discharges are covered by the maternity pathway\"\n# specialties = [\"501\"]",
        "[[rule.exclude]]\nreason = \"maternity\"\nspecialties = [\"501\"]",
    );
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    let mut e = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
    e.encounter.as_mut().unwrap().specialty = Some("501".into());
    assert!(changed(&tr.apply(&e)).is_empty());
    assert_eq!(tr.counters().excluded, 1);
}

/// Judged as at `until` (a replay's `--until`): a summary sent after it
/// had not been sent by then, so it is not applied and the discharge is
/// overdue, as a report at that instant must say; the event is counted.
#[test]
fn an_event_after_until_is_not_applied() {
    let mut tr = tracker();
    let until = t("2024-01-12T00:00:00Z");
    tr.set_until(Some(until));
    tr.set_ceiling(Some(until));
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-13T09:00:00Z"),
        Some(NHS),
    ));
    assert!(fx.is_empty(), "{fx:?}");
    assert_eq!(tr.counters().after_until, 1);
    assert_eq!(tr.pending_document_count(), 0);
    assert_eq!(kinds(&tr.advance_to(until)), vec![A::Overdue]);
    assert_eq!(tr.open_count(), 1);
}

#[test]
fn a_far_future_event_moves_the_clock_only_to_the_ceiling() {
    let mut tr = tracker();
    tr.set_ceiling(Some(t("2024-01-10T12:00:00Z")));
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        None,
        D::Other,
        t("2099-01-01T00:00:00Z"),
        Some(NHS2),
    ));
    assert!(kinds(&fx).is_empty(), "the discharge is not overdue");
    assert_eq!(tr.clock(), Some(t("2024-01-10T12:00:00Z")));
    assert_eq!(tr.counters().future_events_capped, 1);
    // The cap is on the event's time, before the allowed lateness is taken
    // off as from any event's: the live clock stays that far behind now
    // (before, a message stamped ten minutes ahead put it at now plus the
    // skew, and deadlines up to then fired early).
    let mut tr = Tracker::new(Policy::default_contract(), TrackerConfig::default());
    tr.set_ceiling(Some(t("2024-01-10T12:00:00Z")));
    tr.apply(&doc(
        "m2",
        None,
        D::Other,
        t("2024-01-10T12:10:00Z"),
        Some(NHS2),
    ));
    assert_eq!(tr.clock(), Some(t("2024-01-10T11:55:00Z")));
}

/// Live, a summary stamped two days ahead (a sender whose clock runs fast)
/// read before its discharge's deadline: issued by the time it was read,
/// so on time, issued at the ceiling; before, it was `late` by its stamp.
#[test]
fn a_document_stamped_past_the_ceiling_is_issued_at_the_ceiling() {
    let mut tr = tracker();
    let now = t("2024-01-10T12:05:00Z");
    tr.set_ceiling(Some(now));
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-12T12:00:00Z"),
        Some(NHS),
    ));
    let settled = &changed(&fx)[0];
    assert_eq!(settled.status, S::OnTime, "{fx:?}");
    let s = settled.settlement.as_ref().unwrap();
    assert_eq!((s.issued_at, s.delay_seconds), (now, 2 * 3600 + 300));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
}

/// A discharge whose year was mistyped (2025 for 2024) among a day's
/// traffic: before, it moved the clock a year on, raised `overdue` for
/// every open expectation and made everything read after it stale (the
/// real summary dropped, the discharge reported missing). Now it is applied
/// but holds the clock until the next event confirms the jump, which the
/// next does not: the summary settles its discharge on time.
#[test]
fn an_event_far_ahead_does_not_move_the_clock_alone() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&end(
        "m2",
        "V2",
        K::Inpatient,
        t("2025-01-10T11:00:00Z"),
        NHS2,
    ));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.clock(), Some(t("2024-01-10T10:00:00Z")));
    assert_eq!(tr.counters().clock_jumps_held, 1);
    let fx = tr.apply(&doc(
        "m3",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-11T09:00:00Z"),
        Some(NHS),
    ));
    assert!(kinds(&fx).is_empty(), "{fx:?}");
    assert_eq!(changed(&fx)[0].status, S::OnTime);
    assert_eq!(tr.counters().stale_events, 0);
    assert_eq!(tr.clock(), Some(t("2024-01-11T09:00:00Z")));
    // The mistyped discharge is tracked as sent: due a year on.
    assert_eq!(tr.open_count(), 1);
}

/// A gap of months in the traffic (an outage, an archive with months
/// missing) is not mistaken for a bad clock: the second event past it
/// confirms the jump, and the clock moves to its time, with or without a
/// restart between them.
#[test]
fn an_event_far_ahead_moves_the_clock_when_the_next_confirms_it() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        store.commit(&tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        )));
        let fx = tr.apply(&doc(
            "m2",
            None,
            D::Other,
            t("2024-06-01T00:00:00Z"),
            Some(NHS2),
        ));
        assert!(kinds(&fx).is_empty(), "{fx:?}");
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }
        let fx = tr.apply(&doc(
            "m3",
            None,
            D::Other,
            t("2024-06-01T02:00:00Z"),
            Some(NHS2),
        ));
        assert_eq!(kinds(&fx), vec![A::Overdue], "restart {restart}");
        assert_eq!(tr.clock(), Some(t("2024-06-01T02:00:00Z")));
        assert_eq!(tr.counters().clock_jumps_held, u64::from(!restart));
        store.commit(&fx);
        // The held time is let go once the clock moves.
        assert!(
            !store
                .state
                .keys()
                .any(|(ns, k)| ns == "clock" && k == "held_jump"),
            "{:?}",
            store.state.keys()
        );
    }
}

/// A document of a kind no rule expects (`other`: a type with no mapping, a
/// lab result's text comment) can settle nothing: it is counted, not kept
/// waiting for an encounter (a lab feed's thousands a day filled the
/// pending store for its whole horizon).
#[test]
fn a_document_of_a_kind_no_rule_expects_is_counted_not_kept() {
    let mut tr = tracker();
    let fx = tr.apply(&doc(
        "m1",
        Some("V1"),
        D::Other,
        t("2024-01-10T09:00:00Z"),
        Some(NHS),
    ));
    assert!(kinds(&fx).is_empty() && changed(&fx).is_empty(), "{fx:?}");
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::StatePut(r) if r.namespace == "pending_document")),
        "{fx:?}"
    );
    assert_eq!(tr.counters().documents_untracked_kind, 1);
    assert_eq!(tr.counters().documents_pending, 0);
    assert_eq!(tr.pending_document_count(), 0);
    // A summary waiting for its discharge is still kept.
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T09:30:00Z"),
        Some(NHS),
    ));
    assert_eq!(tr.pending_document_count(), 1);
}

/// Only what the tracker acts on moves its clock. An event it does not act
/// on (an admission, a planned or pre-admitted visit, anything mapped to
/// `other`) may carry a time weeks ahead (the planned date): in a replay,
/// whose ceiling is `--until`, it moved the clock there and fired every open
/// deadline early, so summaries sent on time met an `overdue` already
/// raised.
#[test]
fn an_event_the_tracker_does_not_act_on_moves_no_clock() {
    for ty in [
        EventType::Other,
        EventType::EncounterStarted,
        EventType::AppointmentBooked,
    ] {
        let mut tr = tracker();
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        ));
        let fx = tr.apply(&base("m2", ty, t("2024-03-01T09:00:00Z"), Some(NHS2)));
        assert!(kinds(&fx).is_empty(), "{ty:?}: {fx:?}");
        assert_eq!(tr.clock(), Some(t("2024-01-10T10:00:00Z")), "{ty:?}");
        let fx = tr.apply(&doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-11T09:00:00Z"),
            Some(NHS),
        ));
        assert!(kinds(&fx).is_empty(), "{ty:?}: on time, no alert");
        assert_eq!(changed(&fx)[0].status, S::OnTime, "{ty:?}");
    }
}

#[test]
fn events_older_than_the_duplicate_horizon_are_ignored_and_counted() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-03-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&end(
        "m2",
        "V2",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS2,
    ));
    assert!(fx.is_empty());
    assert_eq!(tr.counters().stale_events, 1);
    assert_eq!(tr.open_count(), 1);
}

#[test]
fn a_discharge_read_after_its_deadline_is_judged_at_once() {
    let mut tr = tracker();
    tr.apply(&doc(
        "m0",
        None,
        D::Other,
        t("2024-01-20T00:00:00Z"),
        Some(NHS2),
    ));
    let fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    assert_eq!(kinds(&fx), vec![A::Overdue]);
}

/// A trust that changes a rule's durations and restarts: expectations
/// already open keep the deadline and due-soon point they were created
/// with (the tracker keeps only the encounter's end and derives both from
/// the rule, so a restore must not let the new policy move them), while
/// discharges read after the restart follow the new policy.
#[test]
fn a_policy_changed_across_a_restart_moves_no_open_deadline() {
    let contract = include_str!("../../../config/policies/nhs-standard-contract.toml");
    let before = contract.replace("# due_soon = \"20h\"", "due_soon = \"20h\"");
    let after = contract.replacen("due_after = \"24h\"", "due_after = \"48h\"", 1);
    assert_ne!(after, contract, "the rule's duration changed");
    let mut tr = Tracker::new(Policy::from_toml(&before).unwrap(), strict());
    let mut store = Store::default();
    store.commit(&tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    )));
    let mut tr = Tracker::restore(
        Policy::from_toml(&after).unwrap(),
        strict(),
        store.unsettled(),
        store.records(),
    )
    .expect("restores");
    assert_eq!(tr.next_deadline(), Some(t("2024-01-11T06:00:00Z")));
    let fx = tr.apply(&end(
        "m2",
        "V2",
        K::Inpatient,
        t("2024-01-10T12:00:00Z"),
        NHS2,
    ));
    let new = &changed(&fx)[0];
    assert_eq!(new.deadline, t("2024-01-12T12:00:00Z"), "the new policy");
    assert_eq!(new.due_soon_at, None);
    let fx = tr.advance_to(t("2024-01-11T11:00:00Z"));
    assert_eq!(kinds(&fx), vec![A::DueSoon, A::Overdue]);
    let old = changed(&fx).pop().unwrap();
    assert_eq!(old.encounter.id.as_deref(), Some("V1"));
    assert_eq!(old.deadline, t("2024-01-11T10:00:00Z"), "as created");
    assert_eq!(old.due_soon_at, Some(t("2024-01-11T06:00:00Z")));
    assert_eq!(old.rule.id, "discharge-summary-24h");
    let fx = tr.advance_to(t("2024-01-12T13:00:00Z"));
    assert_eq!(kinds(&fx), vec![A::Overdue]);
    assert_eq!(changed(&fx)[0].encounter.id.as_deref(), Some("V2"));
}

/// An account merge moves an open expectation to the surviving visit
/// number. Its id is the one it was created with, before and after a
/// restart, so the store holds one expectation throughout and a summary
/// naming the new visit number settles that one.
#[test]
fn an_account_merge_keeps_the_expectation_id_across_a_restore() {
    let mut tr = tracker();
    let mut store = Store::default();
    let fx = tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    store.commit(&fx);
    let created = changed(&fx)[0].id.clone();
    let mut m = merge("m2", NHS, NHS, t("2024-01-10T11:00:00Z"));
    m.merge.as_mut().unwrap().prior_encounter_id = Some("V1".into());
    m.encounter = Some(tocsin_event::Encounter {
        id: Some("V9".into()),
        ..Default::default()
    });
    let fx = tr.apply(&m);
    store.commit(&fx);
    let moved = &changed(&fx)[0];
    assert_eq!(moved.encounter.id.as_deref(), Some("V9"));
    assert_eq!(moved.id, created, "re-keyed, not re-made");
    let mut tr = store.restored();
    assert_eq!(tr.open_expectations()[0].id, created);
    let fx = tr.apply(&doc(
        "m3",
        Some("V9"),
        D::DischargeSummary,
        t("2024-01-10T20:00:00Z"),
        Some(NHS),
    ));
    store.commit(&fx);
    let settled = &changed(&fx)[0];
    assert_eq!(settled.status, S::OnTime);
    assert_eq!(settled.id, created);
    assert_eq!(store.expectations.len(), 1);
}

/// A message id reused after its horizon leaves its key stored under two
/// times until the old one is swept. Restored in either order, the later
/// time judges: the message read again is a duplicate.
#[test]
fn a_key_stored_under_two_times_restores_as_the_later() {
    let mut tr = tracker();
    let mut store = Store::default();
    let e = end("m1", "V1", K::Outpatient, t("2024-01-10T10:00:00Z"), NHS);
    store.commit(&tr.apply(&e));
    let records = store.records();
    let seen = records
        .iter()
        .position(|r| r.namespace == "seen")
        .expect("its key is stored");
    let mut older = records[seen].clone();
    // The same key, seen 60 days earlier (its time is the first 16 digits).
    let at = u64::from_str_radix(&older.key[..16], 16).unwrap();
    let earlier = at - 60 * 86_400_000;
    older.key = format!("{earlier:016x}{}", &older.key[16..]);
    for order in [0, 1] {
        let mut recs = records.clone();
        recs.insert(seen + order, older.clone());
        let mut tr = Tracker::restore(
            Policy::default_contract(),
            strict(),
            store.unsettled(),
            recs,
        )
        .expect("restores");
        assert!(tr.apply(&e).is_empty(), "order {order}");
        assert_eq!(tr.counters().duplicates, 1, "order {order}");
    }
}

/// A settled discharge whose summary went out as message `m2`, in a store,
/// with the tracker that made it.
fn settled_and_stored() -> (Tracker, Store) {
    let mut tr = tracker();
    let mut store = Store::default();
    store.commit(&tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    )));
    store.commit(&tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    )));
    (tr, store)
}

/// The stored transmission record of message `m2`.
fn transmission_record(store: &Store) -> serde_json::Value {
    let value = &store.state[&("transmission".to_string(), "m2".to_string())];
    serde_json::from_str(value.as_str()).unwrap()
}

/// A transmission awaiting acknowledgement is stored by the ids of the
/// expectations it settled (they are in the expectations table already),
/// and after a restart an acknowledgement attaches to it exactly as it
/// would have without one.
#[test]
fn a_transmission_is_stored_by_expectation_ids_and_acknowledged_after_a_restart() {
    let (mut live, mut store) = settled_and_stored();
    let settled = store.expectations.values().next().unwrap().clone();
    assert_eq!(settled.status, S::OnTime);
    assert_eq!(
        transmission_record(&store),
        serde_json::json!({
            "issued_at": "2024-01-10T12:00:00Z",
            "expectation_ids": [settled.id.0],
        })
    );
    let mut restored = store.restored();
    assert_eq!(restored.transmission_count(), 1);
    let nack = ack("a1", "m2", true, t("2024-01-10T12:01:00Z"));
    let fx = restored.apply(&nack);
    // As if there had been no restart (a restored tracker also sweeps the
    // duplicate keys once, which is no judgement).
    let judged = |fx: &[Effect]| (alerts(fx), changed(fx), transmissions(fx));
    assert_eq!(judged(&fx), judged(&live.apply(&nack)));
    assert_eq!(kinds(&fx), vec![A::DeliveryFailed]);
    let failed = &changed(&fx)[0];
    assert_eq!(failed.delivery, Some(DeliveryStatus::Failed));
    assert_eq!(failed.settlement, settled.settlement);
    store.commit(&fx);
    assert_eq!(
        transmission_record(&store)["expectation_ids"],
        serde_json::json!([settled.id.0])
    );
}

/// Stores written before the change keep whole expectations in their
/// transmission records: those still restore, with no expectation fetched.
#[test]
fn a_transmission_record_with_whole_expectations_still_restores() {
    let (mut live, store) = settled_and_stored();
    let settled = store.expectations.values().next().unwrap().clone();
    let mut records = store.records();
    let rec = records
        .iter_mut()
        .find(|r| r.namespace == "transmission")
        .unwrap();
    rec.value = tocsin_tracker::JsonText::of(&serde_json::json!({
        "issued_at": "2024-01-10T12:00:00Z",
        "expectations": [settled],
    }));
    let mut restored =
        Tracker::restore(Policy::default_contract(), strict(), vec![], records).expect("restores");
    assert_eq!(restored.transmission_count(), 1);
    let nack = ack("a1", "m2", true, t("2024-01-10T12:01:00Z"));
    let fx = restored.apply(&nack);
    assert_eq!(kinds(&fx), vec![A::DeliveryFailed]);
    let live = live.apply(&nack);
    assert_eq!((alerts(&fx), changed(&fx)), (alerts(&live), changed(&live)));
    // Rewritten in the current form.
    assert_eq!(transmissions(&fx), transmissions(&live));
}

/// The transmission records effects write.
fn transmissions(fx: &[Effect]) -> Vec<tocsin_tracker::StateRecord> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StatePut(r) if r.namespace == "transmission" => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The gateway's streaming restore goes on without an expectation a
/// transmission record names and the store no longer holds: the
/// transmission is kept without it, reported, acknowledged as before (with
/// nothing left to mark), and forgotten at the acknowledgement horizon, so
/// the damaged record leaves the store.
#[test]
fn a_streaming_restore_goes_on_without_a_missing_transmission_expectation() {
    let (_, store) = settled_and_stored();
    let id = store.expectations.keys().next().unwrap().clone();
    let mut r = tocsin_tracker::Restoring::new(Policy::default_contract(), strict());
    for e in store.unsettled() {
        r.expectation(&e).unwrap();
    }
    for rec in store.records() {
        r.record(rec).unwrap();
    }
    assert_eq!(r.wanted(), vec![id.clone()]);
    // The store does not hand it over.
    let (mut restored, dropped) = r.finish();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].code(), "missing_expectation");
    assert_eq!(dropped[0].record().as_deref(), Some("transmission/m2"));
    assert!(dropped[0].to_string().contains(&id), "{}", dropped[0]);
    assert_eq!(restored.transmission_count(), 1);

    let fx = restored.apply(&ack("a1", "m2", true, t("2024-01-10T12:01:00Z")));
    assert!(alerts(&fx).is_empty(), "{fx:?}");
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        restored.counters().acks_unmatched,
        0,
        "the transmission is known"
    );

    let horizon = strict().ack_horizon.as_secs();
    let before = t("2024-01-10T12:00:00Z") + chrono::TimeDelta::seconds(horizon - 1);
    let deleted = |fx: &[Effect]| {
        fx.iter().any(|e| {
            matches!(e, Effect::StateDeleted { namespace, key }
                if namespace == "transmission" && key == "m2")
        })
    };
    assert!(!deleted(&restored.advance_to(before)));
    assert_eq!(restored.transmission_count(), 1);
    let fx = restored.advance_to(before + chrono::TimeDelta::seconds(2));
    assert!(deleted(&fx), "{fx:?}");
    assert_eq!(restored.transmission_count(), 0);
}

/// A transmission record whose expectation is not handed over, or that
/// names none, is refused with the record and the reason.
#[test]
fn a_transmission_record_without_its_expectations_is_refused() {
    let (_, store) = settled_and_stored();
    let id = store.expectations.keys().next().unwrap().clone();
    let e = Tracker::restore(
        Policy::default_contract(),
        strict(),
        store.unsettled(),
        store.records(),
    )
    .err()
    .expect("refused");
    let text = e.to_string();
    assert!(
        text.contains("transmission/m2") && text.contains(&id),
        "{text}"
    );

    let mut records = store.records();
    let rec = records
        .iter_mut()
        .find(|r| r.namespace == "transmission")
        .unwrap();
    rec.value = tocsin_tracker::JsonText::of(&serde_json::json!({
        "issued_at": "2024-01-10T12:00:00Z",
    }));
    let e = Tracker::restore(Policy::default_contract(), strict(), store.all(), records)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("expected one of"), "{e}");
}

/// A summary settles a discharge; the discharge is cancelled (recorded in
/// error) and recorded again days later, and its new summary never comes.
/// The first summary's acknowledgement, arriving after, must not write the
/// old settlement over the new, overdue expectation (same id), nor raise
/// anything for it; also after a restart in between.
#[test]
fn an_acknowledgement_of_a_cancelled_discharges_summary_leaves_the_new_discharge_alone() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        store.commit(&tr.apply(&end(
            "e1",
            "V9",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        )));
        store.commit(&tr.apply(&doc(
            "d1",
            Some("V9"),
            D::DischargeSummary,
            t("2024-01-10T12:00:00Z"),
            Some(NHS),
        )));
        store.commit(&tr.apply(&cancel(
            "c1",
            EventType::EncounterDischargeCancelled,
            "V9",
            t("2024-01-10T13:00:00Z"),
        )));
        store.commit(&tr.apply(&end(
            "e2",
            "V9",
            K::Inpatient,
            t("2024-01-14T10:00:00Z"),
            NHS,
        )));
        let fx = tr.advance_to(t("2024-01-15T11:00:00Z"));
        assert_eq!(kinds(&fx), [A::Overdue]);
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }
        for failed in [false, true] {
            let fx = tr.apply(&ack(
                &format!("a{failed}"),
                "d1",
                failed,
                t("2024-01-15T12:00:00Z"),
            ));
            assert!(changed(&fx).is_empty(), "restart {restart}: {fx:?}");
            assert!(kinds(&fx).is_empty(), "restart {restart}: {fx:?}");
            store.commit(&fx);
        }
        let stored: Vec<S> = store.all().iter().map(|e| e.status).collect();
        assert_eq!(stored, [S::Overdue], "restart {restart}");
    }
}

/// Two visits of one stay, both discharged, then merged (the duplicate
/// account retired): one discharge, one expected summary. The retired
/// visit's expectation is withdrawn whether the survivor's is open or
/// settled already, so one summary leaves nothing missing.
#[test]
fn an_account_merge_of_two_discharged_visits_expects_one_summary() {
    let ended = t("2024-01-10T10:00:00Z");
    let merged = |msg: &str| {
        let mut m = merge(msg, NHS, NHS, t("2024-01-10T11:00:00Z"));
        m.encounter = Some(tocsin_event::Encounter {
            id: Some("V2".into()),
            ..Default::default()
        });
        m.merge.as_mut().unwrap().prior_encounter_id = Some("V1".into());
        m
    };
    let summary = doc(
        "d1",
        Some("V2"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    );
    for settled_first in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        store.commit(&tr.apply(&end("e1", "V1", K::Inpatient, ended, NHS)));
        store.commit(&tr.apply(&end("e2", "V2", K::Inpatient, ended, NHS)));
        if settled_first {
            store.commit(&tr.apply(&summary));
        }
        let fx = tr.apply(&merged("m1"));
        let withdrawn: Vec<_> = changed(&fx)
            .into_iter()
            .filter(|e| e.status == S::Cancelled)
            .collect();
        assert_eq!(withdrawn.len(), 1, "{fx:?}");
        assert_eq!(withdrawn[0].encounter.id.as_deref(), Some("V1"));
        store.commit(&fx);
        if !settled_first {
            store.commit(&tr.apply(&summary));
        }
        let fx = tr.advance_to(t("2024-01-20T00:00:00Z"));
        assert!(
            kinds(&fx).is_empty(),
            "settled first {settled_first}: {fx:?}"
        );
        store.commit(&fx);
        let mut stored: Vec<S> = store.all().iter().map(|e| e.status).collect();
        stored.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            stored,
            [S::Cancelled, S::OnTime],
            "settled first {settled_first}"
        );
    }
}

/// A45: visit `visit`, filed under patient `prior`, moved to `survivor`
/// (registered with practice B82002).
fn visit_move(
    msg: &str,
    survivor: &str,
    prior: &str,
    visit: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> tocsin_event::InterfaceEvent {
    let mut e = merge(msg, survivor, prior, at);
    e.gp_practice = Some("B82002".into());
    e.encounter = Some(tocsin_event::Encounter {
        id: Some(visit.into()),
        ..Default::default()
    });
    let m = e.merge.as_mut().unwrap();
    m.prior_encounter_id = Some(visit.into());
    m.scope = tocsin_event::MergeScope::Visit;
    e
}

/// A visit filed under the wrong patient and moved to the right one (A45):
/// its open expectation takes the right patient's NHS number and GP
/// practice, kept across a restart, and the right patient's summary then
/// settles it. The wrong patient's other visit stays theirs. Before, A45
/// was `other`: the summary sent under the right patient never met the
/// discharge, which went overdue, its alert naming the wrong patient.
#[test]
fn a_visit_moved_to_another_patient_takes_that_patient() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        let ended = t("2024-01-10T10:00:00Z");
        store.commit(&tr.apply(&end("m1", "V1", K::Inpatient, ended, NHS)));
        store.commit(&tr.apply(&end("m2", "V2", K::Inpatient, ended, NHS)));
        let fx = tr.apply(&visit_move(
            "m3",
            NHS2,
            NHS,
            "V1",
            t("2024-01-10T11:00:00Z"),
        ));
        store.commit(&fx);
        let moved = changed(&fx);
        assert_eq!(moved.len(), 1, "{fx:?}");
        assert_eq!(moved[0].encounter.id.as_deref(), Some("V1"));
        assert_eq!(moved[0].patient.nhs_number.as_deref(), Some(NHS2));
        assert_eq!(moved[0].gp_practice.as_deref(), Some("B82002"));
        assert_eq!(tr.counters().merges_applied, 1);
        if restart {
            tr = store.restored();
        }
        let fx = tr.apply(&doc(
            "m4",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T15:00:00Z"),
            Some(NHS2),
        ));
        let settled = changed(&fx);
        assert_eq!(settled.len(), 1, "restart {restart}: {fx:?}");
        assert_eq!(settled[0].status, S::OnTime);
        assert_eq!(settled[0].encounter.id.as_deref(), Some("V1"));
        // The wrong patient's own visit is still open, under their number.
        let fx = tr.apply(&doc(
            "m5",
            None,
            D::DischargeSummary,
            t("2024-01-10T16:00:00Z"),
            Some(NHS),
        ));
        let settled = changed(&fx);
        assert_eq!(settled.len(), 1, "restart {restart}: {fx:?}");
        assert_eq!(settled[0].encounter.id.as_deref(), Some("V2"));
        assert_eq!(tr.open_count(), 0);
    }
}

/// The summary written under the right patient comes first and waits (it
/// names the visit, but the discharge is another patient's); the move
/// then lets it settle the discharge, on time.
#[test]
fn a_summary_waiting_for_a_moved_visit_settles_it_at_the_move() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T15:00:00Z"),
        Some(NHS2),
    ));
    assert!(changed(&fx).is_empty(), "another patient's: {fx:?}");
    let fx = tr.apply(&visit_move(
        "m3",
        NHS2,
        NHS,
        "V1",
        t("2024-01-10T16:00:00Z"),
    ));
    let last = changed(&fx).pop().expect("settled");
    assert_eq!(last.status, S::OnTime);
    assert_eq!(last.patient.nhs_number.as_deref(), Some(NHS2));
    assert_eq!(tr.open_count(), 0);
}

/// A move names the patient the visit was filed under: another patient's
/// visit numbered alike (numbering collides across systems) stays put.
#[test]
fn a_visit_move_leaves_another_patients_visit_numbered_alike() {
    const NHS3: &str = "4010232137";
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS3,
    ));
    let fx = tr.apply(&visit_move(
        "m2",
        NHS2,
        NHS,
        "V1",
        t("2024-01-10T11:00:00Z"),
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.counters().merges_applied, 0);
    let fx = tr.advance_to(t("2024-01-11T11:00:00Z"));
    let overdue = alerts(&fx);
    assert_eq!(overdue.last().unwrap().kind, A::Overdue);
    assert_eq!(
        overdue.last().unwrap().patient.nhs_number.as_deref(),
        Some(NHS3)
    );
}

/// An update (A08) of visit `visit` giving its end as `ended`, recorded at
/// `at`.
fn end_update(
    msg: &str,
    visit: &str,
    kind: K,
    ended: chrono::DateTime<chrono::Utc>,
    at: chrono::DateTime<chrono::Utc>,
    nhs: &str,
) -> tocsin_event::InterfaceEvent {
    let mut e = base(msg, EventType::EncounterUpdated, at, Some(nhs));
    e.encounter = Some(tocsin_event::Encounter {
        id: Some(visit.into()),
        kind: Some(kind),
        ended_at: Some(ended),
        ..Default::default()
    });
    e
}

/// The PAS corrects a discharge time with an A08 (FHIR: a finished
/// Encounter's later version): the deadline follows the corrected end,
/// kept across a restart. A summary 23 hours after the corrected discharge
/// is on time; judged by the first end it raised a false `overdue`, then
/// `late`. (An HL7 A03 sent again keeps the first end: see
/// `exact_duplicates_change_nothing`.)
#[test]
fn a_corrected_discharge_time_moves_the_deadline() {
    for (how, restart) in [("a08", false), ("a08", true), ("fhir", false)] {
        let mut tr = tracker();
        let mut store = Store::default();
        store.commit(&tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-05-01T10:00:00Z"),
            NHS,
        )));
        let corrected = t("2024-05-01T15:00:00Z");
        let fix = match how {
            "a08" => end_update(
                "m2",
                "V1",
                K::Inpatient,
                corrected,
                t("2024-05-01T15:30:00Z"),
                NHS,
            ),
            _ => {
                let mut e = end("m2", "V1", K::Inpatient, corrected, NHS);
                e.source.format = tocsin_event::Format::FhirR4;
                e
            }
        };
        let fx = tr.apply(&fix);
        store.commit(&fx);
        let moved = changed(&fx);
        assert_eq!(moved.len(), 1, "{how}: {fx:?}");
        assert_eq!(moved[0].deadline, t("2024-05-02T15:00:00Z"), "{how}");
        assert_eq!(moved[0].encounter.ended_at, corrected);
        assert_eq!(tr.counters().ends_corrected, 1);
        assert_eq!(tr.next_deadline(), Some(t("2024-05-02T15:00:00Z")));
        if restart {
            tr = store.restored();
            assert_eq!(tr.next_deadline(), Some(t("2024-05-02T15:00:00Z")));
        }
        let fx = tr.apply(&doc(
            "m3",
            Some("V1"),
            D::DischargeSummary,
            t("2024-05-02T14:00:00Z"),
            Some(NHS),
        ));
        assert!(kinds(&fx).is_empty(), "{how} restart {restart}: {fx:?}");
        let settled = changed(&fx);
        assert_eq!(settled[0].status, S::OnTime, "{how} restart {restart}");
        assert_eq!(
            settled[0].settlement.as_ref().unwrap().delay_seconds,
            23 * 3600
        );
    }
}

/// A correction stands only while nothing was raised against the first
/// deadline: after `overdue` went out it changes nothing. Another
/// patient's update naming the same visit number corrects nothing, and an
/// update giving the same end is no correction.
#[test]
fn an_end_correction_leaves_raised_and_other_patients_alone() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-05-01T10:00:00Z"),
        NHS,
    ));
    let same = end_update(
        "m2",
        "V1",
        K::Inpatient,
        t("2024-05-01T10:00:00Z"),
        t("2024-05-01T11:00:00Z"),
        NHS,
    );
    assert!(changed(&tr.apply(&same)).is_empty());
    let other = end_update(
        "m3",
        "V1",
        K::Inpatient,
        t("2024-05-01T15:00:00Z"),
        t("2024-05-01T16:00:00Z"),
        NHS2,
    );
    assert!(changed(&tr.apply(&other)).is_empty());
    assert_eq!(tr.counters().ends_corrected, 0);
    let fx = tr.advance_to(t("2024-05-02T11:00:00Z"));
    assert_eq!(kinds(&fx), vec![A::Overdue]);
    let late = end_update(
        "m4",
        "V1",
        K::Inpatient,
        t("2024-05-01T15:00:00Z"),
        t("2024-05-02T11:30:00Z"),
        NHS,
    );
    assert!(changed(&tr.apply(&late)).is_empty());
    assert_eq!(tr.counters().ends_corrected, 0);
}

/// A correction of an attendance's end across a rule's effective date
/// (00:30 BST on 1 April 2019, when the 7-day rule began, corrected to
/// 23:30 the evening before, under the 10-day rule; and the reverse) takes
/// the rule of the corrected date, by A08 or by a FHIR Encounter's later
/// version, and keeps it across a restart; the expectation keeps its id,
/// and the first end's A03 sent again is a repeat. Judged by the first
/// end's rule, a letter sent on day 9 was `late` and raised `overdue`
/// under a rule that did not apply, and the reverse was told a day late.
#[test]
fn a_corrected_end_across_an_effective_date_takes_that_dates_rule() {
    let before = t("2019-03-31T22:30:00Z"); // 23:30 BST, 31 March
    let after = t("2019-03-31T23:30:00Z"); // 00:30 BST, 1 April
    for (how, restart) in [("a08", false), ("a08", true), ("fhir", false)] {
        let mut tr = tracker();
        let mut store = Store::default();
        let fix = |msg: &str, visit: &str, ended, nhs| match how {
            "a08" => end_update(
                msg,
                visit,
                K::Outpatient,
                ended,
                t("2019-04-01T09:00:00Z"),
                nhs,
            ),
            _ => {
                let mut e = end(msg, visit, K::Outpatient, ended, nhs);
                e.source.format = tocsin_event::Format::FhirR4;
                e
            }
        };
        let fx = tr.apply(&end("m1", "V1", K::Outpatient, after, NHS));
        store.commit(&fx);
        let first = changed(&fx).pop().expect("created");
        assert_eq!(first.rule.id, "clinic-letter-7d");
        let fx = tr.apply(&fix("m2", "V1", before, NHS));
        store.commit(&fx);
        let moved = changed(&fx);
        assert_eq!(moved.len(), 1, "{how}: {fx:?}");
        assert_eq!(moved[0].rule.id, "clinic-letter-10d", "{how}");
        assert_eq!(moved[0].id, first.id, "{how}: the id is kept");
        assert_eq!(moved[0].deadline, t("2019-04-10T22:30:00Z"), "{how}");
        // The other way: 10 days corrected to 7.
        store.commit(&tr.apply(&end("m3", "V2", K::Outpatient, before, NHS2)));
        let fx = tr.apply(&fix("m4", "V2", after, NHS2));
        store.commit(&fx);
        assert_eq!(changed(&fx)[0].rule.id, "clinic-letter-7d", "{how}");
        if restart {
            tr = store.restored();
        }
        // The A03 of the first end, sent again, is a repeat.
        let fx = tr.apply(&end("m5", "V1", K::Outpatient, after, NHS));
        assert!(changed(&fx).is_empty(), "{how}: {fx:?}");
        assert_eq!(tr.open_count(), 2, "{how}");
        let fx = tr.advance_to(t("2019-04-08T00:00:00Z"));
        let overdue = alerts(&fx);
        assert_eq!(overdue.len(), 1, "{how} restart {restart}: {fx:?}");
        assert_eq!(overdue[0].kind, A::Overdue);
        assert_eq!(overdue[0].rule.id, "clinic-letter-7d");
        assert_eq!(overdue[0].encounter.id.as_deref(), Some("V2"));
        let fx = tr.apply(&doc(
            "m6",
            Some("V1"),
            D::ClinicLetter,
            t("2019-04-09T12:00:00Z"),
            Some(NHS),
        ));
        assert!(kinds(&fx).is_empty(), "{how} restart {restart}: {fx:?}");
        let settled = changed(&fx).pop().expect("settled");
        assert_eq!(settled.status, S::OnTime, "{how} restart {restart}");
        assert_eq!(settled.rule.id, "clinic-letter-10d");
        assert_eq!(settled.id, first.id);
    }
}

/// Restored under a policy whose rule has other durations now (edited in
/// place), an open expectation keeps the rule it was made under, and the
/// tracker names it with how many keep it, for the gateway to say; under
/// the same policy it names none.
#[test]
fn a_restore_names_the_rules_its_open_expectations_keep() {
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml").replacen(
        "due_after = \"24h\"",
        "due_after = \"48h\"",
        1,
    );
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    let mut store = Store::default();
    for (m, v) in [("m1", "V1"), ("m2", "V2")] {
        store.commit(&tr.apply(&end(m, v, K::Inpatient, t("2024-05-01T10:00:00Z"), NHS)));
    }
    assert!(tr.rules_kept_from_store().is_empty());
    let restored = store.restored();
    assert_eq!(
        restored.rules_kept_from_store(),
        vec![("discharge-summary-24h".to_owned(), 2)]
    );
    assert_eq!(restored.next_deadline(), Some(t("2024-05-03T10:00:00Z")));
    // An update repeating the end (with the disposition every A08 after a
    // discharge carries) moves no deadline.
    let mut restored = restored;
    let mut update = end_update(
        "m3",
        "V1",
        K::Inpatient,
        t("2024-05-01T10:00:00Z"),
        t("2024-05-01T12:00:00Z"),
        NHS,
    );
    update.encounter.as_mut().unwrap().discharge_disposition = Some("01".into());
    assert!(changed(&restored.apply(&update)).is_empty());
    assert_eq!(restored.rules_kept_from_store()[0].1, 2);
    assert_eq!(restored.next_deadline(), Some(t("2024-05-03T10:00:00Z")));
    let mut store = Store::default();
    store.commit(&tracker().apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-05-01T10:00:00Z"),
        NHS,
    )));
    assert!(store.restored().rules_kept_from_store().is_empty());
}

/// An A08 giving a discharge disposition a policy exclusion names (an
/// emergency attendance ending in admission, whose summary the inpatient
/// stay's discharge will owe) withdraws the attendance's open expectation,
/// with `cancelled` to whoever was warned, and counts it excluded: kept, it
/// went overdue although the policy excludes it. An update giving none, or
/// one no exclusion names, changes nothing. (An update is read only when it
/// gives the end or a disposition, as one sent after a discharge does.)
#[test]
fn an_update_whose_disposition_is_excluded_withdraws_the_expectation() {
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml")
        .replace("# due_soon = \"20h\"", "due_soon = \"20h\"")
        + "\n[[exclusion]]\nreason = \"admitted\"\nencounter_kinds = [\"emergency\"]\ndischarge_dispositions = [\"ADM\"]\n";
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    let ended = t("2024-05-01T10:00:00Z");
    let mut a03 = end("m1", "V1", K::Emergency, ended, NHS);
    a03.encounter.as_mut().unwrap().discharge_disposition = Some("01".into());
    assert_eq!(changed(&tr.apply(&a03)).len(), 1);
    let update = |msg: &str, disposition: Option<&str>, at| {
        let mut e = base(msg, EventType::EncounterUpdated, at, Some(NHS));
        e.encounter = Some(tocsin_event::Encounter {
            id: Some("V1".into()),
            kind: Some(K::Emergency),
            ended_at: Some(ended),
            discharge_disposition: disposition.map(Into::into),
            ..Default::default()
        });
        e
    };
    assert!(changed(&tr.apply(&update("m2", None, t("2024-05-01T11:00:00Z")))).is_empty());
    let fx = tr.apply(&update("m3", Some("01"), t("2024-05-01T12:00:00Z")));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        kinds(&tr.advance_to(t("2024-05-02T06:30:00Z"))),
        vec![A::DueSoon]
    );
    let fx = tr.apply(&update("m4", Some("ADM"), t("2024-05-02T07:00:00Z")));
    let withdrawn = changed(&fx);
    assert_eq!(withdrawn.len(), 1, "{fx:?}");
    assert_eq!(withdrawn[0].status, S::Cancelled);
    assert_eq!(kinds(&fx), vec![A::Cancelled]);
    assert_eq!(tr.counters().excluded, 1);
    assert_eq!(tr.open_count(), 0);
    assert!(kinds(&tr.advance_to(t("2024-05-03T00:00:00Z"))).is_empty());
}

/// The disposition corrected by an A08 without PV1-45 (most A08s give
/// none) or by the A03 sent again: the attendance's expectation is decided
/// again by it, keeping its end, and withdrawn when an exclusion now
/// matches, as a FHIR Encounter's later version withdraws it. Ignored, the
/// attendance went overdue although the policy excludes it. A resent A03
/// whose time moved (EVN-2) still keeps the first end.
#[test]
fn a_disposition_corrected_without_the_end_is_decided_again() {
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml").to_owned()
        + "\n[[exclusion]]\nreason = \"admitted\"\nencounter_kinds = [\"emergency\"]\ndischarge_dispositions = [\"ADM\"]\n";
    let ended = t("2024-05-01T10:00:00Z");
    let a03 = |msg: &str, at, disposition: &str| {
        let mut e = end(msg, "V1", K::Emergency, at, NHS);
        e.encounter.as_mut().unwrap().discharge_disposition = Some(disposition.into());
        e
    };
    let no_end_update = {
        let mut e = base(
            "m2",
            EventType::EncounterUpdated,
            t("2024-05-01T12:00:00Z"),
            Some(NHS),
        );
        e.encounter = Some(tocsin_event::Encounter {
            id: Some("V1".into()),
            kind: Some(K::Emergency),
            discharge_disposition: Some("ADM".into()),
            ..Default::default()
        });
        e
    };
    let resent = a03("m2", t("2024-05-01T12:00:00Z"), "ADM");
    for correction in [no_end_update, resent] {
        let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
        assert_eq!(changed(&tr.apply(&a03("m1", ended, "01"))).len(), 1);
        let fx = tr.apply(&correction);
        let withdrawn = changed(&fx);
        assert_eq!(withdrawn.len(), 1, "{correction:?}: {fx:?}");
        assert_eq!(withdrawn[0].status, S::Cancelled);
        assert_eq!(tr.open_count(), 0);
        assert_eq!(tr.counters().excluded, 1, "counted once");
        assert!(kinds(&tr.advance_to(t("2024-05-03T00:00:00Z"))).is_empty());
    }
    // Once overdue is raised the expectation stands whatever a later
    // version says, and an exclusion it now names is not counted: the
    // end was owed, and still is.
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    let fhir = |mut e: tocsin_event::InterfaceEvent| {
        e.source.format = tocsin_event::Format::FhirR4;
        e
    };
    tr.apply(&fhir(a03("m1", ended, "01")));
    assert_eq!(
        kinds(&tr.advance_to(t("2024-05-03T00:00:00Z"))),
        vec![A::Overdue]
    );
    let fx = tr.apply(&fhir(a03("m2", ended, "ADM")));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.open_count(), 1);
    assert_eq!(tr.counters().excluded, 0);
    // Sent again with the same disposition and a later time, the A03
    // keeps the first end: the deadline stands.
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    tr.apply(&a03("m1", ended, "01"));
    assert!(changed(&tr.apply(&a03("m2", t("2024-05-01T12:00:00Z"), "01"))).is_empty());
    assert_eq!(tr.next_deadline(), Some(t("2024-05-02T10:00:00Z")));
}

/// Visit numbers collide across systems (the PAS and the ED system each
/// number their own): an A11 for another patient's visit numbered alike
/// withdraws nothing of this patient's, which stays owed. One naming no
/// NHS number, or this patient's, still cancels.
#[test]
fn a_cancellation_for_another_patients_visit_numbered_alike_cancels_nothing() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "12345",
        K::Inpatient,
        t("2024-02-05T14:00:00Z"),
        NHS,
    ));
    let mut other = cancel(
        "m2",
        EventType::EncounterCancelled,
        "12345",
        t("2024-02-05T19:00:00Z"),
    );
    other.patient.nhs_number = Some(NHS2.into());
    assert!(changed(&tr.apply(&other)).is_empty());
    assert_eq!(tr.open_count(), 1);
    assert_eq!(tr.counters().cancellations_unmatched, 1);
    let mut own = other.clone();
    own.source.message_id = "m3".into();
    own.patient.nhs_number = Some(NHS.into());
    let fx = tr.apply(&own);
    assert_eq!(changed(&fx)[0].status, S::Cancelled);
    assert_eq!(tr.open_count(), 0);
}

/// A13 then A03 (the PAS correcting a discharge time) after the summary was
/// sent and accepted: the summary settles the corrected discharge with its
/// acknowledgement, so no `unconfirmed` follows. Before, the acknowledgement
/// was lost, and `unconfirmed` was raised stamped before the corrected
/// discharge ended.
#[test]
fn a_corrected_discharge_keeps_the_acknowledgement_of_its_summary() {
    let cfg = TrackerConfig {
        unconfirmed_after: Some(ConfigDuration::hours(2)),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-02-05T14:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-02-05T16:00:00Z"),
        Some(NHS),
    ));
    tr.apply(&ack("a1", "m2", false, t("2024-02-05T16:01:00Z")));
    tr.apply(&cancel(
        "m3",
        EventType::EncounterDischargeCancelled,
        "V1",
        t("2024-02-05T17:00:00Z"),
    ));
    let fx = tr.apply(&end(
        "m4",
        "V1",
        K::Inpatient,
        t("2024-02-06T10:00:00Z"),
        NHS,
    ));
    let last = changed(&fx).pop().expect("settled");
    assert_eq!(last.status, S::OnTime);
    assert_eq!(last.delivery, Some(DeliveryStatus::Acknowledged));
    let later = tr.advance_to(t("2024-02-10T00:00:00Z"));
    assert!(kinds(&later).is_empty(), "{later:?}");
}

/// A summary without a visit number whose message gives its stay's start
/// (an MDM's PV1-44) is about no encounter that ended before that start:
/// read before its own A03, it waits for it rather than settling the
/// patient's earlier stay, which stays owed. Before, matched by patient to
/// the nearest end, it settled the earlier stay (`late`, `resolved`) and
/// left its own overdue.
#[test]
fn a_summary_of_a_later_stay_does_not_settle_an_earlier_one() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V601",
        K::Inpatient,
        t("2024-02-10T10:00:00Z"),
        NHS,
    ));
    let mut d = doc(
        "m2",
        None,
        D::DischargeSummary,
        t("2024-02-14T09:30:00Z"),
        Some(NHS),
    );
    d.encounter = Some(tocsin_event::Encounter {
        started_at: Some(t("2024-02-12T08:00:00Z")),
        ..Default::default()
    });
    let fx = tr.apply(&d);
    assert_eq!(kinds(&fx), vec![A::Overdue], "V601 is still owed: {fx:?}");
    assert_eq!(tr.counters().documents_pending, 1);
    let fx = tr.apply(&end(
        "m3",
        "V602",
        K::Inpatient,
        t("2024-02-14T10:00:00Z"),
        NHS,
    ));
    let settled = changed(&fx).pop().expect("settled");
    assert_eq!(settled.encounter.id.as_deref(), Some("V602"));
    assert_eq!(settled.status, S::OnTime);
    assert_eq!(tr.open_count(), 1, "V601 overdue");
}

/// A discharge whose patient class has no mapping (kind `other`, with the
/// normaliser's unmapped_code warning) is counted as an end of no known
/// kind, the notice operators are alerted on; one mapped to `other` on
/// purpose is not. Before, both passed without a trace.
#[test]
fn an_end_of_an_unmapped_class_is_counted() {
    let mut tr = tracker();
    let mut unmapped = end("m1", "V1", K::Other, t("2024-02-05T14:00:00Z"), NHS);
    unmapped.warnings.push(tocsin_event::Warning {
        code: tocsin_event::WarningCode::UnmappedCode,
        message: "patient class in PV1-2 has no mapping in [hl7.patient_class]".into(),
        raw: Some("Z".into()),
        location: Some("PV1-2".into()),
    });
    assert!(changed(&tr.apply(&unmapped)).is_empty());
    assert_eq!(tr.counters().ends_without_kind, 1);
    tr.apply(&end("m2", "V2", K::Other, t("2024-02-05T15:00:00Z"), NHS));
    assert_eq!(tr.counters().ends_without_kind, 1);
    assert_eq!(tr.open_count(), 0);
    // A trust that wrote a rule for `other` tracks such ends: nothing to
    // tell (the notice pages operators).
    let text = include_str!("../../../config/policies/nhs-standard-contract.toml").to_owned()
        + "\n[[rule]]\nid = \"other-2d\"\nclause = \"local\"\ndocument_kind = \"other\"\n\
           encounter_kinds = [\"other\"]\ndue_after = \"2d\"\neffective_from = 2017-04-01\n";
    let mut tr = Tracker::new(Policy::from_toml(&text).unwrap(), strict());
    assert_eq!(changed(&tr.apply(&unmapped)).len(), 1);
    assert_eq!(tr.counters().ends_without_kind, 0);
}

/// Two systems numbering visits alike (the PAS and the ED system): an end
/// for another patient naming a visit number this patient's open
/// expectation has is no repeat of it. It cannot be tracked beside it (its
/// expectation would take the same id), so it is counted as a collision,
/// the notice operators are alerted on, rather than passing as a repeat.
#[test]
fn an_end_for_another_patients_visit_numbered_alike_is_a_collision() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "12345",
        K::Inpatient,
        t("2024-02-05T14:00:00Z"),
        NHS,
    ));
    let fx = tr.apply(&end(
        "m2",
        "12345",
        K::Emergency,
        t("2024-02-05T18:00:00Z"),
        NHS2,
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    let c = tr.counters();
    assert_eq!((c.visit_collisions, c.repeated_ends), (1, 0));
    // This patient's own repeat is still a repeat.
    tr.apply(&end(
        "m3",
        "12345",
        K::Inpatient,
        t("2024-02-05T14:00:00Z"),
        NHS,
    ));
    let c = tr.counters();
    assert_eq!((c.visit_collisions, c.repeated_ends), (1, 1));
}

/// The same collision when neither patient has an NHS number (untraced,
/// or a number that failed its check): hospital numbers of the same issuer
/// that differ tell them apart. The other patient's end, summary and
/// cancellation leave this patient's expectation alone; with no issuer in
/// common nothing tells them apart, and the visit number decides.
#[test]
fn hospital_numbers_of_one_issuer_tell_patients_apart_without_nhs_numbers() {
    let untraced = |mut e: tocsin_event::InterfaceEvent, system: &str, value: &str| {
        e.patient.nhs_number = None;
        with_local(e, system, value)
    };
    let at = |s: &str| t(&format!("2024-02-05T{s}:00Z"));
    let mut tr = tracker();
    tr.apply(&untraced(
        end("m1", "V100", K::Inpatient, at("14:00"), NHS),
        "RXX",
        "L1",
    ));
    let fx = tr.apply(&untraced(
        end("m2", "V100", K::Emergency, at("15:00"), NHS),
        "RXX",
        "L2",
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.counters().visit_collisions, 1);
    // The other patient's summary naming the visit settles nothing.
    let mut other_doc = doc("m3", Some("V100"), D::DischargeSummary, at("16:00"), None);
    other_doc = untraced(other_doc, "RXX", "L2");
    let fx = tr.apply(&other_doc);
    assert!(changed(&fx).is_empty(), "{fx:?}");
    // Nor does the other patient's cancellation withdraw it.
    let fx = tr.apply(&untraced(
        cancel(
            "m4",
            EventType::EncounterDischargeCancelled,
            "V100",
            at("16:30"),
        ),
        "RXX",
        "L2",
    ));
    assert!(changed(&fx).is_empty() && kinds(&fx).is_empty(), "{fx:?}");
    // This patient's own summary, carrying the number the PAS has since
    // traced as well, settles it.
    let own = with_local(
        doc(
            "m5",
            Some("V100"),
            D::DischargeSummary,
            at("17:00"),
            Some(NHS),
        ),
        "RXX",
        "L1",
    );
    assert_eq!(changed(&tr.apply(&own))[0].status, S::OnTime);
}

/// A discharge cancelled (A13) after its `overdue` went out, then recorded
/// again days later and still without a summary: the second discharge's
/// `overdue` is an alert of its own (another expectation id, so another
/// alert id), not a repeat the store and subscribers drop. The withdrawn
/// expectation stays cancelled in the store beside it; across a restart
/// too. One cancelled before any alert keeps its id, as before.
#[test]
fn a_discharge_recorded_again_after_its_overdue_was_cancelled_alerts_anew() {
    for restart in [false, true] {
        let mut tr = tracker();
        let mut store = Store::default();
        store.commit(&tr.apply(&end(
            "m1",
            "V100",
            K::Inpatient,
            t("2024-02-05T14:00:00Z"),
            NHS,
        )));
        let fx = tr.advance_to(t("2024-02-06T15:00:00Z"));
        store.commit(&fx);
        let first = alerts(&fx);
        assert_eq!(first.len(), 1);
        let fx = tr.apply(&cancel(
            "m2",
            EventType::EncounterDischargeCancelled,
            "V100",
            t("2024-02-07T09:00:00Z"),
        ));
        assert_eq!(kinds(&fx), [A::Cancelled]);
        store.commit(&fx);
        if restart {
            tr = store.restored();
        }
        let fx = tr.apply(&end(
            "m3",
            "V100",
            K::Inpatient,
            t("2024-02-09T11:00:00Z"),
            NHS,
        ));
        store.commit(&fx);
        let second_exp = changed(&fx)[0].clone();
        assert_ne!(second_exp.id, first[0].expectation_id, "restart {restart}");
        let fx = tr.advance_to(t("2024-02-10T12:00:00Z"));
        store.commit(&fx);
        let second = alerts(&fx);
        assert_eq!(second.len(), 1, "restart {restart}: {fx:?}");
        assert_eq!(second[0].kind, A::Overdue);
        assert_ne!(second[0].alert_id, first[0].alert_id, "restart {restart}");
        // The first's overdue and its cancellation, the second's overdue.
        assert_eq!(store.alerts.len(), 3);
        let statuses: Vec<S> = store.expectations.values().map(|e| e.status).collect();
        assert!(statuses.contains(&S::Cancelled) && statuses.contains(&S::Overdue));
        // The summary, late, settles the second discharge; the first stays
        // cancelled.
        let fx = tr.apply(&doc(
            "m4",
            Some("V100"),
            D::DischargeSummary,
            t("2024-02-11T10:00:00Z"),
            Some(NHS),
        ));
        let settled = changed(&fx).pop().unwrap();
        assert_eq!(
            (settled.id.clone(), settled.status),
            (second_exp.id.clone(), S::Late)
        );
    }
    // Cancelled before anything was raised: the discharge recorded again is
    // the same expectation, as before.
    let mut tr = tracker();
    let first = changed(&tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-02-05T14:00:00Z"),
        NHS,
    )))[0]
        .id
        .clone();
    tr.apply(&cancel(
        "m2",
        EventType::EncounterDischargeCancelled,
        "V1",
        t("2024-02-05T16:00:00Z"),
    ));
    let again = changed(&tr.apply(&end(
        "m3",
        "V1",
        K::Inpatient,
        t("2024-02-05T18:00:00Z"),
        NHS,
    )))[0]
        .id
        .clone();
    assert_eq!(again, first);
}

/// The open gauges above zero, as (document kind, encounter kind, open).
fn open_gauges(tr: &Tracker) -> Vec<(D, K, u64)> {
    let mut g: Vec<_> = tr
        .gauges()
        .filter(|(_, _, g)| g.open + g.overdue > 0)
        .map(|(d, k, g)| (d, k, g.open))
        .collect();
    g.sort_by_key(|(d, k, _)| (d.as_str(), k.as_str()));
    g
}

/// An outpatient attendance whose class the PAS corrects to a day case
/// after its end (an A08, or a FHIR Encounter's later version) owes a
/// discharge summary within 24 hours, not a clinic letter within 7 days:
/// the letter's expectation is withdrawn and the summary's opened, kept
/// across a restart and settled by the summary. The update sent again
/// changes nothing more.
#[test]
fn a_class_corrected_after_the_end_owes_what_the_new_kind_owes() {
    for (how, restart) in [("a08", false), ("a08", true), ("fhir", false)] {
        let mut tr = tracker();
        let mut store = Store::default();
        let ended = t("2024-05-01T10:00:00Z");
        store.commit(&tr.apply(&end("m1", "V1", K::Outpatient, ended, NHS)));
        assert_eq!(open_gauges(&tr), vec![(D::ClinicLetter, K::Outpatient, 1)]);
        let fix = |msg: &str, at| match how {
            "a08" => end_update(msg, "V1", K::DayCase, ended, at, NHS),
            _ => {
                let mut e = end(msg, "V1", K::DayCase, ended, NHS);
                e.occurred_at = at;
                e.source.format = tocsin_event::Format::FhirR4;
                e
            }
        };
        let fx = tr.apply(&fix("m2", t("2024-05-01T11:00:00Z")));
        store.commit(&fx);
        let c = changed(&fx);
        assert_eq!(c.len(), 2, "{how}: {fx:?}");
        assert_eq!(
            (c[0].status, c[0].document_kind),
            (S::Cancelled, D::ClinicLetter),
            "{how}"
        );
        assert_eq!(
            (c[1].status, c[1].document_kind),
            (S::Open, D::DischargeSummary)
        );
        assert_eq!(c[1].encounter.kind, K::DayCase);
        assert_eq!(c[1].deadline, t("2024-05-02T10:00:00Z"));
        assert!(kinds(&fx).is_empty(), "nothing was raised to withdraw");
        assert_eq!(tr.counters().kinds_corrected, 1, "{how}");
        assert_eq!(
            open_gauges(&tr),
            vec![(D::DischargeSummary, K::DayCase, 1)],
            "{how}"
        );
        if restart {
            tr = store.restored();
        }
        assert_eq!(tr.next_deadline(), Some(t("2024-05-02T10:00:00Z")));
        let fx = tr.apply(&fix("m3", t("2024-05-01T12:00:00Z")));
        assert!(changed(&fx).is_empty(), "{how}: {fx:?}");
        assert_eq!(tr.open_count(), 1);
        let fx = tr.apply(&doc(
            "m4",
            Some("V1"),
            D::DischargeSummary,
            t("2024-05-02T09:00:00Z"),
            Some(NHS),
        ));
        let settled = changed(&fx).pop().expect("settled");
        assert_eq!(settled.status, S::OnTime, "{how} restart {restart}");
        assert_eq!(settled.encounter.kind, K::DayCase);
        assert!(kinds(&tr.advance_to(t("2024-06-01T00:00:00Z"))).is_empty());
    }
}

/// A class corrected between kinds that owe the same document (a day case
/// that stayed the night, recorded again as inpatient) keeps the
/// expectation, its id and deadline, under the new kind. A class no rule
/// covers (`other`, as an unmapped code arrives) is no correction, and
/// once `overdue` is raised a correction changes nothing.
#[test]
fn a_class_corrected_to_a_kind_owing_the_same_document_keeps_the_expectation() {
    let mut tr = tracker();
    let ended = t("2024-05-01T10:00:00Z");
    let first = changed(&tr.apply(&end("m1", "V1", K::DayCase, ended, NHS)))
        .pop()
        .expect("opened");
    let unmapped = end_update("m2", "V1", K::Other, ended, t("2024-05-01T11:00:00Z"), NHS);
    assert!(changed(&tr.apply(&unmapped)).is_empty());
    let fx = tr.apply(&end_update(
        "m3",
        "V1",
        K::Inpatient,
        ended,
        t("2024-05-01T12:00:00Z"),
        NHS,
    ));
    let c = changed(&fx);
    assert_eq!(c.len(), 1, "{fx:?}");
    assert_eq!((c[0].id.clone(), c[0].status), (first.id.clone(), S::Open));
    assert_eq!(c[0].encounter.kind, K::Inpatient);
    assert_eq!(c[0].deadline, first.deadline);
    assert_eq!(tr.counters().kinds_corrected, 1);
    assert_eq!(
        open_gauges(&tr),
        vec![(D::DischargeSummary, K::Inpatient, 1)]
    );
    assert_eq!(tr.next_deadline(), Some(first.deadline));
    // Overdue raised: a later correction stands down.
    assert_eq!(
        kinds(&tr.advance_to(t("2024-05-02T11:00:00Z"))),
        vec![A::Overdue]
    );
    let fx = tr.apply(&end_update(
        "m4",
        "V1",
        K::Outpatient,
        ended,
        t("2024-05-02T12:00:00Z"),
        NHS,
    ));
    assert!(changed(&fx).is_empty(), "{fx:?}");
    assert_eq!(tr.counters().kinds_corrected, 1);
    assert_eq!(tr.open_count(), 1);
}

/// A site, specialty or GP practice sent as the text that names no value
/// (`(none)`, what the report, the API's filters and Alertmanager call an
/// unknown one) is no value: kept, it was a second group under the same
/// name, and one group's document withdrew the other's Alertmanager alert.
#[test]
fn a_value_sent_as_the_name_of_none_is_none() {
    let mut tr = tracker();
    let mut named_none = end("m1", "V1", K::Inpatient, t("2024-01-10T10:00:00Z"), NHS);
    if let Some(e) = named_none.encounter.as_mut() {
        e.site = Some(tocsin_tracker::compliance::UNKNOWN.into());
        e.specialty = Some("(none)".into());
    }
    named_none.gp_practice = Some("(none)".into());
    let fx = tr.apply(&named_none);
    let opened = &changed(&fx)[0];
    assert_eq!(opened.encounter.site, None);
    assert_eq!(opened.encounter.specialty, None);
    assert_eq!(opened.gp_practice, None);
    // A real value is kept.
    let fx = tr.apply(&end(
        "m2",
        "V2",
        K::Inpatient,
        t("2024-01-10T11:00:00Z"),
        NHS,
    ));
    assert_eq!(changed(&fx)[0].encounter.site.as_deref(), Some("RXX01"));
}

/// What reaches a `delivery_failed` alert's `failure` is codes only: a
/// GP system's free text put where a code belongs (the patient's NHS
/// number and name among it) is dropped, the code that is one kept.
#[test]
fn free_text_in_a_code_slot_never_reaches_an_alert() {
    let mut tr = tracker();
    tr.apply(&end(
        "m1",
        "V1",
        K::Inpatient,
        t("2024-01-10T10:00:00Z"),
        NHS,
    ));
    tr.apply(&doc(
        "m2",
        Some("V1"),
        D::DischargeSummary,
        t("2024-01-10T12:00:00Z"),
        Some(NHS),
    ));
    let mut refusal = ack("a1", "m2", true, t("2024-01-10T12:01:00Z"));
    if let Some(a) = refusal.ack.as_mut() {
        a.detail_code = Some("Patient 4010232137 ROBINSON not registered".into());
    }
    let fx = tr.apply(&refusal);
    let failure = alerts(&fx)[0].failure.clone().expect("a failure");
    assert_eq!(failure.code, "AE");
    assert_eq!(failure.detail_code, None);
    for (code, is) in [
        ("30002", true),
        ("204", true),
        ("fatal-error", true),
        ("AE", true),
        ("4010232137", false),
        ("30002 ROBINSON", false),
        ("", false),
        ("a-code-longer-than-sixteen", false),
    ] {
        assert_eq!(tocsin_tracker::looks_like_a_code(code), is, "{code:?}");
    }
}

/// An ITK3 `fatal-error` is final: an acceptance of the same message read
/// after it (the infrastructure acknowledgement, 20013, stamped after the
/// business refusal) does not clear it, where one after a `transient-error`
/// (a retry's) does.
#[test]
fn an_itk3_fatal_error_is_not_cleared_by_a_later_acceptance() {
    for (code, cleared) in [("fatal-error", false), ("transient-error", true)] {
        let mut tr = tracker();
        tr.apply(&end(
            "m1",
            "V1",
            K::Inpatient,
            t("2024-01-10T10:00:00Z"),
            NHS,
        ));
        tr.apply(&doc(
            "m2",
            Some("V1"),
            D::DischargeSummary,
            t("2024-01-10T12:00:00Z"),
            Some(NHS),
        ));
        let mut refusal = ack("a1", "m2", true, t("2024-01-10T12:02:00Z"));
        if let Some(a) = refusal.ack.as_mut() {
            a.code = code.into();
        }
        let fx = tr.apply(&refusal);
        assert_eq!(kinds(&fx), [A::DeliveryFailed], "{code}");
        let mut accepted = ack("a2", "m2", false, t("2024-01-10T12:03:00Z"));
        if let Some(a) = accepted.ack.as_mut() {
            a.code = "ok".into();
        }
        let fx = tr.apply(&accepted);
        let delivery = changed(&fx).last().map(|e| e.delivery);
        if cleared {
            assert_eq!(delivery, Some(Some(DeliveryStatus::Acknowledged)), "{code}");
            assert_eq!(tr.counters().deliveries_resent, 1, "{code}");
        } else {
            assert!(
                delivery.is_none() || delivery == Some(Some(DeliveryStatus::Failed)),
                "{code}: {fx:?}"
            );
            assert_eq!(tr.counters().deliveries_resent, 0, "{code}");
        }
    }
}
