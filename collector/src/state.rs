//! Forwarding and database health, shared by the stages and the side rails that report it:
//! ingest (readiness), admin (pause/resume, `/v1/buffer`), heartbeats and `collector drain`.
//!
//! It lives beside the pipeline, not inside a stage: the forward stage writes it, the others
//! read it, and this module imports no stage.
//!
//! Invariant: every field is an atomic or behind a short lock; reading it never waits on
//! the database or the disk.

use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
    Mutex,
};

use tokio::sync::Notify;

/// What the last database operation said about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DbState {
    /// Nothing tried yet.
    Connecting = 0,
    Up = 1,
    /// Unreachable, restarting, overloaded: a transient error.
    Down = 2,
    /// Credentials, permissions or schema are wrong.
    ConfigError = 3,
}

impl DbState {
    fn from_u8(v: u8) -> DbState {
        match v {
            1 => DbState::Up,
            2 => DbState::Down,
            3 => DbState::ConfigError,
            _ => DbState::Connecting,
        }
    }
}

/// Forwarding state: paused flag, database health, totals, recent rate, last error.
pub struct ForwardState {
    paused: AtomicBool,
    db: AtomicU8,
    forwarded: AtomicU64,
    held: AtomicU64,
    quarantined: AtomicU64,
    applied: AtomicU64,
    queued: AtomicU64,
    rate_bits: AtomicU64,
    last_error: Mutex<Option<String>>,
    wake: Notify,
}

impl ForwardState {
    pub fn new(paused: bool) -> ForwardState {
        ForwardState {
            paused: AtomicBool::new(paused),
            db: AtomicU8::new(DbState::Connecting as u8),
            forwarded: AtomicU64::new(0),
            held: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            rate_bits: AtomicU64::new(0f64.to_bits()),
            last_error: Mutex::new(None),
            wake: Notify::new(),
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.wake.notify_waiters();
    }

    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    pub fn database_up(&self) -> bool {
        self.db() == DbState::Up
    }

    pub fn db(&self) -> DbState {
        DbState::from_u8(self.db.load(Ordering::Relaxed))
    }

    /// Sets the database state; returns the previous one.
    pub fn set_db(&self, state: DbState) -> DbState {
        DbState::from_u8(self.db.swap(state as u8, Ordering::Relaxed))
    }

    /// `paused`, `up`, `down`, `config_error` or `connecting`, as heartbeats report it.
    pub fn database_state(&self) -> &'static str {
        if self.paused() {
            return "paused";
        }
        match self.db() {
            DbState::Up => "up",
            DbState::Down => "down",
            DbState::ConfigError => "config_error",
            DbState::Connecting => "connecting",
        }
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    /// Records committed but kept in the buffer until every standby has them.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub fn set_held(&self, n: u64) {
        self.held.store(n, Ordering::Relaxed);
    }

    pub fn add_forwarded(&self, n: u64) {
        self.forwarded.fetch_add(n, Ordering::Relaxed);
    }

    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    pub fn add_quarantined(&self, n: u64) {
        self.quarantined.fetch_add(n, Ordering::Relaxed);
    }

    /// Queued events this process applied (`forward.maintenance = "deferred"`).
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    pub fn add_applied(&self, n: u64) {
        self.applied.fetch_add(n, Ordering::Relaxed);
    }

    /// The maintenance queue's depth when last read (deferred mode; 0 otherwise).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn set_queued(&self, n: u64) {
        self.queued.store(n, Ordering::Relaxed);
    }

    /// Events per second forwarded over the last ten seconds.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    pub fn set_rate(&self, rate: f64) {
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn set_error(&self, e: String) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e);
        }
    }

    /// Wakes an idle dispatcher (new data, resume, heartbeat).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Completes at the next [`ForwardState::wake`].
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}
