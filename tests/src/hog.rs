//! A real 503 for a client's first attempt: [`InflightHog`] fills the collector's in-flight
//! memory bound (`limits.max_inflight_bytes`) with requests whose declared bodies never
//! come, so every other request waits `limits.inflight_wait_ms` and is answered `503` with
//! `Retry-After` — the collector's own path, no fault injected into it. Releasing the hog
//! frees the bound; a client that retries then lands its events.
//!
//! The hog's requests go to `/v1/validate` (never stored, and not counted among the
//! `track` / `batch` answers [`crate::sdk::requests`] reads), and are answered 400 when
//! their sockets close.
//!
//! Invariant: the bound is full (the collector's `inflight_bytes` gauge says so) when
//! [`InflightHog::hold`] returns, and free again when [`InflightHog::release`] does.

use std::{io::Write, net::TcpStream, time::Duration};

use crate::{browser::wait_until, client, proc::CollectorProc};

/// The collector settings the hog is sized for: 64 KiB bodies, and a bound of exactly one
/// largest request (64 KiB + 5 × 64 KiB + 128 KiB = 512 KiB) that a refused request waits
/// 300 ms for.
pub const HOG_LIMITS: &[(&str, &str)] = &[
    ("COLLECTOR_LIMITS__MAX_BODY_BYTES", "65536"),
    ("COLLECTOR_LIMITS__MAX_DECODED_BYTES", "65536"),
    ("COLLECTOR_LIMITS__MAX_INFLIGHT_BYTES", "524288"),
    ("COLLECTOR_LIMITS__INFLIGHT_WAIT_MS", "300"),
    ("COLLECTOR_LIMITS__HEADER_TIMEOUT_SECS", "60"),
];

const PART: u64 = 65_536;
const BOUND: u64 = 524_288;

/// Open requests holding the whole in-flight bound of a collector started with
/// [`HOG_LIMITS`].
pub struct InflightHog {
    streams: Vec<TcpStream>,
    admin: std::net::SocketAddr,
}

impl InflightHog {
    /// Fills the bound (eight 64 KiB declared bodies); `key` is a configured write key.
    pub fn hold(c: &CollectorProc, key: &str) -> InflightHog {
        let mut streams = Vec::new();
        for _ in 0..BOUND / PART {
            let mut s = TcpStream::connect(c.ingest).expect("connect");
            write!(
                s,
                "POST /v1/validate HTTP/1.1\r\nHost: collector\r\nX-Write-Key: {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: {PART}\r\n\r\n"
            )
            .expect("headers");
            streams.push(s);
        }
        let hog = InflightHog {
            streams,
            admin: c.admin,
        };
        assert!(
            wait_until(Duration::from_secs(10), || hog.in_flight() >= BOUND as f64),
            "the hog fills the bound: {} of {BOUND} bytes",
            hog.in_flight()
        );
        hog
    }

    /// Bytes charged to requests in flight (the collector's gauge).
    pub fn in_flight(&self) -> f64 {
        metric(self.admin, "collector_inflight_bytes")
    }

    /// Closes the hog's requests and waits until the bound is free.
    pub fn release(self) {
        let admin = self.admin;
        drop(self.streams);
        assert!(
            wait_until(Duration::from_secs(10), || metric(
                admin,
                "collector_inflight_bytes"
            ) < PART as f64),
            "the bound is freed"
        );
    }
}

/// The sum of a collector metric's samples (every label set), from its admin `/metrics`.
pub fn metric(admin: std::net::SocketAddr, name: &str) -> f64 {
    let Ok(r) = client::get(admin, "/metrics") else {
        return f64::NAN;
    };
    r.body
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Requests the in-flight bound refused (`503 busy`) so far.
pub fn refused(c: &CollectorProc) -> f64 {
    metric(c.admin, "collector_inflight_refused_total")
}
