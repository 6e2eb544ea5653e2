//! The on-disk format of one buffer record: the events of one accepted request.
//!
//! Layout: `[format version: u8][event count: u32 LE][received_at µs: i64 LE][body]`. The
//! fixed header lets start-up and metrics read counts and ages without decoding bodies.
//!
//! Invariant: a record written by any released version decodes, or is reported as damaged;
//! decoding arbitrary bytes never panics. Adding a field means a new format version byte
//! (bincode 1.3 cannot skip unknown fields, FACTS.md), never changing an old version's body.
//!
//! Versions (every one still decodes):
//! - 1: body = bincode (fixed-width integers) of `(collector_id, Vec<EventV1>)`, the seed's
//!   fields. Decodes into today's [`Event`] with the identity fields empty, except
//!   `app_user_id`, which is its numeric user id as text, as a version-2 record would hold.
//! - 2: the same encoding of `(collector_id, Vec<Event>)`, adding the identity fields
//!   (`app_user_id`, `anonymous_id`, `source`, `traits`).
//! - 3 (current): the same fields as 2; body = `[decoded length: u32 LE][LZ4 block]` of
//!   bincode with variable-length integers. Measured (README, Benchmarks): a 50-event
//!   request's record is about a third of its version-2 size, and sled's cost per insert
//!   and per flush follows the bytes (a node of 16 large records is rewritten whole, and
//!   past 128 KiB as a separate blob file).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Event;

/// The format written by this version.
pub const VERSION: u8 = 3;
/// The oldest format still read.
const OLDEST: u8 = 1;
const HEADER: usize = 1 + 4 + 8;
/// Refuse to allocate for bodies claiming absurd sizes (a damaged length prefix).
const MAX_RECORD_BYTES: u64 = 256 << 20;

/// The events of one request, with where and when they were accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub collector_id: String,
    pub received_at_us: i64,
    pub events: Vec<Event>,
}

/// The fixed-size prefix of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub events: u32,
    pub received_at_us: i64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is {0} bytes, shorter than its {HEADER}-byte header")]
    Truncated(usize),
    #[error("unknown record format version {0}")]
    UnknownVersion(u8),
    #[error("record body does not decode: {0}")]
    Body(String),
    #[error("record header says {header} events but the body holds {body}")]
    CountMismatch { header: u32, body: usize },
}

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        use bincode::Options;
        BODY.with(|cell| {
            let mut body = cell.borrow_mut();
            body.clear();
            bincode::DefaultOptions::new()
                .with_varint_encoding()
                .serialize_into(&mut *body, &(&self.collector_id, &self.events))
                .map_err(|e| RecordError::Body(e.to_string()))?;
            let len = u32::try_from(body.len())
                .map_err(|_| RecordError::Body("record body over 4 GiB".into()))?;
            let start = HEADER + 4;
            let mut out = vec![0u8; start + lz4_flex::block::get_maximum_output_size(body.len())];
            out[0] = VERSION;
            out[1..5].copy_from_slice(&(self.events.len() as u32).to_le_bytes());
            out[5..13].copy_from_slice(&self.received_at_us.to_le_bytes());
            out[13..17].copy_from_slice(&len.to_le_bytes());
            let n = lz4_flex::block::compress_into(&body, &mut out[start..])
                .map_err(|e| RecordError::Body(e.to_string()))?;
            out.truncate(start + n);
            // A large request must not keep a large scratch buffer alive on every thread.
            if body.capacity() > SCRATCH_KEPT {
                *body = Vec::new();
            }
            Ok(out)
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let h = header(bytes)?;
        let (collector_id, events): (String, Vec<Event>) = match h.version {
            1 => {
                let (id, old): (String, Vec<EventV1>) = body(&bytes[HEADER..])?;
                (id, old.into_iter().map(Event::from).collect())
            }
            2 => body(&bytes[HEADER..])?,
            _ => {
                use bincode::Options;
                let plain = decompress(&bytes[HEADER..])?;
                bincode::DefaultOptions::new()
                    .with_varint_encoding()
                    .with_limit(MAX_RECORD_BYTES)
                    .deserialize(&plain)
                    .map_err(|e| RecordError::Body(e.to_string()))?
            }
        };
        if events.len() != h.events as usize {
            return Err(RecordError::CountMismatch {
                header: h.events,
                body: events.len(),
            });
        }
        Ok(Record {
            collector_id,
            received_at_us: h.received_at_us,
            events,
        })
    }
}

thread_local! {
    /// Scratch space for a record's body before compression, reused by each thread.
    static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// The largest scratch buffer a thread keeps between records.
const SCRATCH_KEPT: usize = 256 << 10;

/// A version-3 body: its declared length (bounded), then the LZ4 block.
fn decompress(body: &[u8]) -> Result<Vec<u8>, RecordError> {
    let Some((len, block)) = body.split_first_chunk::<4>() else {
        return Err(RecordError::Body("missing body length".into()));
    };
    let len = u32::from_le_bytes(*len) as u64;
    if len > MAX_RECORD_BYTES {
        return Err(RecordError::Body(format!(
            "body claims {len} bytes, more than {MAX_RECORD_BYTES}"
        )));
    }
    lz4_flex::block::decompress(block, len as usize).map_err(|e| RecordError::Body(e.to_string()))
}

/// A version-1 or 2 bincode body (fixed-width integers), bounded.
fn body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RecordError> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(MAX_RECORD_BYTES)
        .deserialize(body)
        .map_err(|e| RecordError::Body(e.to_string()))
}

