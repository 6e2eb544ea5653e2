//! The event model and its validation at the edge.
//!
//! Invariant: an [`Event`] that [`validate`] returns can always be written by the binary COPY
//! into `user_events`: every value fits its column type and CHECK constraint, no string holds
//! a NUL (PostgreSQL TEXT and JSONB refuse it), and every size is bounded. Anything else is
//! rejected here, with the event's index and the field, before it reaches the buffer.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

use crate::config::Limits;

/// One event as buffered and forwarded. Times are microseconds since the Unix epoch (the
/// resolution of PostgreSQL's TIMESTAMPTZ); `properties` is JSON text (bincode cannot carry a
/// `serde_json::Value`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: Uuid,
    /// The seed's numeric user id: filled when the client's user id is an int64 (or its
    /// canonical decimal text), so the seed's SQL keeps working.
    pub user_id: Option<i64>,
    pub session_id: Option<String>,
    pub event_type: Option<String>,
    pub event_name: String,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub device_type: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub country_code: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub event_time_us: i64,
    pub properties: Option<String>,
    /// The user id exactly as the client sent it (an integer as its decimal text).
    pub app_user_id: Option<String>,
    /// The client's anonymous (device or visitor) id.
    pub anonymous_id: Option<String>,
    /// The name of the write key the request was accepted with; set by the collector,
    /// never taken from the client.
    pub source: Option<String>,
    /// An identify's traits, a JSON object as text.
    pub traits: Option<String>,
}

/// Why one event was refused: which event of the request, which field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// The allowed values of `device_type` (the column's CHECK constraint).
pub const DEVICE_TYPES: [&str; 4] = ["desktop", "mobile", "tablet", "other"];

/// Request context needed to complete an event: receive time, the client's User-Agent and
/// the source its write key names.
pub struct Context<'a> {
    pub now: OffsetDateTime,
    pub user_agent: Option<&'a str>,
    pub source: Option<&'a str>,
}

