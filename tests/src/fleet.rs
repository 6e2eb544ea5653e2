//! A fleet of real collectors on loopback forwarding into one database, and the probes a
//! fan-in measurement needs: the fleet's summed buffer (each collector's admin
//! `/v1/buffer`), CPU time of processes from `/proc/<pid>/stat`, and the CPU time of a
//! PostgreSQL cluster and of one database's backends.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use anyhow::Context;
use tokio_postgres::Client;

use crate::{
    client,
    proc::{self, CollectorOpts, CollectorProc},
};

/// `n` collectors, each with its own buffer directory and `collector_id` (`<name>-<i>`).
pub struct Fleet {
    pub collectors: Vec<CollectorProc>,
    /// The directory holding every collector's buffer (and log).
    pub dir: PathBuf,
}

/// What the fleet's buffers hold, summed over its collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BufferTotals {
    pub events: u64,
    /// Logical bytes (`buffered_bytes`, what `buffer.max_bytes` limits).
    pub bytes: u64,
    /// Bytes on disk (`buffer_disk_bytes`).
    pub disk_bytes: u64,
}

impl BufferTotals {
    /// Logical bytes per buffered event, `None` when the buffers are empty.
    pub fn bytes_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.bytes as f64 / self.events as f64)
    }
}

impl Fleet {
    /// Starts `n` collectors forwarding to `database_url`; `opts` adds settings to each.
    pub fn start(
        name: &str,
        n: usize,
        database_url: &str,
        opts: impl Fn(CollectorOpts) -> CollectorOpts,
    ) -> anyhow::Result<Fleet> {
        let dir = proc::temp_dir(name);
        let collectors = (0..n)
            .map(|i| {
                opts(CollectorOpts::in_dir(dir.join(format!("buffer{i}"))))
                    .database(database_url)
                    .env("COLLECTOR_COLLECTOR_ID", format!("{name}-{i}"))
                    .start()
                    .with_context(|| format!("start collector {i} of {n}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Fleet { collectors, dir })
    }

    /// The summed buffers (see [`buffer_totals`]).
    pub fn buffer(&self) -> anyhow::Result<BufferTotals> {
        buffer_totals(&self.admins())
    }

    /// The collectors' admin addresses.
    pub fn admins(&self) -> Vec<SocketAddr> {
        self.collectors.iter().map(|c| c.admin).collect()
    }

    /// The collectors' ingest addresses.
    pub fn ingests(&self) -> Vec<SocketAddr> {
        self.collectors.iter().map(|c| c.ingest).collect()
    }

    /// CPU seconds (user + system) each collector has used so far.
    pub fn cpu_seconds(&self) -> Vec<f64> {
        self.collectors
            .iter()
            .map(|c| cpu_seconds(c.pid()).unwrap_or(0.0))
            .collect()
    }

    /// Peak resident memory of each collector, in KiB.
    pub fn peak_rss_kib(&self) -> Vec<u64> {
        self.collectors
            .iter()
            .map(|c| proc::peak_rss_kib(c.pid()).unwrap_or(0))
            .collect()
    }

    /// Where the buffers are (kept for a post-mortem when a check fails).
    pub fn dirs(&self) -> String {
        self.collectors
            .iter()
            .map(|c| c.opts.data_dir.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The buffers of the collectors whose admin listeners are `admins`, summed from each one's
/// `/v1/buffer`; an error when one does not answer (a measurement with a hole would be
/// wrong, not noisy).
pub fn buffer_totals(admins: &[SocketAddr]) -> anyhow::Result<BufferTotals> {
    let mut t = BufferTotals::default();
    for admin in admins {
        let v = client::get(*admin, "/v1/buffer")
            .with_context(|| format!("GET {admin}/v1/buffer"))?
            .json();
        let field = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("{k} missing from {admin}/v1/buffer: {v}"))
        };
        t.events += field("buffered_events")?;
        t.bytes += field("buffered_bytes")?;
        t.disk_bytes += field("buffer_disk_bytes")?;
    }
    Ok(t)
}

/// The fields of `/proc/<pid>/stat` after the command name: `[0]` is the state (field 3 of
/// proc(5)), `[1]` the parent pid, `[11..=14]` utime, stime, cutime, cstime in clock ticks.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: it ends at the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf(3) has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (utime + stime) a process has used so far; `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((f.get(11)? + f.get(12)?) as f64 / ticks_per_second())
}

/// CPU seconds of this process (the load generator and the probes).
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// CPU time of a PostgreSQL cluster on this machine, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct PgCpu {
    /// The whole cluster: the postmaster's own and reaped children's time (utime, stime,
    /// cutime, cstime) plus every live child's utime + stime. Every process of the cluster
    /// (backends of all databases, WAL writer, checkpointer, autovacuum) is included, also
    /// the ones that exited in between, since the postmaster reaps them.
    pub cluster: f64,
    /// utime + stime of each backend of one database (`pg_stat_activity.datname`).
    pub backends: HashMap<u32, f64>,
}

impl PgCpu {
    /// Samples the cluster `client` is connected to (it must run on this machine: the
    /// postmaster is the parent of `client`'s backend) and the backends of `database`.
    pub async fn sample(client: &Client, database: &str) -> anyhow::Result<PgCpu> {
        let me: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        let postmaster = stat_fields(me as u32)
            .and_then(|f| f.get(1).copied())
            .context("the database's processes are not on this machine (no /proc/<pid>/stat for its backend)")?
            as u32;
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await?;
        let backends = rows
            .iter()
            .filter_map(|r| {
                let pid = r.get::<_, i32>(0) as u32;
                cpu_seconds(pid).map(|s| (pid, s))
            })
            .collect();
        let hz = ticks_per_second();
        let mut cluster = stat_fields(postmaster)
            .map(|f| f[11..=14].iter().sum::<u64>() as f64 / hz)
            .context("postmaster stat")?;
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(f) = stat_fields(pid).filter(|f| f.get(1) == Some(&(postmaster as u64))) {
                cluster += (f[11] + f[12]) as f64 / hz;
            }
        }
        Ok(PgCpu { cluster, backends })
    }

    /// CPU seconds from `before` to `self`: (whole cluster, the database's backends). A
    /// backend new since `before` counts from zero; one that exited in between is missing
    /// from the backends' figure (not from the cluster's).
    pub fn since(&self, before: &PgCpu) -> (f64, f64) {
        let backends = self
            .backends
            .iter()
            .map(|(pid, s)| s - before.backends.get(pid).copied().unwrap_or(0.0))
            .sum();
        (self.cluster - before.cluster, backends)
    }
}
