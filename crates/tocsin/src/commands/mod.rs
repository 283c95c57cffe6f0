//! One module per subcommand.

mod check_config;
mod loadgen;
mod normalise;
mod progress;
mod replay;
mod run;
mod send;

pub use loadgen::LoadgenArgs;
pub use send::SendArgs;

pub use progress::ProgressMode;
pub use replay::ReportFormat;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Config;

/// Runs the chosen subcommand. An `Err` is a failure of the command itself
/// (exit 2); rejected inputs are reported by the command and give exit 1.
pub fn dispatch(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Normalise { paths } => normalise::run(&config, &paths),
        Command::Replay(args) => replay::run(&config, &args),
        Command::Run => run::run(config),
        Command::Send(args) => send::run(&config, &args),
        Command::Loadgen(args) => loadgen::run(&config, &args),
        Command::CheckConfig => check_config::run(&config),
    }
}
