//! `collector maintain`: expired data only.

use super::*;

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
