//! The forward stage: drains the buffer into TimescaleDB.
//!
//! # Design
//!
//! A dispatcher reads the oldest records after a cursor and hands batches (≈
//! `forward.batch_events` events, or fewer after `forward.linger_ms`) to `forward.connections`
//! workers, each with its own database connection. A worker writes its batch with
//! [`crate::database::copy::write_batch`] and, only after COMMIT, removes exactly those
//! records from the buffer. Ingest never waits on any of this: it only appends.
//!
//! # Why it retries ([`RetryLogic`])
//!
//! - *Transient* errors (connection refused or lost, server starting or shutting down, too
//!   many connections, serialization failure, deadlock, lock timeout): the same batch is
//!   retried forever with capped exponential backoff and jitter. The buffer grows meanwhile.
//! - *Data* errors (classes 22 and 23: a row the database refuses): the batch is split in
//!   halves, recursively, until the refused rows are alone; each refused row moves to the
//!   quarantine tree with the database's message, everything else lands. Nothing is dropped.
//! - *Configuration* errors (authentication, missing table, permissions): retried at the
//!   maximum backoff, reported as `config_error` in health, metrics and logs.
//!
//! # Invariant
//!
//! Every buffered event ends up exactly once in `user_events` or in quarantine: records are
//! deleted only after their rows are committed (or quarantined), and a replay after any crash
//! is absorbed by `ON CONFLICT (event_id, event_time) DO NOTHING`.

use std::{
    ops::Range,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use rand::Rng;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::Client;

use crate::{
    buffer::{Buffer, Stored},
    config::Config,
    database::{self, classify, copy, ErrorClass},
    heartbeat::Heartbeat,
    metrics::Metrics,
    record::Record,
    shutdown::Shutdown,
};

const DB_UNKNOWN: u8 = 0;
const DB_UP: u8 = 1;
const DB_DOWN: u8 = 2;
const DB_CONFIG: u8 = 3;

/// Forwarding state shared with ingest (readiness), admin (pause/resume) and heartbeats.
pub struct ForwardState {
    paused: AtomicBool,
    db: AtomicU8,
    forwarded: AtomicU64,
    quarantined: AtomicU64,
    rate_bits: AtomicU64,
    last_error: Mutex<Option<String>>,
    wake: Notify,
}

impl ForwardState {
    pub fn new(paused: bool) -> ForwardState {
        ForwardState {
            paused: AtomicBool::new(paused),
            db: AtomicU8::new(DB_UNKNOWN),
            forwarded: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
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
        self.db.load(Ordering::Relaxed) == DB_UP
    }
    pub fn database_state(&self) -> &'static str {
        if self.paused() {
            return "paused";
        }
        match self.db.load(Ordering::Relaxed) {
            DB_UP => "up",
            DB_DOWN => "down",
            DB_CONFIG => "config_error",
            _ => "connecting",
        }
    }
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }
    /// Events per second forwarded over the last ten seconds.
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    /// Wakes an idle dispatcher (new data, resume, heartbeat).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
    fn set_db(&self, state: u8) {
        self.db.store(state, Ordering::Relaxed);
    }
    fn set_error(&self, e: String) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e);
        }
    }
}

/// Capped exponential backoff with jitter; see the module docs for why each class retries.
pub struct RetryLogic {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl RetryLogic {
    pub fn new(initial: Duration, max: Duration) -> RetryLogic {
        RetryLogic {
            initial,
            max,
            next: initial,
        }
    }
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
    /// The delay before the next attempt: half the current step plus up to half again at
    /// random (so a fleet does not reconnect in lockstep), then the step doubles.
    pub fn delay(&mut self, class: ErrorClass) -> Duration {
        if class == ErrorClass::Config {
            self.next = self.max;
        }
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64(rand::thread_rng().gen::<f64>())
    }
}

/// What a forwarder run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until told to stop (`collector serve`).
    Stopped,
    /// Until the buffer is empty, or told to stop (`collector drain`).
    Empty,
}

