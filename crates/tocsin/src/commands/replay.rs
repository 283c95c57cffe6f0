//! `tocsin replay`: judge archived traffic as the live gateway would.
//!
//! Files are read in the order given (directories recursively, in file-name
//! order), normalised exactly as `tocsin normalise` does, and applied to the
//! same tracker core the gateway runs, with the clock following the events'
//! own times. The clock is then advanced to `--until`. Every alert is written
//! as a JSON line to `--alerts`; a compliance report follows.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use tocsin_ingest::{ContentHint, ingest};
use tocsin_store::Batch;
use tocsin_tracker::{Effect, Tracker, compliance};

use crate::cli::ReplayArgs;
use crate::config::Config;
use crate::inputs;

/// The report covers encounters that ended from here (every store can hold it;
/// PostgreSQL's timestamps start at 4713 BC, not at chrono's minimum).
const REPORT_FROM: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

/// ...up to here (the year 10000, within every store's range).
fn report_to() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How many events' effects go into one store transaction.
const COMMIT_EVERY: usize = 20_000;

/// One rejected unit of input, for stderr and the report.
#[derive(Debug, serde::Serialize)]
pub struct Rejected {
    /// The file.
    pub file: String,
    /// Where in the file.
    pub position: String,
    /// The reason code.
    pub reason: String,
    /// The full explanation.
    pub message: String,
    /// Where in the message, when known.
    pub location: Option<String>,
}

/// Runs a replay.
pub fn run(config: &Config, args: &ReplayArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let files = inputs::expand(&args.paths)?;
    let until: DateTime<Utc> = args.until;
    let mut alerts_out = BufWriter::new(create(&args.alerts)?);
    let mut events_out = match &args.events {
        Some(p) => Some(BufWriter::new(create(p)?)),
        None => None,
    };
    let scratch;
    let store_url = match &args.store {
        Some(url) => url.clone(),
        None => {
            scratch = tempfile::tempdir()?;
            // A scratch store, thrown away after the run, needs no fsync.
            format!(
                "sqlite://{}?synchronous=off",
                scratch.path().join("replay.sqlite").display()
            )
        }
    };
    let mut store = tocsin_store::open(&store_url)?;
    let mut tracker = Tracker::new(config.policy.clone(), config.tracker.clone());
    // Nothing stamped after --until may move the clock past it.
    tracker.set_ceiling(Some(until));
    let mut batch = Batch::default();
    let mut pending_events = 0usize;
    let mut rejected = Vec::new();
    let mut alert_count = 0usize;

    for file in &files {
        let bytes =
            std::fs::read(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let hint = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(ContentHint::from_file_name);
        for unit in ingest(&bytes, hint, &config.ingest) {
            let events = match unit.outcome {
                Ok(events) => events,
                Err(e) => {
                    let r = Rejected {
                        file: file.display().to_string(),
                        position: unit.position.to_string(),
                        reason: e.reason_code().to_string(),
                        message: super::normalise::describe(&e),
                        location: e.location(),
                    };
                    report_rejected(&r);
                    rejected.push(r);
                    continue;
                }
            };
            for event in events {
                if let Some(out) = events_out.as_mut() {
                    serde_json::to_writer(&mut *out, &event)?;
                    out.write_all(b"\n")?;
                }
                let effects = tracker.apply(&event);
                alert_count += write_alerts(&mut alerts_out, &effects)?;
                batch.extend_effects(effects);
                pending_events += 1;
                if pending_events >= COMMIT_EVERY {
                    store.commit(&batch)?;
                    batch.clear();
                    pending_events = 0;
                }
            }
        }
    }
    let effects = tracker.advance_to(until);
    alert_count += write_alerts(&mut alerts_out, &effects)?;
    batch.extend_effects(effects);
    store.commit(&batch)?;
    alerts_out.flush()?;
    if let Some(out) = events_out.as_mut() {
        out.flush()?;
    }

    let expectations = store.expectations_ended_between(REPORT_FROM, report_to())?;
    let rows = compliance::report_in_zone(
        expectations.iter(),
        &compliance::GroupBy::ALL,
        config.policy.timezone(),
    );
    let rendered = render_report(&rows, &rejected, args.format)?;
    match &args.report {
        Some(p) => std::fs::write(p, rendered).map_err(|e| format!("{}: {e}", p.display()))?,
        None => print!("{rendered}"),
    }
    eprintln!(
        "replay: {} file(s), {} alert(s), {} rejected input(s), clock at {}",
        files.len(),
        alert_count,
        rejected.len(),
        until.to_rfc3339()
    );
    Ok(ExitCode::SUCCESS)
}

fn create(p: &Path) -> Result<File, String> {
    File::create(p).map_err(|e| format!("{}: cannot create: {e}", p.display()))
}

fn report_rejected(r: &Rejected) {
    eprintln!("{}: {}: {}", r.file, r.position, r.message);
}

fn write_alerts(out: &mut impl Write, effects: &[Effect]) -> std::io::Result<usize> {
    let mut n = 0;
    for effect in effects {
        if let Effect::AlertRaised(alert) = effect {
            serde_json::to_writer(&mut *out, alert)?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
    Ok(n)
}

/// The report formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// An aligned text table for people.
    Table,
    /// CSV: the figures, then (after a blank line) the rejected inputs.
    Csv,
    /// One JSON object: `{"rows": [...], "rejected": [...]}`.
    Json,
}

fn render_report(
    rows: &[compliance::ComplianceRow],
    rejected: &[Rejected],
    format: ReportFormat,
) -> Result<String, Box<dyn std::error::Error>> {
    Ok(match format {
        ReportFormat::Json => {
            let mut s = serde_json::to_string_pretty(
                &serde_json::json!({ "rows": rows, "rejected": rejected }),
            )?;
            s.push('\n');
            s
        }
        ReportFormat::Csv => {
            let mut s = compliance::to_csv(rows, &compliance::GroupBy::ALL);
            if !rejected.is_empty() {
                s.push_str("\nfile,position,reason,location\n");
                for r in rejected {
                    s.push_str(&format!(
                        "{},{},{},{}\n",
                        csv_field(&r.file),
                        csv_field(&r.position),
                        csv_field(&r.reason),
                        csv_field(r.location.as_deref().unwrap_or(""))
                    ));
                }
            }
            s
        }
        ReportFormat::Table => {
            let mut s = compliance::to_table(rows, &compliance::GroupBy::ALL);
            if !rejected.is_empty() {
                s.push_str(&format!("\nRejected inputs ({}):\n", rejected.len()));
                for r in rejected {
                    s.push_str(&format!("  {}: {}: {}\n", r.file, r.position, r.message));
                }
            }
            s
        }
    })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
