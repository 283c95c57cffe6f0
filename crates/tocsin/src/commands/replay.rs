//! `tocsin replay`: judge archived traffic as the live gateway would.
//!
//! Files are read in the order given (directories recursively, in file-name
//! order), normalised exactly as `tocsin normalise` does, and applied to the
//! same tracker core the gateway runs, with the clock following the events'
//! own times. The clock is then advanced to `--until`. Every alert is written
//! as a JSON line to `--alerts`; a compliance report follows.
//!
//! The work runs as a pipeline of threads joined by bounded channels, so
//! that normalising, tracking and storing overlap on a multi-core machine
//! while the tracker still sees every event in input order:
//!
//! - readers (one per core, at most [`MAX_READERS`]): file `i` is read and
//!   normalised by reader `i mod n`;
//! - the calling thread takes the readers' output file by file in input
//!   order, reports rejected inputs and applies each event to the tracker
//!   (and prints progress, `--progress`, see `progress.rs`);
//! - a writer writes the alerts and keeps what the report reads: with
//!   `--store`, everything a gateway needs to carry on, batched into one
//!   transaction per [`COMMIT_EVERY`] events that a committing thread of
//!   its own writes while the next batch is built, and the report read
//!   back from the store (an existing store takes every change as it
//!   happens; a new SQLite file is built aside from final states and
//!   renamed into place at the end, see `tocsin_store::open_for_build`);
//!   without, only each expectation's latest report facts, in memory
//!   (settled ones as they settle and change, the still unsettled ones at
//!   the end).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};

use chrono::{DateTime, Utc};
use tocsin_event::InterfaceEvent;
use tocsin_ingest::{ContentHint, IngestConfig, Position, ingest_units};
use tocsin_store::{Batch, BuildMode, HeldState, Store};
use tocsin_tracker::compliance::{LatestFacts, ReportBuilder, ReportFacts};
use tocsin_tracker::{Effect, Expectation, Tracker, compliance};

use crate::cli::ReplayArgs;
use crate::commands::progress::Progress;
use crate::config::Config;
use crate::inputs;

/// The encounter ends the report covers: [`compliance::whole_range`], as
/// the API's report. A run without a store keeps to the same range, so that
/// it reports as a run with one.
fn report_range() -> Range<DateTime<Utc>> {
    compliance::whole_range()
}

/// How many events' effects go into one store transaction. Larger
/// transactions write each B-tree page they touch once for more rows, and
/// cancel more writes within themselves (a duplicate key put and expired in
/// the same batch): at 100,000 a month's replay with a store took 5.0 to
/// 5.3 s against 5.8 to 6.1 at 20,000 (docs/performance.md, "Fourteenth
/// session"), for some 90 MB more memory while a batch is built.
const COMMIT_EVERY: usize = 100_000;

/// Most state records a store built aside holds back ([`HeldState`], some
/// 170 bytes each: about 85 MB). Enough for the 30-day duplicate horizon of
/// a large trust (430,000 keys); past it, as with a million open
/// expectations and their keys, the records are written as they change.
const HELD_STATE_LIMIT: usize = 500_000;

/// How many unsettled expectations handed over at the end go into one
/// transaction of a store built aside (10 MB of expectations).
const UNSETTLED_COMMIT_EVERY: usize = 10_000;

/// How many events' effects the tracker hands the writer at a time.
const EFFECTS_CHUNK: usize = 1_000;

/// Most reader threads (normalising is the costliest stage; more threads
/// than cores only add switching).
const MAX_READERS: usize = 4;

/// Files each reader may hold normalised ahead of the tracker. Enough to
/// keep every reader busy while the tracker takes files in turn; more only
/// holds events in memory (a packed 5-minute file of busy ADT traffic is
/// some 800 events, about 1 MB as values: at 32 files a reader the
/// look-ahead was 67 MB of a 1M-open replay's peak).
const READ_AHEAD: usize = 8;

/// Files each reader has the kernel fetch ahead of the one it reads
/// ([`inputs::read_ahead`]): enough to cover a disk's latency while a file
/// is normalised, few enough to stay in the page cache until read.
const FETCH_AHEAD: usize = 4;

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

/// Rejected units of one file listed one by one (on stderr and in the
/// report); past them a file's are counted by reason and listed once, as
/// one entry with reason [`MORE_REJECTED`]. Each listed one is kept for the
/// report: a 29 KB gzip of 4 million junk messages took 2 GB and wrote a
/// report of 433 MB, and a larger one would end the run out of memory
/// with no report at all.
const LISTED_PER_FILE: usize = 1_000;

/// The reason of the entry that stands for a file's rejected units past
/// [`LISTED_PER_FILE`].
const MORE_REJECTED: &str = "more_rejected";

/// The rejected inputs of a run, as listed, and how many there were.
#[derive(Default)]
struct Rejections {
    /// What the report lists, each said on stderr when it came.
    listed: Vec<Rejected>,
    /// Every rejected unit, those past a file's listing included.
    total: usize,
    /// The current file's listed units.
    in_file: usize,
    /// The current file's units past its listing, by reason.
    unlisted: BTreeMap<String, usize>,
}

