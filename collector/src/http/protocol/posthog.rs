//! PostHog's capture API: events with an `event` and a `distinct_id`, posted as a batch
//! (`{"api_key": …, "batch": [...]}`, what `posthog-node` sends, gzipped, to `/batch/`), as
//! an array (what `posthog-js` sends to `/e/`) or as one event object, to `/e/`,
//! `/capture/` or `/i/v0/e/` — in any of the body forms of [`crate::http::form`] (gzip by
//! `?compression=gzip-js`, base64, `data=` forms). The project key is the body's `api_key`
//! or `token`, else the events' own `token`, `$token`, `api_key` or `properties.token` (one
//! key for all of them), or any of the header forms of [`crate::http::auth`].
//!
//! Mapping into the seed's event shape (see the README's PostHog table):
//!
//! | PostHog | event |
//! | --- | --- |
//! | `event`: `$pageview` → `page_view`, `$identify` → `identify`, any other name as it is | `event_name` |
//! | `page` for `$pageview`, `identify` for `$identify`, `track` otherwise | `event_type` |
//! | `uuid`: a UUID as it is, otherwise UUIDv5(key + uuid) | `event_id` |
//! | `timestamp` | `event_time` |
//! | `distinct_id` (top level, else `properties.distinct_id`), unless `properties.$is_identified` is `false` | `user_id` |
//! | `properties.$anon_distinct_id` (an `$identify`), else `$device_id`; `distinct_id` when not identified | `anonymous_id` |
//! | `$set` (in the properties, else top level) | `traits` |
//! | `properties.$session_id` | `session_id` |
//! | `properties.$current_url`, `properties.$referrer` (not posthog-js's `$direct`, which stays a property) | `page_url`, `referrer` |
//! | `properties.$raw_user_agent`, else `$user_agent` (preferred over the request's header) | `browser`, `os`, `device_type` |
//! | `properties.$ip`, else a top-level `ip` (located instead of the request's address; never stored) | `ip` |
//! | `properties` (less the fields above and `token`), plus `$posthog`: `distinct_id`, `$anon_distinct_id`, `$set`, `$set_once`, the message's other fields | `properties` |
//!
//! Invariant: the event id depends only on the key and `uuid`, so a resent event gets the
//! same id and is deduplicated by the database's unique key; the project key is never
//! stored; seed-shaped messages (with an `event_name`) are left untouched, so `/batch` keeps
//! taking the seed's events.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use http::StatusCode;

use super::{BodyEncoding, Protocol, Request};
use crate::http::{form::PostHogForms, Refusal};

pub struct PostHog;

/// The namespace of event ids made from a PostHog `uuid` that is not a UUID (a fixed,
/// random UUID).
const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x9b1e_47c2_3d5a_4f08_b6e3_0c7a_52d9_e1f4);

/// Message fields that become columns or are dropped (the key; the address, used for geography).
const CONSUMED: &[&str] = &[
    "event",
    "uuid",
    "timestamp",
    "distinct_id",
    "properties",
    "api_key",
    "token",
    "$token",
    "ip",
];

/// Where an event may carry the project key, in order.
const EVENT_KEYS: &[&str] = &["token", "$token", "api_key"];

impl Protocol for PostHog {
    fn name(&self) -> &'static str {
        "posthog"
    }
    // posthog-node labels its JSON correctly; the seed's `/batch`, which this protocol also
    // serves, keeps refusing other media types with 415 as documented.
    fn key_in_body(&self) -> bool {
        true
    }
    fn body_encoding(&self) -> &'static dyn BodyEncoding {
        &PostHogForms
    }
    fn lone_message(&self) -> bool {
        true
    }
    fn message_key(&self, messages: &[Value]) -> Result<Option<String>, Refusal> {
        let mut key: Option<&str> = None;
        for m in messages {
            let Some(k) = event_key(m) else { continue };
            match key {
                Some(seen) if seen != k => {
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "multiple_tokens",
                        "the events carry different project keys (token): send one per request",
                    ))
                }
                _ => key = Some(k),
            }
        }
        Ok(key.map(str::to_string))
    }
    fn translate(&self, messages: &mut [Value], request: &Request<'_>) {
        for m in messages.iter_mut() {
            let Value::Object(msg) = m else { continue };
            if msg.contains_key("event_name") || !msg.contains_key("event") {
                continue;
            }
            *m = Value::Object(to_event(msg, request.write_key));
        }
    }
}

