//! The live tail: the most recently accepted events in a bounded in-memory ring, served by
//! the admin listener's `GET /v1/tail` to `monitor tail` and the dashboard's Tail view. It
//! works during a database outage: it shows what is being buffered.
//!
//! It lives beside the pipeline like [`crate::state`] and [`crate::metrics`]: the ingest
//! stage writes it, the admin listener reads it, and this module imports no stage (only the
//! data model, [`crate::event`] and [`crate::record`]).
//!
//! The ring holds each request's *encoded record* (the bytes the buffer stored, shared, not
//! copied) and decodes only what a reader asks for. Ingest pays one push per request, and
//! its events are freed by the request that parsed them, before it waits for the flush;
//! holding the events themselves cost ~17 µs of collector CPU per 50-event request, most of
//! it freeing evicted events on another thread (`deploy/flamegraph ingest`, 2026-12-04).
//!
//! Invariants:
//! - an event enters only after the request's record is durably in the buffer
//!   ([`crate::buffer::Buffer::append_encoded`] returned), never before, so the tail never
//!   shows an event that was not acknowledged;
//! - memory is bounded whatever clients send: the newest `capacity` events (the
//!   `admin_tail_events` setting; 0 turns the tail off) and at most `capacity ×` [`BYTES_PER_EVENT`]
//!   bytes of records (older records go first, so a few very large events can push
//!   the others out early; they count as missed). A reader gets every string field cut to
//!   [`MAX_FIELD_BYTES`] and the properties to about [`MAX_PROPERTIES_BYTES`];
//! - every event gets the next sequence number (from 1, one per event, in ring order, never
//!   reused by this process); a client polls with `after=` its last one and learns from
//!   `missed` how many it lost to the ring's bound, and from `epoch` (the process' start)
//!   that numbering started again;
//! - nothing here logs (the ring holds event contents).

use std::{collections::VecDeque, sync::Mutex};

use bytes::Bytes;
use time::OffsetDateTime;

use crate::{event::Event, record::Record};

mod view;

use view::shrink;

/// Bytes kept of every string field (cut at a character boundary).
pub const MAX_FIELD_BYTES: usize = 200;
/// Bytes of properties JSON kept, about: larger objects keep their first keys.
pub const MAX_PROPERTIES_BYTES: usize = 1024;
/// The most events one `GET /v1/tail` returns.
pub const MAX_PAGE: usize = 1000;
/// Encoded record bytes the ring may hold per event of its capacity.
pub const BYTES_PER_EVENT: usize = 4096;

/// One accepted event as a reader gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEvent {
    pub seq: u64,
    pub received_at_us: i64,
    /// The event with every string field cut to [`MAX_FIELD_BYTES`].
    pub event: Event,
    /// Properties (a JSON object's text), cut to about [`MAX_PROPERTIES_BYTES`].
    pub properties: Option<String>,
    /// Whether any field or property was cut.
    pub truncated: bool,
}

/// What one poll returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Identifies this process' numbering (its start time in µs).
    pub epoch: i64,
    /// Oldest and newest sequence numbers held (0 when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Events after the client's `after` that the ring no longer holds.
    pub missed: u64,
    /// Oldest first.
    pub events: Vec<TailEvent>,
}

/// One request's record: its events are numbered `first_seq..first_seq + events`.
struct Held {
    first_seq: u64,
    events: u64,
    bytes: Bytes,
}

struct Ring {
    next_seq: u64,
    records: VecDeque<Held>,
    /// Events and bytes of `records`.
    events: u64,
    bytes: usize,
}

impl Ring {
    /// The oldest sequence number a reader may get (0 when nothing is held): the newest
    /// `capacity` events of the records held.
    fn first_visible(&self, capacity: u64) -> u64 {
        match self.records.front() {
            Some(front) => front.first_seq.max(self.next_seq.saturating_sub(capacity)),
            None => 0,
        }
    }
}

/// The ring of recently accepted records, shared by ingest (writes) and admin (reads).
pub struct Tail {
    capacity: usize,
    byte_limit: usize,
    epoch: i64,
    ring: Mutex<Ring>,
}