impl Rejections {
    /// A rejected unit of the file being read. What could not be read is
    /// listed always: it makes the run's exit status 1.
    fn add(&mut self, r: Rejected) {
        self.total += 1;
        if self.in_file < LISTED_PER_FILE || r.reason == UNREADABLE {
            self.in_file += 1;
            self.show(r);
        } else {
            *self.unlisted.entry(r.reason).or_default() += 1;
        }
    }

    /// A rejected input listed whatever came before (a directory that
    /// could not be listed).
    fn add_whole(&mut self, r: Rejected) {
        self.total += 1;
        self.show(r);
    }

    /// Says `r` on stderr and keeps it for the report.
    fn show(&mut self, r: Rejected) {
        report_rejected(&r);
        self.listed.push(r);
    }

    /// The end of `file`: its units past the listing, if any, as one entry.
    fn end_file(&mut self, file: &Path) {
        self.in_file = 0;
        if self.unlisted.is_empty() {
            return;
        }
        let unlisted = std::mem::take(&mut self.unlisted);
        let more: usize = unlisted.values().sum();
        let reasons: Vec<String> = unlisted.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        let r = Rejected {
            file: file.display().to_string(),
            position: format!("rest of file: {more} more"),
            reason: MORE_REJECTED.into(),
            message: format!(
                "{more} more rejected unit(s) after the first {LISTED_PER_FILE}, not listed one \
                 by one ({}): run `tocsin normalise` on this file to see each",
                reasons.join(", ")
            ),
            location: None,
        };
        self.show(r);
    }
}

/// One unit of a normalised file, in file order.
enum Unit {
    Events(Vec<InterfaceEvent>),
    Rejected(Rejected),
}

/// Where the writer keeps what the report reads.
enum Sink {
    /// A store named with `--store`: everything a gateway would keep, so
    /// that a gateway can carry on from it; the report is read back from it.
    /// Written in place, every change as it happens; built aside, the
    /// final state only (see [`write_to_store`]).
    Store(Box<dyn Store>, BuildMode),
    /// No store named: only each expectation's latest report facts, in
    /// memory. The tracker builds neither the state records (a duplicate key
    /// for every message, transmissions, the clock: [`Tracker::set_state_records`])
    /// nor an unsettled expectation's changes (open, overdue: most would be
    /// replaced when the document comes, [`Tracker::set_unsettled_changes`]);
    /// it holds every unsettled expectation and hands them over once at the
    /// end. Alerts are in `--alerts` already.
    Report(Box<FinalReport>),
}

/// The report of a run without a store, built as the writer goes.
///
/// A settled expectation may change again (acknowledged, delivery failed,
/// cancelled, re-keyed), so its facts are kept by id until the end, each
/// replacing the last ([`LatestFacts`]); an unsettled one handed over at the
/// end changes no more and is counted at once, so that a million open
/// expectations are not held twice.
struct FinalReport {
    latest: LatestFacts,
    report: ReportBuilder,
    range: Range<DateTime<Utc>>,
}

impl FinalReport {
    fn new(report: ReportBuilder, group_by: &[compliance::GroupBy]) -> Self {
        Self {
            latest: LatestFacts::new(group_by),
            report,
            range: report_range(),
        }
    }

    /// A settled expectation's latest state.
    fn changed(&mut self, e: &Expectation) {
        self.latest.keep(e);
    }

    /// An expectation's last state.
    fn last(&mut self, e: &Expectation) {
        self.latest.forget(&e.id);
        add_in_range(&mut self.report, &self.range, &ReportFacts::of(e));
    }

    fn finish(self) -> Vec<compliance::ComplianceRow> {
        let Self {
            latest,
            mut report,
            range,
        } = self;
        latest.visit(&mut |facts| add_in_range(&mut report, &range, facts));
        report.finish()
    }
}

/// Counts an expectation whose encounter ended within the report's range.
fn add_in_range(report: &mut ReportBuilder, range: &Range<DateTime<Utc>>, e: &ReportFacts<'_>) {
    if range.contains(&e.encounter.ended_at) {
        report.add_facts(e);
    }
}

/// What the tracker hands the writer.
enum ToWriter {
    /// Effects of this many events, in order.
    Effects(Vec<Effect>, usize),
    /// Expectations still unsettled after the last input and `--until`
    /// (only when the tracker skipped their changes: without a store, or
    /// into a store built aside).
    Unsettled(Vec<Expectation>),
    /// Everything is in: commit the rest.
    Finish,
}

