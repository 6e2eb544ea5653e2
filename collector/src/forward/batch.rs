//! One batch to the end: COPY it (into `user_events` with its maintenance, or into the
//! maintenance queue in deferred mode), split it around rows the database refuses, quarantine
//! those, and only then delete its records from the buffer — or hold them until every
//! standby has the commit ([`super::hold`]).
//!
//! Invariant: a record leaves the buffer only after every one of its rows is committed or
//! quarantined; a stop abandons the batch and leaves all of it buffered.

use std::ops::Range;

use crate::{
    buffer::Stored,
    config::Maintenance,
    database::{connect, copy, Conn, ErrorClass, Failure},
    record::Record,
    shutdown::Shutdown,
};

use super::Forwarder;

impl Forwarder {
    /// Forwards one batch to the end (committed or quarantined). Returns false when it
    /// stopped early because of `stop` (the records stay in the buffer).
    pub(super) async fn forward_batch(
        &self,
        id: usize,
        conn: &mut Option<Conn>,
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
        let deferred = self.config.forward.maintenance == Maintenance::Deferred;
        // Whether every commit of this batch was on the connection open at the end: only
        // then does the position read after the last one cover them all.
        let (mut committed, mut one_session) = (false, true);
        while let Some(range) = pending.pop() {
            loop {
                let limit = self.bounds().operation;
                let attempt = stop.or(async {
                    let client = self.connect(conn).await?;
                    let rows = &rows[range.clone()];
                    if deferred {
                        let copy = copy::queue_batch(client, rows);
                        connect::bounded("COPY to the queue and commit", limit, copy).await
                    } else {
                        let copy = copy::write_batch(client, rows);
                        connect::bounded("COPY and commit", limit, copy).await
                    }
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
                        self.state.add_forwarded(n);
                        self.metrics.events_forwarded.inc_by(n);
                        self.note_success();
                        retry.reset();
                        committed = true;
                        if deferred {
                            self.queued.notify_one();
                        }
                        tracing::debug!(worker = id, events = n, inserted, "batch committed");
                        break;
                    }
                    Err(e) => {
                        let class = e.class();
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
                        one_session &= !committed;
                        let delay = retry.delay(class);
                        if stop.or(tokio::time::sleep(delay)).await.is_none() {
                            return false;
                        }
                    }
                }
            }
        }
        drop(rows);
        let ids = batch.iter().map(|s| s.id()).collect();
        drop(batch);
        let position = if self.config.forward.standby_hold_secs == 0 {
            None
        } else {
            match stop.or(self.position(conn)).await {
                None => return false,
                Some(p) if one_session => p,
                Some(_) => None,
            }
        };
        self.settle_committed(ids, position).await;
        true
    }

    fn quarantine(&self, row: &copy::Row<'_>, e: &Failure) {
        let message = e.to_string();
        tracing::warn!(event_id = %row.event.event_id, error = %message, "the database refused an event; quarantined");
        let record = Record {
            collector_id: row.collector_id.to_string(),
            received_at_us: row.received_at_us,
            events: vec![row.event.clone()],
        };
        match self.buffer.quarantine(record, &message) {
            Ok(()) => {
                self.state.add_quarantined(1);
                self.metrics.events_quarantined.inc();
            }
            Err(qe) => {
                tracing::error!(error = %qe, "could not quarantine an event; it stays in the buffer")
            }
        }
    }
}
