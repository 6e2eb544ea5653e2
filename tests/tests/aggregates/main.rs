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
//!
//! Files: `support.rs` (running the binaries, comparing), `queries.rs` (each `monitor query`
//! against the dataset), `tables.rs` (each summary table and rollup against the events),
//! `rollups.rs` (batching, concurrency, relinks), `maintenance.rs`, `latency.rs` (ignored).

mod latency;
mod maintenance;
mod queries;
mod rollups;
mod support;
mod tables;

use queries::*;
use rollups::{apply_batch, relinked_visitor};
use support::*;
use tables::*;

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
