//! The hostile-input table of `bad_input_gets_a_clear_4xx_and_never_reaches_the_buffer`:
//! each request a client could send wrong, the status it must get, and the text its error
//! message must contain so that the client can tell what to fix.
//!
//! Invariant: none of these bodies holds a valid event, so after all of them the buffer
//! holds only the one valid event the test sends itself.

use serde_json::{json, Value};

/// (path, body, headers, expected status, text the error message must contain)
pub type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);

/// The cases, for a collector started with a 64 KiB body limit and 100 events a batch;
/// `ok` is a valid event (used where only the headers are wrong).
pub fn cases(ok: &Value) -> Vec<Case<'static>> {
    let deep = (0..20).fold(json!(1), |v, _| json!({ "k": v }));
    vec![
        (
            "/track",
            b"{not json".to_vec(),
            vec![],
            400,
            "not valid JSON",
        ),
        ("/track", b"[1,2]".to_vec(), vec![], 400, "one JSON object"),
        ("/batch", b"\"str\"".to_vec(), vec![], 400, "JSON array"),
        ("/batch", b"[]".to_vec(), vec![], 400, "no events"),
        (
            "/track",
            json!({"user_id": 1}).to_string().into_bytes(),
            vec![],
            400,
            "event_name",
        ),
        (
            "/track",
            json!({"event_name": "x", "user_id": "u".repeat(300)})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "user_id",
        ),
        (
            "/track",
            json!({"event_name": "x", "anonymous_id": "a\u{0}b"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "anonymous_id",
        ),
        (
            "/track",
            json!({"event_name": "identify", "user_id": "u1", "traits": ["plan"]})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "traits",
        ),
        (
            "/track",
            json!({"event_name": "x", "event_time": "2019-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "event_time",
        ),
        (
            "/track",
            json!({"event_name": "x", "device_type": "toaster"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "device_type",
        ),
        (
            "/track",
            json!({"event_name": "x", "country_code": "USA"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "country_code",
        ),
        (
            "/track",
            json!({"event_name": "x", "event_time": "2001-01-01T00:00:00Z"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "event_time",
        ),
        (
            "/track",
            json!({"event_name": "x", "event_time": "tomorrow"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "RFC 3339",
        ),
        (
            "/track",
            json!({"event_name": "x", "properties": "str"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "properties",
        ),
        (
            "/track",
            json!({"event_name": "x", "properties": deep})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "nests deeper",
        ),
        (
            "/track",
            br#"{"event_name":"x","city":"a\u0000b"}"#.to_vec(),
            vec![],
            400,
            "NUL",
        ),
        (
            "/track",
            br#"{"event_name":"x","properties":{"k":"\u0000"}}"#.to_vec(),
            vec![],
            400,
            "NUL",
        ),
        (
            "/track",
            br#"{"event_name":"x","city":"\ud800"}"#.to_vec(),
            vec![],
            400,
            "not valid JSON",
        ),
        (
            "/track",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            vec![],
            400,
            "not valid JSON",
        ),
        (
            "/track",
            json!({"event_name": "x".repeat(300)})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "more than the 256",
        ),
        (
            "/track",
            json!({"event_name": "x", "event_id": "not-a-uuid"})
                .to_string()
                .into_bytes(),
            vec![],
            400,
            "UUID",
        ),
        (
            "/track",
            ok.to_string().into_bytes(),
            vec![("Content-Type", "application/xml")],
            415,
            "not supported",
        ),
        (
            "/track",
            ok.to_string().into_bytes(),
            vec![("Content-Encoding", "br")],
            415,
            "not supported",
        ),
        (
            "/track",
            b"garbage".to_vec(),
            vec![("Content-Encoding", "gzip")],
            400,
            "gzip",
        ),
        (
            "/batch",
            json!(vec![ok.clone(); 101]).to_string().into_bytes(),
            vec![],
            413,
            "more than the 100",
        ),
    ]
}
