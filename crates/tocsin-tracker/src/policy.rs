//! The effective-dated contract policy: which encounters create which
//! expectations, due when, under which clause.
//!
//! Rules live in `config/policies/*.toml` (see the checked-in
//! `nhs-standard-contract.toml` for the format, every key commented), so a
//! trust adds rules and exclusions without touching code. A rule applies
//! according to the local date (in the policy's `timezone`) on which the
//! encounter *ended*, never the date on which tocsin runs.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use std::ops::Range;
use tocsin_event::{DocumentKind, EncounterKind};
use toml::Spanned;

use crate::duration::ConfigDuration;

/// The compiled-in default policy text.
const DEFAULT_CONTRACT: &str = include_str!("../../../config/policies/nhs-standard-contract.toml");

/// An invalid policy, refused at start-up; `check-config` prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy is wrong at a known place.
    #[error("policy line {line}, column {column}: {reason}")]
    At {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The policy is wrong as a whole (no single place to point at).
    #[error("policy: {reason}")]
    Whole {
        /// What is wrong.
        reason: String,
    },
}

/// A period in which no rule covers a document kind after an encounter
/// kind that rules cover at other times ([`Policy::gaps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGap {
    /// The document kind.
    pub document_kind: DocumentKind,
    /// The encounter kind.
    pub encounter_kind: EncounterKind,
    /// The first day (of the encounter's end, in the policy's zone) with
    /// no rule.
    pub from: NaiveDate,
    /// The day a rule starts again, if one does.
    pub to: Option<NaiveDate>,
}

/// A condition under which a rule creates no expectation.
///
/// Every non-empty list must match (they combine with AND); an empty list
/// matches anything. A rule's exclusions and the policy-wide ones combine
/// with OR: any matching exclusion suppresses the expectation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Why (shown by `check-config`, kept for audit).
    pub reason: String,
    /// Specialty codes (PV1-10, FHIR serviceType) excluded.
    #[serde(default)]
    pub specialties: Vec<String>,
    /// Site codes excluded.
    #[serde(default)]
    pub sites: Vec<String>,
    /// GP practice ODS codes excluded (e.g. practices outside the
    /// electronic transfer network).
    #[serde(default)]
    pub gp_practices: Vec<String>,
    /// Encounter kinds (patient classes) excluded.
    #[serde(default)]
    pub encounter_kinds: Vec<EncounterKind>,
    /// Discharge dispositions (PV1-36, FHIR
    /// hospitalization.dischargeDisposition codes) excluded: an emergency
    /// attendance that ended in admission, whose summary is the stay's.
    #[serde(default)]
    pub discharge_dispositions: Vec<String>,
}

impl Exclusion {
    fn matches(&self, e: &EncounterFacts<'_>) -> bool {
        !self.names_nothing()
            && list_matches(&self.specialties, e.specialty)
            && list_matches(&self.sites, e.site)
            && list_matches(&self.gp_practices, e.gp_practice)
            && list_matches(&self.discharge_dispositions, e.discharge_disposition)
            && (self.encounter_kinds.is_empty() || self.encounter_kinds.contains(&e.kind))
    }

    /// Whether it names no condition at all (and so would match nothing).
    fn names_nothing(&self) -> bool {
        self.specialties.is_empty()
            && self.sites.is_empty()
            && self.gp_practices.is_empty()
            && self.encounter_kinds.is_empty()
            && self.discharge_dispositions.is_empty()
    }
}

fn list_matches(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
}

/// One contract rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique id, recorded on every expectation and alert.
    pub id: String,
    /// The contract clause, e.g. `SC11.6`.
    pub clause: String,
    /// The document kind the rule expects.
    pub document_kind: DocumentKind,
    /// The encounter kinds that create the obligation.
    pub encounter_kinds: Vec<EncounterKind>,
    /// How long after the encounter's end the document is due (elapsed time).
    pub due_after: ConfigDuration,
    /// When, after the encounter's end, to warn `due_soon` (before `due_after`).
    pub due_soon: Option<ConfigDuration>,
    /// First local date (of the encounter's end) on which the rule applies.
    pub effective_from: NaiveDate,
    /// First local date on which it no longer applies (exclusive), if any.
    pub effective_to: Option<NaiveDate>,
    /// This rule's exclusions.
    pub exclusions: Vec<Exclusion>,
}

