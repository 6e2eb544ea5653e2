//! A deterministic analytics dataset and the independent computation, in plain Rust over the
//! generated events, of every result the monitor's queries must return.
//!
//! The dataset ([`Dataset::generate`]) spans [`DAYS`] UTC days before the reference time
//! `t0` plus the start of `t0`'s day: users with a first-seen day, returning on later days
//! with a decaying probability; 1–3 sessions per active day, some crossing hour and day
//! boundaries; an ordered funnel with drop-offs at every step, out-of-order steps and
//! purchases without a cart; anonymous sessions; events without a session; several
//! devices and countries (and NULLs); a burst in the last hour and events exactly on the
//! live windows' boundaries. Same seed and `t0`, same events (ids included).
//!
//! Invariant: nothing here reads the database or shares code with the monitor's queries:
//! each expectation follows the README's definitions directly, so a query that agrees with
//! it is right for an independent reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

/// Whole UTC days of history before `t0`'s day.
pub const DAYS: i64 = 10;
/// Identified users with a history.
pub const USERS: i64 = 300;
/// The funnel of the seed.
pub const FUNNEL: [&str; 4] = ["page_view", "add_to_cart", "checkout_start", "purchase"];
const DEVICES: [Option<&str>; 5] = [
    Some("desktop"),
    Some("mobile"),
    Some("tablet"),
    Some("other"),
    None,
];
const COUNTRIES: [Option<&str>; 6] = [
    Some("US"),
    Some("CN"),
    Some("DE"),
    Some("BR"),
    Some("IN"),
    None,
];

/// One generated event (times at microsecond precision, like PostgreSQL).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub user_id: Option<i64>,
    pub session_id: Option<String>,
    pub event_type: String,
    pub event_name: String,
    pub page_url: Option<String>,
    pub device_type: Option<String>,
    pub country_code: Option<String>,
    pub event_time: OffsetDateTime,
}

impl Event {
    /// The event as the collector's `/v1/batch` takes it.
    pub fn to_json(&self) -> Value {
        json!({
            "event_id": self.event_id.to_string(),
            "user_id": self.user_id,
            "session_id": self.session_id,
            "event_type": self.event_type,
            "event_name": self.event_name,
            "page_url": self.page_url,
            "device_type": self.device_type,
            "country_code": self.country_code,
            "event_time": crate::gen::rfc3339(self.event_time),
        })
    }
}

/// The generated events and their reference time.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub t0: OffsetDateTime,
    pub events: Vec<Event>,
}

/// The reference time the tests use: 2 min 30.5 s after the start of the current UTC day
/// (deliberately not on a minute or hour boundary), so "today" has begun and every window
/// of the live view has data.
pub fn default_t0() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    day_start(now) + Duration::milliseconds(150_500)
}

pub fn day_start(t: OffsetDateTime) -> OffsetDateTime {
    t.date().midnight().assume_utc()
}

struct Gen {
    rng: StdRng,
    events: Vec<Event>,
    sessions: u64,
    limit: OffsetDateTime,
}