/// Runs a replay.
pub fn run(config: &Config, args: &ReplayArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut expanded = inputs::expand(&args.paths)?;
    // This run's outputs, when they sit among its inputs (an alerts file
    // left in the archive directory by the last run), are not read.
    let outputs: Vec<&Path> = [
        Some(&args.alerts),
        args.events.as_ref(),
        args.report.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(PathBuf::as_path)
    .collect();
    let store_file = args.store.as_deref().and_then(tocsin_store::sqlite_file);
    expanded.exclude_outputs(&outputs, store_file.as_slice());
    expanded.tell("replay");
    // Directories that could not be listed are rejected inputs, as a file
    // that cannot be read is: listed, and the run exits 1.
    let unlisted: Vec<Rejected> = expanded
        .unreadable
        .iter()
        .map(|(dir, e)| Rejected {
            file: dir.display().to_string(),
            position: Position::Whole.to_string(),
            reason: UNREADABLE.to_string(),
            message: format!("cannot read the directory: {e}"),
            location: None,
        })
        .collect();
    // What was passed over goes in the report too: an audit read from it
    // alone would take every file as read.
    let skipped: Vec<Skipped> = expanded
        .skipped
        .iter()
        .map(|(path, why)| Skipped {
            path: path.display().to_string(),
            reason: why.code(),
        })
        .collect();
    let files = expanded.files;
    let until: DateTime<Utc> = args.until.resolve(&config.policy.timezone())?;
    let group_by = &args.group_by.0;
    let new_report = || compliance::ReportBuilder::new(group_by, config.policy.timezone());
    // A kept store gets everything a gateway would need to carry on from
    // it; without one, only what the report reads is kept.
    let mut sink = match &args.store {
        Some(url) => {
            // The configuration's password is for its own store only.
            let password = if *url == config.store.url {
                config.store.password()?
            } else {
                None
            };
            let (mut store, mode) = tocsin_store::open_for_build(url, password.as_deref())?;
            // A store written in place must have no other writer: a
            // gateway running on it would judge half the traffic each.
            if mode == BuildMode::InPlace {
                store.claim_writer()?;
            }
            Sink::Store(store, mode)
        }
        None => Sink::Report(Box::new(FinalReport::new(new_report(), group_by))),
    };
    let kept_store = matches!(sink, Sink::Store(..));
    // A store written in place must hold every open expectation after each
    // commit; one built aside, only at the end.
    let unsettled_as_they_change = matches!(sink, Sink::Store(_, BuildMode::InPlace));
    // A store that exists already (an earlier month's replay) is carried on
    // from, as a gateway would: its open expectations, duplicate keys,
    // waiting documents and clock. A new tracker would leave its open
    // expectations unsettled by this run's documents, and overwrite its
    // settled ones with a repeated discharge.
    let mut tracker = match &mut sink {
        Sink::Store(store, BuildMode::InPlace) => {
            let (tracker, skipped) = crate::restore::from_store(
                store.as_mut(),
                config.policy.clone(),
                config.tracker.clone(),
            )??;
            // The code and the record's name only: a record's parse error
            // quotes its values, which may be a patient's.
            for error in &skipped {
                eprintln!(
                    "the store's record {} could not be used ({}) and is left out",
                    error.record().unwrap_or_else(|| "-".into()),
                    error.code()
                );
            }
            // Said, because inputs the store has already seen change
            // nothing: replaying the same files again writes no alerts.
            if let Some(clock) = tracker.clock() {
                eprintln!(
                    "carrying on from the store: {} open expectation(s), clock at {}; \
                     inputs it has already seen are duplicates and change nothing",
                    tracker.open_count(),
                    clock.to_rfc3339()
                );
            }
            for (rule, open) in tracker.rules_kept_from_store() {
                let kept = crate::internal_events::RuleKeptFromStore { rule: &rule, open };
                eprintln!("{}", kept.message());
            }
            // Its expectations were judged as at its clock, which cannot go
            // back: a report as at an earlier --until would have been the
            // later one's, said to be as at --until.
            if let Some(clock) = tracker.clock()
                && clock > until
            {
                return Err(format!(
                    "--until {} is before the clock of the store carried on from ({}): \
                     what it holds was judged as at that time and cannot be judged as at \
                     an earlier one; give --until at or after it, or replay without \
                     --store (or into a new store) to judge as at {}",
                    until.to_rfc3339(),
                    clock.to_rfc3339(),
                    until.to_rfc3339()
                )
                .into());
            }
            tracker
        }
        _ => Tracker::new(config.policy.clone(), config.tracker.clone()),
    };
    // Created only once the store is open, claimed and carried on from: a
    // refused run (a store in use, a URL that cannot work, an --until
    // before its clock) leaves the last run's files as they were.
    let alerts_out = BufWriter::new(create(&args.alerts)?);
    let mut events_out = match &args.events {
        Some(p) => Some(BufWriter::new(create(p)?)),
        None => None,
    };
    // Judged as at --until: what is stamped later is not applied, and
    // nothing may move the clock past it.
    tracker.set_until(Some(until));
    tracker.set_ceiling(Some(until));
    // Without a store, the state records would be dropped unread: not built.
    tracker.set_state_records(kept_store);
    // ...nor, unless a store written in place needs them, the changes of
    // unsettled expectations: they are handed over once at the end
    // (`send_unsettled`).
    tracker.set_unsettled_changes(unsettled_as_they_change);
    let mut rejected = Rejections::default();
    for r in unlisted {
        rejected.add_whole(r);
    }
    let readers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_READERS)
        .min(files.len().max(1));

    // Each reader's share of memory: what it leaves in the page cache and
    // the largest file it reads (`inputs::read_ahead`).
    let keep_cached = inputs::cache_share(readers);
    let (sink, alert_count) = std::thread::scope(|s| -> Result<_, String> {
        let mut from_readers = Vec::new();
        for r in 0..readers {
            let (tx, rx) = sync_channel(READ_AHEAD);
            let mine: Vec<&Path> = files
                .iter()
                .skip(r)
                .step_by(readers)
                .map(PathBuf::as_path)
                .collect();
            let ingest_cfg = &config.ingest;
            std::thread::Builder::new()
                .name(format!("replay-read-{r}"))
                .spawn_scoped(s, move || read_files(mine, keep_cached, ingest_cfg, tx))
                .map_err(|e| format!("cannot start a replay reader: {e}"))?;
            from_readers.push(rx);
        }
        let (to_writer, writer_rx) = sync_channel(4);
        let writer = std::thread::Builder::new()
            .name("replay-write".into())
            .spawn_scoped(s, move || write_effects(sink, alerts_out, writer_rx))
            .map_err(|e| format!("cannot start the replay writer: {e}"))?;
        let tracked = track(
            &mut tracker,
            &files,
            &from_readers,
            &to_writer,
            &mut Beside {
                events_out: &mut events_out,
                rejected: &mut rejected,
                progress: Progress::new(args.progress, files.len()),
            },
            until,
        )
        .and_then(|()| {
            if !unsettled_as_they_change {
                send_unsettled(&tracker, &to_writer)
            } else {
                Ok(())
            }
        });
        if tracked.is_ok() {
            // A send fails only when the writer has stopped on an error,
            // which its join reports.
            let _ = to_writer.send(ToWriter::Finish);
        }
        drop(to_writer);
        // Unblock readers still sending after an error.
        drop(from_readers);
        let written = writer
            .join()
            .map_err(|_| "replay writer thread panicked".to_string())?;
        match tracked {
            // The tracker stopped because the writer had: the writer's
            // error says why (`--alerts`: no space left on device), where
            // "replay writer stopped" said nothing.
            Err(e) if e == writer_gone() && written.is_err() => written,
            Err(e) => Err(e),
            Ok(()) => written,
        }
    })?;
    if let Some(out) = events_out.as_mut() {
        out.flush()?;
    }

    // The tracker is done with; the report streams a kept store's facts
    // through a builder rather than loading them: as values they take about
    // 900 bytes each, and with a million open expectations that vector
    // beside the tracker was two thirds of the replay's peak memory.
    let notices = tracker.counters().named();
    let stale = tracker.counters().stale_events;
    drop(tracker);
    let rows = match sink {
        Sink::Store(mut store, _) => {
            let mut report = new_report();
            let range = report_range();
            store.visit_report_facts(range.start, range.end, &mut |e| {
                report.add_facts(e);
                Ok(())
            })?;
            // A store built aside appears under its name only now.
            store.close()?;
            report.finish()
        }
        Sink::Report(report) => report.finish(),
    };
    let rendered = render_report(
        &rows,
        group_by,
        (&rejected.listed, rejected.total),
        &skipped,
        &notices,
        args.format,
    )?;
    match &args.report {
        Some(p) => create(p)?
            .write_all(rendered.as_bytes())
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => print!("{rendered}"),
    }
    eprintln!(
        "replay: {} file(s), {} alert(s), {} rejected input(s), clock at {}",
        files.len(),
        alert_count,
        rejected.total,
        until.to_rfc3339()
    );
    let noticed: Vec<String> = notices
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    if !noticed.is_empty() {
        eprintln!("replay: tracker notices: {}", noticed.join(" "));
    }
    // Said aloud: a replay given its archive by site or by format, not in
    // time order, loses the later paths' older traffic this way, and the
    // report counts their discharges missing.
    if stale > 0 {
        eprintln!(
            "replay: warning: {stale} input(s) were more than [tracker] duplicate_horizon ({}) \
             older than the clock when read and were not applied (stale_event): give the paths \
             in time order (each path's files are read in name order), not by site or format",
            config.tracker.duplicate_horizon
        );
    }
    let unreadable = rejected
        .listed
        .iter()
        .filter(|r| r.reason == UNREADABLE)
        .count();
    if unreadable > 0 {
        eprintln!(
            "replay: {unreadable} file(s) could not be read (listed above and in the report); \
             the rest was judged and written"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The position of a damaged file's tail that could not be read, after
/// the messages read before it.
const REST_OF_FILE: &str = "rest of file";

/// The reason code of a file that could not be read (`replay` lists it
/// with the rejected inputs and exits 1).
pub const UNREADABLE: &str = "unreadable";

/// A reader: normalises its share of the files in order and sends each
/// file's units as one message, until the tracker stops listening. A file
/// it cannot read (removed since the walk, no permission, a link to
/// nothing) is one rejected unit with reason [`UNREADABLE`]: stopping the
/// run hours in, without a report, lost what had been judged so far.
/// One reader's work: its `files`, each read whole when it is at most
/// `share` bytes (the reader's share of memory, [`inputs::cache_share`]),
/// which is also what it leaves in the page cache.
fn read_files(files: Vec<&Path>, share: u64, cfg: &IngestConfig, tx: SyncSender<Piece>) {
    let unreadable = |file: &Path, position: String, e: io::Error| {
        Unit::Rejected(Rejected {
            file: file.display().to_string(),
            position,
            reason: UNREADABLE.to_string(),
            message: format!("cannot read: {e}"),
            location: None,
        })
    };
    for (file, read) in inputs::read_ahead(files, FETCH_AHEAD, share, share) {
        let sent = match read {
            // A damaged archive's leading messages, then the damage.
            Ok(read) => send_file(
                &tx,
                normalise_file(file, &read.bytes, cfg).chain(
                    read.rest_unreadable
                        .map(|e| unreadable(file, REST_OF_FILE.to_string(), e)),
                ),
            ),
            Err(e) => send_file(
                &tx,
                std::iter::once(unreadable(file, Position::Whole.to_string(), e)),
            ),
        };
        if !sent {
            return;
        }
    }
}

/// Sends one file's units in pieces, the last marked: a bulk export of a
/// million resources was held whole, its events taking some 90 times the
/// file's size. Whether the tracking stage still listens.
fn send_file(tx: &SyncSender<Piece>, units: impl Iterator<Item = Unit>) -> bool {
    let mut piece = Vec::new();
    for unit in units {
        piece.push(unit);
        if piece.len() >= PIECE_UNITS {
            let full = Piece {
                units: std::mem::take(&mut piece),
                last: false,
            };
            if tx.send(full).is_err() {
                return false;
            }
        }
    }
    tx.send(Piece {
        units: piece,
        last: true,
    })
    .is_ok()
}

/// What a reader sends the tracking stage: units of one file, in order;
/// `last` on the file's final piece.
struct Piece {
    units: Vec<Unit>,
    last: bool,
}

/// Most units in one [`Piece`].
const PIECE_UNITS: usize = 1024;

fn normalise_file<'a>(
    file: &'a Path,
    bytes: &'a [u8],
    cfg: &'a IngestConfig,
) -> impl Iterator<Item = Unit> + 'a {
    let hint = inputs::format_name(file).and_then(|n| ContentHint::from_file_name(&n));
    ingest_units(bytes, hint, cfg).map(move |unit| match unit.outcome {
        Ok(events) => Unit::Events(events),
        Err(e) => Unit::Rejected(Rejected {
            file: file.display().to_string(),
            position: unit.position.to_string(),
            reason: e.reason_code().to_string(),
            message: super::normalise::describe(&e),
            location: e.location(),
        }),
    })
}

/// What the tracking stage writes beside the effects it sends the writer.
struct Beside<'a> {
    /// `--events`: every event as a JSON line.
    events_out: &'a mut Option<BufWriter<File>>,
    /// The rejected inputs, for stderr and the report.
    rejected: &'a mut Rejections,
    /// Progress lines on stderr (`--progress`).
    progress: Progress,
}

