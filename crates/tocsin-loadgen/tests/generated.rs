//! The generator's output: deterministic, realistic in shape and size,
//! distinct identifiers, and every message accepted by tocsin-ingest.

mod common;

use std::collections::{HashMap, HashSet};

use tocsin_event::{EventType, InterfaceEvent, validate_nhs_number};
use tocsin_ingest::{ContentHint, IngestConfig, ingest};
use tocsin_loadgen::{Generator, Message, MessageFormat, MessageKind, Options, Profile};

fn hint(m: &Message) -> ContentHint {
    match m.format() {
        MessageFormat::Hl7 => ContentHint::Hl7,
        MessageFormat::FhirJson => ContentHint::FhirJson,
    }
}

fn normalise(m: &Message, cfg: &IngestConfig) -> Vec<InterfaceEvent> {
    let units = ingest(&m.body, Some(hint(m)), cfg);
    assert_eq!(units.len(), 1, "{}: one unit per message", m.file_name());
    match units.into_iter().next().map(|u| u.outcome) {
        Some(Ok(events)) => events,
        Some(Err(e)) => panic!(
            "{} rejected: {e}\n{}",
            m.file_name(),
            String::from_utf8_lossy(&m.body)
        ),
        None => unreachable!(),
    }
}

#[test]
fn the_same_seed_gives_byte_identical_output_and_another_seed_does_not() {
    let (a, sa) = common::generate(42, 2);
    let (b, sb) = common::generate(42, 2);
    assert_eq!(sa, sb);
    assert_eq!(a, b);
    let (c, _) = common::generate(43, 2);
    assert_ne!(a.first().map(|m| &m.body), c.first().map(|m| &m.body));
}

#[test]
fn every_message_normalises_to_the_event_its_kind_promises() {
    let (messages, stats) = common::generate(7, 2);
    assert_eq!(stats.messages, messages.len() as u64);
    let cfg = IngestConfig::default();
    let mut kinds: HashMap<MessageKind, usize> = HashMap::new();
    for m in &messages {
        let events = normalise(m, &cfg);
        // MSH-9 names the trigger and its message structure (v2.4).
        let msh9 = match m.kind {
            MessageKind::Admission => Some("ADT^A01^ADT_A01"),
            MessageKind::Registration => Some("ADT^A04^ADT_A01"),
            MessageKind::Transfer => Some("ADT^A02^ADT_A02"),
            MessageKind::Discharge => Some("ADT^A03^ADT_A03"),
            _ => None,
        };
        if let Some(msh9) = msh9 {
            let text = String::from_utf8_lossy(&m.body);
            assert_eq!(text.split('|').nth(8), Some(msh9), "{}", m.file_name());
        }
        let expected = match m.kind {
            MessageKind::Admission | MessageKind::Registration => EventType::EncounterStarted,
            MessageKind::Transfer => EventType::EncounterUpdated,
            MessageKind::Discharge => EventType::EncounterEnded,
            MessageKind::Hl7Document | MessageKind::FhirDocument | MessageKind::Itk3Document => {
                EventType::DocumentIssued
            }
            MessageKind::Hl7Ack | MessageKind::Itk3Response => {
                let ok = events.iter().all(|e| {
                    matches!(
                        e.event_type,
                        EventType::DeliveryAcknowledged | EventType::DeliveryFailed
                    )
                });
                assert!(
                    ok,
                    "{}: {:?}",
                    m.file_name(),
                    events.iter().map(|e| e.event_type).collect::<Vec<_>>()
                );
                *kinds.entry(m.kind).or_default() += 1;
                continue;
            }
        };
        assert!(
            events.iter().any(|e| e.event_type == expected),
            "{}: expected {expected:?}, got {:?}",
            m.file_name(),
            events.iter().map(|e| e.event_type).collect::<Vec<_>>()
        );
        for e in &events {
            assert!(
                e.warnings.is_empty(),
                "{}: warnings {:?}",
                m.file_name(),
                e.warnings
            );
        }
        *kinds.entry(m.kind).or_default() += 1;
    }
    // Every kind of message appears in two days of traffic.
    for k in [
        MessageKind::Admission,
        MessageKind::Registration,
        MessageKind::Transfer,
        MessageKind::Discharge,
        MessageKind::Hl7Document,
        MessageKind::FhirDocument,
        MessageKind::Itk3Document,
        MessageKind::Hl7Ack,
        MessageKind::Itk3Response,
    ] {
        assert!(
            kinds.get(&k).is_some_and(|n| *n > 0),
            "no {k:?} in {kinds:?}"
        );
    }
}

#[test]
fn messages_come_in_time_order_and_file_names_sort_the_same_way() {
    let (messages, _) = common::generate(3, 2);
    assert!(messages.windows(2).all(|w| w[0].time <= w[1].time));
    let mut names: Vec<String> = messages.iter().map(Message::file_name).collect();
    let in_order = names.clone();
    names.sort();
    assert_eq!(names, in_order);
    // Times advance over the days planned, with stays reaching back before them.
    let first = messages.first().map(|m| m.time).unwrap();
    let last = messages.last().map(|m| m.time).unwrap();
    assert!(
        last - first > chrono::TimeDelta::days(2),
        "{first} .. {last}"
    );
}

