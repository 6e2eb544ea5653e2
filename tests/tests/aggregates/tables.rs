//! Every aggregate, summary table and rollup, row by row, against the events.

use super::*;

/// The content of each aggregate, row by row, against the events.
pub(crate) async fn check_aggregates(c: &Client, data: &Dataset, label: &str) {
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

/// `user_attributes` and `user_sessions` against the events.
pub(crate) async fn check_summaries(c: &Client, data: &Dataset) {
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
pub(crate) async fn check_identity(c: &Client, data: &Dataset) {
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
pub(crate) async fn check_transitions(c: &Client, data: &Dataset) {
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
pub(crate) async fn check_funnel_counters(c: &Client, data: &Dataset) {
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
pub(crate) async fn check_retention_counters(c: &Client, data: &Dataset) {
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
