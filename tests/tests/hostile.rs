//! A corpus of hostile requests against the real `collector` binary on loopback, with a real
//! database so the forwarder runs: malformed JSON, wrong types, huge bodies (with and without
//! Content-Length, chunked), deep nesting, invalid UTF-8, escapes PostgreSQL refuses, lone
//! surrogates, odd numbers, duplicate keys, gzip bombs and broken gzip, wrong Content-Type
//! and Content-Encoding, header floods, request smuggling shapes, slow-loris and idle
//! connections, HTTP/1.0, pipelining, absurd methods and paths.
//!
//! Every request is written byte for byte on a raw `TcpStream`, so nothing is normalised by a
//! client library. Each case must get a 4xx or a closed connection (a few storable oddities
//! must get a 200 and land intact); nothing may get a 5xx or hang. After each group the
//! collector must still answer /health and a valid event must still reach `user_events` (the
//! forwarder never stalls); at the end, the only rows in the database are the ones that were
//! meant to be stored.
//!
//! `ingest.rs` covers the basic refusals through an HTTP client; this file does not repeat them.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use e2e::{
    client::{get, post_json},
    db::{eventually, TestDb},
    proc::{CollectorOpts, CollectorProc},
};
use flate2::{write::GzEncoder, Compression};
use serde_json::json;

const MAX_BODY: usize = 65_536;
const MAX_DECODED: usize = 262_144;
const MAX_CONNECTIONS: usize = 64;
const HEADER_TIMEOUT_SECS: u64 = 2;
/// How long a case may take to be answered before it counts as a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What came back on a connection.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A response: status and body.
    Status(u16, String),
    /// The server closed (or reset) the connection without a response.
    Closed,
    /// Nothing within the timeout, connection still open.
    Hang,
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        match self {
            Outcome::Status(s, _) => Some(*s),
            _ => None,
        }
    }
}

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A 4xx or a closed connection.
    Refused,
    /// Exactly this status (storable oddities get 200).
    Exactly(u16),
}

/// Writes `parts` on a fresh connection (pausing `gap` between parts, ignoring write errors:
/// the server may close early), then reads one response.
fn exchange(addr: SocketAddr, parts: Vec<Vec<u8>>, gap: Duration) -> Outcome {
    exchange_n(addr, parts, gap, 1, ANSWER_TIMEOUT)
        .into_iter()
        .next()
        .unwrap_or(Outcome::Closed)
}

