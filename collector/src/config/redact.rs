//! Redaction of database URLs for logs and error messages.
//!
//! Invariant: the output never contains the password of the input, whatever its form
//! (URL userinfo, multi-host URL, `password=` query parameter or key-value string).

/// Hides the password of a database URL for logs and error messages: a `postgres://` URL's
/// password (also of a multi-host URL, which the `url` crate cannot parse) and the
/// `password=` of a key-value connection string.
pub fn redact_url(url: &str) -> String {
    if !url.contains("://") {
        return url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return redact_query(parsed.as_str());
        }
        return redact_query(url);
    }
    // Multi-host (`postgres://u:p@h1:5432,h2:5432/db`): the userinfo ends at the last '@'
    // before the path.
    let scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path = url[scheme..]
        .find('/')
        .map(|i| scheme + i)
        .unwrap_or(url.len());
    match url[scheme..path].rfind('@').map(|i| scheme + i) {
        Some(at) => match url[scheme..at].find(':') {
            Some(colon) => redact_query(&format!("{}:***{}", &url[..scheme + colon], &url[at..])),
            None => redact_query(url),
        },
        None => redact_query(url),
    }
}

/// Hides a `password=` query parameter (libpq accepts one in the URL's query).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}
