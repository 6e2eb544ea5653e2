//! Command line of the `monitor` binary: the dashboard (default), `monitor query` and
//! `monitor tail`.
//!
//! Invariant: every command has `--help`; errors reach the user as one message and a
//! non-zero exit code. The command line is the top of the crate: it imports the registry,
//! the queries, the printer and the runtime, and none of them imports it.

use std::{io::Write as _, time::Duration};

use anyhow::Context;
use clap::{builder::PossibleValue, Args, Parser, Subcommand, ValueEnum};

use crate::{
    analysis::{Analysis, Params},
    model::Filter,
    query,
    report::{self, Format},
    tui,
};

#[derive(Debug, Parser)]
#[command(
    name = "monitor",
    version,
    about = "On-call dashboard and query tool for the edge analytics system"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub tui: TuiArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print one analysis (the same data as the dashboard) as a table, JSON or CSV.
    Query(QueryArgs),
    /// Print the collectors' live tail of accepted events as NDJSON, one event per line
    /// (read from their admin listeners: works while the database is down).
    Tail(TailArgs),
}

/// Where the data comes from; shared by the dashboard and `query`.
#[derive(Debug, Args, Clone)]
pub struct Source {
    /// PostgreSQL/TimescaleDB URL; a read-only role is enough (see README).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// A collector's admin address (host:port or URL), polled directly for live buffer
    /// health; repeatable.
    #[arg(long = "collector", global = true)]
    pub collectors: Vec<String>,
    /// Bearer token for collectors' admin endpoints.
    #[arg(
        long,
        env = "COLLECTOR_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct TuiArgs {
    #[command(flatten)]
    pub source: Source,
    /// Seconds between refreshes (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_span)]
    pub refresh: Duration,
    /// Funnel steps, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "page_view,add_to_cart,checkout_start,purchase"
    )]
    pub steps: Vec<String>,
    /// Connected to a standby whose replay lags more than this (e.g. 30s, 2m), every view
    /// shows a banner: the numbers are older than shown.
    #[arg(long, default_value = "30s", value_parser = parse_span)]
    pub max_replica_lag: Duration,
    /// Start with the analyses computed over only the events matching FIELD=VALUE; repeatable, all
    /// must hold. Fields: source (write key name), event, device (desktop, mobile, tablet,
    /// other), country (two letters), prop.KEY (a top-level property, compared as text).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filter: Vec<String>,
    /// Benchmark (hidden; used by `bench`): run N refreshes of every analysis without a
    /// terminal, print one JSON line each and the peak resident memory, and exit.
    #[arg(long, hide = true, value_name = "N")]
    pub bench: Option<usize>,
    /// Benchmark: the time range of those refreshes (15m, 1h, 24h, 7d, 30d).
    #[arg(long, hide = true, default_value = "1h")]
    pub bench_range: String,
}

/// What `monitor query` prints: an analysis of the registry, or one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Analysis(Analysis),
    /// `monitor query user ID`.
    User,
}

/// `monitor query <name>`: the registry's names of database analyses, then `user`.
impl ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Self] {
        static KINDS: std::sync::OnceLock<Vec<Kind>> = std::sync::OnceLock::new();
        KINDS.get_or_init(|| {
            let mut v: Vec<Kind> = Analysis::QUERIED
                .iter()
                .map(|a| Kind::Analysis(*a))
                .collect();
            v.push(Kind::User);
            v
        })
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Kind::Analysis(a) => PossibleValue::new(a.name()),
            Kind::User => PossibleValue::new("user")
                .help("one person: ids, traits, first/last seen, recent events (needs ID)"),
        })
    }
}

#[derive(Debug, Args, Clone)]
pub struct QueryArgs {
    /// Which analysis, or `user` followed by a user or anonymous id.
    #[arg(value_enum)]
    pub what: Kind,
    /// For `user`: the user id or anonymous id to look up.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// Time range back from now: 15m, 1h, 24h, 7d, 30d…
    #[arg(long, default_value = "24h", value_parser = parse_span)]
    pub since: Duration,
    /// Funnel steps, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "page_view,add_to_cart,checkout_start,purchase"
    )]
    pub steps: Vec<String>,
    /// For `funnel`: list the sessions that reached this step (its number from 1, or its
    /// name) and not the next one, newest first (at most 100), instead of the counts.
    #[arg(long, value_name = "STEP")]
    pub drop_off: Option<String>,
    /// Compute the analysis over only the events matching FIELD=VALUE (the collectors and
    /// database kinds ignore it); repeatable, all
    /// must hold. Fields: source (write key name), event, device (desktop, mobile, tablet,
    /// other), country (two letters), prop.KEY (a top-level property, compared as text).
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub filter: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Give up after this long: connecting, querying and reading the answer together (a
    /// database that accepts the connection and never answers cannot hold the command).
    #[arg(long, default_value = "60s", value_parser = parse_span)]
    pub timeout: Duration,
    #[command(flatten)]
    pub source: Source,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Filter terms (all must hold): a bare word matches event names \
containing it; name=X, user=42, collector=ID, session=S, country=DE, device=mobile, type=T \
match those fields; any other key=value a top-level property; key!=value negates.\n\
Example: monitor tail --collector 127.0.0.1:9100 --follow --filter 'name=加入购物车 plan=pro'"
)]
pub struct TailArgs {
    /// Only events matching this filter (see below); repeat to require several.
    #[arg(long)]
    pub filter: Vec<String>,
    /// How many of the newest matching events to print first.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Keep running and print events as they arrive (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow, how often to poll the collectors (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = parse_span)]
    pub interval: Duration,
    #[command(flatten)]
    pub source: Source,
}

