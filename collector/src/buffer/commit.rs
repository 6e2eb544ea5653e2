//! Appends and group commit: a request inserts its record, then waits for the shared
//! flusher thread, which notes how many inserts have completed, runs one flush, and releases
//! every writer whose insert came before that note.
//!
//! The flusher is a thread of its own, not a task that hands each flush to Tokio's blocking
//! pool: on a busy machine every hand-off between threads waits for the scheduler, and a
//! flush already crosses two (to sled's writer thread and back). It sleeps on a condition
//! variable only when nothing is waiting, so a writer pays for a wake-up only then.
//!
//! The group-commit window (`buffer.commit_window_us`): a flush starts at most that long
//! after the previous one started. Under load, the writers that arrive meanwhile share the
//! next flush (fewer flushes, each one's CPU shared by more requests); an idle buffer
//! flushes at once.
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

use super::{Buffer, BufferError, GroupCommit, Inner};

/// A failing disk fails every flush: logged once per interval.
static FLUSH_FAILED: crate::logging::Throttle = crate::logging::Throttle::new();

impl Buffer {
    /// Starts the flusher thread. Must be called once, inside a Tokio runtime, before
    /// `append`. The returned task ends when the flusher does (after [`Buffer::close`]).
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("buffer-flusher".into())
            .spawn(move || {
                inner.flusher();
                let _ = done.send(());
            });
        if let Err(e) = spawned {
            // No thread to be had: the blocking pool runs the same loop.
            tracing::warn!(error = %e, "cannot start the flusher thread; using the blocking pool");
            let inner = self.inner.clone();
            return tokio::task::spawn_blocking(move || inner.flusher());
        }
        tokio::spawn(async move {
            let _ = ended.await;
        })
    }

    /// Stores `record` and returns once it is flushed (group commit). Fails without storing
    /// when the buffer is over its limit.
    pub async fn append(&self, record: &Record) -> Result<u64, BufferError> {
        self.append_encoded(&record.encode()?).await
    }

    /// [`Buffer::append`] for a record already encoded ([`Record::encode`]), so the caller
    /// can free the events before the flush wait and keep the bytes (the live tail does).
    pub async fn append_encoded(&self, bytes: &[u8]) -> Result<u64, BufferError> {
        let events = u64::from(crate::record::header(bytes)?.events);
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
        let key = self.insert_record(bytes).inspect_err(|_| {
            // A store that cannot take an insert (full disk) is not ready either; the next
            // successful flush clears this.
            inner.commit.failed.store(true, Ordering::Release);
        })?;
        inner.counters.add(1, events, bytes.len() as u64);
        let ticket = inner.commit.inserted.fetch_add(1, Ordering::SeqCst) + 1;
        inner.commit.wake();
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

impl GroupCommit {
    /// Wakes the flusher if it sleeps. Called after `inserted` grew (or `closed` was set).
    pub(super) fn wake(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            let _guard = self.sleep.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_one();
        }
    }
}

impl Inner {
    /// The flusher loop (its own thread): flush whenever inserts are waiting, release them,
    /// sleep when none are; return once closed with nothing left to flush.
    pub(super) fn flusher(self: Arc<Self>) {
        let commit = &self.commit;
        let mut last_start: Option<Instant> = None;
        loop {
            let target = commit.inserted.load(Ordering::SeqCst);
            let done = {
                let f = *commit.flushed.borrow();
                f.ok.max(f.failed)
            };
            if target == done {
                if commit.closed.load(Ordering::Acquire) {
                    return;
                }
                // Announce the sleep before the last look: a writer that inserts after that
                // look sees `sleeping` and wakes us (both sides are SeqCst).
                let guard = commit.sleep.lock().unwrap_or_else(|p| p.into_inner());
                commit.sleeping.store(true, Ordering::SeqCst);
                if commit.inserted.load(Ordering::SeqCst) == done
                    && !commit.closed.load(Ordering::Acquire)
                {
                    let _ = commit
                        .wake
                        .wait_timeout(guard, std::time::Duration::from_millis(100));
                }
                commit.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            // The group-commit window: a flush starts at most `commit_window` after the
            // previous one started; the writers arriving meanwhile join this group.
            if let Some(wait) = last_start.and_then(|t| self.commit_window.checked_sub(t.elapsed()))
            {
                if !commit.closed.load(Ordering::Acquire) {
                    std::thread::sleep(wait);
                }
            }
            let target = commit.inserted.load(Ordering::SeqCst);
            last_start = Some(Instant::now());
            let ok = match self.flush_once() {
                Ok(()) => true,
                Err(e) => {
                    if let Some(suppressed) = FLUSH_FAILED.check() {
                        tracing::error!(error = %e, suppressed, "buffer flush failed; requests in this group get 503");
                    }
                    false
                }
            };
            commit.failed.store(!ok, Ordering::Release);
            commit.flushed.send_modify(|f| {
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
