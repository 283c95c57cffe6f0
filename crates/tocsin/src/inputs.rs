//! Walking the paths given on the command line: files as they are,
//! directories recursively in file-name order.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The files a command will read, and what it passed over on the way.
///
/// It exists so that nothing in an archive is left out unseen: every entry
/// of a directory is either read or listed here with the reason it was not
/// ([`Expanded::tell`]).
#[derive(Debug, Default)]
pub struct Expanded {
    /// The files to read, in order.
    pub files: Vec<PathBuf>,
    /// What was found and not read, in the order found.
    pub skipped: Vec<(PathBuf, Skip)>,
    /// Directories whose entries could not be listed (no permission, an
    /// I/O error), with why: the commands report them as unreadable inputs
    /// and read everything else, as they do a file that cannot be read.
    pub unreadable: Vec<(PathBuf, io::Error)>,
    /// Each file's identity, where it could be read ([`identity`]).
    ids: Vec<Option<(u64, u64)>>,
}

/// Why an entry under a directory was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its name starts with `.` (`.git`, `.DS_Store`, an editor's swap file).
    Hidden,
    /// Neither a regular file nor a directory: a named pipe, a socket or a
    /// device would block the run or never end.
    NotAFile,
    /// The same file or directory reached a second time (a symbolic link
    /// to something read already, a link loop, a path given twice): read
    /// once only.
    AlreadyRead,
    /// One of this run's own output files (`replay --alerts` and the like).
    Output,
    /// An editor's or a merge tool's copy (`x.hl7~`, `#x.hl7#`, `x.bak`,
    /// `x.orig`, `x.rej`): an earlier or half-edited version of a file
    /// beside it, which would be judged as traffic.
    Backup,
}

impl Skip {
    /// The reason code a report gives it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Hidden => "hidden",
            Self::NotAFile => "not_a_file",
            Self::AlreadyRead => "already_read",
            Self::Output => "output",
            Self::Backup => "backup",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hidden => "hidden",
            Self::NotAFile => "not a regular file",
            Self::AlreadyRead => "already read by another path",
            Self::Output => "an output of this run",
            Self::Backup => "an editor's backup copy (name it on the command line to read it)",
        })
    }
}

impl Expanded {
    /// Passes over the files that are, or belong to, this run's outputs:
    /// an alerts file from the last run in the archive directory would
    /// otherwise be truncated and then read as input. `outputs` are files;
    /// `prefixes` also cover files beside them whose names extend theirs
    /// with `-` or `.` (a SQLite store's `-wal`, `-shm` and `.partial`).
    /// Compared as files, not names: a link to an output is one too.
    pub fn exclude_outputs(&mut self, outputs: &[&Path], prefixes: &[&Path]) {
        let mut found: HashSet<(u64, u64)> = HashSet::new();
        for p in outputs.iter().chain(prefixes) {
            if let Some(id) = std::fs::metadata(p).ok().and_then(|m| identity(&m)) {
                found.insert(id);
            }
        }
        for p in prefixes {
            let (Some(name), Some(dir)) = (p.file_name(), p.parent()) else {
                continue;
            };
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let name = name.as_encoded_bytes();
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let other = entry.file_name();
                let other = other.as_encoded_bytes();
                if other.starts_with(name)
                    && matches!(other.get(name.len()), Some(b'-' | b'.'))
                    && let Some(id) = std::fs::metadata(entry.path())
                        .ok()
                        .and_then(|m| identity(&m))
                {
                    found.insert(id);
                }
            }
        }
        if found.is_empty() {
            return;
        }
        let files = std::mem::take(&mut self.files);
        let ids = std::mem::take(&mut self.ids);
        for (f, id) in files.into_iter().zip(ids) {
            if id.is_some_and(|id| found.contains(&id)) {
                self.skipped.push((f, Skip::Output));
            } else {
                self.files.push(f);
                self.ids.push(id);
            }
        }
    }

    /// Writes to stderr, after `command: `, what was passed over: a count
    /// of hidden entries, and each other entry by name. Nothing when
    /// nothing was.
    pub fn tell(&self, command: &str) {
        let hidden = self
            .skipped
            .iter()
            .filter(|(_, s)| *s == Skip::Hidden)
            .count();
        if hidden > 0 {
            eprintln!(
                "{command}: skipped {hidden} hidden entr{} (names starting with '.')",
                if hidden == 1 { "y" } else { "ies" }
            );
        }
        for (path, why) in self.skipped.iter().filter(|(_, s)| *s != Skip::Hidden) {
            say(&format!("{command}: skipped {}: {why}", path.display()));
        }
    }
}

