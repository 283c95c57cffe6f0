//! Generated HL7 v2 traffic for the volume tests: discharges (A03), the
//! discharge summaries (MDM T02) for half of them, and some junk, in event
//! time order, one minute apart, so that the event-time clock passes
//! deadlines in mid-stream and overdue alerts fire while consuming.
//!
//! The messages are built from the checked-in fixtures by substituting the
//! identifying fields, so they stay what the normaliser is tested on.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use tocsin_amqp::OutgoingMessage;

use super::{HL7, fixture, input};

/// What was generated, for the test to account for.
pub struct Traffic {
    /// The messages, in publishing order.
    pub messages: Vec<OutgoingMessage>,
    /// Ids of the messages the gateway must dead-letter.
    pub junk: Vec<String>,
    /// Discharges that never get a document.
    pub undocumented: usize,
}

fn hl7_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// A valid NHS number (modulus 11 check digit) made from `seed`.
fn nhs_number(seed: u32) -> String {
    let mut n = 400_000_000 + seed * 7;
    loop {
        let digits: Vec<u32> = format!("{n:09}")
            .bytes()
            .map(|b| u32::from(b - b'0'))
            .collect();
        let sum: u32 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = (11 - sum % 11) % 11;
        if check != 10 {
            return format!("{n:09}{check}");
        }
        n += 1;
    }
}

fn text(rel: &str) -> String {
    String::from_utf8(fixture(rel)).expect("fixture is UTF-8")
}

/// `encounters` discharges; every even one gets its summary 90 minutes
/// later; every 50th is followed by a junk message. Ids start `prefix`.
pub fn discharges(prefix: &str, encounters: u32) -> Traffic {
    let a03 = text("cross-format/adt-a03-V123456.hl7");
    let mdm = text("hl7/mdm_t02_discharge_summary.hl7");
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap();
    let mut timed: Vec<(DateTime<Utc>, u8, OutgoingMessage)> = Vec::new();
    let mut junk = Vec::new();
    let mut undocumented = 0;
    for k in 0..encounters {
        let t = base + TimeDelta::minutes(i64::from(k));
        let (nhs, mrn, visit) = (
            nhs_number(k),
            format!("RXX{k:07}"),
            format!("V{prefix}{k:07}"),
        );
        let id = format!("{prefix}-a03-{k}");
        let body = a03
            .replace("20240115120000", &hl7_time(t))
            .replace("20240115113000", &hl7_time(t))
            .replace("XF-A03-1", &id)
            .replace("9434765919", &nhs)
            .replace("RXX7654321", &mrn)
            .replace("V123456", &visit);
        timed.push((t, 0, input(&id, Some(HL7), body.into_bytes())));
        if k % 2 == 0 {
            let td = t + TimeDelta::minutes(90);
            let id = format!("{prefix}-mdm-{k}");
            let body = mdm
                .replace("MSG-T02", &id)
                .replace("20240116093000", &hl7_time(td))
                .replace("20240115170000", &hl7_time(td))
                .replace("20240115163000", &hl7_time(td))
                .replace("20240115140000", &hl7_time(t))
                .replace("9434765919", &nhs)
                .replace("RXX1234567", &mrn)
                .replace("V0001234", &visit)
                .replace("DOC-1001", &format!("DOC-{prefix}-{k}"));
            timed.push((td, 1, input(&id, Some(HL7), body.into_bytes())));
        } else {
            undocumented += 1;
        }
        if k % 50 == 0 {
            let id = format!("{prefix}-junk-{k}");
            let body = format!("this is not a clinical message ({k})").into_bytes();
            timed.push((t + TimeDelta::seconds(30), 2, input(&id, None, body)));
            junk.push(id);
        }
    }
    timed.sort_by_key(|a| (a.0, a.1));
    Traffic {
        messages: timed.into_iter().map(|(_, _, m)| m).collect(),
        junk,
        undocumented,
    }
}