impl Gen {
    fn id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        user: Option<i64>,
        session: Option<&str>,
        name: &str,
        at: OffsetDateTime,
        device: Option<&str>,
        country: Option<&str>,
    ) {
        if at >= self.limit {
            return;
        }
        let page_url = if self.rng.gen_bool(0.1) {
            None
        } else {
            Some(format!("/p/{}", self.rng.gen_range(0..30)))
        };
        let event_type = match name {
            "page_view" => "view",
            "add_to_cart" | "checkout_start" | "purchase" => "action",
            _ => "engagement",
        };
        let event_id = self.id();
        self.events.push(Event {
            event_id,
            user_id: user,
            session_id: session.map(str::to_string),
            event_type: event_type.to_string(),
            event_name: name.to_string(),
            page_url,
            device_type: device.map(str::to_string),
            country_code: country.map(str::to_string),
            event_time: at,
        });
    }

    /// One session from `start`: browsing, then the funnel with drop-offs; sometimes a step
    /// out of order or a purchase without a cart. Strictly increasing times.
    fn session(
        &mut self,
        user: Option<i64>,
        start: OffsetDateTime,
        device: Option<&str>,
        country: Option<&str>,
    ) {
        self.sessions += 1;
        let sid = match user {
            Some(_) => format!("s{}", self.sessions),
            None => format!("anon{}", self.sessions),
        };
        let r = &mut self.rng;
        let mut names: Vec<&str> = Vec::new();
        if r.gen_bool(0.1) {
            names.push("add_to_cart"); // before any page view: must not count as step 2 alone
        }
        for _ in 0..r.gen_range(1..=3) {
            let search = r.gen_bool(0.3);
            names.extend(
                ["page_view", "search"]
                    .into_iter()
                    .take(1 + usize::from(search)),
            );
        }
        if r.gen_bool(0.55) {
            names.push("add_to_cart");
            if r.gen_bool(0.3) {
                names.push("page_view");
            }
            if r.gen_bool(0.6) {
                if r.gen_bool(0.05) {
                    names.push("purchase"); // before checkout: step 4 needs a later one
                }
                names.push("checkout_start");
                if r.gen_bool(0.65) {
                    names.push("purchase");
                }
            }
        } else if r.gen_bool(0.1) {
            names.push("purchase"); // without a cart
        }
        if r.gen_bool(0.2) {
            names.push("click");
        }
        let mut t = start;
        for name in names {
            self.push(user, Some(&sid), name, t, device, country);
            t += Duration::milliseconds(self.rng.gen_range(2_000..400_000));
        }
    }
}

impl Dataset {
    pub fn generate(seed: u64, t0: OffsetDateTime) -> Dataset {
        let today = day_start(t0);
        let mut g = Gen {
            rng: StdRng::seed_from_u64(seed),
            events: Vec::new(),
            sessions: 0,
            limit: t0,
        };
        for user in 1..=USERS {
            let first_back = g.rng.gen_range(1..=DAYS);
            let device = DEVICES[g.rng.gen_range(0..DEVICES.len())];
            let country = COUNTRIES[g.rng.gen_range(0..COUNTRIES.len())];
            let mut p_return = 0.55;
            for back in (1..=first_back).rev() {
                if back != first_back && !g.rng.gen_bool(p_return) {
                    continue;
                }
                p_return *= 0.85;
                let day = today - Duration::days(back);
                for _ in 0..g.rng.gen_range(1..=3) {
                    // Some sessions start just before midnight and run into the next day.
                    let start = if g.rng.gen_bool(0.08) {
                        day + Duration::hours(23) + Duration::minutes(g.rng.gen_range(40..60))
                    } else {
                        day + Duration::milliseconds(g.rng.gen_range(0..86_400_000))
                    };
                    g.session(Some(user), start, device, country);
                }
                for _ in 0..g.rng.gen_range(0..=2) {
                    let at = day + Duration::milliseconds(g.rng.gen_range(0..86_400_000));
                    g.push(Some(user), None, "app_open", at, device, country);
                }
            }
        }
        // Anonymous sessions: in funnels and paths, not in users.
        for _ in 0..60 {
            let at = today - Duration::milliseconds(g.rng.gen_range(0..DAYS * 86_400_000));
            let device = DEVICES[g.rng.gen_range(0..DEVICES.len())];
            g.session(None, at, device, Some("FR"));
        }
        // The last hour: returning users and new ones (first seen today).
        for k in 0..50 {
            let user = if k % 5 == 0 {
                1000 + k
            } else {
                g.rng.gen_range(1..=USERS)
            };
            let at = t0 - Duration::milliseconds(g.rng.gen_range(20_000..4_200_000));
            g.session(Some(user), at, Some("mobile"), Some("US"));
        }
        for k in 0..7 {
            let at = t0 - Duration::milliseconds(9_000 - k * 1_000);
            g.push(Some(2000 + k), None, "heartbeat_ping", at, None, None);
        }
        // Exactly on the windows' starts (inclusive) and just outside 24 h.
        let edges = [
            (9001, Duration::hours(24)),
            (9002, Duration::hours(1)),
            (9003, Duration::minutes(5)),
            (9004, Duration::seconds(10)),
            (9005, Duration::hours(24) + Duration::milliseconds(1)),
        ];
        for (user, back) in edges {
            g.push(
                Some(user),
                None,
                "app_open",
                t0 - back,
                Some("desktop"),
                Some("DE"),
            );
        }
        let mut events = g.events;
        events.sort_by_key(|e| e.event_time);
        Dataset { t0, events }
    }

