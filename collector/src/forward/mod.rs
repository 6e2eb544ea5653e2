//! The forward stage: drains the buffer into TimescaleDB.
//!
//! # Design
//!
//! A dispatcher reads the oldest records after a cursor and hands batches (≈
//! `forward.batch_events` events, or fewer after `forward.linger_ms`) to `forward.connections`
//! workers, each with its own database connection. A worker writes its batch with
//! [`crate::database::copy::write_batch`] and, only after COMMIT, removes exactly those
//! records from the buffer — at once, or once every standby has the commit ([`hold`]).
//! Ingest never waits on any of this: it only appends.
//!
//! # Why it retries ([`retry::RetryLogic`])
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
//! # Files
//!
//! `mod.rs` (this file): the dispatcher and the workers' loop; [`batch`]: one batch to the
//! end (COPY, split on data errors, quarantine); [`apply`]: in deferred mode, the database's
//! maintenance queue applied; [`hold`]: committed batches kept until the
//! standbys have them, sent again after a failover; [`heartbeats`]: stored heartbeats sent on
//! their own connection; [`retry`]: the backoff policy; [`meter`]: the recent rate.
//! Health goes to [`crate::state::ForwardState`], beside the pipeline.
//!
//! # Stopping
//!
//! Every database step (connect, COPY, commit, heartbeat insert) and every wait races the
//! [`Shutdown`] signal: on a stop a batch in flight is abandoned, its records stay in the
//! buffer and its replay is absorbed by the unique key. So stopping never waits on the
//! database, whatever it does.
//!
//! # Deferred maintenance
//!
//! With `forward.maintenance = "deferred"` a worker COPYs its batch into the database's queue
//! `edge_pending` instead (a bare COPY: no key, no summary) and deletes the records after
//! that COMMIT; the [`apply`] task moves the queue into `user_events` with the same
//! `edge_merge_batch()`, exactly once. The buffer drains at the speed the database stores
//! rows; the analyses follow at the speed of the maintenance.
//!
//! # Invariant
//!
//! Every buffered event ends up exactly once in `user_events` or in quarantine (in
//! deferred mode: through the queue, or in `edge_pending_rejected`): records are
//! deleted only after their rows are committed (or quarantined) — and, with standbys, on
//! them — and a replay after any crash or failover is absorbed by
//! `ON CONFLICT (event_id, event_time) DO NOTHING`.

pub mod apply;
pub mod batch;
pub mod heartbeats;
pub mod hold;
pub mod meter;
pub mod retry;

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use crate::{
    buffer::{Buffer, Stored},
    config::{Config, Maintenance},
    database::{
        connect::{self, Bounds},
        copy, Conn, ErrorClass, Failure,
    },
    metrics::Metrics,
    shutdown::Shutdown,
    state::{DbState, ForwardState},
};

use retry::RetryLogic;

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
    hold: hold::Hold,
    /// Wakes the deferred maintenance's applier when a batch was queued ([`apply`]).
    queued: tokio::sync::Notify,
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
            hold: hold::Hold::default(),
            queued: tokio::sync::Notify::new(),
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
            tokio::spawn(async move { me.send_heartbeats(stop, until).await })
        };
        let meter = {
            let me = this.clone();
            let stop = stop.clone();
            tokio::spawn(async move { me.rate_meter(stop).await })
        };
        let (finished, workers_done) = tokio::sync::watch::channel(false);
        let applier = (this.config.forward.maintenance == Maintenance::Deferred).then(|| {
            let me = this.clone();
            let (stop, done) = (stop.clone(), workers_done.clone());
            tokio::spawn(async move { me.apply_queue(stop, until, done).await })
        });
        let hold = {
            let me = this.clone();
            let stop = stop.clone();
            tokio::spawn(async move { me.watch_hold(stop, workers_done).await })
        };
        this.dispatch(tx, stop, until).await;
        for t in tasks {
            let _ = t.await;
        }
        // `drain` ends once what is held reached the standbys (or was sent again), and in
        // deferred mode once the queue is applied.
        let _ = finished.send(true);
        let _ = hold.await;
        if let Some(applier) = applier {
            let _ = applier.await;
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
                    _ = self.state.woken() => {}
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
                    _ = self.state.woken() => {}
                    _ = tokio::time::sleep(linger.min(Duration::from_millis(200))) => {}
                    _ = stop.recv() => {}
                }
                continue;
            }
            let events: usize = batch.iter().map(|s| s.record.events.len()).sum();
            if events < batch_events && until == Until::Stopped {
                // A partial batch waits until its oldest record is `linger` old.
                let oldest = batch[0].record.received_at_us;
                let waited = crate::event::age(oldest);
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
        let mut conn: Option<Conn> = None;
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

    /// Reports a failed database step: health, metrics, and a log line on each change.
    fn note_failure(&self, class: ErrorClass, e: &Failure) {
        let message = e.to_string();
        let (label, state) = match class {
            ErrorClass::Transient => ("transient", DbState::Down),
            ErrorClass::Config => ("config", DbState::ConfigError),
            ErrorClass::Data => ("data", DbState::Up),
        };
        if self.state.set_db(state) != state || class == ErrorClass::Config {
            tracing::error!(class = label, error = %message, "forwarding failed; retrying");
        } else {
            tracing::debug!(class = label, error = %message, "forwarding failed again; retrying");
        }
        self.metrics.database_up.set(0);
        self.metrics.forward_error(label, message.clone());
        self.state.set_error(message);
    }

    /// Reports a successful database step.
    fn note_success(&self) {
        self.state.set_db(DbState::Up);
        self.metrics.database_up.set(1);
    }

    fn retry_logic(&self) -> RetryLogic {
        RetryLogic::new(
            Duration::from_millis(self.config.forward.retry_initial_ms.max(1)),
            Duration::from_millis(self.config.forward.retry_max_ms.max(1)),
        )
    }

    /// The open connection in `conn`, or a new one (each host of the URL in turn, each
    /// under the connect deadline) with the staging table prepared.
    async fn connect<'c>(&self, conn: &'c mut Option<Conn>) -> Result<&'c mut Conn, Failure> {
        let conn_ok = conn.take().filter(|c| !c.is_closed());
        let c = match conn_ok {
            Some(c) => c,
            None => {
                let bounds = self.bounds();
                let c = connect::open(&self.url, bounds).await?;
                connect::bounded(
                    "preparing the staging table",
                    bounds.operation,
                    copy::prepare(&c),
                )
                .await?;
                c
            }
        };
        Ok(conn.insert(c))
    }

    /// The deadlines of every database step (`forward.connect_timeout_secs`,
    /// `forward.operation_timeout_secs`).
    fn bounds(&self) -> Bounds {
        Bounds {
            connect: Duration::from_secs(self.config.forward.connect_timeout_secs.max(1)),
            operation: Duration::from_secs(self.config.forward.operation_timeout_secs.max(1)),
        }
    }
}
