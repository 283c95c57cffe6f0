//! A ward's traffic with known identifiers, timed around the wall clock so
//! that each expectation ends in a known state once the gateway's clock has
//! caught up with now:
//!
//! | encounter | kind       | site  | ended    | document            | state     |
//! |-----------|------------|-------|----------|---------------------|-----------|
//! | 1         | inpatient  | RXX01 | now-30 h | summary 2 h later   | on time   |
//! | 2         | inpatient  | RXX02 | now-80 h | summary 60 h later  | late      |
//! | 3         | inpatient  | RXX01 | now-50 h | none                | overdue   |
//! | 4         | emergency  | RXX02 | now-2 h  | none                | open      |
//! | 5         | outpatient | RXX01 | now-24 h | none (letter, 7 d)  | open      |
//!
//! plus a GP system's acknowledgement of the first summary (which must not
//! count it twice) and one message that is not HL7 at all (rejected).

use chrono::{DateTime, TimeDelta, Utc};

/// One input message.
pub struct Message {
    /// The AMQP message id.
    pub id: String,
    /// The body.
    pub body: Vec<u8>,
    /// Content type, if any.
    pub content_type: Option<&'static str>,
}

/// The traffic and every identifier in it.
pub struct Ward {
    /// In event-time order.
    pub messages: Vec<Message>,
    /// NHS numbers, MRNs, visit numbers, document ids, names, message ids:
    /// none may appear in `/metrics`.
    pub identifiers: Vec<String>,
    /// When it was generated.
    pub now: DateTime<Utc>,
}

/// A valid NHS number (modulus 11) made from `seed`.
pub fn nhs_number(seed: u32) -> String {
    let mut n = 600_000_000 + seed * 13;
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

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S+0000").to_string()
}

struct Patient {
    nhs: String,
    mrn: String,
    visit: String,
    family: String,
    class: &'static str,
    site: &'static str,
    specialty: &'static str,
}

/// PV1-10 is the hospital service (specialty), PV1-19 the visit number,
/// PV1-39 the site, PV1-45 the discharge time.
fn a03(p: &Patient, ctl: &str, ended: DateTime<Utc>) -> String {
    let t = ts(ended);
    [
        format!("MSH|^~\\&|PAS|RXX01|TOCSIN|TOCSIN|{t}||ADT^A03^ADT_A03|{ctl}|P|2.4|||AL|NE|GBR"),
        format!("EVN|A03|{t}"),
        format!(
            "PID|1||{}^^^NHS^NH~{}^^^RXX^MR||{}^ROBIN||19700101|F",
            p.nhs, p.mrn, p.family
        ),
        "PD1|||LEEDS GP^^B86001".to_string(),
        format!(
            "PV1|1|{}|WARD1^BED2^1^{}|||||||{}|||||||||{}^^^RXX^VN||||||||||||||||||||{}|||||{}|{}",
            p.class, p.site, p.specialty, p.visit, p.site, t, t
        ),
    ]
    .join("\r")
        + "\r"
}

fn mdm(p: &Patient, ctl: &str, doc_type: &str, doc_id: &str, issued: DateTime<Utc>) -> String {
    let t = ts(issued);
    [
        format!("MSH|^~\\&|PAS|RXX01|TOCSIN|B86001|{t}||MDM^T02^MDM_T02|{ctl}|P|2.4|||AL|NE|GBR"),
        format!("EVN|T02|{t}"),
        format!(
            "PID|1||{}^^^NHS^NH~{}^^^RXX^MR||{}^ROBIN||19700101|F",
            p.nhs, p.mrn, p.family
        ),
        format!(
            "PV1|1|{}|WARD1^BED2^1^{}|||||||{}|||||||||{}^^^RXX^VN||||||||||||||||||||{}||||||",
            p.class, p.site, p.specialty, p.visit, p.site
        ),
        format!("TXA|1|{doc_type}|TX|{t}||{t}||||||{doc_id}^RXX|||||AU"),
        "OBX|1|TX|DS^Summary||Text.||||||F".to_string(),
    ]
    .join("\r")
        + "\r"
}

fn ack(ctl: &str, of: &str, at: DateTime<Utc>) -> String {
    format!(
        "MSH|^~\\&|GPSYS|B86001|PAS|RXX01|{}||ACK^T02^ACK|{ctl}|P|2.4\rMSA|AA|{of}\r",
        ts(at)
    )
}

/// The ward's traffic; `tag` keeps identifiers distinct between tests.
pub fn ward(tag: &str) -> Ward {
    let now = Utc::now();
    let h = |n: i64| now - TimeDelta::hours(n);
    let patient = |i: u32, class, site, specialty| Patient {
        nhs: nhs_number(i + tag.len() as u32 * 100),
        mrn: format!("MRN{tag}Q{i}X"),
        visit: format!("VIS{tag}Z{i}K"),
        family: format!("SURNAME{tag}W{i}"),
        class,
        site,
        specialty,
    };
    let p1 = patient(1, "I", "RXX01", "CARDIO");
    let p2 = patient(2, "I", "RXX02", "GERIAT");
    let p3 = patient(3, "I", "RXX01", "CARDIO");
    let p4 = patient(4, "E", "RXX02", "AANDE");
    let p5 = patient(5, "O", "RXX01", "DERMA");
    let ctl = |n: u32| format!("CTL{tag}M{n}");
    let doc = |n: u32| format!("DOC{tag}D{n}");
    let hl7 = Some("x-application/hl7-v2+er7");
    let mut messages = vec![
        (a03(&p2, &ctl(1), h(80)), hl7),
        (a03(&p3, &ctl(2), h(50)), hl7),
        (a03(&p1, &ctl(3), h(30)), hl7),
        (mdm(&p1, &ctl(4), "DS", &doc(1), h(28)), hl7),
        (ack(&ctl(5), &ctl(4), h(28) + TimeDelta::minutes(5)), hl7),
        (a03(&p5, &ctl(6), h(24)), hl7),
        (mdm(&p2, &ctl(7), "DS", &doc(2), h(20)), hl7),
        (a03(&p4, &ctl(8), h(2)), hl7),
        (format!("not a message {}", p4.nhs), None),
    ];
    let mut identifiers = Vec::new();
    for p in [&p1, &p2, &p3, &p4, &p5] {
        identifiers.extend([
            p.nhs.clone(),
            p.mrn.clone(),
            p.visit.clone(),
            p.family.clone(),
        ]);
    }
    identifiers.extend((1..=8).map(ctl));
    identifiers.extend((1..=2).map(doc));
    let messages = messages
        .drain(..)
        .enumerate()
        .map(|(i, (body, content_type))| Message {
            id: format!("in-{tag}-{i}"),
            body: body.into_bytes(),
            content_type,
        })
        .collect();
    Ward {
        messages,
        identifiers,
        now,
    }
}