/// The tracking stage: takes the files in input order from the readers,
/// applies every event, hands the effects to the writer in chunks, and
/// finally advances the clock to `until`.
fn track(
    tracker: &mut Tracker,
    files: &[PathBuf],
    from_readers: &[Receiver<Piece>],
    to_writer: &SyncSender<ToWriter>,
    beside: &mut Beside<'_>,
    until: DateTime<Utc>,
) -> Result<(), String> {
    let Beside {
        events_out,
        rejected,
        progress,
    } = beside;
    let mut chunk = Vec::new();
    let mut chunk_events = 0usize;
    for (i, file) in files.iter().enumerate() {
        let reader = &from_readers[i % from_readers.len()];
        let mut last = false;
        let since = std::time::Instant::now();
        while !last {
            let received = loop {
                match reader.recv_timeout(super::progress::EVERY) {
                    Ok(piece) => break Ok(piece),
                    Err(RecvTimeoutError::Timeout) => {
                        progress.waiting(file, since, tracker.clock(), rejected.total);
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        break Err(format!("{}: reader stopped", file.display()));
                    }
                }
            };
            let piece = match received {
                Ok(piece) => piece,
                Err(e) => {
                    // The alerts of the events already applied are still written
                    // (nothing more is committed), as when the run stops early.
                    let _ = to_writer.send(ToWriter::Effects(chunk, chunk_events));
                    return Err(e);
                }
            };
            last = piece.last;
            for unit in piece.units {
                let events = match unit {
                    Unit::Events(events) => events,
                    Unit::Rejected(r) => {
                        rejected.add(r);
                        continue;
                    }
                };
                for event in events {
                    if let Some(out) = events_out.as_mut() {
                        write_line(out, &event).map_err(|e| format!("--events: {e}"))?;
                    }
                    tracker.apply_into(&event, &mut chunk);
                    progress.event();
                    chunk_events += 1;
                    if chunk_events >= EFFECTS_CHUNK {
                        // The next chunk starts at this one's size, so it does
                        // not grow (and copy its effects) by doubling.
                        let next = Vec::with_capacity(chunk.len());
                        let full = std::mem::replace(&mut chunk, next);
                        to_writer
                            .send(ToWriter::Effects(full, chunk_events))
                            .map_err(|_| writer_gone())?;
                        chunk_events = 0;
                    }
                }
            }
        }
        rejected.end_file(file);
        progress.file_done(tracker.clock(), rejected.total);
    }
    progress.finish(tracker.clock(), rejected.total);
    chunk.extend(tracker.advance_to(until));
    to_writer
        .send(ToWriter::Effects(chunk, chunk_events))
        .map_err(|_| writer_gone())
}