    fn in_range(&self, from: OffsetDateTime, to: OffsetDateTime) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .filter(move |e| e.event_time >= from && e.event_time < to)
    }

    /// The live view as of `to`.
    pub fn live(&self, to: OffsetDateTime) -> Live {
        let last_minute = floor(to, 60);
        let first_minute = last_minute - Duration::minutes(59);
        let mut per_minute: BTreeMap<OffsetDateTime, i64> = (0..60)
            .map(|i| (first_minute + Duration::minutes(i), 0))
            .collect();
        let mut names: BTreeMap<String, i64> = BTreeMap::new();
        for e in &self.events {
            let m = floor(e.event_time, 60);
            if let Some(n) = per_minute.get_mut(&m) {
                *n += 1;
                *names.entry(e.event_name.clone()).or_default() += 1;
            }
        }
        let mut top: Vec<NameCount> = names
            .into_iter()
            .map(|(name, count)| NameCount { name, count })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        top.truncate(10);
        let users = |w: Duration| -> i64 {
            self.in_range(to - w, to)
                .filter_map(|e| e.user_id)
                .collect::<BTreeSet<_>>()
                .len() as i64
        };
        Live {
            per_minute: per_minute
                .into_iter()
                .map(|(minute, events)| MinuteCount {
                    minute: crate::gen::rfc3339(minute),
                    events,
                })
                .collect(),
            events_per_second: self.in_range(to - Duration::seconds(10), to).count() as f64 / 10.0,
            active_users_5m: users(Duration::minutes(5)),
            active_users_1h: users(Duration::hours(1)),
            active_users_24h: users(Duration::hours(24)),
            top_events: top,
            lag_p50_seconds: None,
            lag_p99_seconds: None,
        }
    }

    /// Per-step session counts of the ordered funnel over `[from, to)`.
    pub fn funnel(&self, from: OffsetDateTime, to: OffsetDateTime, steps: &[&str]) -> Funnel {
        // session -> first time of each step
        let mut firsts: HashMap<&str, Vec<Option<OffsetDateTime>>> = HashMap::new();
        for e in self.in_range(from, to) {
            let Some(sid) = e.session_id.as_deref() else {
                continue;
            };
            let Some(k) = steps.iter().position(|s| *s == e.event_name) else {
                continue;
            };
            let slot = &mut firsts.entry(sid).or_insert_with(|| vec![None; steps.len()])[k];
            match *slot {
                Some(t) if t <= e.event_time => {}
                _ => *slot = Some(e.event_time),
            }
        }
        let mut counts = vec![0i64; steps.len()];
        for times in firsts.values() {
            let mut prev: Option<OffsetDateTime> = None;
            for (k, t) in times.iter().enumerate() {
                let reached = match (k, prev, *t) {
                    (0, _, Some(_)) => true,
                    (_, Some(p), Some(t)) => t > p,
                    _ => false,
                };
                if !reached {
                    break;
                }
                counts[k] += 1;
                prev = *t;
            }
        }
        let first = counts.first().copied().unwrap_or(0);
        let ratio = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        Funnel {
            steps: steps
                .iter()
                .enumerate()
                .map(|(k, name)| FunnelStep {
                    name: name.to_string(),
                    sessions: counts[k],
                    step_conversion: if k == 0 {
                        if counts[0] > 0 {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        ratio(counts[k], counts[k - 1])
                    },
                    overall_conversion: if k == 0 {
                        if counts[0] > 0 {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        ratio(counts[k], first)
                    },
                })
                .collect(),
        }
    }

    /// Day-N retention for cohorts whose first-seen day is in `[day(from), to)`.
    pub fn retention(&self, from: OffsetDateTime, to: OffsetDateTime) -> Retention {
        let first = self.first_seen();
        let mut active: BTreeSet<(i64, Date)> = BTreeSet::new();
        for e in &self.events {
            if let Some(u) = e.user_id {
                active.insert((u, e.event_time.date()));
            }
        }
        let from_day = day_start(from);
        let mut cohorts: BTreeMap<Date, Vec<i64>> = BTreeMap::new();
        for (&user, &seen) in &first {
            if seen >= from_day && seen < to {
                cohorts.entry(seen.date()).or_default().push(user);
            }
        }
        Retention {
            cohorts: cohorts
                .into_iter()
                .map(|(day, users)| {
                    let start = day.midnight().assume_utc();
                    let days = (0..=30)
                        .take_while(|n| start + Duration::days(*n) < to)
                        .count();
                    let retained = (0..days as i64)
                        .map(|n| {
                            let d = day + Duration::days(n);
                            users.iter().filter(|u| active.contains(&(**u, d))).count() as i64
                        })
                        .collect();
                    Cohort {
                        day: day.to_string(),
                        users: users.len() as i64,
                        retained,
                    }
                })
                .collect(),
        }
    }

    /// Every transition over `[from, to)`, by count desc, then names; `limit` of them.
    pub fn paths(&self, from: OffsetDateTime, to: OffsetDateTime, limit: usize) -> Vec<Transition> {
        let mut by_session: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in self.in_range(from, to) {
            if let Some(s) = e.session_id.as_deref() {
                by_session.entry(s).or_default().push(e);
            }
        }
        let mut pairs: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
        for events in by_session.values_mut() {
            events.sort_by_key(|e| (e.event_time, e.event_id));
            for w in events.windows(2) {
                let gap = (w[1].event_time - w[0].event_time).as_seconds_f64();
                let entry = pairs
                    .entry((w[0].event_name.clone(), w[1].event_name.clone()))
                    .or_default();
                entry.0 += 1;
                entry.1 += gap;
            }
        }
        let mut out: Vec<Transition> = pairs
            .into_iter()
            .map(|((from, to), (count, total))| Transition {
                from,
                to,
                count,
                avg_seconds: total / count as f64,
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.from.cmp(&b.from))
                .then_with(|| a.to.cmp(&b.to))
        });
        out.truncate(limit);
        out
    }

    /// Events and distinct users per device type, country and event name over `[from, to)`.
    pub fn breakdown(&self, from: OffsetDateTime, to: OffsetDateTime) -> Breakdown {
        let dim = |key: fn(&Event) -> Option<String>| -> Vec<BreakdownRow> {
            let mut m: BTreeMap<String, (i64, BTreeSet<i64>)> = BTreeMap::new();
            for e in self.in_range(from, to) {
                let k = key(e).unwrap_or_else(|| "(none)".to_string());
                let entry = m.entry(k).or_default();
                entry.0 += 1;
                if let Some(u) = e.user_id {
                    entry.1.insert(u);
                }
            }
            let mut rows: Vec<BreakdownRow> = m
                .into_iter()
                .map(|(key, (events, users))| BreakdownRow {
                    key,
                    events,
                    users: users.len() as i64,
                })
                .collect();
            rows.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
            rows
        };
        Breakdown {
            by_device: dim(|e| e.device_type.clone()),
            by_country: dim(|e| e.country_code.clone()),
            by_event: dim(|e| Some(e.event_name.clone())),
        }
    }

    /// `user_attributes`: first_seen per identified user.
    pub fn first_seen(&self) -> BTreeMap<i64, OffsetDateTime> {
        let mut m: BTreeMap<i64, OffsetDateTime> = BTreeMap::new();
        for e in &self.events {
            if let Some(u) = e.user_id {
                let t = m.entry(u).or_insert(e.event_time);
                *t = (*t).min(e.event_time);
            }
        }
        m
    }

    /// `user_sessions` as the README defines its columns.
    pub fn sessions(&self) -> BTreeMap<String, SessionSummary> {
        let mut by: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        for e in &self.events {
            if let Some(s) = &e.session_id {
                by.entry(s.clone()).or_default().push(e);
            }
        }
        by.into_iter()
            .map(|(sid, events)| {
                let started = events.iter().map(|e| e.event_time).min();
                let ended = events.iter().map(|e| e.event_time).max();
                let (Some(started_at), Some(ended_at)) = (started, ended) else {
                    unreachable!("a session has events");
                };
                let at_start: Vec<&&Event> = events
                    .iter()
                    .filter(|e| e.event_time == started_at)
                    .collect();
                let at_end: Vec<&&Event> =
                    events.iter().filter(|e| e.event_time == ended_at).collect();
                let summary = SessionSummary {
                    user_id: events.iter().filter_map(|e| e.user_id).min(),
                    started_at,
                    ended_at,
                    entry_page: at_start.iter().filter_map(|e| e.page_url.clone()).min(),
                    device_type: at_start.iter().filter_map(|e| e.device_type.clone()).min(),
                    country_code: at_start.iter().filter_map(|e| e.country_code.clone()).min(),
                    exit_page: at_end.iter().filter_map(|e| e.page_url.clone()).max(),
                };
                (sid, summary)
            })
            .collect()
    }
}

