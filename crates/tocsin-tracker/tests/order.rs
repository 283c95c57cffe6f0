//! Order independence and restart: the same messages give the same alerts
//! whatever order they arrive in (within the tolerated disorder), and a
//! tracker rebuilt from stored state carries on exactly as one that never
//! stopped.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tocsin_event::{DocumentKind as D, EncounterKind as K, InterfaceEvent};
use tocsin_tracker::{
    AlertKind, ConfigDuration, Effect, Expectation, ExpectationStatus, Policy, Tracker,
    TrackerConfig,
};

/// One generated encounter: its kind, end (hours after the base), and
/// optionally a document (delay in hours, whether it names the encounter)
/// and an acknowledgement of it (failed or not).
#[derive(Debug, Clone)]
struct Case {
    kind: K,
    end_h: i64,
    doc: Option<(i64, bool)>,
    ack: Option<bool>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(K::Inpatient), Just(K::Outpatient), Just(K::Emergency)],
        0i64..1500,
        proptest::option::weighted(0.8, (-20i64..400, any::<bool>())),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(kind, end_h, doc, ack)| Case {
            kind,
            end_h,
            doc,
            ack,
        })
}

struct Msg {
    ev: InterfaceEvent,
    /// The instant the clock must not have passed when this message is
    /// applied: the deadline for ends and on-time documents, and for every
    /// message its time plus the duplicate horizon.
    must_beat: Option<DateTime<Utc>>,
    /// Index of the message that must come first (an ack's document).
    after: Option<usize>,
}

fn messages(cases: &[Case], dup_every: usize) -> Vec<Msg> {
    let base = t("2024-01-01T00:00:00Z");
    let mut out = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let ended = base + Duration::hours(c.end_h);
        let due = if c.kind == K::Outpatient {
            Duration::days(7)
        } else {
            Duration::hours(24)
        };
        let deadline = ended + due;
        let nhs = format!("P{i}");
        let visit = format!("V{i}");
        out.push(Msg {
            ev: end(&format!("end{i}"), &visit, c.kind, ended, &nhs),
            must_beat: Some(deadline),
            after: None,
        });
        if let Some((delay, named)) = c.doc {
            let issued = ended + Duration::hours(delay);
            let kind = if c.kind == K::Outpatient {
                D::ClinicLetter
            } else {
                D::DischargeSummary
            };
            let visit = named.then_some(visit.as_str());
            let d_idx = out.len();
            out.push(Msg {
                ev: doc(&format!("doc{i}"), visit, kind, issued, Some(&nhs)),
                must_beat: (issued <= deadline).then_some(deadline),
                after: None,
            });
            if let Some(failed) = c.ack {
                // Acknowledgements attach within the ack horizon (7 days).
                out.push(Msg {
                    ev: ack(
                        &format!("ack{i}"),
                        &format!("doc{i}"),
                        failed,
                        issued + Duration::minutes(3),
                    ),
                    must_beat: Some(issued + Duration::days(7)),
                    after: Some(d_idx),
                });
            }
        }
    }
    // Exact duplicates of some messages (same message id and content).
    let n = out.len();
    for i in (0..n).step_by(dup_every.max(1)) {
        out.push(Msg {
            ev: out[i].ev.clone(),
            must_beat: None,
            after: Some(i),
        });
    }
    // Disorder is tolerated up to the duplicate horizon (30 days by
    // default): an older message is ignored as a possible duplicate.
    for m in &mut out {
        let stale = m.ev.occurred_at + Duration::days(30);
        m.must_beat = Some(m.must_beat.map_or(stale, |d| d.min(stale)));
    }
    out
}