/// Hands the writer every expectation the tracker still holds, in chunks.
fn send_unsettled(tracker: &Tracker, to_writer: &SyncSender<ToWriter>) -> Result<(), String> {
    let mut chunk = Vec::with_capacity(EFFECTS_CHUNK);
    for exp in tracker.unsettled() {
        chunk.push(exp);
        if chunk.len() >= EFFECTS_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(EFFECTS_CHUNK));
            to_writer
                .send(ToWriter::Unsettled(full))
                .map_err(|_| writer_gone())?;
        }
    }
    to_writer
        .send(ToWriter::Unsettled(chunk))
        .map_err(|_| writer_gone())
}

/// The error of a send to a writer that has stopped (its join reports why).
fn writer_gone() -> String {
    "replay writer stopped".to_string()
}

/// The writing stage: alerts to their file in order, and what the report
/// reads to `sink`. Returns the sink and the number of alerts written.
fn write_effects(
    sink: Sink,
    alerts_out: BufWriter<File>,
    rx: Receiver<ToWriter>,
) -> Result<(Sink, usize), String> {
    match sink {
        Sink::Store(store, mode) => write_to_store(store, mode, HELD_STATE_LIMIT, alerts_out, rx),
        Sink::Report(report) => write_to_report(*report, alerts_out, rx),
    }
}

