//! Ingest protocols: the one table of routes the ingest listener answers, and for each the
//! protocol that turns its messages into the seed's event shape.
//!
//! A protocol only *translates*: it rewrites the messages it recognises into seed-shaped
//! JSON events ([`crate::event::validate`]'s input), so every protocol shares one validation
//! and one set of limits, and nothing a protocol produces can reach the buffer unvalidated.
//! Adding a protocol is its own file plus its rows in [`ROUTES`] (and, when its bodies have
//! forms of their own, a [`BodyEncoding`] in its own file, as PostHog's in
//! [`crate::http::form`]).
//!
//! Invariant: a route's path is unique (one method sends events to it); a trailing slash is tolerated; a protocol never
//! drops a message (one it cannot translate is left as it is, and validation refuses it
//! with a 4xx naming its index and field).

pub mod posthog;
pub mod seed;
pub mod segment;
pub mod snowplow;

use http::Method;
use serde_json::Value;
use uuid::Uuid;

pub use super::encoding::{BodyEncoding, PlainJson};
use super::Refusal;
use crate::{config::Limits, event::FieldError};

/// How many messages a route's body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One JSON object; all or nothing.
    One,
    /// An array, or an object holding the array under the protocol's
    /// [`Protocol::envelope`] key (`{"batch": [...]}`); valid messages are kept, invalid
    /// ones listed.
    Many,
    /// No body: the query string's parameters are one message (a pixel `GET`); all or
    /// nothing.
    Query,
}

/// What a route answers once its events are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `200` with a JSON body (`{"status":"success", …}`).
    Json,
    /// `200` with a 1×1 transparent GIF, never cached (an `<img>` beacon).
    Pixel,
}

/// What a protocol may use about the request besides the messages.
pub struct Request<'a> {
    /// The message type a single-message route implies (`/v1/page` → `page`).
    pub route_type: Option<&'static str>,
    /// The write key the request was authorised with, if any.
    pub write_key: Option<&'a str>,
}

/// An ingest protocol.
pub trait Protocol: Sync {
    /// Its name, for metrics labels and documentation.
    fn name(&self) -> &'static str;
    /// Whether a body is read as JSON whatever its `Content-Type` (client libraries that
    /// label JSON as form data or text).
    fn any_content_type(&self) -> bool {
        false
    }
    /// Whether the body may carry the write key (`writeKey`), checked once it is read.
    fn key_in_body(&self) -> bool {
        false
    }
    /// The key of a body object that holds the messages (`{"batch": [...]}`).
    fn envelope(&self) -> &'static str {
        "batch"
    }
    /// How a body is encoded beyond `Content-Encoding` (plain JSON unless the protocol has
    /// its own forms, like PostHog's in [`crate::http::form`]).
    fn body_encoding(&self) -> &'static dyn BodyEncoding {
        &PlainJson
    }
    /// Whether a body object that is neither an array nor an envelope, but has a string
    /// `event`, is one message (PostHog's lone event on `/e/`, `/capture/`, `/i/v0/e/`).
    fn lone_message(&self) -> bool {
        false
    }
    /// The key the messages themselves carry (PostHog's `properties.token`), used when the
    /// body has none at its top level; a refusal when they carry different keys.
    fn message_key(&self, _messages: &[Value]) -> Result<Option<String>, Refusal> {
        Ok(None)
    }
    /// The protocol's own bounds, checked on the messages as received (before
    /// translation): per-message errors (those messages are then not stored), or a
    /// refusal of the whole request. `body_bytes` is the decoded body's size.
    fn check(
        &self,
        _messages: &[Value],
        _body_bytes: usize,
        _limits: &Limits,
        _request: &Request<'_>,
    ) -> Result<Vec<FieldError>, Refusal> {
        Ok(Vec::new())
    }
    /// Rewrites the messages it recognises into seed-shaped events, in place.
    fn translate(&self, messages: &mut [Value], request: &Request<'_>);
}

/// One route of the ingest listener.
pub struct Route {
    pub path: &'static str,
    /// The one method that sends events to this path (others get 405).
    pub method: Method,
    /// `track`, `batch` or `validate`: the metrics label and the answer's shape.
    pub endpoint: &'static str,
    pub shape: Shape,
    pub protocol: &'static dyn Protocol,
    /// The message type this route implies for messages without one.
    pub route_type: Option<&'static str>,
    pub answer: Answer,
}

/// A route taking events in a POST body, answered with JSON.
const fn route(
    path: &'static str,
    endpoint: &'static str,
    shape: Shape,
    protocol: &'static dyn Protocol,
    route_type: Option<&'static str>,
) -> Route {
    Route {
        path,
        method: Method::POST,
        endpoint,
        shape,
        protocol,
        route_type,
        answer: Answer::Json,
    }
}

/// A pixel: one event in a GET's query string, answered with a 1×1 GIF.
const fn pixel(path: &'static str, protocol: &'static dyn Protocol) -> Route {
    Route {
        path,
        method: Method::GET,
        endpoint: "track",
        shape: Shape::Query,
        protocol,
        route_type: None,
        answer: Answer::Pixel,
    }
}

