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

/// How the grace period is shared between the steps of a stop, so that
/// each step gives up on its own (and says which) well before
/// [`enforce_deadline`] ends the process. A step that hangs, such as a
/// lapin connection close that never completes after a channel-close race,
/// then costs its share, not the whole stop.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    grace: Duration,
}

impl Budget {
    /// Shares `grace` (the configured `shutdown_timeout_secs`).
    pub fn new(grace: Duration) -> Self {
        Self { grace }
    }

    /// Finishing the deliveries in hand and draining the outbox: 60 %.
    pub fn work(self) -> Duration {
        self.grace.mul_f64(0.6)
    }

    /// Waiting for the outbox relay task to end: 15 %.
    pub fn relay(self) -> Duration {
        self.grace.mul_f64(0.15)
    }

    /// Closing the broker connection: 10 %, at most two seconds (it only
    /// tells the broker goodbye; everything is settled by then).
    pub fn close(self) -> Duration {
        self.grace.mul_f64(0.1).min(Duration::from_secs(2))
    }
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
