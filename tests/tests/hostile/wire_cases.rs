//! Cases about sizes, encodings and the HTTP protocol itself.

use super::*;

pub(crate) fn size_and_encoding_cases() -> Vec<Case> {
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

pub(crate) fn protocol_cases() -> Vec<Case> {
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
