//! The policy file format: the checked-in contract, effective dating by the
//! encounter's end date, exclusions, and refusal of invalid policies with
//! line and reason.

use chrono::{DateTime, Utc};
use tocsin_event::EncounterKind;
use tocsin_tracker::{Applicability, EncounterFacts, Policy, PolicyError};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn facts(kind: EncounterKind, ended: &str) -> EncounterFacts<'static> {
    EncounterFacts {
        kind,
        ended_at: t(ended),
        specialty: None,
        site: None,
        gp_practice: None,
        discharge_disposition: None,
    }
}

fn rule_ids(p: &Policy, f: &EncounterFacts<'_>) -> Vec<String> {
    p.applicable(f).map(|(_, r, _)| r.id.clone()).collect()
}

#[test]
fn contract_policy_loads_and_dates_clinic_letters_by_encounter_end() {
    let p = Policy::default_contract();
    assert_eq!(p.rules().len(), 4);
    let f = facts(EncounterKind::Outpatient, "2018-03-31T12:00:00Z");
    assert_eq!(rule_ids(&p, &f), ["clinic-letter-14d"]);
    let f = facts(EncounterKind::Outpatient, "2018-04-01T12:00:00Z");
    assert_eq!(rule_ids(&p, &f), ["clinic-letter-10d"]);
    let f = facts(EncounterKind::Outpatient, "2025-06-01T12:00:00Z");
    assert_eq!(rule_ids(&p, &f), ["clinic-letter-7d"]);
    // 23:30 UTC on 31 March 2019 is 00:30 BST on 1 April: the local date rules.
    let f = facts(EncounterKind::Outpatient, "2019-03-31T23:30:00Z");
    assert_eq!(rule_ids(&p, &f), ["clinic-letter-7d"]);
    // Before the contract there is nothing to expect.
    let f = facts(EncounterKind::Outpatient, "2017-03-31T12:00:00Z");
    assert!(rule_ids(&p, &f).is_empty());
    for k in [
        EncounterKind::Inpatient,
        EncounterKind::DayCase,
        EncounterKind::Emergency,
        EncounterKind::MentalHealth,
    ] {
        let f = facts(k, "2020-01-01T00:00:00Z");
        assert_eq!(rule_ids(&p, &f), ["discharge-summary-24h"], "{k:?}");
    }
    assert!(rule_ids(&p, &facts(EncounterKind::Other, "2020-01-01T00:00:00Z")).is_empty());
}

const TRUST: &str = r#"
[[rule]]
id = "ds"
clause = "SC11.6"
document_kind = "discharge_summary"
encounter_kinds = ["inpatient", "day_case"]
due_after = "1d"
due_soon = "20h"
effective_from = 2017-04-01

[[rule.exclude]]
reason = "maternity pathway"
specialties = ["501"]
encounter_kinds = ["inpatient"]

[[exclusion]]
reason = "private wing"
sites = ["RXX99"]
"#;

#[test]
fn exclusions_combine_lists_with_and_and_exclusions_with_or() {
    let p = Policy::from_toml(TRUST).unwrap();
    let mut f = facts(EncounterKind::Inpatient, "2020-01-01T00:00:00Z");
    f.specialty = Some("501");
    let apps: Vec<_> = p.applicable(&f).map(|(_, _, a)| a).collect();
    assert_eq!(apps, [Applicability::Excluded("maternity pathway")]);
    // Same specialty, other encounter kind: that exclusion's lists do not all match.
    f.kind = EncounterKind::DayCase;
    let apps: Vec<_> = p.applicable(&f).map(|(_, _, a)| a).collect();
    assert_eq!(apps, [Applicability::Applies]);
    f.site = Some("RXX99");
    let apps: Vec<_> = p.applicable(&f).map(|(_, _, a)| a).collect();
    assert_eq!(apps, [Applicability::Excluded("private wing")]);
    assert_eq!(p.rules()[0].due_soon.unwrap().as_secs(), 72_000);
}

fn err(text: &str) -> (usize, String) {
    match Policy::from_toml(text).unwrap_err() {
        PolicyError::At { line, reason, .. } => (line, reason),
        PolicyError::Whole { reason } => (0, reason),
    }
}

