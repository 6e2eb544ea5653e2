//! Snowplow's tracker protocol v2: events whose fields are short strings (`e`, `eid`, `dtm`,
//! `uid`, …), posted as `{"schema": "iglu:…/payload_data/jsonschema/1-0-4", "data": [...]}`
//! to `/com.snowplowanalytics.snowplow/tp2`, or sent one at a time as the query string of
//! `GET /i` (the pixel). Snowplow has no write key of its own: when keys are configured the
//! request carries one as the other protocols' headers or `?write_key=` do.
//!
//! Mapping into the seed's event shape (see the README's Snowplow table):
//!
//! | Snowplow | event |
//! | --- | --- |
//! | `e`: `pv` → `page_view`, `pp` → `page_ping`, `se` → `se_ac`, `ue` → the inner schema's name, `tr` / `ti` → `transaction` / `transaction_item`, others as they are | `event_name` |
//! | `page` (pv), `page_ping`, `track` (se, ue), `transaction` (tr, ti), else `e` | `event_type` |
//! | `eid`: a UUID as it is, otherwise UUIDv5(write key + eid) | `event_id` |
//! | `ttm` (true timestamp), else `dtm` (device created), milliseconds | `event_time` |
//! | `uid`, `duid`, `sid` | `user_id`, `anonymous_id`, `session_id` |
//! | `url`, `refr` | `page_url`, `referrer` |
//! | `ua` (preferred over the request's header) | `browser`, `os`, `device_type` |
//! | `ip` (located instead of the request's address; never stored) | `ip` |
//! | `se_ca`, `se_la`, `se_pr`, `se_va` (a number when it is one); `ue_pr` / `ue_px`'s data | `properties`: `category`, `label`, `property`, `value`; the data's fields |
//! | `co` / `cx` (contexts, decoded), every other field as sent (`aid`, `p`, `tv`, `dtm`, `stm`, …) | `properties.$snowplow` (`contexts`, the fields) |
//!
//! Invariant: the event id depends only on the write key and `eid`, so a resent event gets
//! the same id and is deduplicated by the database's unique key; no field is dropped but
//! `ip`, which goes to geography only (what no column holds is kept under `$snowplow`, a JSON field that does not decode is kept as
//! sent); a message without an `e` (or with an `event_name`) is left untouched.

use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

use super::{Protocol, Request};

pub struct Snowplow;

/// The namespace of event ids made from an `eid` that is not a UUID (a fixed, random UUID).
const EID_NAMESPACE: Uuid = Uuid::from_u128(0x3c8f_90d1_6e2b_4b5a_a7c4_1f9e_08d3_b265);

/// Fields that become columns, or the event's name and properties.
const CONSUMED: &[&str] = &[
    "e", "eid", "uid", "duid", "sid", "url", "refr", "ua", "se_ac", "se_ca", "se_la", "se_pr",
    "se_va", "ue_pr", "ue_px", "co", "cx", "ip",
];

impl Protocol for Snowplow {
    fn name(&self) -> &'static str {
        "snowplow"
    }
    // Trackers label their JSON `application/json; charset=utf-8`; the envelope holds the
    // events under `data`.
    fn envelope(&self) -> &'static str {
        "data"
    }
    fn translate(&self, messages: &mut [Value], request: &Request<'_>) {
        for m in messages.iter_mut() {
            let Value::Object(msg) = m else { continue };
            if msg.contains_key("event_name") || !msg.get("e").is_some_and(Value::is_string) {
                continue;
            }
            *m = Value::Object(to_event(msg, request.write_key));
        }
    }
}

/// The event id of an event: its `eid` when that is a UUID, else a UUIDv5 of the write key
/// and the `eid`; `None` (a new id) when it has none.
pub fn event_id(eid: Option<&str>, key: Option<&str>) -> Option<Uuid> {
    super::stable_event_id(&EID_NAMESPACE, eid, key)
}

/// A Snowplow timestamp (milliseconds since the epoch, as text) as RFC 3339; `None` when it
/// is not one (the text is then passed on, and validation names the field).
pub fn millis_to_rfc3339(ms: &str) -> Option<String> {
    let ms: i64 = ms.trim().parse().ok()?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&Rfc3339).ok()
}

/// Base64 in either alphabet (Snowplow sends base64url, some trackers the standard one),
/// padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let url: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(url)
        .ok()
}

/// A JSON field sent as text (`plain`) or base64 (`encoded`), decoded.
fn json_field(msg: &Map<String, Value>, plain: &str, encoded: &str) -> Option<Value> {
    if let Some(text) = msg.get(plain).and_then(Value::as_str) {
        return serde_json::from_str(text).ok();
    }
    let bytes = decode_base64(msg.get(encoded).and_then(Value::as_str)?)?;
    serde_json::from_slice(&bytes).ok()
}

/// The name part of an Iglu schema URI: `iglu:com.acme/add_to_cart/jsonschema/1-0-0` →
/// `add_to_cart`.
pub fn schema_name(uri: &str) -> Option<&str> {
    let path = uri.strip_prefix("iglu:").unwrap_or(uri);
    path.split('/').nth(1).filter(|n| !n.is_empty())
}

