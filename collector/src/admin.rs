//! The admin listener: metrics, buffer facts, forwarding control and the live tail of
//! accepted events, for operators only.
//!
//! Invariant: bound to loopback by default; when an `admin_token` is configured every route
//! but `/health` requires `Authorization: Bearer <token>` (config refuses a non-loopback
//! address without a token). `/v1/tail` answers event contents and is never logged.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{
    buffer::Buffer,
    config::Config,
    metrics::{BufferFigures, Metrics},
    respond::json_response,
    state::ForwardState,
    tail::{Tail, MAX_PAGE},
};

pub struct Admin {
    config: Config,
    buffer: Buffer,
    metrics: Arc<Metrics>,
    forward: Arc<ForwardState>,
    tail: Arc<Tail>,
}

impl Admin {
    pub fn new(
        config: Config,
        buffer: Buffer,
        metrics: Arc<Metrics>,
        forward: Arc<ForwardState>,
        tail: Arc<Tail>,
    ) -> Admin {
        Admin {
            config,
            buffer,
            metrics,
            forward,
            tail,
        }
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path();
        if path != "/health" && !self.authorized(&req) {
            return Ok(json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"status":"error","error":"admin token required"}),
            ));
        }
        let resp = match (req.method(), path) {
            (&Method::GET, "/health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
            (&Method::GET, "/metrics") => Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
                .body(Full::new(Bytes::from(self.metrics.render(&self.figures()))))
                .unwrap_or_default(),
            (&Method::GET, "/v1/buffer") => json_response(StatusCode::OK, &self.snapshot()),
            (&Method::GET, "/v1/tail") => self.tail_page(req.uri().query()),
            (&Method::POST, "/v1/forwarding/pause") => {
                self.forward.set_paused(true);
                self.metrics.forwarding_paused.set(1);
                tracing::info!("forwarding paused by operator");
                json_response(StatusCode::OK, &json!({"status": "paused"}))
            }
            (&Method::POST, "/v1/forwarding/resume") => {
                self.forward.set_paused(false);
                self.metrics.forwarding_paused.set(0);
                tracing::info!("forwarding resumed by operator");
                json_response(StatusCode::OK, &json!({"status": "forwarding"}))
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"status":"error","error":"not found"}),
            ),
        };
        Ok(resp)
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.config.admin_token else {
            return true;
        };
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(token.as_bytes())))
    }

    /// `GET /v1/tail?after=SEQ&limit=N`: accepted events after sequence number `SEQ` (or
    /// the newest `N` without it), oldest first; 404 when the tail is off.
    fn tail_page(&self, query: Option<&str>) -> Response<Full<Bytes>> {
        if !self.tail.enabled() {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"status":"error","error":"the live tail is off (admin_tail_events = 0)"}),
            );
        }
        let mut after = None;
        let mut limit = 100;
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let n = match v.parse::<u64>() {
                Ok(n) => n,
                Err(_) => {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"status":"error","error":format!("{k} must be a non-negative integer")}),
                    )
                }
            };
            match &*k {
                "after" => after = Some(n),
                "limit" => limit = usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
                _ => {}
            }
        }
        let page = self.tail.page(after, limit);
        json_response(StatusCode::OK, &page.to_json(&self.config.collector_id))
    }

    /// The buffer's figures for `/metrics`.
    fn figures(&self) -> BufferFigures {
        let s = self.buffer.stats();
        BufferFigures {
            events: s.events,
            bytes: s.bytes,
            limit_bytes: s.limit_bytes,
            disk_bytes: s.disk_bytes,
            quarantined: s.quarantined_events,
            oldest_age_secs: s
                .oldest_received_at_us
                .map(|us| crate::event::age(us).as_secs_f64())
                .unwrap_or(0.0),
        }
    }

    /// The facts of `/v1/buffer`; also what heartbeats carry.
    pub fn snapshot(&self) -> serde_json::Value {
        crate::heartbeat::Heartbeat::collect(
            &self.config,
            &self.buffer,
            &self.metrics,
            &self.forward,
        )
        .to_json()
    }
}