impl Rule {
    /// Whether the rule applies to an encounter that ended on local date
    /// `d` (also for tools that plan traffic against the policy, such as
    /// `tocsin loadgen`).
    pub fn in_force_on(&self, d: NaiveDate) -> bool {
        self.effective_from <= d && self.effective_to.is_none_or(|to| d < to)
    }
}

/// The facts of an ended encounter that decide which rules apply.
#[derive(Debug, Clone, Copy)]
pub struct EncounterFacts<'a> {
    /// Encounter kind.
    pub kind: EncounterKind,
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Specialty code.
    pub specialty: Option<&'a str>,
    /// Site code.
    pub site: Option<&'a str>,
    /// GP practice ODS code.
    pub gp_practice: Option<&'a str>,
    /// Discharge disposition code, as sent.
    pub discharge_disposition: Option<&'a str>,
}

/// Whether a rule creates an expectation for an encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applicability<'a> {
    /// It does.
    Applies,
    /// It would, but an exclusion says not (its reason).
    Excluded(&'a str),
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    timezone: Tz,
    rules: Vec<Rule>,
    exclusions: Vec<Exclusion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default, rename = "exclusion")]
    exclusions: Vec<Spanned<Exclusion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    clause: String,
    document_kind: DocumentKind,
    encounter_kinds: Spanned<Vec<EncounterKind>>,
    due_after: Spanned<ConfigDuration>,
    #[serde(default)]
    due_soon: Option<Spanned<ConfigDuration>>,
    effective_from: Spanned<toml::value::Datetime>,
    #[serde(default)]
    effective_to: Option<Spanned<toml::value::Datetime>>,
    #[serde(default)]
    exclude: Vec<Spanned<Exclusion>>,
}

