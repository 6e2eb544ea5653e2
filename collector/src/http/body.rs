//! Request bodies: read under the limits and the in-flight memory bound, decoded (gzip,
//! then the protocol's own [`super::encoding::BodyEncoding`], such as PostHog's forms in [`super::form`]),
//! or — for a request refused before its body was read — read and thrown away.
//!
//! A protocol with its own body forms implements that trait in its own file and
//! returns it from [`protocol::Protocol::body_encoding`]; nothing here names a protocol.
//!
//! Invariants: no byte is read before the request's memory is charged
//! ([`crate::memory`]); a body larger than `max_body_bytes` as sent, or `max_decoded_bytes`
//! once decoded, is refused with 413 and never held whole; a body that trickles in gets 408
//! after `header_timeout_secs`; a body refused unread or part-read (a declared or a chunked
//! one over the limit) is drained within bounds first, so a client that writes its whole
//! body before reading gets the answer, not a reset.

use std::io::Read;

use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use serde_json::Value;

use crate::memory::{self, Held};

use super::{parse, protocol, Ingest, Refusal};

impl Ingest {
    /// The messages a request carries — its body's, or a pixel's query string — with the
    /// key the body carries and the decoded size, charged to the memory bound.
    pub(super) async fn read_messages(
        &self,
        parts: &http::request::Parts,
        body: &mut Option<Incoming>,
        held: &mut Held,
        route: &'static protocol::Route,
    ) -> Result<(Vec<Value>, Option<String>, usize), Refusal> {
        let limits = &self.config.limits;
        if route.shape == protocol::Shape::Query {
            let query = parts.uri.query().unwrap_or("");
            self.charge(held, memory::PARSE_FACTOR * query.len() as u64)
                .await?;
            return Ok((vec![parse::query_message(query)], None, query.len()));
        }
        let p = route.protocol;
        let encoding = p.body_encoding();
        let media = match (p.any_content_type(), encoding.takes_forms()) {
            (true, _) => Media::Any,
            (false, true) => Media::JsonOrForm,
            (false, false) => Media::Json,
        };
        let bytes = self.read_body(&parts.headers, body, held, media).await?;
        let bytes = encoding.decode(self, bytes, parts, held).await?;
        self.charge(held, memory::PARSE_FACTOR * bytes.len() as u64)
            .await?;
        let single = route.shape == protocol::Shape::One;
        let (items, key) =
            parse::parse_body(&bytes, single, p.envelope(), p.lone_message(), limits)?;
        let key = match key {
            Some(k) => Some(k),
            None => p.message_key(&items)?,
        };
        Ok((items, key, bytes.len()))
    }

    /// Reads the body (taking it out of `body` only once its headers passed every check
    /// and its memory is charged), then decodes it.
    pub(super) async fn read_body(
        &self,
        headers: &HeaderMap,
        body: &mut Option<Incoming>,
        held: &mut Held,
        media: Media,
    ) -> Result<Bytes, Refusal> {
        let limits = &self.config.limits;
        check_media_type(headers, media)?;
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
        let Some(mut incoming) = body.take() else {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "body",
                "could not read the request body",
            ));
        };
        let max = limits.max_body_bytes;
        let capacity = declared.map_or(0, |d| d as usize).min(max);
        let read = async {
            let mut raw = Vec::with_capacity(capacity);
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|_| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "body",
                        "could not read the request body",
                    )
                })?;
                if let Ok(data) = frame.into_data() {
                    if raw.len() + data.len() > max {
                        return Err(too_large());
                    }
                    raw.extend_from_slice(&data);
                }
            }
            Ok(Bytes::from(raw))
        };
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(limits.header_timeout_secs.max(1)),
            read,
        )
        .await;
        let raw = match read {
            Ok(Ok(raw)) => raw,
            // A body without a Content-Length found too large as it is read (chunked): the
            // rest is lingered over like a declared one's, so the client reads the 413.
            Ok(Err(r)) if r.status == StatusCode::PAYLOAD_TOO_LARGE => {
                *body = Some(incoming);
                return Err(r);
            }
            Ok(Err(r)) => return Err(r),
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                ))
            }
        };
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
    pub(super) async fn gunzip(
        &self,
        raw: &[u8],
        max: usize,
        held: &mut Held,
    ) -> Result<Bytes, Refusal> {
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
}

/// Reads and drops an unread request body before its refusal is answered: nginx's
/// lingering close. Closing a socket with unread data makes the kernel send a reset, and a
/// client that writes its whole body before reading (Python's http.client, simple scripts)
/// then loses the answer. (hyper stops reading a body once the answer is returned, so this
/// cannot wait until after it.)
///
/// Bounded: at most twice `max_body_bytes`, at most [`LINGER_IDLE`] between two reads and
/// `header_timeout_secs` in all, one frame at a time (nothing accumulates).
pub(super) async fn linger(mut body: Incoming, limits: &crate::config::Limits) {
    let cap = 2 * limits.max_body_bytes;
    let total = std::time::Duration::from_secs(limits.header_timeout_secs.max(1));
    let drain = async {
        let mut seen = 0usize;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(LINGER_IDLE, body.frame()).await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(total, drain).await;
}

/// The longest a lingering body may pause between two reads.
const LINGER_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The media types a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    /// JSON: `application/json`, `text/plain` (what `sendBeacon` sends without a
    /// preflight), or no type at all.
    Json,
    /// JSON, or a form (`application/x-www-form-urlencoded`: PostHog's `data=` bodies).
    JsonOrForm,
    /// Anything: read as JSON whatever the label (client libraries that mislabel it).
    Any,
}

/// Refuses (415) a body whose type `media` does not take.
fn check_media_type(headers: &HeaderMap, media: Media) -> Result<(), Refusal> {
    if media == Media::Any {
        return Ok(());
    }
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
    if matches!(mime.as_str(), "application/json" | "text/plain" | "") {
        return Ok(());
    }
    if media == Media::JsonOrForm && mime == super::form::FORM_MIME {
        return Ok(());
    }
    let form = if media == Media::JsonOrForm {
        ", text/plain or application/x-www-form-urlencoded"
    } else {
        " or text/plain"
    };
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "media_type",
        format!("content type {mime} is not supported: send application/json{form}"),
    ))
}