/// Expands paths into the files to read, in order: each path in the order
/// given; a directory's entries recursively, sorted by name (byte order).
///
/// Under a directory only regular files are read (symbolic links are
/// followed), hidden entries (names starting with `.`) are passed over, and
/// each file or directory is read once however many paths lead to it, so a
/// link loop ends. A path named on the command line is read whatever it is
/// (`<(zcat archive.gz)` is a pipe). What is passed over is listed in
/// [`Expanded::skipped`]; a directory that cannot be listed in
/// [`Expanded::unreadable`]. Fails, naming the path, only when a path given
/// does not exist or cannot be looked at.
pub fn expand(paths: &[PathBuf]) -> io::Result<Expanded> {
    let mut out = Expanded::default();
    let mut seen = HashSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| with_path(e, p))?;
        if identity(&meta).is_some_and(|id| !seen.insert(id)) {
            out.skipped.push((p.clone(), Skip::AlreadyRead));
        } else if meta.is_dir() {
            walk(p, &mut out, &mut seen)?;
        } else {
            out.files.push(p.clone());
            out.ids.push(identity(&meta));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Expanded, seen: &mut HashSet<(u64, u64)>) -> io::Result<()> {
    // A directory that cannot be listed, or whose listing fails part way,
    // is reported and the rest of the archive read: stopping the whole run
    // for one directory without permission read nothing at all.
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) => {
            out.unreadable.push((dir.to_path_buf(), e));
            return Ok(());
        }
    };
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in listing {
        match entry {
            Ok(e) => entries.push(e.path()),
            Err(e) => {
                out.unreadable.push((dir.to_path_buf(), e));
                break;
            }
        }
    }
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
        if hidden {
            out.skipped.push((p, Skip::Hidden));
            continue;
        }
        if p.file_name()
            .is_some_and(|n| is_backup(n.as_encoded_bytes()))
        {
            out.skipped.push((p, Skip::Backup));
            continue;
        }
        // Followed through links; a link that leads nowhere is kept as a
        // file, so that reading it reports why.
        let Ok(meta) = std::fs::metadata(&p) else {
            out.files.push(p);
            out.ids.push(None);
            continue;
        };
        if !meta.is_dir() && !meta.is_file() {
            out.skipped.push((p, Skip::NotAFile));
        } else if identity(&meta).is_some_and(|id| !seen.insert(id)) {
            out.skipped.push((p, Skip::AlreadyRead));
        } else if meta.is_dir() {
            walk(&p, out, seen)?;
        } else {
            out.files.push(p);
            out.ids.push(identity(&meta));
        }
    }
    Ok(())
}

