//! Each rejection: typed error, reason code and location.

mod common;

use common::{load, one};
use tocsin_hl7::{Hl7Config, normalise_message};

fn rejected(name: &str) -> (String, Option<String>) {
    let e = one(name).expect_err(name);
    (e.reason_code().to_owned(), e.location())
}

fn check(name: &str, reason: &str, location: Option<&str>) {
    assert_eq!(
        rejected(name),
        (reason.to_owned(), location.map(str::to_owned)),
        "{name}"
    );
}

#[test]
fn each_rejection_has_reason_and_location() {
    check("reject_not_hl7.hl7", "not_hl7", None);
    check("reject_binary.bin", "binary", Some("byte 4"));
    check("reject_truncated_msh.hl7", "truncated_msh", Some("MSH-6"));
    check(
        "reject_truncated_msh_separators.hl7",
        "truncated_msh",
        Some("MSH-2"),
    );
    check("reject_a03_no_pid.hl7", "missing_segment", Some("PID"));
    check("reject_a03_no_pv1.hl7", "missing_segment", Some("PV1"));
    check("reject_mdm_no_txa.hl7", "missing_segment", Some("TXA"));
    check(
        "reject_mdm_no_document_number.hl7",
        "missing_field",
        Some("TXA-12"),
    );
    check(
        "reject_unsupported_version.hl7",
        "unsupported_version",
        Some("MSH-12"),
    );
    check(
        "reject_missing_message_id.hl7",
        "missing_field",
        Some("MSH-10"),
    );
    check(
        "reject_bad_message_time.hl7",
        "bad_timestamp",
        Some("MSH-7"),
    );
    check("reject_bad_separators.hl7", "bad_separators", Some("MSH-2"));
    check(
        "reject_malformed_segment.hl7",
        "malformed_segment",
        Some("segment 4"),
    );
    check("reject_ack_no_msa2.hl7", "missing_field", Some("MSA-2"));
}

#[test]
fn messages_name_the_problem_without_patient_data() {
    let e = one("reject_a03_no_pid.hl7").unwrap_err();
    assert_eq!(e.to_string(), "ADT^A03 message has no PID segment");
    let e = one("reject_malformed_segment.hl7").unwrap_err();
    assert!(e.to_string().contains("segment 4 (***)"), "{e}");
}

#[test]
fn oversized_beyond_the_configured_limit() {
    let bytes = load("adt_a03_discharge.hl7");
    let mut cfg = Hl7Config {
        max_message_bytes: 100,
        ..Default::default()
    };
    let e = normalise_message(&bytes, &cfg).unwrap_err();
    assert_eq!(e.reason_code(), "oversized");
    assert_eq!(e.location(), None);
    assert_eq!(
        e.to_string(),
        format!(
            "message is {} bytes, over the configured limit of 100 bytes ([hl7] max_message_bytes)",
            bytes.len()
        )
    );
    cfg.max_message_bytes = bytes.len();
    assert!(
        normalise_message(&bytes, &cfg).is_ok(),
        "the limit itself is allowed"
    );
}

#[test]
fn empty_and_framing_only_input() {
    let cfg = Hl7Config::default();
    for input in [&b""[..], b"\x0b\x1c\r", b"  \r\n"] {
        assert_eq!(
            normalise_message(input, &cfg).unwrap_err().reason_code(),
            "empty"
        );
    }
}

#[test]
fn junk_before_a_message_is_reported_not_dropped() {
    let mut bytes = b"garbage line\r".to_vec();
    bytes.extend(load("adt_a01_admit.hl7"));
    let msgs = tocsin_hl7::split_messages(&bytes);
    assert_eq!(msgs.len(), 2);
    let cfg = Hl7Config::default();
    assert_eq!(
        normalise_message(msgs[0].bytes, &cfg)
            .unwrap_err()
            .reason_code(),
        "not_hl7"
    );
    assert!(normalise_message(msgs[1].bytes, &cfg).is_ok());
}

/// MSH-12 is quoted in the reason only when it looks like a version: a
/// field holding something else may hold a patient's number or name, and
/// the reason reaches dead-letter headers and operators' screens.
#[test]
fn an_unsupported_version_is_quoted_only_when_it_looks_like_one() {
    let text = String::from_utf8(load("reject_unsupported_version.hl7")).unwrap();
    let said = |version: &str| {
        let msg = text.replace("|P|2.9|", &format!("|P|{version}|"));
        normalise_message(msg.as_bytes(), &Hl7Config::default())
            .unwrap_err()
            .to_string()
    };
    assert!(said("2.9").contains("\"2.9\""), "{}", said("2.9"));
    for hidden in ["4873219051", "PRIVAZOOK 487321"] {
        let e = said(hidden);
        assert!(!e.contains(hidden) && e.contains("not a version"), "{e}");
    }
}

/// The defaults take what trusts send: a v2.6 feed (its fields tocsin reads
/// are 2.5's), and a summary carrying its PDF in an OBX (a megabyte or more
/// in base64), which the old 1 MiB limit refused as oversized: the summary
/// sent and acknowledged, its discharge counted missing.
#[test]
fn the_defaults_take_v2_6_and_a_summary_with_its_pdf() {
    let cfg = Hl7Config::default();
    let text = String::from_utf8(load("reject_unsupported_version.hl7")).unwrap();
    assert!(normalise_message(text.replace("|P|2.9|", "|P|2.6|").as_bytes(), &cfg).is_ok());
    let mdm = String::from_utf8(load("mdm_t02_discharge_summary.hl7")).unwrap();
    let pdf = "QUJD".repeat(400_000);
    let big = format!(
        "{}\rOBX|2|ED|PDF||^application^pdf^Base64^{pdf}||||||F\r",
        mdm.trim_end_matches(['\r', '\n'])
    );
    assert!(big.len() > 1_600_000);
    let ev = normalise_message(big.as_bytes(), &cfg).unwrap();
    assert!(ev.document.is_some());
}