#[test]
fn invalid_policies_are_refused_with_line_and_reason() {
    let base = TRUST.replace(
        "[[exclusion]]\nreason = \"private wing\"\nsites = [\"RXX99\"]\n",
        "",
    );
    // Unknown kind.
    let (line, why) = err(&base.replace("\"day_case\"]", "\"daycase\"]"));
    assert_eq!(line, 6, "{why}");
    assert!(why.contains("daycase"), "{why}");
    // A kind listed twice (a slip for another kind, left untracked).
    let (line, why) = err(&base.replace("\"day_case\"]", "\"inpatient\"]"));
    assert_eq!(line, 6, "{why}");
    assert!(
        why.contains("rule `ds`") && why.contains("`inpatient` is listed twice"),
        "{why}"
    );
    // A date in quotes is a string: the error says how to write one.
    let (line, why) = err(&base.replace("2017-04-01", "\"2017-04-01\""));
    assert_eq!(line, 9, "{why}");
    assert!(why.contains("bare date such as 2019-04-01"), "{why}");
    // An exclusion whose encounter kinds its rule (or, policy-wide, any
    // rule) does not cover can match nothing: refused at its table.
    let (line, why) = err(&TRUST.replace(
        "encounter_kinds = [\"inpatient\"]",
        "encounter_kinds = [\"outpatient\"]",
    ));
    assert_eq!(line, 11, "{why}");
    assert!(
        why.contains("rule `ds`")
            && why.contains("(outpatient) that the rule does not cover (inpatient, day_case)"),
        "{why}"
    );
    let (line, why) =
        err(&TRUST.replace("sites = [\"RXX99\"]", "encounter_kinds = [\"emergency\"]"));
    assert_eq!(line, 16, "{why}");
    assert!(why.contains("(emergency) that no rule covers"), "{why}");
    let (line, why) = err(&TRUST.replace("reason = \"private wing\"", "reason = \" \""));
    assert_eq!(line, 16, "{why}");
    assert!(why.contains("reason is empty"), "{why}");
    // A key given twice is named; a list of tables written with one
    // bracket says to write two.
    let (line, why) = err(&base.replace(
        "clause = \"SC11.6\"\n",
        "clause = \"SC11.6\"\nclause = \"x\"\n",
    ));
    assert_eq!(line, 5, "{why}");
    assert!(why.contains("duplicate key `clause`"), "{why}");
    let (line, why) = err(&base.replace("[[rule]]", "[rule]"));
    assert_eq!(line, 2, "{why}");
    assert!(why.contains("write [[rule]]"), "{why}");
    // Bad duration.
    let (line, why) = err(&base.replace("\"1d\"", "\"1 fortnight\""));
    assert_eq!(line, 7, "{why}");
    assert!(why.contains("fortnight"), "{why}");
    // Missing field.
    let (_, why) = err(&base.replace("clause = \"SC11.6\"\n", ""));
    assert!(why.contains("clause"), "{why}");
    // due_soon not before due_after.
    let (line, why) = err(&base.replace("\"20h\"", "\"30h\""));
    assert_eq!(line, 8, "{why}");
    assert!(why.contains("due_soon"), "{why}");
    // Overlapping periods for the same kinds.
    let overlapping = format!(
        "{base}\n[[rule]]\nid = \"ds2\"\nclause = \"x\"\ndocument_kind = \"discharge_summary\"\nencounter_kinds = [\"day_case\"]\ndue_after = \"12h\"\neffective_from = 2020-01-01\n"
    );
    let (line, why) = err(&overlapping);
    assert_eq!(line, 17, "{why}");
    assert!(
        why.contains("overlaps rule `ds`") && why.contains("day_case"),
        "{why}"
    );
    // Disjoint periods are fine.
    let disjoint = base.replace(
        "effective_from = 2017-04-01",
        "effective_from = 2017-04-01\neffective_to = 2020-01-01",
    );
    assert!(Policy::from_toml(&format!(
        "{disjoint}\n[[rule]]\nid = \"ds2\"\nclause = \"x\"\ndocument_kind = \"discharge_summary\"\nencounter_kinds = [\"day_case\"]\ndue_after = \"12h\"\neffective_from = 2020-01-01\n"
    ))
    .is_ok());
    // Unknown key (typo).
    let (line, why) = err(&base.replace("due_after", "due_afer"));
    assert_eq!(line, 7, "{why}");
    assert!(why.contains("due_afer"), "{why}");
    // A date with a time, and effective_to before effective_from.
    let (line, why) = err(&base.replace("2017-04-01", "2017-04-01T00:00:00"));
    assert_eq!(line, 9, "{why}");
    let (_, why) = err(&base.replace("2017-04-01", "2017-04-01\neffective_to = 2016-01-01"));
    assert!(why.contains("effective_to"), "{why}");
    // Duplicate ids; no rules; exclusion matching nothing; unknown zone.
    let dup = format!(
        "{base}\n[[rule]]\nid = \"ds\"\nclause = \"x\"\ndocument_kind = \"clinic_letter\"\nencounter_kinds = [\"outpatient\"]\ndue_after = \"7d\"\neffective_from = 2019-04-01\n"
    );
    assert!(err(&dup).1.contains("duplicate rule id"));
    assert!(
        err("timezone = \"Europe/London\"\n")
            .1
            .contains("no [[rule]]")
    );
    // An exclusion that names nothing, at its own table: a rule's (it was
    // placed at the rule's start) and the policy's (it had no line).
    let (line, why) = err(&base.replace(
        "specialties = [\"501\"]\nencounter_kinds = [\"inpatient\"]\n",
        "",
    ));
    assert!(
        why.contains("match nothing") && why.contains("rule `ds`"),
        "{why}"
    );
    assert_eq!(line, 11, "{why}");
    let (line, why) = err(&TRUST.replace("sites = [\"RXX99\"]\n", ""));
    assert!(
        why.contains("`private wing`") && why.contains("match nothing"),
        "{why}"
    );
    assert_eq!(line, 16, "{why}");
    let (line, why) = err(&format!("timezone = \"Mars/Olympus\"\n{base}"));
    assert_eq!(line, 1, "{why}");
    // The error's Display names line and column.
    let e = Policy::from_toml(&base.replace("\"1d\"", "\"1x\"")).unwrap_err();
    assert!(e.to_string().starts_with("policy line 7, column"), "{e}");
}

