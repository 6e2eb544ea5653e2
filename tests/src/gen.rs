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

/// One realistic event with a fresh event_id, at `at`.
pub fn event(rng: &mut impl Rng, at: OffsetDateTime) -> Value {
    let name = FUNNEL[rng.gen_range(0..FUNNEL.len())];
    let user: i64 = rng.gen_range(1..50_000);
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "user_id": user,
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