fn floor(t: OffsetDateTime, secs: i64) -> OffsetDateTime {
    let ns = t.unix_timestamp_nanos();
    let w = secs as i128 * 1_000_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ns - ns.rem_euclid(w)).unwrap_or(t)
}

/// One row of `user_sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub user_id: Option<i64>,
    pub started_at: OffsetDateTime,
    pub ended_at: OffsetDateTime,
    pub entry_page: Option<String>,
    pub device_type: Option<String>,
    pub country_code: Option<String>,
    pub exit_page: Option<String>,
}

// The JSON shapes `monitor query … --format json` prints (the monitor's model types),
// re-declared here so the test reads the binary's output, not the library's structs.

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Live {
    pub per_minute: Vec<MinuteCount>,
    pub events_per_second: f64,
    pub active_users_5m: i64,
    pub active_users_1h: i64,
    pub active_users_24h: i64,
    pub top_events: Vec<NameCount>,
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MinuteCount {
    pub minute: String,
    pub events: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NameCount {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunnelStep {
    pub name: String,
    pub sessions: i64,
    pub step_conversion: f64,
    pub overall_conversion: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Retention {
    pub cohorts: Vec<Cohort>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cohort {
    pub day: String,
    pub users: i64,
    pub retained: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Paths {
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: i64,
    pub avg_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Breakdown {
    pub by_device: Vec<BreakdownRow>,
    pub by_country: Vec<BreakdownRow>,
    pub by_event: Vec<BreakdownRow>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BreakdownRow {
    pub key: String,
    pub events: i64,
    pub users: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn deterministic_and_shaped() {
        let t0 = datetime!(2024-05-11 0:02:30.5 UTC);
        let a = Dataset::generate(7, t0);
        let b = Dataset::generate(7, t0);
        assert_eq!(a.events, b.events);
        assert!(a.events.len() > 5_000, "{}", a.events.len());
        assert!(a.events.iter().all(|e| e.event_time < t0));
        assert!(a.events.iter().any(|e| e.session_id.is_none()));
        assert!(a.events.iter().any(|e| e.user_id.is_none()));
        let f = a.funnel(t0 - Duration::days(7), t0, &FUNNEL);
        let s: Vec<i64> = f.steps.iter().map(|s| s.sessions).collect();
        assert!(
            s[0] > s[1] && s[1] > s[2] && s[2] > s[3] && s[3] > 0,
            "{s:?}"
        );
        let r = a.retention(t0 - Duration::days(30), t0);
        assert!(r.cohorts.len() >= DAYS as usize);
        assert!(r
            .cohorts
            .iter()
            .any(|c| c.retained.iter().skip(1).any(|&n| n > 0)));
    }
}
