//! The ingest stage: beacon endpoints on the public listener.
//!
//! Routes: `POST /track`, `POST /batch` (and the same under `/v1/`), `POST /v1/validate`
//! (validate and answer without storing: for client developers and for measuring the cost of
//! durability), `GET /health`, `GET /ready`, `GET /tracker.js`, and CORS preflights.
//!
//! Invariants:
//! - a 2xx is sent only after [`Buffer::append`] returned, that is after the events are
//!   flushed to the buffer;
//! - every input is bounded before it is buffered: body bytes as sent and after gzip
//!   decoding, events per batch, and every field ([`crate::event::validate`]);
//! - an event the database could refuse gets a 4xx naming its index and field, and is never
//!   buffered.

use std::{
    convert::Infallible,
    io::Read,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
};

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{
    buffer::{Buffer, BufferError},
    config::Config,
    event::{self, Context, FieldError},
    forward::ForwardState,
    logging::Throttle,
    memory::{self, Budget, Held},
    metrics::Metrics,
    record::Record,
};

/// Repeated storage failures and memory-bound refusals are logged once per interval.
static APPEND_FAILED: Throttle = Throttle::new();
static MEMORY_BOUND: Throttle = Throttle::new();

/// The browser tracker served at `/tracker.js`.
const TRACKER_JS: &str = include_str!("../assets/tracker.js");

/// Shared state of the ingest handlers.
pub struct Ingest {
    pub config: Config,
    pub buffer: Buffer,
    pub metrics: Arc<Metrics>,
    pub forward: Arc<ForwardState>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    budget: Budget,
}