/// Into a store: every effect, in transactions of [`COMMIT_EVERY`] events,
/// the rest committed only on [`ToWriter::Finish`] (not when the tracker
/// stopped on an error). The commits run on a thread of their own
/// ([`commit_batches`]), so that this thread builds the next batch while
/// the store writes the last: with the commit inline, the tracker waited on
/// every commit. A store built aside is read by no one before the end, so
/// the state records are held back ([`HeldState`]) and only those still
/// current written, last, with the unsettled expectations; past
/// `held_limit` records, they are written as they change instead.
fn write_to_store(
    store: Box<dyn Store>,
    mode: BuildMode,
    held_limit: usize,
    mut alerts_out: BufWriter<File>,
    rx: Receiver<ToWriter>,
) -> Result<(Sink, usize), String> {
    std::thread::scope(|s| {
        let (to_commit, commits) = sync_channel::<Batch>(1);
        let committer = std::thread::Builder::new()
            .name("replay-commit".into())
            .spawn_scoped(s, move || commit_batches(store, commits))
            .map_err(|e| format!("cannot start the replay committer: {e}"))?;
        let written = (|| {
            let mut batch = Batch::default();
            let mut pending_events = 0usize;
            let mut alert_count = 0usize;
            let mut held = (mode == BuildMode::Aside).then(HeldState::default);
            let committer_gone = |_| "replay committer stopped".to_string();
            while let Ok(msg) = rx.recv() {
                match msg {
                    ToWriter::Effects(effects, events) => {
                        alert_count += write_alerts(&mut alerts_out, &effects)
                            .map_err(|e| format!("--alerts: {e}"))?;
                        for effect in effects {
                            let effect = match held.as_mut() {
                                Some(held) => held.hold(effect),
                                None => Some(effect),
                            };
                            if let Some(effect) = effect {
                                batch.push_effect(effect);
                            }
                        }
                        // Past its bound, what is held goes into the batch
                        // as it stands, and the state records are written
                        // as they change from then on.
                        if held.as_ref().is_some_and(|h| h.len() > held_limit) {
                            release_held(&mut held, &mut batch);
                        }
                        pending_events += events;
                    }
                    // Sent only when the tracker skipped their changes (a
                    // store built aside); committed in transactions of
                    // their own size, below.
                    ToWriter::Unsettled(expectations) => {
                        for exp in expectations {
                            batch.push_expectation(exp);
                        }
                        // Whole expectations, some 900 bytes each: a
                        // million open ones go in batches of their own size.
                        if batch.expectations.len() >= UNSETTLED_COMMIT_EVERY {
                            to_commit
                                .send(std::mem::take(&mut batch))
                                .map_err(committer_gone)?;
                            pending_events = 0;
                        }
                    }
                    ToWriter::Finish => {
                        release_held(&mut held, &mut batch);
                        to_commit.send(batch).map_err(committer_gone)?;
                        alerts_out.flush().map_err(|e| format!("--alerts: {e}"))?;
                        return Ok(alert_count);
                    }
                }
                if pending_events >= COMMIT_EVERY {
                    to_commit
                        .send(std::mem::take(&mut batch))
                        .map_err(committer_gone)?;
                    pending_events = 0;
                }
            }
            Err("replay stopped before the end of its input".to_string())
        })();
        drop(to_commit);
        // The committer's own error explains a "committer stopped".
        let store = committer
            .join()
            .map_err(|_| "replay committer thread panicked".to_string())??;
        Ok((Sink::Store(store, mode), written?))
    })
}

