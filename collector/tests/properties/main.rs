//! Property tests of the ingest body parser and validator (`collector::http::parse_events`,
//! `collector::event::validate`) and the buffer record codec, in pure Rust (no server, no
//! database):
//!
//! - `parse_events` never panics on arbitrary bytes, arbitrary JSON values, raw JSON texts with
//!   nasty literals (1e400, -0, huge integers, `\u0000`, lone surrogates, duplicate keys, deep
//!   nesting) or "event-like" objects built from the real field names with random values;
//! - a refusal is always a 4xx;
//! - every event it accepts satisfies the database invariants of `user_events` (checked here
//!   independently of `validate`), survives the record codec round trip, and is a fixed point
//!   (re-submitting it as JSON gives the same event);
//! - each event's verdict is independent of the other events of its batch and of their order.
//!
//! The COPY into a real database is checked by `tests/tests/copy_properties/`.
//!
//! Layout: the inputs' strategies in `strategies.rs`, the invariants checked on what is
//! accepted (independently of `validate`) in `invariants.rs`, the properties here.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod invariants;
mod strategies;

use std::collections::BTreeMap;

use collector::{
    config::Limits,
    event::{self, Context, Event, DEVICE_TYPES},
    http::parse_events,
    record::Record,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use time::{format_description::well_known::Rfc3339, macros::datetime, OffsetDateTime};

/// The fixed "now" of every test: the event_time window is relative to it.
const NOW: OffsetDateTime = datetime!(2026-03-15 12:00:00.123456 UTC);

/// Every field name `validate` reads.
const FIELDS: [&str; 15] = [
    "event_id",
    "user_id",
    "session_id",
    "event_type",
    "event_name",
    "page_url",
    "referrer",
    "device_type",
    "browser",
    "os",
    "country_code",
    "region",
    "city",
    "event_time",
    "properties",
];

/// Real User-Agent headers (a header value is visible ASCII, so arbitrary UAs are ASCII too).
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-X910) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];

fn limits() -> Limits {
    Limits::default()
}

fn ctx(user_agent: Option<&str>) -> Context<'_> {
    Context {
        now: NOW,
        user_agent,
        source: None,
    }
}

use invariants::*;
use strategies::*;

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), ua in user_agent()) {
        parse_and_check(&bytes, ua.as_deref())?;
    }

    #[test]
    fn jsonish_bytes_never_panic(bytes in jsonish_bytes()) {
        parse_and_check(&bytes, None)?;
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        parse_and_check(v.to_string().as_bytes(), None)?;
        parse_and_check(json!([v]).to_string().as_bytes(), None)?;
        parse_and_check(json!({"batch": [v]}).to_string().as_bytes(), None)?;
    }

    #[test]
    fn raw_json_texts_never_panic(text in raw_json_text(), ev in raw_event_text()) {
        parse_and_check(text.as_bytes(), None)?;
        parse_and_check(ev.as_bytes(), None)?;
        parse_and_check(format!("[{ev},{text}]").as_bytes(), None)?;
    }

    #[test]
    fn accepted_event_like_objects_meet_the_database_invariants(v in event_like(), ua in user_agent()) {
        parse_and_check(v.to_string().as_bytes(), ua.as_deref())?;
    }

}

proptest! {
    // Each case parses its batch about 2n + 3 times: fewer cases keep the test quick.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_do_not_depend_on_the_rest_of_the_batch(
        (items, perm) in prop::collection::vec(event_like(), 1..12).prop_flat_map(|items| {
            let n = items.len();
            (Just(items), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
        }),
        ua in user_agent(),
    ) {
        let ua = ua.as_deref();
        let batch = verdicts(&Value::Array(items.clone()), ua);
        // The same items in another order: each keeps its verdict.
        let shuffled: Vec<Value> = perm.iter().map(|&i| items[i].clone()).collect();
        let other = verdicts(&Value::Array(shuffled), ua);
        for (pos, &i) in perm.iter().enumerate() {
            prop_assert_eq!(&other[pos], &batch[i], "item {} moved to {}", i, pos);
        }
        // Each item alone, as a one-event batch and through /track: the same verdict.
        for (i, item) in items.iter().enumerate() {
            let alone = verdicts(&json!([item]), ua);
            prop_assert_eq!(&alone[0], &batch[i], "item {} alone", i);
            let single = parse_events(item.to_string().as_bytes(), true, &limits(), &ctx(ua))
                .expect("an object is a /track body");
            prop_assert_eq!(single.0.len() + single.1.len(), 1);
            prop_assert_eq!(single.0.is_empty(), batch[i].is_err());
        }
        // The Segment-style envelope gives the same verdicts.
        let wrapped = parse_events(json!({"batch": items}).to_string().as_bytes(), false, &limits(), &ctx(ua))
            .expect("envelope");
        prop_assert_eq!(wrapped.0.len(), batch.iter().filter(|v| v.is_ok()).count());
        prop_assert_eq!(wrapped.1.len(), batch.iter().filter(|v| v.is_err()).count());
    }
}