impl Policy {
    /// Parses and validates a policy; the error names the line, column and
    /// reason.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let mut reason = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => {
                    let start = span.start.min(text.len());
                    let line_start = text
                        .get(..start)
                        .unwrap_or("")
                        .rfind('\n')
                        .map_or(0, |i| i + 1);
                    let line = text.get(line_start..).and_then(|t| t.lines().next());
                    add_hint(&mut reason, line.unwrap_or(""));
                    at(text, &span, reason)
                }
                None => {
                    add_hint(&mut reason, "");
                    PolicyError::Whole { reason }
                }
            }
        })?;
        let timezone = match &raw.timezone {
            None => Tz::Europe__London,
            Some(tz) => tz.get_ref().parse::<Tz>().map_err(|_| {
                at(
                    text,
                    &tz.span(),
                    format!("unknown time zone `{}` (use an IANA name)", tz.get_ref()),
                )
            })?,
        };
        if raw.rules.is_empty() {
            return Err(PolicyError::Whole {
                reason: "no [[rule]] tables: a policy needs at least one rule".into(),
            });
        }
        let mut covered: Vec<EncounterKind> = raw
            .rules
            .iter()
            .flat_map(|r| r.get_ref().encounter_kinds.get_ref().iter().copied())
            .collect();
        covered.sort_unstable();
        covered.dedup();
        for ex in &raw.exclusions {
            check_exclusion(text, ex, None, &covered)?;
        }
        let mut rules: Vec<(Range<usize>, Rule)> = Vec::with_capacity(raw.rules.len());
        for spanned in raw.rules {
            let span = spanned.span();
            let r = spanned.into_inner();
            let rule = compile_rule(text, &span, r, &rules)?;
            rules.push((span, rule));
        }
        Ok(Policy {
            timezone,
            rules: rules.into_iter().map(|(_, r)| r).collect(),
            exclusions: raw
                .exclusions
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        })
    }

    /// The compiled-in NHS Standard Contract policy
    /// (`config/policies/nhs-standard-contract.toml`).
    pub fn default_contract() -> Policy {
        Policy::from_toml(DEFAULT_CONTRACT)
            .expect("the checked-in contract policy is valid (tested)")
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Policy-wide exclusions.
    pub fn exclusions(&self) -> &[Exclusion] {
        &self.exclusions
    }

    /// The zone in which effective dates are judged.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The periods, after a document kind and encounter kind's first rule
    /// starts, in which no rule covers them: between one rule's
    /// `effective_to` and the next's `effective_from`, or after the last
    /// one's `effective_to` (`to` absent: from then on). An end in such a
    /// period makes no expectation (counted `end_without_rule`), which a
    /// trust editing its rules may not have meant: `check-config` says so.
    pub fn gaps(&self) -> Vec<PolicyGap> {
        let mut pairs: Vec<(DocumentKind, EncounterKind)> = self
            .rules
            .iter()
            .flat_map(|r| r.encounter_kinds.iter().map(|k| (r.document_kind, *k)))
            .collect();
        pairs.sort_by_key(|(d, k)| (d.as_str(), k.as_str()));
        pairs.dedup();
        let mut gaps = Vec::new();
        for (document_kind, encounter_kind) in pairs {
            let mut periods: Vec<(NaiveDate, Option<NaiveDate>)> = self
                .rules
                .iter()
                .filter(|r| {
                    r.document_kind == document_kind && r.encounter_kinds.contains(&encounter_kind)
                })
                .map(|r| (r.effective_from, r.effective_to))
                .collect();
            periods.sort();
            // Covered up to `until` (None: for good).
            let mut until = Some(periods[0].0);
            for (from, to) in periods {
                if let Some(u) = until
                    && from > u
                {
                    gaps.push(PolicyGap {
                        document_kind,
                        encounter_kind,
                        from: u,
                        to: Some(from),
                    });
                }
                until = match (until, to) {
                    (None, _) | (_, None) => None,
                    (Some(u), Some(t)) => Some(u.max(t)),
                };
            }
            if let Some(from) = until {
                gaps.push(PolicyGap {
                    document_kind,
                    encounter_kind,
                    from,
                    to: None,
                });
            }
        }
        gaps
    }

    /// Rules that can create no expectation: every encounter kind they
    /// cover is excluded outright, by an exclusion (the rule's own or a
    /// policy-wide one) that names encounter kinds and nothing else. Valid,
    /// but a trust that wrote such an exclusion to narrow another rule may
    /// not have meant it: `check-config` says so. Each with the reasons of
    /// the exclusions that do it.
    pub fn rules_excluded_outright(&self) -> Vec<(&Rule, Vec<&str>)> {
        self.rules
            .iter()
            .filter_map(|r| {
                let mut reasons: Vec<&str> = Vec::new();
                for k in &r.encounter_kinds {
                    let x = r.exclusions.iter().chain(&self.exclusions).find(|x| {
                        x.encounter_kinds.contains(k)
                            && x.specialties.is_empty()
                            && x.sites.is_empty()
                            && x.gp_practices.is_empty()
                            && x.discharge_dispositions.is_empty()
                    })?;
                    if !reasons.contains(&x.reason.as_str()) {
                        reasons.push(&x.reason);
                    }
                }
                Some((r, reasons))
            })
            .collect()
    }

    /// Whether some rule, in force or not, covers encounters of `kind`.
    pub fn covers(&self, kind: EncounterKind) -> bool {
        self.rules.iter().any(|r| r.encounter_kinds.contains(&kind))
    }

    /// The rules in force for an ended encounter (judged by the local date of
    /// its end), each with whether an exclusion suppresses it.
    pub fn applicable<'a>(
        &'a self,
        facts: &'a EncounterFacts<'a>,
    ) -> impl Iterator<Item = (usize, &'a Rule, Applicability<'a>)> + 'a {
        let day = facts.ended_at.with_timezone(&self.timezone).date_naive();
        self.rules.iter().enumerate().filter_map(move |(i, r)| {
            if !r.encounter_kinds.contains(&facts.kind) || !r.in_force_on(day) {
                return None;
            }
            let excluded = r
                .exclusions
                .iter()
                .chain(self.exclusions.iter())
                .find(|x| x.matches(facts));
            Some(match excluded {
                Some(x) => (i, r, Applicability::Excluded(&x.reason)),
                None => (i, r, Applicability::Applies),
            })
        })
    }
}

