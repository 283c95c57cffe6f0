//! The Prometheus metrics behind the internal events, in one registry.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::labels::{self, MetricLabels};

/// Buckets of `tocsin_document_delay_seconds`: the contract's limits (1 h,
/// 6 h, 24 h, 48 h, 7 d, 10 d, 14 d, 28 d), so that "within the limit" is one
/// bucket boundary.
pub const DELAY_BUCKETS_SECONDS: [f64; 8] = [
    3_600.0,
    21_600.0,
    86_400.0,
    172_800.0,
    604_800.0,
    864_000.0,
    1_209_600.0,
    2_419_200.0,
];

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
    /// `tocsin_event_warnings_total{code}`.
    pub event_warnings: IntCounterVec,
    /// `tocsin_alerts_emitted_total{kind}`.
    pub alerts_emitted: IntCounterVec,
    /// `tocsin_deliveries_total{result}`.
    pub deliveries: IntCounterVec,
    /// `tocsin_processing_seconds`: receive to commit.
    pub processing_seconds: Histogram,
    /// `tocsin_batch_size`.
    pub batch_size: Histogram,
    /// `tocsin_pipeline_stage_seconds{stage}`: where a batch's time goes.
    pub pipeline_stage_seconds: HistogramVec,
    /// `tocsin_outbox_pending`.
    pub outbox_pending: IntGauge,
    /// `tocsin_clock_lag_seconds`, set from `engine_clock_ms` at each
    /// scrape ([`Metrics::refresh_clock_lag`]).
    pub clock_lag_seconds: Gauge,
    /// The engine's event-time clock as last reported (milliseconds since
    /// the epoch; the wall clock when it was caught up), `i64::MIN` before
    /// any. Kept, not the lag, so that the lag grows while nothing moves
    /// the clock (the broker away, a commit that hangs): set only when the
    /// pipeline ran, the gauge read 0 through an outage, caught up.
    pub engine_clock_ms: std::sync::atomic::AtomicI64,
    /// `tocsin_amqp_connected`.
    pub amqp_connected: IntGauge,
    /// `tocsin_store_up`.
    pub store_up: IntGauge,
    /// `tocsin_store_file_bytes{file}`: a SQLite store's database and WAL
    /// sizes (no series with PostgreSQL).
    pub store_file_bytes: IntGaugeVec,
    /// `tocsin_store_checkpoint_failing`: 1 while a SQLite store's WAL
    /// checkpoints fail.
    pub store_checkpoint_failing: IntGauge,
    /// `tocsin_dead_letters`: messages waiting in the dead-letter queue.
    pub dead_letters: IntGauge,
    /// `tocsin_store_pruned_rows_total{table}`.
    pub store_pruned_rows: IntCounterVec,
    /// `tocsin_store_housekeeping_failures_total{table}`.
    pub store_housekeeping_failures: IntCounterVec,
    /// `tocsin_tracker_notices_total{notice}`: what the tracker tolerated.
    pub tracker_notices: IntCounterVec,
    /// `tocsin_restore_skipped_total{reason}`: stored state records the
    /// restore at start went on without.
    pub restore_skipped: IntCounterVec,
    /// `tocsin_http_connections_shed_total{reason}`: connections the
    /// listener closed so that others could be served.
    pub http_connections_shed: IntCounterVec,
    /// `tocsin_expectations_open{document_kind,encounter_kind}`.
    pub expectations_open: IntGaugeVec,
    /// `tocsin_expectations_overdue{document_kind,encounter_kind}`.
    pub expectations_overdue: IntGaugeVec,
    /// `tocsin_documents_total{document_kind,outcome[,site][,specialty]}`.
    pub documents: IntCounterVec,
    /// `tocsin_document_delay_seconds{document_kind[,site][,specialty]}`.
    pub document_delay_seconds: HistogramVec,
    /// Which optional labels the per-document metrics carry.
    pub labels: MetricLabels,
}

