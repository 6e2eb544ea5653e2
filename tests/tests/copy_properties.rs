//! The promise "no acknowledged event can ever fail a COPY downstream", checked against a
//! real migrated database: thousands of adversarial events that `collector::event::validate`
//! accepts (every Unicode plane, combining marks, RTL and bidi controls, quotes and
//! backslashes, U+2028, C0/C1 controls, strings at their byte limits, extreme int64
//! user_ids, event_time at the window's edges, properties with floats, exponents, big
//! integers, nested arrays, empty and odd keys, at the depth and size limits) are written
//! with the forwarder's own `collector::database::copy::write_batch`. Every batch must commit,
//! and every row read back must equal what was accepted, properties compared as JSON values.
//!
//! Events come from a seeded RNG (`COPY_PROPERTIES_SEED` overrides the seed); a failing batch
//! is bisected to the single event that fails, which is printed.

use std::collections::HashMap;

use collector::{
    config::Limits,
    database::copy::{self, Row},
    event::{self, Context, Event, DEVICE_TYPES},
};
use e2e::{check::json_eq, db::TestDb, gen::rfc3339};
use rand::{seq::SliceRandom, Rng, RngCore};
use serde_json::{json, Map, Value};
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::Client;

/// Events written in total (about 10 s of COPY on the reference machine, with bisecting
/// never needed).
const EVENTS: usize = 10_000;
const COLLECTOR_ID: &str = "copy-props-édge-\u{1f600}";

/// SplitMix64: the test draws millions of numbers, and rand's ChaCha-based `StdRng` is slow
/// in a debug build.
struct StdRng(u64);

impl StdRng {
    fn seed_from_u64(seed: u64) -> StdRng {
        StdRng(seed)
    }
}

impl RngCore for StdRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// A character from a pool chosen at random: never NUL (validate refuses it), never a
/// surrogate (a Rust `char` cannot be one).
fn adversarial_char(rng: &mut StdRng) -> char {
    let pick = |rng: &mut StdRng, lo: u32, hi: u32| {
        char::from_u32(rng.gen_range(lo..=hi)).unwrap_or('\u{fffd}')
    };
    match rng.gen_range(0..20) {
        0..=3 => pick(rng, 0x20, 0x7e),
        4 => *[
            '"', '\'', '\\', '`', '{', '}', '[', ']', ',', ':', '\t', '\n', '\r', '%', '$',
        ]
        .choose(rng)
        .unwrap_or(&'"'),
        5 => pick(rng, 0x01, 0x1f),
        6 => pick(rng, 0x7f, 0x9f),
        7 => pick(rng, 0x300, 0x36f), // combining diacritics
        8 => pick(rng, 0x590, 0x8ff), // Hebrew, Arabic, Syriac, Thaana, N'Ko…
        9 => *[
            '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{061c}',
        ]
        .choose(rng)
        .unwrap_or(&'\u{202e}'),
        10 => *[
            '\u{2028}', '\u{2029}', '\u{85}', '\u{feff}', '\u{200b}', '\u{200d}', '\u{a0}',
        ]
        .choose(rng)
        .unwrap_or(&'\u{2028}'),
        11 => *[
            '\u{fffe}',
            '\u{ffff}',
            '\u{fffd}',
            '\u{1fffe}',
            '\u{10fffe}',
            '\u{10ffff}',
        ]
        .choose(rng)
        .unwrap_or(&'\u{ffff}'),
        12 => pick(rng, 0xe000, 0xf8ff),    // private use
        13 => pick(rng, 0x1f300, 0x1faff),  // emoji
        14 => pick(rng, 0x10000, 0x3ffff),  // planes 1–3
        15 => pick(rng, 0xe0000, 0x10ffff), // planes 14–16
        16 => pick(rng, 0x4e00, 0x9fff),    // CJK
        _ => {
            // Anywhere in the BMP outside the surrogates.
            let c = rng.gen_range(0x20..=0xfffd_u32);
            char::from_u32(c).unwrap_or('\u{d7ff}')
        }
    }
}

