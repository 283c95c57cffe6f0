//! WAL checkpoints from a thread of their own, so that commits do not pay
//! for them.
//!
//! In WAL mode every commit appends to the write-ahead log, and SQLite by
//! default copies the log back into the database (a checkpoint, with an
//! fsync of each file under `synchronous=NORMAL`) inside whichever commit
//! pushes the log past 1,000 pages. The gateway commits one batch while it
//! processes the next, so that commit's wait held the whole pipeline up:
//! draining a backlog, the commit stage took 4.2 s of 5.3 (docs/performance.md,
//! "Seventh session"). Here a second connection checkpoints every
//! [`INTERVAL`] with `PASSIVE`, which never blocks the writer; the writer
//! keeps a checkpoint of its own only past [`WRITER_PAGES`], as a backstop
//! should this thread fall behind or fail. Durability is as before: commits
//! are synced at checkpoints, now at least every [`INTERVAL`] while there
//! is anything to sync.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is checkpointed.
pub(crate) const INTERVAL: Duration = Duration::from_millis(200);

/// The writer's own `wal_autocheckpoint`: about 40 MB of log.
pub(crate) const WRITER_PAGES: u32 = 10_000;

/// The checkpointing thread; stopped and joined when dropped.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// Whether checkpoints are failing now (see [`Watch::judge`]), for
    /// `tocsin_store_checkpoint_failing`: the warning alone, every ten
    /// minutes in the log, fired no alert while the log filled the disk.
    failing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to the database at `path` and starts
    /// checkpointing it; the error says why it could not.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, String> {
        let conn =
            Connection::open(path).map_err(|e| format!("cannot open a second connection: {e}"))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| format!("cannot configure the second connection: {e}"))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let (flag, failing_now) = (stop.clone(), failing.clone());
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &flag, &failing_now))
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        Ok(Self {
            stop,
            failing,
            thread: Some(thread),
        })
    }

    /// Whether checkpoints are failing: from the first failure until one
    /// copies the whole log back.
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

/// How often a checkpoint that keeps failing is said again.
const WARN_EVERY: Duration = Duration::from_secs(600);

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar), failing: &AtomicBool) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut watch = Watch::default();
    loop {
        stopped = wake
            .wait_timeout(stopped, INTERVAL)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stopped {
            return;
        }
        // `(busy, log frames, frames checkpointed)`.
        let outcome = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(|e| e.to_string());
        match watch.judge(outcome, std::time::Instant::now()) {
            Some(Say::Failing(error)) => tracing::warn!(
                %error,
                "SQLite WAL checkpoints are failing: the write-ahead log (-wal) grows until \
                 they succeed; can the store file itself be written (permissions, chattr, a \
                 full disk)?"
            ),
            Some(Say::Recovered) => tracing::info!("WAL checkpoints succeed again"),
            None => {}
        }
        failing.store(watch.failing(), Ordering::Relaxed);
    }
}

/// What a checkpoint's outcome calls for saying.
#[derive(Debug, PartialEq)]
enum Say {
    Failing(String),
    Recovered,
}

/// Whether checkpoints are failing, and when that was last said.
#[derive(Default)]
struct Watch {
    warned: Option<std::time::Instant>,
}

impl Watch {
    /// Whether checkpoints are failing: from a failure until a checkpoint
    /// copies the whole log back.
    fn failing(&self) -> bool {
        self.warned.is_some()
    }

    /// Judges one checkpoint: `Ok((log frames, frames checkpointed))` or
    /// the error. A failure is said at once and every [`WARN_EVERY`] while
    /// it lasts (the writer's own checkpoint fails alike, SQLite ignoring
    /// it: the log grows until the disk is full, commits and readiness
    /// unaffected meanwhile). Only a checkpoint that copied the whole log
    /// back says they succeed again: with the file unwritable, every other
    /// call succeeded having copied nothing, and the warning and "succeed
    /// again" alternated some eight times a second.
    fn judge(
        &mut self,
        outcome: Result<(i64, i64), String>,
        now: std::time::Instant,
    ) -> Option<Say> {
        match outcome {
            Ok((log, done)) if done >= log => self.warned.take().map(|_| Say::Recovered),
            Ok(_) => None,
            Err(e) => {
                let due = self
                    .warned
                    .is_none_or(|w| now.saturating_duration_since(w) >= WARN_EVERY);
                due.then(|| {
                    self.warned = Some(now);
                    Say::Failing(e)
                })
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store file that cannot be written: checkpoints fail, and every
    /// other one "succeeds" having copied nothing. Said once, not at each
    /// turn, until one copies the whole log back.
    #[test]
    fn a_failing_checkpoint_is_said_once_until_the_whole_log_is_copied() {
        let mut w = Watch::default();
        let t0 = std::time::Instant::now();
        let fail = || Err("disk I/O error".to_string());
        assert_eq!(
            w.judge(fail(), t0),
            Some(Say::Failing("disk I/O error".into()))
        );
        for i in 1..50u64 {
            let at = t0 + Duration::from_millis(200 * i);
            let outcome = if i % 2 == 0 { fail() } else { Ok((12_000, 0)) };
            assert_eq!(w.judge(outcome, at), None, "turn {i}");
            assert!(w.failing(), "turn {i}");
        }
        // Said again once WARN_EVERY has passed.
        assert!(matches!(
            w.judge(fail(), t0 + WARN_EVERY),
            Some(Say::Failing(_))
        ));
        // A checkpoint that copies only part of the log is no recovery; one
        // that copies it all is.
        assert_eq!(w.judge(Ok((12_000, 500)), t0 + WARN_EVERY), None);
        assert!(w.failing());
        assert_eq!(
            w.judge(Ok((12_000, 12_000)), t0 + WARN_EVERY),
            Some(Say::Recovered)
        );
        assert!(!w.failing());
        assert_eq!(w.judge(Ok((0, 0)), t0 + WARN_EVERY), None);
        // Partial copies while all is well say nothing either.
        assert_eq!(w.judge(Ok((9_000, 100)), t0 + WARN_EVERY), None);
    }
}
