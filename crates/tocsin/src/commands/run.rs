//! `tocsin run`: start the live gateway.

use std::process::ExitCode;

use crate::config::Config;

/// Starts logging and the runtime, then the gateway.
pub fn run(config: Config) -> Result<ExitCode, Box<dyn std::error::Error>> {
    crate::logging::init(&config.log)?;
    tracing::info!(
        config = %config.origin,
        amqp = %config.amqp.url.redacted(),
        store = %tocsin_store::redact_url(&config.store.url),
        events_publish = config.events.publish,
        version = env!("CARGO_PKG_VERSION"),
        "tocsin starting"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::gateway::run(config))
}
