//! PostHog's body forms, as its capture endpoint decodes them: what `posthog-js` and older
//! PostHog clients send besides plain JSON.
//!
//! - `?compression=gzip-js` (or `gzip`): a gzip body, usually labelled `text/plain` (no CORS
//!   preflight). A body starting with gzip's magic bytes is decoded whatever the parameter
//!   says; a body that is JSON is read as it is even when the parameter says gzip (a client
//!   that fell back to plain JSON).
//! - `?compression=base64`: the JSON in base64.
//! - A form (`application/x-www-form-urlencoded`, or a body starting `data=`): the `data`
//!   field holds the JSON, as it is or in base64, with an optional `compression` field (the
//!   query parameter wins). A `+` of base64 that reached us as a space is restored.
//! - A whole body in base64 (older clients), and base64 left once the rest is decoded (the
//!   legacy `/e/` forms), are decoded once each.
//! - `lz64` (lz-string, old posthog-js) is refused with 415.
//!
//! Invariants: every step's output is bounded by `limits.max_decoded_bytes` (gzip stops at
//! the bound, a bomb never grows past it) and charged to the in-flight memory bound before
//! it is allocated; a malformed form, base64 or gzip body is a 400 whose `code` names the
//! form (`form`, `base64`, `gzip`), an unsupported compression a 415 (`compression`).

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};

use crate::memory::Held;

use super::{
    encoding::{BodyEncoding, Decoded},
    Ingest, Refusal,
};

/// PostHog's body forms as a [`BodyEncoding`] (what its protocol reads bodies with).
pub struct PostHogForms;

impl BodyEncoding for PostHogForms {
    fn takes_forms(&self) -> bool {
        true
    }
    fn decode<'a>(
        &'a self,
        ingest: &'a Ingest,
        raw: Bytes,
        parts: &'a http::request::Parts,
        held: &'a mut Held,
    ) -> Decoded<'a> {
        Box::pin(ingest.decode_posthog(raw, &parts.headers, parts.uri.query(), held))
    }
}

/// The form media type.
pub const FORM_MIME: &str = "application/x-www-form-urlencoded";

/// How much of a body the form and base64 sniffing look at.
const SNIFF: usize = 128;

/// Standard base64, padded or not (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A `compression` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Base64,
    /// lz-string: not supported.
    Lz64,
}

impl Compression {
    /// The hint a `compression` value gives; `None` for an unknown one (the body is then
    /// sniffed, as PostHog does).
    pub fn parse(value: &str) -> Option<Compression> {
        match value.trim().to_ascii_lowercase().as_str() {
            "gzip" | "gzip-js" => Some(Compression::Gzip),
            "base64" | "b64" => Some(Compression::Base64),
            "lz64" | "lz-string" => Some(Compression::Lz64),
            _ => None,
        }
    }
}

impl Ingest {
    /// A PostHog body (already read, and decoded if it had a `Content-Encoding`) as JSON
    /// bytes: see the module documentation for the forms and the order they are tried in.
    async fn decode_posthog(
        &self,
        raw: Bytes,
        headers: &HeaderMap,
        query: Option<&str>,
        held: &mut Held,
    ) -> Result<Bytes, Refusal> {
        let max = self.config.limits.max_decoded_bytes;
        let mut payload = raw;
        // A whole body in base64 (not a form: `data=` is not base64).
        if !looks_like_form(&payload) && looks_like_base64(&payload) {
            if let Ok(decoded) = self.base64(&payload, held).await {
                payload = decoded;
            }
        }
        let mut form_compression = None;
        if is_form_label(headers) || looks_like_form(&payload) {
            if looks_like_form(&payload) {
                self.charge(held, payload.len() as u64).await?;
                let (data, compression) = form_data(&payload)?;
                payload = data;
                form_compression = compression;
            } else if !(looks_like_json(&payload) || is_gzip(&payload)) {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "form",
                    "a form body must carry the events in a data field (data=<JSON or base64 JSON>)",
                ));
            }
        }
        let compression = query_compression(query).or(form_compression);
        if compression == Some(Compression::Lz64) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "compression",
                "compression lz64 is not supported: send gzip-js, base64 or none",
            ));
        }
        if is_gzip(&payload)
            || (compression == Some(Compression::Gzip) && !looks_like_json(&payload))
        {
            payload = self.gunzip(&payload, max, held).await?;
        } else if compression == Some(Compression::Base64) && !looks_like_json(&payload) {
            payload = self.base64(&payload, held).await?;
        }
        // Base64 left inside (the legacy forms): decoded once more.
        if !looks_like_json(&payload) && looks_like_base64(&payload) {
            if let Ok(decoded) = self.base64(&payload, held).await {
                payload = decoded;
            }
        }
        if payload.len() > max {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body larger than {max} bytes once decoded"),
            ));
        }
        Ok(payload)
    }

    /// Decodes base64 (ASCII whitespace ignored), charging the output first.
    async fn base64(&self, text: &[u8], held: &mut Held) -> Result<Bytes, Refusal> {
        self.charge(held, (text.len() as u64).div_ceil(4) * 3)
            .await?;
        decode_base64(text).map(Bytes::from)
    }
}

/// Base64 text (ASCII whitespace ignored) as bytes, or a 400 naming the form.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Refusal> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    BASE64.decode(&compact).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "base64",
            format!("body is not valid base64: {e}"),
        )
    })
}

