//! The ingest stage: beacon endpoints on the public listener.
//!
//! Routes: the event routes of [`protocol::ROUTES`] (`POST /track`, `/batch`, `/v1/validate`
//! — validate and answer without storing, for client developers and for measuring the cost
//! of durability —, the Segment, PostHog and Snowplow routes, the `GET /i` pixel), `GET
//! /health`, `GET /ready`, `GET /tracker.js`, and CORS preflights.
//!
//! Files: this one routes and runs a request through the stage; [`auth`] checks write
//! keys, [`body`] reads and decodes bodies under the memory bound (gzip, then the route's
//! protocol's [`encoding`]; [`form`]: PostHog's base64 and form bodies), [`parse`] turns a body
//! into validated events (pure: fuzzed and property-tested), [`protocol`] translates the
//! client libraries' messages, [`cors`] answers browsers, [`geo`] locates the events without
//! a country by the client's address.
//!
//! Invariants:
//! - a 2xx is sent only after [`Buffer::append`] returned, that is after the events are
//!   flushed to the buffer; the live tail ([`Tail`]) gets them only then too;
//! - every input is bounded before it is buffered: body bytes as sent and after gzip
//!   decoding, events per batch, and every field ([`crate::event::validate`]);
//! - an event the database could refuse gets a 4xx naming its index and field, and is never
//!   buffered.

pub mod auth;
pub mod body;
pub mod cors;
pub mod encoding;
pub mod form;
pub mod geo;
pub mod parse;
pub mod protocol;

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
};

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{
    buffer::{Buffer, BufferError},
    config::Config,
    event::{self, Context, FieldError},
    logging::Throttle,
    memory::{Budget, Held},
    metrics::Metrics,
    record::Record,
    respond::{json_response, Resp},
    state::ForwardState,
    tail::Tail,
};

pub use parse::parse_events;

/// Repeated storage failures and memory-bound refusals are logged once per interval.
static APPEND_FAILED: Throttle = Throttle::new();
static MEMORY_BOUND: Throttle = Throttle::new();

/// The browser tracker served at `/tracker.js`.
const TRACKER_JS: &str = include_str!("../../assets/tracker.js");

/// A 1×1 transparent GIF, what a pixel route answers.
const PIXEL_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn pixel_response() -> Resp {
    Response::builder()
        .header(header::CONTENT_TYPE, "image/gif")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from_static(PIXEL_GIF)))
        .unwrap_or_default()
}

/// Shared state of the ingest handlers.
pub struct Ingest {
    pub config: Config,
    pub buffer: Buffer,
    pub metrics: Arc<Metrics>,
    pub forward: Arc<ForwardState>,
    /// Accepted events for the admin listener's live tail.
    pub tail: Arc<Tail>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    budget: Budget,
    /// Geography by client IP, when `geo.database` is configured.
    locator: Option<geo::Locator>,
}

/// A refusal: status, message and optional per-event errors, answered as JSON.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    /// A short machine-readable reason (metrics label).
    pub reason: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Refusal {
        Refusal {
            status,
            reason,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }
}

impl Ingest {
    pub fn new(
        config: Config,
        buffer: Buffer,
        metrics: Arc<Metrics>,
        forward: Arc<ForwardState>,
        tail: Arc<Tail>,
        locator: Option<geo::Locator>,
    ) -> Ingest {
        let limiter = NonZeroU32::new(config.limits.rate_limit_per_ip)
            .map(|n| RateLimiter::keyed(Quota::per_second(n)));
        let budget = Budget::new(
            config.limits.max_inflight_bytes,
            std::time::Duration::from_millis(config.limits.inflight_wait_ms),
            metrics.inflight_bytes.clone(),
        );
        Ingest {
            config,
            buffer,
            metrics,
            forward,
            tail,
            limiter,
            budget,
            locator,
        }
    }

