//! `tocsin loadgen`: synthetic trust traffic from a seed (tocsin-loadgen),
//! written to files for `tocsin replay` or published to the input queue with
//! publisher confirms, at full speed or a set rate. For benchmarks (issue 8,
//! `bench/run.sh`) and for trying tocsin on a realistic volume.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tocsin_amqp::OutgoingMessage;
use tocsin_loadgen::{Chunker, Generator, Options, Profile};

use crate::config::Config;

/// Arguments of `tocsin loadgen`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("bound").required(true).multiple(true).args(["days", "count"])))]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["out", "publish"])))]
pub struct LoadgenArgs {
    /// Seed: the same seed and options give byte-identical traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First day whose encounters end (local date, YYYY-MM-DD).
    #[arg(long, default_value = "2025-01-06")]
    pub start: NaiveDate,
    /// Plan encounters ending on this many days (their documents and
    /// acknowledgements follow, even after the last day).
    #[arg(long)]
    pub days: Option<u32>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Share of expected documents that come late (default: the profile's).
    #[arg(long, value_parser = share)]
    pub late_share: Option<f64>,
    /// Share of expected documents that never come (default: the profile's).
    #[arg(long, value_parser = share)]
    pub missing_share: Option<f64>,
    /// Mean discharges per day (default: the profile's, a large trust).
    #[arg(long)]
    pub discharges_per_day: Option<f64>,
    /// Mean outpatient attendances per day (default: the profile's).
    #[arg(long)]
    pub attendances_per_day: Option<f64>,
    /// Traffic profile (default: the compiled-in config/loadgen.toml).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Write files into this directory (new or empty): one per message,
    /// named so that file-name order is time order (`tocsin replay DIR`
    /// reads them so).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --out: pack each window of this many seconds into one HL7 file
    /// and one NDJSON file (for very large runs). Keep it at or below the
    /// tracker's allowed lateness (300 s by default) for the same judgement.
    #[arg(long, requires = "out", value_parser = clap::value_parser!(u32).range(1..))]
    pub pack_seconds: Option<u32>,
    /// Publish to the broker (the configured input queue, or --routing-key)
    /// with publisher confirms.
    #[arg(long)]
    pub publish: bool,
    /// With --publish: messages per second (default: as fast as confirms
    /// allow).
    #[arg(long, requires = "publish", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// With --publish: messages per confirmed batch at full speed, and the
    /// most in one batch at a set rate.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// With --publish: routing key (default: the configured input queue) on
    /// the default exchange.
    #[arg(long, requires = "publish")]
    pub routing_key: Option<String>,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.1)")),
    }
}

