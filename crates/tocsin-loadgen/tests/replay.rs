//! Replaying generated traffic through the real tracker: the on-time, late
//! and missing counts are those the generator planned (exactly, encounter
//! by encounter) and match the configured shares within sampling tolerance.
//! This checks the generator and the tracker against each other.

mod common;

use std::collections::HashMap;

use tocsin_ingest::{ContentHint, IngestConfig, ingest};
use tocsin_loadgen::{Chunker, Message, MessageFormat};
use tocsin_tracker::{Effect, ExpectationStatus, Policy, Tracker, TrackerConfig};

/// Final status of every expectation, by visit number.
fn replay(
    inputs: &[(Vec<u8>, ContentHint)],
    until: chrono::DateTime<chrono::Utc>,
) -> HashMap<String, ExpectationStatus> {
    let cfg = IngestConfig::default();
    let mut tracker = Tracker::new(Policy::default_contract(), TrackerConfig::default());
    let mut status = HashMap::new();
    let mut note = |effects: Vec<Effect>| {
        for e in effects {
            if let Effect::ExpectationChanged(x) = e {
                status.insert(x.encounter.id.clone().unwrap_or_default(), x.status);
            }
        }
    };
    for (body, hint) in inputs {
        for unit in ingest(body, Some(*hint), &cfg) {
            let events = unit.outcome.unwrap_or_else(|e| panic!("rejected: {e}"));
            for ev in events {
                note(tracker.apply(&ev));
            }
        }
    }
    note(tracker.advance_to(until));
    status
}

fn one_per_message(messages: &[Message]) -> Vec<(Vec<u8>, ContentHint)> {
    messages
        .iter()
        .map(|m| {
            let hint = match m.format() {
                MessageFormat::Hl7 => ContentHint::Hl7,
                MessageFormat::FhirJson => ContentHint::FhirJson,
            };
            (m.body.clone(), hint)
        })
        .collect()
}

fn counts(status: &HashMap<String, ExpectationStatus>) -> (u64, u64, u64, u64) {
    let n = |s| status.values().filter(|v| **v == s).count() as u64;
    (
        n(ExpectationStatus::OnTime),
        n(ExpectationStatus::Late),
        n(ExpectationStatus::Overdue),
        status.len() as u64,
    )
}

#[test]
fn replayed_outcomes_are_the_planned_ones_and_match_the_shares() {
    let (messages, stats) = common::generate(2024, 3);
    let until = messages.last().map(|m| m.time).unwrap() + chrono::TimeDelta::days(30);
    let status = replay(&one_per_message(&messages), until);
    let (on_time, late, overdue, total) = counts(&status);
    assert_eq!(total, stats.encounters, "one expectation per encounter");
    assert_eq!(
        (on_time, late, overdue),
        (stats.on_time, stats.late, stats.missing)
    );
    let profile = common::small_profile(0.0, 0.0);
    let share = |n: u64| n as f64 / total as f64;
    // Four standard deviations of a binomial share over ~500 encounters.
    let tol = |p: f64| 4.0 * (p * (1.0 - p) / total as f64).sqrt();
    let (lp, mp) = (
        profile.documents.late_share,
        profile.documents.missing_share,
    );
    assert!(
        (share(late) - lp).abs() < tol(lp),
        "late {} vs {lp}",
        share(late)
    );
    assert!(
        (share(overdue) - mp).abs() < tol(mp),
        "missing {} vs {mp}",
        share(overdue)
    );
}

#[test]
fn configured_shares_are_followed() {
    let mut profile = common::small_profile(70.0, 110.0);
    profile.documents.late_share = 0.3;
    profile.documents.missing_share = 0.0;
    let opts = tocsin_loadgen::Options {
        seed: 5,
        days: Some(2),
        ..Default::default()
    };
    let mut g = tocsin_loadgen::Generator::new(profile, opts).unwrap();
    let messages: Vec<Message> = g.by_ref().collect();
    let until = messages.last().map(|m| m.time).unwrap() + chrono::TimeDelta::days(30);
    let (on_time, late, overdue, total) = counts(&replay(&one_per_message(&messages), until));
    assert_eq!(overdue, 0);
    assert_eq!(on_time + late, total);
    assert_eq!(late, g.stats().late);
    let share = late as f64 / total as f64;
    assert!((share - 0.3).abs() < 0.08, "{share}");
}

#[test]
fn packing_into_windowed_files_judges_the_same() {
    let (messages, _) = common::generate(77, 2);
    let until = messages.last().map(|m| m.time).unwrap() + chrono::TimeDelta::days(30);
    let mut chunker = Chunker::new(chrono::TimeDelta::minutes(5));
    let mut files = Vec::new();
    for m in &messages {
        files.extend(chunker.push(m));
    }
    files.extend(chunker.finish());
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let in_order = names.clone();
    names.sort_unstable();
    assert_eq!(names, in_order, "file-name order is write order");
    assert!(
        files.len() < messages.len(),
        "{} files for {} messages",
        files.len(),
        messages.len()
    );
    let packed: Vec<(Vec<u8>, ContentHint)> = files
        .iter()
        .map(|f| {
            let hint = if f.name.ends_with(".ndjson") {
                ContentHint::Ndjson
            } else {
                ContentHint::Hl7
            };
            (f.body.clone(), hint)
        })
        .collect();
    assert_eq!(
        replay(&packed, until),
        replay(&one_per_message(&messages), until)
    );
}
