//! The aggregate layer and the monitor's analyses, end to end: a known event set
//! ([`e2e::analytics`]) goes through the real ingest path (the collector binary, /v1/batch,
//! its buffer and forwarder, `edge_after_batch`), then every aggregate's content and every
//! `monitor query` (the real binary, JSON output, pinned with `MONITOR_AS_OF`) is compared
//! with the independent computation over the generated events.
//!
//! Runs on whichever edition the test server has: on apache the aggregates are views; on
//! the Community edition they are continuous aggregates, checked twice — real-time only
//! (nothing materialized yet), then after a full refresh (materialized).
//!
//! Also: replaying batches leaves the summary tables unchanged; the read-only role can read
//! every analysis and write nothing; `collector maintain`'s library call drops only expired
//! chunks and refuses a retention inside the refresh window.
//!
//! The ignored `query_latency` benchmark prints each `monitor query`'s latency at 1M and 10M
//! events (see its doc comment).

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant},
};

use collector::database::copy::{merge_staged, prepare};
use e2e::{
    analytics::{self, Dataset, Event, FUNNEL},
    check::buffer_stat,
    client::post_json,
    db::{eventually, TestDb},
    gen::rfc3339,
    proc::{bin, CollectorOpts, CollectorProc},
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tokio_postgres::Client;

const SEED: u64 = 20_240_501;

/// The continuous aggregates the migrations create (TimescaleDB edition).
const CONTINUOUS_AGGREGATES: [&str; 5] = [
    "real_time_monitoring",
    "user_behavior_multi_dimension",
    "user_events_daily",
    "user_session_funnel",
    "user_daily_activity",
];

/// Every `monitor query` kind.
const QUERIES: [&str; 8] = [
    "live",
    "funnel",
    "retention",
    "paths",
    "breakdown",
    "collectors",
    "database",
    "pages",
];

fn post_all(c: &CollectorProc, events: &[Event]) {
    for chunk in events.chunks(500) {
        let body = Value::Array(chunk.iter().map(Event::to_json).collect());
        let r = post_json(c.ingest, "/v1/batch", &body).expect("post batch");
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// Runs `monitor query <args…> --format json` as of `as_of`; parses stdout.
fn monitor_json<T: DeserializeOwned>(url: &str, as_of: OffsetDateTime, args: &[&str]) -> T {
    let out = monitor(url, Some(as_of), &[args, &["--format", "json"]].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("monitor {args:?}: {e}\n{out}"))
}

fn monitor(url: &str, as_of: Option<OffsetDateTime>, args: &[&str]) -> String {
    let mut cmd = Command::new(bin("monitor").expect("monitor binary"));
    cmd.arg("query")
        .args(args)
        .arg("--database-url")
        .arg(url)
        .env_remove("DATABASE_URL")
        .env_remove("MONITOR_AS_OF");
    if let Some(t) = as_of {
        cmd.env("MONITOR_AS_OF", rfc3339(t));
    }
    let out = cmd.output().expect("run monitor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "monitor query {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

fn assert_funnel(got: &analytics::Funnel, want: &analytics::Funnel, what: &str) {
    assert_eq!(got.steps.len(), want.steps.len(), "{what}");
    for (g, w) in got.steps.iter().zip(&want.steps) {
        assert_eq!((&g.name, g.sessions), (&w.name, w.sessions), "{what}");
        assert!(
            close(g.step_conversion, w.step_conversion),
            "{what}: {g:?} vs {w:?}"
        );
        assert!(
            close(g.overall_conversion, w.overall_conversion),
            "{what}: {g:?} vs {w:?}"
        );
    }
}

fn assert_paths(got: &analytics::Paths, want: &[analytics::Transition], what: &str) {
    let g: Vec<_> = got
        .transitions
        .iter()
        .map(|t| (&t.from, &t.to, t.count))
        .collect();
    let w: Vec<_> = want.iter().map(|t| (&t.from, &t.to, t.count)).collect();
    assert_eq!(g, w, "{what}");
    for (g, w) in got.transitions.iter().zip(want) {
        assert!(
            close(g.avg_seconds, w.avg_seconds),
            "{what}: {g:?} vs {w:?}"
        );
    }
}

/// Every analysis as of `t0`, against the dataset.
fn check_queries(url: &str, data: &Dataset, label: &str) {
    let t0 = data.t0;
    let days = |n: i64| time::Duration::days(n);

    // Live.
    let got: analytics::Live = monitor_json(url, t0, &["live"]);
    let want = data.live(t0);
    assert_eq!(got.per_minute, want.per_minute, "{label}: per_minute");
    assert!(want.per_minute.iter().filter(|m| m.events > 0).count() > 20);
    assert_eq!(got.top_events, want.top_events, "{label}: top_events");
    assert!(
        close(got.events_per_second, want.events_per_second),
        "{label}: eps"
    );
    assert!(want.events_per_second > 0.0);
    assert_eq!(
        (
            got.active_users_5m,
            got.active_users_1h,
            got.active_users_24h
        ),
        (
            want.active_users_5m,
            want.active_users_1h,
            want.active_users_24h
        ),
        "{label}: active users"
    );
    // created_at − received_at is real ingest time: present, small and not negative.
    for lag in [got.lag_p50_seconds, got.lag_p99_seconds] {
        let lag = lag.unwrap_or(-1.0);
        assert!((0.0..120.0).contains(&lag), "{label}: lag {lag}");
    }

    // Funnels: the default steps (aggregate + raw edges), a short range (raw only), known
    // steps in another order, and steps the aggregate does not track (raw only).
    for (since, steps) in [
        ("7d", FUNNEL.to_vec()),
        ("31d", FUNNEL.to_vec()),
        ("90m", FUNNEL.to_vec()),
        ("30m", FUNNEL.to_vec()),
        ("3d", vec!["add_to_cart", "purchase"]),
        ("7d", vec!["page_view", "search", "purchase"]),
    ] {
        let secs = e2e_span(since);
        let got: analytics::Funnel = monitor_json(
            url,
            t0,
            &["funnel", "--since", since, "--steps", &steps.join(",")],
        );
        let want = data.funnel(t0 - secs, t0, &steps);
        assert_funnel(&got, &want, &format!("{label}: funnel {since} {steps:?}"));
    }

    // Retention over every cohort, and over the last 3 days only.
    for since in [31, 3] {
        let got: analytics::Retention =
            monitor_json(url, t0, &["retention", "--since", &format!("{since}d")]);
        let want = data.retention(t0 - days(since), t0);
        assert_eq!(got, want, "{label}: retention {since}d");
    }

    // Short ranges and the whole history (the dataset reaches 30 days back).
    for since in [3, 31] {
        let got: analytics::Paths =
            monitor_json(url, t0, &["paths", "--since", &format!("{since}d")]);
        assert_paths(
            &got,
            &data.paths(t0 - days(since), t0, 20),
            &format!("{label}: paths {since}d"),
        );
    }
    for since in [2, 31] {
        let got: analytics::Breakdown =
            monitor_json(url, t0, &["breakdown", "--since", &format!("{since}d")]);
        let want = data.breakdown(t0 - days(since), t0);
        assert_eq!(got, want, "{label}: breakdown {since}d");
    }

    for since in [3, 31] {
        let got = pages_of(url, t0, &format!("{since}d"));
        let want = data.top_pages(t0 - days(since), t0, 20);
        assert!(want.len() >= 10, "{label}: pages {want:?}");
        assert_eq!(got, want, "{label}: pages {since}d");
    }
}

/// `monitor query pages --since SINCE` as of `at`: (url, views, users) rows.
fn pages_of(url: &str, at: OffsetDateTime, since: &str) -> Vec<(String, i64, i64)> {
    let got: Value = monitor_json(url, at, &["pages", "--since", since]);
    got["pages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["url"].as_str().unwrap_or_default().to_string(),
                p["views"].as_i64().unwrap_or(-1),
                p["users"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Events with event_time at or after `t`: none means live, breakdown and pages answer
/// from migration 0013's rollups for ranges ending at `t`; some means from raw events.
async fn events_from(c: &Client, t: OffsetDateTime) -> i64 {
    c.query_one(
        "SELECT count(*) FROM user_events WHERE event_time >= $1",
        &[&t],
    )
    .await
    .expect("later events")
    .get(0)
}

/// The monitor's `activity::MAX_LATER`: with more events at or after a range's end, live,
/// breakdown and pages read raw events.
const MAX_LATER: i64 = 1000;

/// [`check_activity_queries`] on each path: as of `t0` (nothing later: the rollups alone),
/// 4.5 s before it (a few later events, corrected), and 3 days before (raw events).
async fn check_activity_paths(c: &Client, url: &str, data: &Dataset, label: &str) {
    assert_eq!(events_from(c, data.t0).await, 0);
    check_activity_queries(url, data, data.t0, &format!("{label}: rollups"));
    let near = data.t0 - time::Duration::milliseconds(4_500);
    let later = events_from(c, near).await;
    assert!(later > 0 && later <= MAX_LATER, "{later}");
    check_activity_queries(url, data, near, &format!("{label}: rollups, corrected"));
    let past = data.t0 - time::Duration::days(3) - time::Duration::milliseconds(1_250);
    assert!(events_from(c, past).await > MAX_LATER);
    check_activity_queries(url, data, past, &format!("{label}: raw"));
}

/// Live (all but the lag), breakdown, pages and paths as of `at`, against the dataset,
/// over ranges ending at `at` whose starts fall on and off hour and day boundaries (at
/// `t0` the partial minute at a range's start is read directly, 4.5 s earlier as its
/// minute minus the rest: both ways are checked).
fn check_activity_queries(url: &str, data: &Dataset, at: OffsetDateTime, label: &str) {
    let got: analytics::Live = monitor_json(url, at, &["live"]);
    let want = data.live(at);
    assert_eq!(got.per_minute, want.per_minute, "{label}: per_minute");
    assert_eq!(got.top_events, want.top_events, "{label}: top_events");
    assert!(
        close(got.events_per_second, want.events_per_second),
        "{label}: eps"
    );
    let users = |l: &analytics::Live| (l.active_users_5m, l.active_users_1h, l.active_users_24h);
    assert_eq!(users(&got), users(&want), "{label}: active people");
    assert!(want.active_users_24h > 0, "{label}: nobody active");
    for since in ["5m", "90m", "26h", "2d", "7d", "31d"] {
        let from = at - e2e_span(since);
        let got: analytics::Breakdown = monitor_json(url, at, &["breakdown", "--since", since]);
        assert_eq!(got, data.breakdown(from, at), "{label}: breakdown {since}");
        assert_eq!(
            pages_of(url, at, since),
            data.top_pages(from, at, 20),
            "{label}: pages {since}"
        );
        // Paths' partial minutes are read the shorter way at both edges (the end's
        // complement subtracts the events after `at`).
        let got: analytics::Paths = monitor_json(url, at, &["paths", "--since", since]);
        assert_paths(
            &got,
            &data.paths(from, at, 20),
            &format!("{label}: paths {since}"),
        );
    }
}

/// `--since` spans used above.
fn e2e_span(s: &str) -> time::Duration {
    let (n, unit) = s.split_at(s.len() - 1);
    let n: i64 = n.parse().expect("span");
    match unit {
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        _ => time::Duration::days(n),
    }
}

/// The content of each aggregate, row by row, against the events.
async fn check_aggregates(c: &Client, data: &Dataset, label: &str) {
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let bucket = |t: OffsetDateTime, secs: i64| {
        let ns = t.unix_timestamp_nanos();
        let w = secs as i128 * 1_000_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(ns - ns.rem_euclid(w)).expect("bucket")
    };
    const TS: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.USZ'"#;
    let rows = |sql: String| async move {
        c.query(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<BTreeSet<String>>()
    };
    // Normalises PostgreSQL's microsecond text to RFC 3339 as `time` prints it.
    let norm = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.into_iter()
            .map(|line| {
                line.split('|')
                    .map(|f| {
                        OffsetDateTime::parse(f, &Rfc3339)
                            .map(rfc3339)
                            .unwrap_or_else(|_| f.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };

    // real_time_monitoring: minute x event_name.
    let mut want: BTreeMap<(OffsetDateTime, String), (i64, BTreeSet<i64>)> = BTreeMap::new();
    for e in &data.events {
        let v = want
            .entry((bucket(e.event_time, 60), e.event_name.clone()))
            .or_default();
        v.0 += 1;
        v.1.extend(e.user_id);
    }
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|((b, n), (c, u))| format!("{}|{n}|{c}|{}", rfc3339(b), u.len()))
        .collect();
    let got = norm(
        rows(format!(
            "SELECT concat_ws('|', to_char(bucket AT TIME ZONE 'UTC', {TS}), event_name, event_count, unique_users) FROM real_time_monitoring"
        ))
        .await,
    );
    same_rows(&got, &want, &format!("{label}: real_time_monitoring"));

    // user_behavior_multi_dimension: hour x device x country.
    type Dim = (OffsetDateTime, String, String);
    // events, users, sessions, [page views, add-to-carts, purchases] per dimension
    type Counts = (i64, BTreeSet<i64>, BTreeSet<String>, [i64; 3]);
    let mut want: BTreeMap<Dim, Counts> = BTreeMap::new();
    for e in &data.events {
        let v = want
            .entry((
                bucket(e.event_time, 3600),
                opt(&e.device_type),
                opt(&e.country_code),
            ))
            .or_default();
        v.0 += 1;
        v.1.extend(e.user_id);
        v.2.extend(e.session_id.clone());
        for (i, n) in ["page_view", "add_to_cart", "purchase"].iter().enumerate() {
            v.3[i] += i64::from(e.event_name == *n);
        }
    }
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|((b, d, c), (n, u, s, k))| {
            format!(
                "{}|{d}|{c}|{n}|{}|{}|{}|{}|{}|true",
                rfc3339(b),
                u.len(),
                s.len(),
                k[0],
                k[1],
                k[2]
            )
        })
        .collect();
    let got = norm(rows(format!(
        "SELECT concat_ws('|', to_char(bucket AT TIME ZONE 'UTC', {TS}), COALESCE(device_type, '-'), COALESCE(country_code::TEXT, '-'),
                total_events, unique_users, unique_sessions, page_views, add_to_carts, purchases,
                (conversion IS NOT DISTINCT FROM purchases::FLOAT8 / NULLIF(page_views, 0))::TEXT)
         FROM user_behavior_multi_dimension"
    ))
    .await);
    same_rows(
        &got,
        &want,
        &format!("{label}: user_behavior_multi_dimension"),
    );

    // user_events_daily: day x event type x country.
    let mut want: BTreeMap<Dim, (i64, BTreeSet<i64>)> = BTreeMap::new();
    for e in &data.events {
        let v = want
            .entry((
                bucket(e.event_time, 86_400),
                e.event_type.clone(),
                opt(&e.country_code),
            ))
            .or_default();
        v.0 += 1;
        v.1.extend(e.user_id);
    }
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|((b, t, c), (n, u))| format!("{}|{t}|{c}|{n}|{}", rfc3339(b), u.len()))
        .collect();
    let got = norm(rows(format!(
        "SELECT concat_ws('|', to_char(bucket AT TIME ZONE 'UTC', {TS}), event_type, COALESCE(country_code::TEXT, '-'), event_count, unique_users)
         FROM user_events_daily"
    ))
    .await);
    same_rows(&got, &want, &format!("{label}: user_events_daily"));

    // user_session_funnel: hour x session, first time of each step.
    // (bucket, session) -> (user, first time of each funnel step)
    type Steps = (Option<i64>, [Option<OffsetDateTime>; 4]);
    let mut want: BTreeMap<(OffsetDateTime, String), Steps> = BTreeMap::new();
    for e in &data.events {
        let (Some(sid), Some(k)) = (
            &e.session_id,
            FUNNEL.iter().position(|s| *s == e.event_name),
        ) else {
            continue;
        };
        let v = want
            .entry((bucket(e.event_time, 3600), sid.clone()))
            .or_default();
        v.0 = match (v.0, e.user_id) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match v.1[k] {
            Some(t) if t <= e.event_time => {}
            _ => v.1[k] = Some(e.event_time),
        }
    }
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|((b, s), (u, t))| {
            let times: Vec<String> = t
                .iter()
                .map(|t| t.map(rfc3339).unwrap_or("-".into()))
                .collect();
            let has: Vec<&str> = t
                .iter()
                .map(|t| if t.is_some() { "true" } else { "false" })
                .collect();
            format!(
                "{}|{s}|{}|{}|{}",
                rfc3339(b),
                u.map(|u| u.to_string()).unwrap_or("-".into()),
                times.join("|"),
                has.join("|")
            )
        })
        .collect();
    let t = |c: &str| format!("COALESCE(to_char({c} AT TIME ZONE 'UTC', {TS}), '-')");
    let got = norm(rows(format!(
        "SELECT concat_ws('|', to_char(bucket AT TIME ZONE 'UTC', {TS}), session_id, COALESCE(user_id::TEXT, '-'),
                {}, {}, {}, {}, has_page_view::TEXT, has_add_to_cart::TEXT, has_checkout_start::TEXT,
                has_purchase::TEXT)
         FROM user_session_funnel",
        t("page_view_time"),
        t("add_to_cart_time"),
        t("checkout_start_time"),
        t("purchase_time")
    ))
    .await);
    same_rows(&got, &want, &format!("{label}: user_session_funnel"));

    // user_daily_activity: day x user.
    let mut want: BTreeMap<(OffsetDateTime, i64), i64> = BTreeMap::new();
    for e in &data.events {
        if let Some(u) = e.user_id {
            *want.entry((bucket(e.event_time, 86_400), u)).or_default() += 1;
        }
    }
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|((b, u), n)| format!("{}|{u}|{n}", rfc3339(b)))
        .collect();
    let got = norm(rows(format!(
        "SELECT concat_ws('|', to_char(bucket AT TIME ZONE 'UTC', {TS}), user_id, event_count) FROM user_daily_activity"
    ))
    .await);
    same_rows(&got, &want, &format!("{label}: user_daily_activity"));
}

/// `monitor query user ID` against the dataset: the person `id` resolves to, their
/// anonymous ids, merged traits, first/last seen and newest events.
fn check_person(url: &str, data: &Dataset, id: &str) {
    let got: Value = monitor_json(url, data.t0, &["user", id]);
    let people = data.people();
    let person = people
        .links()
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.to_string());
    assert_eq!(got["person"], person.as_str(), "{got}");
    let mut mine: Vec<&Event> = data
        .events
        .iter()
        .filter(|e| people.of(e).as_deref() == Some(person.as_str()))
        .collect();
    assert!(!mine.is_empty(), "{id} has events");
    mine.sort_by_key(|e| std::cmp::Reverse(e.event_time));
    let first = mine.iter().map(|e| e.event_time).min().map(rfc3339);
    let last = mine.first().map(|e| rfc3339(e.event_time));
    let as_time = |v: &Value| {
        v.as_str()
            .and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(rfc3339)
    };
    assert_eq!(as_time(&got["first_seen"]), first, "{id}: first_seen");
    assert_eq!(as_time(&got["last_seen"]), last, "{id}: last_seen");
    let recent = got["recent"].as_array().cloned().unwrap_or_default();
    assert_eq!(recent.len(), mine.len().min(50), "{id}: recent");
    assert_eq!(recent[0]["event_name"], mine[0].event_name.as_str());
    let anon: BTreeSet<String> = people
        .links()
        .into_iter()
        .filter(|(_, u)| *u == person)
        .map(|(a, _)| a)
        .collect();
    let got_anon: BTreeSet<String> = got["anonymous_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert_eq!(got_anon, anon, "{id}: anonymous ids");
    // Traits: per key the latest over the person's ids.
    let mut want: BTreeMap<String, (OffsetDateTime, String, Value)> = BTreeMap::new();
    for e in &mine {
        if let Some(Value::Object(t)) = &e.traits {
            for (k, v) in t {
                let cand = (e.event_time, v.to_string(), v.clone());
                if want.get(k).is_none_or(|b| (b.0, &b.1) < (cand.0, &cand.1)) {
                    want.insert(k.clone(), cand);
                }
            }
        }
    }
    let want: Vec<Value> = want
        .into_iter()
        .map(|(k, (_, _, v))| json!([k, v]))
        .collect();
    assert_eq!(got["traits"], Value::Array(want), "{id}: traits");
}

/// `monitor query funnel --drop-off STEP` against the dataset: the sessions that reached the
/// step and not the next, newest first, with their last event and person; and the count
/// agrees with the funnel's (sessions(k) − sessions(k+1)).
fn check_drop_off(url: &str, data: &Dataset) {
    let t0 = data.t0;
    let cases: [(&str, Vec<&str>, &str, usize); 7] = [
        ("7d", FUNNEL.to_vec(), "1", 0),
        ("7d", FUNNEL.to_vec(), "add_to_cart", 1),
        ("7d", FUNNEL.to_vec(), "3", 2),
        ("7d", FUNNEL.to_vec(), "purchase", 3),
        ("31d", FUNNEL.to_vec(), "2", 1),
        ("90m", FUNNEL.to_vec(), "1", 0),
        ("3d", vec!["page_view", "search", "purchase"], "2", 1),
    ];
    for (since, steps, given, step) in cases {
        let what = format!("drop-off {since} {steps:?} step {given}");
        let got: analytics::DropOff = monitor_json(
            url,
            t0,
            &[
                "funnel",
                "--since",
                since,
                "--steps",
                &steps.join(","),
                "--drop-off",
                given,
            ],
        );
        let from = t0 - e2e_span(since);
        let (total, want) = data.drop_off(from, t0, &steps, step, 100);
        assert_eq!((got.step, got.total), (step, total), "{what}");
        let funnel = data.funnel(from, t0, &steps);
        let next = funnel.steps.get(step + 1).map_or(0, |s| s.sessions);
        assert_eq!(
            total,
            funnel.steps[step].sessions - next,
            "{what}: vs the funnel"
        );
        let got: Vec<(String, Option<String>, String, String)> = got
            .sessions
            .into_iter()
            .map(|s| {
                let t = OffsetDateTime::parse(&s.last_time, &Rfc3339)
                    .map(rfc3339)
                    .unwrap_or(s.last_time);
                (s.session_id, s.person, s.last_event, t)
            })
            .collect();
        let want: Vec<(String, Option<String>, String, String)> = want
            .into_iter()
            .map(|(s, p, e, t)| (s, p, e, rfc3339(t)))
            .collect();
        assert_eq!(got, want, "{what}");
        if since == "7d" {
            assert!(total > 0, "{what}: nothing to compare");
        }
    }
}

/// Equal sets of rows; on failure, prints the first differences only.
fn same_rows(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    if got == want {
        return;
    }
    let extra: Vec<_> = got.difference(want).take(5).collect();
    let missing: Vec<_> = want.difference(got).take(5).collect();
    panic!(
        "{what}: {} rows, {} expected\nunexpected: {extra:#?}\nmissing: {missing:#?}",
        got.len(),
        want.len()
    );
}

/// `user_attributes` and `user_sessions` against the events.
async fn check_summaries(c: &Client, data: &Dataset) {
    let got: BTreeMap<i64, OffsetDateTime> = c
        .query("SELECT user_id, first_seen FROM user_attributes", &[])
        .await
        .expect("user_attributes")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, data.first_seen(), "user_attributes");
    check_identity(c, data).await;
    check_transitions(c, data).await;
    check_funnel_counters(c, data).await;
    check_retention_counters(c, data).await;
    assert!(
        e2e::activity::row_count(c).await.expect("activity rows") > 0,
        "activity_person_last is empty"
    );
    if let Some(diff) = e2e::activity::differences_from_rebuild(c)
        .await
        .expect("activity rebuild")
    {
        panic!("activity rollups differ from their recomputation:\n{diff}");
    }
    let got: BTreeMap<String, analytics::SessionSummary> = c
        .query(
            "SELECT session_id, user_id, started_at, ended_at, entry_page, device_type,
                    country_code, exit_page, duration = ended_at - started_at
             FROM user_sessions",
            &[],
        )
        .await
        .expect("user_sessions")
        .iter()
        .map(|r| {
            assert!(r.get::<_, bool>(8), "duration");
            (
                r.get(0),
                analytics::SessionSummary {
                    user_id: r.get(1),
                    started_at: r.get(2),
                    ended_at: r.get(3),
                    entry_page: r.get(4),
                    device_type: r.get(5),
                    country_code: r.get(6),
                    exit_page: r.get(7),
                },
            )
        })
        .collect();
    let want = data.sessions();
    assert_eq!(got.len(), want.len(), "user_sessions rows");
    for (sid, w) in &want {
        assert_eq!(got.get(sid), Some(w), "user_sessions {sid}");
    }
}

/// `actor_first_seen`, `identity_links`, `actor_daily` and `person_traits` against the
/// events.
async fn check_identity(c: &Client, data: &Dataset) {
    let got: BTreeMap<String, OffsetDateTime> = c
        .query("SELECT actor, first_seen FROM actor_first_seen", &[])
        .await
        .expect("actor_first_seen")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, data.actor_first_seen(), "actor_first_seen");
    let got: BTreeMap<String, String> = c
        .query("SELECT anonymous_id, app_user_id FROM identity_links", &[])
        .await
        .expect("identity_links")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, data.people().links(), "identity_links");
    let got: BTreeMap<(String, String), Value> = c
        .query("SELECT actor, key, value::TEXT FROM person_traits", &[])
        .await
        .expect("person_traits")
        .iter()
        .map(|r| {
            let v: String = r.get(2);
            (
                (r.get(0), r.get(1)),
                serde_json::from_str(&v).unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(got, data.traits(), "person_traits");
    let want: BTreeSet<(OffsetDateTime, String)> = data
        .events
        .iter()
        .filter_map(|e| Some((analytics::day_start(e.event_time), analytics::actor(e)?)))
        .collect();
    let got: BTreeSet<(OffsetDateTime, String)> = c
        .query("SELECT day, actor FROM actor_daily", &[])
        .await
        .expect("actor_daily")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, want, "actor_daily");
}

/// The transition counters (migrations 0011 and 0019) at every grain against the events;
/// rows that went back to zero are allowed and ignored.
async fn check_transitions(c: &Client, data: &Dataset) {
    for (table, width) in [
        ("rollup_transitions_daily", 86_400),
        ("rollup_transitions_hourly", 3600),
        ("rollup_transitions_minute", 60),
    ] {
        let got: BTreeMap<(OffsetDateTime, String, String), (i64, i64)> = c
            .query(
                &format!(
                    "SELECT bucket, from_name, to_name, transitions, gap_us FROM {table}
                     WHERE transitions <> 0 OR gap_us <> 0"
                ),
                &[],
            )
            .await
            .expect(table)
            .iter()
            .map(|r| ((r.get(0), r.get(1), r.get(2)), (r.get(3), r.get(4))))
            .collect();
        let want = data.transitions_by_bucket(width);
        if got != want {
            let diff: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .take(5)
                .map(|(k, v)| (k.clone(), *v, got.get(k).copied()))
                .collect();
            panic!(
                "{table}: {} rows, {} expected; first differences (key, want, got): {diff:#?}",
                got.len(),
                want.len()
            );
        }
    }
}

/// `rollup_funnel_hourly` (migration 0012) against the events: sessions per hour of their
/// first page_view and level reached.
async fn check_funnel_counters(c: &Client, data: &Dataset) {
    let mut firsts: BTreeMap<&str, [Option<OffsetDateTime>; 4]> = BTreeMap::new();
    for e in &data.events {
        let (Some(sid), Some(k)) = (
            e.session_id.as_deref(),
            FUNNEL.iter().position(|s| *s == e.event_name),
        ) else {
            continue;
        };
        let slot = &mut firsts.entry(sid).or_default()[k];
        if slot.is_none_or(|t| e.event_time < t) {
            *slot = Some(e.event_time);
        }
    }
    // Hourly (0012) and per minute (0017): sessions per bucket of their first page_view.
    for (table, minutes) in [("rollup_funnel_hourly", 60), ("rollup_funnel_minute", 1)] {
        let mut want: BTreeMap<(OffsetDateTime, i32), i64> = BTreeMap::new();
        for t in firsts.values() {
            let Some(t1) = t[0] else { continue };
            let mut level = 1;
            while level < 4 && matches!((t[level], t[level - 1]), (Some(b), Some(a)) if b > a) {
                level += 1;
            }
            let minute = (t1.hour() as i64 * 60 + t1.minute() as i64) / minutes * minutes;
            let bucket = analytics::day_start(t1) + time::Duration::minutes(minute);
            *want.entry((bucket, level as i32)).or_default() += 1;
        }
        let got: BTreeMap<(OffsetDateTime, i32), i64> = c
            .query(
                &format!("SELECT bucket, level, sessions FROM {table} WHERE sessions <> 0"),
                &[],
            )
            .await
            .expect(table)
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        assert!(want.len() > 1, "{table}: too few buckets to compare");
        assert_eq!(got, want, "{table}");
    }
}

/// `rollup_retention` (migration 0014) against the events: people per (cohort day, n), and
/// `edge_rebuild_retention()` (the from-scratch computation) gives the same; rows that went
/// back to zero are allowed and ignored.
async fn check_retention_counters(c: &Client, data: &Dataset) {
    let read = || async {
        c.query(
            "SELECT cohort, n, people FROM rollup_retention WHERE people <> 0",
            &[],
        )
        .await
        .expect("rollup_retention")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect::<BTreeMap<(time::Date, i16), i64>>()
    };
    let got = read().await;
    let want = data.retention_cells();
    if got != want {
        let diff: Vec<_> = want
            .iter()
            .map(|(k, v)| (*k, Some(*v), got.get(k).copied()))
            .chain(
                got.iter()
                    .filter(|(k, _)| !want.contains_key(*k))
                    .map(|(k, v)| (*k, None, Some(*v))),
            )
            .filter(|(_, w, g)| w != g)
            .take(8)
            .collect();
        panic!("rollup_retention: first differences (key, want, got): {diff:#?}");
    }
    c.batch_execute("BEGIN; SELECT edge_rebuild_retention();")
        .await
        .expect("rebuild");
    let rebuilt = read().await;
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(rebuilt, want, "edge_rebuild_retention()");
}

async fn edition(c: &Client) -> String {
    c.query_one("SELECT current_setting('timescaledb.license')", &[])
        .await
        .expect("license")
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn analyses_match_an_independent_computation() {
    let db = TestDb::migrated("agg").await.expect("db");
    let data = Dataset::generate(SEED, analytics::default_t0());
    let n = data.events.len() as i64;
    let c = CollectorOpts::new("agg")
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "100")
        .env("COLLECTOR_FORWARD__BATCH_EVENTS", "1000")
        // The dataset reaches 30 days back: within the default limit (2 years).
        .env("COLLECTOR_HEARTBEAT_INTERVAL_SECS", "1")
        .start()
        .expect("collector");
    post_all(&c, &data.events);
    assert!(
        eventually(Duration::from_secs(120), || async {
            db.count_events()
                .await
                .map(|(r, _)| r == n)
                .unwrap_or(false)
        })
        .await,
        "rows: {:?} of {n}",
        db.count_events().await
    );
    let client = db.client().await.expect("client");
    check_summaries(&client, &data).await;

    // Replays: the same events again, in a different batching and order. user_events
    // skips them; the summary tables must not move.
    let forwarded = buffer_stat(&c, "forwarded_total");
    let mut replay: Vec<Event> = data.events.iter().rev().step_by(3).cloned().collect();
    replay.extend(data.events.iter().take(2_000).cloned());
    post_all(&c, &replay);
    assert!(
        eventually(Duration::from_secs(60), || async {
            buffer_stat(&c, "buffered_events") == 0
                && buffer_stat(&c, "forwarded_total") >= forwarded + replay.len() as i64
        })
        .await,
        "replay not forwarded"
    );
    assert_eq!(db.count_events().await.expect("count"), (n, n));
    check_summaries(&client, &data).await;

    let ed = edition(&client).await;
    check_aggregates(&client, &data, &ed).await;
    check_queries(&db.url, &data, &ed);
    if ed == "timescale" {
        // Real-time aggregation answered above; now the materialized path.
        for view in CONTINUOUS_AGGREGATES {
            client
                .batch_execute(&format!(
                    "CALL refresh_continuous_aggregate('{view}', NULL, NULL)"
                ))
                .await
                .expect("refresh");
        }
        check_aggregates(&client, &data, "timescale, materialized").await;
        check_queries(&db.url, &data, "timescale, materialized");
    }

    // Live, breakdown and pages from the rollups (nothing at or after t0) and from raw
    // events (as of a time with later events).
    check_activity_paths(&client, &db.url, &data, &ed).await;

    check_person(&db.url, &data, "v-0001");
    check_person(&db.url, &data, "dev-0003");
    check_person(&db.url, &data, "old_3");
    check_drop_off(&db.url, &data);

    // The other formats print the same analysis.
    let csv = monitor(
        &db.url,
        Some(data.t0),
        &["funnel", "--since", "7d", "--format", "csv"],
    );
    let want = data.funnel(data.t0 - time::Duration::days(7), data.t0, &FUNNEL);
    assert!(
        csv.starts_with("section,step,name,sessions,step_conversion,overall_conversion\r\n"),
        "{csv}"
    );
    assert!(
        csv.contains(&format!(
            "funnel,1,page_view,{},1,1\r\n",
            want.steps[0].sessions
        )),
        "{csv}"
    );
    let table = monitor(&db.url, Some(data.t0), &["retention", "--since", "30d"]);
    assert!(table.starts_with("== retention\ncohort"), "{table}");

    // Fleet and database health, as of now, once a heartbeat reports the forwarded events.
    assert!(
        eventually(Duration::from_secs(30), || async {
            client
                .query_one(
                    "SELECT count(*) FROM collector_heartbeats WHERE forwarded_total >= $1",
                    &[&n],
                )
                .await
                .map(|r| r.get::<_, i64>(0) > 0)
                .unwrap_or(false)
        })
        .await,
        "no heartbeat with the forwarded total"
    );
    let fleet: Value = serde_json::from_str(&monitor(
        &db.url,
        None,
        &["collectors", "--since", "1h", "--format", "json"],
    ))
    .expect("collectors json");
    let rows = fleet["collectors"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{fleet}");
    assert_eq!(rows[0]["health"]["database_state"], "up", "{fleet}");
    assert!(
        rows[0]["health"]["forwarded_total"].as_i64().unwrap_or(0) >= n,
        "{fleet}"
    );
    assert!(!fleet["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .is_empty());

    let health: Value =
        serde_json::from_str(&monitor(&db.url, None, &["database", "--format", "json"]))
            .expect("database json");
    assert_eq!(health["edition"], ed.as_str(), "{health}");
    let kind = |name: &str| -> String {
        health["objects"]
            .as_array()
            .and_then(|o| o.iter().find(|x| x["name"] == name))
            .map(|x| x["kind"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(kind("user_events"), "hypertable");
    assert_eq!(kind("user_sessions"), "table");
    let agg_kind = if ed == "timescale" {
        "continuous aggregate"
    } else {
        "view"
    };
    assert_eq!(kind("user_session_funnel"), agg_kind);
    let chunks: i64 = client
        .query_one("SELECT count(*) FROM show_chunks('user_events')", &[])
        .await
        .expect("chunks")
        .get(0);
    assert_eq!(health["chunks"], chunks, "{health}");

    // The read-only role reads every analysis and cannot write.
    let role = format!("edge_ro_{}", &db.name[db.name.len() - 8..]);
    let admin = db.client().await.expect("admin");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN IN ROLE edge_monitor"))
        .await
        .expect("create login role");
    let ro_url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for what in QUERIES {
            monitor(&ro_url, Some(data.t0), &[what, "--since", "7d"]);
        }
    }));
    let ro = e2e::db::connect(&ro_url).await.expect("read-only connect");
    let write = ro
        .batch_execute("INSERT INTO actor_first_seen VALUES ('1', now())")
        .await;
    drop(ro);
    let _ = admin.batch_execute(&format!("DROP ROLE {role}")).await;
    assert!(
        result.is_ok(),
        "the read-only role could not run the analyses"
    );
    let code = write
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_string()));
    assert_eq!(code.as_deref(), Some("42501"), "the read-only role wrote");

    drop(c);
    let _ = db.drop_db().await;
}

/// The summary tables do not depend on how events are batched or replayed: the same events
/// cut into batches in one order, then all replayed in another, give the independent
/// expectation. (Direct SQL through `edge_staging`, as the forwarder does, to choose the
/// batching.)
#[tokio::test(flavor = "multi_thread")]
async fn summaries_are_idempotent_and_order_independent() {
    let db = TestDb::migrated("summ").await.expect("db");
    let mut data = Dataset::generate(SEED + 1, analytics::default_t0());
    let swap = relinked_visitor(data.t0);
    data.events.extend(swap.iter().cloned());
    let c = db.client().await.expect("client");
    prepare(&c).await.expect("staging");
    // The visitor's later link first, then the earlier one that replaces it.
    apply_batch(&c, &[&swap[0], &swap[1], &swap[2], &swap[3]]).await;
    apply_batch(&c, &[&swap[4]]).await;
    let mut shuffled = data.events.clone();
    let mut rng = e2e::gen::rng(9);
    use rand::seq::SliceRandom;
    shuffled.shuffle(&mut rng);
    for chunk in shuffled.chunks(700) {
        apply_batch(&c, &chunk.iter().collect::<Vec<_>>()).await;
    }
    check_summaries(&c, &data).await;
    let mut again = data.events.clone();
    again.reverse();
    for chunk in again.chunks(1_900) {
        apply_batch(&c, &chunk.iter().collect::<Vec<_>>()).await;
    }
    check_summaries(&c, &data).await;
    assert_eq!(
        data.people().links().get("swap-7").map(String::as_str),
        Some("early_u")
    );
    check_activity_paths(&c, &db.url, &data, "summaries").await;
    // Just before the visitor's late link and page view (both after `at`).
    let at = data.t0 - time::Duration::minutes(35);
    let later = events_from(&c, at).await;
    assert!(later > 0 && later <= MAX_LATER, "{later}");
    check_activity_queries(&db.url, &data, at, "summaries: link after the range");
    drop(c);
    let _ = db.drop_db().await;
}

/// One batch through `edge_staging` and `edge_merge_batch()`, as the forwarder does.
async fn apply_batch(c: &Client, events: &[&Event]) {
    let rows: Vec<Value> = events.iter().map(|e| e.to_columns()).collect();
    c.batch_execute("BEGIN").await.expect("begin");
    c.execute(
        "INSERT INTO edge_staging (event_id, user_id, session_id, event_type, event_name,
                                   page_url, device_type, country_code, event_time,
                                   app_user_id, anonymous_id, traits)
         SELECT event_id, user_id, session_id, event_type, event_name, page_url,
                device_type, country_code, event_time, app_user_id, anonymous_id, traits
         FROM jsonb_populate_recordset(NULL::user_events, $1::TEXT::JSONB)",
        &[&Value::Array(rows).to_string()],
    )
    .await
    .expect("stage");
    merge_staged(c).await.expect("batch");
    c.batch_execute("COMMIT").await.expect("commit");
}

/// A visitor (`swap-7`) linked to `late_u`, then to `early_u` by an earlier event (the
/// earlier link replaces the first): its anonymous events move from one user to the other.
fn relinked_visitor(t0: OffsetDateTime) -> Vec<Event> {
    let ev = |k: u128,
              user: Option<&str>,
              anon: Option<&str>,
              name: &str,
              url: Option<&str>,
              back_min: i64| Event {
        event_id: uuid::Uuid::from_u128(0x5a17_0000_0000_0000_0000_0000_0000_0000 + k),
        user_id: None,
        app_user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        traits: None,
        session_id: None,
        event_type: "track".into(),
        event_name: name.into(),
        page_url: url.map(str::to_string),
        device_type: Some("tablet".into()),
        country_code: Some("BR".into()),
        event_time: t0 - time::Duration::minutes(back_min),
    };
    vec![
        ev(1, None, Some("swap-7"), "page_view", Some("/swap"), 50),
        ev(
            2,
            None,
            Some("swap-7"),
            "page_view",
            Some("/swap"),
            26 * 60 + 7,
        ),
        ev(3, Some("late_u"), Some("swap-7"), "identify", None, 40),
        ev(4, Some("late_u"), None, "page_view", Some("/swap"), 30),
        ev(5, Some("early_u"), Some("swap-7"), "identify", None, 120),
    ]
}

/// Batches forwarded on 4 connections at once (as `COLLECTOR_FORWARD__CONNECTIONS=4`
/// does), shuffled, then replayed: no deadlock, and every summary and rollup equals the
/// independent expectation and the activity rollups their recomputation.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_batches_keep_the_rollups_exact() {
    let db = TestDb::migrated("conc").await.expect("db");
    let mut data = Dataset::generate(SEED + 2, analytics::default_t0());
    data.events.extend(relinked_visitor(data.t0));
    let mut shuffled = data.events.clone();
    let mut rng = e2e::gen::rng(11);
    use rand::seq::SliceRandom;
    shuffled.shuffle(&mut rng);
    let chunks: Vec<Vec<Event>> = shuffled.chunks(300).map(<[Event]>::to_vec).collect();
    for round in 0..2 {
        let mut tasks = Vec::new();
        for lane in 0..4 {
            let url = db.url.clone();
            let mine: Vec<Vec<Event>> = chunks.iter().skip(lane).step_by(4).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let c = e2e::db::connect(&url).await.expect("connect");
                prepare(&c).await.expect("staging");
                for chunk in &mine {
                    apply_batch(&c, &chunk.iter().collect::<Vec<_>>()).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("lane");
        }
        let c = db.client().await.expect("client");
        check_summaries(&c, &data).await;
        if round == 1 {
            check_activity_paths(&c, &db.url, &data, "concurrent").await;
        }
    }
    let _ = db.drop_db().await;
}

/// The retention counters stay exact when a person's cohort moves earlier (a late event),
/// when a visitor's link is replaced by an earlier one (their days move from one user to
/// another), when a visitor merges into a user seen before, and under replays; the query
/// leaves out people first seen after `to` on `to`'s day.
#[tokio::test(flavor = "multi_thread")]
async fn retention_counters_follow_late_events_and_relinks() {
    let db = TestDb::migrated("reten").await.expect("db");
    let mut data = Dataset::generate(SEED + 2, analytics::default_t0());
    let c = db.client().await.expect("client");
    prepare(&c).await.expect("staging");
    let apply = |events: Vec<Event>| {
        let c = &c;
        async move {
            let rows: Vec<Value> = events.iter().map(Event::to_columns).collect();
            c.batch_execute("BEGIN").await.expect("begin");
            c.execute(
                "INSERT INTO edge_staging (event_id, user_id, session_id, event_type, event_name,
                                           page_url, device_type, country_code, event_time,
                                           app_user_id, anonymous_id, traits)
                 SELECT event_id, user_id, session_id, event_type, event_name, page_url,
                        device_type, country_code, event_time, app_user_id, anonymous_id, traits
                 FROM jsonb_populate_recordset(NULL::user_events, $1::TEXT::JSONB)",
                &[&Value::Array(rows).to_string()],
            )
            .await
            .expect("stage");
            merge_staged(c).await.expect("batch");
            c.batch_execute("COMMIT").await.expect("commit");
        }
    };
    let mut shuffled = data.events.clone();
    let mut rng = e2e::gen::rng(11);
    use rand::seq::SliceRandom;
    shuffled.shuffle(&mut rng);
    for chunk in shuffled.chunks(500) {
        apply(chunk.to_vec()).await;
    }
    check_retention_counters(&c, &data).await;

    let t0 = data.t0;
    let template = data.events[0].clone();
    let event = |anon: Option<&str>, user: Option<&str>, at: OffsetDateTime| Event {
        event_id: uuid::Uuid::new_v4(),
        user_id: None,
        app_user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        traits: None,
        session_id: Some(format!("rl-{}", at.unix_timestamp())),
        event_time: at,
        ..template.clone()
    };
    let day = time::Duration::days(1);
    // A person seen before: the actor of an event in the middle of the history.
    let known = data
        .events
        .iter()
        .find(|e| e.event_time < t0 - day * 3 && e.app_user_id.is_some())
        .and_then(|e| e.app_user_id.clone())
        .expect("a known user");
    let steps: Vec<Vec<Event>> = vec![
        // A visitor, on two days, then linked to a user.
        vec![
            event(Some("rl-v"), None, t0 - day * 6),
            event(Some("rl-v"), None, t0 - day * 3),
            event(Some("rl-v"), Some("rl_late"), t0 - day * 2),
            event(None, Some("rl_late"), t0 - day),
        ],
        // An earlier event links the visitor to another user: its days move.
        vec![event(Some("rl-v"), Some("rl_early"), t0 - day * 4)],
        // A late event moves a cohort earlier, for a new and a known person.
        vec![
            event(None, Some("rl_early"), t0 - day * 9),
            event(None, Some(&known), t0 - day * 9 - time::Duration::hours(3)),
        ],
        // A visitor first seen before the known user merges into them.
        vec![
            event(Some("rl-w"), None, t0 - day * 10),
            event(Some("rl-w"), Some(&known), t0 - day * 2),
        ],
        // First seen after `to` on `to`'s day: in the counters, not in the answer.
        vec![event(None, Some("rl_after"), t0 + time::Duration::hours(1))],
    ];
    for step in steps {
        data.events.extend(step.iter().cloned());
        apply(step).await;
        check_retention_counters(&c, &data).await;
    }
    let mut again = data.events.clone();
    again.reverse();
    for chunk in again.chunks(1_900) {
        apply(chunk.to_vec()).await;
    }
    check_retention_counters(&c, &data).await;
    for since in [1, 7, 30] {
        let got: analytics::Retention =
            monitor_json(&db.url, t0, &["retention", "--since", &format!("{since}d")]);
        assert_eq!(
            got,
            data.retention(t0 - time::Duration::days(since), t0),
            "{since}d"
        );
    }
    drop(c);
    let _ = db.drop_db().await;
}

/// `collector maintain` (library call): on apache it drops only chunks entirely older than
/// the retention and prunes old sessions; on the Community edition it reports the policies
/// and drops nothing. Both refuse a retention inside the aggregates' refresh window.
#[tokio::test(flavor = "multi_thread")]
async fn maintenance_drops_only_expired_data() {
    use collector::database::{self, maintenance};
    let db = TestDb::migrated("maint").await.expect("db");
    let c = database::connect(&db.url).await.expect("connect");
    c.batch_execute(
        "INSERT INTO user_events (user_id, session_id, event_name, event_time)
         SELECT 1, 'old', 'page_view', now() - INTERVAL '40 days' + i * INTERVAL '1 minute'
         FROM generate_series(0, 9) i;
         INSERT INTO user_events (user_id, session_id, event_name, event_time)
         SELECT 2, 'new', 'page_view', now() - INTERVAL '1 day' + i * INTERVAL '1 minute'
         FROM generate_series(0, 9) i;
         INSERT INTO user_sessions (session_id, user_id, started_at, ended_at) VALUES
             ('old', 1, now() - INTERVAL '40 days', now() - INTERVAL '40 days'),
             ('new', 2, now() - INTERVAL '1 day', now() - INTERVAL '1 day');
         SELECT edge_rebuild_activity()",
    )
    .await
    .expect("seed rows");

    let short = maintenance::run(&c, Duration::from_secs(3 * 86_400)).await;
    let code = match short.expect_err("a 3-day retention is inside the refresh window") {
        database::DbError::Query(e) => e.code().map(|c| c.code().to_string()),
        other => panic!("unexpected error: {other}"),
    };
    assert_eq!(code.as_deref(), Some("22023"), "invalid_parameter_value");
    let ed = edition(&c).await;

    let report = maintenance::run(&c, Duration::from_secs(30 * 86_400))
        .await
        .expect("maintain");
    let left: Vec<String> = c
        .query(
            "SELECT DISTINCT session_id FROM user_events ORDER BY 1",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sessions: i64 = c
        .query_one("SELECT count(*) FROM user_sessions", &[])
        .await
        .expect("sessions")
        .get(0);
    if ed == "apache" {
        assert!(!report.dropped_chunks.is_empty(), "{report:?}");
        assert_eq!(report.sessions_pruned, 1);
        assert_eq!(left, vec!["new".to_string()]);
        assert_eq!(sessions, 1);
    } else {
        assert!(report.dropped_chunks.is_empty());
        assert!(
            report
                .policies
                .iter()
                .any(|p| p.contains("policy_retention")),
            "{report:?}"
        );
        assert_eq!(left.len(), 2);
        // The daily job's function, called here instead of waiting a day for the job.
        c.batch_execute("SELECT edge_prune_sessions(INTERVAL '30 days')")
            .await
            .expect("prune");
    }
    // Rows of a minute table inside / outside the 30-day retention.
    let by_age = |table: &'static str| {
        let c = &c;
        async move {
            c.query(
                &format!(
                    "SELECT bucket >= now() - INTERVAL '30 days', count(*)
                     FROM {table} GROUP BY 1 ORDER BY 1"
                ),
                &[],
            )
            .await
            .expect(table)
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect::<Vec<(bool, i64)>>()
        }
    };
    // Minute counters (0017) follow the raw retention: 10 minutes x 4 keys (every event, no
    // device, no country, page_view; no page URL).
    assert_eq!(
        by_age("activity_events_minute").await,
        vec![(true, 40)],
        "minute counters after maintenance"
    );
    // The people's minutes (0018) likewise: each user's last event, 4 keys, one minute.
    assert_eq!(
        by_age("activity_last_minute").await,
        vec![(true, 4)],
        "people's minutes after maintenance"
    );
    let _ = db.drop_db().await;
}

/// Latency of every `monitor query` at 1M and 10M events (ignored: minutes of setup).
///
/// `cargo test -p e2e --release --test aggregates -- --ignored query_latency --nocapture`
///
/// Environment: `BENCH_SIZES` (events, comma-separated; default `1000000,10000000`),
/// `BENCH_DAYS` (days of data, default 30), `BENCH_RUNS` (timed runs per query after one
/// warm-up, default 5), `BENCH_DATABASE_URL` (time a database filled earlier instead).
/// Sessions of 8 events; a quarter of sessions are a new user's first, the others belong
/// to an earlier user picked pseudo-randomly (so every day has a cohort and returning
/// users). Rows are generated server-side
/// (`INSERT … SELECT generate_series`, one day per batch, through `edge_staging` and
/// `edge_after_batch()` like the forwarder) into a private database, then each query runs
/// as the real binary (`monitor query … --format json`, process start and connection
/// included) with the default `--since` (24h) and with `--since 7d`; the minimum and
/// median are printed.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn query_latency() {
    let sizes: Vec<i64> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let env_i64 = |k: &str, d: i64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let days = env_i64("BENCH_DAYS", 30);
    let runs = env_i64("BENCH_RUNS", 5) as usize;
    // BENCH_DATABASE_URL: time the queries over a database filled earlier (kept as is).
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let c = e2e::db::connect(&url).await.expect("connect");
        let n: i64 = c
            .query_one("SELECT count(*) FROM user_events", &[])
            .await
            .expect("count")
            .get(0);
        println!("\n{n} events in {url}, {} edition", edition(&c).await);
        time_queries(&url, runs);
        return;
    }
    for size in sizes {
        let db = TestDb::migrated("bench").await.expect("db");
        let c = db.client().await.expect("client");
        let ed = edition(&c).await;
        let start = Instant::now();
        fill(&c, size, days).await;
        c.batch_execute("ANALYZE").await.expect("analyze");
        println!(
            "\n{size} events over {days} days, {ed} edition: generated in {:.0} s",
            start.elapsed().as_secs_f64()
        );
        if ed == "timescale" {
            let t = Instant::now();
            for view in CONTINUOUS_AGGREGATES {
                c.batch_execute(&format!(
                    "CALL refresh_continuous_aggregate('{view}', NULL, now() - INTERVAL '1 hour')"
                ))
                .await
                .expect("refresh");
            }
            println!(
                "refreshed the continuous aggregates in {:.0} s",
                t.elapsed().as_secs_f64()
            );
        }
        time_queries(&db.url, runs);
        drop(c);
        let _ = db.drop_db().await;
    }
}

/// Runs each `monitor query` (24h and 7d) `runs` times after one warm-up against `url` and
/// prints the minimum and median wall time.
fn time_queries(url: &str, runs: usize) {
    println!(
        "{:<12} {:>6} {:>10} {:>10}",
        "query", "since", "min ms", "median ms"
    );
    for what in QUERIES {
        for since in ["24h", "7d"] {
            let mut ms: Vec<f64> = (0..=runs)
                .map(|_| {
                    let t = Instant::now();
                    monitor(url, None, &[what, "--since", since, "--format", "json"]);
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .skip(1)
                .collect();
            ms.sort_by(f64::total_cmp);
            println!(
                "{what:<12} {since:>6} {:>10.0} {:>10.0}",
                ms.first().copied().unwrap_or(0.0),
                ms.get(ms.len() / 2).copied().unwrap_or(0.0)
            );
        }
    }
}

/// `size` seed-shaped events over the last `days` days, one day per transaction through
/// `edge_staging` and `edge_after_batch()`. Sessions of ~8 events; funnel steps in order.
async fn fill(c: &Client, size: i64, days: i64) {
    prepare(c).await.expect("staging");
    let per_day = size / days;
    for d in 0..days {
        let n = if d == days - 1 {
            size - per_day * (days - 1)
        } else {
            per_day
        };
        let offset = d * per_day;
        c.batch_execute("BEGIN").await.expect("begin");
        // 8 events per session, 20 s apart; sessions spread evenly over the day; funnel
        // drop-offs: 1/2 of sessions add to cart, 1/4 check out, 1/8 purchase.
        c.execute(
            "INSERT INTO edge_staging (event_id, user_id, session_id, event_type, event_name,
                 page_url, device_type, browser, os, country_code, event_time, received_at,
                 collector_id)
             SELECT gen_random_uuid(),
                    CASE WHEN s % 4 = 0 THEN s
                         ELSE ((s * 2654435761) % GREATEST(s, 1)) / 4 * 4 END,
                    's' || s,
                    CASE WHEN k = 0 THEN 'view' ELSE 'action' END,
                    CASE WHEN k = 4 AND s % 2 <> 0 THEN 'click'
                         WHEN k = 5 AND s % 4 <> 0 THEN 'scroll'
                         WHEN k = 6 AND s % 8 <> 0 THEN 'page_view'
                         ELSE (ARRAY['page_view', 'page_view', 'search', 'page_view',
                                     'add_to_cart', 'checkout_start', 'purchase', 'click'])[1 + k]
                    END,
                    '/p/' || (i % 500),
                    (ARRAY['desktop', 'mobile', 'tablet', 'other'])[1 + (s % 4)::INT],
                    'Chrome', 'Linux',
                    (ARRAY['US', 'CN', 'DE', 'FR', 'BR', 'IN'])[1 + (s % 6)::INT],
                    ts, ts, 'bench'
             FROM (
                 SELECT $1::INT8 + j AS i, ($1::INT8 + j) / 8 AS s, (j % 8)::INT AS k,
                        now() - make_interval(days => $3::INT)
                          + make_interval(secs => (j / 8) * 86400.0 / ceil($2::FLOAT8 / 8)
                                                   + (j % 8) * 20)
                          AS ts
                 FROM generate_series(0::INT8, $2::INT8 - 1) AS j
             ) g",
            &[&offset, &n, &((days - d) as i32)],
        )
        .await
        .expect("stage a day");
        merge_staged(c).await.expect("insert a day");
        c.batch_execute("COMMIT").await.expect("commit a day");
    }
}

#[test]
fn spans() {
    assert_eq!(e2e_span("90m"), time::Duration::minutes(90));
    assert_eq!(e2e_span("7d"), time::Duration::days(7));
}