/// An event as format version 1 stored it (field order matters to bincode).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventV1 {
    event_id: uuid::Uuid,
    user_id: Option<i64>,
    session_id: Option<String>,
    event_type: Option<String>,
    event_name: String,
    page_url: Option<String>,
    referrer: Option<String>,
    device_type: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    country_code: Option<String>,
    region: Option<String>,
    city: Option<String>,
    event_time_us: i64,
    properties: Option<String>,
}

impl From<EventV1> for Event {
    fn from(e: EventV1) -> Event {
        Event {
            event_id: e.event_id,
            user_id: e.user_id,
            session_id: e.session_id,
            event_type: e.event_type,
            event_name: e.event_name,
            page_url: e.page_url,
            referrer: e.referrer,
            device_type: e.device_type,
            browser: e.browser,
            os: e.os,
            country_code: e.country_code,
            region: e.region,
            city: e.city,
            event_time_us: e.event_time_us,
            properties: e.properties,
            app_user_id: e.user_id.map(|u| u.to_string()),
            anonymous_id: None,
            source: None,
            traits: None,
        }
    }
}

/// Reads only the fixed header.
pub fn header(bytes: &[u8]) -> Result<Header, RecordError> {
    if bytes.len() < HEADER {
        return Err(RecordError::Truncated(bytes.len()));
    }
    let version = bytes[0];
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion(version));
    }
    let mut count = [0u8; 4];
    count.copy_from_slice(&bytes[1..5]);
    let mut at = [0u8; 8];
    at.copy_from_slice(&bytes[5..13]);
    Ok(Header {
        version,
        events: u32::from_le_bytes(count),
        received_at_us: i64::from_le_bytes(at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            any::<u128>(),
            any::<Option<i64>>(),
            any::<Option<String>>(),
            ".{0,20}",
            any::<i64>(),
            any::<Option<String>>(),
            any::<Option<String>>(),
        )
            .prop_map(
                |(id, user_id, session_id, event_name, t, properties, anonymous_id)| Event {
                    event_id: Uuid::from_u128(id),
                    user_id,
                    session_id,
                    event_type: None,
                    event_name,
                    page_url: None,
                    referrer: None,
                    device_type: Some("mobile".into()),
                    browser: None,
                    os: None,
                    country_code: Some("FR".into()),
                    region: None,
                    city: None,
                    event_time_us: t,
                    properties,
                    app_user_id: user_id.map(|u| u.to_string()),
                    anonymous_id,
                    source: Some("shop".into()),
                    traits: Some(r#"{"plan":"pro"}"#.into()),
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(events in prop::collection::vec(arb_event(), 0..8), at in any::<i64>(), cid in ".{0,12}") {
            let r = Record { collector_id: cid, received_at_us: at, events };
            let bytes = r.encode().expect("encode");
            prop_assert_eq!(header(&bytes).expect("header").events as usize, r.events.len());
            prop_assert_eq!(Record::decode(&bytes).expect("decode"), r);
        }

        #[test]
        fn version_1_records_still_decode(events in prop::collection::vec(arb_event(), 0..8), at in any::<i64>()) {
            let old: Vec<EventV1> = events.iter().map(|e| EventV1 {
                event_id: e.event_id, user_id: e.user_id, session_id: e.session_id.clone(),
                event_type: e.event_type.clone(), event_name: e.event_name.clone(),
                page_url: None, referrer: None, device_type: e.device_type.clone(), browser: None,
                os: None, country_code: e.country_code.clone(), region: None, city: None,
                event_time_us: e.event_time_us, properties: e.properties.clone(),
            }).collect();
            let body = bincode::serialize(&("c".to_string(), &old)).expect("encode");
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(&(old.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&at.to_le_bytes());
            bytes.extend_from_slice(&body);
            let r = Record::decode(&bytes).expect("decode");
            prop_assert_eq!(r.events.len(), events.len());
            for (got, e) in r.events.iter().zip(&events) {
                prop_assert_eq!(got.event_id, e.event_id);
                prop_assert_eq!(&got.app_user_id, &e.user_id.map(|u| u.to_string()));
                prop_assert_eq!(&got.anonymous_id, &None);
                prop_assert_eq!(&got.properties, &e.properties);
            }
        }

        #[test]
        fn version_2_records_still_decode(events in prop::collection::vec(arb_event(), 0..8), at in any::<i64>()) {
            // What version 2 wrote: fixed-width bincode of (collector id, events), no compression.
            let body = bincode::serialize(&("c".to_string(), &events)).expect("encode");
            let mut bytes = vec![2u8];
            bytes.extend_from_slice(&(events.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&at.to_le_bytes());
            bytes.extend_from_slice(&body);
            let r = Record::decode(&bytes).expect("decode");
            prop_assert_eq!(r, Record { collector_id: "c".into(), received_at_us: at, events });
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Record::decode(&bytes);
            // Behind a valid version-3 header too, so the decompressor sees them.
            let mut v3 = vec![VERSION, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            v3.extend_from_slice(&bytes);
            let _ = Record::decode(&v3);
        }

        #[test]
        fn damaged_records_never_panic(events in prop::collection::vec(arb_event(), 1..4), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let r = Record { collector_id: "c".into(), received_at_us: 1, events };
            let mut bytes = r.encode().expect("encode");
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            let _ = Record::decode(&bytes);
            bytes.truncate(i);
            let _ = Record::decode(&bytes);
        }
    }
}