#[test]
fn message_sizes_are_those_of_real_traffic() {
    let (messages, _) = common::generate(5, 1);
    let sizes = |k: MessageKind| -> Vec<usize> {
        messages
            .iter()
            .filter(|m| m.kind == k)
            .map(|m| m.body.len())
            .collect()
    };
    for k in [
        MessageKind::Admission,
        MessageKind::Discharge,
        MessageKind::Transfer,
        MessageKind::Registration,
    ] {
        let s = sizes(k);
        let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
        assert!(*min >= 600 && *max <= 1600, "{k:?}: {min}..{max} bytes");
    }
    for k in [MessageKind::FhirDocument, MessageKind::Itk3Document] {
        let s = sizes(k);
        assert!(s.iter().all(|n| *n >= 4000), "{k:?}: {:?}", s.iter().min());
    }
    let mdm = sizes(MessageKind::Hl7Document);
    assert!(mdm.iter().all(|n| *n >= 1500), "{:?}", mdm.iter().min());
}

#[test]
fn identifiers_are_distinct_and_nhs_numbers_valid() {
    let (messages, stats) = common::generate(11, 2);
    let cfg = IngestConfig::default();
    let mut message_ids = HashSet::new();
    let mut documents = HashSet::new();
    let mut visits_ended = HashSet::new();
    for m in &messages {
        for e in normalise(m, &cfg) {
            if let Some(n) = &e.patient.nhs_number {
                assert_eq!(validate_nhs_number(n).as_deref(), Ok(n.as_str()));
                assert!(
                    n.starts_with("999"),
                    "synthetic numbers stay in the test range: {n}"
                );
            }
            let id = e.source.message_id.clone();
            assert!(
                message_ids.insert((id.clone(), e.event_type)),
                "message id {id} repeated"
            );
            if e.event_type == EventType::DocumentIssued {
                let doc = e
                    .document
                    .as_ref()
                    .map(|d| d.id.clone())
                    .unwrap_or_default();
                assert!(documents.insert(doc.clone()), "document {doc} repeated");
            }
            if e.event_type == EventType::EncounterEnded {
                let visit = e
                    .encounter
                    .as_ref()
                    .and_then(|x| x.id.clone())
                    .unwrap_or_default();
                assert!(
                    visits_ended.insert(visit.clone()),
                    "visit {visit} ended twice"
                );
            }
        }
    }
    assert_eq!(visits_ended.len() as u64, stats.encounters);
    assert_eq!(documents.len() as u64, stats.on_time + stats.late);
}

#[test]
fn a_message_count_bounds_an_open_ended_run() {
    let opts = Options {
        seed: 9,
        days: None,
        max_messages: Some(500),
        ..Options::default()
    };
    let mut g = Generator::new(common::small_profile(50.0, 50.0), opts).unwrap();
    let messages: Vec<Message> = g.by_ref().collect();
    assert_eq!(messages.len(), 500);
    // The counts are of what was sent: encounters whose end went out, not
    // the days planned ahead of them.
    let ends = messages
        .iter()
        .filter(|m| m.kind == MessageKind::Discharge)
        .count() as u64;
    let documents = messages
        .iter()
        .filter(|m| {
            matches!(
                m.kind,
                MessageKind::Hl7Document | MessageKind::FhirDocument | MessageKind::Itk3Document
            )
        })
        .count() as u64;
    let stats = g.stats();
    assert_eq!(stats.encounters, ends);
    // Documents counted as sent, not as planned: those the count cut off
    // are owed (missing), as the tracker would find them.
    assert_eq!(stats.on_time + stats.late, documents);
    assert_eq!(stats.on_time + stats.late + stats.missing, ends);
    let unbounded = Options {
        days: None,
        max_messages: None,
        ..Options::default()
    };
    assert!(Generator::new(Profile::default(), unbounded).is_err());
}

#[test]
fn hours_of_the_day_are_the_trusts_clock_hours_when_the_clocks_change() {
    // Every discharge at 23:xx local time and no clinics, over both changes
    // of 2025 (30 March, 26 October).
    let mut p = common::small_profile(40.0, 0.0);
    p.volumes.discharge_hour_weights = [0.0; 24];
    p.volumes.discharge_hour_weights[23] = 1.0;
    for start in ["2025-03-29", "2025-10-25"] {
        let start: chrono::NaiveDate = start.parse().unwrap();
        let opts = Options {
            seed: 5,
            start,
            days: Some(3),
            ..Options::default()
        };
        let mut per_day = [0usize; 3];
        for m in Generator::new(p.clone(), opts).unwrap() {
            if m.kind != MessageKind::Discharge {
                continue;
            }
            let local = m.time.with_timezone(&chrono_tz::Europe::London);
            assert_eq!(chrono::Timelike::hour(&local), 23, "{local}");
            per_day[(local.date_naive() - start).num_days() as usize] += 1;
        }
        assert!(per_day.iter().all(|n| *n > 0), "{start}: {per_day:?}");
    }
}

#[test]
fn runs_of_other_seeds_or_months_share_no_identifier() {
    // MSH-10 of every HL7 message, and every document bundle's first
    // UUID-shaped id, of one day.
    let ids = |seed: u64, start: &str| -> HashSet<String> {
        let opts = Options {
            seed,
            start: start.parse().unwrap(),
            days: Some(1),
            ..Options::default()
        };
        Generator::new(common::small_profile(30.0, 30.0), opts)
            .unwrap()
            .filter(|m| m.format() == MessageFormat::Hl7)
            .map(|m| {
                String::from_utf8_lossy(&m.body)
                    .split('|')
                    .nth(9)
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let a = ids(215, "2025-01-06");
    assert!(a.len() > 50);
    // Seeds 215 and 670 shared a four-digit tag.
    for other in [ids(670, "2025-01-06"), ids(215, "2025-02-03")] {
        assert!(a.is_disjoint(&other), "{:?}", a.intersection(&other).next());
    }
}
