//! A small blocking HTTP client for tests (ureq): every status is returned, not an error.

use std::{net::SocketAddr, time::Duration};

/// A response: status, headers (lower-case names) and body text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

fn into_resp(r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<Resp> {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.into()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            resp.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let body = resp.into_string()?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// POST `body` to `http://addr{path}` with extra headers.
pub fn post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> anyhow::Result<Resp> {
    let mut req = agent().post(&format!("http://{addr}{path}"));
    let mut has_type = false;
    for (k, v) in headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        req = req.set(k, v);
    }
    if !has_type {
        req = req.set("Content-Type", "application/json");
    }
    into_resp(req.send_bytes(body))
}

/// POST a JSON value.
pub fn post_json(addr: SocketAddr, path: &str, v: &serde_json::Value) -> anyhow::Result<Resp> {
    post(addr, path, v.to_string().as_bytes(), &[])
}

pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Resp> {
    into_resp(agent().get(&format!("http://{addr}{path}")).call())
}

pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Resp> {
    let mut req = agent().request(method, &format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    into_resp(req.call())
}

/// A response whose body is bytes (not text, such as a pixel's GIF).
#[derive(Debug, Clone)]
pub struct BytesResp {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// GET `path`, the body read as bytes.
pub fn get_bytes(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<BytesResp> {
    let mut req = agent().get(&format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.into()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            resp.header(&n)
                .map(|v| (n.to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
    Ok(BytesResp {
        status,
        headers,
        body,
    })
}
