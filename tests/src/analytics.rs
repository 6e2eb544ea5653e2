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

use serde_json::{json, Value};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

mod drill;
pub mod filter;
mod flows;
mod generate;
mod shapes;

pub use drill::{DropOff, DropSession};
pub use filter::Tagged;
pub use shapes::*;

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
    /// The seed's numeric id, when the client sent an integer.
    pub user_id: Option<i64>,
    /// The user id as the client sent it (an integer as its text).
    pub app_user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub traits: Option<Value>,
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
        let user_id = match (self.user_id, &self.app_user_id) {
            (Some(n), _) => json!(n),
            (None, Some(text)) => json!(text),
            (None, None) => Value::Null,
        };
        json!({
            "event_id": self.event_id.to_string(),
            "user_id": user_id,
            "anonymous_id": self.anonymous_id,
            "traits": self.traits,
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

impl Event {
    /// The event as `user_events` columns (for loaders that stage rows with SQL).
    pub fn to_columns(&self) -> Value {
        let mut v = self.to_json();
        v["user_id"] = json!(self.user_id);
        v["app_user_id"] = json!(self.app_user_id);
        v
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

/// The README's people, computed from the events alone: an event's actor is its user id
/// (as sent), else its anonymous id; an anonymous id seen on an event together with a user
/// id is linked to the user of the earliest such event (ties: the smallest user id); an
/// event's person is the user its actor is linked to, else its actor.
pub struct People {
    links: HashMap<String, (OffsetDateTime, String)>,
}

impl People {
    pub fn of(&self, e: &Event) -> Option<String> {
        let actor = actor(e)?;
        Some(match self.links.get(&actor) {
            Some((_, user)) => user.clone(),
            None => actor,
        })
    }

    /// anonymous id → user id.
    pub fn links(&self) -> BTreeMap<String, String> {
        self.links
            .iter()
            .map(|(a, (_, u))| (a.clone(), u.clone()))
            .collect()
    }
}

/// The user id as sent, else the anonymous id.
pub fn actor(e: &Event) -> Option<String> {
    e.app_user_id.clone().or_else(|| e.anonymous_id.clone())
}

impl Dataset {
    pub fn people(&self) -> People {
        let mut links: HashMap<String, (OffsetDateTime, String)> = HashMap::new();
        for e in &self.events {
            let (Some(anon), Some(user)) = (&e.anonymous_id, &e.app_user_id) else {
                continue;
            };
            if anon == user {
                continue;
            }
            let candidate = (e.event_time, user.clone());
            match links.get(anon) {
                Some(best) if *best <= candidate => {}
                _ => {
                    links.insert(anon.clone(), candidate);
                }
            }
        }
        People { links }
    }

    /// First event time per actor (`actor_first_seen`).
    pub fn actor_first_seen(&self) -> BTreeMap<String, OffsetDateTime> {
        let mut m: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
        for e in &self.events {
            if let Some(a) = actor(e) {
                let t = m.entry(a).or_insert(e.event_time);
                *t = (*t).min(e.event_time);
            }
        }
        m
    }

    /// Per actor and trait key, the value of the latest identify (ties: larger JSON text).
    pub fn traits(&self) -> BTreeMap<(String, String), Value> {
        let mut m: BTreeMap<(String, String), (OffsetDateTime, String, Value)> = BTreeMap::new();
        for e in &self.events {
            let (Some(a), Some(Value::Object(t))) = (actor(e), &e.traits) else {
                continue;
            };
            for (k, v) in t {
                let candidate = (e.event_time, v.to_string(), v.clone());
                match m.get(&(a.clone(), k.clone())) {
                    Some(best) if (best.0, &best.1) >= (candidate.0, &candidate.1) => {}
                    _ => {
                        m.insert((a.clone(), k.clone()), candidate);
                    }
                }
            }
        }
        m.into_iter().map(|(k, (_, _, v))| (k, v)).collect()
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
        let people = self.people();
        let users = |w: Duration| -> i64 {
            self.in_range(to - w, to)
                .filter_map(|e| people.of(e))
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

    /// Events and distinct people per device type, country and event name over `[from, to)`.
    pub fn breakdown(&self, from: OffsetDateTime, to: OffsetDateTime) -> Breakdown {
        let people = self.people();
        let dim = |key: fn(&Event) -> Option<String>| -> Vec<BreakdownRow> {
            let mut m: BTreeMap<String, (i64, BTreeSet<String>)> = BTreeMap::new();
            for e in self.in_range(from, to) {
                let k = key(e).unwrap_or_else(|| "(none)".to_string());
                let entry = m.entry(k).or_default();
                entry.0 += 1;
                if let Some(p) = people.of(e) {
                    entry.1.insert(p);
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

    /// `user_attributes`: first_seen per numeric user (events sent with an integer id).
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
        assert!(
            a.events.iter().any(|e| actor(e).is_none()),
            "nobody's events"
        );
        let people = a.people();
        assert!(people.links().len() >= 50, "{}", people.links().len());
        assert!(a
            .events
            .iter()
            .any(|e| e.event_time < t0 - Duration::days(29)));
        // Sign-ups count once: a linked visitor's events belong to the user.
        let visitor = a
            .events
            .iter()
            .find(|e| e.anonymous_id.as_deref() == Some("v-0001") && e.app_user_id.is_none())
            .expect("an anonymous event of a visitor who signs up");
        assert_eq!(people.of(visitor).as_deref(), Some("usr_sig1"));
        assert!(!a.traits().is_empty());
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