/// Every route that takes events.
pub static ROUTES: &[Route] = &[
    route("/track", "track", Shape::One, &seed::Seed, None),
    // PostHog's batch route too (what posthog-node posts to); seed-shaped events (with an
    // `event_name`) are left untouched.
    route("/batch", "batch", Shape::Many, &posthog::PostHog, None),
    route("/v1/validate", "validate", Shape::Many, &seed::Seed, None),
    // Segment's HTTP Tracking API (also RudderStack's and Jitsu's). Seed-shaped events
    // sent to /v1/track and /v1/batch keep working: only messages with a `type` and no
    // `event_name` are translated.
    route(
        "/v1/track",
        "track",
        Shape::One,
        &segment::Segment,
        Some("track"),
    ),
    route(
        "/v1/page",
        "track",
        Shape::One,
        &segment::Segment,
        Some("page"),
    ),
    route(
        "/v1/screen",
        "track",
        Shape::One,
        &segment::Segment,
        Some("screen"),
    ),
    route(
        "/v1/identify",
        "track",
        Shape::One,
        &segment::Segment,
        Some("identify"),
    ),
    route(
        "/v1/group",
        "track",
        Shape::One,
        &segment::Segment,
        Some("group"),
    ),
    route(
        "/v1/alias",
        "track",
        Shape::One,
        &segment::Segment,
        Some("alias"),
    ),
    route("/v1/batch", "batch", Shape::Many, &segment::Segment, None),
    // The one-letter paths analytics.js (@segment/analytics-next) posts to.
    route(
        "/v1/t",
        "track",
        Shape::One,
        &segment::Segment,
        Some("track"),
    ),
    route(
        "/v1/p",
        "track",
        Shape::One,
        &segment::Segment,
        Some("page"),
    ),
    route(
        "/v1/s",
        "track",
        Shape::One,
        &segment::Segment,
        Some("screen"),
    ),
    route(
        "/v1/i",
        "track",
        Shape::One,
        &segment::Segment,
        Some("identify"),
    ),
    route(
        "/v1/g",
        "track",
        Shape::One,
        &segment::Segment,
        Some("group"),
    ),
    route(
        "/v1/a",
        "track",
        Shape::One,
        &segment::Segment,
        Some("alias"),
    ),
    route("/v1/b", "batch", Shape::Many, &segment::Segment, None),
    route("/v1/import", "batch", Shape::Many, &segment::Segment, None),
    // PostHog's capture API: an array of events or `{"batch": [...]}`.
    route("/e", "batch", Shape::Many, &posthog::PostHog, None),
    route("/capture", "batch", Shape::Many, &posthog::PostHog, None),
    route("/i/v0/e", "batch", Shape::Many, &posthog::PostHog, None),
    // Snowplow's tracker protocol v2: the payload_data envelope, or the pixel's query.
    route(
        "/com.snowplowanalytics.snowplow/tp2",
        "batch",
        Shape::Many,
        &snowplow::Snowplow,
        None,
    ),
    pixel("/i", &snowplow::Snowplow),
];

/// A protocol's message id as an event id: a UUID as it is, otherwise a UUIDv5 (in the
/// protocol's `namespace`) of the key and the id, so a resent message keeps its id;
/// `None` (a new id) when there is none.
pub fn stable_event_id(namespace: &Uuid, id: Option<&str>, key: Option<&str>) -> Option<Uuid> {
    let id = id.filter(|s| !s.is_empty())?;
    if let Ok(u) = Uuid::parse_str(id) {
        return Some(u);
    }
    let name = format!("{}\u{0}{id}", key.unwrap_or(""));
    Some(Uuid::new_v5(namespace, name.as_bytes()))
}

/// Browser, OS and device class from a message's own User-Agent (preferred over the
/// request's header, which validation uses only for the fields still missing).
pub fn insert_user_agent(out: &mut serde_json::Map<String, Value>, ua: Option<&str>) {
    let Some(ua) = ua.and_then(crate::event::parse_user_agent) else {
        return;
    };
    if let Some(b) = ua.browser {
        out.insert("browser".into(), Value::String(b));
    }
    if let Some(o) = ua.os {
        out.insert("os".into(), Value::String(o));
    }
    out.insert("device_type".into(), Value::String(ua.device_type.into()));
}

/// The route for `path` (a trailing slash tolerated).
pub fn find(path: &str) -> Option<&'static Route> {
    let path = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    ROUTES.iter().find(|r| r.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_a_trailing_slash_is_tolerated() {
        let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        let n = paths.len();
        paths.dedup();
        assert_eq!(paths.len(), n, "duplicate route");
        assert_eq!(find("/v1/batch/").map(|r| r.path), Some("/v1/batch"));
        assert_eq!(find("/track").map(|r| r.protocol.name()), Some("seed"));
        assert!(find("/nope").is_none());
        assert!(find("/").is_none());
    }
}
