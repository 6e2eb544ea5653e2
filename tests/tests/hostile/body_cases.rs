//! Cases about the body: JSON, types, UTF-8, escapes, numbers, keys.

use super::*;

pub(crate) fn body_cases() -> Vec<Case> {
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