/// A string of at most `max` bytes: often short, sometimes filled right up to `max` (a
/// multi-byte character may end exactly at the limit), sometimes a fixed nasty string.
fn adversarial_string(rng: &mut StdRng, max: usize, non_empty: bool) -> String {
    const FIXED: [&str; 12] = [
        "\\N",
        "\\.",
        "'; DROP TABLE user_events; --",
        "%s%n$1",
        "\\u0000",
        "\\\\\"\"",
        "null",
        "NULL",
        " ",
        "\u{301}",
        "a\u{2028}b\u{2029}c",
        "\u{202e}gnp.exe",
    ];
    let mode = rng.gen_range(0..10);
    if mode == 0 {
        return FIXED.choose(rng).unwrap_or(&"x").to_string();
    }
    let target = match mode {
        1..=2 => max,
        3 => max.saturating_sub(rng.gen_range(0..4)),
        _ => rng.gen_range(usize::from(non_empty)..=max.min(48)),
    };
    // Up to 64 random characters, repeated to reach the target (random characters all the
    // way would make generation, in a debug build, the slowest part of the test).
    let mut chunk = Vec::new();
    let mut s = String::new();
    loop {
        let c = if chunk.len() < 64 {
            let c = adversarial_char(rng);
            chunk.push(c);
            c
        } else {
            chunk[s.len() % chunk.len()]
        };
        if s.len() + c.len_utf8() > target {
            // Fill the remainder with ASCII so the string lands exactly on the target.
            while s.len() < target {
                s.push('z');
            }
            break;
        }
        s.push(c);
    }
    if non_empty && s.is_empty() {
        s.push('e');
    }
    s
}

fn json_number(rng: &mut StdRng) -> Value {
    match rng.gen_range(0..12) {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(rng.gen::<i64>()),
        4 => json!(rng.gen::<u64>()),
        5 => json!(*[
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            -0.0,
            1e300,
            -1e-300,
            0.1,
            1.0 / 3.0,
            1e21,
            1e-7,
        ]
        .choose(rng)
        .unwrap_or(&0.1)),
        6 => {
            // Any finite double, from its bits.
            let f = f64::from_bits(rng.gen::<u64>());
            if f.is_finite() {
                json!(f)
            } else {
                json!(0.5)
            }
        }
        7 => json!(rng.gen_range(-1e6..1e6_f64)),
        8 => json!(10f64.powi(rng.gen_range(-300..300))),
        _ => json!(rng.gen_range(-1000..1000)),
    }
}

/// A JSON value that nests at most `depth` more levels (1 = a scalar).
fn json_value(rng: &mut StdRng, depth: usize) -> Value {
    let container = depth > 1 && rng.gen_bool(0.35);
    if container {
        let n = rng.gen_range(0..5);
        if rng.gen_bool(0.5) {
            Value::Array((0..n).map(|_| json_value(rng, depth - 1)).collect())
        } else {
            json_object(rng, depth, n)
        }
    } else {
        match rng.gen_range(0..8) {
            0 => Value::Null,
            1 => Value::Bool(rng.gen()),
            2..=4 => json_number(rng),
            _ => Value::String(adversarial_string(rng, 40, false)),
        }
    }
}

fn json_object(rng: &mut StdRng, depth: usize, n: usize) -> Value {
    let mut m = Map::new();
    for _ in 0..n {
        let key = match rng.gen_range(0..6) {
            0 => String::new(),
            1 => "$".repeat(rng.gen_range(1..4)),
            _ => adversarial_string(rng, 24, false),
        };
        m.insert(key, json_value(rng, depth - 1));
    }
    Value::Object(m)
}

/// A nest of exactly `depth` levels (the properties object counts as level 1).
fn deepest(rng: &mut StdRng, depth: usize) -> Value {
    let mut v = json_number(rng);
    for level in (1..depth).rev() {
        v = if level > 1 && rng.gen_bool(0.5) {
            json!([v, [], {}])
        } else {
            json!({ adversarial_string(rng, 8, false): v })
        };
    }
    if v.is_object() {
        v
    } else {
        json!({})
    }
}