/// An emergency attendance that ended in admission (PV1-36 as the trust's
/// ED system codes it) is excluded when the policy lists that disposition:
/// the stay's summary covers it. Other dispositions, and other kinds, are
/// owed as before.
#[test]
fn an_exclusion_by_discharge_disposition() {
    let text = TRUST.to_owned()
        + "\n[[exclusion]]\nreason = \"admitted from ED\"\nencounter_kinds = [\"emergency\", \"inpatient\"]\ndischarge_dispositions = [\"ADM\", \"19\"]\n";
    let p = Policy::from_toml(&text).unwrap();
    let judged = |f: &EncounterFacts<'_>| -> Vec<Applicability<'static>> {
        p.applicable(f)
            .map(|(_, _, a)| match a {
                Applicability::Applies => Applicability::Applies,
                Applicability::Excluded(r) => Applicability::Excluded(if r == "admitted from ED" {
                    "admitted"
                } else {
                    "other"
                }),
            })
            .collect()
    };
    let mut f = facts(EncounterKind::Inpatient, "2024-02-05T13:00:00Z");
    f.discharge_disposition = Some("ADM");
    assert_eq!(judged(&f), [Applicability::Excluded("admitted")]);
    f.discharge_disposition = Some("19");
    assert_eq!(judged(&f), [Applicability::Excluded("admitted")]);
    f.discharge_disposition = Some("HOME");
    assert_eq!(judged(&f), [Applicability::Applies]);
    f.discharge_disposition = None;
    assert_eq!(judged(&f), [Applicability::Applies]);
    let mut day_case = facts(EncounterKind::DayCase, "2024-02-05T13:00:00Z");
    day_case.discharge_disposition = Some("ADM");
    assert_eq!(judged(&day_case), [Applicability::Applies]);
}

/// A rule every encounter kind of which an exclusion naming only kinds
/// removes creates nothing: listed (for `check-config` to say), with the
/// exclusion's reason. An exclusion with any other condition, or one
/// leaving a kind of the rule, makes no such rule.
#[test]
fn rules_excluded_outright_are_listed() {
    assert!(
        Policy::default_contract()
            .rules_excluded_outright()
            .is_empty()
    );
    let ids = |text: &str| -> Vec<(String, Vec<String>)> {
        Policy::from_toml(text)
            .unwrap()
            .rules_excluded_outright()
            .into_iter()
            .map(|(r, why)| (r.id.clone(), why.into_iter().map(str::to_owned).collect()))
            .collect()
    };
    let some = "\n[[exclusion]]\nreason = \"no day cases\"\nencounter_kinds = [\"day_case\"]\n";
    assert!(ids(&format!("{TRUST}{some}")).is_empty());
    let all =
        "\n[[exclusion]]\nreason = \"not ours\"\nencounter_kinds = [\"inpatient\", \"day_case\"]\n";
    assert_eq!(
        ids(&format!("{TRUST}{all}")),
        [("ds".to_owned(), vec!["not ours".to_owned()])]
    );
    let narrowed = format!("{TRUST}{all}").replace(
        "reason = \"not ours\"\n",
        "reason = \"not ours\"\nsites = [\"RXX09\"]\n",
    );
    assert!(ids(&narrowed).is_empty());
}

/// The contract policy covers every kind from its first rule on; a trust's
/// policy with a gap between rules, or a last rule that ends, has its
/// uncovered periods listed (for `check-config` to say: ends then make no
/// expectation).
#[test]
fn gaps_between_rules_and_after_the_last_are_listed() {
    assert_eq!(Policy::default_contract().gaps(), []);
    let text = TRUST.replace(
        "effective_from = 2017-04-01\n",
        "effective_from = 2017-04-01\neffective_to = 2018-04-01\n",
    ) + r#"
[[rule]]
id = "ds2"
clause = "SC11.6"
document_kind = "discharge_summary"
encounter_kinds = ["inpatient"]
due_after = "1d"
effective_from = 2019-04-01
"#;
    let gaps = Policy::from_toml(&text).unwrap().gaps();
    let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
    let want = [
        // Day cases: none after the first rule ends.
        (EncounterKind::DayCase, d("2018-04-01"), None),
        // Inpatients: a year without, then the second rule.
        (
            EncounterKind::Inpatient,
            d("2018-04-01"),
            Some(d("2019-04-01")),
        ),
    ];
    let got: Vec<_> = gaps
        .iter()
        .map(|g| {
            assert_eq!(
                g.document_kind,
                tocsin_event::DocumentKind::DischargeSummary
            );
            (g.encounter_kind, g.from, g.to)
        })
        .collect();
    assert_eq!(got, want);
}
