//! The sections of the collector's configuration (`[limits]`, `[buffer]`, `[forward]`,
//! `[geo]`, `[tls]`), each with its defaults; [`super::Config`] holds one of each and
//! validates them after loading.
//!
//! Invariant: every default here is the value `deploy/collector.toml` documents.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum request body, as sent (compressed) — larger gets 413.
    pub max_body_bytes: usize,
    /// Maximum body after gzip decoding — larger gets 413.
    pub max_decoded_bytes: usize,
    /// Maximum events in one /batch request.
    pub max_batch_events: usize,
    /// Maximum length, in bytes, of any string field except URLs; at most
    /// [`MAX_INDEXED_STRING_BYTES`](super::MAX_INDEXED_STRING_BYTES).
    pub max_string_bytes: usize,
    /// Maximum length, in bytes, of page_url and referrer.
    pub max_url_bytes: usize,
    /// Maximum size of `properties` once serialised.
    pub max_properties_bytes: usize,
    /// Maximum nesting depth of `properties`.
    pub max_properties_depth: usize,
    /// How far in the past an event_time may be (default 2 years: offline queues,
    /// historical imports and long outages' backlogs land).
    pub max_event_age_secs: u64,
    /// How far in the future an event_time may be (clock skew).
    pub max_event_future_secs: u64,
    /// Requests per second allowed per client IP (0 = unlimited).
    pub rate_limit_per_ip: u32,
    /// Maximum concurrent connections on the ingest listener.
    pub max_connections: usize,
    /// Seconds a client may take to send its request headers.
    pub header_timeout_secs: u64,
    /// Memory all requests in flight may hold together: bodies as read, decoded, and parsed
    /// (see [`crate::memory`] for how a request is charged). Past it a request waits up to
    /// `inflight_wait_ms`, then gets 503 + Retry-After. Must hold one largest request.
    pub max_inflight_bytes: u64,
    /// How long a request may wait for room under `max_inflight_bytes`.
    pub inflight_wait_ms: u64,
    /// Segment's bound on one message on the Segment routes, as received (serialised JSON):
    /// a larger one is refused with 400 naming its index.
    pub segment_max_message_bytes: usize,
    /// Segment's bound on one request on the Segment routes (after gzip decoding): a larger
    /// one holding Segment messages gets 413.
    pub segment_max_batch_bytes: usize,
}

/// The sled write-ahead buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Logical bytes of buffered records at which ingest answers 503.
    pub max_bytes: u64,
    /// sled page-cache size. Ingest and forwarding touch the newest records only, so a
    /// small cache costs no throughput (measured 2–64 MiB, README, Benchmarks); sled's
    /// memory beyond it is its I/O buffers and node copies, not this.
    pub cache_bytes: u64,
    /// `flush` (default): a 2xx survives a process kill (sled's flush, sync_file_range on
    /// Linux). `fsync`: additionally fsync the buffer's files before answering, so a 2xx also
    /// survives power loss, at a throughput cost.
    pub durability: Durability,
    /// Group-commit window (µs): a flush starts at most this long after the previous one
    /// started, so that busy ingest shares each flush among more requests (0: flush as
    /// soon as anything waits). An idle buffer flushes at once.
    pub commit_window_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Flush,
    Fsync,
}

/// The forwarder that drains the buffer into TimescaleDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Target events per COPY batch.
    pub batch_events: usize,
    /// How long to wait for a batch to fill before sending a partial one.
    pub linger_ms: u64,
    /// Concurrent COPY connections used when there is a backlog.
    pub connections: usize,
    /// First retry delay after a transient error.
    pub retry_initial_ms: u64,
    /// Cap of the exponential backoff.
    pub retry_max_ms: u64,
    /// Whether forwarding starts paused (resume with POST /v1/forwarding/resume).
    pub start_paused: bool,
    /// Deadline of one host's connect (TCP, TLS and startup together); a multi-host URL's
    /// next host is tried after it.
    pub connect_timeout_secs: u64,
    /// Deadline of one database step (a COPY with its commit, a heartbeat insert); also the
    /// server's `statement_timeout` for the collector's sessions.
    pub operation_timeout_secs: u64,
    /// Longest a committed batch stays in the buffer waiting for a physical standby to
    /// flush it (asynchronous replication; see `forward::hold`); past it the records are
    /// deleted with a warning. 0 deletes right after COMMIT, as without standbys.
    pub standby_hold_secs: u64,
    /// Where the per-batch summaries and rollups are applied ([`Maintenance`]).
    pub maintenance: Maintenance,
    /// Events one deferred application takes from the queue (`maintenance = "deferred"`).
    pub apply_batch_events: usize,
}

