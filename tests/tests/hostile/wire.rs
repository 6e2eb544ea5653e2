//! Raw HTTP on a `TcpStream`: requests written byte for byte, responses parsed by hand, outcomes (a status, a close, a hang).

use super::*;

/// What came back on a connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// A response: status and body.
    Status(u16, String),
    /// The server closed (or reset) the connection without a response.
    Closed,
    /// Nothing within the timeout, connection still open.
    Hang,
}

impl Outcome {
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status(s, _) => Some(*s),
            _ => None,
        }
    }
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// A 4xx or a closed connection.
    Refused,
    /// Exactly this status (storable oddities get 200).
    Exactly(u16),
}

/// Writes `parts` on a fresh connection (pausing `gap` between parts, ignoring write errors:
/// the server may close early), then reads one response.
pub(crate) fn exchange(addr: SocketAddr, parts: Vec<Vec<u8>>, gap: Duration) -> Outcome {
    exchange_n(addr, parts, gap, 1, ANSWER_TIMEOUT)
        .into_iter()
        .next()
        .unwrap_or(Outcome::Closed)
}

/// Like [`exchange`], reading up to `n` pipelined responses, waiting at most `timeout`.
pub(crate) fn exchange_n(
    addr: SocketAddr,
    parts: Vec<Vec<u8>>,
    gap: Duration,
    n: usize,
    timeout: Duration,
) -> Vec<Outcome> {
    let stream = TcpStream::connect(addr).expect("connect to the collector");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone stream");
    let write = std::thread::spawn(move || {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                std::thread::sleep(gap);
            }
            if writer.write_all(p).is_err() {
                return;
            }
        }
    });
    let out = read_responses(stream.try_clone().expect("clone stream"), n, timeout);
    // Unblock a writer still trickling bytes.
    let _ = stream.shutdown(Shutdown::Both);
    let _ = write.join();
    out
}

/// Reads up to `n` HTTP/1.x responses (Content-Length or chunked bodies).
pub(crate) fn read_responses(mut stream: TcpStream, n: usize, timeout: Duration) -> Vec<Outcome> {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut closed = false;
    while out.len() < n {
        if let Some((resp, used)) = parse_response(&buf) {
            buf.drain(..used);
            // Interim responses (100 Continue) are not answers.
            if !matches!(resp.status(), Some(100..=199)) {
                out.push(resp);
            }
            continue;
        }
        if closed {
            out.push(Outcome::Closed);
            break;
        }
        if start.elapsed() > timeout {
            out.push(Outcome::Hang);
            break;
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => closed = true,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => closed = true,
        }
    }
    out
}

/// One complete response at the start of `buf`, and how many bytes it used.
pub(crate) fn parse_response(buf: &[u8]) -> Option<(Outcome, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut pos = end;
        let mut body = Vec::new();
        loop {
            let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[pos..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            pos = line_end + 2;
            if size == 0 {
                let trailer_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos + 2;
                return Some((
                    Outcome::Status(status, String::from_utf8_lossy(&body).into_owned()),
                    trailer_end,
                ));
            }
            if buf.len() < pos + size + 2 {
                return None;
            }
            body.extend_from_slice(&buf[pos..pos + size]);
            pos += size + 2;
        }
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    let body = String::from_utf8_lossy(&buf[end..end + len]).into_owned();
    Some((Outcome::Status(status, body), end + len))
}

/// A request with a Content-Length body.
pub(crate) fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: collector\r\n");
    let mut has_type = false;
    for (k, v) in headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_type && method == "POST" {
        r.push_str("Content-Type: application/json\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub(crate) fn post(path: &str, body: &[u8]) -> Vec<u8> {
    req("POST", path, &[], body)
}

pub(crate) fn post_with(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    req("POST", path, headers, body)
}

/// A chunked POST of `body` in chunks of `size` bytes.
pub(crate) fn chunked(path: &str, headers: &[(&str, &str)], body: &[u8], size: usize) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    for c in body.chunks(size.max(1)) {
        bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        bytes.extend_from_slice(c);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}
