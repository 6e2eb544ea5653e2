//! The applier of deferred maintenance (`forward.maintenance = "deferred"`, migration
//! 0022): moves the database's queue `edge_pending` into `user_events` with the summaries
//! and rollups, `forward.apply_batch_events` events per transaction, on its own connection
//! ([`crate::database::pending`]).
//!
//! Every collector in deferred mode runs one. The database's advisory lock lets one apply
//! at a time; the others find the queue busy and look again a second later, so a collector
//! that stops leaves the queue to the next one. A chunk the maintenance refuses (a data
//! error) is halved until the refused event is alone, and that one moves to
//! `edge_pending_rejected` with the database's message: one bad row never wedges the queue.
//! A transient error (outage, the operation deadline) backs off as the forwarders do and
//! halves the chunk too, so a chunk too large for the deadline cannot repeat forever.
//!
//! Invariant: events leave the queue only in the transaction that applies them (or rejects
//! one); a stop abandons the chunk in flight, which stays queued.

use std::time::Duration;

use tokio::sync::watch;

use crate::{
    database::{
        connect,
        pending::{self, Applied},
        Conn, ErrorClass,
    },
    shutdown::Shutdown,
};

use super::{Forwarder, Until};

impl Forwarder {
    /// Applies the queue until `stop`; with [`Until::Empty`], until the forwarders are done
    /// (`forwarded` turns true) and the queue is empty.
    pub(super) async fn apply_queue(
        &self,
        mut stop: Shutdown,
        until: Until,
        forwarded: watch::Receiver<bool>,
    ) {
        let mut conn: Option<Conn> = None;
        let full = self.config.forward.apply_batch_events.max(1);
        let mut chunk = full;
        let mut retry = self.retry_logic();
        loop {
            // Read before the attempt: an empty queue seen after the forwarders finished
            // is the end of a drain.
            let forwarders_done = *forwarded.borrow();
            let limit = self.bounds().operation;
            let attempt = stop.or(async {
                let client = self.connect(&mut conn).await?;
                let apply = pending::apply(client, chunk);
                let applied =
                    connect::bounded("applying the maintenance queue", limit, apply).await?;
                let depth =
                    connect::bounded("reading the queue", limit, pending::depth(client)).await?;
                Ok::<_, connect::Failure>((applied, depth))
            });
            let Some(result) = attempt.await else { return };
            let idle = match result {
                Ok((applied, depth)) => {
                    self.state.set_queued(depth);
                    self.metrics.maintenance_queue.set(depth as i64);
                    retry.reset();
                    match applied {
                        Applied::Events(n) if n > 0 => {
                            self.state.add_applied(n);
                            self.metrics.events_applied.inc_by(n);
                            tracing::debug!(events = n, queued = depth, "queue applied");
                            chunk = chunk.saturating_mul(2).min(full);
                            false
                        }
                        Applied::Events(_) => {
                            if until == Until::Empty && forwarders_done {
                                return;
                            }
                            true
                        }
                        Applied::Busy => true,
                    }
                }
                Err(e) => {
                    let class = e.class();
                    if class == ErrorClass::Data && chunk == 1 {
                        self.reject_oldest(&mut conn, &e.to_string(), &mut stop)
                            .await;
                        chunk = full;
                        continue;
                    }
                    chunk = (chunk / 2).max(1);
                    if class == ErrorClass::Data {
                        continue;
                    }
                    conn = None;
                    self.note_failure(class, &e);
                    if stop
                        .or(tokio::time::sleep(retry.delay(class)))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    false
                }
            };
            // Idle: until a forwarder queues a batch, or a second (another collector's
            // batches, a busy queue).
            let wait = async {
                tokio::select! {
                    _ = self.queued.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            };
            if idle && stop.or(wait).await.is_none() {
                return;
            }
        }
    }

    /// Moves the oldest queued event, which the maintenance refused alone, to
    /// `edge_pending_rejected`. A failure here is retried by the loop's next chunk.
    async fn reject_oldest(&self, conn: &mut Option<Conn>, error: &str, stop: &mut Shutdown) {
        let limit = self.bounds().operation;
        let attempt = stop.or(async {
            let client = self.connect(conn).await?;
            let reject = pending::reject_oldest(client, error);
            connect::bounded("rejecting a queued event", limit, reject).await
        });
        match attempt.await {
            Some(Ok(Some(seq))) => {
                tracing::warn!(
                    seq,
                    error,
                    "the maintenance refused a queued event; moved to edge_pending_rejected"
                );
                self.state.add_quarantined(1);
                self.metrics.events_quarantined.inc();
            }
            Some(Ok(None)) | None => {}
            Some(Err(e)) => {
                *conn = None;
                tracing::warn!(error = %e, "could not move a refused queued event aside");
            }
        }
    }
}
