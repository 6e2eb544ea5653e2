//! Every `monitor query` (the real binary) against the independent computation.

use super::*;

/// Every analysis as of `t0`, against the dataset.
pub(crate) fn check_queries(url: &str, data: &Dataset, label: &str) {
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
pub(crate) fn pages_of(url: &str, at: OffsetDateTime, since: &str) -> Vec<(String, i64, i64)> {
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
pub(crate) async fn events_from(c: &Client, t: OffsetDateTime) -> i64 {
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
pub(crate) const MAX_LATER: i64 = 1000;

/// [`check_activity_queries`] on each path: as of `t0` (nothing later: the rollups alone),
/// 4.5 s before it (a few later events, corrected), and 3 days before (raw events).
pub(crate) async fn check_activity_paths(c: &Client, url: &str, data: &Dataset, label: &str) {
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
pub(crate) fn check_activity_queries(url: &str, data: &Dataset, at: OffsetDateTime, label: &str) {
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
pub(crate) fn e2e_span(s: &str) -> time::Duration {
    let (n, unit) = s.split_at(s.len() - 1);
    let n: i64 = n.parse().expect("span");
    match unit {
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        _ => time::Duration::days(n),
    }
}

/// `monitor query user ID` against the dataset: the person `id` resolves to, their
/// anonymous ids, merged traits, first/last seen and newest events.
pub(crate) fn check_person(url: &str, data: &Dataset, id: &str) {
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
pub(crate) fn check_drop_off(url: &str, data: &Dataset) {
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

#[test]
fn spans() {
    assert_eq!(e2e_span("90m"), time::Duration::minutes(90));
    assert_eq!(e2e_span("7d"), time::Duration::days(7));
}
