//! Write keys: which requests may send events.
//!
//! A key comes in the `X-Write-Key` header, as `Authorization: Bearer <key>`, or as
//! `?write_key=` (for `navigator.sendBeacon`, which cannot set headers; percent-decoded, as
//! the tracker sends it with `encodeURIComponent`).
//!
//! Invariant: keys are compared in constant time (`subtle`), against every configured key,
//! and never logged.

use http::{header, HeaderMap, StatusCode, Uri};
use subtle::ConstantTimeEq;

use super::{Ingest, Refusal};

impl Ingest {
    /// Accepts the request when no key is configured or it carries a configured one.
    pub(super) fn authorize(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refusal> {
        if self.config.write_keys.is_empty() {
            return Ok(());
        }
        let header_key = headers
            .get("x-write-key")
            .or_else(|| headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_string());
        match header_key.or_else(|| uri.query().and_then(query_write_key)) {
            Some(k) if key_matches(&self.config.write_keys, &k) => Ok(()),
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
}

/// The `write_key` parameter of a query string, percent-decoded.
pub fn query_write_key(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "write_key")
        .map(|(_, v)| v.into_owned())
}

/// Whether `given` is one of `keys`. Every key is compared, each in constant time.
pub fn key_matches(keys: &[String], given: &str) -> bool {
    keys.iter()
        .fold(subtle::Choice::from(0), |found, k| {
            found | k.as_bytes().ct_eq(given.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_key_with_reserved_characters() {
        // What the tracker sends for the key `k&y=1/+ü`: encodeURIComponent of it.
        let q = "foo=1&write_key=k%26y%3D1%2F%2B%C3%BC&bar=2";
        assert_eq!(query_write_key(q).as_deref(), Some("k&y=1/+ü"));
        assert_eq!(query_write_key("write_key=plain").as_deref(), Some("plain"));
        assert_eq!(query_write_key("other=1"), None);
    }

    #[test]
    fn matches_only_a_configured_key() {
        let keys = vec!["alpha".to_string(), "k&y=1/+ü".to_string()];
        assert!(key_matches(&keys, "alpha"));
        assert!(key_matches(&keys, "k&y=1/+ü"));
        assert!(!key_matches(&keys, "alph"));
        assert!(!key_matches(&keys, "alphaa"));
        assert!(!key_matches(&[], "alpha"));
    }
}
