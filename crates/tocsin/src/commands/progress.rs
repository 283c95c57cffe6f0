//! Progress lines of `tocsin replay` on stderr.
//!
//! A trust auditing a year of archive waits minutes for the replay, longer
//! on a busy machine or with several years; without a sign of life it
//! cannot tell a slow run from a stuck one. While the replay reads, a line
//! every few seconds says how far it has got: files, events, rejected
//! inputs, the tracker's clock and the rate. They name no patient and no
//! message content. By default they appear only when stderr is a terminal,
//! so that a script reading stderr for rejected inputs sees only those.
//! Lines come between files (the readers hand the tracker a file at a
//! time), and while one file keeps the tracker waiting a line names it, so
//! a file that reads slowly (or not at all) is seen, not taken for a hang.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// When `tocsin replay` prints progress lines (`--progress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always, every few seconds and once when the input is read.
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    /// Whether this run prints progress.
    fn on(self) -> bool {
        match self {
            Self::Auto => std::io::stderr().is_terminal(),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// How often a progress line is printed while the input is read.
pub const EVERY: Duration = Duration::from_secs(5);

/// Counts what the replay has read and prints it now and then.
#[derive(Debug)]
pub struct Progress {
    on: bool,
    files: usize,
    started: Instant,
    last: Instant,
    files_read: usize,
    events: u64,
}

impl Progress {
    /// Progress of a replay of `files` files.
    pub fn new(mode: ProgressMode, files: usize) -> Self {
        let now = Instant::now();
        Self {
            on: mode.on(),
            files,
            started: now,
            last: now,
            files_read: 0,
            events: 0,
        }
    }

    /// Counts an event applied to the tracker.
    pub fn event(&mut self) {
        self.events += 1;
    }

    /// Counts a file read to its end; prints a line if one is due, with
    /// the tracker's clock and the inputs rejected so far. Looks at the
    /// time once a file, not once an event.
    pub fn file_done(&mut self, clock: Option<DateTime<Utc>>, rejected: usize) {
        self.files_read += 1;
        if self.on && self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            eprintln!("{}", self.line(clock, rejected));
        }
    }

    /// The tracker has waited [`EVERY`] more for `file`'s next piece: a
    /// line says so, naming the file and how long it has been read.
    pub fn waiting(
        &mut self,
        file: &std::path::Path,
        since: Instant,
        clock: Option<DateTime<Utc>>,
        rejected: usize,
    ) {
        if self.on {
            self.last = Instant::now();
            crate::inputs::say(&format!(
                "{}; reading {} for {} s",
                self.line(clock, rejected),
                file.display(),
                since.elapsed().as_secs()
            ));
        }
    }

    /// Prints the last line, once every file is read.
    pub fn finish(&self, clock: Option<DateTime<Utc>>, rejected: usize) {
        if self.on {
            eprintln!("{}", self.line(clock, rejected));
        }
    }

    fn line(&self, clock: Option<DateTime<Utc>>, rejected: usize) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            (self.events as f64 / seconds).round()
        } else {
            0.0
        };
        format!(
            "replay: read {} of {} file(s), {} event(s), {} rejected input(s), clock at {}, {rate} event(s) a second",
            self.files_read,
            self.files,
            self.events,
            rejected,
            clock.map_or_else(|| "none yet".to_string(), |c| c.to_rfc3339()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_counts_files_events_and_rejected_inputs() {
        let mut p = Progress::new(ProgressMode::Never, 3);
        p.event();
        p.event();
        p.file_done(None, 1);
        let line = p.line("2025-01-06T10:00:00Z".parse().ok(), 1);
        assert!(
            line.starts_with(
                "replay: read 1 of 3 file(s), 2 event(s), 1 rejected input(s), clock at 2025-01-06T10:00:00+00:00, "
            ),
            "{line}"
        );
        assert!(p.line(None, 0).contains("clock at none yet"));
    }

    #[test]
    fn modes_say_whether_lines_are_printed() {
        assert!(ProgressMode::Always.on());
        assert!(!ProgressMode::Never.on());
    }
}