    /// Forgets idle rate-limit keys; called periodically so the map stays bounded.
    pub fn trim_rate_limiter(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Result<Resp, Infallible> {
        let origin = req.headers().get(header::ORIGIN).cloned();
        let path = req.uri().path().to_string();
        let route = protocol::find(&path);
        let endpoint = match (route, path.as_str()) {
            (Some(r), _) => r.endpoint,
            (None, "/health") => "health",
            (None, "/ready") => "ready",
            (None, "/tracker.js") => "tracker",
            (None, _) => "other",
        };
        let ingest_route = route.filter(|r| req.method() == r.method);
        let mut resp = if let Some(route) = ingest_route {
            match (self.ingest(peer, req, route).await, route.answer) {
                (Ok(body), protocol::Answer::Json) => json_response(StatusCode::OK, &body),
                (Ok(_), protocol::Answer::Pixel) => pixel_response(),
                (Err(r), _) => self.refuse(r),
            }
        } else {
            match (req.method(), endpoint) {
                (&Method::OPTIONS, _) => cors::preflight(),
                (&Method::GET, "health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
                (&Method::GET, "ready") => self.ready(),
                (&Method::GET, "tracker") => Response::builder()
                    .header(
                        header::CONTENT_TYPE,
                        "application/javascript; charset=utf-8",
                    )
                    .header(header::CACHE_CONTROL, "public, max-age=300")
                    .body(Full::new(Bytes::from_static(TRACKER_JS.as_bytes())))
                    .unwrap_or_default(),
                (_, "other") => self.refuse(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route for {path}"),
                )),
                _ => self.refuse(Refusal::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method",
                    "method not allowed on this path",
                )),
            }
        };
        self.cors(origin.as_ref(), resp.headers_mut());
        self.metrics.count_request(endpoint, resp.status().as_u16());
        Ok(resp)
    }

