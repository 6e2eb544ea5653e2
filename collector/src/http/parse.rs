//! From a decoded body to validated events: the whole of what ingest decides before
//! buffering, as a pure function, so it can be fuzzed (`collector/fuzz`) and
//! property-tested.
//!
//! Invariant: every event returned passed [`crate::event::validate`]; the database cannot
//! refuse it.

use http::StatusCode;
use serde_json::Value;

use crate::event::{self, Context, FieldError};

use super::Refusal;

/// Parses and validates a request body (already decoded) into events: the whole of what
/// ingest does before buffering, as a pure function (fuzzed and property-tested).
/// `single` is true for `/track` (one object). Invalid events are returned as errors next to
/// the valid ones; a body that is not an event list at all is a [`Refusal`].
pub fn parse_events(
    body: &[u8],
    single: bool,
    limits: &crate::config::Limits,
    ctx: &Context<'_>,
) -> Result<(Vec<event::Event>, Vec<FieldError>), Refusal> {
    let items = parse_items(body, single, limits)?;
    Ok(validate_items(&items, limits, ctx))
}

/// The messages of a body: one object (`single`), a JSON array, or `{"batch": [...]}`,
/// at least one and at most `max_batch_events`.
pub fn parse_items(
    body: &[u8],
    single: bool,
    limits: &crate::config::Limits,
) -> Result<Vec<Value>, Refusal> {
    parse_body(body, single, "batch", false, limits).map(|(items, _)| items)
}

/// [`parse_items`], and the key the body carries: `writeKey` (Segment-style clients), else
/// `api_key` or `token` (PostHog's). `envelope` is the key of an object holding the
/// messages (`batch`; Snowplow's `data`). With `lone`, an object with a string `event` and
/// no envelope is one message (PostHog's single-event body).
pub fn parse_body(
    body: &[u8],
    single: bool,
    envelope: &str,
    lone: bool,
    limits: &crate::config::Limits,
) -> Result<(Vec<Value>, Option<String>), Refusal> {
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    // Segment's `writeKey`, PostHog's `api_key` or `token`: the first present.
    let write_key = ["writeKey", "api_key", "token"]
        .iter()
        .find_map(|k| parsed.get(*k).and_then(Value::as_str))
        .map(str::to_string);
    let items: Vec<Value> = match (single, parsed) {
        (true, v @ Value::Object(_)) => vec![v],
        (true, other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "not_object",
                format!("/track takes one JSON object, got {}", short_kind(&other)),
            ))
        }
        (_, Value::Array(items)) => items,
        (_, Value::Object(mut o)) if o.get(envelope).is_some_and(Value::is_array) => {
            match o.remove(envelope) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        (_, v @ Value::Object(_)) if lone && v.get("event").is_some_and(Value::is_string) => {
            vec![v]
        }
        (_, other) => {
            let one = if lone {
                ", one event object (with an \"event\"),"
            } else {
                ""
            };
            let kind = short_kind(&other);
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "not_array",
                format!("this route takes a JSON array of events{one} or {{\"{envelope}\": [...]}}, got {kind}"),
            ));
        }
    };
    if items.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "empty",
            "no events in the request",
        ));
    }
    if items.len() > limits.max_batch_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_events",
            format!(
                "{} events in one request, more than the {} allowed",
                items.len(),
                limits.max_batch_events
            ),
        ));
    }
    Ok((items, write_key))
}

/// The one message of a pixel request: its query string's parameters (percent-decoded; the
/// first of a repeated name wins), as JSON strings. `write_key` is a credential and never
/// part of the message.
pub fn query_message(query: &str) -> Value {
    let mut message = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "write_key" && !message.contains_key(k.as_ref()) {
            message.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Value::Object(message)
}

/// Validates messages in the seed's event shape: the valid events, and an error for each
/// invalid one (with its index).
pub fn validate_items(
    items: &[Value],
    limits: &crate::config::Limits,
    ctx: &Context<'_>,
) -> (Vec<event::Event>, Vec<FieldError>) {
    validate_items_except(items, &[], limits, ctx)
}

/// [`validate_items`], leaving out the messages at the indices in `skip` (already refused).
pub fn validate_items_except(
    items: &[Value],
    skip: &[usize],
    limits: &crate::config::Limits,
    ctx: &Context<'_>,
) -> (Vec<event::Event>, Vec<FieldError>) {
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        match event::validate(item, i, limits, ctx) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    (events, errors)
}

fn short_kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}
