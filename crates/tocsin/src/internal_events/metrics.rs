//! The Prometheus metrics behind the internal events, in one registry.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the gateway exports, registered in its own registry (not the
/// process-global one, so that tests can run several).
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `tocsin_messages_received_total{format}`.
    pub messages_received: IntCounterVec,
    /// `tocsin_messages_rejected_total{reason}`.
    pub messages_rejected: IntCounterVec,
    /// `tocsin_events_total{type}`.
    pub events: IntCounterVec,
    /// `tocsin_alerts_emitted_total{kind}`.
    pub alerts_emitted: IntCounterVec,
    /// `tocsin_deliveries_total{result}`.
    pub deliveries: IntCounterVec,
    /// `tocsin_processing_seconds`: receive to commit.
    pub processing_seconds: Histogram,
    /// `tocsin_batch_size`.
    pub batch_size: Histogram,
    /// `tocsin_outbox_pending`.
    pub outbox_pending: IntGauge,
    /// `tocsin_clock_lag_seconds`.
    pub clock_lag_seconds: Gauge,
    /// `tocsin_amqp_connected`.
    pub amqp_connected: IntGauge,
    /// `tocsin_store_up`.
    pub store_up: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let messages_received = counter(
            "tocsin_messages_received_total",
            "Input messages received from the broker, by format.",
            "format",
        )?;
        let messages_rejected = counter(
            "tocsin_messages_rejected_total",
            "Inputs that could not be normalised and were dead-lettered, by reason.",
            "reason",
        )?;
        let events = counter(
            "tocsin_events_total",
            "Interface events normalised and applied, by type.",
            "type",
        )?;
        let alerts_emitted = counter(
            "tocsin_alerts_emitted_total",
            "Alerts raised by the tracker, by kind.",
            "kind",
        )?;
        let deliveries = counter(
            "tocsin_deliveries_total",
            "Outbox messages (events and alerts) delivered or failed, by result.",
            "result",
        )?;
        let processing_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tocsin_processing_seconds",
                "Time from receiving the first input of a batch to committing it.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(processing_seconds.clone()))?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "tocsin_batch_size",
                "Inputs committed together in one batch.",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ]),
        )?;
        registry.register(Box::new(batch_size.clone()))?;
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let outbox_pending = gauge(
            "tocsin_outbox_pending",
            "Events and alerts committed but not yet confirmed by the broker.",
        )?;
        let amqp_connected = gauge(
            "tocsin_amqp_connected",
            "1 while connected to the broker with the topology declared.",
        )?;
        let store_up = gauge("tocsin_store_up", "1 while the store answers.")?;
        let clock_lag_seconds = Gauge::new(
            "tocsin_clock_lag_seconds",
            "Wall clock minus the engine's event-time clock, in seconds.",
        )?;
        registry.register(Box::new(clock_lag_seconds.clone()))?;
        Ok(Self {
            registry,
            messages_received,
            messages_rejected,
            events,
            alerts_emitted,
            deliveries,
            processing_seconds,
            batch_size,
            outbox_pending,
            clock_lag_seconds,
            amqp_connected,
            store_up,
        })
    }
}
