//! One module per subcommand.

mod check_config;
mod dead_letters;
mod loadgen;
mod normalise;
mod progress;
mod replay;
mod run;
mod send;

pub use dead_letters::DeadLettersArgs;
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
        Command::DeadLetters(args) => dead_letters::run(&config, &args),
    }
}

/// One connection to the configured broker for a command that talks to it
/// once (`send`, `loadgen`, `dead-letters`): no retries, and a failure
/// that says what to do about it (start RabbitMQ, check the password, the
/// vhost, the topology), as the gateway's log does.
async fn broker_session(
    config: &Config,
) -> Result<tocsin_amqp::Session, Box<dyn std::error::Error>> {
    let supervisor = tocsin_amqp::Supervisor::new(config.amqp.clone())?;
    let session = supervisor
        .try_connect()
        .await
        .map_err(|e| format!("{e}\n{}", e.hint()))?;
    Ok(session)
}