pub struct Forwarder {
    url: String,
    config: Config,
    buffer: Buffer,
    metrics: Arc<Metrics>,
    state: Arc<ForwardState>,
}

type Queue = Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<Stored>>>>;

impl Forwarder {
    pub fn new(
        url: String,
        config: Config,
        buffer: Buffer,
        metrics: Arc<Metrics>,
        state: Arc<ForwardState>,
    ) -> Forwarder {
        Forwarder {
            url,
            config,
            buffer,
            metrics,
            state,
        }
    }

    /// Runs until `shutdown` fires (serve). Batches in flight are abandoned then: their
    /// records stay in the buffer and a replay is absorbed by the unique key.
    pub async fn run(self, shutdown: Shutdown) {
        self.run_until(shutdown, Until::Stopped).await
    }

    /// Runs until `shutdown` fires or, with [`Until::Empty`], the buffer has been drained.
    /// Returns promptly after the signal whatever the database does (unreachable, hanging
    /// on connect or mid-COPY): every database step is raced against it.
    pub async fn run_until(self, shutdown: Shutdown, until: Until) {
        let stop = shutdown;
        let this = Arc::new(self);
        let workers = this.config.forward.connections.max(1);
        let (tx, rx) = mpsc::channel::<Vec<Stored>>(workers);
        let rx: Queue = Arc::new(tokio::sync::Mutex::new(rx));
        let mut tasks = Vec::new();
        for id in 0..workers {
            let me = this.clone();
            let (rx, stop) = (rx.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { me.worker(id, rx, stop).await }));
        }
        let heartbeats = {
            let me = this.clone();
            let stop = stop.clone();
            tokio::spawn(async move { me.heartbeat_sender(stop, until).await })
        };
        let meter = {
            let me = this.clone();
            let stop = stop.clone();
            tokio::spawn(async move { me.rate_meter(stop).await })
        };
        this.dispatch(tx, stop, until).await;
        for t in tasks {
            let _ = t.await;
        }
        let _ = heartbeats.await;
        meter.abort();
    }

    async fn dispatch(&self, tx: mpsc::Sender<Vec<Stored>>, mut stop: Shutdown, until: Until) {
        let batch_events = self.config.forward.batch_events;
        let linger = Duration::from_millis(self.config.forward.linger_ms);
        let mut cursor = 0u64;
        loop {
            if stop.is_shutdown() {
                return;
            }
            if self.state.paused() {
                tokio::select! {
                    _ = self.state.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.recv() => {}
                }
                continue;
            }
            let mut batch = self.read(cursor, batch_events).await;
            if batch.is_empty() {
                if until == Until::Empty {
                    return;
                }
                tokio::select! {
                    _ = self.state.wake.notified() => {}
                    _ = tokio::time::sleep(linger.min(Duration::from_millis(200))) => {}
                    _ = stop.recv() => {}
                }
                continue;
            }
            let events: usize = batch.iter().map(|s| s.record.events.len()).sum();
            if events < batch_events && until == Until::Stopped {
                // A partial batch waits until its oldest record is `linger` old.
                let oldest = batch[0].record.received_at_us;
                let waited = crate::buffer::age(oldest);
                if waited < linger {
                    if stop.or(tokio::time::sleep(linger - waited)).await.is_none() {
                        return;
                    }
                    batch = self.read(cursor, batch_events).await;
                }
            }
            let Some(last) = batch.last() else { continue };
            cursor = last.key + 1;
            // The workers may all be retrying against an unreachable database: never wait
            // for a free one without watching the signal.
            match stop.or(tx.send(batch)).await {
                Some(Ok(())) => {}
                Some(Err(_)) | None => return,
            }
        }
    }

    async fn read(&self, cursor: u64, max_events: usize) -> Vec<Stored> {
        let buffer = self.buffer.clone();
        match tokio::task::spawn_blocking(move || buffer.read_from(cursor, max_events)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the buffer");
                tokio::time::sleep(Duration::from_secs(1)).await;
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "buffer read task failed");
                Vec::new()
            }
        }
    }

    async fn worker(&self, id: usize, rx: Queue, mut stop: Shutdown) {
        let mut conn: Option<Client> = None;
        loop {
            let next = stop.or(async {
                let mut rx = rx.lock().await;
                rx.recv().await
            });
            let Some(Some(batch)) = next.await else {
                return;
            };
            if !self.forward_batch(id, &mut conn, batch, &mut stop).await {
                return;
            }
        }
    }

    /// Forwards one batch to the end (committed or quarantined). Returns false when it
    /// stopped early because of `stop` (the records stay in the buffer).
    async fn forward_batch(
        &self,
        id: usize,
        conn: &mut Option<Client>,
        batch: Vec<Stored>,
        stop: &mut Shutdown,
    ) -> bool {
        let rows: Vec<copy::Row<'_>> = batch
            .iter()
            .flat_map(|s| {
                s.record.events.iter().map(|event| copy::Row {
                    event,
                    received_at_us: s.record.received_at_us,
                    collector_id: &s.record.collector_id,
                })
            })
            .collect();
        let mut pending: Vec<Range<usize>> = Vec::new();
        pending.push(0..rows.len());
        let mut retry = self.retry_logic();
        while let Some(range) = pending.pop() {
            loop {
                let attempt = stop.or(async {
                    let client = self.connect(conn).await?;
                    copy::write_batch(client, &rows[range.clone()]).await
                });
                let Some(result) = attempt.await else {
                    // Abandoned mid-connect or mid-COPY: the transaction never commits (or,
                    // if it did, the replay is absorbed); the records stay in the buffer.
                    *conn = None;
                    return false;
                };
                match result {
                    Ok(inserted) => {
                        let n = range.len() as u64;
                        self.state.forwarded.fetch_add(n, Ordering::Relaxed);
                        self.metrics.events_forwarded.inc_by(n);
                        self.state.set_db(DB_UP);
                        self.metrics.database_up.set(1);
                        retry.reset();
                        tracing::debug!(worker = id, events = n, inserted, "batch committed");
                        break;
                    }
                    Err(e) => {
                        let class = classify(&e);
                        if class == ErrorClass::Data {
                            if range.len() == 1 {
                                self.quarantine(&rows[range.start], &e);
                            } else {
                                let mid = range.start + range.len() / 2;
                                pending.push(mid..range.end);
                                pending.push(range.start..mid);
                            }
                            break;
                        }
                        self.note_failure(class, &e);
                        *conn = None;
                        let delay = retry.delay(class);
                        if stop.or(tokio::time::sleep(delay)).await.is_none() {
                            return false;
                        }
                    }
                }
            }
        }
        let buffer = self.buffer.clone();
        match tokio::task::spawn_blocking(move || buffer.remove(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not delete forwarded records; they will be replayed (harmlessly)")
            }
            Err(e) => tracing::error!(error = %e, "delete task failed"),
        }
        true
    }

    fn quarantine(&self, row: &copy::Row<'_>, e: &tokio_postgres::Error) {
        let message = db_message(e);
        tracing::warn!(event_id = %row.event.event_id, error = %message, "the database refused an event; quarantined");
        let record = Record {
            collector_id: row.collector_id.to_string(),
            received_at_us: row.received_at_us,
            events: vec![row.event.clone()],
        };
        match self.buffer.quarantine(record, &message) {
            Ok(()) => {
                self.state.quarantined.fetch_add(1, Ordering::Relaxed);
                self.metrics.events_quarantined.inc();
            }
            Err(qe) => {
                tracing::error!(error = %qe, "could not quarantine an event; it stays in the buffer")
            }
        }
    }

    fn note_failure(&self, class: ErrorClass, e: &tokio_postgres::Error) {
        let message = db_message(e);
        let (label, state) = match class {
            ErrorClass::Transient => ("transient", DB_DOWN),
            ErrorClass::Config => ("config", DB_CONFIG),
            ErrorClass::Data => ("data", DB_UP),
        };
        if self.state.db.swap(state, Ordering::Relaxed) != state || class == ErrorClass::Config {
            tracing::error!(class = label, error = %message, "forwarding failed; retrying");
        }
        self.metrics.database_up.set(0);
        self.metrics.forward_error(label, message.clone());
        self.state.set_error(message);
    }

    fn retry_logic(&self) -> RetryLogic {
        RetryLogic::new(
            Duration::from_millis(self.config.forward.retry_initial_ms.max(1)),
            Duration::from_millis(self.config.forward.retry_max_ms.max(1)),
        )
    }

    /// The open connection in `conn`, or a new one with the staging table prepared.
    async fn connect<'c>(
        &self,
        conn: &'c mut Option<Client>,
    ) -> Result<&'c mut Client, tokio_postgres::Error> {
        let client = match conn.take().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => {
                let client = database::connect_pg(&self.url).await?;
                copy::prepare(&client).await?;
                client
            }
        };
        Ok(conn.insert(client))
    }

    /// Sends stored heartbeats every second or so, oldest first, on its own connection.
    /// Every database step is raced against `stop`, like a worker's.
    async fn heartbeat_sender(&self, mut stop: Shutdown, until: Until) {
        let mut conn: Option<Client> = None;
        let mut retry = self.retry_logic();
        loop {
            let pending = self.buffer.heartbeats(500).unwrap_or_default();
            if pending.is_empty() {
                if until == Until::Empty || stop.is_shutdown() {
                    return;
                }
                if stop
                    .or(tokio::time::sleep(Duration::from_secs(1)))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
            let rows: Vec<serde_json::Value> = pending
                .iter()
                .filter_map(|(_, json)| serde_json::from_slice::<Heartbeat>(json).ok())
                .map(|h| h.to_json())
                .collect();
            let attempt = stop.or(async {
                let client = self.connect(&mut conn).await?;
                database::heartbeats::insert(client, &rows).await
            });
            let Some(result) = attempt.await else { return };
            match result {
                Ok(_) => {
                    retry.reset();
                    self.state.set_db(DB_UP);
                    self.metrics.database_up.set(1);
                    self.metrics.heartbeats_sent.inc_by(rows.len() as u64);
                    let keys: Vec<u64> = pending.iter().map(|(k, _)| *k).collect();
                    if let Err(e) = self.buffer.remove_heartbeats(&keys) {
                        tracing::warn!(error = %e, "could not delete sent heartbeats");
                    }
                }
                Err(e) => {
                    let class = classify(&e);
                    if class == ErrorClass::Data {
                        tracing::warn!(error = %db_message(&e), "the database refused heartbeats; dropping them");
                        let keys: Vec<u64> = pending.iter().map(|(k, _)| *k).collect();
                        let _ = self.buffer.remove_heartbeats(&keys);
                        continue;
                    }
                    self.note_failure(class, &e);
                    conn = None;
                    if until == Until::Empty {
                        // A drain does not wait for heartbeats once events are gone.
                        if self.buffer.stats().events == 0 {
                            return;
                        }
                    }
                    if stop
                        .or(tokio::time::sleep(retry.delay(class)))
                        .await
                        .is_none()
                    {
                        return;
                    }
                }
            }
        }
    }

    async fn rate_meter(&self, mut stop: Shutdown) {
        let mut window = std::collections::VecDeque::from(vec![self.state.forwarded(); 11]);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            if stop.or(tick.tick()).await.is_none() {
                return;
            }
            window.pop_front();
            window.push_back(self.state.forwarded());
            let (first, last) = (
                window.front().copied().unwrap_or(0),
                window.back().copied().unwrap_or(0),
            );
            let rate = last.saturating_sub(first) as f64 / 10.0;
            self.state
                .rate_bits
                .store(rate.to_bits(), Ordering::Relaxed);
            self.metrics.forward_rate.set(rate);
        }
    }
}

/// The server's message with its SQLSTATE, or the client error.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}
