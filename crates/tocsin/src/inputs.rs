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
///
/// Once `keep_cached` bytes have been read, each file read after is
/// dropped from the page cache (`POSIX_FADV_DONTNEED`): input larger than
/// the cache would otherwise make the kernel reclaim older pages to fit
/// each new one (dropping them saved a year's replay from the disk about a
/// tenth of its CPU, docs/performance.md, "Thirteenth session"), while
/// input that fits stays cached for the next run. Advice only: what is
/// read is the same.
///
/// Yields each path with its bytes or the error opening or reading it.
pub fn read_ahead<'a>(
    files: impl IntoIterator<Item = &'a Path>,
    depth: usize,
    keep_cached: u64,
) -> impl Iterator<Item = (&'a Path, io::Result<Vec<u8>>)> {
    ReadAhead {
        files: files.into_iter(),
        opened: VecDeque::with_capacity(depth + 1),
        depth,
        keep_cached,
        read: 0,
    }
}

/// The share of the machine's memory that one of `readers` readers leaves
/// in the page cache ([`read_ahead`]'s `keep_cached`): together a quarter
/// of it, so that an input that fits stays cached beside everything else
/// the machine holds. Unbounded where the memory size is not known.
pub fn cache_share(readers: usize) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let info = rustix::system::sysinfo();
        // `totalram` is a C `unsigned long`: 32 bits on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let total = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
        total / 4 / readers.max(1) as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = readers;
        u64::MAX
    }
}

struct ReadAhead<'a, I> {
    files: I,
    /// The next file to read, then up to `depth` more being fetched.
    opened: VecDeque<(&'a Path, io::Result<File>)>,
    depth: usize,
    /// Bytes read before files are dropped from the page cache after reading.
    keep_cached: u64,
    /// Bytes read so far.
    read: u64,
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
            f.read_to_end(&mut bytes)?;
            self.read = self.read.saturating_add(bytes.len() as u64);
            if self.read > self.keep_cached {
                drop_cached(&f);
            }
            Ok(bytes)
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

/// Asks the kernel to drop a file just read from the page cache.
fn drop_cached(file: &File) {
    // Advice only: where it is not supported, the pages age out as before.
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = file;
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
        // Dropping files from the page cache after some bytes (none, the
        // first three files' worth, all) changes nothing read.
        let first_three = (0..3).map(|i| 7 * 1000 * i as u64).sum::<u64>();
        for (depth, keep_cached) in [(0, 0), (1, u64::MAX), (4, first_three), (20, 0)] {
            let read: Vec<_> =
                read_ahead(paths.iter().map(PathBuf::as_path), depth, keep_cached).collect();
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
        assert_eq!(read_ahead([], 4, 0).count(), 0);
    }

    #[test]
    fn readers_share_a_quarter_of_the_memory_for_cached_input() {
        let one = cache_share(1);
        assert!(one > 0);
        assert_eq!(cache_share(2), one / 2);
        assert_eq!(cache_share(0), one, "no readers counts as one");
        #[cfg(target_os = "linux")]
        {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
            let kib: u64 = meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse().ok())
                .expect("MemTotal in /proc/meminfo");
            assert_eq!(one, kib * 1024 / 4);
        }
    }
}
