//! The compliance report over expectations produced by the tracker itself.

mod common;

use common::*;
use tocsin_event::{DocumentKind as D, EncounterKind as K, EventType};
use tocsin_tracker::compliance::{GroupBy, ReportFormat, render, report, report_in_zone};
use tocsin_tracker::{Policy, Tracker};

const NHS: &str = "9434765919";

fn store() -> Store {
    let mut tr = Tracker::new(Policy::default_contract(), strict());
    let mut s = Store::default();
    let base = t("2024-01-10T10:00:00Z");
    // Ten January discharges: delays 1..=10 hours on time; two late (30 h,
    // 40 h); one missing; one cancelled.
    for i in 0..10 {
        s.commit(&tr.apply(&end(
            &format!("e{i}"),
            &format!("V{i}"),
            K::Inpatient,
            base,
            NHS,
        )));
        s.commit(&tr.apply(&doc(
            &format!("d{i}"),
            Some(&format!("V{i}")),
            D::DischargeSummary,
            base + h(i + 1),
            Some(NHS),
        )));
    }
    for (i, delay) in [(10, 30), (11, 40)] {
        s.commit(&tr.apply(&end(
            &format!("e{i}"),
            &format!("V{i}"),
            K::Inpatient,
            base,
            NHS,
        )));
        s.commit(&tr.apply(&doc(
            &format!("d{i}"),
            Some(&format!("V{i}")),
            D::DischargeSummary,
            base + h(delay),
            Some(NHS),
        )));
    }
    // Two summaries refused by the GP's system (ACK AE): one on time, one
    // late; both still counted as sent on time or late, and as
    // delivery_failed.
    s.commit(&tr.apply(&ack("a0", "d0", true, base + h(2))));
    s.commit(&tr.apply(&ack("a10", "d10", true, base + h(31))));
    // One refused, then accepted when resent under the same id: delivered.
    s.commit(&tr.apply(&ack("a1", "d1", true, base + h(3))));
    s.commit(&tr.apply(&ack("a1b", "d1", false, base + h(4))));
    s.commit(&tr.apply(&end("e12", "V12", K::Inpatient, base, NHS)));
    s.commit(&tr.apply(&end("e13", "V13", K::Inpatient, base, NHS)));
    s.commit(&tr.apply(&cancel(
        "c13",
        EventType::EncounterDischargeCancelled,
        "V13",
        base + h(1),
    )));
    // One February outpatient attendance, still open (not yet due).
    s.commit(&tr.apply(&end(
        "e14",
        "OP1",
        K::Outpatient,
        t("2024-02-20T10:00:00Z"),
        NHS,
    )));
    s.commit(&tr.advance_to(t("2024-02-21T00:00:00Z")));
    s
}

#[test]
fn report_counts_states_and_delays_per_group() {
    let s = store();
    let rows = report(
        s.expectations.values(),
        &[GroupBy::Month, GroupBy::DocumentKind],
    );
    assert_eq!(rows.len(), 2);
    let jan = &rows[0];
    assert_eq!(jan.month.as_deref(), Some("2024-01"));
    assert_eq!(jan.document_kind, Some(D::DischargeSummary));
    assert_eq!(jan.encounter_kind, None);
    assert_eq!(
        (
            jan.expected,
            jan.on_time,
            jan.late,
            jan.missing,
            jan.pending,
            jan.cancelled
        ),
        (13, 10, 2, 1, 0, 1)
    );
    assert!((jan.pct_on_time.unwrap() - 100.0 * 10.0 / 13.0).abs() < 1e-9);
    // Delays 1..=10, 30, 40 hours; nearest rank: the 6th of 12 is 6 h, the 11th 30 h.
    assert_eq!(jan.median_delay_seconds, Some(6 * 3600));
    assert_eq!(jan.p90_delay_seconds, Some(30 * 3600));
    assert_eq!(jan.delivery_failed, 2);
    let feb = &rows[1];
    assert_eq!((feb.expected, feb.pending, feb.pct_on_time), (1, 1, None));
    assert_eq!(feb.document_kind, Some(D::ClinicLetter));
}

