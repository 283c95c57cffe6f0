//! The `tocsin` command line: `normalise`, `replay`, `run` and `check-config`.

mod api;
mod cli;
mod commands;
mod config;
mod gateway;
mod inputs;
mod internal_events;
mod logging;
mod restore;

use std::process::ExitCode;

use clap::Parser;

/// The process allocator. With glibc's malloc, allocating and freeing were
/// the largest single cost of `tocsin replay`: the tracker thread allocates
/// every effect and the writer thread frees it, and each such free locked
/// the tracker's arena (`free`, `_int_free` and `unlink_chunk` led the
/// profile). jemalloc frees across threads without that lock: the 30-day
/// replay went from 20.4 s to 14.4 s and the 1M-open one from 41.8 s to
/// 26.8 s (docs/performance.md, "Sixth session"). It copies a large vector
/// that grows where glibc remapped it, so the tracker keeps its biggest
/// table, the open records, in chunks that never move.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tocsin: {e:#}");
            ExitCode::from(2)
        }
    }
}
