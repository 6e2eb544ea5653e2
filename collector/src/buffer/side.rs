//! The side trees: `quarantine` (events the database refused, with its message) and
//! `heartbeats` (heartbeats waiting to be sent).
//!
//! Invariant: an event enters quarantine in the same sled batch that removes it from
//! `records` (nothing is lost or kept twice); both trees are small by construction.

use crate::record::{self, Record};

use super::{key_of, Buffer, BufferError, Quarantined};

impl Buffer {
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
}

/// The quarantine key of a one-event record: its event_id.
fn record_key(r: &Record) -> Vec<u8> {
    r.events
        .first()
        .map(|e| e.event_id.as_bytes().to_vec())
        .unwrap_or_default()
}
