//! The durable write-ahead buffer between ingest and the database, on sled.
//!
//! # Design
//!
//! - **Trees.** `records` holds one record per accepted request ([`crate::record`]) under an
//!   8-byte big-endian key from sled's `generate_id`, so keys only grow (also across restarts,
//!   recovered without a scan) and iteration order is arrival order. Taking a key and
//!   inserting under it happen under one lock ([`Buffer::insert_record`]), so records appear
//!   in the tree in key order: the forwarder reads forward from a cursor, and a record
//!   inserted under a key below a record it has already read would never be forwarded until
//!   a restart (a bug the end-to-end benchmark found: one record of 50 events stayed
//!   buffered). `quarantine` holds events
//!   the database refused, with the error. `heartbeats` holds heartbeats waiting to be sent.
//! - **Group commit.** [`Buffer::append`] inserts without flushing, then waits for the shared
//!   flusher task. The flusher notes how many inserts have completed, runs one `flush()`, and
//!   then releases every writer whose insert came before that note. Many requests share one
//!   flush, so throughput is not capped by the disk's ~250 flushes per second.
//! - **Durability.** sled's `flush()` uses `sync_file_range` on Linux: a returned append
//!   survives a process kill, not necessarily a power loss. With [`Durability::Fsync`] the
//!   flusher also `fsync`s the store's files before releasing writers.
//! - **Limits.** Counts and logical bytes of buffered records are kept in memory (computed
//!   from the record headers at open) and checked before every append: past
//!   `max_bytes` appends fail with [`BufferError::Full`] and nothing already stored is touched.
//!
//! # Invariant
//!
//! `append` returns `Ok` only once the record is flushed; a record leaves `records` only
//! through [`Buffer::remove`] (after the database committed it) or [`Buffer::quarantine`];
//! once a reader has seen key K, no record with a key below K can appear.

