//! Logging setup: `tracing` to stderr, as text or JSON.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// Installs the global subscriber. The filter is a level (`info`) or a
/// `tracing` directive list (`tocsin=debug,lapin=warn`).
pub fn init(log: &LogSection) -> Result<(), Box<dyn std::error::Error>> {
    let filter =
        EnvFilter::try_new(&log.level).map_err(|e| format!("[log] level {:?}: {e}", log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(())
}
