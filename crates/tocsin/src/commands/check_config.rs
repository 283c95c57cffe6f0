//! `tocsin check-config`: validate configuration, mappings and policy.

use std::process::ExitCode;

use crate::config::Config;

/// Loading the configuration already validated it; what is read only when
/// used (the store's password file) is read here too, so that a file the
/// gateway could not read is found before it starts.
pub fn run(config: &Config) -> Result<ExitCode, Box<dyn std::error::Error>> {
    config.store.password()?;
    if let Some(path) = config.store.ignored_password_file() {
        eprintln!(
            "note: [store] password_file {} is ignored: the store is not PostgreSQL",
            path.display()
        );
    }
    for note in notes(config) {
        eprintln!("note: {note}");
    }
    if !config.secrets_readable_by_others.is_empty() {
        eprintln!(
            "note: {} holds secrets others on this host can read ({}): chmod o-r it, or move \
             them to *_file settings readable by tocsin alone",
            config.origin,
            config.secrets_readable_by_others.join(", ")
        );
    }
    if config.env_overrides.is_empty() {
        println!("configuration OK: {}", config.origin);
    } else {
        println!(
            "configuration OK: {}, with {} from the environment",
            config.origin,
            config.env_overrides.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What is valid but may not be what the trust meant: periods no rule
/// covers (ends then make no expectation, counted `end_without_rule`), and
/// time zones that differ between the HL7 reader, the FHIR reader and the
/// policy (local times of one format, and a report's months, read in
/// another zone than the rest).
fn notes(config: &Config) -> Vec<String> {
    let mut notes: Vec<String> = config
        .policy
        .gaps()
        .iter()
        .map(|g| {
            let when = match g.to {
                Some(to) => format!("from {} until {to}", g.from),
                None => format!("from {} on", g.from),
            };
            format!(
                "no rule expects a {} after {} encounters ending {when}: such ends make no \
                 expectation (counted end_without_rule)",
                g.document_kind.as_str(),
                g.encounter_kind.as_str()
            )
        })
        .collect();
    for (rule, reasons) in config.policy.rules_excluded_outright() {
        notes.push(format!(
            "rule {} can create no expectation: every encounter kind it covers is excluded \
             outright (exclusion \"{}\"), so its ends are counted excluded",
            rule.id,
            reasons.join("\", \"")
        ));
    }
    let zones = [
        ("[hl7] timezone", config.ingest.hl7.timezone),
        ("[fhir] timezone", config.ingest.fhir.timezone),
        ("the policy's timezone", config.policy.timezone()),
    ];
    if zones.iter().any(|(_, z)| *z != zones[0].1) {
        let listed: Vec<String> = zones.iter().map(|(k, z)| format!("{k} {z}")).collect();
        notes.push(format!(
            "the time zones differ ({}): local times are read, and effective dates and a \
             report's months judged, in different zones",
            listed.join(", ")
        ));
    }
    notes.extend(config.metrics.notes());
    notes
}