impl Event {
    /// The shape of one event in a buffer export (and what `collector buffer import`
    /// reads back): the ingest API's fields plus lineage.
    pub fn export_json(&self, received_at_us: i64, collector_id: &str) -> Value {
        let e = self;
        let rfc = |us: i64| {
            from_micros(us)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let properties = e
            .properties
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or(Value::Null);
        let traits = e
            .traits
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or(Value::Null);
        let user_id = e
            .app_user_id
            .clone()
            .or_else(|| e.user_id.map(|u| u.to_string()));
        serde_json::json!({
            "event_id": e.event_id.to_string(),
            "user_id": user_id,
            "anonymous_id": e.anonymous_id,
            "traits": traits,
            "source": e.source,
            "session_id": e.session_id,
            "event_type": e.event_type,
            "event_name": e.event_name,
            "page_url": e.page_url,
            "referrer": e.referrer,
            "device_type": e.device_type,
            "browser": e.browser,
            "os": e.os,
            "country_code": e.country_code,
            "region": e.region,
            "city": e.city,
            "event_time": rfc(e.event_time_us),
            "properties": properties,
            "received_at": rfc(received_at_us),
            "collector_id": collector_id,
        })
    }
}

/// Validates one JSON value as an event. `index` is its position in the request.
pub fn validate(
    value: &Value,
    index: usize,
    limits: &Limits,
    ctx: &Context<'_>,
) -> Result<Event, FieldError> {
    let err = |field: &str, message: String| FieldError {
        index,
        field: field.to_string(),
        message,
    };
    let obj = value
        .as_object()
        .ok_or_else(|| err("", format!("expected a JSON object, got {}", kind(value))))?;
    let s = |field: &str, max: usize| optional_string(obj, field, max).map_err(|m| err(field, m));

    let event_id = event_id_of(obj).map_err(|m| err("event_id", m))?;
    let app_user_id = user_id_of(obj, limits.max_string_bytes).map_err(|m| err("user_id", m))?;
    let user_id = app_user_id.as_deref().and_then(numeric_id);
    let anonymous_id = s("anonymous_id", limits.max_string_bytes)?.filter(|a| !a.is_empty());
    let traits = object_of(obj, "traits", limits).map_err(|m| err("traits", m))?;
    let event_name = s("event_name", limits.max_string_bytes)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            err(
                "event_name",
                "is required and must be a non-empty string".into(),
            )
        })?;
    let device_type = s("device_type", limits.max_string_bytes)?;
    if let Some(d) = &device_type {
        if !DEVICE_TYPES.contains(&d.as_str()) {
            return Err(err(
                "device_type",
                format!("must be one of {}", DEVICE_TYPES.join(", ")),
            ));
        }
    }
    let country_code = country_of(s("country_code", limits.max_string_bytes)?)
        .map_err(|m| err("country_code", m))?;
    let event_time = event_time_of(obj, limits, ctx).map_err(|m| err("event_time", m))?;
    let properties = object_of(obj, "properties", limits).map_err(|m| err("properties", m))?;

    let mut browser = s("browser", limits.max_string_bytes)?;
    let mut os = s("os", limits.max_string_bytes)?;
    let mut device_type = device_type;
    if browser.is_none() || os.is_none() || device_type.is_none() {
        if let Some(ua) = ctx.user_agent.and_then(parse_user_agent) {
            browser = browser.or(ua.browser);
            os = os.or(ua.os);
            device_type = device_type.or(Some(ua.device_type.to_string()));
        }
    }
    let clip = |v: Option<String>| v.map(|x| truncate(x, limits.max_string_bytes));

    Ok(Event {
        event_id,
        user_id,
        session_id: s("session_id", limits.max_string_bytes)?,
        event_type: s("event_type", limits.max_string_bytes)?,
        event_name,
        page_url: s("page_url", limits.max_url_bytes)?,
        referrer: s("referrer", limits.max_url_bytes)?,
        device_type,
        browser: clip(browser),
        os: clip(os),
        country_code,
        region: s("region", limits.max_string_bytes)?,
        city: s("city", limits.max_string_bytes)?,
        event_time_us: micros(event_time),
        properties,
        app_user_id,
        anonymous_id,
        source: ctx
            .source
            .map(|s| truncate(s.to_string(), limits.max_string_bytes)),
        traits,
    })
}

/// `event_id`: a UUID as sent, or a new UUIDv7 when absent.
fn event_id_of(obj: &Map<String, Value>) -> Result<Uuid, String> {
    match obj.get("event_id") {
        None | Some(Value::Null) => Ok(Uuid::now_v7()),
        Some(Value::String(text)) => {
            Uuid::parse_str(text).map_err(|_| "must be a UUID such as 0190b6e4-…".into())
        }
        Some(other) => Err(format!("must be a string, got {}", kind(other))),
    }
}

/// `user_id`: a string (kept exactly as sent, within the string bound, no NUL) or an
/// integer (kept as its decimal text); an empty string is no user id.
fn user_id_of(obj: &Map<String, Value>, max: usize) -> Result<Option<String>, String> {
    match obj.get("user_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(Value::Number(_)) => Err("must be a string or an integer, got a fraction".into()),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => checked_string(text, max).map(Some),
        Some(other) => Err(format!(
            "must be a string or an integer, got {}",
            kind(other)
        )),
    }
}

/// The seed's numeric `user_id` of a user id: its value when the text is an int64 in
/// canonical decimal form (`"42"`, not `"042"` or `"+42"`).
pub fn numeric_id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| n.to_string() == text)
}

/// `country_code`: two ASCII letters, upper-cased.
fn country_of(code: Option<String>) -> Result<Option<String>, String> {
    code.map(|c| {
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(c.to_ascii_uppercase())
        } else {
            Err("must be two ASCII letters (ISO 3166-1 alpha-2)".to_string())
        }
    })
    .transpose()
}

