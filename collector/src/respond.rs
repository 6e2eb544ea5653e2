//! JSON answers, shared by the ingest and the admin listeners.
//!
//! Invariant: every answer is a complete response value; building one cannot fail.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

/// The response type of both listeners.
pub type Resp = Response<Full<Bytes>>;

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
