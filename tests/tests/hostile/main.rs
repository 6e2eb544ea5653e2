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
//! `ingest/` covers the basic refusals through an HTTP client; this file does not repeat them.
//!
//! Files: `wire.rs` (raw HTTP), `run.rs` (cases and the run), `body_cases.rs`,
//! `wire_cases.rs`; the test and the connection-level cases are here.

mod body_cases;
mod run;
mod wire;
mod wire_cases;

use body_cases::*;
use run::*;
use wire::*;
use wire_cases::*;

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

pub(crate) const MAX_BODY: usize = 65_536;
pub(crate) const MAX_DECODED: usize = 262_144;
pub(crate) const MAX_CONNECTIONS: usize = 64;
pub(crate) const HEADER_TIMEOUT_SECS: u64 = 2;
/// How long a case may take to be answered before it counts as a hang.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

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
pub(crate) fn connection_level(run: &mut Run) {
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
