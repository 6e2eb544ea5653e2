//! The monitor on a hot standby, with real streaming replication (`deploy/local-db
//! replica`): every analysis answers read-only on the standby with the primary's numbers
//! once replay caught up (also for a login role of the read-only `edge_monitor`, and with
//! `target_session_attrs=read-only`); `monitor query database` lists the standby with its
//! lag on the primary and says "standby" with the replay lag on the standby; a standby
//! whose replay is paused makes the dashboard show the lag banner; and the dashboard on the
//! standby keeps answering when the primary crashes and the standby is promoted.
//!
//! Invariant: nothing is mocked: the real `monitor` binary (as a process, and in a
//! pseudo-terminal for the dashboard) against real PostgreSQL servers.

use std::{process::Command, time::Duration};

use anyhow::{bail, Context};
use collector::database::copy;
use e2e::{
    db::{connect, eventually, with_database, PrivateCluster, TestDb},
    proc,
    replication::{crash, Standby},
    tui::Tui,
};
use serde_json::Value;
use tokio_postgres::Client;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until `check` holds for the dashboard's screen.
fn wait(tui: &Tui, what: &str, check: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    tui.wait_until(what, WAIT, check)
}

/// The status line (the screen's second line).
fn status_line(screen: &str) -> &str {
    screen.lines().nth(1).unwrap_or("")
}

