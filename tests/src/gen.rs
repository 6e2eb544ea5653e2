//! Seed-shaped events: the fields, value sets and funnel of the seed document.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

pub const FUNNEL: [&str; 4] = ["page_view", "add_to_cart", "checkout_start", "purchase"];
const DEVICES: [&str; 4] = ["desktop", "mobile", "tablet", "other"];
const COUNTRIES: [&str; 6] = ["US", "CN", "DE", "FR", "BR", "IN"];
const BROWSERS: [&str; 4] = ["Chrome", "Safari", "Firefox", "Edge"];

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// One realistic event with a fresh event_id, at `at`: an integer user id, every fifth a
/// string id, and one in ten also an anonymous id (with traits, as an identify sends them).
pub fn event(rng: &mut impl Rng, at: OffsetDateTime) -> Value {
    let name = FUNNEL[rng.gen_range(0..FUNNEL.len())];
    let user: i64 = rng.gen_range(1..50_000);
    let user_id = if user % 5 == 0 {
        json!(format!("usr_{user:x}"))
    } else {
        json!(user)
    };
    let identify = rng.gen_bool(0.1);
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "user_id": user_id,
        "anonymous_id": if identify { json!(format!("anon-{user}")) } else { Value::Null },
        "traits": if identify { json!({"plan": "pro", "名前": "李雷"}) } else { Value::Null },
        "session_id": format!("s-{user}-{}", rng.gen_range(0..5)),
        "event_type": if name == "page_view" { "view" } else { "action" },
        "event_name": name,
        "page_url": format!("https://shop.example/p/{}", rng.gen_range(0..500)),
        "referrer": "https://search.example/",
        "device_type": DEVICES[rng.gen_range(0..DEVICES.len())],
        "browser": BROWSERS[rng.gen_range(0..BROWSERS.len())],
        "os": "Linux",
        "country_code": COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
        "region": "region",
        "city": "city",
        "event_time": rfc3339(at),
        "properties": {"price": rng.gen_range(1..500), "sku": format!("sku-{}", rng.gen_range(0..1000))},
    })
}

/// `n` events at now (each with its own event_id).
pub fn batch(rng: &mut impl Rng, n: usize) -> Vec<Value> {
    let now = OffsetDateTime::now_utc();
    (0..n).map(|_| event(rng, now)).collect()
}

/// A time-ordered stream of `n` session-shaped events between `start` and `end`: each
/// session is one user's visit of a few events a few seconds apart, following the funnel
/// with drop-offs, about `concurrent` sessions interleaved at any moment; users return
/// across days. This is the shape a collector really forwards (sessions have temporal
/// locality), used by the drain benchmark and the sample traffic. Identities as real apps
/// send them: most users have integer ids, every fifth an opaque string id, and one session
/// in eight is an anonymous visitor's (an `anonymous_id`, no user id) who signs up in one
/// case out of four (the session's last event carries both ids).
pub fn session_stream(
    rng: &mut impl Rng,
    n: usize,
    start: OffsetDateTime,
    end: OffsetDateTime,
    concurrent: usize,
) -> Vec<Value> {
    let span = (end - start).as_seconds_f64().max(1.0);
    // Sessions average about 3 events; a session starts where the share of events emitted
    // so far puts it, so events spread evenly over [start, end] whatever the session sizes.
    let sessions = (n / 3).max(1);
    let step = span / sessions as f64;
    let mut out = Vec::with_capacity(n);
    let mut s = 0usize;
    while out.len() < n {
        let at = span * out.len() as f64 / n as f64;
        let t0 = start + time::Duration::seconds_f64(at + rng.gen_range(0.0..step.max(0.001)));
        let user: i64 = rng.gen_range(1..(sessions as i64 / 3).max(2));
        let session = format!("s-{user}-{s}");
        let anonymous = rng.gen_bool(0.125);
        let signs_up = anonymous && rng.gen_bool(0.25);
        let user_value = if user % 5 == 0 {
            json!(format!("usr_{:x}", user * 7919))
        } else {
            json!(user)
        };
        let device = DEVICES[rng.gen_range(0..DEVICES.len())];
        let country = COUNTRIES[(user as usize) % COUNTRIES.len()];
        let mut t = t0;
        let views = rng.gen_range(1..4);
        let mut names: Vec<&str> = vec!["page_view"; views];
        for step_name in &FUNNEL[1..] {
            if rng.gen_bool(0.5) {
                names.push(step_name);
            } else {
                break;
            }
        }
        let last = names.len().saturating_sub(1);
        for (k, name) in names.into_iter().enumerate() {
            if out.len() >= n {
                break;
            }
            let (user_id, anonymous_id) = match (anonymous, signs_up && k == last) {
                (false, _) => (user_value.clone(), Value::Null),
                (true, false) => (Value::Null, json!(format!("anon-{s}"))),
                (true, true) => (user_value.clone(), json!(format!("anon-{s}"))),
            };
            t += time::Duration::seconds(rng.gen_range(1..(concurrent as i64).clamp(2, 120)));
            out.push(json!({
                "event_id": uuid::Uuid::new_v4().to_string(),
                "user_id": user_id,
                "anonymous_id": anonymous_id,
                "session_id": session,
                "event_type": if name == "page_view" { "view" } else { "action" },
                "event_name": name,
                "page_url": format!("https://shop.example/p/{}", rng.gen_range(0..500)),
                "referrer": "https://search.example/",
                "device_type": device,
                "browser": BROWSERS[rng.gen_range(0..BROWSERS.len())],
                "os": "Linux",
                "country_code": country,
                "region": "region",
                "city": "city",
                "event_time": rfc3339(t.min(end)),
                "properties": {"price": rng.gen_range(1..500), "sku": format!("sku-{}", rng.gen_range(0..1000))},
            }));
        }
        s += 1;
    }
    out.sort_by(|a, b| a["event_time"].as_str().cmp(&b["event_time"].as_str()));
    out
}
