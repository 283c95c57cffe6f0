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
    /// Write files into this directory: one per message, named so that
    /// file-name order is time order (`tocsin replay DIR` reads them so).
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
    /// With --publish: messages per confirmed batch at full speed.
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
    Ok(ExitCode::SUCCESS)
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

fn publish(
    config: &Config,
    args: &LoadgenArgs,
    generator: &mut Generator,
) -> Result<u64, Box<dyn std::error::Error>> {
    let routing_key = args
        .routing_key
        .clone()
        .unwrap_or_else(|| config.amqp.input_queue.clone());
    // At a set rate, send a small batch every 20 ms; else large batches.
    let (batch, tick) = match args.rate {
        Some(r) => (
            (r as usize).div_ceil(50).max(1),
            Some(Duration::from_secs_f64(
                (r as usize).div_ceil(50).max(1) as f64 / f64::from(r),
            )),
        ),
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
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
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