/// `monitor query <what> --since 30d` as a process; its stdout.
fn query(url: &str, what: &str, format: &str, as_of: &str) -> anyhow::Result<String> {
    let out = Command::new(proc::bin("monitor")?)
        .args(["query", what, "--since", "30d", "--format", format])
        .args(["--database-url", url])
        .env("MONITOR_AS_OF", as_of)
        .env_remove("DATABASE_URL")
        .output()?;
    if !out.status.success() {
        bail!(
            "monitor query {what} on {url} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn query_json(url: &str, what: &str, as_of: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&query(url, what, "json", as_of)?)?)
}

/// `url` with `user` instead of `postgres` and an extra connection parameter.
fn variant(url: &str, user: &str, param: &str) -> String {
    let url = url.replacen("postgres@", &format!("{user}@"), 1);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Loads `n` events over the last 30 days as the forwarder writes them (as
/// `monitor_tui/` does), plus one collector heartbeat.
async fn load_events(c: &Client, n: i64) -> anyhow::Result<()> {
    copy::prepare(c).await?;
    const COLUMNS: &str = "event_id, user_id, session_id, event_type, event_name, page_url, \
        referrer, device_type, browser, os, country_code, region, city, event_time, \
        properties, received_at, collector_id";
    c.batch_execute("BEGIN").await?;
    c.execute(
        &format!(
            "INSERT INTO edge_staging ({COLUMNS})
             SELECT gen_random_uuid(), u, 's-' || u || '-' || (g % 5),
                    CASE WHEN k = 0 THEN 'view' ELSE 'action' END,
                    (ARRAY['page_view','add_to_cart','checkout_start','purchase'])[k + 1],
                    'https://shop.example/p/' || (g % 50), 'https://search.example/',
                    (ARRAY['desktop','mobile','tablet','other'])[1 + g % 4],
                    'Chrome', 'Linux',
                    (ARRAY['US','CN','DE','FR','BR','IN'])[1 + g % 6], 'region', 'city',
                    t, jsonb_build_object('price', g % 500), t + interval '1 second',
                    'replica-1'
             FROM (SELECT g, 1 + (g * 7919) % 2000 AS u,
                          CASE WHEN g % 10 < 6 THEN 0 WHEN g % 10 < 8 THEN 1
                               WHEN g % 10 < 9 THEN 2 ELSE 3 END AS k,
                          now() - (interval '30 days') * (($1::float8 - g) / $1::float8) AS t
                   FROM generate_series(0::int8, $2::int8 - 1) g) s"
        ),
        &[&(n as f64), &n],
    )
    .await?;
    copy::merge_staged(c).await?;
    c.batch_execute("COMMIT").await?;
    e2e::db::refresh_continuous_aggregates(c).await?;
    Ok(())
}

/// Waits until the standby has replayed everything the primary has written so far.
async fn caught_up(primary: &Client, standby: &Client) -> anyhow::Result<()> {
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_lsn()::TEXT", &[])
        .await?
        .get(0);
    let ok = eventually(WAIT, || async {
        standby
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::TEXT::pg_lsn",
                &[&lsn],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
    })
    .await;
    if !ok {
        bail!("the standby did not replay up to {lsn} within {WAIT:?}");
    }
    Ok(())
}

/// A primary with a migrated database, a login role of `edge_monitor` and a hot standby.
struct Setup {
    // Declared first: the standby stops before its primary.
    standby: Standby,
    primary: PrivateCluster,
    name: String,
}

impl Setup {
    async fn start(name: &str, events: i64) -> anyhow::Result<Setup> {
        let primary = PrivateCluster::start(name)?;
        let db = TestDb::empty_on(&primary.url, name).await?;
        db.migrate().await?;
        let standby = Standby::of(&primary, name)?;
        let c = db.client().await?;
        // Loaded after the base backup: the data reaches the standby by streaming.
        load_events(&c, events).await?;
        c.batch_execute("CREATE ROLE e2e_oncall LOGIN IN ROLE edge_monitor")
            .await?;
        // The database lives as long as the private clusters, not this handle.
        let name = db.name.clone();
        db.keep();
        Ok(Setup {
            standby,
            primary,
            name,
        })
    }

    fn primary_url(&self) -> String {
        with_database(&self.primary.url, &self.name)
    }

    fn standby_url(&self) -> String {
        with_database(&self.standby.url, &self.name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_analysis_on_a_standby_gives_the_primarys_numbers_and_shows_replication(
) -> anyhow::Result<()> {
    let s = Setup::start("replica_read", 20_000).await?;
    let (purl, surl) = (s.primary_url(), s.standby_url());
    let primary = connect(&purl).await?;
    let standby = connect(&surl).await?;
    caught_up(&primary, &standby).await?;
    let as_of =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;

    // (a) Every database analysis (not the Tail, which collectors feed), on the standby as
    // the superuser, as a login role of the read-only edge_monitor and through
    // target_session_attrs=read-only: the primary's numbers.
    let oncall_standby = variant(&surl, "e2e_oncall", "target_session_attrs=read-only");
    let any_standby = variant(&surl, "postgres", "target_session_attrs=any");
    for a in monitor::analysis::Analysis::queried() {
        let name = a.name();
        let on_primary = query_json(&purl, name, &as_of)?;
        for url in [&surl, &oncall_standby, &any_standby] {
            let on_standby = query_json(url, name, &as_of)?;
            if name == "database" {
                for key in ["edition", "extension_version", "chunks"] {
                    assert_eq!(on_standby[key], on_primary[key], "database.{key} on {url}");
                }
                // Sizes may differ (the free space map is not replicated exactly).
                let objects = |v: &Value| -> Vec<(Value, Value)> {
                    v["objects"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|o| (o["name"].clone(), o["kind"].clone()))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                assert_eq!(
                    objects(&on_standby),
                    objects(&on_primary),
                    "objects on {url}"
                );
            } else {
                assert_eq!(on_standby, on_primary, "{name} on {url}");
            }
            // The table format works there too.
            query(url, name, "table", &as_of)?;
        }
        eprintln!("{name}: same on the standby");
    }
    let live = query_json(&surl, "live", &as_of)?;
    assert!(
        live["active_users_24h"].as_i64().unwrap_or(0) > 0,
        "no data: {live}"
    );

    // (b) The primary lists its standby with the lag; the standby says it is one.
    let ok = eventually(WAIT, || async {
        query_json(&purl, "database", &as_of)
            .map(|v| {
                v["replication"]["standbys"].as_array().is_some_and(|a| {
                    a.len() == 1
                        && a[0]["visible"] == true
                        && a[0]["state"] == "streaming"
                        && a[0]["replay_lag_bytes"].is_i64()
                })
            })
            .unwrap_or(false)
    })
    .await;
    assert!(
        ok,
        "the primary does not list a streaming standby: {}",
        query(&purl, "database", "json", &as_of)?
    );
    let on_primary = query_json(&purl, "database", &as_of)?;
    assert_eq!(on_primary["replication"]["in_recovery"], false);
    let table = query(&purl, "database", "table", &as_of)?;
    assert!(table.contains("primary"), "{table}");
    assert!(table.contains("streaming"), "{table}");
    // edge_monitor is not in pg_monitor: the standby is listed, its lag hidden.
    let oncall_primary = variant(&purl, "e2e_oncall", "connect_timeout=10");
    let hidden = query_json(&oncall_primary, "database", &as_of)?;
    assert_eq!(
        hidden["replication"]["standbys"][0]["visible"], false,
        "{hidden}"
    );
    let table = query(&oncall_primary, "database", "table", &as_of)?;
    assert!(table.contains("not visible to this role"), "{table}");

    let on_standby = query_json(&surl, "database", &as_of)?;
    assert_eq!(
        on_standby["replication"]["in_recovery"], true,
        "{on_standby}"
    );
    assert!(
        on_standby["replication"]["replay_lag_seconds"].is_f64(),
        "{on_standby}"
    );
    assert!(
        on_standby["replication"]["last_replay_at"].is_string(),
        "{on_standby}"
    );
    let table = query(&oncall_standby, "database", "table", &as_of)?;
    assert!(table.contains("standby"), "{table}");
    assert!(table.contains("replay_lag_seconds"), "{table}");

    // A standby whose replay is paused falls behind: the dashboard on it shows the banner
    // with every view, and the lag is in `monitor query database`.
    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await?;
    primary
        .batch_execute("CREATE TABLE e2e_lag AS SELECT 1 AS x")
        .await?;
    let tui = Tui::start(
        &[
            "--database-url",
            &oncall_standby,
            "--refresh",
            "1s",
            "--max-replica-lag",
            "1s",
        ],
        160,
        48,
    )?;
    let screen = wait(&tui, "the lag banner", |s| {
        s.contains("replica lags") && s.contains("numbers are older than shown")
    })?;
    assert!(status_line(&screen).contains("standby"), "{screen}");
    let lagging = query_json(&surl, "database", &as_of)?;
    assert!(
        lagging["replication"]["replay_lag_seconds"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "{lagging}"
    );
    assert!(
        lagging["replication"]["receive_replay_gap_bytes"]
            .as_i64()
            .unwrap_or(0)
            > 0,
        "{lagging}"
    );
    // Replay resumes: the banner goes.
    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await?;
    caught_up(&primary, &standby).await?;
    wait(&tui, "the banner gone", |s| !s.contains("replica lags"))?;
    drop(tui);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_on_a_standby_keeps_answering_through_its_promotion() -> anyhow::Result<()> {
    let s = Setup::start("replica_promote", 2_000).await?;
    let (purl, surl) = (s.primary_url(), s.standby_url());
    {
        let primary = connect(&purl).await?;
        let standby = connect(&surl).await?;
        caught_up(&primary, &standby).await?;
    }
    let as_of =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let before = query_json(&surl, "breakdown", &as_of)?;

    let tui = Tui::start(&["--database-url", &surl, "--refresh", "1s"], 160, 48)?;
    wait(&tui, "the standby in the status line", |s| {
        status_line(s).contains("standby") && s.contains("updated")
    })?;

    crash(&s.primary)?;
    s.standby.promote()?;

    // The same connection now reads a primary: the status line drops "standby", the
    // refreshes keep coming (the update time moves) and no banner says the database is gone.
    let screen = wait(&tui, "a primary", |s| {
        !status_line(s).contains("standby") && s.contains("updated")
    })?;
    let updated = |s: &str| {
        status_line(s)
            .split_whitespace()
            .skip_while(|w| *w != "updated")
            .nth(1)
            .map(str::to_string)
    };
    let first = updated(&screen).context("no update time")?;
    let screen = wait(&tui, "a later refresh", |s| {
        updated(s).is_some_and(|t| t != first)
    })?;
    assert!(!screen.contains("unreachable"), "{screen}");
    drop(tui);

    // `monitor query` on the promoted server: a primary, with the same numbers.
    let db = query_json(&surl, "database", &as_of)?;
    assert_eq!(db["replication"]["in_recovery"], false, "{db}");
    let table = query(&surl, "database", "table", &as_of)?;
    assert!(table.contains("primary"), "{table}");
    assert_eq!(query_json(&surl, "breakdown", &as_of)?, before);
    Ok(())
}