/// Puts every state record held back into `batch` and stops holding: the
/// batch then brings the store to the state the held records stand for (a
/// store built aside starts with none), and later changes go into batches
/// as they come.
fn release_held(held: &mut Option<HeldState>, batch: &mut Batch) {
    for record in held.take().into_iter().flat_map(HeldState::into_records) {
        batch.push_state_put(record);
    }
}

/// The committing stage of a kept store: commits each batch in turn until
/// the writer hangs up, then hands the store back.
fn commit_batches(
    mut store: Box<dyn Store>,
    batches: Receiver<Batch>,
) -> Result<Box<dyn Store>, String> {
    for batch in batches {
        store
            .commit(&batch)
            .map_err(|e| format!("store commit: {e}"))?;
    }
    Ok(store)
}

/// Without a store: only each expectation's latest report facts. The
/// tracker hands over only settled expectations' changes as it goes
/// (`Tracker::set_unsettled_changes`), the unsettled ones at the end.
fn write_to_report(
    mut report: FinalReport,
    mut alerts_out: BufWriter<File>,
    rx: Receiver<ToWriter>,
) -> Result<(Sink, usize), String> {
    let mut alert_count = 0usize;
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWriter::Effects(effects, _) => {
                alert_count += write_alerts(&mut alerts_out, &effects)
                    .map_err(|e| format!("--alerts: {e}"))?;
                for effect in &effects {
                    if let Effect::ExpectationChanged(e) = effect {
                        report.changed(e);
                    }
                }
            }
            ToWriter::Unsettled(expectations) => {
                for exp in &expectations {
                    report.last(exp);
                }
            }
            ToWriter::Finish => {
                alerts_out.flush().map_err(|e| format!("--alerts: {e}"))?;
                return Ok((Sink::Report(Box::new(report)), alert_count));
            }
        }
    }
    Err("replay stopped before the end of its input".into())
}

fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Creates (or empties) an output file; a new one is mode 0640 whatever
/// the umask, since alerts, events and reports name patients.
fn create(p: &Path) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(p)
        .map_err(|e| format!("{}: cannot create: {e}", p.display()))
}

fn report_rejected(r: &Rejected) {
    inputs::say(&format!("{}: {}: {}", r.file, r.position, r.message));
}

fn write_alerts(out: &mut impl Write, effects: &[Effect]) -> std::io::Result<usize> {
    let mut n = 0;
    for effect in effects {
        if let Effect::AlertRaised(alert) = effect {
            write_line(out, alert)?;
            n += 1;
        }
    }
    Ok(n)
}

/// A directory entry the run passed over ([`inputs::Skip`]), as the report
/// lists it.
#[derive(Debug, serde::Serialize)]
struct Skipped {
    path: String,
    /// [`inputs::Skip::code`].
    reason: &'static str,
}

/// The report formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// An aligned text table for people.
    Table,
    /// CSV: the figures; then, each after a blank line with its own header
    /// row, the rejected inputs (`file,position,reason,location`), the
    /// entries passed over (`skipped,reason`) and the notices
    /// (`notice,count`), when there are any. Percentages rounded down to
    /// one decimal.
    Csv,
    /// One JSON object: `{"rows": [...], "rejected": [...], "skipped":
    /// [...], "notices": {...}}`; `pct_on_time` is the percentage (0 to
    /// 100), not rounded.
    Json,
}