/// Whether a file name is an editor's or a merge tool's backup copy.
fn is_backup(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    name.ends_with(b"~")
        || (name.len() > 1 && name.starts_with(b"#") && name.ends_with(b"#"))
        || [&b".bak"[..], b".orig", b".rej"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// What makes a file the same file whatever path reached it: its device
/// and inode. `None` where there is none to trust (an inode of 0, as some
/// FUSE and network file systems report for every file; systems without
/// inodes): such a file is read however many paths reach it, rather than
/// every file after the first passed over as read already.
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.ino() != 0).then(|| (meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
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
/// A gzip-compressed file (by its first bytes, whatever its name) is
/// decompressed as it is read: trusts keep their archives compressed, and a
/// year's 12 GB of traffic is a tenth of that in `.gz` files. A file
/// larger than `largest` bytes (this reader's share of a quarter of the
/// memory, [`cache_share`] of the readers running at once), before or
/// after decompression, is not read: it is refused with an error that says
/// so (to split it), where reading it whole would end the run out of
/// memory (each reader a quarter, four readers on a large file each took
/// the machine's whole memory).
///
/// Yields each path with its bytes or the error opening or reading it; a
/// damaged gzip file with its leading content and the damage
/// ([`FileRead`]).
pub fn read_ahead<'a>(
    files: impl IntoIterator<Item = &'a Path>,
    depth: usize,
    keep_cached: u64,
    largest: u64,
) -> impl Iterator<Item = (&'a Path, io::Result<FileRead>)> {
    ReadAhead {
        files: files.into_iter(),
        opened: VecDeque::with_capacity(depth + 1),
        depth,
        keep_cached,
        read: 0,
        largest,
    }
}

/// The share of the machine's memory that one of `readers` readers leaves
/// in the page cache ([`read_ahead`]'s `keep_cached`): together a quarter
/// of it, so that an input that fits stays cached beside everything else
/// the machine holds. The memory is the machine's, or the control group's
/// limit when that is lower (a container's, a systemd unit's `MemoryMax`:
/// a quarter of the host's was more than such a limit allowed, and the run
/// was killed). Unbounded where the memory size is not known.
pub fn cache_share(readers: usize) -> u64 {
    #[cfg(target_os = "linux")]
    {
        let info = rustix::system::sysinfo();
        // `totalram` is a C `unsigned long`: 32 bits on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let machine = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let total = cgroup_limit(Path::new("/sys/fs/cgroup"), &cgroups)
            .map_or(machine, |limit| limit.min(machine));
        total / 4 / readers.max(1) as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = readers;
        u64::MAX
    }
}

/// The lowest memory limit of this process's control groups, read under
/// `root` (`/sys/fs/cgroup`) from `cgroups` (`/proc/self/cgroup`): cgroup
/// v2's `memory.max` and v1's `memory.limit_in_bytes`, at the group and
/// every group above it (a systemd slice's, a Kubernetes pod's) up to the
/// root (a container sees its own group as `/`). `None` when none is set
/// (`max`, or v1's "unlimited", near 2^63).
fn cgroup_limit(root: &Path, cgroups: &str) -> Option<u64> {
    let mut files = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(group)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (base, name) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut at = Path::new(group.trim_start_matches('/'));
        loop {
            files.push(base.join(at).join(name));
            match at.parent() {
                Some(up) => at = up,
                None => break,
            }
        }
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
        .filter(|&limit| limit < 1 << 62)
        .min()
}

/// A file opened ahead, with its length when it is a regular file.
type Opened = (File, Option<u64>);

struct ReadAhead<'a, I> {
    files: I,
    /// The next file to read, then up to `depth` more being fetched.
    opened: VecDeque<(&'a Path, io::Result<Opened>)>,
    depth: usize,
    /// Bytes read before files are dropped from the page cache after reading.
    keep_cached: u64,
    /// Bytes read so far.
    read: u64,
    /// Largest file read.
    largest: u64,
}

impl<'a, I: Iterator<Item = &'a Path>> Iterator for ReadAhead<'a, I> {
    type Item = (&'a Path, io::Result<FileRead>);

    fn next(&mut self) -> Option<Self::Item> {
        while self.opened.len() <= self.depth {
            let Some(path) = self.files.next() else {
                break;
            };
            self.opened.push_back((path, open_ahead(path)));
        }
        let (path, file) = self.opened.pop_front()?;
        let largest = self.largest;
        let too_large = || {
            io::Error::other(format!(
                "larger than {largest} bytes, this reader's share of a quarter of the \
                 memory: split it into smaller files"
            ))
        };
        let bytes = file.and_then(|(f, length)| {
            // A regular file's length is known: one too large is refused
            // before it is read (an 8 GiB file reached 8 GB first), and one
            // read is given its room at once (grown by doubling, its bytes
            // were copied and briefly held twice).
            if length.is_some_and(|n| n > largest) {
                return Err(too_large());
            }
            let room = length.map_or(0, |n| usize::try_from(n).unwrap_or(0).saturating_add(1));
            let mut bytes = Vec::with_capacity(room);
            // Through `take`: a pipe has no length to check first.
            (&f).take(largest.saturating_add(1))
                .read_to_end(&mut bytes)?;
            self.read = self.read.saturating_add(bytes.len() as u64);
            if self.read > self.keep_cached {
                drop_cached(&f);
            }
            let read = if bytes.len() as u64 <= largest && bytes.starts_with(GZIP_MAGIC) {
                gunzip(&bytes, largest)?
            } else {
                FileRead {
                    bytes,
                    rest_unreadable: None,
                }
            };
            if read.bytes.len() as u64 > largest {
                return Err(too_large());
            }
            Ok(read)
        });
        Some((path, bytes))
    }
}

/// The first bytes of a gzip stream (RFC 1952).
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

/// A file as read whole: its bytes, and, for a damaged gzip file whose
/// leading content could be read, why the rest could not.
#[derive(Debug)]
pub struct FileRead {
    /// The content (decompressed).
    pub bytes: Vec<u8>,
    /// The rest of a gzip file that could not be read: cut short (a copy
    /// interrupted, a disk filled), or followed by bytes that are not gzip.
    /// `bytes` then holds the messages read whole before the damage, and
    /// the error says where it begins.
    pub rest_unreadable: Option<io::Error>,
}

impl FileRead {
    /// The whole file, or the error that says why some of it could not be
    /// read: for commands that use a file whole or not at all (`send`).
    pub fn whole(self) -> io::Result<Vec<u8>> {
        match self.rest_unreadable {
            None => Ok(self.bytes),
            Some(e) => Err(e),
        }
    }
}

/// Decompresses a gzip file (every member, as `zcat` does), to at most
/// `largest + 1` bytes so that the size check after sees an oversized one.
/// NUL bytes after the last member, with which tape and backup tools pad a
/// file to their block size, end it as they end `zcat`'s reading. A file
/// damaged after some content gives what came before the damage, in whole
/// messages ([`whole_messages`]), and the damage as `rest_unreadable`:
/// refused whole, a year's archive cut short in its last block lost every
/// message it held. Damage before any message is the file's error.
fn gunzip(compressed: &[u8], largest: u64) -> io::Result<FileRead> {
    // The last member's size as its trailer gives it (modulo 4 GiB: all
    // of a one-member file under that), else a guess at the ratio; never
    // past the limit, as a large file's reservation alone could exceed
    // the memory. Grown by doubling instead, a buffer near the limit held
    // twice it while its bytes were copied.
    let trailer = compressed
        .len()
        .checked_sub(4)
        .and_then(|at| compressed[at..].try_into().ok())
        .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize);
    let guess = compressed
        .len()
        .saturating_mul(4)
        .max(trailer.saturating_add(1));
    let mut plain = Vec::with_capacity(guess.min(usize::try_from(largest).unwrap_or(usize::MAX)));
    let limit = largest.saturating_add(1);
    let mut rest = compressed;
    while !rest.is_empty() && !rest.iter().all(|b| *b == 0) {
        // The buffered decoder takes from `rest` only the member's bytes,
        // so `rest` is left at the next member (or the padding).
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let room = limit.saturating_sub(plain.len() as u64);
        let from = plain.len();
        let read = (&mut member)
            .take(room)
            .read_to_end(&mut plain)
            .and_then(|_| match member.header() {
                // The decoder ends a header cut short quietly, as an end.
                None => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "member header cut short",
                )),
                Some(_) => Ok(()),
            });
        if let Err(e) = read {
            let at = compressed.len() - rest.len();
            let kept = whole_messages(&plain, from);
            if kept == 0 {
                return Err(io::Error::new(e.kind(), format!("gzip: {e}")));
            }
            plain.truncate(kept);
            let e = io::Error::new(
                e.kind(),
                format!(
                    "gzip: {e} (the member at byte {at} of the file): its content from byte \
                     {kept} on is lost; the messages before it were read"
                ),
            );
            return Ok(FileRead {
                bytes: plain,
                rest_unreadable: Some(e),
            });
        }
        if plain.len() as u64 >= limit {
            break;
        }
        rest = member.into_inner();
    }
    Ok(FileRead {
        bytes: plain,
        rest_unreadable: None,
    })
}

