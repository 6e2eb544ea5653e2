//! Direct polling of collectors' admin endpoints (HTTP/1.1, hyper-util's client; addresses
//! parsed as [`hyper::Uri`]): `GET /v1/buffer`, so buffer health stays live during a
//! database outage, when heartbeats cannot land, and `GET /v1/tail`, the live tail of
//! accepted events.
//!
//! Invariant: a poll never outlives its timeout, never panics, reads at most
//! [`MAX_BODY`] bytes, and any failure comes back as one line naming the cause (address,
//! connection, status, token, JSON).

use std::{error::Error as _, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use thiserror::Error;

use crate::model::{CollectorHealth, TailPage};

/// The collector's default admin port, used when an address has none.
pub const DEFAULT_ADMIN_PORT: u16 = 9100;
/// Largest `/v1/buffer` answer read.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum PollError {
    #[error("invalid collector address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("HTTP error from {0}: {1}")]
    Http(String, String),
    #[error("{0} answered 401: admin token missing or wrong (--admin-token)")]
    Unauthorized(String),
    #[error("{0} answered {1}: {2}")]
    Status(String, u16, String),
    #[error("{0} sent an invalid {1} answer: {2}")]
    Decode(String, &'static str, String),
    #[error("{0} has no live tail: it runs an older collector, or admin_tail_events = 0")]
    NoTail(String),
}

/// Where to reach one collector's admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path of the buffer endpoint, after any prefix in the address.
    pub path: String,
    /// The prefix in the address (`/admin` of `http://host/admin/`), or empty.
    pub prefix: String,
}

impl Target {
    /// `host:port` as sent in the Host header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL of `path` (after the prefix).
    fn uri(&self, path: &str) -> Result<Uri, hyper::http::uri::InvalidUri> {
        format!("http://{}{}{path}", self.authority(), self.prefix).parse()
    }
}

/// Parses `host:port`, `host`, `[::1]:9100` or `http://host:port[/prefix]` (as a
/// [`hyper::Uri`], `http://` assumed).
pub fn parse_address(address: &str) -> Result<Target, PollError> {
    let bad = |why: &str| PollError::Address(address.to_string(), why.to_string());
    let s = address.trim();
    let full = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let authority = full
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if !authority.starts_with('[') && authority.matches(':').count() > 1 {
        return Err(bad("put an IPv6 address in brackets: [::1]:9100"));
    }
    let uri: Uri = full.parse().map_err(|e| bad(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported: poll the admin listener over loopback or a tunnel",
            ))
        }
        _ => return Err(bad("only http:// addresses are supported")),
    }
    let raw_host = uri.host().unwrap_or_default();
    let host = raw_host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    // What follows the host in the authority: nothing, or `:port`.
    let after = authority
        .rsplit_once('@')
        .map_or(authority, |(_, a)| a)
        .get(raw_host.len()..)
        .unwrap_or_default();
    let port = match after.strip_prefix(':') {
        None if after.is_empty() => DEFAULT_ADMIN_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) => return Err(bad("port 0")),
            Ok(p) => p,
            Err(_) => return Err(bad("invalid port")),
        },
        None => return Err(bad("unexpected text after the host")),
    };
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok(Target {
        host: host.to_string(),
        port,
        path: format!("{prefix}/v1/buffer"),
        prefix,
    })
}

/// A `--collector` address that does not parse, named as the command line gave it (the
/// dashboard and `monitor tail` refuse it before they start).
#[derive(Debug, Error)]
#[error("--collector {address:?}")]
pub struct BadCollector {
    pub address: String,
    #[source]
    pub source: PollError,
}

