//! Command-line interface of the `collector` binary: argument definitions and dispatch;
//! the operator commands' bodies are beside it (`buffer.rs`: `collector buffer …`,
//! `drain.rs`: `collector drain`).
//!
//! Invariant: every command has `--help`, and every failure reaches the user as one clear
//! message and a non-zero exit code (via `anyhow`, at this edge only: nothing outside
//! `cli/` returns an `anyhow` error).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::{config::Config, server::Server};

mod buffer;
mod drain;

#[derive(Debug, Parser)]
#[command(
    name = "collector",
    version,
    about = "Edge collector for user-behaviour analytics: durable local buffer, exactly-once forwarding to TimescaleDB"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the ingest and admin listeners and forward the buffer to the database.
    Serve(ServeArgs),
    /// Apply pending database migrations (creates the TimescaleDB extension if needed).
    Migrate(MigrateArgs),
    /// Forward a stopped collector's whole buffer to the database, then exit.
    Drain(DrainArgs),
    /// Inspect, export, import, verify a stopped collector's buffer; manage quarantine.
    #[command(subcommand)]
    Buffer(BufferCommand),
    /// Database retention: on the apache edition, drop raw chunks older than --retention
    /// (run it daily, e.g. from cron); on the Community edition, report the policies and
    /// refresh the continuous aggregates for late events older than their refresh window.
    Maintain(MaintainArgs),
}

#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// PostgreSQL/TimescaleDB URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file, for database_url or DB_* settings.
    #[arg(long, short = 'c', env = "COLLECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep raw events this long: e.g. 180d, 26w, 4320h, "6months"; a bare number is days
    /// (default 180d, about 6 months).
    #[arg(long, default_value = "180d", value_parser = parse_retention)]
    pub retention: std::time::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up after this long (the whole command; also each statement's limit on the
    /// server).
    #[arg(long, default_value = "1h", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

/// A retention period: a humantime duration (`180d`, `26w`, `4320h`), or a bare number of
/// days.
fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<u64>() {
        Ok(days) => Ok(std::time::Duration::from_secs(days * 24 * 3600)),
        Err(_) => {
            humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 180d, 26w, 4320h)"))
        }
    }
}

/// A command's deadline: a humantime duration (`90s`, `30m`, `6h`), not zero.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{s:?}: the timeout must be above zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{s:?}: {e} (e.g. 90s, 30m, 6h)")),
    }
}

