//! Summer, winter, change-over hours, offsets and precision.

mod common;

use common::{ok, utc};

#[test]
fn summer_time_is_bst() {
    let ev = ok("time_summer_bst.hl7");
    let enc = ev.encounter.unwrap();
    assert_eq!(enc.started_at, Some(utc("2024-07-10T07:00:00Z")));
    assert_eq!(enc.ended_at, Some(utc("2024-07-15T10:30:00Z")));
    assert_eq!(ev.occurred_at, utc("2024-07-15T10:30:00Z"));
}

#[test]
fn winter_time_is_gmt() {
    let enc = ok("time_winter_gmt.hl7").encounter.unwrap();
    assert_eq!(enc.started_at, Some(utc("2024-01-10T08:00:00Z")));
    assert_eq!(enc.ended_at, Some(utc("2024-01-15T11:30:00Z")));
}

#[test]
fn autumn_repeated_hour_takes_the_earlier_instant() {
    // 27 Oct 2024 01:30 local happens at 00:30 UTC (BST) and 01:30 UTC (GMT).
    let enc = ok("time_autumn_repeated_hour.hl7").encounter.unwrap();
    assert_eq!(enc.ended_at, Some(utc("2024-10-27T00:30:00Z")));
}

#[test]
fn spring_gap_shifts_forward() {
    // 31 Mar 2024 01:30 local does not exist; read as 01:30 GMT.
    let enc = ok("time_spring_gap.hl7").encounter.unwrap();
    assert_eq!(enc.ended_at, Some(utc("2024-03-31T01:30:00Z")));
}

#[test]
fn explicit_offsets_and_low_precision() {
    let ev = ok("time_offsets_and_precision.hl7");
    let enc = ev.encounter.unwrap();
    // "202401": month precision, local midnight on the 1st (GMT).
    assert_eq!(enc.started_at, Some(utc("2024-01-01T00:00:00Z")));
    // 11:30 at -0400 is 15:30 UTC, whatever the local zone says.
    assert_eq!(enc.ended_at, Some(utc("2024-07-15T15:30:00Z")));
    assert_eq!(ev.occurred_at, utc("2024-07-15T15:30:00Z"));
}

#[test]
fn the_zone_comes_from_configuration() {
    let cfg = tocsin_hl7::Hl7Config {
        timezone: chrono_tz::America::New_York,
        ..Default::default()
    };
    let bytes = common::load("time_winter_gmt.hl7");
    let ev = tocsin_hl7::normalise_message(&bytes, &cfg).unwrap();
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T16:30:00Z"))
    );
}
