//! Stored heartbeats to `collector_heartbeats`, oldest first, on their own connection, so
//! the fleet's history has no hole during an outage (the heartbeats waited in the buffer).
//!
//! Invariant: a heartbeat leaves the buffer only after its insert returned (or the database
//! refused it as data); every step races the stop signal.

use std::time::Duration;

use crate::{
    database::{self, connect, Conn, ErrorClass},
    heartbeat::Heartbeat,
    shutdown::Shutdown,
};

use super::{Forwarder, Until};

impl Forwarder {
    /// Sends stored heartbeats every second or so, oldest first, on its own connection.
    /// Every database step is raced against `stop`, like a worker's.
    pub(super) async fn send_heartbeats(&self, mut stop: Shutdown, until: Until) {
        let mut conn: Option<Conn> = None;
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
            let limit = self.bounds().operation;
            let attempt = stop.or(async {
                let client = self.connect(&mut conn).await?;
                let insert = database::heartbeats::insert(client, &rows);
                connect::bounded("inserting heartbeats", limit, insert).await
            });
            let Some(result) = attempt.await else { return };
            match result {
                Ok(_) => {
                    retry.reset();
                    self.note_success();
                    self.metrics.heartbeats_sent.inc_by(rows.len() as u64);
                    let keys: Vec<u64> = pending.iter().map(|(k, _)| *k).collect();
                    if let Err(e) = self.buffer.remove_heartbeats(&keys) {
                        tracing::warn!(error = %e, "could not delete sent heartbeats");
                    }
                }
                Err(e) => {
                    let class = e.class();
                    if class == ErrorClass::Data {
                        tracing::warn!(error = %e, "the database refused heartbeats; dropping them");
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
}