#[test]
fn report_renders_as_csv_table_and_json() {
    let s = store();
    let g = [GroupBy::Month, GroupBy::EncounterKind, GroupBy::Site];
    let rows = report_in_zone(s.expectations.values(), &g, chrono_tz::Europe::London);
    let csv = render(&rows, &g, ReportFormat::Csv);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "month,encounter_kind,site,expected,on_time,late,missing,pending,cancelled,pct_on_time,median_delay_seconds,p90_delay_seconds,delivery_failed"
    );
    assert_eq!(
        lines.next().unwrap(),
        "2024-01,inpatient,RXX01,13,10,2,1,0,1,76.9,21600,108000,2"
    );
    assert_eq!(
        lines.next().unwrap(),
        "2024-02,outpatient,RXX01,1,0,0,0,1,0,,,,0"
    );
    let table = render(&rows, &g, ReportFormat::Table);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("2024-01  inpatient       RXX01"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&rows, &g, ReportFormat::Json)).unwrap();
    assert_eq!(json[0]["site"], "RXX01");
    assert!(json[0].get("document_kind").is_none());
    assert_eq!("site".parse::<GroupBy>().unwrap(), GroupBy::Site);
    assert!("ward".parse::<GroupBy>().is_err());
}

/// A store's report reads only the facts from each stored body: they must
/// be those of the expectation, and the report the same as from values,
/// for every state (on time, late, missing, pending, cancelled).
#[test]
fn facts_read_from_stored_bodies_give_the_same_report() {
    use tocsin_tracker::compliance::{ReportBuilder, ReportFacts};
    let s = store();
    let bodies: Vec<String> = s
        .expectations
        .values()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let zone: chrono_tz::Tz = "Europe/London".parse().unwrap();
    let mut from_bodies = ReportBuilder::new(&GroupBy::ALL, zone);
    for (e, body) in s.expectations.values().zip(&bodies) {
        let facts: ReportFacts<'_> = serde_json::from_str(body).unwrap();
        assert_eq!(facts, ReportFacts::of(e));
        from_bodies.add_facts(&facts);
    }
    let rows = from_bodies.finish();
    assert_eq!(
        rows,
        report_in_zone(s.expectations.values(), &GroupBy::ALL, zone)
    );
    let total = |f: fn(&tocsin_tracker::compliance::ComplianceRow) -> u64| -> u64 {
        rows.iter().map(f).sum()
    };
    assert_eq!(
        [
            total(|r| r.on_time),
            total(|r| r.late),
            total(|r| r.missing),
            total(|r| r.pending),
            total(|r| r.cancelled)
        ],
        [10, 2, 1, 1, 1]
    );

    // A site with an escape in its JSON is read, not refused.
    let mut e = s.expectations.values().next().unwrap().clone();
    e.encounter.site = Some("R\"X\\01".into());
    let body = serde_json::to_string(&e).unwrap();
    let facts: ReportFacts<'_> = serde_json::from_str(&body).unwrap();
    assert_eq!(facts.encounter.site.as_deref(), Some("R\"X\\01"));
}

#[test]
fn a_document_issued_before_the_end_counts_as_no_delay_and_a_near_total_is_not_100() {
    let mut tr = Tracker::new(Policy::default_contract(), strict());
    let mut s = Store::default();
    let base = t("2024-03-04T10:00:00Z");
    // Three summaries written an hour before the discharge was stamped,
    // one two hours after: delays -1, -1, -1, +2 h.
    for (i, issued) in [(0, -1), (1, -1), (2, -1), (3, 2)] {
        s.commit(&tr.apply(&doc(
            &format!("d{i}"),
            Some(&format!("V{i}")),
            D::DischargeSummary,
            base + h(issued),
            Some(NHS),
        )));
        s.commit(&tr.apply(&end(
            &format!("e{i}"),
            &format!("V{i}"),
            K::Inpatient,
            base,
            NHS,
        )));
    }
    let rows = report(s.expectations.values(), &[GroupBy::Month]);
    assert_eq!(rows[0].on_time, 4);
    // Nearest rank over 0, 0, 0, 2 h: nobody waited a negative time.
    assert_eq!(rows[0].median_delay_seconds, Some(0));
    assert_eq!(rows[0].p90_delay_seconds, Some(2 * 3600));

    // 99.95 % on time is shown as 99.9, not 100.0, in CSV and table.
    let mut row = rows[0].clone();
    row.pct_on_time = Some(100.0 * 1999.0 / 2000.0);
    for format in [ReportFormat::Csv, ReportFormat::Table] {
        let text = render(std::slice::from_ref(&row), &[GroupBy::Month], format);
        assert!(text.contains("99.9") && !text.contains("100.0"), "{text}");
    }
}