/// Checks every `--collector` address; the first that does not parse is the error.
pub fn check_addresses(addresses: &[String]) -> Result<(), BadCollector> {
    for address in addresses {
        parse_address(address).map_err(|source| BadCollector {
            address: address.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Polls one collector.
pub async fn poll(
    address: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<CollectorHealth, PollError> {
    let target = parse_address(address)?;
    let got = tokio::time::timeout(timeout, fetch(&target, "/v1/buffer", token)).await;
    match got {
        Ok(r) => r.and_then(|(status, body)| decode(&target.authority(), status, &body)),
        Err(_) => Err(PollError::Timeout(target.authority(), timeout)),
    }
}

/// Reads one collector's live tail: events after sequence number `after` (the newest ones
/// without it), at most `limit`.
pub async fn tail(
    address: &str,
    token: Option<&str>,
    after: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<TailPage, PollError> {
    let target = parse_address(address)?;
    let authority = target.authority();
    let path = match after {
        Some(a) => format!("/v1/tail?after={a}&limit={limit}"),
        None => format!("/v1/tail?limit={limit}"),
    };
    let (status, body) = match tokio::time::timeout(timeout, fetch(&target, &path, token)).await {
        Ok(r) => r?,
        Err(_) => return Err(PollError::Timeout(authority, timeout)),
    };
    match status {
        StatusCode::OK => serde_json::from_slice::<TailPage>(&body)
            .map_err(|e| PollError::Decode(authority, "/v1/tail", e.to_string())),
        StatusCode::NOT_FOUND => Err(PollError::NoTail(authority)),
        s => Err(status_error(&authority, s, &body)),
    }
}

/// Reads every address's tail concurrently (`afters[i]` for `addresses[i]`); one result
/// per address, in order, errors as text.
pub async fn tail_all(
    addresses: &[String],
    afters: &[Option<u64>],
    token: Option<&str>,
    limit: usize,
    timeout: Duration,
) -> Vec<Result<TailPage, String>> {
    futures_util::future::join_all(addresses.iter().enumerate().map(|(i, a)| {
        let after = afters.get(i).copied().flatten();
        async move {
            tail(a, token, after, limit, timeout)
                .await
                .map_err(|e| e.to_string())
        }
    }))
    .await
}

/// An error with its causes, on one line (`a: b: c`).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s = format!("{s}: {text}");
        }
        cause = c.source();
    }
    s
}

/// One `GET` of `path` on a fresh connection (hyper-util's client, no pool): the status and
/// at most [`MAX_BODY`] bytes of body.
async fn fetch(
    target: &Target,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), PollError> {
    let authority = target.authority();
    let http =
        |e: &(dyn std::error::Error + 'static)| PollError::Http(authority.clone(), with_causes(e));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let uri = target.uri(path).map_err(|e| http(&e))?;
    let mut builder = Request::get(uri)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("edge-monitor/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(t) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = builder.body(Empty::<Bytes>::new()).map_err(|e| http(&e))?;
    let response = client.request(request).await.map_err(|e| {
        if e.is_connect() {
            // The cause says why (refused, unreachable, no such host).
            let why = e.source().map_or_else(|| e.to_string(), with_causes);
            PollError::Connect(authority.clone(), why)
        } else {
            http(&e)
        }
    })?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| http(&*e))?
        .to_bytes();
    Ok((status, body))
}

/// The error a status other than 200 means.
fn status_error(authority: &str, status: StatusCode, body: &[u8]) -> PollError {
    if status == StatusCode::UNAUTHORIZED {
        return PollError::Unauthorized(authority.to_string());
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(120).collect();
    PollError::Status(
        authority.to_string(),
        status.as_u16(),
        text.split_whitespace().collect::<Vec<_>>().join(" "),
    )
}

/// The health record of a `200`, or the error a status means.
fn decode(authority: &str, status: StatusCode, body: &[u8]) -> Result<CollectorHealth, PollError> {
    match status {
        StatusCode::OK => serde_json::from_slice::<CollectorHealth>(body)
            .map_err(|e| PollError::Decode(authority.to_string(), "/v1/buffer", e.to_string()))
            .and_then(|h| {
                if h.collector_id.is_empty() {
                    Err(PollError::Decode(
                        authority.to_string(),
                        "/v1/buffer",
                        "no collector_id".into(),
                    ))
                } else {
                    Ok(h)
                }
            }),
        s => Err(status_error(authority, s, body)),
    }
}

/// Polls every address concurrently; one result per address, in order, errors as text.
pub async fn poll_all(
    addresses: &[String],
    token: Option<&str>,
    timeout: Duration,
) -> Vec<Result<CollectorHealth, String>> {
    futures_util::future::join_all(
        addresses
            .iter()
            .map(|a| async move { poll(a, token, timeout).await.map_err(|e| e.to_string()) }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    #[test]
    fn addresses() {
        let t = parse_address("127.0.0.1:9101").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9101, "/v1/buffer")
        );
        let t = parse_address("http://edge-1.internal/admin/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("edge-1.internal", 9100, "/admin/v1/buffer")
        );
        let t = parse_address("[::1]:9200").unwrap();
        assert_eq!(t.authority(), "[::1]:9200");
        assert!(parse_address("https://x:1").is_err());
        assert!(parse_address("::1:9100").is_err());
        assert!(parse_address("x:notaport").is_err());
        assert!(parse_address("").is_err());
    }

    /// A one-shot HTTP server answering `status` with `body`; returns its address and the
    /// request it received.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
            req
        });
        (addr, handle)
    }

    #[tokio::test]
    async fn polls_with_bearer_token() {
        let (addr, req) = serve_once(
            "200 OK",
            r#"{"collector_id":"edge-1","region":"eu","buffered_events":12,"forward_rate":3.5,"extra":1}"#,
        )
        .await;
        let h = poll(&addr, Some("s3cret"), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(h.collector_id, "edge-1");
        assert_eq!(h.buffered_events, 12);
        let req = req.await.unwrap();
        assert!(req.starts_with("GET /v1/buffer HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("authorization: bearer s3cret"),
            "{req}"
        );
    }

    #[tokio::test]
    async fn reports_status_token_and_timeouts() {
        let (addr, _) = serve_once("401 Unauthorized", r#"{"error":"admin token required"}"#).await;
        let e = poll(&addr, None, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e, PollError::Unauthorized(_)), "{e}");

        let (addr, _) = serve_once("500 Internal Server Error", "oops").await;
        let e = poll(&addr, None, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.to_string().contains("500"), "{e}");

        let (addr, _) = serve_once("200 OK", "not json").await;
        let e = poll(&addr, None, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(e, PollError::Decode(..)), "{e}");

        // Accepts but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let start = std::time::Instant::now();
        let e = poll(&addr, None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, PollError::Timeout(..)), "{e}");
        assert!(start.elapsed() < Duration::from_secs(2));

        // Nobody listening.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let all = poll_all(&[format!("127.0.0.1:{port}")], None, Duration::from_secs(1)).await;
        assert!(
            all[0].as_ref().unwrap_err().contains("cannot connect"),
            "{all:?}"
        );
    }
}
