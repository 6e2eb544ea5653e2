//! Direct polling of collectors' admin endpoint `GET /v1/buffer` (HTTP/1.1, hyper), so
//! buffer health stays live during a database outage, when heartbeats cannot land.
//!
//! Invariant: a poll never outlives its timeout, never panics, reads at most
//! [`MAX_BODY`] bytes, and any failure comes back as one line naming the cause (address,
//! connection, status, token, JSON).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

use crate::model::CollectorHealth;

/// The collector's default admin port, used when an address has none.
pub const DEFAULT_ADMIN_PORT: u16 = 9100;
/// Largest `/v1/buffer` answer read.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum PollError {
    #[error("invalid collector address {0:?}: {1}")]
    Address(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("HTTP error from {0}: {1}")]
    Http(String, String),
    #[error("{0} answered 401: admin token missing or wrong (--admin-token)")]
    Unauthorized(String),
    #[error("{0} answered {1}: {2}")]
    Status(String, u16, String),
    #[error("{0} sent an invalid /v1/buffer answer: {1}")]
    Decode(String, String),
}

/// Where to reach one collector's admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path of the buffer endpoint, after any prefix in the address.
    pub path: String,
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
}

/// Parses `host:port`, `host`, `[::1]:9100` or `http://host:port[/prefix]`.
pub fn parse_address(address: &str) -> Result<Target, PollError> {
    let bad = |why: &str| PollError::Address(address.to_string(), why.to_string());
    let s = address.trim();
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if s.starts_with("https://") {
        return Err(bad(
            "https is not supported: poll the admin listener over loopback or a tunnel",
        ));
    } else if s.contains("://") {
        return Err(bad("only http:// addresses are supported"));
    } else {
        s
    };
    let (hostport, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if hostport.is_empty() {
        return Err(bad("no host"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None if after.is_empty() => DEFAULT_ADMIN_PORT,
            None => return Err(bad("unexpected text after ']'")),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                (h.to_string(), p.parse().map_err(|_| bad("invalid port"))?)
            }
            Some(_) => return Err(bad("put an IPv6 address in brackets: [::1]:9100")),
            None => (hostport.to_string(), DEFAULT_ADMIN_PORT),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if port == 0 {
        return Err(bad("port 0"));
    }
    Ok(Target {
        host,
        port,
        path: format!("{prefix}/v1/buffer"),
    })
}

/// Polls one collector.
pub async fn poll(
    address: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<CollectorHealth, PollError> {
    let target = parse_address(address)?;
    match tokio::time::timeout(timeout, fetch(&target, token)).await {
        Ok(r) => r,
        Err(_) => Err(PollError::Timeout(target.authority(), timeout)),
    }
}

async fn fetch(target: &Target, token: Option<&str>) -> Result<CollectorHealth, PollError> {
    let authority = target.authority();
    let http = |e: &dyn std::fmt::Display| PollError::Http(authority.clone(), e.to_string());
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| PollError::Connect(authority.clone(), e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(&e))?;
    let mut builder = Request::get(target.path.as_str())
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
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| http(&*e))?
            .to_bytes();
        Ok::<_, PollError>((status, body))
    };
    // The connection is driven alongside the exchange and closed with it. A server that
    // closes right after its answer ends the connection first: the answer is then complete.
    tokio::pin!(connection);
    tokio::pin!(exchange);
    let (status, body) = tokio::select! {
        biased;
        r = &mut exchange => r?,
        r = &mut connection => match r {
            Ok(()) => exchange.await?,
            Err(e) => return Err(http(&e)),
        },
    };
    match status {
        StatusCode::OK => serde_json::from_slice::<CollectorHealth>(&body)
            .map_err(|e| PollError::Decode(authority.clone(), e.to_string()))
            .and_then(|h| {
                if h.collector_id.is_empty() {
                    Err(PollError::Decode(
                        authority.clone(),
                        "no collector_id".into(),
                    ))
                } else {
                    Ok(h)
                }
            }),
        StatusCode::UNAUTHORIZED => Err(PollError::Unauthorized(authority.clone())),
        s => {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(120).collect();
            Err(PollError::Status(
                authority.clone(),
                s.as_u16(),
                text.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        }
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