/// The project key one event carries: `token`, `$token`, `api_key`, else
/// `properties.token` (what posthog-js sends).
fn event_key(m: &Value) -> Option<&str> {
    EVENT_KEYS
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str))
        .or_else(|| m.get("properties")?.get("token")?.as_str())
        .filter(|k| !k.is_empty())
}

/// The event id of a message: its `uuid` when that is a UUID, else a UUIDv5 of the key and
/// the `uuid`; `None` (a new id) when it has none.
pub fn event_id(uuid: Option<&str>, key: Option<&str>) -> Option<Uuid> {
    super::stable_event_id(&UUID_NAMESPACE, uuid, key)
}

fn to_event(msg: &Map<String, Value>, key: Option<&str>) -> Map<String, Value> {
    let mut props = match msg.get("properties") {
        Some(Value::Object(o)) => o.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            let mut o = Map::new();
            o.insert("value".into(), other.clone());
            o
        }
    };
    // The project key is a credential, never stored.
    props.remove("token");
    let mut out = Map::new();
    // The end user's address, for geography only (see crate::http::geo): never stored.
    let ip = props.remove("$ip");
    if let Some(Value::String(ip)) = ip.as_ref().or_else(|| msg.get("ip")) {
        out.insert("ip".into(), json!(ip));
    }
    let (name, kind) = match msg.get("event") {
        Some(Value::String(e)) if e == "$pageview" => (json!("page_view"), "page"),
        Some(Value::String(e)) if e == "$identify" => (json!("identify"), "identify"),
        Some(other) => (other.clone(), "track"),
        None => (Value::Null, "track"),
    };
    out.insert("event_name".into(), name);
    out.insert("event_type".into(), json!(kind));
    if let Some(id) = event_id(msg.get("uuid").and_then(Value::as_str), key) {
        out.insert("event_id".into(), json!(id.to_string()));
    } else if let Some(v) = msg.get("uuid").filter(|v| !v.is_string() && !v.is_null()) {
        // A uuid of the wrong type: validation names the field.
        out.insert("event_id".into(), v.clone());
    }
    if let Some(t) = msg.get("timestamp").filter(|v| !v.is_null()) {
        out.insert("event_time".into(), t.clone());
    }
    let distinct_id = msg
        .get("distinct_id")
        .filter(|v| !v.is_null())
        .cloned()
        .or_else(|| props.remove("distinct_id"));
    // posthog-js marks events of a visitor who has not identified with `$is_identified:
    // false`: their distinct_id is an anonymous id.
    let anonymous = props.get("$is_identified") == Some(&Value::Bool(false));
    let text = |v: &Value| {
        if v.is_number() {
            json!(v.to_string())
        } else {
            v.clone()
        }
    };
    if let Some(d) = distinct_id.as_ref() {
        let field = if anonymous { "anonymous_id" } else { "user_id" };
        out.insert(field.into(), text(d));
    }
    if !anonymous {
        let anon = ["$anon_distinct_id", "$device_id"].iter().find_map(|k| {
            props
                .get(*k)
                .filter(|v| !v.is_null() && Some(*v) != distinct_id.as_ref())
        });
        if let Some(a) = anon {
            out.insert("anonymous_id".into(), text(a));
        }
    }
    if let Some(t) = props
        .get("$set")
        .or_else(|| msg.get("$set"))
        .filter(|v| !v.is_null())
    {
        out.insert("traits".into(), t.clone());
    }
    for (field, prop) in [
        ("session_id", "$session_id"),
        ("page_url", "$current_url"),
        ("referrer", "$referrer"),
    ] {
        match props.get(prop) {
            // posthog-js's "no referrer": not a URL, kept as a property.
            Some(Value::String(v)) if v == "$direct" => {}
            Some(Value::String(v)) => {
                out.insert(field.into(), json!(v));
                props.remove(prop);
            }
            _ => {}
        }
    }
    let ua = ["$raw_user_agent", "$user_agent"]
        .iter()
        .find_map(|k| props.get(*k).and_then(Value::as_str));
    super::insert_user_agent(&mut out, ua);
    let mut extra = Map::new();
    if let Some(d) = distinct_id {
        extra.insert("distinct_id".into(), d);
    }
    for k in ["$anon_distinct_id", "$set", "$set_once"] {
        if let Some(v) = props.remove(k).filter(|v| !v.is_null()) {
            extra.insert(k.into(), v);
        }
    }
    // The message's other fields (a top-level `$set`, `type`, `offset`, …); the properties'
    // `$set` wins over a top-level one.
    for (k, v) in msg {
        if !CONSUMED.contains(&k.as_str()) && !v.is_null() {
            extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    props.insert("$posthog".into(), Value::Object(extra));
    out.insert("properties".into(), Value::Object(props));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(v: Value) -> Value {
        let mut items = vec![v];
        PostHog.translate(
            &mut items,
            &Request {
                route_type: None,
                write_key: Some("phc_k"),
            },
        );
        items.remove(0)
    }

    #[test]
    fn maps_a_pageview_as_posthog_node_sends_it() {
        let e = translate(json!({
            "event": "$pageview", "distinct_id": "42", "uuid": "01a2314d-d5e2-7847-8341-1913ae89a51a",
            "timestamp": "2026-12-01T11:11:54.337Z",
            "properties": {
                "$current_url": "https://shop.example/", "$referrer": "https://search.example/",
                "$session_id": "s-1", "$lib": "posthog-node", "token": "phc_k", "$ip": "192.0.2.4",
                "$raw_user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            }
        }));
        assert_eq!(e["event_name"], "page_view");
        assert_eq!(e["event_type"], "page");
        assert_eq!(e["event_id"], "01a2314d-d5e2-7847-8341-1913ae89a51a");
        assert_eq!(e["event_time"], "2026-12-01T11:11:54.337Z");
        assert_eq!(e["user_id"], "42");
        assert_eq!(e["session_id"], "s-1");
        assert_eq!(e["page_url"], "https://shop.example/");
        assert_eq!(e["referrer"], "https://search.example/");
        assert_eq!(e["device_type"], "mobile");
        assert_eq!(e["properties"]["$lib"], "posthog-node");
        assert_eq!(e["properties"]["$posthog"]["distinct_id"], "42");
        assert!(
            e["properties"].get("token").is_none(),
            "the key is not kept"
        );
        assert!(
            e["properties"].get("$current_url").is_none(),
            "kept in a column"
        );
        assert_eq!(e["ip"], "192.0.2.4", "for geography");
        assert!(e["properties"].get("$ip").is_none(), "never stored");
        let e = translate(json!({"event": "x", "distinct_id": 1, "ip": "192.0.2.5"}));
        assert_eq!(e["ip"], "192.0.2.5");
        assert!(e["properties"]["$posthog"].get("ip").is_none());
    }

    #[test]
    fn identify_keeps_the_identity_under_posthog() {
        let e = translate(json!({
            "event": "$identify", "distinct_id": "usr_8f3a",
            "properties": {"$set": {"plan": "pro"}, "$set_once": {}, "$anon_distinct_id": "anon-1"},
            "$set": {"top": 1}
        }));
        assert_eq!(e["event_name"], "identify");
        assert_eq!(e["event_type"], "identify");
        assert_eq!(e["user_id"], "usr_8f3a");
        assert_eq!(e["anonymous_id"], "anon-1");
        assert_eq!(e["traits"]["plan"], "pro");
        let ph = &e["properties"]["$posthog"];
        assert_eq!(ph["distinct_id"], "usr_8f3a");
        assert_eq!(ph["$anon_distinct_id"], "anon-1");
        assert_eq!(ph["$set"]["plan"], "pro");
        let e = translate(json!({"event": "$identify", "distinct_id": "1", "$set": {"top": 1}}));
        assert_eq!(e["properties"]["$posthog"]["$set"]["top"], 1);
        assert!(e.get("event_id").is_none(), "no uuid: a new id");
        // A distinct_id in the properties, as posthog-js may send it.
        let e = translate(json!({"event": "$autocapture", "properties": {"distinct_id": 7}}));
        assert_eq!(e["event_name"], "$autocapture");
        assert_eq!(e["event_type"], "track");
        assert_eq!(e["user_id"], "7");
        // A visitor posthog-js has not identified: the distinct_id is anonymous.
        let e = translate(json!({"event": "$pageview", "distinct_id": "0190-anon",
            "properties": {"$is_identified": false, "$device_id": "0190-anon"}}));
        assert_eq!(
            (e.get("user_id"), e["anonymous_id"].as_str()),
            (None, Some("0190-anon"))
        );
    }

    #[test]
    fn a_custom_event_with_a_non_uuid_id_gets_a_stable_id() {
        let e = translate(json!({
            "event": "加入购物车", "distinct_id": 42, "uuid": "order-1001",
            "properties": {"sku": "A1"}
        }));
        assert_eq!(e["event_name"], "加入购物车");
        assert_eq!(e["user_id"], "42");
        assert_eq!(e["properties"]["sku"], "A1");
        let id = e["event_id"].as_str().expect("id");
        assert_eq!(
            event_id(Some("order-1001"), Some("phc_k")).map(|u| u.to_string()),
            Some(id.to_string())
        );
        assert_ne!(
            event_id(Some("order-1001"), Some("other")),
            event_id(Some("order-1001"), Some("phc_k"))
        );
    }

    #[test]
    fn posthog_routes_and_the_seed_batch_route_share_the_protocol() {
        for path in ["/batch", "/batch/", "/e/", "/capture/", "/i/v0/e/"] {
            let route = super::super::find(path).expect(path);
            assert_eq!(route.protocol.name(), "posthog", "{path}");
            assert_eq!(route.endpoint, "batch", "{path}");
            assert_eq!(route.shape, super::super::Shape::Many, "{path}");
        }
    }

    #[test]
    fn the_key_comes_from_the_events_when_the_body_has_none() {
        let key = |v: Value| PostHog.message_key(v.as_array().expect("array"));
        assert_eq!(
            key(json!([{"event": "a", "properties": {"token": "phc_1"}},
                       {"event": "b", "properties": {"token": "phc_1"}}]))
            .expect("one key"),
            Some("phc_1".to_string())
        );
        assert_eq!(
            key(json!([{"event": "a", "$token": "phc_2"}])).expect("key"),
            Some("phc_2".into())
        );
        assert_eq!(key(json!([{"event": "a"}])).expect("none"), None);
        let e = key(json!([{"event": "a", "token": "phc_1"}, {"event": "b", "api_key": "phc_2"}]))
            .expect_err("two keys");
        assert_eq!((e.status.as_u16(), e.reason), (400, "multiple_tokens"));
        let e = translate(json!({"event": "x", "$token": "phc_k", "distinct_id": "1"}));
        assert!(
            e["properties"]["$posthog"].get("$token").is_none(),
            "the key is not kept"
        );
    }

    #[test]
    fn a_direct_visit_has_no_referrer_column() {
        let e = translate(json!({"event": "$pageview", "distinct_id": "1",
            "properties": {"$referrer": "$direct", "$current_url": "https://a.example/"}}));
        assert!(e.get("referrer").is_none(), "{e}");
        assert_eq!(e["properties"]["$referrer"], "$direct");
        assert_eq!(e["page_url"], "https://a.example/");
    }

    #[test]
    fn a_lone_event_object_is_one_message_on_posthog_routes_only() {
        let limits = crate::config::Limits::default();
        let lone = br#"{"event": "$pageview", "distinct_id": "1", "api_key": "phc_k"}"#;
        let (items, key) =
            crate::http::parse::parse_body(lone, false, "batch", true, &limits).expect("one");
        assert_eq!((items.len(), key.as_deref()), (1, Some("phc_k")));
        // Without `lone` (the Segment and Snowplow routes), or without a string `event`
        // (a seed event sent to /batch), an object is still not a batch.
        for (body, lone) in [
            (&lone[..], false),
            (br#"{"event_name": "x"}"#, true),
            (br#"{"event": 1}"#, true),
        ] {
            let e = crate::http::parse::parse_body(body, false, "batch", lone, &limits)
                .expect_err("not a batch");
            assert_eq!(e.reason, "not_array");
        }
    }

    #[test]
    fn seed_events_and_messages_without_an_event_are_kept() {
        let seed = json!({"event_name": "x", "event": "y"});
        assert_eq!(translate(seed.clone()), seed);
        let other = json!({"distinct_id": "1"});
        assert_eq!(translate(other.clone()), other);
    }
}