impl Metrics {
    /// Sets `tocsin_clock_lag_seconds` to `now` less the engine's clock
    /// as last reported (nothing before any report): called at each
    /// scrape, so the lag a stalled clock builds up is seen.
    pub fn refresh_clock_lag(&self, now: chrono::DateTime<chrono::Utc>) {
        let clock = self
            .engine_clock_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if clock != i64::MIN {
            let lag_ms = now.timestamp_millis().saturating_sub(clock);
            self.clock_lag_seconds.set(lag_ms as f64 / 1000.0);
        }
    }

    /// Creates and registers every metric, with the optional labels the
    /// configuration asks for. Every series whose label values are known in
    /// advance starts at zero, so dashboards and alert rules see it before
    /// the first event.
    pub fn with_labels(labels: MetricLabels) -> Result<Self, prometheus::Error> {
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
            "Interface events normalised and handed to the tracker, by type (those it counted instead of acting on, as duplicates or stale, also in tocsin_tracker_notices_total).",
            "type",
        )?;
        let event_warnings = counter(
            "tocsin_event_warnings_total",
            "Problems normalisation tolerated in the events it made (an NHS number failing its check \
             digit, a code with no mapping, a reference that did not resolve, a timestamp guessed or \
             replaced), by code: the events carry each warning with its location.",
            "code",
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
        let store_pruned_rows = counter(
            "tocsin_store_pruned_rows_total",
            "Rows deleted by housekeeping once past [store] retention, by table (outbox, inputs).",
            "table",
        )?;
        let store_housekeeping_failures = counter(
            "tocsin_store_housekeeping_failures_total",
            "Housekeeping deletions that failed, by table (outbox, inputs): with the store up, a \
             damaged table (the log's \"store housekeeping failed\" says why).",
            "table",
        )?;
        let tracker_notices = counter(
            "tocsin_tracker_notices_total",
            "Inputs and timers the tracker counted instead of acting on them (duplicate, stale_event, \
             pending_document_expired, ack_unmatched, ...), by notice.",
            "notice",
        )?;
        let restore_skipped = counter(
            "tocsin_restore_skipped_total",
            "Stored state records the restore at start could not use and went on without \
             (missing_expectation, bad_record, unknown_namespace): a damaged store; the log names each.",
            "reason",
        )?;
        let http_connections_shed = counter(
            "tocsin_http_connections_shed_total",
            "HTTP connections the listener closed so that others could be served, by reason: \
             idle_at_limit (every place taken, this one idle longest), write_stalled (a client \
             that did not read its answers for the write timeout, or for 5 s when its place was \
             wanted).",
            "reason",
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
        let pipeline_stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_pipeline_stage_seconds",
                "Time a batch spends in each stage of the gateway's pipeline: receive (waiting for input), \
                 process (normalise and apply), commit (the store transaction, beside the next batch), \
                 settle (waiting for the previous commit, then acknowledging).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["stage"],
        )?;
        registry.register(Box::new(pipeline_stage_seconds.clone()))?;
        for stage in labels::PipelineStage::ALL {
            pipeline_stage_seconds.with_label_values(&[stage.as_str()]);
        }
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
        let store_checkpoint_failing = gauge(
            "tocsin_store_checkpoint_failing",
            "1 while a SQLite store's WAL checkpoints fail: the write-ahead log then grows until \
             the disk is full (the log's warning says why they fail).",
        )?;
        let dead_letters = gauge(
            "tocsin_dead_letters",
            "Messages waiting in the dead-letter queue, counted every [amqp] dead_letter_check_secs \
             while connected: inputs tocsin is not tracking until they are redriven.",
        )?;
        let clock_lag_seconds = Gauge::new(
            "tocsin_clock_lag_seconds",
            "Wall clock minus the engine's event-time clock, in seconds.",
        )?;
        registry.register(Box::new(clock_lag_seconds.clone()))?;
        let gauge_vec = |name: &str, help: &str, names: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), names)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let expectations_open = gauge_vec(
            "tocsin_expectations_open",
            "Expectations waiting for their document, deadline not yet passed.",
            &["document_kind", "encounter_kind"],
        )?;
        let expectations_overdue = gauge_vec(
            "tocsin_expectations_overdue",
            "Expectations whose deadline passed with the document still missing.",
            &["document_kind", "encounter_kind"],
        )?;
        let store_file_bytes = gauge_vec(
            "tocsin_store_file_bytes",
            "A SQLite store's files on disk, in bytes, by file (database, wal); read every 15 \
             seconds. No series with PostgreSQL.",
            &["file"],
        )?;
        let build_info = gauge_vec(
            "tocsin_build_info",
            "Always 1; the version of the running tocsin is in the label.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let documents = IntCounterVec::new(
            Opts::new(
                "tocsin_documents_total",
                "Documents that settled an expectation, by whether they were on time.",
            ),
            &labels.document_label_names(&["document_kind", "outcome"]),
        )?;
        registry.register(Box::new(documents.clone()))?;
        let document_delay_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_document_delay_seconds",
                "Time from the encounter's end to the settling document's first issue.",
            )
            .buckets(DELAY_BUCKETS_SECONDS.to_vec()),
            &labels.document_label_names(&["document_kind"]),
        )?;
        registry.register(Box::new(document_delay_seconds.clone()))?;
        // The site and specialty values, when few enough to start at zero
        // (a rule's increase() misses a series' first document otherwise);
        // sites by specialties can be thousands, which start with their
        // first document instead.
        let tails = labels.document_label_tails(MAX_ZERO_TAILS);
        for d in labels::document_kinds() {
            for e in labels::encounter_kinds() {
                expectations_open.with_label_values(&[d.as_str(), e.as_str()]);
                expectations_overdue.with_label_values(&[d.as_str(), e.as_str()]);
            }
            for tail in &tails {
                for o in labels::OUTCOMES {
                    let mut values = vec![d.as_str(), o];
                    values.extend(tail.iter().copied());
                    documents.with_label_values(&values);
                }
                let mut values = vec![d.as_str()];
                values.extend(tail.iter().copied());
                document_delay_seconds.with_label_values(&values);
            }
        }
        for k in labels::alert_kinds() {
            alerts_emitted.with_label_values(&[k.as_str()]);
        }
        for c in tocsin_event::WarningCode::ALL {
            event_warnings.with_label_values(&[c.as_str()]);
        }
        for f in labels::FORMATS {
            messages_received.with_label_values(&[f]);
        }
        // At zero from the start: `TocsinNoDischarges` compares the increase
        // of `type="encounter_ended"` with the input's, and a series that
        // does not exist has no increase to compare. A gateway restarted
        // after its ADT route lost the discharges never had one, and the
        // rule could not fire.
        for t in labels::event_types() {
            events.with_label_values(&[t.as_str()]);
        }
        // At zero from the start, so that `TocsinDeadLettersGrowing` (a
        // rate) sees the first burst of rejections of a kind.
        for r in tocsin_ingest::IngestError::reason_codes() {
            messages_rejected.with_label_values(&[r]);
        }
        for r in labels::DELIVERY_RESULTS {
            deliveries.with_label_values(&[r]);
        }
        for t in labels::PRUNED_TABLES {
            store_pruned_rows.with_label_values(&[t]);
            store_housekeeping_failures.with_label_values(&[t]);
        }
        for (notice, _) in tocsin_tracker::Counters::default().named() {
            tracker_notices.with_label_values(&[notice]);
        }
        for r in labels::RESTORE_SKIPS {
            restore_skipped.with_label_values(&[r]);
        }
        for r in super::ShedReason::ALL {
            http_connections_shed.with_label_values(&[r.as_str()]);
        }
        Ok(Self {
            registry,
            messages_received,
            messages_rejected,
            events,
            event_warnings,
            alerts_emitted,
            deliveries,
            processing_seconds,
            batch_size,
            pipeline_stage_seconds,
            outbox_pending,
            clock_lag_seconds,
            engine_clock_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            amqp_connected,
            store_up,
            store_file_bytes,
            store_checkpoint_failing,
            dead_letters,
            store_pruned_rows,
            store_housekeeping_failures,
            tracker_notices,
            restore_skipped,
            http_connections_shed,
            expectations_open,
            expectations_overdue,
            documents,
            document_delay_seconds,
            labels,
        })
    }
}