fn properties(rng: &mut StdRng, l: &Limits) -> Value {
    match rng.gen_range(0..10) {
        0 => Value::Null,
        1 => json!({}),
        2 => json!({ "deep": deepest(rng, l.max_properties_depth - 1), "top": json_number(rng) }),
        3 => {
            // Close to the size limit: one long string padded to land just under it.
            let pad = l.max_properties_bytes - rng.gen_range(20..200);
            json!({ "pad": adversarial_string(rng, pad / 4, false), "n": json_number(rng) })
        }
        _ => {
            let n = rng.gen_range(0..10);
            json_object(rng, l.max_properties_depth, n)
        }
    }
}

/// An event_time inside the window, often at its very edges, with odd offsets and
/// nanosecond fractions.
fn event_time(rng: &mut StdRng, now: OffsetDateTime, l: &Limits) -> Value {
    let past = time::Duration::seconds(l.max_event_age_secs as i64);
    let future = time::Duration::seconds(l.max_event_future_secs as i64);
    let t = match rng.gen_range(0..8) {
        0 => now - past,
        1 => now + future,
        2 => now - past + time::Duration::nanoseconds(rng.gen_range(0..2_000_000)),
        3 => now + future - time::Duration::nanoseconds(rng.gen_range(0..2_000_000)),
        4 => return Value::Null,
        _ => {
            let span = (past + future).whole_microseconds() as i64;
            now - past + time::Duration::microseconds(rng.gen_range(0..=span))
        }
    };
    let offset = UtcOffset::from_whole_seconds(rng.gen_range(-86_399..=86_399) / 60 * 60)
        .unwrap_or(UtcOffset::UTC);
    json!(rfc3339(t.to_offset(offset)))
}

fn maybe<T>(rng: &mut StdRng, p: f64, f: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    rng.gen_bool(p).then(|| f(rng))
}

