//! Fuzz target: the request body parser and validator, `collector::http::parse_events`, on
//! arbitrary bytes, in both `/track` (single object) and `/batch` modes, with default limits
//! and a fixed `now`. The first input byte picks a User-Agent (none, a real one, or bytes
//! taken from the input) so the UA-derived fields are exercised too.
//!
//! Beyond "never panics", it asserts what the database needs of every accepted event
//! (the same invariants as `collector/tests/properties/`), and that a refusal is a 4xx.
#![no_main]

use collector::{
    config::Limits,
    event::{Context, Event, DEVICE_TYPES},
    http::parse_events,
    record::Record,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use time::OffsetDateTime;

/// 2026-03-15T12:00:00Z.
const NOW_UNIX: i64 = 1_773_576_000;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

/// No NUL in any string or key (PostgreSQL's JSONB refuses `\u0000`).
fn no_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\0'),
        Value::Array(a) => a.iter().all(no_nul),
        Value::Object(o) => o.iter().all(|(k, v)| !k.contains('\0') && no_nul(v)),
        _ => true,
    }
}

fn check(e: &Event, l: &Limits, now_us: i64) {
    let short = |v: &Option<String>, max: usize| {
        v.as_deref()
            .is_none_or(|s| s.len() <= max && !s.contains('\0'))
    };
    assert!(!e.event_name.is_empty() && e.event_name.len() <= l.max_string_bytes);
    assert!(!e.event_name.contains('\0'));
    for v in [
        &e.session_id,
        &e.event_type,
        &e.device_type,
        &e.browser,
        &e.os,
        &e.country_code,
        &e.region,
        &e.city,
    ] {
        assert!(short(v, l.max_string_bytes), "{v:?}");
    }
    assert!(short(&e.page_url, l.max_url_bytes));
    assert!(short(&e.referrer, l.max_url_bytes));
    if let Some(d) = &e.device_type {
        assert!(DEVICE_TYPES.contains(&d.as_str()), "{d:?}");
    }
    if let Some(c) = &e.country_code {
        assert!(
            c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()),
            "{c:?}"
        );
    }
    let lo = now_us - l.max_event_age_secs as i64 * 1_000_000;
    let hi = now_us + l.max_event_future_secs as i64 * 1_000_000;
    assert!((lo..=hi).contains(&e.event_time_us), "{}", e.event_time_us);
    if let Some(p) = &e.properties {
        assert!(p.len() <= l.max_properties_bytes);
        let v: Value = serde_json::from_str(p).expect("properties are JSON");
        assert!(v.is_object(), "{p:?}");
        assert!(depth(&v) <= l.max_properties_depth, "{p:?}");
        assert!(no_nul(&v), "{p:?}");
    }
    let r = Record {
        collector_id: "fuzz".into(),
        received_at_us: now_us,
        events: vec![e.clone()],
    };
    let bytes = r.encode().expect("encode");
    assert_eq!(Record::decode(&bytes).expect("decode"), r);
}

fuzz_target!(|data: &[u8]| {
    let now = OffsetDateTime::from_unix_timestamp(NOW_UNIX).expect("now");
    let now_us = NOW_UNIX * 1_000_000;
    let limits = Limits::default();
    let (ua_owned, body): (Option<String>, &[u8]) = match data.split_first() {
        Some((b, rest)) if b % 4 == 1 => (
            Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
                    .into(),
            ),
            rest,
        ),
        Some((b, rest)) if b % 4 == 2 => {
            // A header value as hyper's to_str() would give it: visible ASCII; up to the first
            // newline of the input.
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            let ua: String = rest[..end]
                .iter()
                .filter(|c| (0x20..0x7f).contains(*c))
                .map(|&c| c as char)
                .collect();
            (Some(ua), rest.get(end + 1..).unwrap_or_default())
        }
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let ctx = Context {
        now,
        user_agent: ua_owned.as_deref(),
    };
    for single in [true, false] {
        match parse_events(body, single, &limits, &ctx) {
            Ok((events, errors)) => {
                assert!(!events.is_empty() || !errors.is_empty());
                if single {
                    assert_eq!(events.len() + errors.len(), 1);
                }
                for e in &events {
                    check(e, &limits, now_us);
                }
            }
            Err(r) => assert!(r.status.is_client_error(), "{r:?}"),
        }
    }
});
