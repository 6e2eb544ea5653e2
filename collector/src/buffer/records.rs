//! The `records` tree: reading forward from a cursor, removing what the database
//! committed, operator access to raw and damaged records, and recounting at start-up.
//!
//! Invariant: records appear in the tree in key order (a key is taken and inserted under
//! one lock), so a reader that has seen key K never misses a record below K.

use std::sync::atomic::Ordering;

use crate::record::{self, Record};

use super::{key_of, Buffer, BufferError, Inner, RecordId, Stored};

impl Buffer {
    /// Reads up to `max_events` events' worth of records with keys `>= from`, oldest first
    /// (always at least one record if any exists). Damaged records are skipped and counted.
    pub fn read_from(&self, from: u64, max_events: usize) -> Result<Vec<Stored>, BufferError> {
        let mut out = Vec::new();
        let mut events = 0usize;
        for item in self.inner.records.range(from.to_be_bytes()..) {
            let (k, v) = item?;
            let key = key_of(&k);
            match Record::decode(&v) {
                Ok(record) => {
                    events += record.events.len();
                    out.push(Stored {
                        key,
                        bytes: v.len(),
                        record,
                    });
                }
                Err(e) => {
                    // Its header was fine at start-up, its body is not: set it aside now so
                    // it neither blocks forwarding nor counts as buffered.
                    tracing::error!(key, error = %e, "damaged buffer record: set aside in the buffer's `damaged` tree (see `collector buffer verify`)");
                    self.inner.damaged.insert(&k, &v)?;
                    self.inner.records.remove(&k)?;
                    let events = record::header(&v).map(|h| h.events as u64).unwrap_or(0);
                    self.inner.counters.sub(1, events, v.len() as u64);
                    self.inner.counters.damaged.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if events >= max_events {
                break;
            }
        }
        Ok(out)
    }

    /// Iterates every record (operator commands): key, raw bytes.
    pub fn iter_raw(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), BufferError>> + '_ {
        self.inner
            .records
            .iter()
            .map(|r| r.map(|(k, v)| (key_of(&k), v)).map_err(BufferError::from))
    }

    /// Removes forwarded records. Not flushed here: if the removal is lost in a crash the
    /// records are forwarded again, and `ON CONFLICT DO NOTHING` makes that harmless.
    pub fn remove(&self, records: &[RecordId]) -> Result<(), BufferError> {
        let mut batch = sled::Batch::default();
        let (mut events, mut bytes) = (0u64, 0u64);
        for r in records {
            batch.remove(&r.key.to_be_bytes());
            events += r.events as u64;
            bytes += r.bytes as u64;
        }
        self.inner.records.apply_batch(batch)?;
        self.inner.counters.sub(records.len() as u64, events, bytes);
        Ok(())
    }

    /// Reads the records still stored under `ids` (a record removed meanwhile is skipped),
    /// to forward them again.
    pub fn get(&self, ids: &[RecordId]) -> Result<Vec<Stored>, BufferError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(v) = self.inner.records.get(id.key.to_be_bytes())? else {
                continue;
            };
            match Record::decode(&v) {
                Ok(record) => out.push(Stored {
                    key: id.key,
                    bytes: v.len(),
                    record,
                }),
                // It decoded when it was first forwarded: only a damaged disk gets here, and
                // the next start-up's recount sets it aside.
                Err(e) => {
                    tracing::error!(key = id.key, error = %e, "a forwarded record no longer decodes")
                }
            }
        }
        Ok(out)
    }

    /// Records set aside as damaged: key, raw bytes (for `verify`).
    pub fn damaged(&self) -> Result<Vec<(u64, Vec<u8>)>, BufferError> {
        self.inner
            .damaged
            .iter()
            .map(|r| {
                r.map(|(k, v)| (key_of(&k), v.to_vec()))
                    .map_err(BufferError::from)
            })
            .collect()
    }

    /// Stores raw bytes as a record, unvalidated and unflushed. For fault-injection tests
    /// and recovery tools only: the forwarder skips what does not decode.
    #[doc(hidden)]
    pub fn insert_raw(&self, bytes: &[u8]) -> Result<u64, BufferError> {
        let key = self.insert_record(bytes)?;
        self.inner.db.flush()?;
        Ok(key)
    }

    /// Takes the next key and inserts `bytes` under it, both under `insert_order`, so no
    /// reader ever sees a key before every smaller key is in the tree.
    pub(super) fn insert_record(&self, bytes: &[u8]) -> Result<u64, BufferError> {
        // A poisoned lock only means another insert panicked; the guard protects no data.
        let _order = self
            .inner
            .insert_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = self.inner.db.generate_id()?;
        self.inner.records.insert(key.to_be_bytes(), bytes)?;
        Ok(key)
    }

    /// Removes one raw record by key (operator export --remove).
    pub fn remove_key(&self, key: u64) -> Result<(), BufferError> {
        if let Some(v) = self.inner.records.remove(key.to_be_bytes())? {
            let events = record::header(&v).map(|h| h.events as u64).unwrap_or(0);
            self.inner.counters.sub(1, events, v.len() as u64);
        }
        Ok(())
    }
}

impl Inner {
    /// Counts records from their headers and sets damaged ones aside into the `damaged`
    /// tree (kept for `collector buffer verify`, never forwarded, never a reason to crash).
    /// Only headers are read here, so start-up stays fast with a large backlog; a record
    /// whose body turns out damaged is set aside when the forwarder reads it.
    pub(super) fn recount(&self) -> Result<(), BufferError> {
        let (mut n, mut events, mut bytes) = (0u64, 0u64, 0u64);
        let mut damaged = Vec::new();
        for item in self.records.iter() {
            let (k, v) = item?;
            match record::header(&v) {
                Ok(h) => {
                    n += 1;
                    bytes += v.len() as u64;
                    events += h.events as u64;
                }
                Err(e) => {
                    tracing::error!(key = key_of(&k), error = %e, "damaged buffer record at start-up: set aside in the buffer's `damaged` tree (see `collector buffer verify`)");
                    damaged.push((k, v));
                }
            }
        }
        for (k, v) in &damaged {
            self.damaged.insert(k, v)?;
            self.records.remove(k)?;
        }
        if !damaged.is_empty() {
            self.db.flush()?;
        }
        self.counters.add(n, events, bytes);
        self.counters
            .damaged
            .store(self.damaged.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
