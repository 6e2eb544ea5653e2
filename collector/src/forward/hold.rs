//! The standby hold: committed batches stay in the buffer until a failover can no longer
//! lose them.
//!
//! # Why
//!
//! With asynchronous streaming replication the primary acknowledges a COMMIT before any
//! standby has its WAL. If the primary dies in that window and a standby is promoted, the
//! batch is gone from the database — and a collector that deleted its records after COMMIT
//! has lost acknowledged events. So a worker, after COMMIT, reads the server's WAL position
//! ([`crate::database::replication::position`]) and deletes the records at once only when
//! every physical standby has already flushed that far (or there is none, the usual case).
//! Otherwise the batch's record ids go into the [`Hold`].
//!
//! # The watcher ([`Forwarder::watch_hold`])
//!
//! While the hold is not empty it reads the position on its own connection every 200 ms:
//! batches every standby has flushed are deleted; batches committed on another timeline
//! than the server's (a promoted standby) — or whose position could not be read after
//! COMMIT — are read back from the buffer and forwarded again, on the watcher's connection,
//! through [`Forwarder::forward_batch`]: the rows that survived the failover are absorbed
//! by the unique key, the lost ones land. A batch held longer than
//! `forward.standby_hold_secs` is deleted with a warning (a standby that stopped
//! confirming must not fill the buffer). The records stay counted as buffered meanwhile,
//! so the buffer's limit bounds the hold; memory holds only ids (16 bytes a record).
//!
//! # Invariant
//!
//! A committed record is deleted only once its commit is on every standby the server
//! reports, or after `standby_hold_secs`; a crash of the collector meanwhile only replays
//! it (harmless). The forwarded counters count sends: a re-sent batch counts again.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use crate::{
    buffer::RecordId,
    database::{
        connect,
        replication::{self, Position, Replicated},
        Conn,
    },
    shutdown::Shutdown,
};

use super::Forwarder;

/// The worker id the watcher's re-sends log under.
const WATCHER: usize = usize::MAX;

/// How often the watcher reads the position while something is held.
const TICK: Duration = Duration::from_millis(200);

/// A committed batch not yet known to be on every standby.
struct Held {
    ids: Vec<RecordId>,
    /// (timeline, WAL position) read after its COMMIT; `None`: not read (send it again).
    at: Option<(u32, u64)>,
    since: Instant,
}

/// The batches kept until their commits are on every standby (see the module doc).
#[derive(Default)]
pub struct Hold {
    held: Mutex<VecDeque<Held>>,
    warned_hidden: AtomicBool,
}

/// What a look at the server decided for the held batches.
#[derive(Default)]
struct Settled {
    delete: Vec<RecordId>,
    resend: Vec<Vec<RecordId>>,
    expired: usize,
}