/// Where the summaries and rollups of a forwarded batch are computed
/// (`forward.maintenance`; migration 0022).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Maintenance {
    /// In the batch's own transaction: a committed batch is at once in every analysis.
    #[default]
    InBatch,
    /// The batch is committed to the database's queue (`edge_pending`) at COPY speed and
    /// one applier, run by the collectors in turn, moves it into `user_events` with its
    /// maintenance: buffers drain as fast as the database stores rows, the analyses follow.
    Deferred,
}

/// Geography from the client IP ([`crate::geo`], [`crate::http::geo`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// A MaxMind DB file (GeoLite2-City.mmdb, GeoIP2-Country.mmdb, …), read at start-up.
    /// Without it no event is located.
    pub database: Option<PathBuf>,
    /// Proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
}

/// HTTPS on the listeners. Plain HTTP unless `cert` and `key` are set; then the ingest
/// listener speaks only TLS, HTTP/2 and HTTP/1.1 chosen by ALPN. Both files are read again
/// on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (e.g. a `fullchain.pem`).
    pub cert: Option<PathBuf>,
    /// PEM private key of the leaf certificate (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Option<PathBuf>,
    /// Also serve the admin listener over TLS, with the same certificate.
    pub admin: bool,
    /// Seconds a client may take to complete the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 is always offered).
    pub http2: bool,
    /// Requests one HTTP/2 connection may have in progress at once.
    pub http2_max_concurrent_streams: u32,
    /// Seconds between HTTP/2 pings on a connection with no traffic; a ping unanswered for
    /// as long closes the connection (a vanished peer).
    pub http2_keep_alive_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_decoded_bytes: 4 << 20,
            max_batch_events: 1000,
            max_string_bytes: 256,
            max_url_bytes: 2048,
            max_properties_bytes: 16 << 10,
            max_properties_depth: 8,
            max_event_age_secs: 730 * 24 * 3600,
            max_event_future_secs: 3600,
            rate_limit_per_ip: 0,
            max_connections: 4096,
            header_timeout_secs: 10,
            max_inflight_bytes: 64 << 20,
            inflight_wait_ms: 1000,
            segment_max_message_bytes: 32 << 10,
            segment_max_batch_bytes: 500 << 10,
        }
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: 1 << 30,
            cache_bytes: 8 << 20,
            durability: Durability::Flush,
            commit_window_us: 1000,
        }
    }
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            batch_events: 5000,
            linger_ms: 1000,
            connections: 2,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            start_paused: false,
            connect_timeout_secs: 5,
            operation_timeout_secs: 30,
            standby_hold_secs: 300,
            maintenance: Maintenance::InBatch,
            apply_batch_events: 20_000,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            admin: false,
            handshake_timeout_secs: 10,
            http2: true,
            http2_max_concurrent_streams: 100,
            http2_keep_alive_secs: 20,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        match (&self.cert, &self.key) {
            (Some(_), None) => return invalid("tls.cert is set without tls.key: set both"),
            (None, Some(_)) => return invalid("tls.key is set without tls.cert: set both"),
            (None, None) if self.admin => {
                return invalid("tls.admin needs tls.cert and tls.key");
            }
            _ => {}
        }
        if self.handshake_timeout_secs == 0 {
            return invalid("tls.handshake_timeout_secs must be positive");
        }
        if self.http2_max_concurrent_streams == 0 {
            return invalid("tls.http2_max_concurrent_streams must be positive");
        }
        if self.http2_keep_alive_secs == 0 {
            return invalid("tls.http2_keep_alive_secs must be positive");
        }
        Ok(())
    }
}
