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
//! `PATH.partial` is replaced by the next build. Each page is written once
//! instead of twice (the log, then the checkpoint): a month's replay with a
//! store took 5.0 to 5.3 s instead of 6.3 to 6.5 with the WAL
//! (docs/performance.md, "Fourteenth session").

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// A store file being built aside: where it is written, and where it goes
/// when complete.
#[derive(Debug)]
pub(crate) struct Building {
    partial: PathBuf,
    path: PathBuf,
}

impl Building {
    /// Prepares to build the store of `path` at `path` + `.partial`,
    /// removing a stale partial file of an earlier, interrupted build.
    pub(crate) fn new(path: &Path) -> Result<Self, StoreError> {
        let mut name = OsString::from(path.as_os_str());
        name.push(".partial");
        let partial = PathBuf::from(name);
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(build_error("remove the stale", &partial, e));
            }
            _ => {}
        }
        Ok(Self {
            partial,
            path: path.to_path_buf(),
        })
    }

    /// Where the store is written while it is built.
    pub(crate) fn partial(&self) -> &Path {
        &self.partial
    }

    /// Syncs the complete store (its connection closed) and renames it into
    /// place, then syncs the directory so that the rename survives a power
    /// failure too.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        File::open(&self.partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| build_error("sync", &self.partial, e))?;
        std::fs::rename(&self.partial, &self.path)
            .map_err(|e| build_error("rename into place", &self.partial, e))?;
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

    /// Removes the partial file of a build that did not finish.
    pub(crate) fn abandon(&self) {
        if let Err(e) = std::fs::remove_file(&self.partial) {
            tracing::warn!(path = %self.partial.display(), error = %e, "cannot remove an unfinished store");
        }
    }
}

fn build_error(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Build {
        op,
        path: path.display().to_string(),
        source,
    }
}