/// An order of the messages, guided by `keys`, in which no message is applied
/// once the clock has passed the instant it must beat, and each ack (and
/// duplicate) follows its original.
fn allowed_order(msgs: &[Msg], keys: &[u32]) -> Vec<usize> {
    let mut done = vec![false; msgs.len()];
    let mut order = Vec::with_capacity(msgs.len());
    while order.len() < msgs.len() {
        let limit = msgs
            .iter()
            .enumerate()
            .filter(|(i, m)| !done[*i] && m.must_beat.is_some())
            .filter_map(|(_, m)| m.must_beat)
            .min();
        let pick = (0..msgs.len())
            .filter(|&i| !done[i])
            .filter(|&i| msgs[i].after.is_none_or(|a| done[a]))
            .filter(|&i| limit.is_none_or(|l| msgs[i].ev.occurred_at <= l))
            .min_by_key(|&i| (keys[i % keys.len()], i))
            .expect("the earliest message is always allowed");
        done[pick] = true;
        order.push(pick);
    }
    order
}

/// The generated traffic is sparse (up to 40 encounters over two months),
/// so gaps between its messages reach weeks; a real feed's are minutes.
/// `max_clock_jump` holds an event further ahead than that until the next
/// confirms it, which by design depends on what comes next (the scenario
/// tests `an_event_far_ahead_*` cover it): out of reach here.
fn outcome(
    msgs: &[Msg],
    order: &[usize],
) -> (BTreeSet<(String, AlertKind)>, BTreeMap<String, String>) {
    let cfg = TrackerConfig {
        max_clock_jump: ConfigDuration::days(365),
        ..strict()
    };
    let mut tr = Tracker::new(Policy::default_contract(), cfg);
    let mut store = Store::default();
    for &i in order {
        let fx = tr.apply(&msgs[i].ev);
        store.commit(&fx);
    }
    store.commit(&tr.advance_to(t("2025-01-01T00:00:00Z")));
    let alerts = store
        .alerts
        .values()
        .map(|a| (a.alert_id.clone(), a.kind))
        .collect();
    let status = store
        .expectations
        .values()
        .map(|e| (e.id.0.clone(), e.status.as_str().to_string()))
        .collect();
    (alerts, status)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any order in which each encounter's end (and each document issued in
    /// time) is applied before the clock passes its deadline, each
    /// acknowledgement after its document and within the ack horizon, and
    /// nothing later than the
    /// duplicate horizon, gives the same alerts and the same final states as
    /// reading in event-time order.
    #[test]
    fn same_alerts_in_any_tolerated_order(
        cases in proptest::collection::vec(case(), 1..40),
        keys in proptest::collection::vec(any::<u32>(), 1..200),
        dup_every in 3usize..9,
    ) {
        let msgs = messages(&cases, dup_every);
        let mut chrono_order: Vec<usize> = (0..msgs.len()).collect();
        chrono_order.sort_by_key(|&i| (msgs[i].ev.occurred_at, msgs[i].after.is_some(), i));
        let shuffled = allowed_order(&msgs, &keys);
        let a = outcome(&msgs, &chrono_order);
        let b = outcome(&msgs, &shuffled);
        prop_assert!(!a.1.is_empty());
        prop_assert_eq!(a, b);
    }
}

/// Thirty encounters of three kinds: documents missing, early, late, on
/// time; some acknowledged, some failed.
fn mixed_cases() -> Vec<Case> {
    (0..30)
        .map(|i| Case {
            kind: [K::Inpatient, K::Outpatient, K::Emergency][i % 3],
            end_h: (i as i64) * 7,
            doc: match i % 5 {
                0 => None,
                1 => Some((-3, true)),
                2 => Some((30, false)),
                3 => Some((200, true)),
                _ => Some((5, true)),
            },
            ack: (i % 4 == 0).then_some(i % 8 == 0),
        })
        .collect()
}

