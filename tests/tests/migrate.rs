//! `collector migrate` against the real database: apply, re-apply, concurrent migrators,
//! the hypertable and its key, edition reporting, and a clear error when unreachable.

use e2e::{db::TestDb, proc::collector};

fn migrate(url: &str, json: bool) -> (i32, String, String) {
    let mut args = vec!["migrate", "--database-url", url];
    if json {
        args.push("--json");
    }
    collector(&args, &[]).expect("run collector migrate")
}

fn migration_files() -> usize {
    let mut versions: Vec<String> = std::fs::read_dir(e2e::repo_root().join("migrations"))
        .expect("migrations dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| n.split('_').next().unwrap_or_default().to_string())
        .collect();
    versions.sort();
    versions.dedup();
    versions.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn applies_once_and_reapply_is_a_no_op() {
    let db = TestDb::empty("migrate").await.expect("db");
    let (code, out, err) = migrate(&db.url, false);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("applied 0001_user_events.sql"), "{out}");
    assert!(
        out.contains(&format!(
            "{} migration(s) applied, 0 already applied",
            migration_files()
        )),
        "{out}"
    );

    let (code, out, _) = migrate(&db.url, true);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json report");
    assert_eq!(report["applied"].as_array().map(Vec::len), Some(0), "{out}");
    assert_eq!(
        report["already_applied"].as_u64(),
        Some(migration_files() as u64)
    );

    let c = db.client().await.expect("client");
    let hyper = c
        .query_one(
            "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'user_events'",
            &[],
        )
        .await
        .expect("hypertables");
    assert_eq!(hyper.get::<_, i64>(0), 1, "user_events is a hypertable");
    let key = c
        .query_one(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'user_events_event_id_time_key'",
            &[],
        )
        .await
        .expect("unique key");
    assert_eq!(key.get::<_, String>(0), "UNIQUE (event_id, event_time)");
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn four_concurrent_migrators_apply_each_migration_once() {
    let db = TestDb::empty("migrate4").await.expect("db");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || migrate(&url, true))
        })
        .collect();
    let mut applied = 0;
    for h in handles {
        let (code, out, err) = h.join().expect("thread");
        assert_eq!(code, 0, "{out}\n{err}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        applied += report["applied"].as_array().map(Vec::len).unwrap_or(0);
    }
    assert_eq!(
        applied,
        migration_files(),
        "each migration applied by exactly one process"
    );
    let c = db.client().await.expect("client");
    let rows = c
        .query_one(
            "SELECT count(*), count(DISTINCT version) FROM schema_migrations",
            &[],
        )
        .await
        .expect("schema_migrations");
    assert_eq!(rows.get::<_, i64>(0), migration_files() as i64);
    assert_eq!(rows.get::<_, i64>(1), migration_files() as i64);
    db.drop_db().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_the_edition_the_server_runs() {
    let db = TestDb::empty("edition").await.expect("db");
    let (code, out, _) = migrate(&db.url, true);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let c = db.client().await.expect("client");
    let license: String = c
        .query_one("SHOW timescaledb.license", &[])
        .await
        .expect("license")
        .get(0);
    assert_eq!(report["edition"].as_str(), Some(license.as_str()));
    let recorded: String = c
        .query_one("SELECT min(edition) FROM schema_migrations", &[])
        .await
        .expect("edition column")
        .get(0);
    assert_eq!(recorded, license);
    let (_, text, _) = migrate(&db.url, false);
    assert!(text.contains(&format!("({license} edition)")), "{text}");
    db.drop_db().await.expect("drop");
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let port = e2e::db::free_port();
    let (code, out, err) = migrate(
        &format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
        false,
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_url_is_a_clear_error() {
    let (code, _, err) = collector(&["migrate"], &[]).expect("run");
    assert_ne!(code, 0);
    assert!(err.contains("no database URL"), "{err}");
}

#[test]
fn the_documented_config_file_loads() {
    let path = e2e::repo_root().join("deploy/collector.toml");
    let cfg = collector::config::Config::load(Some(&path), &Default::default())
        .expect("deploy/collector.toml loads");
    assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:9100");
    let defaults = collector::config::Config::default();
    assert_eq!(
        serde_json::to_value(&cfg.limits).ok(),
        serde_json::to_value(&defaults.limits).ok(),
        "file documents the defaults"
    );
    assert_eq!(
        serde_json::to_value(&cfg.forward).ok(),
        serde_json::to_value(&defaults.forward).ok()
    );
    assert_eq!(
        serde_json::to_value(&cfg.buffer).ok(),
        serde_json::to_value(&defaults.buffer).ok()
    );
    assert_eq!(
        serde_json::to_value(&cfg.geo).ok(),
        serde_json::to_value(&defaults.geo).ok()
    );
    assert_eq!(
        serde_json::to_value(&cfg.tls).ok(),
        serde_json::to_value(&defaults.tls).ok()
    );
}

/// A database as the previous release left it (migrations up to 0009) holding events and
/// summaries upgrades in place: no event is lost, the old numeric users keep their first
/// seen and activity days (now per actor, as text), `user_attributes` reads as before, and a
/// collector then lands string and anonymous ids beside the old rows. `UPGRADE_EVENTS` sets
/// the size (default 50,000); the migration's time is printed.
#[tokio::test(flavor = "multi_thread")]
async fn upgrades_a_database_holding_events_in_place() {
    use std::time::{Duration, Instant};

    use e2e::{client::post_json, db::eventually, proc::CollectorOpts};
    use serde_json::json;

    let n: i64 = std::env::var("UPGRADE_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let db = TestDb::empty("upgrade").await.expect("db");
    let (code, out, err) = collector(&["migrate", "--database-url", &db.url, "--to", "0009"], &[])
        .expect("run collector migrate --to");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("0010"), "stopped at 0009: {out}");
    let c = db.client().await.expect("client");
    // Loaded as release 0009's forwarder did: staged, inserted, then its per-batch upserts.
    c.batch_execute(&format!(
        "BEGIN;
         CREATE TEMP TABLE edge_staging ON COMMIT DROP AS
         SELECT gen_random_uuid() AS event_id, (i % 5000)::INT8 AS user_id,
                's' || (i / 4) AS session_id, 'view'::TEXT AS event_type,
                (ARRAY['page_view','add_to_cart','checkout_start','purchase'])[1 + i % 4] AS event_name,
                '/p/' || (i % 30) AS page_url, 'desktop'::TEXT AS device_type,
                'FR'::TEXT AS country_code,
                date_trunc('second', now()) - (i % (20 * 86400)) * INTERVAL '1 second' AS event_time
         FROM generate_series(1, {n}) i;
         INSERT INTO user_events (event_id, user_id, session_id, event_type, event_name, page_url,
                                  device_type, country_code, event_time)
         SELECT event_id, user_id, session_id, event_type, event_name, page_url, device_type,
                country_code, event_time FROM edge_staging;
         SELECT edge_after_batch();
         COMMIT;"
    ))
    .await
    .expect("load as 0009");
    let before: Vec<(i64, String)> = c
        .query(
            "SELECT user_id, first_seen::TEXT FROM user_attributes ORDER BY user_id",
            &[],
        )
        .await
        .expect("user_attributes before")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(before.len(), 5000);

    let started = Instant::now();
    let (code, out, err) = migrate(&db.url, false);
    let took = started.elapsed();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0010_identity.sql"), "{out}");
    eprintln!("migrations 0010 and 0011 on {n} events: {took:.2?}");

    let count: i64 = c
        .query_one("SELECT count(*) FROM user_events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, n, "no event lost");
    let after: Vec<(i64, String)> = c
        .query(
            "SELECT user_id, first_seen::TEXT FROM user_attributes ORDER BY user_id",
            &[],
        )
        .await
        .expect("user_attributes after")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(after, before, "user_attributes reads as before");
    let check: (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM actor_first_seen),
                        (SELECT count(*) FROM (SELECT DISTINCT time_bucket(INTERVAL '1 day', event_time),
                                                 user_id FROM user_events) d)
                        - (SELECT count(*) FROM actor_daily)",
                &[],
            )
            .await
            .expect("identity tables");
        (r.get(0), r.get(1))
    };
    assert_eq!(check, (5000, 0), "actors and their days from the old rows");
    let people: i64 = c
        .query_one("SELECT count(DISTINCT person) FROM person_events", &[])
        .await
        .expect("people")
        .get(0);
    assert_eq!(people, 5000, "an old row's person is its numeric user");
    // The transition counters are filled from the old rows (each session 's' || i / 4).
    let (counted, raw): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT COALESCE(sum(transitions), 0)::INT8 FROM rollup_transitions_hourly),
                        (SELECT count(*) FROM user_events) - (SELECT count(DISTINCT session_id) FROM user_events)",
                &[],
            )
            .await
            .expect("transitions");
        (r.get(0), r.get(1))
    };
    assert_eq!(
        counted, raw,
        "one transition per event after its session's first"
    );
    // The activity rollups are filled from the old rows: every person once under "all
    // events", every event once per event name.
    let (people, events): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM activity_person_last WHERE dim = 0),
                        (SELECT COALESCE(sum(events), 0)::INT8 FROM activity_events_daily
                         WHERE dim = 3)",
                &[],
            )
            .await
            .expect("activity");
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (people, events),
        (5000, n),
        "activity rollups from the old rows"
    );

    // The retention counters (0014) from the old rows: per numeric user, the cohort is the
    // day of their first event and the cells the days 0..30 after it they were active.
    let retention_from_raw = "SELECT count(*) FROM (
             (SELECT cohort, n, people FROM rollup_retention WHERE people <> 0
              EXCEPT ALL
              SELECT cohort, n::SMALLINT, count(*) FROM (
                  SELECT f.cohort, -1 AS n FROM firsts f
                  UNION ALL
                  SELECT f.cohort, d.day - f.cohort FROM firsts f JOIN days d USING (person)
                  WHERE d.day - f.cohort BETWEEN 0 AND 30) c
              GROUP BY 1, 2)
             UNION ALL
             (SELECT cohort, n::SMALLINT, count(*) FROM (
                  SELECT f.cohort, -1 AS n FROM firsts f
                  UNION ALL
                  SELECT f.cohort, d.day - f.cohort FROM firsts f JOIN days d USING (person)
                  WHERE d.day - f.cohort BETWEEN 0 AND 30) c
              GROUP BY 1, 2
              EXCEPT ALL
              SELECT cohort, n, people FROM rollup_retention WHERE people <> 0)
         ) diff";
    let retention_check = format!(
        "WITH firsts AS (SELECT person, min((event_time AT TIME ZONE 'UTC')::DATE) AS cohort
                         FROM person_events WHERE person IS NOT NULL GROUP BY 1),
              days AS (SELECT DISTINCT person, (event_time AT TIME ZONE 'UTC')::DATE AS day
                       FROM person_events WHERE person IS NOT NULL)
         {retention_from_raw}"
    );
    let differ: i64 = c
        .query_one(&retention_check, &[])
        .await
        .expect("retention counters")
        .get(0);
    assert_eq!(differ, 0, "rollup_retention from the old rows");

    // New events beside the old ones: a string id, an anonymous visitor who signs up as a
    // known numeric user (linking), and the old user's history intact.
    let col = CollectorOpts::new("upgrade")
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "50")
        .start()
        .expect("collector");
    let batch = json!([
        {"event_name": "page_view", "user_id": "usr_8f3a2c"},
        {"event_name": "page_view", "anonymous_id": "a-1"},
        {"event_name": "identify", "anonymous_id": "a-1", "user_id": 42, "traits": {"plan": "pro"}},
    ]);
    let r = post_json(col.ingest, "/v1/batch", &batch).expect("post");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        eventually(Duration::from_secs(30), || async {
            db.count_events()
                .await
                .map(|(rows, _)| rows == n + 3)
                .unwrap_or(false)
        })
        .await,
        "new events landed"
    );
    let people: i64 = c
        .query_one("SELECT count(DISTINCT person) FROM person_events", &[])
        .await
        .expect("people")
        .get(0);
    assert_eq!(people, 5001, "the visitor is user 42; usr_8f3a2c is new");
    let link: String = c
        .query_one(
            "SELECT app_user_id FROM identity_links WHERE anonymous_id = 'a-1'",
            &[],
        )
        .await
        .expect("link")
        .get(0);
    assert_eq!(link, "42");
    // The visitor's day moved to user 42 in the counters too.
    let differ: i64 = c
        .query_one(&retention_check, &[])
        .await
        .expect("retention counters after the link")
        .get(0);
    assert_eq!(differ, 0, "rollup_retention after new events and a link");
    // The new batch (a link included) went through the activity rollups exactly.
    if let Some(diff) = e2e::activity::differences_from_rebuild(&c)
        .await
        .expect("activity rebuild")
    {
        panic!("activity rollups after the upgrade:\n{diff}");
    }
    drop(col);
    drop(c);
    db.drop_db().await.expect("drop");
}