impl Hold {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Held>> {
        // A poisoned lock only means a panic elsewhere; the queue itself stays consistent.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records held, for health.
    pub fn records(&self) -> u64 {
        self.lock().iter().map(|h| h.ids.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A batch just committed, with the position read after its COMMIT (`None`: not
    /// read). Returns the ids to delete now; the rest is held.
    fn admit(&self, ids: Vec<RecordId>, position: Option<Position>) -> Vec<RecordId> {
        let at = position.map(|p| (p.timeline, p.lsn));
        if let Some(p) = position {
            match p.replicated(p.timeline, p.lsn) {
                Replicated::Yes => return ids,
                Replicated::Unknown => {
                    self.warn_hidden();
                    return ids;
                }
                Replicated::NotYet | Replicated::Lost => {}
            }
        }
        self.lock().push_back(Held {
            ids,
            at,
            since: Instant::now(),
        });
        Vec::new()
    }

    /// Sorts the held batches against the server's `position`: deleted, sent again, or
    /// kept; batches held longer than `limit` are deleted.
    fn settle(&self, position: &Position, limit: Duration) -> Settled {
        let mut out = Settled::default();
        let mut held = self.lock();
        let mut keep = VecDeque::new();
        for h in held.drain(..) {
            let verdict = match h.at {
                None => Replicated::Lost,
                Some((timeline, lsn)) => position.replicated(timeline, lsn),
            };
            match verdict {
                Replicated::Yes => out.delete.extend(h.ids),
                Replicated::Unknown => {
                    self.warn_hidden();
                    out.delete.extend(h.ids);
                }
                Replicated::Lost => out.resend.push(h.ids),
                Replicated::NotYet if h.since.elapsed() >= limit => {
                    out.expired += h.ids.len();
                    out.delete.extend(h.ids);
                }
                Replicated::NotYet => keep.push_back(h),
            }
        }
        *held = keep;
        out
    }

    fn warn_hidden(&self) {
        if !self.warned_hidden.swap(true, Ordering::Relaxed) {
            tracing::warn!("the database has standbys whose positions this role may not read: forwarded records are deleted after COMMIT, and a failover to an asynchronous standby can lose the last ones; GRANT pg_read_all_stats TO the collector's role");
        }
    }
}

impl Forwarder {
    /// Deletes a committed batch's records now, or holds them (see the module doc).
    /// `position` is what was read on the committing session after COMMIT.
    pub(super) async fn settle_committed(&self, ids: Vec<RecordId>, position: Option<Position>) {
        let delete = if self.config.forward.standby_hold_secs == 0 {
            ids
        } else {
            self.hold.admit(ids, position)
        };
        self.state.set_held(self.hold.records());
        self.delete(delete).await;
    }

    /// The position of the server `conn` is connected to, read under the operation deadline.
    pub(super) async fn position(&self, conn: &mut Option<Conn>) -> Option<Position> {
        let client = conn.as_ref()?;
        let limit = self.bounds().operation;
        match connect::bounded(
            "reading the WAL position",
            limit,
            replication::position(client),
        )
        .await
        {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the WAL position after COMMIT; the batch is held and sent again");
                *conn = None;
                None
            }
        }
    }

    /// Watches the hold until `stop` (or, once `finished` is set, until it is empty).
    pub(super) async fn watch_hold(
        &self,
        mut stop: Shutdown,
        finished: tokio::sync::watch::Receiver<bool>,
    ) {
        let limit = Duration::from_secs(self.config.forward.standby_hold_secs);
        let mut conn: Option<Conn> = None;
        loop {
            if self.hold.is_empty() && *finished.borrow() {
                return;
            }
            if stop.or(tokio::time::sleep(TICK)).await.is_none() {
                return;
            }
            if self.hold.is_empty() {
                continue;
            }
            let opened = stop.or(async {
                match self.connect(&mut conn).await {
                    Ok(_) => self.position(&mut conn).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "the standby hold cannot reach the database");
                        None
                    }
                }
            });
            let Some(position) = opened.await else { return };
            let Some(position) = position else {
                // The workers report the database's health; retry a little later.
                if stop
                    .or(tokio::time::sleep(Duration::from_secs(1)))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            };
            let settled = self.hold.settle(&position, limit);
            if settled.expired > 0 {
                tracing::warn!(records = settled.expired, limit_secs = limit.as_secs(), "a standby has not confirmed these committed records in time; deleted from the buffer (a failover to it would lose them)");
            }
            self.delete(settled.delete).await;
            for ids in settled.resend {
                tracing::info!(
                    records = ids.len(),
                    timeline = position.timeline,
                    "records committed on another timeline (a failover?) are sent again"
                );
                let buffer = self.buffer.clone();
                let batch = match tokio::task::spawn_blocking(move || buffer.get(&ids)).await {
                    Ok(Ok(b)) => b,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot read held records back; they stay buffered and are replayed at the next start");
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "buffer read task failed");
                        continue;
                    }
                };
                if !batch.is_empty()
                    && !self
                        .forward_batch(WATCHER, &mut conn, batch, &mut stop)
                        .await
                {
                    return;
                }
            }
            self.state.set_held(self.hold.records());
        }
    }

    /// Deletes forwarded records from the buffer (off the async threads).
    async fn delete(&self, ids: Vec<RecordId>) {
        if ids.is_empty() {
            return;
        }
        let buffer = self.buffer.clone();
        match tokio::task::spawn_blocking(move || buffer.remove(&ids)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not delete forwarded records; they will be replayed (harmlessly)")
            }
            Err(e) => tracing::error!(error = %e, "delete task failed"),
        }
    }
}
