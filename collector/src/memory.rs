//! A global bound on the memory that requests in flight hold together.
//!
//! Without it, `max_connections` × (body + decoded body + parsed events) had no bound: 1,500
//! concurrent 0.9 MB `/batch` bodies took a collector to 5.4 GB (issue #18), enough to
//! OOM-kill an edge host, which then restarts into the same burst.
//!
//! # How a request is charged
//!
//! - **Before its body is read**: the declared `Content-Length`, or `max_body_bytes` when
//!   it declares none. The charge comes first, so the bytes of a request that is waiting
//!   stay in the kernel's socket buffer, not in this process.
//! - **While gzip is decoded**: each chunk of output as it is produced.
//! - **Before parsing**: [`PARSE_FACTOR`] × the decoded bytes, for the JSON tree, the
//!   validated events and the encoded record, which live until the answer is sent.
//!
//! So an uncompressed body of `n` bytes holds `(1 + PARSE_FACTOR)·n`, a gzip body of `n`
//! bytes that decodes to `d` holds `n + (1 + PARSE_FACTOR)·d`, and the largest possible
//! request ([`largest_charge`]) must fit in `limits.max_inflight_bytes`.
//!
//! # Invariant
//!
//! The charges of all requests in flight never add up to more than
//! `limits.max_inflight_bytes`. A request that cannot get its next charge within
//! `limits.inflight_wait_ms` of its first is refused (503 + `Retry-After`) and releases
//! everything it held; it never reaches the buffer, so nothing it carried was acknowledged.

use std::{sync::Arc, time::Duration};

use prometheus_client::metrics::gauge::Gauge;
use thiserror::Error;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};

/// Bytes charged for parsing per decoded byte (measured: see the README's memory section).
pub const PARSE_FACTOR: u64 = 4;

/// Gzip output is charged in steps of this many bytes.
pub const DECODE_CHUNK: u64 = 64 << 10;

/// The semaphore counts KiB, so its permits fit in `u32` per request.
const UNIT: u64 = 1024;

/// The most one request can be charged, given `limits.max_body_bytes` and
/// `limits.max_decoded_bytes`.
pub fn largest_charge(max_body_bytes: usize, max_decoded_bytes: usize) -> u64 {
    max_body_bytes as u64 + (1 + PARSE_FACTOR) * max_decoded_bytes as u64 + 2 * DECODE_CHUNK
}

/// No room under the bound in time.
#[derive(Debug, Error)]
#[error("too much request data is in flight ({in_use} of {limit} bytes); retry shortly")]
pub struct Exhausted {
    pub in_use: u64,
    pub limit: u64,
}

/// The bound, shared by every ingest request.
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u64,
    wait: Duration,
    in_use: Gauge,
}

/// What one request holds; released when dropped (after its answer is built).
pub struct Held {
    permits: Vec<OwnedSemaphorePermit>,
    units: u64,
    deadline: Instant,
    in_use: Gauge,
}

impl Budget {
    /// A budget of `max_bytes` (`limits.max_inflight_bytes`) where a request may wait
    /// `wait` (`limits.inflight_wait_ms`) for room; `in_use` is the metric it keeps current.
    pub fn new(max_bytes: u64, wait: Duration, in_use: Gauge) -> Budget {
        let units = (max_bytes / UNIT).max(1);
        let permits = usize::try_from(units)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            sem: Arc::new(Semaphore::new(permits)),
            units: permits as u64,
            wait,
            in_use,
        }
    }

    /// Starts a request's account: its charges must all be granted within the wait.
    pub fn start(&self) -> Held {
        Held {
            permits: Vec::new(),
            units: 0,
            deadline: Instant::now() + self.wait,
            in_use: self.in_use.clone(),
        }
    }

    /// Adds `bytes` to what `held` holds, waiting (until the request's deadline) for room.
    pub async fn charge(&self, held: &mut Held, bytes: u64) -> Result<(), Exhausted> {
        let units = bytes.div_ceil(UNIT);
        if units == 0 {
            return Ok(());
        }
        let exhausted = || Exhausted {
            in_use: self.in_use_bytes(),
            limit: self.units * UNIT,
        };
        let Ok(n) = u32::try_from(units) else {
            return Err(exhausted());
        };
        if held.units + units > self.units {
            return Err(exhausted());
        }
        let acquire = self.sem.clone().acquire_many_owned(n);
        match tokio::time::timeout_at(held.deadline, acquire).await {
            Ok(Ok(permit)) => {
                held.permits.push(permit);
                held.units += units;
                self.in_use.inc_by((units * UNIT) as i64);
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(exhausted()),
        }
    }

    /// Bytes currently held by requests.
    pub fn in_use_bytes(&self) -> u64 {
        self.units
            .saturating_sub(self.sem.available_permits() as u64)
            * UNIT
    }
}

impl Held {
    /// Bytes this request holds.
    pub fn bytes(&self) -> u64 {
        self.units * UNIT
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.in_use.dec_by((self.units * UNIT) as i64);
        self.permits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(bytes: u64, wait_ms: u64) -> Budget {
        Budget::new(bytes, Duration::from_millis(wait_ms), Gauge::default())
    }

    #[tokio::test]
    async fn charges_add_up_to_the_bound_and_are_released_on_drop() {
        let b = budget(100 * UNIT, 50);
        let mut first = b.start();
        b.charge(&mut first, 60 * UNIT).await.expect("room");
        let mut second = b.start();
        assert!(
            b.charge(&mut second, 50 * UNIT).await.is_err(),
            "over the bound"
        );
        assert_eq!(second.bytes(), 0, "a refused charge holds nothing");
        assert_eq!(b.in_use_bytes(), 60 * UNIT);
        drop(first);
        assert_eq!(b.in_use_bytes(), 0);
        let mut third = b.start();
        b.charge(&mut third, 100 * UNIT).await.expect("room again");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_room_freed_before_its_deadline() {
        let b = Arc::new(budget(10 * UNIT, 2_000));
        let mut first = b.start();
        b.charge(&mut first, 10 * UNIT).await.expect("room");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(first);
        });
        let mut second = b.start();
        b.charge(&mut second, 5 * UNIT)
            .await
            .expect("room after the release");
        let _ = release.await;
    }

    #[tokio::test]
    async fn a_charge_larger_than_the_bound_is_refused_at_once() {
        let b = budget(10 * UNIT, 60_000);
        let mut h = b.start();
        let t = std::time::Instant::now();
        assert!(b.charge(&mut h, 11 * UNIT).await.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_largest_request_counts_its_body_decoding_and_parsing() {
        let mib = 1 << 20;
        assert_eq!(
            largest_charge(mib, 4 * mib),
            mib as u64 + 20 * mib as u64 + 2 * DECODE_CHUNK
        );
    }
}