fn compile_rule(
    text: &str,
    span: &Range<usize>,
    r: RawRule,
    earlier: &[(Range<usize>, Rule)],
) -> Result<Rule, PolicyError> {
    let id = r.id.get_ref().trim().to_string();
    if id.is_empty() {
        return Err(at(text, &r.id.span(), "rule id is empty".into()));
    }
    if earlier.iter().any(|(_, e)| e.id == id) {
        return Err(at(text, &r.id.span(), format!("duplicate rule id `{id}`")));
    }
    if r.clause.trim().is_empty() {
        return Err(at(text, span, format!("rule `{id}`: clause is empty")));
    }
    if r.encounter_kinds.get_ref().is_empty() {
        return Err(at(
            text,
            &r.encounter_kinds.span(),
            format!("rule `{id}`: encounter_kinds is empty"),
        ));
    }
    let kinds = r.encounter_kinds.get_ref();
    let twice = (1..kinds.len()).find(|&i| kinds[..i].contains(&kinds[i]));
    if let Some(k) = twice.map(|i| kinds[i]) {
        // Harmless as it stands, but most often a slip for another kind
        // (`inpatient` twice where `day_case` was meant), whose encounters
        // would then go untracked without a word.
        return Err(at(
            text,
            &r.encounter_kinds.span(),
            format!(
                "rule `{id}`: encounter kind `{}` is listed twice in encounter_kinds",
                k.as_str()
            ),
        ));
    }
    if r.due_after.get_ref().as_secs() == 0 {
        return Err(at(
            text,
            &r.due_after.span(),
            format!("rule `{id}`: due_after must be longer than zero"),
        ));
    }
    if let Some(ds) = &r.due_soon {
        let (soon, after) = (ds.get_ref().as_secs(), r.due_after.get_ref().as_secs());
        if soon == 0 || soon >= after {
            return Err(at(
                text,
                &ds.span(),
                format!(
                    "rule `{id}`: due_soon ({}) must be after the encounter's end and before due_after ({})",
                    ds.get_ref(),
                    r.due_after.get_ref()
                ),
            ));
        }
    }
    let effective_from = toml_date(text, &r.effective_from, &id, "effective_from")?;
    let effective_to = match &r.effective_to {
        None => None,
        Some(d) => {
            let to = toml_date(text, d, &id, "effective_to")?;
            if to <= effective_from {
                return Err(at(
                    text,
                    &d.span(),
                    format!(
                        "rule `{id}`: effective_to {to} is not after effective_from {effective_from}"
                    ),
                ));
            }
            Some(to)
        }
    };
    for ex in &r.exclude {
        check_exclusion(text, ex, Some(&id), r.encounter_kinds.get_ref())?;
    }
    let rule = Rule {
        id,
        clause: r.clause.trim().to_string(),
        document_kind: r.document_kind,
        encounter_kinds: r.encounter_kinds.into_inner(),
        due_after: r.due_after.into_inner(),
        due_soon: r.due_soon.map(Spanned::into_inner),
        effective_from,
        effective_to,
        exclusions: r.exclude.into_iter().map(Spanned::into_inner).collect(),
    };
    for (_, e) in earlier {
        if e.document_kind != rule.document_kind {
            continue;
        }
        let shared: Vec<&str> = rule
            .encounter_kinds
            .iter()
            .filter(|k| e.encounter_kinds.contains(k))
            .map(|k| k.as_str())
            .collect();
        if shared.is_empty() {
            continue;
        }
        let overlap = rule.effective_to.is_none_or(|to| e.effective_from < to)
            && e.effective_to.is_none_or(|to| rule.effective_from < to);
        if overlap {
            return Err(at(
                text,
                span,
                format!(
                    "rule `{}` overlaps rule `{}`: both expect {} after {} encounters in overlapping periods",
                    rule.id,
                    e.id,
                    rule.document_kind.as_str(),
                    shared.join(", ")
                ),
            ));
        }
    }
    Ok(rule)
}