/// What the tracker counted instead of acting on
/// ([`tocsin_tracker::Counters::named`]).
type Notices = [(&'static str, u64)];

/// The report in `format`; `rejected` is the listed rejections and how
/// many units were rejected in all (a file's past its listing are one
/// entry).
fn render_report(
    rows: &[compliance::ComplianceRow],
    group_by: &[compliance::GroupBy],
    (rejected, rejected_total): (&[Rejected], usize),
    skipped: &[Skipped],
    notices: &Notices,
    format: ReportFormat,
) -> Result<String, Box<dyn std::error::Error>> {
    let noticed = notices.iter().filter(|(_, n)| *n > 0);
    Ok(match format {
        ReportFormat::Json => {
            let notices: serde_json::Map<String, serde_json::Value> = notices
                .iter()
                .map(|(name, n)| (name.to_string(), (*n).into()))
                .collect();
            let mut s = serde_json::to_string_pretty(&serde_json::json!({
                "rows": rows,
                "rejected": rejected,
                "skipped": skipped,
                "notices": notices,
            }))?;
            s.push('\n');
            s
        }
        ReportFormat::Csv => {
            let mut s = compliance::to_csv(rows, group_by);
            if !rejected.is_empty() {
                s.push_str("\nfile,position,reason,location\n");
                for r in rejected {
                    s.push_str(&format!(
                        "{},{},{},{}\n",
                        compliance::csv_text(&r.file),
                        compliance::csv_text(&r.position),
                        compliance::csv_text(&r.reason),
                        compliance::csv_text(r.location.as_deref().unwrap_or(""))
                    ));
                }
            }
            if !skipped.is_empty() {
                s.push_str("\nskipped,reason\n");
                for k in skipped {
                    let path = compliance::csv_text(&k.path);
                    s.push_str(&format!("{path},{}\n", k.reason));
                }
            }
            let mut noticed = noticed.peekable();
            if noticed.peek().is_some() {
                s.push_str("\nnotice,count\n");
                for (name, n) in noticed {
                    s.push_str(&format!("{name},{n}\n"));
                }
            }
            s
        }
        ReportFormat::Table => {
            let mut s = compliance::to_table(rows, group_by);
            if !rejected.is_empty() {
                // The units rejected, as stderr's closing line counts them,
                // not the entries listed.
                s.push_str(&format!("\nRejected inputs ({rejected_total}):\n"));
                for r in rejected {
                    s.push_str(&format!(
                        "  {}: {}: {}\n",
                        compliance::printable(&r.file),
                        compliance::printable(&r.position),
                        compliance::printable(&r.message)
                    ));
                }
            }
            if !skipped.is_empty() {
                s.push_str(&format!("\nSkipped entries ({}):\n", skipped.len()));
                for k in skipped {
                    let path = compliance::printable(&k.path);
                    s.push_str(&format!("  {path}: {}\n", k.reason));
                }
            }
            let mut noticed = noticed.peekable();
            if noticed.peek().is_some() {
                s.push_str("\nTracker notices (counted, not acted on):\n");
                for (name, n) in noticed {
                    s.push_str(&format!("  {name}: {n}\n"));
                }
            }
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_tracker::{JsonText, StateRange, StateRecord};

    /// Entries passed over follow the rejected inputs in the CSV and
    /// table reports, after their own heading, with a name that would
    /// break a line or a CSV field escaped.
    #[test]
    fn skipped_entries_are_in_every_report_format() {
        let skipped = [Skipped {
            path: "a/x,\n.hl7~".into(),
            reason: "backup",
        }];
        let group_by = &compliance::GroupBy::STANDARD;
        let csv = render_report(&[], group_by, (&[], 0), &skipped, &[], ReportFormat::Csv).unwrap();
        assert!(
            csv.ends_with("\nskipped,reason\n\"a/x,\n.hl7~\",backup\n"),
            "{csv}"
        );
        let table =
            render_report(&[], group_by, (&[], 0), &skipped, &[], ReportFormat::Table).unwrap();
        assert!(
            table.ends_with("\nSkipped entries (1):\n  a/x,\\n.hl7~: backup\n"),
            "{table}"
        );
        let none = render_report(&[], group_by, (&[], 0), &[], &[], ReportFormat::Csv).unwrap();
        assert!(!none.contains("skipped"), "{none}");
    }

    fn put(key: &str) -> Effect {
        Effect::StatePut(StateRecord {
            namespace: "seen".into(),
            key: key.into(),
            value: JsonText::of(key),
        })
    }

    /// Writes `chunks` of effects into a new store built aside, holding back
    /// at most `held_limit` state records, and returns the state keys it
    /// ends with.
    fn build_with(held_limit: usize, chunks: Vec<Vec<Effect>>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.sqlite").display());
        let (store, mode) = tocsin_store::open_for_build(&url, None).unwrap();
        assert_eq!(mode, BuildMode::Aside);
        let alerts = BufWriter::new(File::create(dir.path().join("alerts")).unwrap());
        let (tx, rx) = sync_channel(chunks.len() + 1);
        for effects in chunks {
            let events = effects.len();
            tx.send(ToWriter::Effects(effects, events)).unwrap();
        }
        tx.send(ToWriter::Finish).unwrap();
        let (sink, _) = write_to_store(store, mode, held_limit, alerts, rx).unwrap();
        let Sink::Store(store, _) = sink else {
            panic!("the store comes back")
        };
        store.close().unwrap();
        let mut keys: Vec<String> = tocsin_store::open(&url)
            .unwrap()
            .load_state()
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn held_state_released_past_its_limit_ends_as_if_held_to_the_end() {
        let effects = || {
            vec![
                vec![put("a"), put("b"), put("c")],
                // Past a limit of 2 after the first chunk: released there,
                // written as they come from then on.
                vec![
                    Effect::StateDeleted {
                        namespace: "seen".into(),
                        key: "a".into(),
                    },
                    Effect::StateRangeDeleted(StateRange {
                        namespace: "seen".into(),
                        from: "b".into(),
                        to: "c".into(),
                    }),
                    put("d"),
                    put("e"),
                    Effect::StateDeleted {
                        namespace: "seen".into(),
                        key: "e".into(),
                    },
                ],
            ]
        };
        let held_to_the_end = build_with(usize::MAX, effects());
        assert_eq!(held_to_the_end, ["c", "d"]);
        assert_eq!(build_with(2, effects()), held_to_the_end);
    }
}
