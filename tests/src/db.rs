//! The real database for tests.
//!
//! The shared cluster comes from `DATABASE_URL` (a server URL; its database name is
//! ignored) or from `deploy/local-db start`. Each test gets its own database, migrated by
//! the collector's migrator. Tests that stop the server use a [`PrivateCluster`].

use std::{
    path::PathBuf,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio_postgres::{Client, NoTls};

static SERVER: OnceLock<String> = OnceLock::new();

/// The URL of the shared test server, starting it on first use.
pub fn server_url() -> String {
    SERVER
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => local_db(&[], &["start"])
                .unwrap_or_else(|e| panic!("cannot start the local database: {e:#}")),
        })
        .clone()
}

/// Runs `deploy/local-db ARGS…` with `env`; its stdout (a URL, for `start`).
pub(crate) fn local_db(env: &[(&str, String)], args: &[&str]) -> anyhow::Result<String> {
    let script = crate::repo_root().join("deploy/local-db");
    let cmd = args.join(" ");
    let mut c = Command::new("bash");
    c.arg(&script).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "deploy/local-db {cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{db}{query}")
}

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connect {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A fresh database on a server. Dropped with its handle ([`TestDb::drop_db`] to see the
/// error, the `Drop` impl otherwise), except while the test panics: a failed test's database
/// is left for inspection. Why drop them at all: every database with TimescaleDB holds a
/// background-job scheduler, and on the Community edition a cluster full of leftover test
/// databases ran out of `timescaledb.max_background_workers`, so no job ran anywhere.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server: String,
    /// Whether this handle drops the database when it goes.
    owned: bool,
}

impl TestDb {
    /// Creates `e2e_<prefix>_<random>` on the shared server, without migrating it.
    pub async fn empty(prefix: &str) -> anyhow::Result<TestDb> {
        Self::empty_on(&server_url(), prefix).await
    }

    /// Creates and migrates a database on the shared server.
    pub async fn migrated(prefix: &str) -> anyhow::Result<TestDb> {
        let db = Self::empty(prefix).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// A database that already exists on `server` (e.g. replicated to a standby).
    pub fn existing(server: &str, name: &str) -> TestDb {
        TestDb {
            name: name.to_string(),
            url: with_database(server, name),
            server: server.to_string(),
            owned: false,
        }
    }

    pub async fn empty_on(server: &str, prefix: &str) -> anyhow::Result<TestDb> {
        let name = format!("e2e_{}_{}", prefix, uuid::Uuid::new_v4().simple()).to_lowercase();
        let admin = connect(&with_database(server, "postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(TestDb {
            url: with_database(server, &name),
            name,
            server: server.to_string(),
            owned: true,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut c = collector::database::connect(&self.url).await?;
        collector::database::migrate::run(&mut c).await?;
        Ok(())
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        connect(&self.url).await
    }

    /// Rows in `user_events` and distinct event_ids.
    pub async fn count_events(&self) -> anyhow::Result<(i64, i64)> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT count(*), count(DISTINCT event_id) FROM user_events",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    pub async fn drop_db(mut self) -> anyhow::Result<()> {
        self.owned = false;
        let admin = connect(&with_database(&self.server, "postgres")).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }

    /// Leaves the database on the server after this handle goes; returns its URL.
    pub fn keep(mut self) -> String {
        self.owned = false;
        self.url.clone()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned || std::thread::panicking() {
            return;
        }
        // Blocking and bounded (connect timeout; the statement only waits for the forced
        // disconnects); a failure leaves the database, as before.
        let _ = std::process::Command::new("psql")
            .arg(with_database(&self.server, "postgres"))
            .args(["-qX", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A cluster of a test's own, on its own port and directory, that the test may stop and
/// start to inject a database outage.
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub url: String,
}

impl PrivateCluster {
    pub fn start(name: &str) -> anyhow::Result<PrivateCluster> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("edge-e2e-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut me = PrivateCluster {
            url: String::new(),
            dir,
            port,
        };
        me.url = local_db(&me.env(), &["start"])?;
        Ok(me)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LOCAL_DB_DIR", self.dir.display().to_string()),
            ("LOCAL_DB_PORT", self.port.to_string()),
        ]
    }

    pub fn stop(&self) -> anyhow::Result<()> {
        local_db(&self.env(), &["stop"]).map(|_| ())
    }

    pub fn restart(&self) -> anyhow::Result<()> {
        local_db(&self.env(), &["start"]).map(|_| ())
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = local_db(&self.env(), &["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Materialises every continuous aggregate over all time, as their refresh policies would
/// have by now (Community edition; on apache there are none and this does nothing).
/// Returns how many were refreshed.
pub async fn refresh_continuous_aggregates(c: &Client) -> anyhow::Result<usize> {
    let caggs = c
        .query(
            "SELECT format('%I.%I', view_schema, view_name)
             FROM timescaledb_information.continuous_aggregates",
            &[],
        )
        .await
        .context("list continuous aggregates")?;
    for row in &caggs {
        let name: String = row.get(0);
        // `name` comes from the catalog, quoted by format('%I'); CALL takes no parameters.
        c.batch_execute(&format!(
            "CALL refresh_continuous_aggregate('{name}', NULL, NULL)"
        ))
        .await
        .with_context(|| format!("refresh {name}"))?;
    }
    Ok(caggs.len())
}

/// A TCP port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(54400)
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}