#[test]
fn restore_after_restart_gives_the_same_subsequent_alerts() {
    let msgs = messages(&mixed_cases(), 5);
    let order = in_time_order(&msgs);
    let until = t("2024-03-01T00:00:00Z");
    for cut in [1, order.len() / 3, order.len() / 2, order.len() - 1] {
        // A tracker that never stops.
        let mut a = Tracker::new(Policy::default_contract(), strict());
        let mut sa = Store::default();
        for &i in &order {
            sa.commit(&a.apply(&msgs[i].ev));
        }
        sa.commit(&a.advance_to(until));

        // One that stops after `cut` messages and is rebuilt from its store.
        let mut b = Tracker::new(Policy::default_contract(), strict());
        let mut sb = Store::default();
        for &i in &order[..cut] {
            sb.commit(&b.apply(&msgs[i].ev));
        }
        let mut b = sb.restored();
        assert_eq!(b.clock(), a_clock_after(&msgs, &order[..cut]));
        for &i in &order[cut..] {
            sb.commit(&b.apply(&msgs[i].ev));
        }
        sb.commit(&b.advance_to(until));
        assert!(!sa.alerts.is_empty());
        assert_eq!(sa.alerts, sb.alerts, "cut at {cut}");
        assert_eq!(sa.expectations, sb.expectations, "cut at {cut}");
        assert_eq!(sa.state, sb.state, "cut at {cut}");
    }
}

/// Replay into its temporary store turns state records off; judging must
/// not change, and none may be built.
#[test]
fn state_records_off_judges_alike_and_builds_none() {
    let msgs = messages(&mixed_cases(), 5);
    let order = in_time_order(&msgs);
    let run = |records: bool| {
        let cfg = TrackerConfig {
            unconfirmed_after: Some(ConfigDuration::from_secs(3600).unwrap()),
            ..strict()
        };
        let mut tr = Tracker::new(Policy::default_contract(), cfg);
        tr.set_state_records(records);
        let mut fx = Vec::new();
        for &i in &order {
            fx.extend(tr.apply(&msgs[i].ev));
        }
        fx.extend(tr.advance_to(t("2024-03-01T00:00:00Z")));
        fx
    };
    let state = |fx: &[Effect]| {
        fx.iter()
            .filter(|f| {
                matches!(
                    f,
                    Effect::StatePut(_)
                        | Effect::StateDeleted { .. }
                        | Effect::StateRangeDeleted(_)
                )
            })
            .count()
    };
    let judged = |fx: &[Effect]| -> Vec<String> {
        fx.iter()
            .filter(|f| {
                !matches!(
                    f,
                    Effect::StatePut(_)
                        | Effect::StateDeleted { .. }
                        | Effect::StateRangeDeleted(_)
                )
            })
            .map(|f| format!("{f:?}"))
            .collect()
    };
    let (on, off) = (run(true), run(false));
    assert!(state(&on) > 0);
    assert_eq!(state(&off), 0);
    let kinds: BTreeSet<_> = alerts(&on).iter().map(|a| a.kind).collect();
    assert!(kinds.len() >= 4, "a varied run: {kinds:?}");
    assert_eq!(judged(&on), judged(&off));
}