use std::{
    fs::File,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use thiserror::Error;
use tokio::sync::{watch, Notify};

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

/// The group-commit state shared between writers and the flusher task.
struct GroupCommit {
    /// Number of inserts that have completed (a writer's ticket is this value after its insert).
    inserted: AtomicU64,
    /// Highest tickets covered by a successful flush and by a failed one. A writer is
    /// acknowledged when a successful flush covers its ticket; a failed flush covering it (and
    /// no later success) fails the request.
    flushed: watch::Sender<Flushed>,
    wake: Notify,
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
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                failed: AtomicBool::new(false),
            },
            limit: cfg.max_bytes,
            full: AtomicBool::new(false),
            durability: cfg.durability,
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

    /// Starts the flusher task. Must be called once, inside a Tokio runtime, before `append`.
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.flusher().await })
    }

    /// Stores `record` and returns once it is flushed (group commit). Fails without storing
    /// when the buffer is over its limit.
    pub async fn append(&self, record: &Record) -> Result<u64, BufferError> {
        let bytes = record.encode()?;
        let inner = &self.inner;
        let used = inner.counters.bytes.load(Ordering::Relaxed);
        if inner.full.load(Ordering::Relaxed) && used > inner.limit / 10 * 9 {
            return Err(BufferError::Full {
                bytes: used,
                limit: inner.limit,
            });
        }
        if used + bytes.len() as u64 > inner.limit {
            inner.full.store(true, Ordering::Relaxed);
            return Err(BufferError::Full {
                bytes: used,
                limit: inner.limit,
            });
        }
        inner.full.store(false, Ordering::Relaxed);
        if inner.commit.closed.load(Ordering::Acquire) {
            return Err(BufferError::Closed);
        }
        let key = self.insert_record(&bytes).inspect_err(|_| {
            // A store that cannot take an insert (full disk) is not ready either; the next
            // successful flush clears this.
            inner.commit.failed.store(true, Ordering::Release);
        })?;
        inner
            .counters
            .add(1, record.events.len() as u64, bytes.len() as u64);
        let ticket = inner.commit.inserted.fetch_add(1, Ordering::SeqCst) + 1;
        inner.commit.wake.notify_one();
        let mut rx = inner.commit.flushed.subscribe();
        let state = *rx
            .wait_for(|f| f.ok >= ticket || f.failed >= ticket)
            .await
            .map_err(|_| BufferError::Closed)?;
        if state.ok >= ticket {
            Ok(key)
        } else {
            // The record is in the tree and may still become durable, but the client is not
            // told so and will resend; a client-supplied event_id makes that harmless.
            Err(BufferError::Io(std::io::Error::other(
                "buffer flush failed",
            )))
        }
    }

    /// Stores a record synchronously and flushes (operator import; no flusher needed).
    pub fn append_blocking(&self, record: &Record) -> Result<u64, BufferError> {
        let bytes = record.encode()?;
        let key = self.insert_record(&bytes)?;
        self.inner
            .counters
            .add(1, record.events.len() as u64, bytes.len() as u64);
        Ok(key)
    }

    /// Flushes everything written so far (sled flush, plus fsync in strict mode).
    pub fn flush(&self) -> Result<(), BufferError> {
        self.inner.flush_once()
    }

    /// Reads up to `max_events` events' worth of records with keys `>= from`, oldest first
    /// (always at least one record if any exists). Damaged records are skipped and counted.
    pub fn read_from(&self, from: u64, max_events: usize) -> Result<Vec<Stored>, BufferError> {
        let mut out = Vec::new();
        let mut events = 0usize;
        for item in self.inner.records.range(from.to_be_bytes()..) {
            let (k, v) = item?;
            let key = key_of(&k);
            match Record::decode(&v) {
                Ok(record) => {
                    events += record.events.len();
                    out.push(Stored {
                        key,
                        bytes: v.len(),
                        record,
                    });
                }
                Err(e) => {
                    // Its header was fine at start-up, its body is not: set it aside now so
                    // it neither blocks forwarding nor counts as buffered.
                    tracing::error!(key, error = %e, "damaged buffer record: set aside in the buffer's `damaged` tree (see `collector buffer verify`)");
                    self.inner.damaged.insert(&k, &v)?;
                    self.inner.records.remove(&k)?;
                    let events = record::header(&v).map(|h| h.events as u64).unwrap_or(0);
                    self.inner.counters.sub(1, events, v.len() as u64);
                    self.inner.counters.damaged.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if events >= max_events {
                break;
            }
        }
        Ok(out)
    }

    /// Iterates every record (operator commands): key, raw bytes.
    pub fn iter_raw(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), BufferError>> + '_ {
        self.inner
            .records
            .iter()
            .map(|r| r.map(|(k, v)| (key_of(&k), v)).map_err(BufferError::from))
    }

    /// Removes forwarded records. Not flushed here: if the removal is lost in a crash the
    /// records are forwarded again, and `ON CONFLICT DO NOTHING` makes that harmless.
    pub fn remove(&self, stored: &[Stored]) -> Result<(), BufferError> {
        let mut batch = sled::Batch::default();
        let (mut events, mut bytes) = (0u64, 0u64);
        for s in stored {
            batch.remove(&s.key.to_be_bytes());
            events += s.record.events.len() as u64;
            bytes += s.bytes as u64;
        }
        self.inner.records.apply_batch(batch)?;
        self.inner.counters.sub(stored.len() as u64, events, bytes);
        Ok(())
    }

    /// Records set aside as damaged: key, raw bytes (for `verify`).
    pub fn damaged(&self) -> Result<Vec<(u64, Vec<u8>)>, BufferError> {
        self.inner
            .damaged
            .iter()
            .map(|r| {
                r.map(|(k, v)| (key_of(&k), v.to_vec()))
                    .map_err(BufferError::from)
            })
            .collect()
    }

    /// Stores raw bytes as a record, unvalidated and unflushed. For fault-injection tests
    /// and recovery tools only: the forwarder skips what does not decode.
    #[doc(hidden)]
    pub fn insert_raw(&self, bytes: &[u8]) -> Result<u64, BufferError> {
        let key = self.insert_record(bytes)?;
        self.inner.db.flush()?;
        Ok(key)
    }

    /// Takes the next key and inserts `bytes` under it, both under `insert_order`, so no
    /// reader ever sees a key before every smaller key is in the tree.
    fn insert_record(&self, bytes: &[u8]) -> Result<u64, BufferError> {
        // A poisoned lock only means another insert panicked; the guard protects no data.
        let _order = self
            .inner
            .insert_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = self.inner.db.generate_id()?;
        self.inner.records.insert(key.to_be_bytes(), bytes)?;
        Ok(key)
    }

    /// Removes one raw record by key (operator export --remove).
    pub fn remove_key(&self, key: u64) -> Result<(), BufferError> {
        if let Some(v) = self.inner.records.remove(key.to_be_bytes())? {
            let events = record::header(&v).map(|h| h.events as u64).unwrap_or(0);
            self.inner.counters.sub(1, events, v.len() as u64);
        }
        Ok(())
    }

    /// Moves a refused event (a one-event record) into the quarantine tree with the
    /// database's error, durably. Keyed by event_id, so quarantining a replay twice keeps one.
    pub fn quarantine(&self, record: Record, error: &str) -> Result<(), BufferError> {
        let q = Quarantined {
            error: error.to_string(),
            quarantined_at_us: crate::event::micros(time::OffsetDateTime::now_utc()),
            record,
        };
        let bytes = serde_json::to_vec(&q).map_err(|e| record::RecordError::Body(e.to_string()))?;
        let key = record_key(&q.record);
        self.inner.quarantine.insert(key, bytes)?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// Every quarantined entry with its key.
    pub fn quarantined(&self) -> Result<Vec<(Vec<u8>, Quarantined)>, BufferError> {
        let mut out = Vec::new();
        for item in self.inner.quarantine.iter() {
            let (k, v) = item?;
            match serde_json::from_slice(&v) {
                Ok(q) => out.push((k.to_vec(), q)),
                Err(e) => tracing::warn!(error = %e, "damaged quarantine entry"),
            }
        }
        Ok(out)
    }

    /// Removes quarantined entries by key.
    pub fn remove_quarantined(&self, keys: &[Vec<u8>]) -> Result<(), BufferError> {
        for k in keys {
            self.inner.quarantine.remove(k)?;
        }
        self.inner.db.flush()?;
        Ok(())
    }

    /// Stores a heartbeat (JSON) until it reaches the database.
    pub fn push_heartbeat(&self, json: &[u8]) -> Result<(), BufferError> {
        let key = self.inner.db.generate_id()?;
        self.inner.heartbeats.insert(key.to_be_bytes(), json)?;
        Ok(())
    }

    /// Up to `max` stored heartbeats, oldest first.
    pub fn heartbeats(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, BufferError> {
        self.inner
            .heartbeats
            .iter()
            .take(max)
            .map(|r| {
                r.map(|(k, v)| (key_of(&k), v.to_vec()))
                    .map_err(BufferError::from)
            })
            .collect()
    }

    pub fn remove_heartbeats(&self, keys: &[u64]) -> Result<(), BufferError> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(&k.to_be_bytes());
        }
        self.inner.heartbeats.apply_batch(batch)?;
        Ok(())
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
        self.inner.commit.closed.store(true, Ordering::Release);
        self.inner.commit.wake.notify_one();
        self.inner.flush_once()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl Inner {
    /// Counts records from their headers and sets damaged ones aside into the `damaged`
    /// tree (kept for `collector buffer verify`, never forwarded, never a reason to crash).
    /// Only headers are read here, so start-up stays fast with a large backlog; a record
    /// whose body turns out damaged is set aside when the forwarder reads it.
    fn recount(&self) -> Result<(), BufferError> {
        let (mut n, mut events, mut bytes) = (0u64, 0u64, 0u64);
        let mut damaged = Vec::new();
        for item in self.records.iter() {
            let (k, v) = item?;
            match record::header(&v) {
                Ok(h) => {
                    n += 1;
                    bytes += v.len() as u64;
                    events += h.events as u64;
                }
                Err(e) => {
                    tracing::error!(key = key_of(&k), error = %e, "damaged buffer record at start-up: set aside in the buffer's `damaged` tree (see `collector buffer verify`)");
                    damaged.push((k, v));
                }
            }
        }
        for (k, v) in &damaged {
            self.damaged.insert(k, v)?;
            self.records.remove(k)?;
        }
        if !damaged.is_empty() {
            self.db.flush()?;
        }
        self.counters.add(n, events, bytes);
        self.counters
            .damaged
            .store(self.damaged.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn flusher(self: Arc<Self>) {
        loop {
            let target = self.commit.inserted.load(Ordering::SeqCst);
            let done = {
                let f = *self.commit.flushed.borrow();
                f.ok.max(f.failed)
            };
            if target == done {
                if self.commit.closed.load(Ordering::Acquire) {
                    return;
                }
                self.commit.wake.notified().await;
                continue;
            }
            let me = self.clone();
            let result = tokio::task::spawn_blocking(move || me.flush_once()).await;
            let ok = match result {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    if let Some(suppressed) = FLUSH_FAILED.check() {
                        tracing::error!(error = %e, suppressed, "buffer flush failed; requests in this group get 503");
                    }
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "buffer flush task failed");
                    false
                }
            };
            self.commit.failed.store(!ok, Ordering::Release);
            self.commit.flushed.send_modify(|f| {
                if ok {
                    f.ok = target;
                } else {
                    f.failed = target;
                }
            });
        }
    }

    fn flush_once(&self) -> Result<(), BufferError> {
        let started = Instant::now();
        self.db.flush()?;
        if self.durability == Durability::Fsync {
            for name in ["db", "conf"] {
                let p = self.dir.join(name);
                if p.exists() {
                    File::open(&p)?.sync_all()?;
                }
            }
            File::open(&self.dir)?.sync_all()?;
        }
        self.flush_latency.observe(started.elapsed());
        Ok(())
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

/// A failing disk fails every flush: logged once per interval.
static FLUSH_FAILED: crate::logging::Throttle = crate::logging::Throttle::new();

/// The quarantine key of a one-event record: its event_id.
fn record_key(r: &Record) -> Vec<u8> {
    r.events
        .first()
        .map(|e| e.event_id.as_bytes().to_vec())
        .unwrap_or_default()
}

fn key_of(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = k.len().min(8);
    b[8 - n..].copy_from_slice(&k[..n]);
    u64::from_be_bytes(b)
}

/// How long ago a microsecond timestamp was, for "oldest buffered age".
pub fn age(us: i64) -> Duration {
    let now = crate::event::micros(time::OffsetDateTime::now_utc());
    Duration::from_micros(now.saturating_sub(us).max(0) as u64)
}