/// One adversarial event body, meant to be accepted.
fn adversarial_event(rng: &mut StdRng, now: OffsetDateTime, l: &Limits, i: usize) -> Value {
    let s = l.max_string_bytes;
    let u = l.max_url_bytes;
    let event_id = match i {
        0 => json!(uuid::Uuid::nil().to_string()),
        1 => json!(uuid::Uuid::max().to_string()),
        _ if rng.gen_bool(0.2) => Value::Null,
        _ => json!(uuid::Uuid::from_u128(rng.gen()).to_string()),
    };
    let user_id = match rng.gen_range(0..8) {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(rng.gen::<i64>().to_string()),
        3 => Value::Null,
        4 => json!(0),
        5 => json!(adversarial_string(rng, l.max_string_bytes, true)),
        _ => json!(rng.gen::<i64>()),
    };
    let letters: String = (0..2)
        .map(|_| {
            let c = rng.gen_range(b'a'..=b'z') as char;
            if rng.gen_bool(0.5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    json!({
        "event_id": event_id,
        "user_id": user_id,
        "session_id": maybe(rng, 0.8, |r| adversarial_string(r, s, false)),
        "event_type": maybe(rng, 0.7, |r| adversarial_string(r, s, false)),
        "event_name": adversarial_string(rng, s, true),
        "page_url": maybe(rng, 0.8, |r| adversarial_string(r, u, false)),
        "referrer": maybe(rng, 0.5, |r| adversarial_string(r, u, false)),
        "device_type": maybe(rng, 0.8, |r| *DEVICE_TYPES.choose(r).unwrap_or(&"other")),
        "browser": maybe(rng, 0.6, |r| adversarial_string(r, s, false)),
        "os": maybe(rng, 0.6, |r| adversarial_string(r, s, false)),
        "country_code": maybe(rng, 0.8, |_| letters),
        "region": maybe(rng, 0.6, |r| adversarial_string(r, s, false)),
        "city": maybe(rng, 0.6, |r| adversarial_string(r, s, false)),
        "event_time": event_time(rng, now, l),
        "properties": properties(rng, l),
        "anonymous_id": maybe(rng, 0.5, |r| adversarial_string(r, s, false)),
        "traits": if rng.gen_bool(0.2) { properties(rng, l) } else { Value::Null },
    })
}

/// Writes `rows`; on failure, bisects to the first event that fails alone and panics with it.
async fn write_or_explain(client: &mut Client, rows: &[Row<'_>]) -> u64 {
    match copy::write_batch(client, rows).await {
        Ok(n) => n,
        Err(batch_err) => {
            let mut culprit = None;
            for r in rows {
                if let Err(e) = copy::write_batch(client, std::slice::from_ref(r)).await {
                    culprit = Some((r.event, e));
                    break;
                }
            }
            match culprit {
                Some((event, e)) => panic!(
                    "an accepted event fails the COPY: {e:?}\n{event:#?}\n(batch error: {batch_err:?})"
                ),
                None => panic!(
                    "a batch of {} accepted events failed, each alone succeeds: {batch_err:?}",
                    rows.len()
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_accepted_event_copies_and_reads_back_equal() {
    let seed: u64 = std::env::var("COPY_PROPERTIES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c0b1);
    eprintln!("seed {seed} (set COPY_PROPERTIES_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let l = Limits::default();
    let now = OffsetDateTime::now_utc();
    let ctx = Context {
        now,
        user_agent: None,
        source: Some("shop-源"),
    };

    // Generate and validate; the generator aims at valid events, so refusals are rare.
    let started = std::time::Instant::now();
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS);
    let mut refused = Vec::new();
    let mut i = 0;
    while events.len() < EVENTS {
        let v = adversarial_event(&mut rng, now, &l, i);
        match event::validate(&v, i, &l, &ctx) {
            Ok(e) => events.push(e),
            Err(e) => refused.push(e),
        }
        i += 1;
    }
    assert!(
        refused.len() * 20 < EVENTS,
        "the generator should make accepted events; refused: {:?}",
        &refused[..refused.len().min(5)]
    );
    // Sanity: the corpus really is adversarial.
    let at_limit = events
        .iter()
        .filter(|e| e.event_name.len() == l.max_string_bytes)
        .count();
    let astral = events
        .iter()
        .filter(|e| e.event_name.chars().any(|c| c as u32 > 0xffff))
        .count();
    let edge_times = events
        .iter()
        .filter(|e| {
            let age = event::micros(now) - e.event_time_us;
            age == l.max_event_age_secs as i64 * 1_000_000
                || -age == l.max_event_future_secs as i64 * 1_000_000
        })
        .count();
    assert!(
        at_limit > 100 && astral > 100 && edge_times > 100,
        "{at_limit} {astral} {edge_times}"
    );
    eprintln!(
        "{} events generated and validated in {:?} ({} refused, {at_limit} names at the byte limit, {astral} with astral characters, {edge_times} at the window's edges)",
        events.len(),
        started.elapsed(),
        refused.len()
    );

    let db = TestDb::migrated("copyprops")
        .await
        .expect("migrated database");
    let mut client = collector::database::connect(&db.url)
        .await
        .expect("connect");
    copy::prepare(&client).await.expect("prepare staging table");

    // Batches of random sizes, as the forwarder would send them.
    let started = std::time::Instant::now();
    let received_at_us = event::micros(now);
    let mut inserted = 0u64;
    let mut batches = 0;
    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = rng.gen_range(1..=1500).min(rest.len());
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        let rows: Vec<Row<'_>> = batch
            .iter()
            .map(|e| Row {
                event: e,
                received_at_us,
                collector_id: COLLECTOR_ID,
            })
            .collect();
        inserted += write_or_explain(&mut client, &rows).await;
        batches += 1;
    }
    assert_eq!(inserted, events.len() as u64, "every row is new");
    // A replay of the first batch inserts nothing and still commits.
    let replay: Vec<Row<'_>> = events[..100]
        .iter()
        .map(|e| Row {
            event: e,
            received_at_us,
            collector_id: COLLECTOR_ID,
        })
        .collect();
    assert_eq!(write_or_explain(&mut client, &replay).await, 0, "replay");
    eprintln!("{batches} batches committed in {:?}", started.elapsed());

    // Read back and compare every column.
    let rows = client
        .query(
            "SELECT event_id, user_id, session_id, event_type, event_name, page_url, referrer,
                    device_type, browser, os, country_code, region, city, event_time,
                    properties::text AS properties, received_at, collector_id,
                    app_user_id, anonymous_id, source, traits::text AS traits
             FROM user_events",
            &[],
        )
        .await
        .expect("read back");
    assert_eq!(rows.len(), events.len());
    let by_id: HashMap<(uuid::Uuid, i64), &Event> = events
        .iter()
        .map(|e| ((e.event_id, e.event_time_us), e))
        .collect();
    assert_eq!(by_id.len(), events.len(), "event keys are unique");
    let mut unreadable = 0;
    for row in &rows {
        let t: OffsetDateTime = row.get("event_time");
        let key = (row.get::<_, uuid::Uuid>("event_id"), event::micros(t));
        let e = by_id
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected row {key:?}"));
        let got = Event {
            event_id: key.0,
            user_id: row.get("user_id"),
            session_id: row.get("session_id"),
            event_type: row.get("event_type"),
            event_name: row.get("event_name"),
            page_url: row.get("page_url"),
            referrer: row.get("referrer"),
            device_type: row.get("device_type"),
            browser: row.get("browser"),
            os: row.get("os"),
            country_code: row.get("country_code"),
            region: row.get("region"),
            city: row.get("city"),
            event_time_us: key.1,
            // Compared as JSON values below (JSONB reorders keys and normalises numbers).
            properties: e.properties.clone(),
            app_user_id: row.get("app_user_id"),
            anonymous_id: row.get("anonymous_id"),
            source: row.get("source"),
            traits: e.traits.clone(),
        };
        let traits: Option<Value> = row
            .get::<_, Option<String>>("traits")
            .and_then(|t| serde_json::from_str(&t).ok());
        let sent_traits: Option<Value> = e
            .traits
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok());
        match (&traits, &sent_traits) {
            (Some(a), Some(b)) => assert!(json_eq(a, b), "traits of {}:\n{a}\n{b}", e.event_id),
            _ => assert_eq!(traits, sent_traits, "traits of {}", e.event_id),
        }
        assert_eq!(&got, *e, "a column changed on its way through the database");
        // JSONB comes back as text: serde_json cannot read some of PostgreSQL's spellings
        // (f64::MAX printed as a 309-digit integer is "out of range" for it), so a value it
        // cannot parse is left to the exact comparison in the database below.
        let props: Option<String> = row.get("properties");
        let sent: Option<Value> = e
            .properties
            .as_deref()
            .map(|p| serde_json::from_str(p).expect("accepted properties are JSON"));
        match (props.as_deref().map(serde_json::from_str::<Value>), &sent) {
            (None, None) => {}
            (Some(Ok(got)), Some(sent)) => assert!(
                json_eq(&got, sent),
                "properties of {}:\n{got}\n{sent}",
                e.event_id
            ),
            (Some(Err(_)), Some(_)) => unreadable += 1,
            (got, sent) => panic!("properties of {}: {got:?} vs {sent:?}", e.event_id),
        }
        let received: OffsetDateTime = row.get("received_at");
        assert_eq!(event::micros(received), received_at_us);
        assert_eq!(row.get::<_, String>("collector_id"), COLLECTOR_ID);
    }
    // Exactly, on the database's side: each stored JSONB equals the collector's text parsed by
    // PostgreSQL (numbers compared as exact decimals).
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    let times: Vec<OffsetDateTime> = events
        .iter()
        .map(|e| event::from_micros(e.event_time_us))
        .collect();
    let texts: Vec<Option<&str>> = events.iter().map(|e| e.properties.as_deref()).collect();
    let differing: i64 = client
        .query_one(
            "SELECT count(*) FROM user_events u
             JOIN unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS s(id, t, p)
               ON u.event_id = s.id AND u.event_time = s.t
             WHERE u.properties IS DISTINCT FROM s.p::jsonb",
            &[&ids, &times, &texts],
        )
        .await
        .expect("compare properties in the database")
        .get(0);
    assert_eq!(differing, 0, "stored properties differ from the text sent");
    eprintln!(
        "{} rows read back equal ({unreadable} with properties serde_json cannot read back, compared by PostgreSQL only)",
        rows.len()
    );
    drop(client);
    db.drop_db().await.expect("drop database");
}