/// An exclusion that can match nothing is refused at its own table (a
/// policy's `[[exclusion]]`, or a rule's `[[rule.exclude]]` with the
/// rule's id): it was named without a line, or at the start of its rule.
/// One that names no condition, and one whose encounter kinds are none of
/// those its rule (or, policy-wide, any rule) covers, `covered`: an
/// "admitted from ED" exclusion put under the clinic-letter rule excluded
/// nothing, and every admitted attendance went overdue, without a word.
fn check_exclusion(
    text: &str,
    ex: &Spanned<Exclusion>,
    rule: Option<&str>,
    covered: &[EncounterKind],
) -> Result<(), PolicyError> {
    let e = ex.get_ref();
    let kinds = |ks: &[EncounterKind]| ks.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
    let reason = if e.reason.trim().is_empty() {
        "an exclusion's reason is empty: say why it excludes (check-config and the start-up \
         notes name exclusions by it)"
            .to_owned()
    } else if e.names_nothing() {
        format!(
            "exclusion `{}` names no specialties, sites, gp_practices, encounter_kinds or discharge_dispositions, so it would match nothing",
            e.reason
        )
    } else if !e.encounter_kinds.is_empty()
        && !e.encounter_kinds.iter().any(|k| covered.contains(k))
    {
        format!(
            "exclusion `{}` names encounter kinds ({}) that {} ({}), so it would match nothing",
            e.reason,
            kinds(&e.encounter_kinds),
            if rule.is_some() {
                "the rule does not cover"
            } else {
                "no rule covers"
            },
            kinds(covered)
        )
    } else {
        return Ok(());
    };
    Err(at(
        text,
        &ex.span(),
        match rule {
            Some(id) => format!("rule `{id}`: {reason}"),
            None => reason,
        },
    ))
}

fn toml_date(
    text: &str,
    d: &Spanned<toml::value::Datetime>,
    id: &str,
    field: &str,
) -> Result<NaiveDate, PolicyError> {
    let v = d.get_ref();
    let bad = |why: &str| {
        at(
            text,
            &d.span(),
            format!("rule `{id}`: {field} {why} (write a bare date such as 2019-04-01)"),
        )
    };
    if v.time.is_some() || v.offset.is_some() {
        return Err(bad("must be a date without a time"));
    }
    let date = v.date.ok_or_else(|| bad("is not a date"))?;
    NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
        .ok_or_else(|| bad("is not a valid calendar date"))
}

/// What a TOML reason leaves unsaid, read from the `line` it points at:
/// toml's own words name neither the key given twice nor the `[[...]]` a
/// list of tables needs, and a policy (or `tocsin.toml`, whose reader
/// shares this) is written by hand.
pub fn add_hint(reason: &mut String, line: &str) {
    let line = line.trim();
    if reason.contains("expected a TOML datetime") {
        // `effective_from = "2019-04-01"`: a date in quotes is a string.
        reason.push_str(" (write a bare date such as 2019-04-01, without quotes)");
    } else if reason.starts_with("duplicate key")
        && let Some((key, _)) = line.split_once('=')
    {
        reason.push_str(&format!(
            " `{}`: each key is given once in a table",
            key.trim()
        ));
    } else if reason.contains("expected a sequence")
        && let Some(name) = line
            .strip_prefix('[')
            .filter(|n| !n.starts_with('['))
            .and_then(|n| n.split(']').next())
    {
        reason.push_str(&format!(
            " (write [[{name}]]: each one is an entry of a list, with two brackets)"
        ));
    }
}

/// Turns a byte span into a 1-based line and column.
fn at(text: &str, span: &Range<usize>, reason: String) -> PolicyError {
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    PolicyError::At {
        line,
        column,
        reason,
    }
}