/// Settings shared by every command that reads the configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (see deploy/collector.toml).
    #[arg(long, short = 'c', env = "COLLECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the sled buffer [config: data_dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL/TimescaleDB URL [config: database_url; env: DATABASE_URL].
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Ingest listen address [config: listen].
    #[arg(long)]
    pub listen: Option<String>,
    /// Admin listen address [config: admin_listen].
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// Collector id written with every event [config: collector_id].
    #[arg(long)]
    pub collector_id: Option<String>,
    /// Region label [config: region].
    #[arg(long)]
    pub region: Option<String>,
    /// Buffer size limit in bytes [config: buffer.max_bytes].
    #[arg(long)]
    pub buffer_max_bytes: Option<u64>,
    /// `flush` or `fsync` [config: buffer.durability].
    #[arg(long, value_parser = ["flush", "fsync"])]
    pub durability: Option<String>,
    /// Start with forwarding paused [config: forward.start_paused].
    #[arg(long)]
    pub paused: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL/TimescaleDB URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file, for database_url or DB_* settings.
    #[arg(long, short = 'c', env = "COLLECTOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up after this long (the whole command; also each statement's limit on the
    /// server). A migration's backfill reads every stored event: minutes at 10M events.
    #[arg(long, default_value = "6h", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// Apply the pending migrations up to and including this version (e.g. 0009) only.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum BufferCommand {
    /// Counts, bytes, oldest age, quarantine of the buffer.
    Stats {
        #[command(flatten)]
        common: ConfigArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write every buffered event as NDJSON (gzip when FILE ends in .gz).
    Export {
        #[command(flatten)]
        common: ConfigArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Remove exported records from the buffer once the file is written and synced.
        #[arg(long)]
        remove: bool,
    },
    /// Append the events of an NDJSON export (gzip detected) to the buffer; idempotent
    /// downstream through event_id.
    Import {
        #[command(flatten)]
        common: ConfigArgs,
        /// NDJSON file from `buffer export`.
        file: PathBuf,
    },
    /// Decode every record and report damaged ones (exit 2 when any is damaged).
    Verify {
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Events the database refused.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// Print quarantined events with the database's error, as NDJSON.
    List {
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Move quarantined events back into the buffer to be forwarded again.
    Retry {
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Delete quarantined events (export them first with `list`).
    Purge {
        #[command(flatten)]
        common: ConfigArgs,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

impl ConfigArgs {
    /// Loads the configuration with these flags on top.
    pub fn load(&self, extra: Map<String, Value>) -> anyhow::Result<Config> {
        let mut overrides = extra;
        if let Some(d) = &self.data_dir {
            overrides.insert("data_dir".into(), d.display().to_string().into());
        }
        if let Some(u) = &self.database_url {
            overrides.insert("database_url".into(), u.clone().into());
        }
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => serve(args).await.map(|_| 0),
        Command::Migrate(args) => migrate(args).await.map(|_| 0),
        Command::Drain(args) => {
            let cfg = args.common.load(Map::new())?;
            drain::run(cfg, !args.quiet).await.map(|_| 0)
        }
        Command::Buffer(cmd) => buffer_command(cmd),
        Command::Maintain(args) => maintain(args).await.map(|_| 0),
    }
}

/// `collector buffer …`: each subcommand is one function of `buffer.rs`.
fn buffer_command(cmd: BufferCommand) -> anyhow::Result<i32> {
    let load = |c: &ConfigArgs| c.load(Map::new());
    match cmd {
        BufferCommand::Stats { common, json } => buffer::stats(&load(&common)?, json),
        BufferCommand::Export {
            common,
            out,
            remove,
        } => buffer::export(&load(&common)?, &out, remove),
        BufferCommand::Import { common, file } => buffer::import(&load(&common)?, &file),
        BufferCommand::Verify { common } => buffer::verify(&load(&common)?),
        BufferCommand::Quarantine(QuarantineCommand::List { common }) => {
            buffer::quarantine_list(&load(&common)?)
        }
        BufferCommand::Quarantine(QuarantineCommand::Retry { common }) => {
            buffer::quarantine_retry(&load(&common)?)
        }
        BufferCommand::Quarantine(QuarantineCommand::Purge { common, yes }) => {
            buffer::quarantine_purge(&load(&common)?, yes)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut o = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("listen", args.listen.map(Value::from));
    put("admin_listen", args.admin_listen.map(Value::from));
    put("collector_id", args.collector_id.map(Value::from));
    put("region", args.region.map(Value::from));
    let mut buffer = Map::new();
    if let Some(b) = args.buffer_max_bytes {
        buffer.insert("max_bytes".into(), b.into());
    }
    if let Some(d) = args.durability {
        buffer.insert("durability".into(), d.into());
    }
    if !buffer.is_empty() {
        o.insert("buffer".into(), Value::Object(buffer));
    }
    if args.paused {
        o.insert("forward".into(), serde_json::json!({"start_paused": true}));
    }
    let cfg = args.common.load(o)?;
    match crate::allocator::set_purge_delay(cfg.allocator_purge_delay_ms) {
        crate::allocator::Purge::Unrecognised(v) => {
            tracing::warn!(
                value = v,
                "allocator_purge_delay_ms not applied: unexpected mimalloc option table"
            );
        }
        crate::allocator::Purge::Set(_) | crate::allocator::Purge::FromEnvironment => {}
    }
    // Signal handlers first: a SIGTERM right after start-up still shuts down cleanly.
    let shutdown = crate::shutdown::signal()?;
    let server = Server::bind(cfg).await?;
    let ingest = server.ingest_addr()?;
    let admin = server.admin_addr()?;
    tracing::info!(%ingest, %admin, "collector listening");
    // A machine-readable line on stdout, for scripts and tests that bind port 0.
    println!(
        "{}",
        serde_json::json!({"listening": {"ingest": ingest.to_string(), "admin": admin.to_string()}})
    );
    server.run(shutdown).await?;
    Ok(())
}

/// The database URL from the flag/env, else from the configuration (file, DB_*).
fn database_url(flag: Option<String>, config: Option<&std::path::Path>) -> anyhow::Result<String> {
    match flag {
        Some(u) => Ok(u),
        None => Config::load(config, &Map::new())?.database_url.context(
            "no database URL: pass --database-url, set DATABASE_URL, or DB_HOST/DB_NAME/…",
        ),
    }
}

/// `step` unless it takes longer than `limit` (a server that accepted the connection and
/// stopped answering); dropping it closes the connection, so the server rolls back.
async fn within<T>(
    limit: std::time::Duration,
    what: &str,
    step: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, step).await.map_err(|_| {
        anyhow::anyhow!(
            "{what}: the database did not finish within {} (--timeout)",
            humantime::format_duration(limit)
        )
    })
}

async fn maintain(args: MaintainArgs) -> anyhow::Result<()> {
    let url = database_url(args.database_url, args.config.as_deref())?;
    let redacted = crate::config::redact_url(&url);
    let client = crate::database::connect_for(&url, args.timeout)
        .await
        .with_context(|| format!("maintain: {redacted}"))?;
    let run = crate::database::maintenance::run(&client, args.retention);
    let report = within(args.timeout, "maintain", run).await??;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{} edition at {redacted}: {}", report.edition, report.note);
        for c in &report.dropped_chunks {
            println!("dropped {c}");
        }
        for p in &report.policies {
            println!("policy {p}");
        }
        for v in &report.refreshed {
            println!("refreshed {v}");
        }
    }
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let url = database_url(args.database_url, args.config.as_deref())?;
    let redacted = crate::config::redact_url(&url);
    let mut client = crate::database::connect_for(&url, args.timeout)
        .await
        .with_context(|| format!("migrate: {redacted}"))?;
    let run = crate::database::migrate::run_to(&mut client, args.to.as_deref());
    let report = within(args.timeout, "migrate", run).await??;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "TimescaleDB {} ({} edition) at {redacted}",
            report.extension_version, report.edition
        );
        for f in &report.applied {
            println!("applied {f}");
        }
        println!(
            "{} migration(s) applied, {} already applied",
            report.applied.len(),
            report.already_applied
        );
    }
    Ok(())
}

/// An error and its causes on one line, leaving out a cause whose text the message already
/// contains (library errors often embed their source).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
