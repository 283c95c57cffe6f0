//! The SQLite store's file on disk: created private to its owner, known by
//! its inode so that a file deleted or replaced under an open store is
//! noticed, and checked at open for the signs of a store that went missing.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Mode of a store file tocsin creates (the WAL and shared-memory files
/// take the database file's): it holds NHS numbers, so not world-readable
/// whatever the umask.
const FILE_MODE: u32 = 0o640;

/// Mode of a directory tocsin creates for its store.
const DIR_MODE: u32 = 0o750;

/// Which file a path named when the store opened it: a path that later
/// names another (a file moved or copied over by `mv`) or none (deleted)
/// means the store writes where no one will read it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file `path` names now (symbolic links followed).
    pub(crate) fn of(path: &Path) -> std::io::Result<Self> {
        let m = std::fs::metadata(path)?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Fails when `path` no longer names this file.
    pub(crate) fn check(self, path: &Path) -> Result<(), StoreError> {
        match Self::of(path) {
            Ok(now) if now == self => Ok(()),
            Ok(_) => Err(StoreError::FileGone {
                path: path.display().to_string(),
                how: "replaced by another file",
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::FileGone {
                path: path.display().to_string(),
                how: "deleted",
            }),
            // Unreadable for a moment (permissions being changed): the
            // store's own operations say what is wrong.
            Err(_) => Ok(()),
        }
    }
}

/// Creates `path`'s missing parent directories (mode 0750).
pub(crate) fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(parent)
            .map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            }),
        _ => Ok(()),
    }
}

/// Creates the store file when it does not exist yet (mode 0640, before
/// SQLite does, which would take the umask's 0644), refusing one that
/// is missing or empty while its write-ahead log holds data: the store was
/// deleted or moved, and opening would start an empty one in its place,
/// every open expectation forgotten without a word.
pub(crate) fn prepare(path: &Path) -> Result<(), StoreError> {
    let size = match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        // SQLite's open says what is wrong.
        Err(_) => return Ok(()),
    };
    if size.unwrap_or(0) == 0 {
        let wal = companion(path, "-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(StoreError::Orphaned {
                path: path.display().to_string(),
                wal: wal.display().to_string(),
            });
        }
    }
    if size.is_none() {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
        {
            Ok(_) => {}
            // Another process created it meanwhile: theirs stands.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StoreError::Build {
                    op: "create",
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// `path` with `suffix` appended (`-wal`, `.lock`).
pub(crate) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The writer's claim on a store: an exclusive `flock` on `PATH.lock`
/// beside the file the store's path leads to (symbolic links followed, so
/// a second writer naming the store through a linked directory meets it;
/// a file with hard links is refused, as no lock beside one name is met
/// through another).
/// A file of its own: a second descriptor on the database itself would
/// drop SQLite's `fcntl` locks when closed.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: std::fs::File,
    path: PathBuf,
    id: FileId,
}

impl WriterLock {
    /// Claims the store at `store`; [`StoreError::InUse`] when another
    /// process holds it, [`StoreError::HardLinked`] when the file has other
    /// names, behind which a second writer would find no lock.
    pub(crate) fn take(store: &Path) -> Result<Self, StoreError> {
        let real = std::fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf());
        if let Ok(m) = std::fs::metadata(&real)
            && m.nlink() > 1
        {
            return Err(StoreError::HardLinked {
                path: real.display().to_string(),
                links: m.nlink(),
            });
        }
        let path = companion(&real, ".lock");
        let fail = |op, source| StoreError::Build {
            op,
            path: store.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail("open the writer lock of", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse {
                    store: store.display().to_string(),
                    how: format!("{} is locked", path.display()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fail("lock the writer lock of", e)),
        }
        let id = FileId::of(&path).map_err(|e| fail("read the writer lock of", e))?;
        Ok(Self {
            _file: file,
            path,
            id,
        })
    }

    /// Fails when the lock file was deleted or replaced (an operator
    /// tidying up) and another writer has since claimed the store: this
    /// one must stop writing. When no other has, the claim is taken again
    /// on the new file, with a warning.
    pub(crate) fn check(&mut self, store: &Path) -> Result<(), StoreError> {
        if FileId::of(&self.path).is_ok_and(|now| now == self.id) {
            return Ok(());
        }
        let again = Self::take(store)?;
        tracing::warn!(
            lock = %self.path.display(),
            "the store's writer lock file was deleted or replaced while held: claimed again \
             (never delete it while tocsin runs: a second writer could start)"
        );
        *self = again;
        Ok(())
    }
}