/// How much of `plain` (decompressed content whose member from byte `from`
/// was cut short, or was not gzip) is whole messages, the format told as
/// ingest tells it ([`tocsin_ingest::detect`]). HL7 v2: all of it when it
/// ends a segment and the member gave nothing (trailing bytes after whole
/// members), else up to the last message as the splitter finds it
/// ([`tocsin_hl7::split_messages`]: batch headers and MLLP frames
/// included), since a message cut short may lack segments and still
/// parse; nothing when that is the first. Anything else (NDJSON, JSON,
/// XML): the members before and the cut member's whole lines (a line cut
/// short does not parse, and is rejected as any bad line is; a JSON
/// document without a final line end, before trailing bytes, is whole).
fn whole_messages(plain: &[u8], from: usize) -> usize {
    let line_end = |b: &u8| matches!(b, b'\r' | b'\n');
    if tocsin_ingest::detect(plain).ok() != Some(tocsin_ingest::ContentHint::Hl7) {
        return plain[from..]
            .iter()
            .rposition(line_end)
            .map_or(from, |at| from + at + 1);
    }
    if plain.len() == from && plain.last().is_some_and(line_end) {
        return from;
    }
    match tocsin_hl7::split_messages(plain).as_slice() {
        [_, .., last] => {
            // A frame's start block goes with the message it starts.
            let at = last.offset;
            at - usize::from(plain[..at].ends_with(&[0x0B]))
        }
        _ => 0,
    }
}

