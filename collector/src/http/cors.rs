//! CORS for browsers: preflights, and the headers that let a page read our answers
//! (including `Retry-After`).
//!
//! Invariant: `Access-Control-Allow-Origin` is only ever the request's own origin, and only
//! when it is one of `cors_origins` (or `*` is).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::respond::Resp;

use super::Ingest;

impl Ingest {
    pub(super) fn cors(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
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

pub(super) fn preflight() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        // X-Retry-Count: analytics-next marks its retries with it; without it here the
        // browser blocks every retry at the preflight.
        HeaderValue::from_static(
            "Content-Type, Content-Encoding, X-Write-Key, Authorization, X-Retry-Count",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}