impl Tail {
    /// A ring of at most `capacity` events (0: the tail is off and holds nothing).
    pub fn new(capacity: usize) -> Tail {
        Tail {
            capacity,
            byte_limit: capacity.saturating_mul(BYTES_PER_EVENT),
            epoch: crate::event::micros(OffsetDateTime::now_utc()),
            ring: Mutex::new(Ring {
                next_seq: 1,
                records: VecDeque::new(),
                events: 0,
                bytes: 0,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Adds a buffered record ([`Record::encode`]'s bytes). Call only once the record is
    /// durably in the buffer. Bytes that are not a record are ignored.
    pub fn push(&self, record: Bytes) {
        if self.capacity == 0 {
            return;
        }
        let Ok(header) = crate::record::header(&record) else {
            return;
        };
        let events = u64::from(header.events);
        let evicted: Vec<Held> = {
            let Ok(mut ring) = self.ring.lock() else {
                return;
            };
            let first_seq = ring.next_seq;
            ring.next_seq += events;
            if events == 0 {
                return;
            }
            ring.events += events;
            ring.bytes += record.len();
            ring.records.push_back(Held {
                first_seq,
                events,
                bytes: record,
            });
            let mut evicted = Vec::new();
            // Drop the oldest records the newest `capacity` events do not need, and any
            // over the byte bound (the newest too, if it alone is over).
            while let Some(front) = ring.records.front() {
                let unneeded = ring.events - front.events >= self.capacity as u64;
                if !unneeded && ring.bytes <= self.byte_limit {
                    break;
                }
                if let Some(old) = ring.records.pop_front() {
                    ring.events -= old.events;
                    ring.bytes -= old.bytes.len();
                    evicted.push(old);
                }
            }
            evicted
        };
        // Freed outside the lock.
        drop(evicted);
    }

    /// Events after `after` (oldest first, at most `limit`, at most [`MAX_PAGE`]); without
    /// `after`, or with a number this process never gave, the newest `limit`.
    pub fn page(&self, after: Option<u64>, limit: usize) -> Page {
        let limit = limit.clamp(1, MAX_PAGE) as u64;
        // Under the lock only the window and the records' handles; decoding happens after.
        let (first_seq, last_seq, missed, from, to, records) = {
            let Ok(ring) = self.ring.lock() else {
                return Page {
                    epoch: self.epoch,
                    first_seq: 0,
                    last_seq: 0,
                    missed: 0,
                    events: Vec::new(),
                };
            };
            let last_seq = ring.next_seq - 1;
            let first_seq = ring.first_visible(self.capacity as u64);
            let oldest_kept = if first_seq == 0 {
                last_seq + 1
            } else {
                first_seq
            };
            let after = after.filter(|a| *a <= last_seq);
            let (from, missed) = match after {
                None => (oldest_kept.max((last_seq + 1).saturating_sub(limit)), 0),
                Some(a) => (oldest_kept.max(a + 1), oldest_kept.saturating_sub(a + 1)),
            };
            let to = last_seq.min(from + limit - 1);
            let records: Vec<(u64, Bytes)> = ring
                .records
                .iter()
                .filter(|h| h.first_seq <= to && h.first_seq + h.events > from)
                .map(|h| (h.first_seq, h.bytes.clone()))
                .collect();
            (first_seq, last_seq, missed, from, to, records)
        };
        let mut events = Vec::new();
        for (first, bytes) in records {
            // The buffer decoded nothing else: a record that does not decode is skipped.
            let Ok(record) = Record::decode(&bytes) else {
                continue;
            };
            let at = record.received_at_us;
            for (seq, e) in (first..).zip(record.events) {
                if (from..=to).contains(&seq) {
                    let mut t = shrink(e, at);
                    t.seq = seq;
                    events.push(t);
                }
            }
        }
        Page {
            epoch: self.epoch,
            first_seq,
            last_seq,
            missed,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn event(name: &str) -> Event {
        Event {
            event_id: uuid::Uuid::nil(),
            user_id: Some(7),
            session_id: None,
            event_type: None,
            event_name: name.into(),
            page_url: None,
            referrer: None,
            device_type: None,
            browser: None,
            os: None,
            country_code: None,
            region: None,
            city: None,
            event_time_us: 1_700_000_000_000_000,
            properties: None,
            app_user_id: Some("7".into()),
            anonymous_id: None,
            source: None,
            traits: None,
        }
    }

    fn record(names: &[&str]) -> Record {
        Record {
            collector_id: "edge-1".into(),
            received_at_us: 1_700_000_000_000_000,
            events: names.iter().map(|n| event(n)).collect(),
        }
    }

    /// What ingest does: the record's bytes, once buffered.
    fn push(tail: &Tail, r: Record) {
        tail.push(Bytes::from(r.encode().unwrap()));
    }

    fn names(p: &Page) -> Vec<String> {
        p.events
            .iter()
            .map(|e| e.event.event_name.clone())
            .collect()
    }

    #[test]
    fn the_ring_is_bounded_and_numbers_every_event() {
        let tail = Tail::new(3);
        push(&tail, record(&["a", "b"]));
        push(&tail, record(&["c", "d", "e"]));
        let p = tail.page(None, 10);
        assert_eq!(names(&p), ["c", "d", "e"], "only the newest 3 are held");
        assert_eq!((p.first_seq, p.last_seq), (3, 5));
        let seqs: Vec<u64> = p.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);

        // After 3: 4 and 5, nothing missed. After 1: 2 was dropped by the bound.
        let p = tail.page(Some(3), 10);
        assert_eq!((names(&p), p.missed), (vec!["d".into(), "e".into()], 0));
        let p = tail.page(Some(1), 10);
        assert_eq!((names(&p).len(), p.missed), (3, 1));
        // Up to date: nothing; a limit takes the oldest after the cursor (no gap).
        assert!(tail.page(Some(5), 10).events.is_empty());
        assert_eq!(names(&tail.page(Some(2), 2)), ["c", "d"]);
        // Without a cursor, the newest `limit`.
        assert_eq!(names(&tail.page(None, 1)), ["e"]);
        // A cursor from another process' numbering (larger than any given): from the start.
        assert_eq!(names(&tail.page(Some(99), 10)), ["c", "d", "e"]);

        // A batch larger than the ring keeps its newest events; the rest count as missed.
        push(&tail, record(&["f", "g", "h", "i", "j"]));
        let p = tail.page(Some(5), 10);
        assert_eq!(names(&p), ["h", "i", "j"]);
        assert_eq!((p.missed, p.last_seq), (2, 10));
    }

    #[test]
    fn fields_and_properties_are_cut() {
        let tail = Tail::new(10);
        let mut e = event(&"購".repeat(100)); // 300 bytes
        e.page_url = Some("x".repeat(5000));
        let big: Map<String, Value> = (0..200)
            .map(|i| (format!("k{i}"), Value::String("v".repeat(300))))
            .collect();
        e.properties = Some(Value::Object(big).to_string());
        let mut r = record(&[]);
        r.events.push(e);
        r.events.push(event("small"));
        push(&tail, r);
        let p = tail.page(None, 10);
        let t = &p.events[0];
        assert!(t.truncated);
        assert!(t.event.event_name.len() <= MAX_FIELD_BYTES);
        assert_eq!(t.event.event_name, "購".repeat(66));
        assert_eq!(
            t.event.page_url.as_deref().map(str::len),
            Some(MAX_FIELD_BYTES)
        );
        let props = t.properties.as_deref().unwrap_or_default();
        assert!(props.len() <= MAX_PROPERTIES_BYTES, "{}", props.len());
        let v: Value = serde_json::from_str(props).unwrap();
        assert_eq!(v["k0"].as_str().map(str::len), Some(MAX_FIELD_BYTES));
        assert!(!p.events[1].truncated);
        let j = t.to_json();
        assert_eq!(j["seq"], 1);
        assert_eq!(j["truncated"], true);
        assert_eq!(j["received_at"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_too() {
        // A capacity of 2 events holds at most 8 KiB of records.
        let tail = Tail::new(2);
        let mut r = record(&[]);
        let mut big = event("big");
        // Incompressible enough: LZ4 cannot shrink distinct numbers much.
        let text: String = (0..6000).map(|i| format!("{}", i * 7919 % 10007)).collect();
        big.properties = Some(json!({ "x": text }).to_string());
        r.events.push(big);
        push(&tail, r);
        let p = tail.page(None, 10);
        assert!(p.events.is_empty(), "a record over the bound is not held");
        assert_eq!((p.first_seq, p.last_seq), (0, 1));
        push(&tail, record(&["a"]));
        let p = tail.page(Some(0), 10);
        assert_eq!((names(&p), p.missed, p.first_seq), (vec!["a".into()], 1, 2));
    }

    #[test]
    fn off_holds_nothing() {
        let tail = Tail::new(0);
        push(&tail, record(&["a"]));
        assert!(tail.page(None, 10).events.is_empty());
        assert!(!tail.enabled());
    }
}