/// The `data` field of a form body (a `+` of base64 turned into a space restored) and its
/// `compression` field; a 400 when there is no `data`.
pub fn form_data(body: &[u8]) -> Result<(Bytes, Option<Compression>), Refusal> {
    let mut data = None;
    let mut compression = None;
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "data" if data.is_none() => data = Some(v),
            "compression" if compression.is_none() => compression = Compression::parse(&v),
            _ => {}
        }
    }
    let Some(data) = data.filter(|d| !d.is_empty()) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "form",
            "a form body must carry the events in a data field (data=<JSON or base64 JSON>)",
        ));
    };
    let loose_base64 = data
        .bytes()
        .take(SNIFF)
        .all(|b| is_base64_byte(b) || b == b' ');
    let data = if loose_base64 && data.contains(' ') {
        data.replace(' ', "+")
    } else {
        data.into_owned()
    };
    Ok((Bytes::from(data), compression))
}

/// The `compression` query parameter's hint.
fn query_compression(query: Option<&str>) -> Option<Compression> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "compression")
        .and_then(|(_, v)| Compression::parse(&v))
}

fn is_form_label(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(FORM_MIME))
}

/// Gzip's magic bytes.
pub fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

/// Whether the first byte that is not white space opens a JSON array or object.
pub fn looks_like_json(b: &[u8]) -> bool {
    matches!(
        b.iter().find(|c| !c.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Whether a form field PostHog clients send (`data=`, `compression=`, `_=`, `ip=`, `ver=`)
/// starts the body or follows an `&` in its first bytes.
pub fn looks_like_form(b: &[u8]) -> bool {
    let head = &b[..b.len().min(SNIFF)];
    ["data=", "compression=", "_=", "ip=", "ver="]
        .iter()
        .any(|f| {
            let f = f.as_bytes();
            head.starts_with(f)
                || head
                    .windows(f.len() + 1)
                    .any(|w| w[0] == b'&' && &w[1..] == f)
        })
}

/// Whether the body's first bytes are all base64 (PostHog's cheap test, which also needs
/// the length to be a multiple of four, ignoring trailing white space).
pub fn looks_like_base64(b: &[u8]) -> bool {
    let trimmed = b.trim_ascii_end();
    !trimmed.is_empty()
        && trimmed.len().is_multiple_of(4)
        && trimmed.iter().take(SNIFF).copied().all(is_base64_byte)
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_the_forms_apart() {
        assert!(looks_like_json(b"  [{\"event\":1}]"));
        assert!(looks_like_json(b"{}"));
        assert!(!looks_like_json(b"W3siZXZlbnQiOjF9XQ=="));
        assert!(looks_like_base64(b"W3siZXZlbnQiOjF9XQ=="));
        assert!(looks_like_base64(b"W3siZXZlbnQiOjF9XQ==\n"));
        assert!(!looks_like_base64(b"W3siZXZlbnQiOjF9XQ="), "not aligned");
        assert!(!looks_like_base64(b"[{\"a\":1}]"));
        assert!(!looks_like_base64(b""));
        assert!(looks_like_form(b"data=abc"));
        assert!(looks_like_form(b"_=1700000000&data=abc"));
        assert!(looks_like_form(b"compression=base64&data=abc"));
        assert!(!looks_like_form(b"[{\"data=\":1}]"));
        assert!(!looks_like_form(b"xdata=abc"));
        assert!(is_gzip(&[0x1f, 0x8b, 8, 0]));
        assert!(!is_gzip(b"{"));
    }

    #[test]
    fn compression_values_as_posthog_clients_write_them() {
        assert_eq!(Compression::parse("gzip-js"), Some(Compression::Gzip));
        assert_eq!(Compression::parse("GZIP"), Some(Compression::Gzip));
        assert_eq!(Compression::parse("base64"), Some(Compression::Base64));
        assert_eq!(Compression::parse("lz64"), Some(Compression::Lz64));
        assert_eq!(Compression::parse("brotli"), None);
        assert_eq!(
            query_compression(Some("ip=1&compression=gzip-js")),
            Some(Compression::Gzip)
        );
        assert_eq!(query_compression(Some("ver=1.0")), None);
        assert_eq!(query_compression(None), None);
    }

    #[test]
    fn form_data_restores_base64_pluses_and_reads_its_compression() {
        let json = r#"[{"event":"x","distinct_id":">>>"}]"#;
        let b64 = BASE64.encode(json);
        assert!(b64.contains('+'), "{b64}");
        // As a client that does not percent-encode `+` sends it: `+` reads as a space.
        let body = format!("data={b64}&compression=base64");
        let (data, compression) = form_data(body.as_bytes()).expect("form");
        assert_eq!(compression, Some(Compression::Base64));
        assert_eq!(decode_base64(&data).expect("base64"), json.as_bytes());
        // Percent-encoded JSON, the other form.
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("data", json)
            .finish();
        let (data, compression) = form_data(body.as_bytes()).expect("form");
        assert_eq!((data.as_ref(), compression), (json.as_bytes(), None));
        let e = form_data(b"compression=base64").expect_err("no data");
        assert_eq!((e.status.as_u16(), e.reason), (400, "form"));
        let e = form_data(b"data=").expect_err("empty data");
        assert_eq!(e.reason, "form");
    }

    #[test]
    fn base64_is_decoded_padded_or_not_and_refused_when_broken() {
        assert_eq!(
            decode_base64(b"eyJhIjoxfQ==").expect("padded"),
            b"{\"a\":1}"
        );
        assert_eq!(
            decode_base64(b"eyJhIjoxfQ").expect("unpadded"),
            b"{\"a\":1}"
        );
        assert_eq!(
            decode_base64(b"eyJh\nIjoxfQ==\n").expect("lines"),
            b"{\"a\":1}"
        );
        let e = decode_base64(b"e*J").expect_err("broken");
        assert_eq!((e.status.as_u16(), e.reason), (400, "base64"));
    }
}