type Resp = Response<Full<Bytes>>;

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
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
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
    ) -> Ingest {
        let limiter = NonZeroU32::new(config.limits.rate_limit_per_ip)
            .map(|n| RateLimiter::keyed(Quota::per_second(n)));
        let budget = Budget::new(&config.limits, metrics.inflight_bytes.clone());
        Ingest {
            config,
            buffer,
            metrics,
            forward,
            limiter,
            budget,
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
        let endpoint = match path.as_str() {
            "/track" | "/v1/track" => "track",
            "/batch" | "/v1/batch" => "batch",
            "/v1/validate" => "validate",
            "/health" => "health",
            "/ready" => "ready",
            "/tracker.js" => "tracker",
            _ => "other",
        };
        let mut resp = match (req.method(), endpoint) {
            (&Method::OPTIONS, _) => preflight(),
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
            (&Method::POST, "track" | "batch" | "validate") => {
                match self.ingest(peer, req, endpoint).await {
                    Ok(body) => json_response(StatusCode::OK, &body),
                    Err(r) => self.refuse(r),
                }
            }
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
        let mut body = json!({"status": "error", "error": r.message});
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
    /// type, declared size, memory bound) first reads and discards the body, within bounds,
    /// so that a client which writes its whole body before reading (Python's http.client
    /// does) receives the answer instead of a connection reset — nginx's lingering close.
    async fn ingest(
        &self,
        peer: SocketAddr,
        req: Request<Incoming>,
        endpoint: &str,
    ) -> Result<Value, Refusal> {
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let result = self.ingest_parts(peer, &parts, &mut body, endpoint).await;
        if result.is_err() {
            if let Some(unread) = body.take() {
                discard(unread, &self.config.limits).await;
            }
        }
        result
    }

    async fn ingest_parts(
        &self,
        peer: SocketAddr,
        parts: &http::request::Parts,
        body: &mut Option<Incoming>,
        endpoint: &str,
    ) -> Result<Value, Refusal> {
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
        self.authorize(&parts.headers, &parts.uri)?;
        // Released when this function returns, after the events are buffered.
        let mut held = self.budget.start();
        let body = self.read_body(&parts.headers, body, &mut held).await?;
        self.charge(&mut held, memory::PARSE_FACTOR * body.len() as u64)
            .await?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let ctx = Context { now, user_agent };
        let (events, errors) = parse_events(&body, endpoint == "track", &self.config.limits, &ctx)?;
        if !errors.is_empty() {
            self.metrics.reject("invalid", errors.len() as u64);
        }
        if events.is_empty() || (endpoint == "track" && !errors.is_empty()) {
            let mut r = Refusal::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                match errors.first() {
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
        if endpoint != "validate" {
            let record = Record {
                collector_id: self.config.collector_id.clone(),
                received_at_us: event::micros(now),
                events,
            };
            self.buffer
                .append(&record)
                .await
                .map_err(|e| self.buffer_refusal(e, processed))?;
            self.metrics.events_accepted.inc_by(processed as u64);
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

    fn authorize(&self, headers: &HeaderMap, uri: &http::Uri) -> Result<(), Refusal> {
        if self.config.write_keys.is_empty() {
            return Ok(());
        }
        let header_key = headers
            .get("x-write-key")
            .or_else(|| headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string());
        // navigator.sendBeacon cannot set headers: accept `?write_key=` too.
        let query_key = uri.query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("write_key="))
                .map(str::to_string)
        });
        match header_key.or(query_key) {
            Some(k)
                if self
                    .config
                    .write_keys
                    .iter()
                    .any(|w| constant_time_eq(w.as_bytes(), k.as_bytes())) =>
            {
                Ok(())
            }
            Some(_) => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unknown write key",
            )),
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a write key is required (X-Write-Key header or ?write_key=)",
            )),
        }
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

    /// Reads the body (taking it out of `body` only once its headers passed every check
    /// and its memory is charged), then decodes it.
    async fn read_body(
        &self,
        headers: &HeaderMap,
        body: &mut Option<Incoming>,
        held: &mut Held,
    ) -> Result<Bytes, Refusal> {
        let limits = &self.config.limits;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not visible ASCII)"))
            .unwrap_or("application/json");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(mime.as_str(), "application/json" | "text/plain" | "") {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "media_type",
                format!(
                    "content type {mime} is not supported: send application/json or text/plain"
                ),
            ));
        }
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body larger than {} bytes", limits.max_body_bytes),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
            return Err(too_large());
        }
        // Charged before a byte is read: a waiting body stays in the kernel's buffers.
        self.charge(held, declared.unwrap_or(limits.max_body_bytes as u64))
            .await?;
        // A body trickled in slowly must not hold a connection forever (slow-body attack):
        // the whole body has the header timeout to arrive, then 408.
        let Some(body) = body.take() else {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body",
                "could not read the request body",
            ));
        };
        let collected = tokio::time::timeout(
            std::time::Duration::from_secs(limits.header_timeout_secs.max(1)),
            Limited::new(body, limits.max_body_bytes).collect(),
        )
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time",
            )
        })?;
        let raw = collected
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large()
                } else {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "body",
                        "could not read the request body",
                    )
                }
            })?
            .to_bytes();
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("(not visible ASCII)"))
            .map(|v| v.trim().to_ascii_lowercase());
        match encoding.as_deref() {
            None | Some("identity") => Ok(raw),
            Some("gzip") => self.gunzip(&raw, limits.max_decoded_bytes, held).await,
            Some(other) => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "encoding",
                format!("content encoding {other} is not supported: send gzip or none"),
            )),
        }
    }

    /// Decodes gzip, refusing (413) output larger than `max` — a gzip bomb stops at
    /// `max + 1` — and charging the output to the memory bound as it grows.
    async fn gunzip(&self, raw: &[u8], max: usize, held: &mut Held) -> Result<Bytes, Refusal> {
        const CHUNK: usize = memory::DECODE_CHUNK as usize;
        let mut out = Vec::new();
        let mut charged = 0usize;
        let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(max as u64 + 1);
        loop {
            if out.len() + CHUNK > charged {
                self.charge(held, CHUNK as u64).await?;
                charged += CHUNK;
            }
            let start = out.len();
            out.resize(start + CHUNK, 0);
            let n = decoder.read(&mut out[start..]).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "gzip",
                    format!("body is not valid gzip: {e}"),
                )
            })?;
            out.truncate(start + n);
            if n == 0 {
                break;
            }
        }
        if out.len() > max {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body larger than {max} bytes once decompressed"),
            ));
        }
        Ok(Bytes::from(out))
    }

    fn cors(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin else { return };
        let allowed = self
            .config
            .cors_origins
            .iter()
            .any(|o| o == "*" || o.as_bytes() == origin.as_bytes());
        if allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            // Lets browser clients honour Retry-After on 429/503.
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("Retry-After"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

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
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
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
        (_, Value::Object(mut o)) if o.get("batch").is_some_and(Value::is_array) => {
            match o.remove("batch") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        (_, other) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "not_array",
                format!(
                    "/batch takes a JSON array of events or {{\"batch\": [...]}}, got {}",
                    short_kind(&other)
                ),
            ))
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
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match event::validate(item, i, limits, ctx) {
            Ok(e) => events.push(e),
            Err(e) => errors.push(e),
        }
    }
    Ok((events, errors))
}

/// Reads and drops an unread request body: at most twice `max_body_bytes`, for at most
/// two seconds, one frame at a time (nothing accumulates).
async fn discard(mut body: Incoming, limits: &crate::config::Limits) {
    let cap = 2 * limits.max_body_bytes;
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

fn preflight() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Content-Encoding, X-Write-Key, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
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

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
