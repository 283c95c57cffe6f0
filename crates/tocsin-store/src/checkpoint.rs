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
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &flag))
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// How often a checkpoint that keeps failing is said again.
const WARN_EVERY: Duration = Duration::from_secs(600);

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar)) {
    let (lock, wake) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut warned: Option<std::time::Instant> = None;
    loop {
        stopped = wake
            .wait_timeout(stopped, INTERVAL)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stopped {
            return;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {
                if warned.take().is_some() {
                    tracing::info!("WAL checkpoints succeed again");
                }
            }
            // The writer's own checkpoint fails alike (SQLite ignores its
            // failure): the log grows until the disk is full, commits and
            // readiness unaffected meanwhile. Said on the first failure
            // and every WARN_EVERY while it lasts.
            Err(e) => {
                if warned.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                    tracing::warn!(
                        error = %e,
                        "SQLite WAL checkpoints are failing: the write-ahead log (-wal) grows until \
                         they succeed; can the store file itself be written (permissions, chattr, a \
                         full disk)?"
                    );
                    warned = Some(std::time::Instant::now());
                }
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
