//! The adversarial events: a seeded SplitMix64 and the strings, JSON values, properties,
//! times and whole events drawn from it, each near a limit `validate` enforces.

use super::*;

/// SplitMix64: the test draws millions of numbers, and rand's ChaCha-based `StdRng` is slow
/// in a debug build.
pub(super) struct StdRng(u64);

impl StdRng {
    pub(super) fn seed_from_u64(seed: u64) -> StdRng {
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
pub(super) fn adversarial_char(rng: &mut StdRng) -> char {
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
pub(super) fn adversarial_string(rng: &mut StdRng, max: usize, non_empty: bool) -> String {
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

pub(super) fn json_number(rng: &mut StdRng) -> Value {
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
pub(super) fn json_value(rng: &mut StdRng, depth: usize) -> Value {
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

pub(super) fn json_object(rng: &mut StdRng, depth: usize, n: usize) -> Value {
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
pub(super) fn deepest(rng: &mut StdRng, depth: usize) -> Value {
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

pub(super) fn properties(rng: &mut StdRng, l: &Limits) -> Value {
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
pub(super) fn event_time(rng: &mut StdRng, now: OffsetDateTime, l: &Limits) -> Value {
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

pub(super) fn maybe<T>(rng: &mut StdRng, p: f64, f: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    rng.gen_bool(p).then(|| f(rng))
}

/// One adversarial event body, meant to be accepted.
pub(super) fn adversarial_event(
    rng: &mut StdRng,
    now: OffsetDateTime,
    l: &Limits,
    i: usize,
) -> Value {
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
