//! A new SQLite store built in one go, aside from its final path.
//!
//! A gateway's store journals every commit (WAL), so that a crash loses
//! nothing the broker was told is done. A store that `tocsin replay --store`
//! builds from archived files needs none of that while it is built: its
//! input is still on disk, and a half-built store is of no use (a gateway
//! started on one would carry on from somewhere in the middle of the
//! archive). So a store whose file does not exist yet is built in a file
//! beside it, `PATH.partial`, with no journal and no syncs, and only when
//! complete is it synced and renamed to `PATH` ([`Building::finish`]). A
//! crash, an error or a kill leaves `PATH` untouched; a stale
//! `PATH.partial` is replaced by the next build. Two runs never build the
//! same store at once: the partial file is locked while it is built, and a
//! second run is refused instead of deleting the first one's file under it.
//! Nor does a finished build overwrite a file that appeared at `PATH`
//! while it ran (a gateway started on that path, say). Each page is written once
//! instead of twice (the log, then the checkpoint): a month's replay with a
//! store took 5.0 to 5.3 s instead of 6.3 to 6.5 with the WAL
//! (docs/performance.md, "Fourteenth session").

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// A store file being built aside: where it is written, and where it goes
/// when complete.
#[derive(Debug)]
pub(crate) struct Building {
    partial: PathBuf,
    path: PathBuf,
    /// The partial file, held open with an exclusive lock (`flock`) until
    /// the build ends: a second run building the same store is refused
    /// ([`StoreError::BuildInProgress`]) instead of deleting this one's file
    /// under it. SQLite's own locks are of another kind (`fcntl`) and do not
    /// meet it.
    file: File,
    /// Set once [`Building::finish`] starts: from then on the partial file
    /// is either renamed into place or kept for the user (a failed sync or
    /// rename, [`StoreError::BuildTargetTaken`]), never removed on drop.
    finishing: bool,
}

impl Building {
    /// Prepares to build the store of `path` at `path` + `.partial`,
    /// emptying the stale partial file of an earlier, interrupted build;
    /// refuses while another run builds the same store.
    pub(crate) fn new(path: &Path) -> Result<Self, StoreError> {
        let mut name = OsString::from(path.as_os_str());
        name.push(".partial");
        let partial = PathBuf::from(name);
        // Not truncated before the lock is held: the file may be another
        // run's build in progress.
        // Mode 0640 whatever the umask (SQLite's journal files take it):
        // the store names patients.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&partial)
            .map_err(|e| build_error("create", &partial, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::BuildInProgress {
                    path: path.display().to_string(),
                    partial: partial.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(build_error("lock", &partial, e)),
        }
        file.set_len(0)
            .map_err(|e| build_error("empty the stale", &partial, e))?;
        Ok(Self {
            partial,
            path: path.to_path_buf(),
            file,
            finishing: false,
        })
    }

    /// Where the store is written while it is built.
    pub(crate) fn partial(&self) -> &Path {
        &self.partial
    }

    /// Syncs the complete store (its connection closed) and renames it into
    /// place, unless a file appeared under its name meanwhile
    /// ([`StoreError::BuildTargetTaken`]: that file is left alone and the
    /// built store stays at its partial name), then syncs the directory so
    /// that the rename survives a power failure too.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.finishing = true;
        self.file
            .sync_all()
            .map_err(|e| build_error("sync", &self.partial, e))?;
        match rename_no_replace(&self.partial, &self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::BuildTargetTaken {
                    path: self.path.display().to_string(),
                    partial: self.partial.display().to_string(),
                });
            }
            Err(e) => return Err(build_error("rename into place", &self.partial, e)),
        }
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| build_error("sync the directory of", &self.path, e))?;
        }
        Ok(())
    }
}

/// A build dropped before [`Building::finish`] (an error, a failed open or
/// migration, a store dropped unclosed) did not finish: its partial file is
/// removed, while the lock is still held, so no other run is building it.
/// The owner closes its SQLite connection first (field order in
/// `SqliteStore`).
impl Drop for Building {
    fn drop(&mut self) {
        if self.finishing {
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.partial) {
            tracing::warn!(path = %self.partial.display(), error = %e, "cannot remove an unfinished store");
        }
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists:
/// atomically where the system can (Linux `renameat2` with
/// `RENAME_NOREPLACE`), else by looking first (a file system without that
/// flag, another system), which leaves only a moment for a race.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system or kernel has no such flag: look first.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if to.try_exists()? {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, to)
}

fn build_error(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Build {
        op,
        path: path.display().to_string(),
        source,
    }
}
