//! Appends and group commit: a request inserts its record, then waits for the shared
//! flusher task, which notes how many inserts have completed, runs one flush, and releases
//! every writer whose insert came before that note.
//!
//! Invariant: [`Buffer::append`] returns `Ok` only once a successful flush covers its
//! insert; a failed flush (or insert) fails the request and marks the buffer not ready
//! until the next successful flush.

use std::{
    fs::File,
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use crate::{config::Durability, record::Record};

use super::{Buffer, BufferError, Inner};

/// A failing disk fails every flush: logged once per interval.
static FLUSH_FAILED: crate::logging::Throttle = crate::logging::Throttle::new();

impl Buffer {
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
}

impl Inner {
    pub(super) async fn flusher(self: Arc<Self>) {
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

    pub(super) fn flush_once(&self) -> Result<(), BufferError> {
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
