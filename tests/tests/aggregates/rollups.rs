//! The rollups under other batchings, concurrent batches, late events and relinks.

use super::*;

/// One batch through `edge_staging` and `edge_merge_batch()`, as the forwarder does.
pub(crate) async fn apply_batch(c: &Client, events: &[&Event]) {
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
pub(crate) fn relinked_visitor(t0: OffsetDateTime) -> Vec<Event> {
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