/// Deterministic edge cases the strategies reach only by luck.
#[test]
fn fixed_hostile_bodies_never_panic_and_are_refused() {
    let cases: Vec<Vec<u8>> = vec![
        "[".repeat(100_000).into_bytes(),
        "{\"a\":".repeat(50_000).into_bytes(),
        format!("{}1{}", "[".repeat(127), "]".repeat(127)).into_bytes(),
        format!("{}1{}", "[".repeat(129), "]".repeat(129)).into_bytes(),
        format!(
            "{{\"event_name\":\"x\",\"properties\":{}1{}}}",
            "{\"k\":".repeat(200),
            "}".repeat(200)
        )
        .into_bytes(),
        b"\xef\xbb\xbf{\"event_name\":\"bom\"}".to_vec(),
        b"{\"event_name\":\"x\"} trailing".to_vec(),
        b"{\"event_name\":\"x\"}{\"event_name\":\"y\"}".to_vec(),
        b"{\"event_name\":\"\xc3\x28\"}".to_vec(),
        b"{\"event_name\":\"\xed\xa0\x80\"}".to_vec(),
        b"{\"event_name\":\"\\ud800\"}".to_vec(),
        b"{\"event_name\":\"\\u0000\"}".to_vec(),
        b"{\"event_name\":\"x\",\"properties\":{\"\\u0000\":1}}".to_vec(),
        b"{\"event_name\":\"x\",\"user_id\":1e400}".to_vec(),
        b"{\"event_name\":\"x\",\"properties\":{\"n\":1e400}}".to_vec(),
        b"{\"event_name\":\"x\",\"user_id\":9223372036854775808}".to_vec(),
        b"{\"event_name\":\"x\",\"user_id\":-0}".to_vec(),
        b"{\"event_name\":\"x\",\"user_id\":1.0}".to_vec(),
        Vec::new(),
        b" ".to_vec(),
        b"null".to_vec(),
    ];
    for body in &cases {
        let accepted = parse_and_check(body, None).expect("invariants");
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        // None of these is a storable event (-0 and 1.0 parse as floats: not an int64).
        assert!(accepted.is_empty(), "accepted {shown}: {accepted:?}");
    }
}

/// The event-like strategy must reach acceptance often enough for the invariant checks to
/// mean something, and reach every kind of refusal too.
#[test]
fn event_like_strategy_reaches_both_verdicts() {
    use proptest::{strategy::ValueTree, test_runner::TestRunner};
    let mut runner = TestRunner::deterministic();
    let strategy = event_like();
    let (mut accepted, mut fields) = (0, std::collections::BTreeSet::new());
    let n = 2000;
    for _ in 0..n {
        let v = strategy.new_tree(&mut runner).expect("value").current();
        match event::validate(&v, 0, &limits(), &ctx(None)) {
            Ok(_) => accepted += 1,
            Err(e) => {
                fields.insert(e.field);
            }
        }
    }
    eprintln!("accepted {accepted} of {n}; refused fields: {fields:?}");
    assert!(accepted * 5 >= n, "only {accepted} of {n} accepted");
    assert!(fields.len() >= 12, "refusals reached only {fields:?}");
}

/// A double a client sends is stored exactly. Without serde_json's `float_roundtrip`
/// feature (enabled in the workspace's Cargo.toml) about 10% of random doubles in
/// [0, 1000) came out one ULP off (e.g. 907.3038322028689 became 907.3038322028688), and
/// each export → import cycle of a buffer could move them again.
#[test]
fn float_properties_are_stored_exactly_as_sent() {
    for text in ["907.3038322028689", "6.934698245112694e+276", "0.1", "1e-7"] {
        let body = format!(r#"{{"event_name":"x","properties":{{"v":{text}}}}}"#);
        let (events, _) =
            parse_events(body.as_bytes(), true, &limits(), &ctx(None)).expect("accepted");
        let stored: Value =
            serde_json::from_str(events[0].properties.as_deref().expect("properties"))
                .expect("JSON");
        let want: f64 = text.parse().expect("std parses exactly");
        assert_eq!(stored["v"].as_f64(), Some(want), "{text}");
    }
}
