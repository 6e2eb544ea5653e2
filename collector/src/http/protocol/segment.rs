//! Segment's HTTP Tracking API, which RudderStack and Jitsu accept too: messages with a
//! `type` (`track`, `page`, `screen`, `identify`, `group`, `alias`) posted one at a time to
//! `/v1/<type>` or together to `/v1/batch` / `/v1/import`.
//!
//! Mapping into the seed's event shape (see the README's Segment table):
//!
//! | Segment | event |
//! | --- | --- |
//! | `event` (track); `page_view` for page, `screen_view` for screen, the type otherwise | `event_name` |
//! | `type` | `event_type` |
//! | `messageId`: a UUID as it is, otherwise UUIDv5(write key + messageId) | `event_id` |
//! | `timestamp`, else `originalTimestamp` (never `sentAt`: it changes on every retry) | `event_time` |
//! | `userId` (any string or integer, as sent) | `user_id` |
//! | `anonymousId`; for `alias`, `previousId` (so the alias links it to `userId`) | `anonymous_id` |
//! | `identify`'s `traits`, else its `context.traits` | `traits` |
//! | `context.sessionId`, `properties.session_id` / `sessionId` | `session_id` |
//! | `context.page.url` / `referrer`, else `properties.url` / `referrer` | `page_url`, `referrer` |
//! | `context.userAgent` (preferred over the request's header) | `browser`, `os`, `device_type` |
//! | `context.ip` (located instead of the request's address; never stored) | `ip` |
//! | `properties`, plus `$segment`: type, name, userId, anonymousId, traits, the rest of `context` | `properties` |
//!
//! Segment's bounds: a message over `limits.segment_max_message_bytes` (32 KiB, as
//! received) is refused with 400 naming its index; a request holding Segment messages over
//! `limits.segment_max_batch_bytes` (500 KiB, decoded) gets 413.
//!
//! Invariant: the event id depends only on the write key and `messageId`, so a retried
//! message (same `messageId`, a new `sentAt`) gets the same id and is deduplicated by the
//! database's unique key; seed-shaped messages (with an `event_name`) are left untouched,
//! and Segment's bounds do not apply to them.

use http::StatusCode;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{Protocol, Request};
use crate::{config::Limits, event::FieldError, http::Refusal};

pub struct Segment;

/// The namespace of event ids made from a Segment `messageId` (a fixed, random UUID).
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5e6d_1c0a_8f3b_4a7e_9d21_6b0c_e4f8_a913);

impl Protocol for Segment {
    fn name(&self) -> &'static str {
        "segment"
    }
    fn any_content_type(&self) -> bool {
        true
    }
    fn key_in_body(&self) -> bool {
        true
    }
    fn check(
        &self,
        messages: &[Value],
        body_bytes: usize,
        limits: &Limits,
        request: &Request<'_>,
    ) -> Result<Vec<FieldError>, Refusal> {
        let mut errors = Vec::new();
        let mut any = false;
        for (index, m) in messages.iter().enumerate() {
            if kind_of(m, request.route_type).is_none() {
                continue;
            }
            any = true;
            let size = json_size(m);
            let max = limits.segment_max_message_bytes;
            if size > max {
                errors.push(FieldError {
                    index,
                    field: String::new(),
                    message: format!(
                        "the message is {size} bytes, more than the {max} a Segment message may \
                         be (limits.segment_max_message_bytes)"
                    ),
                });
            }
        }
        let max = limits.segment_max_batch_bytes;
        if any && body_bytes > max {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the batch is {body_bytes} bytes, more than the {max} a Segment batch may be \
                     (limits.segment_max_batch_bytes)"
                ),
            ));
        }
        Ok(errors)
    }
    fn translate(&self, messages: &mut [Value], request: &Request<'_>) {
        for m in messages.iter_mut() {
            let Some(kind) = kind_of(m, request.route_type) else {
                continue;
            };
            let Value::Object(msg) = m else { continue };
            *m = Value::Object(to_event(msg, &kind, request.write_key));
        }
    }
}

/// The type of a Segment message (its own, else the route's); `None` for what is not one (a
/// seed-shaped event, a message without a type on `/v1/batch`, not an object).
fn kind_of(m: &Value, route_type: Option<&'static str>) -> Option<String> {
    let msg = m.as_object()?;
    if msg.contains_key("event_name") {
        return None;
    }
    msg.get("type")
        .and_then(Value::as_str)
        .or(route_type)
        .map(str::to_string)
}

