//! Counters and gauges of the collector, exposed as Prometheus text on the admin listener.
//!
//! Invariant: metrics never carry event payloads or secrets, only counts, sizes and reasons.

use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram},
    registry::Registry,
};

/// The buffer's figures at scrape time (whoever renders reads them from the buffer: this
/// module imports no stage).
#[derive(Debug, Clone, Default)]
pub struct BufferFigures {
    pub events: u64,
    pub bytes: u64,
    pub limit_bytes: u64,
    pub disk_bytes: u64,
    pub quarantined: u64,
    pub oldest_age_secs: f64,
}

/// A latency histogram in seconds.
#[derive(Clone)]
pub struct Histogram(histogram::Histogram);

impl Histogram {
    /// Buckets from 0.25 ms to ~4 s, for buffer flushes and requests.
    pub fn flush_latency() -> Histogram {
        Histogram(histogram::Histogram::new(histogram::exponential_buckets(
            0.000_25, 2.0, 15,
        )))
    }
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Every metric of one collector process.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<EndpointLabels, Counter>,
    pub events_accepted: Counter,
    pub events_rejected: Family<ReasonLabels, Counter>,
    rejected_total: Counter,
    pub events_forwarded: Counter,
    pub events_quarantined: Counter,
    /// Queued events applied by this process (`forward.maintenance = "deferred"`).
    pub events_applied: Counter,
    /// The maintenance queue's depth when last read (deferred mode).
    pub maintenance_queue: Gauge,
    pub forward_errors: Family<ReasonLabels, Counter>,
    pub heartbeats_sent: Counter,
    pub database_up: Gauge,
    pub forwarding_paused: Gauge,
    buffer_events: Gauge,
    buffer_bytes: Gauge,
    buffer_limit: Gauge,
    buffer_disk: Gauge,
    buffer_oldest_age: Gauge<f64, AtomicU64>,
    buffer_quarantined: Gauge,
    pub last_error: std::sync::Mutex<Option<String>>,
    pub forward_rate: Gauge<f64, AtomicU64>,
    /// Bytes held by requests in flight ([`crate::memory`]).
    pub inflight_bytes: Gauge,
    /// Requests refused because the in-flight memory bound was reached.
    pub inflight_refused: Counter,
    /// Geography lookups by result (`found`, `not_found`, `error`).
    geo_lookups: Family<ResultLabels, Counter>,
    log_dropped: Counter,
    log_dropped_seen: AtomicU64,
    started: AtomicI64,
}