/// Parses `500ms`, `2s`, `15m`, `1h`, `7d`, `1w` (humantime; a bare number is seconds).
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let span = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string())
    } else {
        humantime::parse_duration(s).map_err(|e| e.to_string())
    }
    .map_err(|e| format!("{s:?} is not a duration such as 15m, 1h, 7d: {e}"))?;
    if span.is_zero() {
        return Err("duration must be positive".into());
    }
    Ok(span)
}

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Some(Command::Query(args)) => run_query(args).await,
        Some(Command::Tail(args)) => {
            let opts = crate::tail::command::Options {
                collectors: args.source.collectors,
                admin_token: args.source.admin_token,
                filter: args.filter.join(" "),
                limit: args.limit,
                follow: args.follow,
                interval: args.interval,
            };
            Ok(crate::tail::command::run(opts).await?)
        }
        None => {
            let t = cli.tui;
            match t.bench {
                Some(n) => {
                    Ok(tui::bench_main(t.source.database_url, &t.bench_range, &t.steps, n).await?)
                }
                None => {
                    let filter = Filter::parse(&t.filter).context("--where")?;
                    Ok(tui::run(tui::Options {
                        filter,
                        database_url: t.source.database_url,
                        collectors: t.source.collectors,
                        admin_token: t.source.admin_token,
                        refresh: t.refresh,
                        steps: t.steps,
                        max_replica_lag: t.max_replica_lag,
                    })
                    .await?)
                }
            }
        }
    }
}

/// `monitor query`: one analysis over `[now − since, now)` (`MONITOR_AS_OF` pins "now"),
/// printed in the chosen format.
async fn run_query(args: QueryArgs) -> anyhow::Result<i32> {
    let url = args
        .source
        .database_url
        .as_deref()
        .context("no database: pass --database-url or set DATABASE_URL")?;
    let now = query::as_of(std::env::var(query::AS_OF_ENV).ok().as_deref())?;
    let range = query::range_ending(now, args.since);
    let filter = Filter::parse(&args.filter).context("--where")?;
    if !filter.is_empty() && args.what == Kind::User {
        anyhow::bail!("--where is for the analyses, not `monitor query user`");
    }
    let timeout = args.timeout;
    let text = match tokio::time::timeout(timeout, query_text(url, &args, range, &filter)).await {
        Ok(text) => text?,
        Err(_) => anyhow::bail!(
            "the database did not answer within {} (--timeout)",
            humantime::format_duration(timeout)
        ),
    };
    let Some(text) = text else {
        return Ok(1);
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}

/// The database part of `monitor query`, bounded as a whole by the caller: the printed
/// text, or `None` when `monitor query user` found no such person (said on stderr).
async fn query_text(
    url: &str,
    args: &QueryArgs,
    range: crate::model::Range,
    filter: &Filter,
) -> anyhow::Result<Option<String>> {
    let client = query::connect(url).await?;
    let text = match (args.what, args.id.as_deref()) {
        (Kind::User, Some(id)) => match query::person::person(&client, id).await? {
            Some(p) => report::render_person(&p, args.format)?,
            None => {
                eprintln!(
                    "monitor: no event was ever sent with the id {id:?} (user or anonymous id)"
                );
                return Ok(None);
            }
        },
        (Kind::User, None) => {
            anyhow::bail!("`monitor query user` needs an ID: monitor query user usr_8f3a2c")
        }
        (Kind::Analysis(_), Some(id)) => {
            anyhow::bail!("unexpected argument {id:?}: only `monitor query user` takes an ID")
        }
        (Kind::Analysis(Analysis::Funnel), None) if args.drop_off.is_some() => {
            let given = args.drop_off.as_deref().unwrap_or_default();
            let step = query::drill::parse_step(&args.steps, given)?;
            let d =
                query::drill::drop_off_filtered(&client, range, &args.steps, step, filter).await?;
            report::render_drop_off(&d, args.format)?
        }
        (Kind::Analysis(what), None) => {
            if args.drop_off.is_some() {
                anyhow::bail!("--drop-off is for `monitor query funnel` only");
            }
            let params = Params {
                range,
                steps: &args.steps,
                filter,
            };
            let report = query::run(&client, what, params).await?;
            report::render(&report, args.format)?
        }
    };
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::parse_span;
    use std::time::Duration;

    #[test]
    fn spans() {
        assert_eq!(parse_span("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_span("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_span("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_span("soon").is_err());
        assert!(parse_span("0").is_err());
    }

    #[test]
    fn where_is_repeatable_on_query_and_the_dashboard() {
        use super::{Cli, Command};
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "monitor",
            "query",
            "live",
            "--where",
            "event=加入购物车",
            "--where",
            "prop.plan=pro",
        ])
        .unwrap();
        let Some(Command::Query(q)) = cli.command else {
            panic!("not a query");
        };
        assert_eq!(q.filter, ["event=加入购物车", "prop.plan=pro"]);
        let cli = Cli::try_parse_from(["monitor", "--where", "source=web"]).unwrap();
        assert_eq!(cli.tui.filter, ["source=web"]);
    }
}