/// The size of a value serialised as JSON, without holding the text.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail, and a Value always serialises.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The event id of a message: its `messageId` when that is a UUID, else a UUIDv5 of the
/// write key and the `messageId`; `None` (a new id) when it has none.
pub fn event_id(message_id: Option<&str>, write_key: Option<&str>) -> Option<Uuid> {
    super::stable_event_id(&MESSAGE_ID_NAMESPACE, message_id, write_key)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

fn to_event(msg: &Map<String, Value>, kind: &str, write_key: Option<&str>) -> Map<String, Value> {
    let whole = Value::Object(msg.clone());
    let props = msg.get("properties").cloned().unwrap_or(json!({}));
    let mut out = Map::new();
    let name = match kind {
        "track" => msg.get("event").cloned().unwrap_or(Value::Null),
        "page" => json!("page_view"),
        "screen" => json!("screen_view"),
        other => json!(other),
    };
    out.insert("event_name".into(), name);
    out.insert("event_type".into(), json!(kind));
    let message_id = msg.get("messageId").and_then(Value::as_str);
    if let Some(id) = event_id(message_id, write_key) {
        out.insert("event_id".into(), json!(id.to_string()));
    } else if let Some(v) = msg
        .get("messageId")
        .filter(|v| !v.is_string() && !v.is_null())
    {
        // A messageId of the wrong type: validation names the field.
        out.insert("event_id".into(), v.clone());
    }
    if let Some(t) = msg
        .get("timestamp")
        .or_else(|| msg.get("originalTimestamp"))
    {
        out.insert("event_time".into(), t.clone());
    }
    if let Some(u) = msg.get("userId").filter(|v| !v.is_null()) {
        out.insert("user_id".into(), u.clone());
    }
    let anonymous = match kind {
        "alias" => msg.get("previousId"),
        _ => msg.get("anonymousId"),
    };
    if let Some(a) = anonymous.filter(|v| !v.is_null()) {
        // An integer anonymous id (some clients) as its text; other types are refused.
        let a = if a.is_number() {
            json!(a.to_string())
        } else {
            a.clone()
        };
        out.insert("anonymous_id".into(), a);
    }
    if kind == "identify" {
        let traits = msg
            .get("traits")
            .or_else(|| whole.get("context").and_then(|c| c.get("traits")));
        if let Some(t) = traits.filter(|v| !v.is_null()) {
            out.insert("traits".into(), t.clone());
        }
    }
    let session = str_at(&whole, &["context", "sessionId"])
        .or_else(|| str_at(&props, &["session_id"]))
        .or_else(|| str_at(&props, &["sessionId"]))
        .map(str::to_string)
        .or_else(|| {
            // RudderStack sends a numeric session id.
            whole
                .get("context")
                .and_then(|c| c.get("sessionId"))
                .and_then(Value::as_i64)
                .map(|n| n.to_string())
        });
    if let Some(s) = session {
        out.insert("session_id".into(), json!(s));
    }
    for (field, key) in [("page_url", "url"), ("referrer", "referrer")] {
        if let Some(v) =
            str_at(&whole, &["context", "page", key]).or_else(|| str_at(&props, &[key]))
        {
            out.insert(field.into(), json!(v));
        }
    }
    super::insert_user_agent(&mut out, str_at(&whole, &["context", "userAgent"]));
    // The end user's address, for geography only (see crate::http::geo): never stored.
    if let Some(ip) = str_at(&whole, &["context", "ip"]) {
        out.insert("ip".into(), json!(ip));
    }
    out.insert("properties".into(), properties(msg, kind, props));
    out
}

/// The message's own properties, plus what the event columns do not hold, under `$segment`.
fn properties(msg: &Map<String, Value>, kind: &str, props: Value) -> Value {
    let mut p = match props {
        Value::Object(o) => o,
        other => {
            let mut o = Map::new();
            o.insert("value".into(), other);
            o
        }
    };
    let mut context = msg
        .get("context")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Kept in columns already; the address is never stored.
    context.remove("userAgent");
    context.remove("ip");
    let mut extra = Map::new();
    extra.insert("type".into(), json!(kind));
    for key in [
        "name",
        "userId",
        "anonymousId",
        "traits",
        "groupId",
        "previousId",
    ] {
        if let Some(v) = msg.get(key).filter(|v| !v.is_null()) {
            extra.insert(key.into(), v.clone());
        }
    }
    if !context.is_empty() {
        extra.insert("context".into(), Value::Object(context));
    }
    p.insert("$segment".into(), Value::Object(extra));
    Value::Object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(v: Value, route_type: Option<&'static str>) -> Value {
        let mut items = vec![v];
        Segment.translate(
            &mut items,
            &Request {
                route_type,
                write_key: Some("wk"),
            },
        );
        items.remove(0)
    }

    #[test]
    fn maps_a_track_message() {
        let e = translate(
            json!({
                "type": "track", "event": "加入购物车", "userId": "42", "anonymousId": "a-1",
                "messageId": "node-next-1733050000000-abc", "timestamp": "2026-12-01T10:00:00.000Z",
                "sentAt": "2026-12-01T10:00:05.000Z",
                "properties": {"sku": "A1"},
                "context": {"page": {"url": "https://shop.example/p/1", "referrer": "https://r.example/"},
                            "ip": "198.51.100.7",
                            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                            "library": {"name": "analytics-node", "version": "3.1.0"}, "sessionId": "s-9"}
            }),
            None,
        );
        assert_eq!(e["event_name"], "加入购物车");
        assert_eq!(e["event_type"], "track");
        assert_eq!(e["user_id"], "42");
        assert_eq!(e["anonymous_id"], "a-1");
        assert_eq!(e["session_id"], "s-9");
        assert_eq!(e["event_time"], "2026-12-01T10:00:00.000Z");
        assert_eq!(e["page_url"], "https://shop.example/p/1");
        assert_eq!(e["device_type"], "desktop");
        assert_eq!(e["properties"]["sku"], "A1");
        assert_eq!(e["properties"]["$segment"]["anonymousId"], "a-1");
        assert_eq!(
            e["properties"]["$segment"]["context"]["library"]["name"],
            "analytics-node"
        );
        // The address goes to geography, not into the stored properties.
        assert_eq!(e["ip"], "198.51.100.7");
        assert!(e["properties"]["$segment"]["context"].get("ip").is_none());
        let id = e["event_id"].as_str().expect("id");
        assert!(Uuid::parse_str(id).is_ok());
        // The same messageId retried (another sentAt) gets the same id; another key does not.
        assert_eq!(
            event_id(Some("node-next-1733050000000-abc"), Some("wk")).map(|u| u.to_string()),
            Some(id.to_string())
        );
        assert_ne!(
            event_id(Some("node-next-1733050000000-abc"), Some("other")),
            event_id(Some("node-next-1733050000000-abc"), Some("wk"))
        );
    }

    #[test]
    fn pages_are_page_views_and_the_route_gives_the_type() {
        let e = translate(
            json!({"name": "Home", "anonymousId": "a", "properties": {"url": "https://x/"}}),
            Some("page"),
        );
        assert_eq!(e["event_name"], "page_view");
        assert_eq!(e["page_url"], "https://x/");
        assert_eq!(e["properties"]["$segment"]["name"], "Home");
        let e = translate(
            json!({"type": "identify", "userId": "usr_8f3a", "traits": {"plan": "pro"}}),
            None,
        );
        assert_eq!(e["event_name"], "identify");
        assert_eq!(e["user_id"], "usr_8f3a");
        assert_eq!(e["traits"]["plan"], "pro");
        let e = translate(
            json!({"type": "alias", "userId": "usr_8f3a", "previousId": "anon-7"}),
            None,
        );
        assert_eq!(
            (e["user_id"].as_str(), e["anonymous_id"].as_str()),
            (Some("usr_8f3a"), Some("anon-7"))
        );
        assert_eq!(e["properties"]["$segment"]["previousId"], "anon-7");
    }

    #[test]
    fn bounds_messages_and_batches_of_segment_messages_only() {
        let limits = Limits {
            segment_max_message_bytes: 100,
            segment_max_batch_bytes: 1000,
            ..Limits::default()
        };
        let request = Request {
            route_type: None,
            write_key: None,
        };
        let big = json!({"type": "track", "event": "e", "properties": {"p": "x".repeat(100)}});
        let small = json!({"type": "track", "event": "e"});
        let seed = json!({"event_name": "e", "properties": {"p": "x".repeat(100)}});
        let messages = [small.clone(), big, seed.clone()];
        let errors = Segment
            .check(&messages, 500, &limits, &request)
            .expect("not too large");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].index, 1);
        assert!(
            errors[0].message.contains("more than the 100"),
            "{errors:?}"
        );
        let r = Segment
            .check(&[small], 1001, &limits, &request)
            .expect_err("batch too large");
        assert_eq!((r.status.as_u16(), r.reason), (413, "too_large"));
        // Seed-shaped events on Segment routes keep the collector's own limits.
        assert!(Segment
            .check(&[seed], 5000, &limits, &request)
            .expect("seed")
            .is_empty());
        assert_eq!(json_size(&json!({"a": [1, "b"]})), r#"{"a":[1,"b"]}"#.len());
    }

    #[test]
    fn seed_events_and_uuid_message_ids_are_kept() {
        let seed = json!({"event_name": "x", "type": "track"});
        assert_eq!(translate(seed.clone(), Some("track")), seed);
        let u = "0190b6e4-0000-7000-8000-000000000001";
        let e = translate(json!({"type": "track", "event": "e", "messageId": u}), None);
        assert_eq!(e["event_id"], u);
    }
}