/// The name that tells a file's format (`.ndjson`, `.xml`): its own, less
/// a `.gz` ending in any case, so that `events.ndjson.gz` and
/// `EVENTS.NDJSON.GZ` read as NDJSON. A name that is not UTF-8 is read
/// lossily: its ending is what counts, and `café.ndjson` in Latin-1 is
/// still NDJSON.
pub fn format_name(path: &Path) -> Option<String> {
    let mut name = path.file_name()?.to_string_lossy().into_owned();
    if let Some(cut) = name.len().checked_sub(3)
        && name.is_char_boundary(cut)
        && name[cut..].eq_ignore_ascii_case(".gz")
    {
        name.truncate(cut);
    }
    Some(name)
}

/// Opens a file and asks the kernel to start reading it in; with its
/// length when it is a regular file.
///
/// A file that is regular when it is opened is opened without blocking: a
/// kernel file that looks regular (`/proc/kmsg`, linked into an archive)
/// hung the run in its first read, and now fails at once ("Resource
/// temporarily unavailable"), reported; a file that became a pipe between
/// that look and the open reads as empty rather than waiting in `open`. A
/// pipe (what `<(zcat archive.gz)` names, or a named pipe given on the
/// command line, whose writer may open it after tocsin) is opened and read
/// blocking, as before: opened without blocking, a writer that came later
/// found its data read as an empty input. (The walk passes pipes over, so
/// only a path named on the command line, or a file replaced by a pipe
/// after the walk listed it, is one.)
fn open_ahead(path: &Path) -> io::Result<Opened> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // The path is looked at before it is opened: a pipe opened without
    // blocking and then opened again to wait for its writer lost a writer
    // that wrote and closed in between (its data was in the first pipe
    // end, and the second open waited for ever).
    let pipe = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !pipe {
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !pipe && !meta.is_file() {
        let flags = rustix::fs::fcntl_getfl(&file)?;
        rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    }
    let length = meta.is_file().then_some(meta.len());
    // Advice only: where it is not supported, the file is read when asked.
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
    Ok((file, length))
}

