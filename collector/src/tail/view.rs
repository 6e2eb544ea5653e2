//! What a reader of the tail gets: an event cut to the tail's bounds ([`MAX_FIELD_BYTES`],
//! [`MAX_PROPERTIES_BYTES`], traits left out) and the `/v1/tail` JSON answer. The ring
//! ([`super::Tail`]) holds records as stored and cuts only the events a reader asks for.

use serde_json::{json, Map, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{Page, TailEvent, MAX_FIELD_BYTES, MAX_PROPERTIES_BYTES};
use crate::event::Event;

/// `s` cut in place to at most `max` bytes at a character boundary; whether it was cut.
fn cut_in_place(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.shrink_to_fit();
    true
}

/// `s` cut to at most `max` bytes at a character boundary; whether it was cut.
fn cut(s: &str, max: usize) -> (String, bool) {
    let mut owned = s.to_string();
    let was = cut_in_place(&mut owned, max);
    (owned, was)
}

/// The event as the tail keeps it: strings cut, properties bounded, traits left out. The
/// event's own strings are reused (moved, cut in place).
pub(super) fn shrink(mut e: Event, received_at_us: i64) -> TailEvent {
    let mut truncated = false;
    let mut c = |s: &mut String| truncated |= cut_in_place(s, MAX_FIELD_BYTES);
    for s in [
        &mut e.session_id,
        &mut e.event_type,
        &mut e.page_url,
        &mut e.referrer,
        &mut e.browser,
        &mut e.os,
        &mut e.region,
        &mut e.city,
        &mut e.app_user_id,
        &mut e.anonymous_id,
    ]
    .into_iter()
    .flatten()
    {
        c(s);
    }
    c(&mut e.event_name);
    e.traits = None;
    let properties = e.properties.take().map(|p| {
        if p.len() <= MAX_PROPERTIES_BYTES {
            p
        } else {
            truncated = true;
            shrink_properties(&p)
        }
    });
    TailEvent {
        seq: 0,
        received_at_us,
        event: e,
        properties,
        truncated,
    }
}

/// A large properties object reduced to its first keys, each string value cut and nested
/// values replaced by the start of their JSON text, within about [`MAX_PROPERTIES_BYTES`].
fn shrink_properties(text: &str) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return "{}".to_string();
    };
    let mut out = Map::new();
    let mut size = 2;
    for (k, v) in map {
        let (key, _) = cut(&k, 64);
        let value = match v {
            Value::String(s) => Value::String(cut(&s, MAX_FIELD_BYTES).0),
            Value::Array(_) | Value::Object(_) => {
                Value::String(cut(&v.to_string(), MAX_FIELD_BYTES).0)
            }
            scalar => scalar,
        };
        let add = key.len() + value.to_string().len() + 4;
        if size + add > MAX_PROPERTIES_BYTES {
            break;
        }
        size += add;
        out.insert(key, value);
    }
    Value::Object(out).to_string()
}

fn rfc3339(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

impl TailEvent {
    /// The event in the ingest API's shape plus `seq`, `received_at` and `truncated`.
    pub fn to_json(&self) -> Value {
        let e = &self.event;
        let properties = self
            .properties
            .as_deref()
            .map(|p| serde_json::from_str::<Value>(p).unwrap_or(Value::String(p.to_string())));
        json!({
            "seq": self.seq,
            "received_at": rfc3339(self.received_at_us),
            "event_id": e.event_id.to_string(),
            "event_name": e.event_name,
            "event_time": rfc3339(e.event_time_us),
            "user_id": e.app_user_id,
            "anonymous_id": e.anonymous_id,
            "source": e.source,
            "session_id": e.session_id,
            "event_type": e.event_type,
            "page_url": e.page_url,
            "referrer": e.referrer,
            "device_type": e.device_type,
            "browser": e.browser,
            "os": e.os,
            "country_code": e.country_code,
            "region": e.region,
            "city": e.city,
            "properties": properties,
            "truncated": self.truncated,
        })
    }
}

impl Page {
    /// The `/v1/tail` answer.
    pub fn to_json(&self, collector_id: &str) -> Value {
        json!({
            "collector_id": collector_id,
            "epoch": self.epoch,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "missed": self.missed,
            "events": self.events.iter().map(TailEvent::to_json).collect::<Vec<_>>(),
        })
    }
}
