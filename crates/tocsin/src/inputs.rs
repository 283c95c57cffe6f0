//! Walking the paths given on the command line: files as they are,
//! directories recursively in file-name order.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Expands paths into the files to read, in order: each path in the order
/// given; a directory's files recursively, sorted by path. Hidden files
/// (starting with `.`) inside directories are skipped.
pub fn expand(paths: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| with_path(e, p))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| with_path(e, dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()
        .map_err(|e| with_path(e, dir))?;
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads files in order, each whole, while the kernel is already fetching
/// the next `depth` ones (Linux `posix_fadvise(WILLNEED)` on each file as
/// it is opened ahead). A year of archive (some 12 GB) does not stay in the
/// page cache, and a replay reader that waited for each file's first read
/// left its core idle meanwhile (docs/performance.md, "Twelfth session").
/// Yields each path with its bytes or the error opening or reading it.
pub fn read_ahead<'a>(
    files: impl IntoIterator<Item = &'a Path>,
    depth: usize,
) -> impl Iterator<Item = (&'a Path, io::Result<Vec<u8>>)> {
    ReadAhead {
        files: files.into_iter(),
        opened: VecDeque::with_capacity(depth + 1),
        depth,
    }
}

struct ReadAhead<'a, I> {
    files: I,
    /// The next file to read, then up to `depth` more being fetched.
    opened: VecDeque<(&'a Path, io::Result<File>)>,
    depth: usize,
}

impl<'a, I: Iterator<Item = &'a Path>> Iterator for ReadAhead<'a, I> {
    type Item = (&'a Path, io::Result<Vec<u8>>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.opened.len() <= self.depth {
            let Some(path) = self.files.next() else {
                break;
            };
            self.opened.push_back((path, open_ahead(path)));
        }
        let (path, file) = self.opened.pop_front()?;
        let bytes = file.and_then(|mut f| {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map(|_| bytes)
        });
        Some((path, bytes))
    }
}

/// Opens a file and asks the kernel to start reading it in.
fn open_ahead(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    // Advice only: where it is not supported, the file is read when asked.
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
    Ok(file)
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_yields_every_file_in_order_and_an_unreadable_one_as_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..7).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, p) in paths.iter().enumerate() {
            // The fourth is never written: opening it fails.
            if i != 3 {
                std::fs::write(p, format!("file {i} ").repeat(i * 1000)).unwrap();
            }
        }
        for depth in [0, 1, 4, 20] {
            let read: Vec<_> = read_ahead(paths.iter().map(PathBuf::as_path), depth).collect();
            assert_eq!(read.len(), paths.len(), "depth {depth}");
            for (i, (path, bytes)) in read.into_iter().enumerate() {
                assert_eq!(path, paths[i], "depth {depth}: in order");
                match bytes {
                    Ok(b) => assert_eq!(b, format!("file {i} ").repeat(i * 1000).into_bytes()),
                    Err(e) => {
                        assert_eq!(i, 3, "depth {depth}: only the missing file fails");
                        assert_eq!(e.kind(), io::ErrorKind::NotFound);
                    }
                }
            }
        }
        assert_eq!(read_ahead([], 4).count(), 0);
    }
}
