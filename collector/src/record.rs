//! The on-disk format of one buffer record: the events of one accepted request.
//!
//! Layout: `[format version: u8][event count: u32 LE][received_at µs: i64 LE][bincode body]`.
//! The fixed header lets start-up and metrics read counts and ages without decoding bodies.
//!
//! Invariant: a record written by any released version decodes, or is reported as damaged;
//! decoding arbitrary bytes never panics. Adding a field means a new format version byte
//! (bincode 1.3 cannot skip unknown fields, FACTS.md), never changing version 1's body.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Event;

/// The format written by this version.
pub const VERSION: u8 = 1;
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
        let body = bincode::serialize(&(&self.collector_id, &self.events))
            .map_err(|e| RecordError::Body(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.push(VERSION);
        out.extend_from_slice(&(self.events.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.received_at_us.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let h = header(bytes)?;
        let (collector_id, events): (String, Vec<Event>) = {
            use bincode::Options;
            bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .allow_trailing_bytes()
                .with_limit(MAX_RECORD_BYTES)
                .deserialize(&bytes[HEADER..])
                .map_err(|e| RecordError::Body(e.to_string()))?
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

/// Reads only the fixed header.
pub fn header(bytes: &[u8]) -> Result<Header, RecordError> {
    if bytes.len() < HEADER {
        return Err(RecordError::Truncated(bytes.len()));
    }
    let version = bytes[0];
    if version != VERSION {
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
        )
            .prop_map(
                |(id, user_id, session_id, event_name, t, properties)| Event {
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
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Record::decode(&bytes);
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