/// `event_time`: RFC 3339 within [now − max age, now + max future]; now when absent.
fn event_time_of(
    obj: &Map<String, Value>,
    limits: &Limits,
    ctx: &Context<'_>,
) -> Result<OffsetDateTime, String> {
    let event_time = match obj.get("event_time") {
        None | Some(Value::Null) => ctx.now,
        Some(Value::String(text)) => OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            "must be an RFC 3339 timestamp such as 2026-01-02T03:04:05Z".to_string()
        })?,
        Some(other) => return Err(format!("must be an RFC 3339 string, got {}", kind(other))),
    };
    let age = ctx.now - event_time;
    if age > time::Duration::seconds(limits.max_event_age_secs as i64) {
        return Err(format!(
            "is more than {} s in the past",
            limits.max_event_age_secs
        ));
    }
    if -age > time::Duration::seconds(limits.max_event_future_secs as i64) {
        return Err(format!(
            "is more than {} s in the future",
            limits.max_event_future_secs
        ));
    }
    Ok(event_time)
}

/// `properties` or `traits`: a JSON object within the depth and size limits, as JSON text.
fn object_of(
    obj: &Map<String, Value>,
    field: &str,
    limits: &Limits,
) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => {
            check_json(v, 1, limits.max_properties_depth)?;
            let text = serde_json::to_string(v).map_err(|e| e.to_string())?;
            if text.len() > limits.max_properties_bytes {
                return Err(format!(
                    "is {} bytes, more than the {} allowed",
                    text.len(),
                    limits.max_properties_bytes
                ));
            }
            Ok(Some(text))
        }
        Some(other) => Err(format!("must be a JSON object, got {}", kind(other))),
    }
}

/// Microseconds since the Unix epoch.
pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// The inverse of [`micros`]; out-of-range values clamp to the epoch (they cannot be produced
/// by [`validate`]).
pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn optional_string(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => checked_string(s, max).map(Some),
        Some(other) => Err(format!("must be a string, got {}", kind(other))),
    }
}

/// A string within `max` bytes and without NUL (PostgreSQL TEXT refuses it).
fn checked_string(s: &str, max: usize) -> Result<String, String> {
    if s.len() > max {
        Err(format!("is {} bytes, more than the {max} allowed", s.len()))
    } else if s.contains('\0') {
        Err("must not contain a NUL character".into())
    } else {
        Ok(s.to_string())
    }
}

/// Checks nesting depth and NUL characters (JSONB refuses `\u0000`) in keys and strings.
fn check_json(v: &Value, depth: usize, max_depth: usize) -> Result<(), String> {
    if depth > max_depth {
        return Err(format!("nests deeper than {max_depth} levels"));
    }
    match v {
        Value::String(s) if s.contains('\0') => {
            Err("must not contain a NUL character (\\u0000)".into())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_json(i, depth + 1, max_depth)),
        Value::Object(map) => map.iter().try_for_each(|(k, i)| {
            if k.contains('\0') {
                return Err("keys must not contain a NUL character (\\u0000)".into());
            }
            check_json(i, depth + 1, max_depth)
        }),
        _ => Ok(()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Browser, OS and device class derived from a User-Agent header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device_type: &'static str,
}

/// Parses a User-Agent with woothee; `None` when nothing is recognised.
pub fn parse_user_agent(ua: &str) -> Option<UserAgent> {
    if ua.is_empty() || ua.len() > 1024 {
        return None;
    }
    let parsed = woothee::parser::Parser::new().parse(ua)?;
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string());
    let device_type = match parsed.category {
        "pc" => "desktop",
        "smartphone" | "mobilephone" => {
            if parsed.os == "iPad" || (parsed.os == "Android" && !ua.contains("Mobile")) {
                "tablet"
            } else {
                "mobile"
            }
        }
        _ => "other",
    };
    Some(UserAgent {
        browser: known(parsed.name),
        os: known(parsed.os),
        device_type,
    })
}

/// How long ago a microsecond timestamp was, for "oldest buffered age".
pub fn age(us: i64) -> std::time::Duration {
    let now = micros(time::OffsetDateTime::now_utc());
    std::time::Duration::from_micros(now.saturating_sub(us).max(0) as u64)
}

#[cfg(test)]
mod tests;
