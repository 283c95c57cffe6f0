//! Summer, winter, change-over hours, offsets and precision.

mod common;

use common::{ok, utc};
use tocsin_event::WarningCode;

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

/// MSH-7 a date alone means some time that day: a discharge at 14:00 that
/// day is not after sending (against the day's midnight it was, and
/// midnight replaced it, the deadline 14 hours early and a summary sent
/// next morning late). The date alone is warned of: it is a document's
/// issue time. An end days later is still refused as after sending.
#[test]
fn a_date_only_message_time_is_the_whole_day() {
    let text = String::from_utf8(common::load("adt_a03_discharge.hl7")).unwrap();
    let dated = text.replacen("|20240115143000||ADT^A03", "|20240115||ADT^A03", 1);
    assert_ne!(dated, text);
    let cfg = tocsin_hl7::Hl7Config::default();
    let ev = tocsin_hl7::normalise_message(dated.as_bytes(), &cfg).unwrap();
    let enc = ev.encounter.as_ref().unwrap();
    assert_eq!(enc.ended_at, Some(utc("2024-01-15T14:00:00Z")));
    let at: Vec<_> = ev
        .warnings
        .iter()
        .map(|w| (w.code, w.location.as_deref()))
        .collect();
    assert_eq!(at, [(WarningCode::BadTimestamp, Some("MSH-7"))]);
    let typo = dated.replace("|20240115140000\r", "|20240118140000\r");
    assert_ne!(typo, dated);
    let ev = tocsin_hl7::normalise_message(typo.as_bytes(), &cfg).unwrap();
    assert_ne!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-18T14:00:00Z"))
    );
    assert!(ev.warnings.iter().any(|w| w.message.contains("later than")));
}

/// A document whose MSH-7 is a date alone is issued at EVN-2 when that is
/// a time the same day (it was issued at midnight: a summary sent that
/// evening, after its deadline, counted on time); at midnight, warned of,
/// when EVN-2 gives no time that day.
#[test]
fn a_date_only_message_time_takes_evn_2_of_that_day() {
    let text = String::from_utf8(common::load("mdm_t02_discharge_summary.hl7")).unwrap();
    let dated = text.replacen("|20240116093000||MDM^T02", "|20240116||MDM^T02", 1);
    assert_ne!(dated, text);
    let cfg = tocsin_hl7::Hl7Config::default();
    let issued = |text: &str| {
        let ev = tocsin_hl7::normalise_message(text.as_bytes(), &cfg).unwrap();
        assert!(
            ev.warnings
                .iter()
                .any(|w| w.location.as_deref() == Some("MSH-7")),
            "{:?}",
            ev.warnings
        );
        ev.document.unwrap().issued_at
    };
    assert_eq!(issued(&dated), utc("2024-01-16T09:30:00Z"));
    for evn2 in ["20240117093000", "20240116", ""] {
        let other = dated.replace("EVN|T02|20240116093000|", &format!("EVN|T02|{evn2}|"));
        assert_ne!(other, dated);
        assert_eq!(issued(&other), utc("2024-01-16T00:00:00Z"), "{evn2:?}");
    }
}

/// MSH-7 is optional before v2.5: an empty one takes EVN-2 (with a
/// warning) rather than refusing the discharge; with no EVN-2 either, the
/// message is refused naming MSH-7.
#[test]
fn an_empty_message_time_takes_evn_2() {
    let text = String::from_utf8(common::load("adt_a03_discharge.hl7")).unwrap();
    let empty = text.replacen("|20240115143000||ADT^A03", "|||ADT^A03", 1);
    assert_ne!(empty, text);
    let cfg = tocsin_hl7::Hl7Config::default();
    let ev = tocsin_hl7::normalise_message(empty.as_bytes(), &cfg).unwrap();
    assert_eq!(ev.event_type, tocsin_event::EventType::EncounterEnded);
    assert_eq!(
        ev.encounter.unwrap().ended_at,
        Some(utc("2024-01-15T14:00:00Z"))
    );
    assert!(
        ev.warnings
            .iter()
            .any(|w| w.location.as_deref() == Some("EVN-2") && w.message.contains("MSH-7 is empty")),
        "{:?}",
        ev.warnings
    );
    let no_evn2 = empty.replace("EVN|A03|20240115143000|", "EVN|A03||");
    assert_ne!(no_evn2, empty);
    let e = tocsin_hl7::normalise_message(no_evn2.as_bytes(), &cfg).unwrap_err();
    assert_eq!(e.location().as_deref(), Some("MSH-7"), "{e}");
}