/// Asks the kernel to drop a file just read from the page cache.
fn drop_cached(file: &File) {
    // Advice only: where it is not supported, the pages age out as before.
    #[cfg(target_os = "linux")]
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Prints a line about an input on stderr with its control characters
/// escaped: a file's name (or an error quoting it) holding a line feed
/// forged a line of the report's stderr, and an escape sequence drove the
/// terminal.
pub fn say(line: &str) {
    eprintln!("{}", tocsin_tracker::compliance::printable(line));
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Three HL7 messages, each ending in a carriage return.
    fn three_messages() -> Vec<u8> {
        (1..=3)
            .map(|i| format!("MSH|^~\\&|PAS|RX1|||2024||ADT^A03|m{i}|P|2.4\rPID|||{i}\r"))
            .collect::<String>()
            .into_bytes()
    }

    /// A gzip file cut short anywhere gives whole messages only, and the
    /// damage: HL7 up to the last message's header (which may lack
    /// segments), other formats up to the last whole line; cut inside its
    /// first message it is the file's error, as before.
    #[test]
    fn a_cut_gzip_gives_the_whole_messages_before_the_cut() {
        let ndjson = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n".to_vec();
        let with_bom = [b"\xEF\xBB\xBF".as_slice(), &three_messages()].concat();
        let batch = [b"FHS|^~\\&|\rBHS|^~\\&|\r".as_slice(), &three_messages()].concat();
        for (plain, ends) in [
            (three_messages(), b"\r".as_slice()),
            (with_bom, b"\r".as_slice()),
            (batch, b"\r".as_slice()),
            (ndjson, b"\n".as_slice()),
        ] {
            let boundaries: Vec<usize> = (1..=plain.len())
                .filter(|&i| ends.contains(&plain[i - 1]))
                .collect();
            let first = boundaries[0];
            // One member, and two as `cat a.gz b.gz` makes (the first
            // ending inside a message).
            let packed = [
                gz(&plain),
                [gz(&plain[..first + 3]), gz(&plain[first + 3..])].concat(),
            ];
            let mut kept_some = false;
            for packed in &packed {
                for at in 1..packed.len() {
                    match gunzip(&packed[..at], u64::MAX) {
                        Err(e) => assert!(e.to_string().starts_with("gzip: "), "{e}"),
                        Ok(read) => {
                            let n = read.bytes.len();
                            let Some(damage) = read.rest_unreadable else {
                                // Cut between the members: a whole gzip
                                // file, of the first member's content.
                                assert_eq!(n, first + 3, "cut at {at}");
                                continue;
                            };
                            assert_eq!(read.bytes, &plain[..n], "cut at {at}");
                            if ends == b"\r" {
                                // Up to a message's header.
                                assert!(
                                    plain[n..].starts_with(b"MSH|") || n == plain.len(),
                                    "cut at {at}: kept {n}"
                                );
                            } else {
                                // Whole lines, or a line split across the
                                // members as far as the first held it
                                // (it does not parse).
                                assert!(
                                    boundaries.contains(&n) || n == first + 3,
                                    "cut at {at}: kept {n}"
                                );
                            }
                            assert!(
                                damage.to_string().contains(&format!("from byte {n} on")),
                                "{damage}"
                            );
                            kept_some = true;
                        }
                    }
                }
            }
            assert!(kept_some, "some cut keeps messages");
        }
    }

    /// Bytes after the last member that are not gzip (nor NUL padding)
    /// leave every member whole and are told; a message split across two
    /// members, the second cut, is not kept in part.
    #[test]
    fn trailing_bytes_after_the_last_member_leave_the_members_whole() {
        let plain = three_messages();
        let garbage = b"these bytes are not gzip\n".to_vec();
        let read = gunzip(&[gz(&plain), garbage].concat(), u64::MAX).unwrap();
        assert_eq!(read.bytes, plain);
        let damage = read
            .rest_unreadable
            .expect("the trailing bytes told")
            .to_string();
        assert!(damage.contains("invalid gzip header"), "{damage}");

        let padded = gunzip(&[gz(&plain), vec![0; 512]].concat(), u64::MAX).unwrap();
        assert_eq!(padded.bytes, plain);
        assert!(padded.rest_unreadable.is_none());

        let third = plain.windows(5).rposition(|w| w == b"\rMSH|").unwrap() + 1;
        let split = [gz(&plain[..third + 10]), gz(&plain[third + 10..])].concat();
        let read = gunzip(&split[..split.len() - 3], u64::MAX).unwrap();
        assert_eq!(read.bytes, &plain[..third]);
    }

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
            let read: Vec<_> = read_ahead(
                paths.iter().map(PathBuf::as_path),
                depth,
                keep_cached,
                u64::MAX,
            )
            .collect();
            assert_eq!(read.len(), paths.len(), "depth {depth}");
            for (i, (path, bytes)) in read.into_iter().enumerate() {
                assert_eq!(path, paths[i], "depth {depth}: in order");
                match bytes {
                    Ok(b) => assert_eq!(
                        b.whole().unwrap(),
                        format!("file {i} ").repeat(i * 1000).into_bytes()
                    ),
                    Err(e) => {
                        assert_eq!(i, 3, "depth {depth}: only the missing file fails");
                        assert_eq!(e.kind(), io::ErrorKind::NotFound);
                    }
                }
            }
        }
        assert_eq!(read_ahead([], 4, 0, u64::MAX).count(), 0);
    }

    /// A named pipe given to read, whose writer opens it only after tocsin
    /// does, is waited for and read whole (opened without blocking, its
    /// data was read as an empty input and the writer blocked for ever); a
    /// pipe whose writer is there (what `<(zcat ...)` names) is read whole;
    /// a regular file still gives its bytes.
    #[test]
    fn pipes_are_read_whole_whenever_their_writer_comes() {
        use std::io::Write;
        use std::os::fd::AsRawFd;

        let dir = tempfile::tempdir().unwrap();
        let (named, plain) = (dir.path().join("a.hl7"), dir.path().join("c.hl7"));
        std::fs::write(&plain, "MSH|^~\\&|").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            named.as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // A pipe as process substitution gives one: its writer is there.
        let (reader, mut writer) = std::io::pipe().unwrap();
        let fed = PathBuf::from(format!("/proc/self/fd/{}", reader.as_raw_fd()));
        let feeding = std::thread::spawn(move || writer.write_all(&b"MSH|fed".repeat(20_000)));
        let files = [named.clone(), fed.clone(), plain.clone()];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got: Vec<_> = read_ahead(files.iter().map(PathBuf::as_path), 0, u64::MAX, u64::MAX)
                .map(|(p, r)| {
                    (
                        p.to_path_buf(),
                        r.and_then(FileRead::whole)
                            .map(|b| b.len())
                            .map_err(|e| e.to_string()),
                    )
                })
                .collect();
            tx.send(got).unwrap();
        });
        // The named pipe's writer comes after the reader: its open waits
        // for the reader's.
        std::fs::write(&named, b"MSH|late".repeat(1_000)).unwrap();
        // A bound on a hang, not a wait for work: the reads take
        // milliseconds.
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("reading the files hung");
        feeding.join().unwrap().unwrap();
        drop(reader);
        assert_eq!(
            got,
            [(named, Ok(8_000)), (fed, Ok(7 * 20_000)), (plain, Ok(9))]
        );
    }

    /// A control group's memory limit, v2 or v1, at the group's path or at
    /// the root a container sees, lowers the memory shared out; none set
    /// (`max`, v1's near 2^63) leaves the machine's.
    #[test]
    fn a_control_groups_memory_limit_is_read() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let v2 = "0::/system.slice/tocsin.service\n";
        assert_eq!(cgroup_limit(root.path(), v2), None);
        write("system.slice/tocsin.service/memory.max", "max\n");
        assert_eq!(cgroup_limit(root.path(), v2), None);
        write("system.slice/tocsin.service/memory.max", "2147483648\n");
        assert_eq!(cgroup_limit(root.path(), v2), Some(2 << 30));
        let v1 = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n";
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(cgroup_limit(root.path(), v1), None);
        write("memory/docker/abc/memory.limit_in_bytes", "1073741824\n");
        assert_eq!(cgroup_limit(root.path(), v1), Some(1 << 30));
        // A group above (a slice, a pod) that allows less decides.
        write("memory/docker/memory.limit_in_bytes", "805306368\n");
        assert_eq!(cgroup_limit(root.path(), v1), Some(768 << 20));
        write("system.slice/memory.max", "1610612736\n");
        assert_eq!(cgroup_limit(root.path(), v2), Some(1536 << 20));
        // In a container the group is `/`: its limit is at the root.
        write("memory.max", "536870912\n");
        assert_eq!(cgroup_limit(root.path(), "0::/\n"), Some(512 << 20));
        assert_eq!(cgroup_limit(root.path(), "garbage"), None);
    }

    #[test]
    fn editor_backups_under_a_directory_are_passed_over_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "a.hl7",
            "a.hl7~",
            "#a.hl7#",
            "a.hl7.bak",
            "b.HL7.BAK",
            "a.hl7.orig",
            "a.hl7.rej",
            "backup.hl7",
            "#",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let expanded = expand(&[dir.path().to_path_buf()]).unwrap();
        let read: Vec<_> = expanded
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(read, ["#", "a.hl7", "backup.hl7"]);
        assert_eq!(
            expanded
                .skipped
                .iter()
                .filter(|(_, why)| *why == Skip::Backup)
                .count(),
            6
        );
        // Named on the command line, a backup is read.
        let given = expand(&[dir.path().join("a.hl7~")]).unwrap();
        assert_eq!(given.files.len(), 1);
    }

    #[test]
    fn outputs_and_a_stores_companion_files_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "a.hl7",
            "alerts.jsonl",
            "alerts.jsonl.old",
            "s.db",
            "s.db-wal",
            "s.db.partial",
            "s.dbx",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let mut expanded = expand(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(expanded.files.len(), names.len());
        // Named as the command was given them: relative to elsewhere.
        let alerts = dir.path().join("sub/../alerts.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        expanded.exclude_outputs(&[&alerts], &[&dir.path().join("s.db")]);
        let left: Vec<_> = expanded
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(left, ["a.hl7", "alerts.jsonl.old", "s.dbx"]);
        let passed: Vec<_> = expanded
            .skipped
            .iter()
            .map(|(f, why)| (f.file_name().unwrap().to_str().unwrap(), *why))
            .collect();
        assert_eq!(
            passed,
            [
                ("alerts.jsonl", Skip::Output),
                ("s.db", Skip::Output),
                ("s.db-wal", Skip::Output),
                ("s.db.partial", Skip::Output),
            ]
        );
    }

    #[test]
    fn a_gz_ending_does_not_hide_the_format_name() {
        let name = |p: &str| format_name(Path::new(p));
        assert_eq!(name("a/events.ndjson.gz").as_deref(), Some("events.ndjson"));
        assert_eq!(name("b.xml").as_deref(), Some("b.xml"));
        assert_eq!(name("c.gz").as_deref(), Some("c"));
        assert_eq!(name("D.NDJSON.GZ").as_deref(), Some("D.NDJSON"));
        assert_eq!(name("e.Gz").as_deref(), Some("e"));
        assert_eq!(name("gz").as_deref(), Some("gz"));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let latin1 = Path::new(std::ffi::OsStr::from_bytes(b"caf\xe9.ndjson.gz"));
            let n = format_name(latin1).unwrap();
            assert!(n.ends_with(".ndjson"), "{n}");
        }
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