/// Generates the traffic and writes or publishes it.
pub fn run(config: &Config, args: &LoadgenArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut profile = match &args.profile {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            Profile::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Profile::default(),
    };
    let d = &mut profile.documents;
    d.late_share = args.late_share.unwrap_or(d.late_share);
    d.missing_share = args.missing_share.unwrap_or(d.missing_share);
    let v = &mut profile.volumes;
    v.discharges_per_day = args.discharges_per_day.unwrap_or(v.discharges_per_day);
    v.outpatient_attendances_per_day = args
        .attendances_per_day
        .unwrap_or(v.outpatient_attendances_per_day);
    profile.validate()?;
    let warnings = deadline_mismatches(&config.policy, &profile, args.start, args.days)
        .into_iter()
        .chain(class_mismatches(&config.ingest, &profile));
    for warning in warnings {
        eprintln!("loadgen: {warning}");
    }
    let opts = Options {
        seed: args.seed,
        start: args.start,
        days: args.days,
        max_messages: args.count,
    };
    let mut generator = Generator::new(profile, opts)?;
    let started = Instant::now();
    let bytes = match &args.out {
        Some(dir) => write_files(&mut generator, dir, args.pack_seconds)?,
        None => publish(config, args, &mut generator)?,
    };
    let secs = started.elapsed().as_secs_f64();
    let s = generator.stats();
    println!(
        "loadgen messages={} bytes={bytes} seconds={secs:.3} rate={:.0} encounters={} discharges={} attendances={} on_time={} late={} missing={}",
        s.messages,
        s.messages as f64 / secs.max(f64::EPSILON),
        s.encounters,
        s.discharges,
        s.attendances,
        s.on_time,
        s.late,
        s.missing
    );
    // A small --count stops among the admissions that come weeks before
    // the first ends: said, or a trial tracks nothing and no one knows why.
    if args.count.is_some() && s.messages > 0 && s.encounters == 0 {
        eprintln!(
            "loadgen: none of the {} message(s) ended an encounter: the traffic opens with the \
             admissions of stays ending from --start; give --days, or a --count of some 14,000 \
             a day of the default profile",
            s.messages
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The profile's patient classes (HL7 PV1-2, FHIR Encounter.class) that
/// the configured code tables do not read as the kind they are sent for:
/// those encounters would be `other` (counted `end_without_kind`) or
/// another kind, and the run's counts would not be what a replay judges.
fn class_mismatches(ingest: &tocsin_ingest::IngestConfig, profile: &Profile) -> Vec<String> {
    use tocsin_event::EncounterKind as K;
    let d = &profile.discharges;
    let kinds = [
        (K::Inpatient, &d.inpatient_class, &d.inpatient_fhir_class),
        (K::DayCase, &d.day_case_class, &d.day_case_fhir_class),
        (K::Emergency, &d.emergency_class, &d.emergency_fhir_class),
        (K::Outpatient, &d.outpatient_class, &d.outpatient_fhir_class),
    ];
    let mut out = Vec::new();
    for (kind, hl7, fhir) in kinds {
        let name = kind.as_str();
        let read = [
            (
                "",
                "[hl7.patient_class]",
                ingest.hl7.encounter_kind(hl7),
                hl7,
            ),
            (
                "_fhir",
                "[fhir.encounter_class]",
                ingest
                    .fhir
                    .encounter_kind(Some(tocsin_loadgen::R4_CLASS_SYSTEM), fhir),
                fhir,
            ),
        ];
        for (suffix, table, got, code) in read {
            if got != Some(kind) {
                let as_what = got.map_or("no kind (`other`, counted `end_without_kind`)", |k| {
                    k.as_str()
                });
                out.push(format!(
                    "the profile's discharges.{name}{suffix}_class {code:?} is read by {table} \
                     as {as_what}, not {name}: map it in the mappings file, or the run's counts \
                     are not what a replay judges"
                ));
            }
        }
    }
    out
}

/// Where the policy would judge the generated documents by another
/// deadline than the profile plans them by, one line per document kind at
/// the first day it does: before April 2019 the clinic letter rule gave 10
/// or 14 days, and letters planned late at 7 to 10 days were judged on
/// time, the run's own counts of late and missing no longer what the
/// tracker reports. Days checked: the run's, or a year from `start` for a
/// run bounded by a message count.
fn deadline_mismatches(
    policy: &tocsin_tracker::Policy,
    profile: &Profile,
    start: NaiveDate,
    days: Option<u32>,
) -> Vec<String> {
    use tocsin_event::{DocumentKind, EncounterKind};
    let d = &profile.documents;
    let planned = [
        (
            DocumentKind::DischargeSummary,
            EncounterKind::Inpatient,
            d.discharge_summary_due_hours,
            "documents.discharge_summary_due_hours",
        ),
        (
            DocumentKind::ClinicLetter,
            EncounterKind::Outpatient,
            d.clinic_letter_due_hours,
            "documents.clinic_letter_due_hours",
        ),
    ];
    let mut out = Vec::new();
    for (doc, enc, hours, key) in planned {
        let due = (hours * 3600.0).round() as i64;
        let first_differing = (0..days.unwrap_or(366)).find_map(|i| {
            let day = start.checked_add_days(chrono::Days::new(u64::from(i)))?;
            let rules: Vec<_> = policy
                .rules()
                .iter()
                .filter(|r| {
                    r.document_kind == doc && r.encounter_kinds.contains(&enc) && r.in_force_on(day)
                })
                .collect();
            if rules.is_empty() {
                Some(format!(
                    "from {day} the policy expects no {} after an {} encounter: those planned are not tracked",
                    doc.as_str(),
                    enc.as_str()
                ))
            } else {
                rules.iter().find(|r| r.due_after.as_secs() != due).map(|r| {
                    format!(
                        "from {day} the policy's rule `{}` gives a {} {} s to come, the profile plans by {due} s \
                         ({key}): documents planned late or on time may be judged otherwise",
                        r.id,
                        doc.as_str(),
                        r.due_after.as_secs()
                    )
                })
            }
        });
        out.extend(first_differing);
    }
    out
}

fn write(dir: &Path, name: &str, body: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, body).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn write_files(
    generator: &mut Generator,
    dir: &Path,
    pack: Option<u32>,
) -> Result<u64, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    // Another run's files left beside this one's would be replayed with
    // them, their encounters judged with no word of where they came from.
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
    if entries.next().is_some() {
        return Err(format!(
            "{}: not empty; give a new or empty directory (replay reads every file in it)",
            dir.display()
        )
        .into());
    }
    let mut bytes = 0u64;
    match pack {
        None => {
            for m in generator {
                write(dir, &m.file_name(), &m.body)?;
                bytes += m.body.len() as u64;
            }
        }
        Some(secs) => {
            let mut chunker = Chunker::new(chrono::TimeDelta::seconds(i64::from(secs)));
            for m in generator {
                bytes += m.body.len() as u64;
                for f in chunker.push(&m) {
                    write(dir, &f.name, &f.body)?;
                }
            }
            for f in chunker.finish() {
                write(dir, &f.name, &f.body)?;
            }
        }
    }
    Ok(bytes)
}

/// The batch and the time between batches that send `rate` messages a
/// second: a batch every 20 ms, of at most `max_batch`.
fn paced(rate: u32, max_batch: u32) -> (usize, Duration) {
    let batch = (rate as usize)
        .div_ceil(50)
        .clamp(1, (max_batch as usize).max(1));
    (
        batch,
        Duration::from_secs_f64(batch as f64 / f64::from(rate.max(1))),
    )
}

fn publish(
    config: &Config,
    args: &LoadgenArgs,
    generator: &mut Generator,
) -> Result<u64, Box<dyn std::error::Error>> {
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| config.amqp.input_queue.clone());
    // At a set rate, send a small batch every 20 ms (or `--batch`, sooner,
    // for rates over 50 batches a second: a very high rate held some
    // millions of messages in memory at once); else large batches.
    let (batch, tick) = match args.rate {
        Some(r) => {
            let (batch, tick) = paced(r, args.batch);
            (batch, Some(tick))
        }
        None => (args.batch as usize, None),
    };
    let seed = args.seed;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = super::broker_session(config).await?;
        let publisher = session.publisher().await?;
        let mut interval = tick.map(|t| {
            let mut i = tokio::time::interval(t);
            // After a stall (the broker blocking publishers), carry on at
            // the set rate rather than catch up in a burst, which would
            // measure the burst and not the rate asked for.
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut bytes = 0u64;
        loop {
            let messages: Vec<OutgoingMessage> = generator
                .by_ref()
                .take(batch)
                .map(|m| OutgoingMessage {
                    exchange: String::new(),
                    routing_key: routing_key.clone(),
                    message_id: format!("loadgen-{seed:x}-{}", m.seq),
                    content_type: Some(m.format().content_type().to_string()),
                    body: m.body,
                    headers: None,
                    mandatory: true,
                })
                .collect();
            if messages.is_empty() {
                break;
            }
            if let Some(i) = interval.as_mut() {
                i.tick().await;
            }
            bytes += messages.iter().map(|m| m.body.len() as u64).sum::<u64>();
            publisher.publish_confirmed(&messages).await?;
        }
        session.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_rate_is_batches_every_20_ms_of_at_most_the_batch_size() {
        assert_eq!(paced(500, 1000), (10, Duration::from_millis(20)));
        assert_eq!(paced(1, 1000), (1, Duration::from_secs(1)));
        // 4 billion a second in batches of 1,000, not 80 million.
        let (batch, tick) = paced(4_000_000_000, 1000);
        assert_eq!(batch, 1000);
        assert!((249..=251).contains(&tick.as_nanos()), "{tick:?}");
    }

    #[test]
    fn a_patient_class_the_code_tables_do_not_read_is_warned_of() {
        let ingest = tocsin_ingest::IngestConfig::default();
        let mut profile = Profile::default();
        assert!(class_mismatches(&ingest, &profile).is_empty());
        profile.discharges.inpatient_class = "Q".into();
        profile.discharges.outpatient_fhir_class = "IMP".into();
        let w = class_mismatches(&ingest, &profile);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("inpatient_class \"Q\"") && w[0].contains("no kind"),
            "{w:?}"
        );
        assert!(
            w[1].contains("outpatient_fhir_class \"IMP\"") && w[1].contains("as inpatient"),
            "{w:?}"
        );
    }

    #[test]
    fn a_run_judged_by_another_deadline_than_planned_is_warned_of() {
        let policy = tocsin_tracker::Policy::default_contract();
        let profile = Profile::default();
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        // The default profile plans by today's 7-day clinic letter rule.
        assert!(deadline_mismatches(&policy, &profile, day("2025-01-06"), Some(30)).is_empty());
        // In June 2018 the 10-day rule was in force.
        let w = deadline_mismatches(&policy, &profile, day("2018-06-04"), Some(1));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("from 2018-06-04") && w[0].contains("clinic_letter"),
            "{w:?}"
        );
        assert!(w[0].contains("864000 s"), "{w:?}");
        // A count-bounded run from March 2019 reaches the 7-day rule's
        // start, and is told of the days before.
        let w = deadline_mismatches(&policy, &profile, day("2019-03-01"), None);
        assert_eq!(w.len(), 1, "{w:?}");
        // Before April 2017 no document is expected at all.
        let w = deadline_mismatches(&policy, &profile, day("2016-01-01"), Some(1));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[1].contains("expects no clinic_letter"), "{w:?}");
    }
}
