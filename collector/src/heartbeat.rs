//! Heartbeats: the collector's health, written every few seconds into the buffer and
//! forwarded to the `collector_heartbeats` hypertable like events.
//!
//! Invariant: a heartbeat produced while the database is unreachable is kept in the buffer's
//! `heartbeats` tree and lands later, so the fleet's history has no hole during an outage.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{buffer::Buffer, config::Config, event, metrics::Metrics, state::ForwardState};

/// Pending heartbeats kept at most (about 11 days at the default 10 s interval).
pub const MAX_PENDING: u64 = 100_000;

/// One heartbeat; field names are the columns of `collector_heartbeats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    pub collector_id: String,
    pub region: String,
    pub version: String,
    /// RFC 3339.
    pub at: String,
    pub started_at: String,
    pub buffered_events: u64,
    pub buffered_bytes: u64,
    pub buffer_limit_bytes: u64,
    pub buffer_disk_bytes: u64,
    pub oldest_buffered_age_seconds: f64,
    pub accepted_total: u64,
    pub forwarded_total: u64,
    pub rejected_total: u64,
    pub quarantined_total: u64,
    pub quarantined_events: u64,
    pub forward_rate: f64,
    pub last_error: Option<String>,
    /// `up`, `down`, `config_error`, `paused` or `disabled` (no database configured).
    pub database_state: String,
    pub forwarding_paused: bool,
    /// Buffered records already committed, kept until every standby has them (not a
    /// column of `collector_heartbeats`: the insert ignores it).
    #[serde(default)]
    pub held_for_standbys: u64,
}

impl Heartbeat {
    pub fn collect(
        config: &Config,
        buffer: &Buffer,
        metrics: &Metrics,
        state: &ForwardState,
    ) -> Heartbeat {
        let stats = buffer.stats();
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        Heartbeat {
            collector_id: config.collector_id.clone(),
            region: config.region.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            at: rfc(OffsetDateTime::now_utc()),
            started_at: rfc(event::from_micros(metrics.started_at_us())),
            buffered_events: stats.events,
            buffered_bytes: stats.bytes,
            buffer_limit_bytes: stats.limit_bytes,
            buffer_disk_bytes: stats.disk_bytes,
            oldest_buffered_age_seconds: stats
                .oldest_received_at_us
                .map(|us| event::age(us).as_secs_f64())
                .unwrap_or(0.0),
            accepted_total: metrics.events_accepted.get(),
            forwarded_total: state.forwarded(),
            rejected_total: metrics.events_rejected_total(),
            quarantined_total: state.quarantined(),
            quarantined_events: stats.quarantined_events,
            forward_rate: state.rate(),
            last_error: state.last_error(),
            database_state: if config.database_url.is_none() {
                "disabled".into()
            } else {
                state.database_state().into()
            },
            forwarding_paused: state.paused(),
            held_for_standbys: state.held(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Writes one heartbeat into the buffer every `heartbeat_interval_secs` until `stop`.
pub async fn run(
    config: Config,
    buffer: Buffer,
    metrics: std::sync::Arc<Metrics>,
    state: std::sync::Arc<ForwardState>,
    mut stop: crate::shutdown::Shutdown,
) {
    let period = std::time::Duration::from_secs(config.heartbeat_interval_secs.max(1));
    let mut tick = tokio::time::interval(period);
    loop {
        if stop.or(tick.tick()).await.is_none() {
            return;
        }
        let hb = Heartbeat::collect(&config, &buffer, &metrics, &state);
        if buffer.stats().pending_heartbeats < MAX_PENDING {
            match serde_json::to_vec(&hb) {
                Ok(json) => {
                    if let Err(e) = buffer.push_heartbeat(&json) {
                        tracing::warn!(error = %e, "could not store a heartbeat");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not encode a heartbeat"),
            }
        }
        state.wake();
    }
}
