//! The durable write-ahead buffer between ingest and the database, on sled.
//!
//! # Design
//!
//! - **Trees.** `records` holds one record per accepted request ([`crate::record`]) under an
//!   8-byte big-endian key from sled's `generate_id`, so keys only grow (also across restarts,
//!   recovered without a scan) and iteration order is arrival order. Taking a key and
//!   inserting under it happen under one lock (`Buffer::insert_record`), so records appear
//!   in the tree in key order: the forwarder reads forward from a cursor, and a record
//!   inserted under a key below a record it has already read would never be forwarded until
//!   a restart (a bug the end-to-end benchmark found: one record of 50 events stayed
//!   buffered). `quarantine` holds events
//!   the database refused, with the error. `heartbeats` holds heartbeats waiting to be sent.
//! - **Group commit.** [`Buffer::append`] inserts without flushing, then waits for the shared
//!   flusher thread. The flusher notes how many inserts have completed, runs one `flush()`, and
//!   then releases every writer whose insert came before that note. Many requests share one
//!   flush, so throughput is not capped by the disk's ~250 flushes per second.
//! - **Durability.** sled's `flush()` uses `sync_file_range` on Linux: a returned append
//!   survives a process kill, not necessarily a power loss. With [`Durability::Fsync`] the
//!   flusher also `fsync`s the store's files before releasing writers.
//! - **Limits.** Counts and logical bytes of buffered records are kept in memory (computed
//!   from the record headers at open) and checked before every append: past
//!   `max_bytes` appends fail with [`BufferError::Full`] and nothing already stored is touched.
//!
//! # Files
//!
//! `mod.rs` (this file): the store, its trees and facts; `commit.rs`: appends and group
//! commit; `records.rs`: reading, removing and recovering records; `side.rs`: the quarantine
//! and heartbeat trees.
//!
//! # Invariant
//!
//! `append` returns `Ok` only once the record is flushed; a record leaves `records` only
//! through [`Buffer::remove`] (after the database committed it) or [`Buffer::quarantine`];
//! once a reader has seen key K, no record with a key below K can appear.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use thiserror::Error;
use tokio::sync::watch;

mod commit;
mod records;
mod side;

use crate::{
    config::{BufferConfig, Durability},
    record::{self, Record},
};

#[derive(Debug, Error)]
pub enum BufferError {
    #[error("the buffer directory {path} is in use by another process (a running collector?); stop it first")]
    Locked { path: PathBuf },
    #[error("cannot open the buffer at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("the buffer is full ({bytes} of {limit} bytes)")]
    Full { bytes: u64, limit: u64 },
    #[error("buffer storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("buffer storage error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Record(#[from] record::RecordError),
    #[error("the buffer is shutting down")]
    Closed,
}

/// Facts about the buffer, for /v1/buffer, /metrics, heartbeats and `buffer stats`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub records: u64,
    pub events: u64,
    pub bytes: u64,
    pub limit_bytes: u64,
    pub oldest_received_at_us: Option<i64>,
    pub quarantined_events: u64,
    pub pending_heartbeats: u64,
    pub disk_bytes: u64,
    pub damaged_records: u64,
}

/// A record read back for forwarding, with its key for later removal.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: u64,
    pub bytes: usize,
    pub record: Record,
}

impl Stored {
    /// What removing it takes: its key and its share of the counters.
    pub fn id(&self) -> RecordId {
        RecordId {
            key: self.key,
            events: self.record.events.len() as u32,
            bytes: self.bytes as u32,
        }
    }
}

/// A stored record's key with its share of the counters: all the forwarder keeps of a
/// record it has committed but may not delete yet ([`crate::forward`]'s standby hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId {
    pub key: u64,
    pub events: u32,
    pub bytes: u32,
}

/// An event refused by the database, kept with the reason.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    pub error: String,
    pub quarantined_at_us: i64,
    pub record: Record,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flushed {
    ok: u64,
    failed: u64,
}

struct Counters {
    records: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    damaged: AtomicU64,
}

/// The group-commit state shared between writers and the flusher thread.
struct GroupCommit {
    /// Number of inserts that have completed (a writer's ticket is this value after its insert).
    inserted: AtomicU64,
    /// Highest tickets covered by a successful flush and by a failed one. A writer is
    /// acknowledged when a successful flush covers its ticket; a failed flush covering it (and
    /// no later success) fails the request.
    flushed: watch::Sender<Flushed>,
    /// The flusher sleeps on `wake` (under `sleep`) while nothing waits, with `sleeping` set.
    wake: std::sync::Condvar,
    sleep: std::sync::Mutex<()>,
    sleeping: AtomicBool,
    closed: AtomicBool,
    /// Set while the last flush failed (for readiness).
    failed: AtomicBool,
}