impl Metrics {
    pub fn new(flush_latency: &Histogram) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("collector");
        let m = Metrics {
            requests: Family::default(),
            events_accepted: Counter::default(),
            events_rejected: Family::default(),
            rejected_total: Counter::default(),
            events_forwarded: Counter::default(),
            events_quarantined: Counter::default(),
            events_applied: Counter::default(),
            maintenance_queue: Gauge::default(),
            forward_errors: Family::default(),
            heartbeats_sent: Counter::default(),
            database_up: Gauge::default(),
            forwarding_paused: Gauge::default(),
            buffer_events: Gauge::default(),
            buffer_bytes: Gauge::default(),
            buffer_limit: Gauge::default(),
            buffer_disk: Gauge::default(),
            buffer_oldest_age: Gauge::default(),
            buffer_quarantined: Gauge::default(),
            last_error: std::sync::Mutex::new(None),
            forward_rate: Gauge::default(),
            inflight_bytes: Gauge::default(),
            inflight_refused: Counter::default(),
            geo_lookups: Family::default(),
            log_dropped: Counter::default(),
            log_dropped_seen: AtomicU64::new(0),
            started: AtomicI64::new(crate::event::micros(time::OffsetDateTime::now_utc())),
            registry: Registry::default(),
        };
        m.register(&mut registry, flush_latency);
        Arc::new(Metrics { registry, ..m })
    }

    /// Registers every metric under its name and help text.
    fn register(&self, registry: &mut Registry, flush_latency: &Histogram) {
        let m = self;
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {
                registry.register($name, $help, $metric)
            };
        }
        reg!(
            "http_requests",
            "Ingest requests by endpoint and status",
            m.requests.clone()
        );
        reg!(
            "events_accepted",
            "Events acknowledged (durably buffered)",
            m.events_accepted.clone()
        );
        reg!(
            "events_rejected",
            "Events refused, by reason",
            m.events_rejected.clone()
        );
        reg!(
            "events_forwarded",
            "Events committed to TimescaleDB",
            m.events_forwarded.clone()
        );
        reg!(
            "events_quarantined",
            "Events the database refused, kept in quarantine",
            m.events_quarantined.clone()
        );
        reg!(
            "events_applied",
            "Queued events moved into user_events with their maintenance (deferred mode)",
            m.events_applied.clone()
        );
        reg!(
            "maintenance_queue",
            "Events waiting in the database's maintenance queue (deferred mode; an upper bound)",
            m.maintenance_queue.clone()
        );
        reg!(
            "forward_errors",
            "Forwarding errors by class",
            m.forward_errors.clone()
        );
        reg!(
            "heartbeats_sent",
            "Heartbeats written to collector_heartbeats",
            m.heartbeats_sent.clone()
        );
        reg!(
            "database_up",
            "1 when the last database operation succeeded",
            m.database_up.clone()
        );
        reg!(
            "forwarding_paused",
            "1 while forwarding is paused by an operator",
            m.forwarding_paused.clone()
        );
        reg!(
            "buffer_events",
            "Events in the buffer",
            m.buffer_events.clone()
        );
        reg!(
            "buffer_bytes",
            "Logical bytes of buffered records",
            m.buffer_bytes.clone()
        );
        reg!(
            "buffer_limit_bytes",
            "Buffer size at which ingest answers 503",
            m.buffer_limit.clone()
        );
        reg!(
            "buffer_disk_bytes",
            "Bytes the buffer's store uses on disk",
            m.buffer_disk.clone()
        );
        reg!(
            "buffer_oldest_age_seconds",
            "Age of the oldest buffered record",
            m.buffer_oldest_age.clone()
        );
        reg!(
            "buffer_quarantined_records",
            "Entries in quarantine",
            m.buffer_quarantined.clone()
        );
        reg!(
            "forward_rate_events_per_second",
            "Recent forwarding rate",
            m.forward_rate.clone()
        );
        reg!(
            "inflight_bytes",
            "Memory charged to requests in flight (bound: limits.max_inflight_bytes)",
            m.inflight_bytes.clone()
        );
        reg!(
            "inflight_refused",
            "Requests refused (503) because the in-flight memory bound was reached",
            m.inflight_refused.clone()
        );
        reg!(
            "geo_lookups",
            "Client-IP geography lookups by result (found, not_found, error)",
            m.geo_lookups.clone()
        );
        reg!(
            "log_lines_dropped",
            "Log lines lost: the log sink failed (full disk) or its queue was full",
            m.log_dropped.clone()
        );
        reg!(
            "log_lines_suppressed",
            "Repeated log lines held back by rate limiting (summarised in the next line)",
            crate::logging::suppressed_lines().clone()
        );
        reg!(
            "buffer_flush_seconds",
            "Latency of one group-commit flush",
            flush_latency.0.clone()
        );
    }

    pub fn count_request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    pub fn reject(&self, reason: &str, n: u64) {
        self.events_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc_by(n);
        self.rejected_total.inc_by(n);
    }

    /// One geography lookup: `found`, `not_found` or `error`.
    pub fn count_geo_lookup(&self, result: &'static str) {
        self.geo_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Events refused for any reason since start.
    pub fn events_rejected_total(&self) -> u64 {
        self.rejected_total.get()
    }

    pub fn forward_error(&self, class: &str, message: String) {
        self.forward_errors
            .get_or_create(&ReasonLabels {
                reason: class.to_string(),
            })
            .inc();
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(message);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn started_at_us(&self) -> i64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition, with the buffer gauges set from `buffer`.
    pub fn render(&self, buffer: &BufferFigures) -> String {
        self.buffer_events.set(buffer.events as i64);
        self.buffer_bytes.set(buffer.bytes as i64);
        self.buffer_limit.set(buffer.limit_bytes as i64);
        self.buffer_disk.set(buffer.disk_bytes as i64);
        self.buffer_quarantined.set(buffer.quarantined as i64);
        self.buffer_oldest_age.set(buffer.oldest_age_secs);
        let dropped = crate::logging::dropped_lines();
        let seen = self.log_dropped_seen.swap(dropped, Ordering::Relaxed);
        self.log_dropped.inc_by(dropped.saturating_sub(seen));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
