//! Real streaming replication for failover tests: a hot standby of a [`PrivateCluster`],
//! made with `pg_basebackup -R` by `deploy/local-db replica`, that a test promotes after
//! crashing the primary (`deploy/local-db crash`, a `-m immediate` stop).

use std::path::PathBuf;

use crate::db::{free_port, local_db, PrivateCluster};

/// A hot standby on its own port and directory, stopped and removed when dropped.
pub struct Standby {
    pub dir: PathBuf,
    pub port: u16,
    /// The server URL (database `analytics`, like a [`PrivateCluster`]'s).
    pub url: String,
}

impl Standby {
    /// Copies `primary` with `pg_basebackup -R` and starts streaming from it.
    pub fn of(primary: &PrivateCluster, name: &str) -> anyhow::Result<Standby> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("edge-e2e-{name}-standby-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut me = Standby {
            dir,
            port,
            url: String::new(),
        };
        me.url = local_db(&me.env(), &["replica", &primary.port.to_string()])?;
        Ok(me)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LOCAL_DB_DIR", self.dir.display().to_string()),
            ("LOCAL_DB_PORT", self.port.to_string()),
        ]
    }

    /// Stops streaming from the primary (an empty `primary_conninfo`, reloaded) and waits
    /// until its WAL receiver is gone: the primary goes on committing what this standby
    /// will not have, as an asynchronous standby that lags does. Its slot on the primary
    /// keeps the position it last confirmed.
    pub fn detach(&self) -> anyhow::Result<()> {
        local_db(
            &self.env(),
            &[
                "psql",
                "-X",
                "-q",
                "-d",
                "postgres",
                "-c",
                "ALTER SYSTEM SET primary_conninfo = ''",
            ],
        )?;
        local_db(
            &self.env(),
            &[
                "psql",
                "-X",
                "-q",
                "-d",
                "postgres",
                "-c",
                "SELECT pg_reload_conf()",
            ],
        )?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let n = local_db(
                &self.env(),
                &[
                    "psql",
                    "-X",
                    "-At",
                    "-d",
                    "postgres",
                    "-c",
                    "SELECT count(*) FROM pg_stat_wal_receiver",
                ],
            )?;
            if n == "0" {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the standby still streams 30 s after its primary_conninfo was cleared"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Promotes it to a primary; returns once it accepts writes.
    pub fn promote(&self) -> anyhow::Result<()> {
        local_db(&self.env(), &["promote"]).map(|_| ())
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let _ = local_db(&self.env(), &["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops a cluster at once, as a crash would (no shutdown checkpoint).
pub fn crash(primary: &PrivateCluster) -> anyhow::Result<()> {
    let env = vec![
        ("LOCAL_DB_DIR", primary.dir.display().to_string()),
        ("LOCAL_DB_PORT", primary.port.to_string()),
    ];
    local_db(&env, &["crash"]).map(|_| ())
}
