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
}