/// Most site and specialty combinations whose per-document series start
/// at zero: each is a counter per outcome and a histogram per document kind.
const MAX_ZERO_TAILS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn render(m: &Metrics) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&m.registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn series_with_known_labels_exist_before_any_event() {
        let text = render(&Metrics::with_labels(MetricLabels::default()).unwrap());
        for series in [
            "tocsin_expectations_open{document_kind=\"discharge_summary\",encounter_kind=\"inpatient\"} 0",
            "tocsin_expectations_overdue{document_kind=\"clinic_letter\",encounter_kind=\"outpatient\"} 0",
            "tocsin_documents_total{document_kind=\"discharge_summary\",outcome=\"late\"} 0",
            "tocsin_document_delay_seconds_bucket{document_kind=\"clinic_letter\",le=\"2419200\"} 0",
            "tocsin_alerts_emitted_total{kind=\"overdue\"} 0",
            "tocsin_events_total{type=\"encounter_ended\"} 0",
            "tocsin_events_total{type=\"delivery_failed\"} 0",
            "tocsin_tracker_notices_total{notice=\"stale_event\"} 0",
            "tocsin_event_warnings_total{code=\"invalid_nhs_number\"} 0",
            "tocsin_messages_rejected_total{reason=\"missing_field\"} 0",
            "tocsin_messages_rejected_total{reason=\"malformed_json\"} 0",
            "tocsin_messages_rejected_total{reason=\"xml_dtd_refused\"} 0",
            "tocsin_messages_rejected_total{reason=\"unrecognised_format\"} 0",
            "tocsin_build_info{version=\"",
        ] {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
        for le in [
            "3600", "21600", "86400", "172800", "604800", "864000", "1209600",
        ] {
            assert!(
                text.contains(&format!("document_kind=\"other\",le=\"{le}\"")),
                "bucket {le}"
            );
        }
    }

    #[test]
    fn site_label_only_when_configured() {
        let plain = render(&Metrics::with_labels(MetricLabels::default()).unwrap());
        assert!(!plain.contains("site="));
        let m = Metrics::with_labels(MetricLabels {
            site_label: true,
            sites: vec!["RXX01".into()],
            ..MetricLabels::default()
        })
        .unwrap();
        m.documents
            .with_label_values(&["discharge_summary", "on_time", "RXX01"])
            .inc();
        let text = render(&m);
        assert!(text.contains("outcome=\"on_time\",site=\"RXX01\"} 1"));
        // The listed site, `other` and `unknown` start at zero, so that a
        // rule's increase() sees a series' first document.
        for site in ["RXX01", "other", "unknown"] {
            let series =
                format!("document_kind=\"clinic_letter\",outcome=\"late\",site=\"{site}\"}} 0");
            assert!(text.contains(&series), "missing {series} in\n{text}");
        }
        assert!(text.contains("document_kind=\"clinic_letter\",site=\"other\",le=\"3600\"} 0"));
    }

    #[test]
    fn too_many_site_and_specialty_combinations_start_with_their_first_document() {
        let m = Metrics::with_labels(MetricLabels {
            site_label: true,
            sites: (0..10).map(|i| format!("S{i}")).collect(),
            specialty_label: true,
            specialties: (0..10).map(|i| format!("{i}00")).collect(),
        })
        .unwrap();
        assert!(!render(&m).contains("tocsin_documents_total{"));
    }
}
