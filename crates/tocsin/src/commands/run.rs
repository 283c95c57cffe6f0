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
    if let Some(path) = config.store.ignored_password_file() {
        tracing::warn!(
            password_file = %path.display(),
            "[store] password_file is ignored: the store is not PostgreSQL"
        );
    }
    if !config.secrets_readable_by_others.is_empty() {
        tracing::warn!(
            config = %config.origin,
            keys = %config.secrets_readable_by_others.join(", "),
            "the configuration holds secrets others on this host can read: chmod o-r it, or \
             move them to *_file settings readable by tocsin alone"
        );
    }
    return_freed_pages_in_background();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::gateway::run(config))
}

/// Starts jemalloc's background thread, which returns freed pages to the
/// system as they age (after 10 s). Without it jemalloc returns them only
/// while the process allocates, so a gateway that has restored a million
/// open expectations and then waits on its queues kept the restore's freed
/// pages (some 12 MB) for as long as it stayed idle. Only the gateway: a
/// busy, short replay purges as it allocates, and peaked some 20 MB higher
/// with the thread (docs/performance.md, ninth session).
fn return_freed_pages_in_background() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc background thread not started: freed memory is returned only while tocsin allocates");
    }
}