fn text(msg: &Map<String, Value>, key: &str) -> Option<String> {
    match msg.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn to_event(msg: &Map<String, Value>, key: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut props = Map::new();
    let mut extra = Map::new();
    let e = msg.get("e").and_then(Value::as_str).unwrap_or("");
    let (name, kind) = match e {
        "pv" => (Some("page_view".to_string()), "page"),
        "pp" => (Some("page_ping".to_string()), "page_ping"),
        "se" => (text(msg, "se_ac"), "track"),
        "ue" => (None, "track"),
        "tr" => (Some("transaction".to_string()), "transaction"),
        "ti" => (Some("transaction_item".to_string()), "transaction"),
        other => (Some(other.to_string()), other),
    };
    let mut name = name;
    out.insert("event_type".into(), json!(kind));
    extra.insert("e".into(), json!(e));
    if e == "se" {
        for (prop, field) in [
            ("category", "se_ca"),
            ("label", "se_la"),
            ("property", "se_pr"),
        ] {
            if let Some(v) = text(msg, field) {
                props.insert(prop.into(), json!(v));
            }
        }
        if let Some(v) = text(msg, "se_va") {
            let number = v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .and_then(serde_json::Number::from_f64);
            props.insert("value".into(), number.map_or(json!(v), Value::Number));
        }
    }
    if e == "ue" {
        // {"schema": "…/unstruct_event/…", "data": {"schema": "iglu:com.acme/x/…", "data": {…}}}
        let inner = json_field(msg, "ue_pr", "ue_px").and_then(|v| v.get("data").cloned());
        match inner {
            Some(inner) => {
                let schema = inner.get("schema").and_then(Value::as_str);
                name = schema.and_then(schema_name).map(str::to_string);
                if let Some(s) = schema {
                    extra.insert("schema".into(), json!(s));
                }
                match inner.get("data") {
                    Some(Value::Object(data)) => props.extend(data.clone()),
                    Some(Value::Null) | None => {}
                    Some(other) => {
                        props.insert("value".into(), other.clone());
                    }
                }
            }
            // Kept as sent; without a name, validation refuses the event naming the field.
            None => {
                for k in ["ue_pr", "ue_px"] {
                    if let Some(v) = msg.get(k) {
                        extra.insert(k.into(), v.clone());
                    }
                }
            }
        }
    }
    if let Some(n) = name {
        out.insert("event_name".into(), json!(n));
    }
    if let Some(id) = event_id(msg.get("eid").and_then(Value::as_str), key) {
        out.insert("event_id".into(), json!(id.to_string()));
    }
    let time = ["ttm", "dtm"].iter().find_map(|k| text(msg, k));
    if let Some(t) = time {
        out.insert(
            "event_time".into(),
            json!(millis_to_rfc3339(&t).unwrap_or(t)),
        );
    }
    for (field, key) in [
        ("user_id", "uid"),
        ("anonymous_id", "duid"),
        ("session_id", "sid"),
        ("page_url", "url"),
        ("referrer", "refr"),
        // The end user's address, for geography only (see crate::http::geo): never stored.
        ("ip", "ip"),
    ] {
        if let Some(v) = text(msg, key) {
            out.insert(field.into(), json!(v));
        }
    }
    super::insert_user_agent(&mut out, msg.get("ua").and_then(Value::as_str));
    match json_field(msg, "co", "cx") {
        // {"schema": "…/contexts/…", "data": [{"schema": …, "data": …}, …]}
        Some(c) => {
            let contexts = c.get("data").cloned().unwrap_or(c);
            extra.insert("contexts".into(), contexts);
        }
        None => {
            for k in ["co", "cx"] {
                if let Some(v) = msg.get(k) {
                    extra.insert(k.into(), v.clone());
                }
            }
        }
    }
    for (k, v) in msg {
        if !CONSUMED.contains(&k.as_str()) && !v.is_null() {
            extra.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    props.insert("$snowplow".into(), Value::Object(extra));
    out.insert("properties".into(), Value::Object(props));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(v: Value) -> Value {
        let mut items = vec![v];
        Snowplow.translate(
            &mut items,
            &Request {
                route_type: None,
                write_key: Some("wk"),
            },
        );
        items.remove(0)
    }

    fn b64url(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn maps_a_page_view() {
        let e = translate(json!({
            "e": "pv", "eid": "0190b6e4-0000-4000-8000-000000000001", "dtm": "1764583200000",
            "stm": "1764583201000", "uid": "42", "duid": "d-1", "sid": "s-1",
            "url": "https://shop.example/", "refr": "https://search.example/", "page": "Home",
            "aid": "shop", "p": "web", "tv": "node-4.8.0", "tna": "sp", "ip": "192.0.2.4",
            "ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "co": json!({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                         "data": [{"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"tier": "gold"}}]}).to_string()
        }));
        assert_eq!(e["event_name"], "page_view");
        assert_eq!(e["event_type"], "page");
        assert_eq!(e["event_id"], "0190b6e4-0000-4000-8000-000000000001");
        assert_eq!(e["event_time"], "2025-12-01T10:00:00Z");
        assert_eq!(
            (&e["user_id"], &e["anonymous_id"], &e["session_id"]),
            (&json!("42"), &json!("d-1"), &json!("s-1"))
        );
        assert_eq!(e["page_url"], "https://shop.example/");
        assert_eq!(e["referrer"], "https://search.example/");
        assert_eq!(e["device_type"], "mobile");
        let sp = &e["properties"]["$snowplow"];
        assert_eq!(
            (&sp["aid"], &sp["p"], &sp["tv"], &sp["page"], &sp["tna"]),
            (
                &json!("shop"),
                &json!("web"),
                &json!("node-4.8.0"),
                &json!("Home"),
                &json!("sp")
            )
        );
        assert_eq!(sp["contexts"][0]["data"]["tier"], "gold");
        assert_eq!(e["ip"], "192.0.2.4", "for geography");
        assert!(sp.get("ip").is_none(), "never stored");
        assert_eq!(sp["dtm"], "1764583200000", "kept as sent");
        assert!(
            sp.get("ua").is_none() && sp.get("url").is_none(),
            "in columns"
        );
    }

    #[test]
    fn maps_structured_and_self_describing_events() {
        let e = translate(json!({
            "e": "se", "se_ca": "shop", "se_ac": "加入购物车", "se_la": "A1", "se_pr": "red",
            "se_va": "12.5", "ttm": "1764583200000", "dtm": "1764583299000", "eid": "order-1001"
        }));
        assert_eq!(e["event_name"], "加入购物车");
        assert_eq!(e["event_type"], "track");
        assert_eq!(e["event_time"], "2025-12-01T10:00:00Z", "ttm preferred");
        let p = &e["properties"];
        assert_eq!(
            (&p["category"], &p["label"], &p["property"], &p["value"]),
            (&json!("shop"), &json!("A1"), &json!("red"), &json!(12.5))
        );
        assert_eq!(
            e["event_id"].as_str().map(str::to_string),
            event_id(Some("order-1001"), Some("wk")).map(|u| u.to_string())
        );
        assert_ne!(
            event_id(Some("order-1001"), Some("other")),
            event_id(Some("order-1001"), Some("wk"))
        );

        let ue = json!({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
            "data": {"schema": "iglu:com.acme/add_to_cart/jsonschema/1-0-0", "data": {"sku": "A1", "qty": 2}}});
        for e in [
            translate(json!({"e": "ue", "ue_px": b64url(&ue)})),
            translate(json!({"e": "ue", "ue_pr": ue.to_string()})),
        ] {
            assert_eq!(e["event_name"], "add_to_cart");
            assert_eq!(e["properties"]["sku"], "A1");
            assert_eq!(e["properties"]["qty"], 2);
            assert_eq!(
                e["properties"]["$snowplow"]["schema"],
                "iglu:com.acme/add_to_cart/jsonschema/1-0-0"
            );
        }
        // Undecodable: kept as sent, no name (validation refuses it).
        let e = translate(json!({"e": "ue", "ue_px": "%%%"}));
        assert!(e.get("event_name").is_none());
        assert_eq!(e["properties"]["$snowplow"]["ue_px"], "%%%");
    }

    #[test]
    fn page_pings_unknown_fields_and_other_messages() {
        let e = translate(json!({"e": "pp", "pp_mix": "0", "pp_max": "10", "zz": "kept"}));
        assert_eq!(e["event_name"], "page_ping");
        assert_eq!(e["properties"]["$snowplow"]["pp_max"], "10");
        assert_eq!(e["properties"]["$snowplow"]["zz"], "kept");
        assert!(e.get("event_id").is_none(), "no eid: a new id");
        let seed = json!({"event_name": "x", "e": "pv"});
        assert_eq!(translate(seed.clone()), seed);
        let other = json!({"uid": "1"});
        assert_eq!(translate(other.clone()), other);
        assert_eq!(
            translate(json!({"e": "pv", "dtm": "soon"}))["event_time"],
            "soon"
        );
        assert_eq!(schema_name("iglu:com.acme/a/jsonschema/1-0-0"), Some("a"));
        assert_eq!(schema_name("iglu:com.acme"), None);
        assert_eq!(decode_base64("eyJhIjoxfQ=="), Some(br#"{"a":1}"#.to_vec()));
    }

    #[test]
    fn routes_post_and_pixel() {
        let tp2 = super::super::find("/com.snowplowanalytics.snowplow/tp2").expect("tp2");
        assert_eq!(tp2.protocol.name(), "snowplow");
        assert_eq!(tp2.method, http::Method::POST);
        let pixel = super::super::find("/i").expect("pixel");
        assert_eq!(pixel.method, http::Method::GET);
        assert_eq!(pixel.shape, super::super::Shape::Query);
        assert_eq!(pixel.answer, super::super::Answer::Pixel);
    }
}
