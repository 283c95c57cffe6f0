//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// tocsin watches that discharge summaries and clinic letters reach GPs on
/// time: it normalises HL7 v2 and FHIR traffic, tracks every expected
/// document, and raises alerts for late and missing ones.
#[derive(Debug, Parser)]
#[command(name = "tocsin", version, about)]
pub struct Cli {
    /// The configuration file (default: config/tocsin.toml if present, else
    /// the built-in defaults).
    #[arg(long, global = true, env = "TOCSIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Normalise HL7 v2 and FHIR files into interface events, one JSON line
    /// each on stdout; rejected inputs go to stderr. Exit 0 when every input
    /// normalised, 1 when any was rejected or could not be read, 2 on a
    /// usage error or a path that does not exist.
    Normalise {
        /// Files or directories (read recursively, in file-name order).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Replay archived traffic through the tracker, as the live gateway
    /// would judge it, and report compliance.
    Replay(ReplayArgs),
    /// Run the live gateway: consume the input queues, track expectations,
    /// publish events and alerts. Stops cleanly on SIGTERM or SIGINT.
    Run,
    /// Publish files to the gateway's input queue (one message each), as the
    /// integration engine would: for trying tocsin out.
    Send(crate::commands::SendArgs),
    /// Generate synthetic trust traffic from a seed (admissions, discharges,
    /// attendances, documents, acknowledgements) into files for `replay`,
    /// or publish it to the input queue: for benchmarks and trials.
    Loadgen(crate::commands::LoadgenArgs),
    /// Validate the configuration, mappings and policy, and say what is wrong.
    CheckConfig,
    /// The dead-letter queue: `list` what is there and why (no bodies),
    /// `redrive` it back to the input queue once the cause is mended.
    DeadLetters(crate::commands::DeadLettersArgs),
}

/// Arguments of `tocsin replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Judge as at this time (RFC 3339, or a date such as 2024-04-01
    /// meaning its midnight in the policy's time zone): advance the clock to
    /// it after the last input, so that every deadline before it fires. An
    /// input stamped later had not happened by then: it is not applied
    /// (counted as the notice `after_until`).
    #[arg(long, value_parser = parse_until)]
    pub until: Until,
    /// Write every alert as a JSON line to this file.
    #[arg(long)]
    pub alerts: PathBuf,
    /// Also write every interface event as a JSON line to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Write the compliance report to this file (default: stdout).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::commands::ReportFormat,
    /// Group the report by these dimensions, comma-separated, in any order
    /// (columns come in the order listed here): month, document_kind,
    /// encounter_kind, site, specialty, gp_practice.
    #[arg(
        long,
        value_name = "LIST",
        value_parser = parse_group_by,
        default_value = "month,document_kind,encounter_kind,site"
    )]
    pub group_by: GroupByList,
    /// Keep the replay's state in this store (`sqlite://PATH` or
    /// `postgres://...`), all of it, so that a gateway can carry on from it.
    /// A SQLite file that does not exist yet is built as `PATH.partial` and
    /// renamed to PATH only when the replay succeeds. Default: no store,
    /// only what the report reads (each expectation's latest state) held in
    /// memory, some 48 bytes a settled expectation.
    #[arg(long)]
    pub store: Option<String>,
    /// Print a progress line on stderr every few seconds while the input is
    /// read (files, events, rejected inputs, the clock, the rate), and once
    /// when it is all read. `auto`: when stderr is a terminal.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: crate::commands::ProgressMode,
    /// Files or directories (read recursively, in file-name order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// `--until`: a time, or a date whose midnight depends on the policy's
/// time zone, read only once the configuration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// An RFC 3339 time.
    At(chrono::DateTime<chrono::Utc>),
    /// A date: its midnight in the policy's zone (an auditor judging "as
    /// at 1 April" means the trust's midnight, as the API's dates do).
    Date(chrono::NaiveDate),
}

impl Until {
    /// The instant meant, dates in `zone`; an error when that midnight
    /// does not exist there.
    pub fn resolve<Z: chrono::TimeZone>(
        self,
        zone: &Z,
    ) -> Result<chrono::DateTime<chrono::Utc>, String> {
        match self {
            Until::At(t) => Ok(t),
            Until::Date(d) => zone
                .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok_or_else(|| {
                    format!("--until {d}: its midnight does not exist in the policy's time zone")
                }),
        }
    }
}

fn parse_until(s: &str) -> Result<Until, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Until::At(t.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Until::Date)
        .map_err(|_| {
            format!(
                "{s:?} is neither an RFC 3339 time (e.g. 2026-01-31T23:59:59Z) nor a date \
                 (2026-01-31, its midnight in the policy's time zone)"
            )
        })
}

/// The dimensions of `--group-by`, in the report's column order.
#[derive(Debug, Clone)]
pub struct GroupByList(pub Vec<tocsin_tracker::compliance::GroupBy>);

fn parse_group_by(s: &str) -> Result<GroupByList, String> {
    tocsin_tracker::compliance::GroupBy::parse_list(s)
        .map(GroupByList)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_time_or_a_date_at_its_local_midnight() {
        let summer = chrono::FixedOffset::east_opt(3600).unwrap();
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert_eq!(
            parse_until("2024-07-01").unwrap().resolve(&summer),
            Ok(t("2024-06-30T23:00:00Z"))
        );
        assert_eq!(
            parse_until("2024-07-01T12:00:00+02:00")
                .unwrap()
                .resolve(&summer),
            Ok(t("2024-07-01T10:00:00Z"))
        );
        let e = parse_until("1 July").unwrap_err();
        assert!(
            e.contains("neither an RFC 3339 time") && e.contains("a date"),
            "{e}"
        );
    }
}
