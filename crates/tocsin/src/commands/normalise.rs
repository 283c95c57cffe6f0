//! `tocsin normalise PATH...`: interface events as JSON lines on stdout.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use tocsin_ingest::{ContentHint, ingest_units};

use crate::config::Config;
use crate::inputs;

/// Normalises every file, printing one JSON line per event in input order and
/// one line per rejected unit on stderr (`file: position: reason`).
pub fn run(config: &Config, paths: &[PathBuf]) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let expanded = inputs::expand(paths)?;
    expanded.tell("normalise");
    let mut rejected = 0usize;
    for (dir, e) in &expanded.unreadable {
        inputs::say(&format!(
            "{}: cannot read the directory: {e}",
            dir.display()
        ));
        rejected += 1;
    }
    let files = expanded.files;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for (file, bytes) in inputs::read_ahead(
        files.iter().map(PathBuf::as_path),
        1,
        u64::MAX,
        inputs::cache_share(1),
    ) {
        let read = match bytes {
            Ok(read) => read,
            Err(e) => {
                inputs::say(&format!("{}: cannot read: {e}", file.display()));
                rejected += 1;
                continue;
            }
        };
        let hint = inputs::format_name(file).and_then(|n| ContentHint::from_file_name(&n));
        for unit in ingest_units(&read.bytes, hint, &config.ingest) {
            match unit.outcome {
                Ok(events) => {
                    for event in events {
                        let written = serde_json::to_writer(&mut out, &event)
                            .map_err(io::Error::from)
                            .and_then(|()| out.write_all(b"\n"));
                        if let Err(e) = written {
                            return broken_pipe_or(e);
                        }
                    }
                }
                Err(e) => {
                    rejected += 1;
                    if let Err(e) = out.flush() {
                        return broken_pipe_or(e);
                    }
                    inputs::say(&format!(
                        "{}: {}: {}",
                        file.display(),
                        unit.position,
                        describe(&e)
                    ));
                }
            }
        }
        if let Some(e) = read.rest_unreadable {
            rejected += 1;
            if let Err(e) = out.flush() {
                return broken_pipe_or(e);
            }
            inputs::say(&format!("{}: cannot read: {e}", file.display()));
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe_or(e);
    }
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A closed stdout (`tocsin normalise ... | head`) ends the run quietly.
fn broken_pipe_or(e: io::Error) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(e.into())
    }
}

/// The reason, with its location when the reason does not already name it.
pub fn describe(e: &tocsin_ingest::IngestError) -> String {
    let text = e.to_string();
    match e.location() {
        Some(loc) if !text.contains(&loc) => format!("{text} (at {loc})"),
        _ => text,
    }
}