/// Like [`exchange`], reading up to `n` pipelined responses, waiting at most `timeout`.
fn exchange_n(
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
fn read_responses(mut stream: TcpStream, n: usize, timeout: Duration) -> Vec<Outcome> {
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
fn parse_response(buf: &[u8]) -> Option<(Outcome, usize)> {
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
fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
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

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    req("POST", path, &[], body)
}

fn post_with(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    req("POST", path, headers, body)
}

/// A chunked POST of `body` in chunks of `size` bytes.
fn chunked(path: &str, headers: &[(&str, &str)], body: &[u8], size: usize) -> Vec<u8> {
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

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// A case: a name, the raw request bytes, and what it must get.
struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn refused(name: &str, bytes: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect: Expect::Refused,
    }
}

fn exactly(name: &str, status: u16, bytes: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect: Expect::Exactly(status),
    }
}

/// Storable oddities: each event has its own event_id, checked in the database at the end.
struct Storable {
    event_id: String,
    /// SQL boolean expression over the row's columns that must hold.
    check: &'static str,
}

/// Test-wide state: the collector, the database, the failures found so far.
struct Run {
    c: CollectorProc,
    db: TestDb,
    failures: Vec<String>,
    storable: Vec<Storable>,
    sentinels: Vec<String>,
    cases: usize,
    started: Instant,
}

impl Run {
    /// Counts one case, prints its line, and records `failure()` when it did not pass;
    /// returns `ok`.
    fn record(&mut self, ok: bool, shown: &str, failure: impl FnOnce() -> String) -> bool {
        self.cases += 1;
        eprintln!("{} {shown}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(failure());
        }
        ok
    }

    fn judge(&mut self, name: &str, outcome: &Outcome, expect: Expect) {
        let ok = match (expect, outcome) {
            (Expect::Refused, Outcome::Closed) => true,
            (Expect::Refused, Outcome::Status(s, _)) => (400..500).contains(s),
            (Expect::Exactly(want), Outcome::Status(s, _)) => *s == want,
            _ => false,
        };
        let shown = match outcome {
            Outcome::Status(s, b) => format!("{s} {}", &b[..b.len().min(160)]),
            other => format!("{other:?}"),
        };
        self.record(ok, &format!("{name}: {shown}"), || {
            format!("{name}: expected {expect:?}, got {shown}")
        });
    }

    fn run(&mut self, cases: Vec<Case>) {
        for case in cases {
            let outcome = exchange(self.c.ingest, vec![case.bytes], Duration::ZERO);
            self.judge(&case.name, &outcome, case.expect);
        }
    }

    /// The collector is up and a fresh valid event reaches the database.
    async fn still_healthy(&mut self, after: &str) {
        let alive = self.c.is_running();
        let health = get(self.c.ingest, "/health").map(|r| r.status).ok();
        if !alive || health != Some(200) {
            self.failures.push(format!(
                "after {after}: collector running={alive}, /health={health:?}\n{}",
                self.c.log_text()
            ));
            panic!("the collector went down after {after}: {:?}", self.failures);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let r = post_json(
            self.c.ingest,
            "/track",
            &json!({"event_id": id, "event_name": "sentinel", "properties": {"after": after}}),
        )
        .expect("post sentinel");
        assert_eq!(r.status, 200, "sentinel after {after}: {}", r.body);
        let client = self.db.client().await.expect("db client");
        let landed = eventually(Duration::from_secs(20), || {
            let client = &client;
            let id = id.clone();
            async move {
                client
                    .query_one(
                        "SELECT count(*) FROM user_events WHERE event_id = $1::text::uuid",
                        &[&id],
                    )
                    .await
                    .map(|r| r.get::<_, i64>(0) == 1)
                    .unwrap_or(false)
            }
        })
        .await;
        if !landed {
            self.failures.push(format!(
                "after {after}: a valid event did not reach user_events within 20 s (forwarder stalled?)"
            ));
        }
        eprintln!(
            "---- healthy after {after}; sentinel landed: {landed} ({:?} so far)",
            self.started.elapsed()
        );
        self.sentinels.push(id);
    }

    /// Posts a storable oddity: must get 200; `check` is verified in the database later.
    fn storable(&mut self, name: &str, body_before_id: &str, check: &'static str) {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body_before_id.replace("$ID", &id);
        let outcome = exchange(
            self.c.ingest,
            vec![post("/track", body.as_bytes())],
            Duration::ZERO,
        );
        self.judge(name, &outcome, Expect::Exactly(200));
        if outcome.status() == Some(200) {
            self.storable.push(Storable {
                event_id: id,
                check,
            });
        }
    }
}

fn body_cases() -> Vec<Case> {
    let ev = |s: &str| post("/track", s.as_bytes());
    let batch = |s: &str| post("/v1/batch", s.as_bytes());
    let mut cases = vec![
        // Malformed JSON.
        refused("open brace", ev("{")),
        refused("missing value", ev(r#"{"event_name":}"#)),
        refused("trailing comma in array", batch(r#"[{"event_name":"x"},]"#)),
        refused("trailing comma in object", ev(r#"{"event_name":"x",}"#)),
        refused("extra closing brace", ev(r#"{"event_name":"x"}}"#)),
        refused("single quotes", ev("{'event_name':'x'}")),
        refused("unquoted key", ev("{event_name:\"x\"}")),
        refused("missing colon", ev(r#"{"event_name" "x"}"#)),
        refused("comment", ev(r#"{/* hi */"event_name":"x"}"#)),
        refused("NaN", ev(r#"{"event_name":"x","user_id":NaN}"#)),
        refused(
            "Infinity",
            ev(r#"{"event_name":"x","properties":{"v":Infinity}}"#),
        ),
        refused(
            "two documents",
            ev(r#"{"event_name":"x"}{"event_name":"y"}"#),
        ),
        refused(
            "BOM before the object",
            ev("\u{feff}{\"event_name\":\"x\"}"),
        ),
        refused("empty body", ev("")),
        refused("whitespace only", ev(" \r\n\t ")),
        refused("bare NUL byte", post("/track", b"\0")),
        refused(
            "raw control char in string",
            ev("{\"event_name\":\"a\u{1}b\"}"),
        ),
        refused("unterminated string", ev(r#"{"event_name":"x"#)),
        refused("invalid escape", ev(r#"{"event_name":"\x41"}"#)),
        refused("short unicode escape", ev(r#"{"event_name":"\u12"}"#)),
        refused("array of commas", batch("[,,,]")),
        // Wrong types.
        refused("event_name number", ev(r#"{"event_name":42}"#)),
        refused("event_name array", ev(r#"{"event_name":["x"]}"#)),
        refused("event_name object", ev(r#"{"event_name":{"x":1}}"#)),
        refused("event_name null", ev(r#"{"event_name":null}"#)),
        refused("event_name empty", ev(r#"{"event_name":""}"#)),
        refused("user_id bool", ev(r#"{"event_name":"x","user_id":true}"#)),
        refused("user_id array", ev(r#"{"event_name":"x","user_id":[1]}"#)),
        refused("user_id float", ev(r#"{"event_name":"x","user_id":1.5}"#)),
        refused(
            "event_time number",
            ev(r#"{"event_name":"x","event_time":1700000000}"#),
        ),
        refused(
            "event_time year 0",
            ev(r#"{"event_name":"x","event_time":"0000-01-01T00:00:00Z"}"#),
        ),
        refused(
            "event_time year 9999",
            ev(r#"{"event_name":"x","event_time":"9999-12-31T23:59:59Z"}"#),
        ),
        refused(
            "event_time without offset",
            ev(r#"{"event_name":"x","event_time":"2026-01-01T00:00:00"}"#),
        ),
        refused("event_id number", ev(r#"{"event_name":"x","event_id":1}"#)),
        refused(
            "event_id too long",
            ev(r#"{"event_name":"x","event_id":"0190b6e4-7d2a-7cc1-9b0e-1f2a3b4c5d6e0"}"#),
        ),
        refused(
            "properties array",
            ev(r#"{"event_name":"x","properties":[1,2]}"#),
        ),
        refused(
            "properties number",
            ev(r#"{"event_name":"x","properties":1}"#),
        ),
        refused(
            "country_code number",
            ev(r#"{"event_name":"x","country_code":12}"#),
        ),
        refused(
            "country_code non-ASCII",
            ev(r#"{"event_name":"x","country_code":"ÄÖ"}"#),
        ),
        refused(
            "device_type case",
            ev(r#"{"event_name":"x","device_type":"Mobile"}"#),
        ),
        refused("track with an array", ev(r#"[{"event_name":"x"}]"#)),
        refused("track with a string", ev(r#""event""#)),
        refused("batch of nulls", batch("[null,null]")),
        refused("batch of arrays", batch("[[],[{}]]")),
        refused(
            "batch envelope not an array",
            batch(r#"{"batch":{"event_name":"x"}}"#),
        ),
        refused("batch envelope empty", batch(r#"{"batch":[]}"#)),
        refused("batch of numbers", batch("[1,2,3]")),
        // Invalid UTF-8.
        refused(
            "0xff in a string",
            post("/track", b"{\"event_name\":\"\xff\"}"),
        ),
        refused(
            "overlong slash",
            post("/track", b"{\"event_name\":\"\xc0\xaf\"}"),
        ),
        refused(
            "encoded surrogate",
            post("/track", b"{\"event_name\":\"\xed\xa0\x80\"}"),
        ),
        refused(
            "truncated multibyte",
            post("/track", b"{\"event_name\":\"\xe2\x82\"}"),
        ),
        refused(
            "invalid UTF-8 in a key",
            post("/track", b"{\"\xfe\":1,\"event_name\":\"x\"}"),
        ),
        refused(
            "Latin-1 body",
            post_with(
                "/track",
                &[("Content-Type", "application/json; charset=iso-8859-1")],
                b"{\"event_name\":\"caf\xe9\"}",
            ),
        ),
        // Escapes PostgreSQL refuses.
        refused("NUL in event_name", ev(r#"{"event_name":"a\u0000"}"#)),
        refused(
            "NUL in session_id",
            ev(r#"{"event_name":"x","session_id":"\u0000"}"#),
        ),
        refused(
            "NUL in a properties key",
            ev(r#"{"event_name":"x","properties":{"\u0000":1}}"#),
        ),
        refused(
            "NUL deep in properties",
            ev(r#"{"event_name":"x","properties":{"a":[{"b":["ok","\u0000"]}]}}"#),
        ),
        refused(
            "NUL in page_url",
            ev(r#"{"event_name":"x","page_url":"https://x/\u0000"}"#),
        ),
        // Lone surrogates.
        refused("lone high surrogate", ev(r#"{"event_name":"\ud800"}"#)),
        refused("lone low surrogate", ev(r#"{"event_name":"\udfff"}"#)),
        refused(
            "high surrogate then letter",
            ev(r#"{"event_name":"\ud800\u0041"}"#),
        ),
        refused("reversed pair", ev(r#"{"event_name":"\udc00\ud800"}"#)),
        refused(
            "lone surrogate in a properties key",
            ev(r#"{"event_name":"x","properties":{"\udbff":1}}"#),
        ),
        // Numbers.
        refused("user_id 1e400", ev(r#"{"event_name":"x","user_id":1e400}"#)),
        refused("user_id -0", ev(r#"{"event_name":"x","user_id":-0}"#)),
        refused(
            "user_id 1e-400",
            ev(r#"{"event_name":"x","user_id":1e-400}"#),
        ),
        refused(
            "properties 1e400",
            ev(r#"{"event_name":"x","properties":{"v":1e400}}"#),
        ),
        refused(
            "properties -1e400",
            ev(r#"{"event_name":"x","properties":{"v":[-1e400]}}"#),
        ),
        refused("leading zero", ev(r#"{"event_name":"x","user_id":01}"#)),
        refused("plus sign", ev(r#"{"event_name":"x","user_id":+1}"#)),
        refused(
            "bare decimal point",
            ev(r#"{"event_name":"x","properties":{"v":1.}}"#),
        ),
        // Duplicate keys: the last one wins, and is validated.
        refused(
            "duplicate key, last invalid",
            ev(r#"{"event_name":"x","device_type":"mobile","device_type":"fridge"}"#),
        ),
        refused(
            "duplicate event_name, last empty",
            ev(r#"{"event_name":"x","event_name":""}"#),
        ),
        // Nesting.
        refused(
            "100k [",
            post("/v1/batch", "[".repeat(MAX_BODY - 100).as_bytes()),
        ),
        refused(
            "100k [ then ]",
            post(
                "/v1/batch",
                format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).as_bytes(),
            ),
        ),
        refused(
            "deep object nest",
            post("/track", "{\"a\":".repeat(12_000).as_bytes()),
        ),
        refused(
            "properties 9 deep",
            ev(&format!(
                "{{\"event_name\":\"x\",\"properties\":{}1{}}}",
                "{\"k\":".repeat(8),
                "}".repeat(8)
            )),
        ),
        refused(
            "properties 200 deep",
            ev(&format!(
                "{{\"event_name\":\"x\",\"properties\":{}1{}}}",
                "{\"k\":[".repeat(100),
                "]}".repeat(100)
            )),
        ),
        // Limits.
        refused(
            "event_name 257 bytes",
            ev(&format!("{{\"event_name\":\"{}\"}}", "x".repeat(257))),
        ),
        refused(
            "event_name 255 bytes + 2-byte char",
            ev(&format!("{{\"event_name\":\"{}é\"}}", "x".repeat(255))),
        ),
        refused(
            "page_url 2049 bytes",
            ev(&format!(
                "{{\"event_name\":\"x\",\"page_url\":\"{}\"}}",
                "u".repeat(2049)
            )),
        ),
        refused(
            "properties over 16 KiB",
            ev(&format!(
                "{{\"event_name\":\"x\",\"properties\":{{\"p\":\"{}\"}}}}",
                "p".repeat(16_400)
            )),
        ),
        refused(
            "properties over 16 KiB once escaped",
            ev(&format!(
                "{{\"event_name\":\"x\",\"properties\":{{\"p\":\"{}\"}}}}",
                "\\u0001".repeat(3000)
            )),
        ),
        refused(
            "1001 events",
            batch(&json!(vec![json!({"event_name": "x"}); 1001]).to_string()),
        ),
        refused(
            "event_name too long in every event of a batch",
            batch(&json!(vec![json!({"event_name": "y".repeat(300)}); 50]).to_string()),
        ),
    ];
    // Every refusal above is a body problem: it must be answered as such by /v1/validate too.
    let validate: Vec<Case> = cases
        .iter()
        .filter(|c| c.name.starts_with("0xff") || c.name.starts_with("NUL"))
        .map(|c| {
            let text = String::from_utf8_lossy(&c.bytes).replacen("/track", "/v1/validate", 1);
            refused(&format!("{} (validate)", c.name), text.into_bytes())
        })
        .collect();
    cases.extend(validate);
    cases
}

fn size_and_encoding_cases() -> Vec<Case> {
    let ok = br#"{"event_name":"never-stored"}"#.to_vec();
    let big_json = format!(
        "[{}]",
        vec![r#"{"event_name":"big"}"#; MAX_BODY / 20 + 10].join(",")
    );
    assert!(big_json.len() > MAX_BODY);
    let big_valid_gz = {
        // Valid JSON, larger than the decoded cap once decompressed.
        let events = vec![
            r#"{"event_name":"bomb","properties":{"pad":"                                                                                                    "}}"#;
            MAX_DECODED / 100
        ];
        gzip(format!("[{}]", events.join(",")).as_bytes())
    };
    let bomb_chunked = gzip(&vec![b'['; 4 << 20]);
    let multi_member = {
        // Concatenated gzip members (MultiGzDecoder reads them all) adding up past the cap.
        let one = gzip(&vec![b' '; MAX_DECODED / 2]);
        [one.clone(), one.clone(), one].concat()
    };
    let good_gz = gzip(&ok);
    let truncated_gz = good_gz[..good_gz.len() / 2].to_vec();
    let mut bad_crc_gz = good_gz.clone();
    let n = bad_crc_gz.len();
    bad_crc_gz[n - 6] ^= 0xff;
    vec![
        // Bodies over max_body_bytes.
        refused(
            "Content-Length over the limit, body not sent",
            format!("POST /v1/batch HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes(),
        ),
        refused(
            "Content-Length 2^64-1",
            b"POST /v1/batch HTTP/1.1\r\nHost: c\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec(),
        ),
        refused(
            "Content-Length 2^64 (overflow)",
            b"POST /v1/batch HTTP/1.1\r\nHost: c\r\nContent-Length: 18446744073709551616\r\n\r\n".to_vec(),
        ),
        refused("body over the limit with Content-Length", post("/v1/batch", big_json.as_bytes())),
        refused("body over the limit, chunked (64 KiB chunks)", chunked("/v1/batch", &[], big_json.as_bytes(), 65_536)),
        refused("body over the limit, chunked (1 KiB chunks)", chunked("/v1/batch", &[], big_json.as_bytes(), 1024)),
        refused(
            "body over the limit, no length, closed by the client",
            format!("POST /v1/batch HTTP/1.0\r\nHost: c\r\nContent-Type: application/json\r\n\r\n{big_json}").into_bytes(),
        ),
        // Framing problems and request-smuggling shapes.
        refused("negative Content-Length", b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Length: -1\r\n\r\n{}".to_vec()),
        refused("Content-Length not a number", b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Length: abc\r\n\r\n{}".to_vec()),
        refused("two different Content-Lengths", b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}".to_vec()),
        refused(
            "Content-Length and chunked",
            b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: c\r\n\r\n".to_vec(),
        ),
        refused("invalid chunk size", b"POST /track HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec()),
        refused("chunk size overflow", b"POST /track HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n".to_vec()),
        refused("chunked not last", b"POST /track HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec()),
        // Gzip.
        refused("gzip bomb of [ , sent chunked", chunked("/v1/batch", &[("Content-Encoding", "gzip")], &bomb_chunked, 4096)),
        refused("gzip of valid JSON over the decoded cap", post_with("/v1/batch", &[("Content-Encoding", "gzip")], &big_valid_gz)),
        refused("multi-member gzip over the decoded cap", post_with("/v1/batch", &[("Content-Encoding", "gzip")], &multi_member)),
        refused("gzip inside gzip", post_with("/track", &[("Content-Encoding", "gzip")], &gzip(&good_gz))),
        refused("truncated gzip", post_with("/track", &[("Content-Encoding", "gzip")], &truncated_gz)),
        refused("gzip with a bad CRC", post_with("/track", &[("Content-Encoding", "gzip")], &bad_crc_gz)),
        refused("gzip header only", post_with("/track", &[("Content-Encoding", "gzip")], &good_gz[..10])),
        refused("gzip declared, plain JSON sent", post_with("/track", &[("Content-Encoding", "gzip")], &ok)),
        refused("gzip sent, not declared", post("/track", &good_gz)),
        // Content-Type and Content-Encoding.
        refused("deflate", post_with("/track", &[("Content-Encoding", "deflate")], &ok)),
        refused("x-gzip", post_with("/track", &[("Content-Encoding", "x-gzip")], &good_gz)),
        refused("gzip, gzip", post_with("/track", &[("Content-Encoding", "gzip, gzip")], &gzip(&good_gz))),
        refused("identity, gzip", post_with("/track", &[("Content-Encoding", "identity, gzip")], &good_gz)),
        refused("multipart", post_with("/track", &[("Content-Type", "multipart/form-data; boundary=x")], &ok)),
        refused("form", post_with("/track", &[("Content-Type", "application/x-www-form-urlencoded")], b"event_name=x")),
        refused("json-seq", post_with("/track", &[("Content-Type", "application/json-seq")], &ok)),
        refused("Content-Type 8 KiB", post_with("/track", &[("Content-Type", &"a".repeat(8192))], &ok)),
        refused("Content-Type with obs-text", {
            let mut r = b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Type: application/\xff\xfe\r\n".to_vec();
            r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", ok.len()).as_bytes());
            r.extend_from_slice(&ok);
            r
        }),
        refused("Content-Encoding with obs-text, plain JSON", {
            let mut r = b"POST /track HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Encoding: \xff\r\n".to_vec();
            r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", ok.len()).as_bytes());
            r.extend_from_slice(&ok);
            r
        }),
        refused("write key in a query, none configured, body bad", post("/track?write_key=%00", b"{")),
    ]
}

fn protocol_cases() -> Vec<Case> {
    let mut flood = String::from("GET /health HTTP/1.1\r\nHost: c\r\n");
    for i in 0..5000 {
        flood.push_str(&format!("X-Flood-{i}: {i}\r\n"));
    }
    flood.push_str("\r\n");
    let mut few_many = String::from("GET /health HTTP/1.1\r\nHost: c\r\n");
    for i in 0..101 {
        few_many.push_str(&format!("X-{i}: v\r\n"));
    }
    few_many.push_str("\r\n");
    vec![
        refused("5000 headers", flood.into_bytes()),
        refused("101 headers", few_many.into_bytes()),
        // hyper checks its 64 KiB max_buf_size after each read, so headers of up to about
        // twice that may pass; beyond, 431.
        refused(
            "one 1 MiB header",
            format!("GET /health HTTP/1.1\r\nHost: c\r\nX-Big: {}\r\n\r\n", "b".repeat(1 << 20)).into_bytes(),
        ),
        refused(
            "1 MiB of cookies",
            format!("GET /health HTTP/1.1\r\nHost: c\r\nCookie: {}\r\n\r\n", "k=v; ".repeat(200 * 1024)).into_bytes(),
        ),
        refused(
            "16 MiB header",
            format!("GET /health HTTP/1.1\r\nHost: c\r\nX-Big: {}\r\n\r\n", "b".repeat(16 << 20)).into_bytes(),
        ),
        refused("60 KiB path", format!("GET /{} HTTP/1.1\r\nHost: c\r\n\r\n", "a".repeat(60 * 1024)).into_bytes()),
        refused("100 KiB query", format!("POST /track?{} HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n", "q=1&".repeat(25 * 1024)).into_bytes()),
        refused("header without colon", b"GET /health HTTP/1.1\r\nHost: c\r\nNoColon\r\n\r\n".to_vec()),
        refused("header name with space", b"GET /health HTTP/1.1\r\nHost: c\r\nBad Name: v\r\n\r\n".to_vec()),
        refused("NUL in a header value", b"GET /health HTTP/1.1\r\nHost: c\r\nX-A: a\0b\r\n\r\n".to_vec()),
        refused("obs-fold header", b"GET /health HTTP/1.1\r\nHost: c\r\nX-A: a\r\n b\r\n\r\n".to_vec()),
        refused("bare LF line endings and a bad body", b"POST /track HTTP/1.1\nHost: c\nContent-Length: 1\n\n{".to_vec()),
        refused("method with bad characters", b"G@T /health HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("lower-case post", req("post", "/track", &[], br#"{"event_name":"never-stored"}"#)),
        refused("absurd method", req("FROBNICATE", "/track", &[], br#"{"event_name":"never-stored"}"#)),
        refused("very long method", format!("{} /health HTTP/1.1\r\nHost: c\r\n\r\n", "M".repeat(10_000)).into_bytes()),
        refused("DELETE /track", req("DELETE", "/track", &[], b"")),
        refused("PUT /v1/batch", req("PUT", "/v1/batch", &[], br#"[{"event_name":"never-stored"}]"#)),
        refused("GET /track", b"GET /track HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("TRACE", b"TRACE / HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("CONNECT", b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n".to_vec()),
        refused("asterisk form POST", b"POST * HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\n{}".to_vec()),
        refused("dot-dot path", b"GET /../../etc/passwd HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("encoded path", b"POST /%74rack HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\n{}".to_vec()),
        refused("double slash path", b"POST //track HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\n{}".to_vec()),
        refused("space in the path", b"GET /he alth HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("NUL in the path", b"GET /health\0 HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()),
        refused("non-ASCII path", "GET /h\u{e9}alth HTTP/1.1\r\nHost: c\r\n\r\n".as_bytes().to_vec()),
        refused("HTTP/0.9 request line", b"GET /health\r\n\r\n".to_vec()),
        refused("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        refused("HTTP/1.1 with no Host", b"POST /track HTTP/1.1\r\nContent-Length: 1\r\n\r\n{".to_vec()),
        refused("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        refused("only CRLFs", b"\r\n\r\n\r\n\r\n".to_vec()),
        refused("HTTP/1.0 POST, bad body", b"POST /track HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{".to_vec()),
        exactly("HTTP/1.0 GET /health", 200, b"GET /health HTTP/1.0\r\n\r\n".to_vec()),
        exactly("absolute-form GET /health", 200, b"GET http://collector/health HTTP/1.1\r\nHost: collector\r\n\r\n".to_vec()),
        exactly(
            "Expect: 100-continue, then a bad body",
            400,
            b"POST /track HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n{".to_vec(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_4xx_or_a_closed_connection_and_the_forwarder_never_stalls() {
    let started = Instant::now();
    let db = TestDb::migrated("hostile")
        .await
        .expect("migrated database");
    let c = CollectorOpts::new("hostile")
        .database(&db.url)
        .env("COLLECTOR_LIMITS__MAX_BODY_BYTES", MAX_BODY.to_string())
        .env(
            "COLLECTOR_LIMITS__MAX_DECODED_BYTES",
            MAX_DECODED.to_string(),
        )
        .env(
            "COLLECTOR_LIMITS__MAX_CONNECTIONS",
            MAX_CONNECTIONS.to_string(),
        )
        .env(
            "COLLECTOR_LIMITS__HEADER_TIMEOUT_SECS",
            HEADER_TIMEOUT_SECS.to_string(),
        )
        .env("COLLECTOR_FORWARD__LINGER_MS", "50")
        .env("COLLECTOR_FORWARD__RETRY_INITIAL_MS", "50")
        .env("COLLECTOR_FORWARD__RETRY_MAX_MS", "500")
        .start()
        .expect("start collector");
    let mut run = Run {
        c,
        db,
        failures: Vec::new(),
        storable: Vec::new(),
        sentinels: Vec::new(),
        cases: 0,
        started,
    };
    run.still_healthy("start-up").await;

    run.run(body_cases());
    run.still_healthy("malformed bodies").await;

    run.run(size_and_encoding_cases());
    run.still_healthy("sizes, framing and encodings").await;

    run.run(protocol_cases());
    run.still_healthy("protocol abuse").await;

    // Storable oddities: accepted, and stored as JSON/PostgreSQL define them.
    // User ids are opaque: what does not fit the seed's BIGINT is kept as text only.
    run.storable(
        "user_id 2^63 as text only",
        r#"{"event_id":"$ID","event_name":"uid","user_id":9223372036854775808}"#,
        "app_user_id = '9223372036854775808' AND user_id IS NULL",
    );
    run.storable(
        "user_id -2^63-1 string as text only",
        r#"{"event_id":"$ID","event_name":"uid","user_id":"-9223372036854775809"}"#,
        "app_user_id = '-9223372036854775809' AND user_id IS NULL",
    );
    run.storable(
        "user_id exponent string as text only",
        r#"{"event_id":"$ID","event_name":"uid","user_id":"1e3"}"#,
        "app_user_id = '1e3' AND user_id IS NULL",
    );
    run.storable(
        "user_id -2^63 also numeric",
        r#"{"event_id":"$ID","event_name":"uid","user_id":"-9223372036854775808"}"#,
        "app_user_id = '-9223372036854775808' AND user_id = -9223372036854775808",
    );
    run.storable(
        "duplicate keys: the last one wins",
        r#"{"event_id":"$ID","event_name":"first","event_name":"dup-last","device_type":"fridge","device_type":"tablet"}"#,
        "event_name = 'dup-last' AND device_type = 'tablet'",
    );
    run.storable(
        "-0, 1e-400 and a 30-digit integer in properties",
        r#"{"event_id":"$ID","event_name":"numbers","properties":{"neg_zero":-0,"tiny":1e-400,"big":123456789012345678901234567890,"max":1.7976931348623157e308,"min":-9223372036854775808,"umax":18446744073709551615}}"#,
        "(properties->>'neg_zero')::numeric = 0 AND (properties->>'tiny')::numeric = 0 \
         AND (properties->>'big')::numeric BETWEEN 1.2345678901e29 AND 1.2345678902e29 \
         AND (properties->>'min')::numeric = -9223372036854775808 \
         AND (properties->>'umax')::numeric = 18446744073709551615",
    );
    run.storable(
        "an unknown top-level key holding NUL is ignored",
        r#"{"event_id":"$ID","event_name":"ignored-key","\u0000":"\u0000","extra":{"\u0000":1}}"#,
        "event_name = 'ignored-key' AND properties IS NULL",
    );
    run.storable(
        "escaped U+2028, U+FEFF, RTL override and astral characters",
        r#"{"event_id":"$ID","event_name":"\u2028\ufeff\u202e\ud83d\ude00","city":"\"'\\;--","properties":{"\u2029":"\ud83d\ude00\\","":""}}"#,
        "event_name = E'\\u2028\\uFEFF\\u202E\\U0001F600' AND city = E'\"''\\\\;--' \
         AND properties->>E'\\u2029' = E'\\U0001F600\\\\' AND properties->>'' = ''",
    );
    run.storable(
        "user_id extremes as strings and numbers",
        r#"{"event_id":"$ID","event_name":"uid","user_id":"-9223372036854775808"}"#,
        "user_id = -9223372036854775808",
    );
    run.storable(
        "a UUID in braces and a lower-case country",
        r#"{"event_id":"{$ID}","event_name":"ids","country_code":"fr"}"#,
        "country_code = 'FR'",
    );
    run.storable(
        "properties exactly 8 deep",
        r#"{"event_id":"$ID","event_name":"deep8","properties":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}"#,
        "properties #>> '{a,b,c,d,e,f,g}' = '1'",
    );
    // HTTP/1.0 and pipelining of valid requests with a refusal between them.
    {
        let id = uuid::Uuid::new_v4().to_string();
        let good = format!(r#"{{"event_id":"{id}","event_name":"pipelined"}}"#);
        let mut bytes = b"GET /health HTTP/1.1\r\nHost: c\r\n\r\n".to_vec();
        bytes.extend(post("/track", b"{\"event_name\":\"\\u0000\"}"));
        bytes.extend(post("/track", good.as_bytes()));
        bytes.extend(b"GET /nope HTTP/1.1\r\nHost: c\r\n\r\n");
        bytes.extend(b"GET /health HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n");
        let got = exchange_n(run.c.ingest, vec![bytes], Duration::ZERO, 5, ANSWER_TIMEOUT);
        let statuses: Vec<Option<u16>> = got.iter().map(Outcome::status).collect();
        let ok = statuses == [Some(200), Some(400), Some(200), Some(404), Some(200)];
        if run.record(ok, &format!("pipelined x5: {statuses:?}"), || {
            format!("pipelined requests: got {got:?}")
        }) {
            run.storable.push(Storable {
                event_id: id,
                check: "event_name = 'pipelined'",
            });
        }
    }
    {
        let id = uuid::Uuid::new_v4().to_string();
        let good = format!(r#"{{"event_id":"{id}","event_name":"http10"}}"#);
        let bytes = format!(
            "POST /track HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{good}",
            good.len()
        );
        let got = exchange_n(
            run.c.ingest,
            vec![bytes.into_bytes()],
            Duration::ZERO,
            2,
            ANSWER_TIMEOUT,
        );
        // One 200, then the server closes (HTTP/1.0 without keep-alive).
        let ok = got.first().and_then(Outcome::status) == Some(200)
            && got.get(1) == Some(&Outcome::Closed);
        if run.record(ok, &format!("HTTP/1.0 POST: {got:?}"), || {
            format!("HTTP/1.0 POST: got {got:?}")
        }) {
            run.storable.push(Storable {
                event_id: id,
                check: "event_name = 'http10'",
            });
        }
    }
    run.still_healthy("storable oddities and pipelining").await;

    connection_level(&mut run);
    run.still_healthy("slow and idle connections").await;

    // The database holds exactly the sentinels and the storable oddities, each as expected.
    let client = run.db.client().await.expect("db client");
    let total: i64 = client
        .query_one("SELECT count(*) FROM user_events", &[])
        .await
        .expect("count")
        .get(0);
    let expected = (run.sentinels.len() + run.storable.len()) as i64;
    if total != expected {
        let names: Vec<String> = client
            .query("SELECT event_name FROM user_events", &[])
            .await
            .expect("names")
            .iter()
            .map(|r| r.get(0))
            .collect();
        run.failures.push(format!(
            "user_events holds {total} rows, expected {expected} (sentinels and storable cases only): {names:?}"
        ));
    }
    for s in &run.storable {
        let ok: bool = client
            .query_one(
                &format!(
                    "SELECT coalesce(bool_and({}), false) FROM user_events WHERE event_id = $1::text::uuid",
                    s.check
                ),
                &[&s.event_id],
            )
            .await
            .expect("check a stored row")
            .get(0);
        if !ok {
            run.failures.push(format!(
                "stored row {} does not satisfy {}",
                s.event_id, s.check
            ));
        }
    }
    eprintln!(
        "{} hostile cases in {:?}; {} failures",
        run.cases,
        started.elapsed(),
        run.failures.len()
    );
    assert!(
        run.failures.is_empty(),
        "hostile requests broke a promise:\n{}",
        run.failures.join("\n")
    );
    assert!(run.c.is_running());
    run.c
        .terminate(Duration::from_secs(30))
        .expect("graceful stop");
    drop(client);
    run.db.drop_db().await.expect("drop database");
}

/// Slow-loris, slow bodies and idle connections: the header timeout closes what never
/// finishes its headers, and connections held open never lock out a real client.
fn connection_level(run: &mut Run) {
    let addr = run.c.ingest;
    let limit = Duration::from_secs(HEADER_TIMEOUT_SECS + 3);

    // Slow-loris: the request line and headers one byte per second.
    let request = b"POST /track HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n";
    let start = Instant::now();
    let parts: Vec<Vec<u8>> = request.iter().map(|b| vec![*b]).collect();
    let got = exchange_n(addr, parts, Duration::from_secs(1), 1, ANSWER_TIMEOUT);
    let took = start.elapsed();
    let ok = matches!(
        got.first(),
        Some(Outcome::Closed) | Some(Outcome::Status(408, _))
    ) && took <= limit;
    run.record(ok, &format!("slow-loris (1 byte/s): {got:?} after {took:?}"), || {
        format!("slow-loris headers: expected the connection closed within {limit:?}, got {got:?} after {took:?}")
    });

    // A connection that sends nothing at all.
    let start = Instant::now();
    let got = exchange_n(addr, Vec::new(), Duration::ZERO, 1, ANSWER_TIMEOUT);
    let took = start.elapsed();
    let ok = matches!(
        got.first(),
        Some(Outcome::Closed) | Some(Outcome::Status(408, _))
    ) && took <= limit;
    run.record(ok, &format!("silent connection: {got:?} after {took:?}"), || {
        format!("silent connection: expected it closed within {limit:?}, got {got:?} after {took:?}")
    });

    // An idle keep-alive connection after one complete request.
    let start = Instant::now();
    let got = exchange_n(
        addr,
        vec![b"GET /health HTTP/1.1\r\nHost: c\r\n\r\n".to_vec()],
        Duration::ZERO,
        2,
        ANSWER_TIMEOUT,
    );
    let took = start.elapsed();
    let ok = got.first().and_then(Outcome::status) == Some(200)
        && matches!(got.get(1), Some(Outcome::Closed))
        && took <= limit;
    run.record(ok, &format!("idle keep-alive after a request: {got:?} after {took:?}"), || {
        format!("idle keep-alive connection: expected it closed within {limit:?}, got {got:?} after {took:?}")
    });

    // As many silent connections as max_connections: a real client gets through within
    // about the header timeout (the idle ones are closed and their slots freed).
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 16)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let got = exchange(
        addr,
        vec![b"GET /health HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n".to_vec()],
        Duration::ZERO,
    );
    let took = start.elapsed();
    let ok = got.status() == Some(200) && took <= limit;
    let n = idle.len();
    run.record(
        ok,
        &format!("{n} idle connections, then a real request: {got:?} after {took:?}"),
        || format!("{n} idle connections locked a real client out: {got:?} after {took:?}"),
    );
    drop(idle);

    // A slow body: complete headers, then one body byte per second. The body has the
    // header timeout to arrive too (else 408), so such a connection cannot be held open.
    let body = br#"{"event_name":"slow-body-never-finished"}"#;
    let mut parts = vec![format!(
        "POST /track HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 100
    )
    .into_bytes()];
    parts.extend(body.iter().take(8).map(|b| vec![*b]));
    let start = Instant::now();
    let wait = Duration::from_secs(3 * HEADER_TIMEOUT_SECS);
    let got = exchange_n(addr, parts, Duration::from_secs(1), 1, wait);
    let took = start.elapsed();
    let ok = matches!(
        got.first(),
        Some(Outcome::Closed) | Some(Outcome::Status(408, _))
    ) && took <= limit;
    run.record(
        ok,
        &format!("slow body (1 byte/s): {got:?} after {took:?}"),
        || {
            format!(
                "slow body: expected 408 or a close within {limit:?}, got {got:?} after {took:?}"
            )
        },
    );
}