    fn ready(&self) -> Resp {
        let accepting = self.buffer.accepting();
        let body = json!({
            "status": if accepting { "ready" } else { "not_ready" },
            "buffer_accepting": accepting,
            "database_reachable": self.forward.database_up(),
        });
        let status = if accepting {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_response(status, &body)
    }

    fn refuse(&self, r: Refusal) -> Resp {
        // `code` and `message` are what client libraries (RudderStack's, Segment's) read.
        let mut body =
            json!({"status": "error", "error": r.message, "code": r.reason, "message": r.message});
        if !r.errors.is_empty() {
            body["errors"] = json!(r.errors);
        }
        let mut resp = json_response(r.status, &body);
        if let Some(secs) = r.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if r.status.is_client_error() || r.status.is_server_error() {
            tracing::debug!(
                status = r.status.as_u16(),
                reason = r.reason,
                "request refused"
            );
        }
        resp
    }

    /// Ingests one request. A refusal that comes before the body was read (auth, media
    /// type, declared size, memory bound) first reads and drops the body, within bounds
    /// ([`body::linger`]), so that the client receives the answer instead of a connection
    /// reset.
    async fn ingest(
        &self,
        peer: SocketAddr,
        req: Request<Incoming>,
        route: &'static protocol::Route,
    ) -> Result<Value, Refusal> {
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let result = self.ingest_parts(peer, &parts, &mut body, route).await;
        if result.is_err() {
            if let Some(unread) = body.take() {
                body::linger(unread, &self.config.limits).await;
            }
        }
        result
    }

    async fn ingest_parts(
        &self,
        peer: SocketAddr,
        parts: &http::request::Parts,
        body: &mut Option<Incoming>,
        route: &'static protocol::Route,
    ) -> Result<Value, Refusal> {
        let endpoint = route.endpoint;
        let now = OffsetDateTime::now_utc();
        if let Some(l) = &self.limiter {
            if l.check_key(&peer.ip()).is_err() {
                let mut r = Refusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests from this address",
                );
                r.retry_after = Some(1);
                return Err(r);
            }
        }
        let key = auth::request_key(&parts.headers, &parts.uri);
        // A protocol that may carry the key in its body is checked once the body is read.
        let key_in_body = key.is_none() && route.protocol.key_in_body();
        let mut source = None;
        if !key_in_body {
            source = self.check_key(key.as_deref())?;
        }
        // Released when this function returns, after the events are buffered.
        let mut held = self.budget.start();
        let (mut items, body_key, body_bytes) =
            self.read_messages(parts, body, &mut held, route).await?;
        if key_in_body {
            source = self.check_key(body_key.as_deref())?;
        }
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let limits = &self.config.limits;
        let ctx = Context {
            now,
            user_agent,
            source: source.as_deref(),
        };
        let request = protocol::Request {
            route_type: route.route_type,
            write_key: key.as_deref().or(body_key.as_deref()),
        };
        let mut errors = route.protocol.check(&items, body_bytes, limits, &request)?;
        route.protocol.translate(&mut items, &request);
        if let Some(locator) = &self.locator {
            locator.locate(&mut items, peer, &parts.headers, &self.metrics);
        }
        let refused: Vec<usize> = errors.iter().map(|e| e.index).collect();
        let (events, invalid) = parse::validate_items_except(&items, &refused, limits, &ctx);
        errors.extend(invalid);
        errors.sort_by_key(|e| e.index);
        if !errors.is_empty() {
            self.metrics.reject("invalid", errors.len() as u64);
        }
        if events.is_empty() || (endpoint == "track" && !errors.is_empty()) {
            let mut r = Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                match errors.first() {
                    Some(e) if errors.len() == 1 && e.field.is_empty() => {
                        format!("event {}: {}", e.index, e.message)
                    }
                    Some(e) if errors.len() == 1 => {
                        format!("event {}: field '{}' {}", e.index, e.field, e.message)
                    }
                    _ => format!("all {} events are invalid", errors.len()),
                },
            );
            r.errors = errors;
            return Err(r);
        }
        let processed = events.len();
        // The JSON tree is no longer needed: freed now, while it is still in the cache, and
        // not held by the up to `max_connections` requests waiting for a flush.
        drop(items);
        if endpoint != "validate" {
            let record = Record {
                collector_id: self.config.collector_id.clone(),
                received_at_us: event::micros(now),
                events,
            };
            let encoded = record
                .encode()
                .map_err(|e| self.buffer_refusal(e.into(), processed))?;
            // The events too are freed now, by the thread that parsed them, not held across
            // the flush wait (the tail keeps the encoded bytes instead).
            drop(record);
            self.buffer
                .append_encoded(&encoded)
                .await
                .map_err(|e| self.buffer_refusal(e, processed))?;
            self.metrics.events_accepted.inc_by(processed as u64);
            // Durable now: only from here may the live tail show these events.
            if self.tail.enabled() {
                // The encoder sized its output for the uncompressed body: give the tail
                // only what it holds.
                let mut encoded = encoded;
                encoded.shrink_to_fit();
                self.tail.push(encoded.into());
            }
        }
        let mut body = json!({"status": "success"});
        if endpoint != "track" {
            body["processed"] = json!(processed);
        }
        if !errors.is_empty() {
            body["status"] = json!("partial");
            body["rejected"] = json!(errors.len());
            body["errors"] = json!(errors);
        }
        Ok(body)
    }

    fn buffer_refusal(&self, e: BufferError, events: usize) -> Refusal {
        self.metrics.reject("unavailable", events as u64);
        let message = match &e {
            BufferError::Full { .. } => {
                "buffer full: the collector cannot reach the database fast enough; retry later"
                    .to_string()
            }
            BufferError::Closed => "the collector is shutting down; retry".to_string(),
            other => {
                if let Some(suppressed) = APPEND_FAILED.check() {
                    tracing::error!(error = %other, suppressed, "buffer append failed (requests get 503)");
                }
                "the collector cannot store events right now; retry later".to_string()
            }
        };
        let mut r = Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        r.retry_after = Some(if matches!(e, BufferError::Full { .. }) {
            5
        } else {
            1
        });
        r
    }

    /// Adds `bytes` to what this request holds under the in-flight memory bound, or refuses
    /// it (503) when there is no room in time.
    async fn charge(&self, held: &mut Held, bytes: u64) -> Result<(), Refusal> {
        self.budget.charge(held, bytes).await.map_err(|e| {
            self.metrics.inflight_refused.inc();
            if let Some(suppressed) = MEMORY_BOUND.check() {
                tracing::warn!(
                    in_use = e.in_use,
                    limit = e.limit,
                    suppressed,
                    "in-flight memory bound reached: requests wait, then get 503"
                );
            }
            let mut r = Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the collector is busy: {e}"),
            );
            r.retry_after = Some(1);
            r
        })
    }
}
