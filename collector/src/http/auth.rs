//! Write keys: which requests may send events.
//!
//! A key comes in the `X-Write-Key` header, as `Authorization: Bearer <key>`, as HTTP Basic
//! credentials with the key as the user name (Segment's and RudderStack's libraries), as
//! `?write_key=` (for `navigator.sendBeacon`, which cannot set headers; percent-decoded, as
//! the tracker sends it with `encodeURIComponent`), or in the body: Segment's `writeKey`,
//! PostHog's `api_key` or `token`.
//!
//! A key configured under `[sources]` names the source of the events it sends; a key in
//! `write_keys` has no source name.
//!
//! Invariant: keys are compared in constant time (`subtle`), against every configured key,
//! and never logged.

use http::{header, HeaderMap, StatusCode, Uri};
use subtle::ConstantTimeEq;

use super::{Ingest, Refusal};

impl Ingest {
    /// Accepts the request when no key is configured or `key` is a configured one; the
    /// source the key names, if any.
    pub(super) fn check_key(&self, key: Option<&str>) -> Result<Option<String>, Refusal> {
        let (keys, sources) = (&self.config.write_keys, &self.config.sources);
        if keys.is_empty() && sources.is_empty() {
            return Ok(None);
        }
        match key {
            Some(k) => match source_of(sources, k) {
                Some(name) => Ok(Some(name)),
                None if key_matches(keys, k) => Ok(None),
                None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                    "unknown write key",
                )),
            },
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a write key is required (X-Write-Key, Authorization: Bearer or Basic, ?write_key=, or writeKey / api_key / token in the body)",
            )),
        }
    }
}

/// The write key a request carries in its headers or query: `X-Write-Key`,
/// `Authorization: Bearer <key>`, `Authorization: Basic base64(<key>:)` (Segment's and
/// RudderStack's libraries: the key is the user name), or `?write_key=`.
pub fn request_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(k) = headers.get("x-write-key").and_then(|v| v.to_str().ok()) {
        return Some(k.to_string());
    }
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b) = v.strip_prefix("Basic ") {
            return basic_user(b.trim());
        }
        return Some(v.strip_prefix("Bearer ").unwrap_or(v).to_string());
    }
    uri.query().and_then(query_write_key)
}

/// The user name of HTTP Basic credentials (`base64(user:password)`).
fn basic_user(encoded: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    Some(user.to_string())
}

/// The `write_key` parameter of a query string, percent-decoded.
pub fn query_write_key(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "write_key")
        .map(|(_, v)| v.into_owned())
}

/// The name of the source whose key is `given`. Every key is compared, each in constant
/// time.
pub fn source_of(
    sources: &std::collections::BTreeMap<String, String>,
    given: &str,
) -> Option<String> {
    let mut found = None;
    for (name, k) in sources {
        if bool::from(k.as_bytes().ct_eq(given.as_bytes())) && found.is_none() {
            found = Some(name.clone());
        }
    }
    found
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
    fn reads_basic_credentials_as_segment_sends_them() {
        let mut h = HeaderMap::new();
        // base64("wk-1:")
        h.insert(
            header::AUTHORIZATION,
            "Basic d2stMTo=".parse().expect("header"),
        );
        let uri: Uri = "/v1/batch".parse().expect("uri");
        assert_eq!(request_key(&h, &uri).as_deref(), Some("wk-1"));
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().expect("header"));
        assert_eq!(request_key(&h, &uri).as_deref(), Some("tok"));
        let uri: Uri = "/v1/batch?write_key=a%2Bb".parse().expect("uri");
        assert_eq!(request_key(&HeaderMap::new(), &uri).as_deref(), Some("a+b"));
    }

    #[test]
    fn names_the_source_of_a_key() {
        let sources: std::collections::BTreeMap<String, String> = [
            ("shop".to_string(), "wk-shop".to_string()),
            ("blog".to_string(), "wk-blog".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(source_of(&sources, "wk-blog").as_deref(), Some("blog"));
        assert_eq!(source_of(&sources, "wk-shop").as_deref(), Some("shop"));
        assert_eq!(source_of(&sources, "wk-sho"), None);
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