/// The buffer. Cheap to clone; all clones share one store and one flusher.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    records: sled::Tree,
    quarantine: sled::Tree,
    heartbeats: sled::Tree,
    damaged: sled::Tree,
    counters: Counters,
    commit: GroupCommit,
    limit: u64,
    /// Set when an append found the buffer full; cleared once it drains below 90 % of the
    /// limit (hysteresis, so ingest does not flap between 503 and 200 at the edge).
    full: AtomicBool,
    durability: Durability,
    /// See [`commit`]: the shortest time between the starts of two flushes.
    commit_window: std::time::Duration,
    dir: PathBuf,
    flush_latency: crate::metrics::Histogram,
    /// Held from taking a record's key to inserting it (see the module docs: keys appear in
    /// the tree in increasing order).
    insert_order: std::sync::Mutex<()>,
}

impl Buffer {
    /// Opens (or creates) the buffer in `dir`. Damaged records are counted, reported and left
    /// in place for `collector buffer verify/export`; they never stop the collector.
    pub fn open(dir: &Path, cfg: &BufferConfig) -> Result<Buffer, BufferError> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cfg.cache_bytes)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    BufferError::Locked {
                        path: dir.to_path_buf(),
                    }
                }
                _ => BufferError::Open {
                    path: dir.to_path_buf(),
                    source,
                },
            })?;
        let records = db.open_tree("records")?;
        let quarantine = db.open_tree("quarantine")?;
        let heartbeats = db.open_tree("heartbeats")?;
        let damaged = db.open_tree("damaged")?;
        let (flushed, _) = watch::channel(Flushed::default());
        let inner = Inner {
            records,
            quarantine,
            heartbeats,
            damaged,
            counters: Counters {
                records: AtomicU64::new(0),
                events: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                damaged: AtomicU64::new(0),
            },
            commit: GroupCommit {
                inserted: AtomicU64::new(0),
                flushed,
                wake: std::sync::Condvar::new(),
                sleep: std::sync::Mutex::new(()),
                sleeping: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            },
            limit: cfg.max_bytes,
            full: AtomicBool::new(false),
            durability: cfg.durability,
            commit_window: std::time::Duration::from_micros(cfg.commit_window_us),
            dir: dir.to_path_buf(),
            db,
            flush_latency: crate::metrics::Histogram::flush_latency(),
            insert_order: std::sync::Mutex::new(()),
        };
        inner.recount()?;
        Ok(Buffer {
            inner: Arc::new(inner),
        })
    }

    /// Current facts about the buffer. Cheap: counters plus two O(log n) lookups.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let oldest = self
            .inner
            .records
            .first()
            .ok()
            .flatten()
            .and_then(|(_, v)| record::header(&v).ok())
            .map(|h| h.received_at_us);
        Stats {
            records: c.records.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            limit_bytes: self.inner.limit,
            oldest_received_at_us: oldest,
            quarantined_events: self.quarantined_events(),
            pending_heartbeats: self.inner.heartbeats.len() as u64,
            disk_bytes: self.inner.db.size_on_disk().unwrap_or(0),
            damaged_records: c.damaged.load(Ordering::Relaxed),
        }
    }

    fn quarantined_events(&self) -> u64 {
        // Quarantine is small by construction (only refused rows); scanning it is fine.
        self.inner.quarantine.len() as u64
    }

    /// Whether an append of a typical size would be accepted now.
    pub fn accepting(&self) -> bool {
        let used = self.inner.counters.bytes.load(Ordering::Relaxed);
        let full = self.inner.full.load(Ordering::Relaxed) && used > self.inner.limit / 10 * 9;
        !full && used < self.inner.limit && !self.inner.commit.failed.load(Ordering::Relaxed)
    }

    pub fn flush_latency(&self) -> &crate::metrics::Histogram {
        &self.inner.flush_latency
    }

    /// Stops the flusher after a last flush; later appends fail with [`BufferError::Closed`].
    pub fn close(&self) -> Result<(), BufferError> {
        self.inner.commit.closed.store(true, Ordering::SeqCst);
        self.inner.commit.wake();
        self.inner.flush_once()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Counters {
    fn add(&self, records: u64, events: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn sub(&self, records: u64, events: u64, bytes: u64) {
        let dec = |a: &AtomicU64, n: u64| {
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        };
        dec(&self.records, records);
        dec(&self.events, events);
        dec(&self.bytes, bytes);
    }
}

fn key_of(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[8 - n..].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}