/// Replay's temporary store takes only final states: with unsettled
/// changes off, the alerts and the settled changes are the same, none of
/// an open or overdue expectation is built, and the settled changes plus
/// what `unsettled` hands over at the end are every expectation's last
/// state.
#[test]
fn unsettled_changes_off_leaves_the_final_states_alike() {
    let msgs = messages(&mixed_cases(), 5);
    let order = in_time_order(&msgs);
    // Cut off 250 hours in, while some are still open and some overdue.
    let until = t("2024-01-11T10:00:00Z");
    let run = |changes: bool| {
        let mut tr = Tracker::new(Policy::default_contract(), strict());
        tr.set_unsettled_changes(changes);
        let mut fx = Vec::new();
        for &i in &order {
            if msgs[i].ev.occurred_at <= until {
                fx.extend(tr.apply(&msgs[i].ev));
            }
        }
        fx.extend(tr.advance_to(until));
        let unsettled: Vec<Expectation> = tr.unsettled().collect();
        (fx, unsettled)
    };
    let changed = |fx: &[Effect]| -> Vec<Expectation> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::ExpectationChanged(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    };
    let ((on, on_unsettled), (off, off_unsettled)) = (run(true), run(false));
    assert_eq!(alerts(&on), alerts(&off));
    let settled = |v: Vec<Expectation>| -> Vec<Expectation> {
        v.into_iter().filter(|e| !e.status.is_unsettled()).collect()
    };
    assert_eq!(settled(changed(&on)), changed(&off));
    assert!(changed(&off).iter().all(|e| !e.status.is_unsettled()));
    assert_eq!(on_unsettled, off_unsettled);
    let last = |v: Vec<Expectation>| -> BTreeMap<String, Expectation> {
        v.into_iter().map(|e| (e.id.0.clone(), e)).collect()
    };
    let mut final_off = changed(&off);
    final_off.extend(off_unsettled.iter().cloned());
    assert_eq!(last(changed(&on)), last(final_off));
    let statuses: BTreeSet<_> = off_unsettled.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([
            ExpectationStatus::Open.as_str(),
            ExpectationStatus::Overdue.as_str()
        ]),
        "cut off while some are open and some overdue"
    );
    assert!(!changed(&off).is_empty(), "and some settled");
}

/// The messages' indexes in event-time order (an acknowledgement after the
/// document it names when both share a time).
fn in_time_order(msgs: &[Msg]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|&i| (msgs[i].ev.occurred_at, msgs[i].after.is_some(), i));
    order
}

fn a_clock_after(msgs: &[Msg], applied: &[usize]) -> Option<DateTime<Utc>> {
    applied.iter().map(|&i| msgs[i].ev.occurred_at).max()
}

#[test]
fn restore_refuses_unknown_state() {
    let rec = tocsin_tracker::StateRecord {
        namespace: "mystery".into(),
        key: "k".into(),
        value: tocsin_tracker::JsonText::of(&serde_json::Value::Null),
    };
    let e = Tracker::restore(Policy::default_contract(), strict(), vec![], vec![rec])
        .err()
        .unwrap();
    assert!(e.to_string().contains("mystery"), "{e}");
    let rec = tocsin_tracker::StateRecord {
        namespace: "clock".into(),
        key: "event_time".into(),
        value: tocsin_tracker::JsonText::of("yesterday"),
    };
    let e = Tracker::restore(Policy::default_contract(), strict(), vec![], vec![rec])
        .err()
        .unwrap();
    assert!(e.to_string().contains("yesterday"), "{e}");
    let rec = tocsin_tracker::StateRecord {
        namespace: "clock".into(),
        key: "event_time".into(),
        value: tocsin_tracker::JsonText::of(&1_700_000_000),
    };
    let e = Tracker::restore(Policy::default_contract(), strict(), vec![], vec![rec])
        .err()
        .unwrap();
    assert!(e.to_string().contains("expected an RFC 3339 string"), "{e}");
}

#[test]
fn state_text_is_checked_when_read_back_and_decodes_to_what_was_written() {
    use tocsin_tracker::JsonText;
    assert!(JsonText::parse("{\"a\": 1".into()).is_err(), "unterminated");
    assert!(JsonText::parse("1 2".into()).is_err(), "two values");
    let t = JsonText::parse("  {\"a\": [1, \"b\"]} ".into()).unwrap();
    let v: serde_json::Value = t.decode().unwrap();
    assert_eq!(v, serde_json::json!({"a": [1, "b"]}));
    let written = JsonText::of(&serde_json::json!({"when": "2025-01-06T10:00:00Z"}));
    assert_eq!(written.as_str(), r#"{"when":"2025-01-06T10:00:00Z"}"#);
    assert_eq!(
        JsonText::parse(written.as_str().to_string()).unwrap(),
        written
    );
}
