//! The `tocsin` command line: `normalise`, `replay`, `run` and `check-config`.

mod api;
mod cli;
mod commands;
mod config;
mod gateway;
mod inputs;
mod internal_events;
mod logging;

use std::process::ExitCode;

use clap::Parser;

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
