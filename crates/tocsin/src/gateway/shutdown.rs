//! SIGTERM and SIGINT, as a value the gateway's loops can wait on.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Becomes true once SIGTERM or SIGINT arrives.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// True once a stop was asked for.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the listener task ended, which it never does
        // before sending; treat it as a stop.
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// Starts listening for SIGTERM and SIGINT.
pub fn listen() -> std::io::Result<Stop> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping: finishing the batch in hand");
        let _ = tx.send(true);
        // Keep the sender alive so receivers never see the channel close.
        std::future::pending::<()>().await;
    });
    Ok(Stop(rx))
}

/// Ends the process `grace` after a stop is asked for, whatever the gateway
/// is stuck on (a commit retried while the store stays away, a restore, a
/// broker that does not answer): the stop finishes in time, with exit code 1
/// when the work in hand could not be finished. Nothing is lost: inputs not
/// acknowledged are redelivered, and the outbox is published on restart.
pub fn enforce_deadline(stop: &Stop, grace: Duration) {
    let mut stop = stop.clone();
    tokio::spawn(async move {
        stop.requested().await;
        tokio::time::sleep(grace).await;
        tracing::error!(
            grace_secs = grace.as_secs(),
            "stop not finished within the grace period (shutdown_timeout_secs); exiting: unacknowledged inputs will be redelivered"
        );
        std::process::exit(1);
    });
}
