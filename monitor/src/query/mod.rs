//! The SQL behind every analysis, against TimescaleDB of either edition, returning the typed
//! results of [`crate::model`].
//!
//! One module per analysis of the registry ([`crate::analysis`]): [`live`](mod@live),
//! [`funnel`](mod@funnel),
//! [`retention`](mod@retention), [`paths`](mod@paths), [`breakdown`](mod@breakdown),
//! [`collectors`](mod@collectors), [`database`](mod@database), each implementing
//! [`Query`] for its model type (and [`replica`], the replication status the Database
//! analysis shows and the dashboard reads with every refresh); [`run`] is the one entry point the dashboard and
//! `monitor query` use. [`drill`] (a funnel step's drop-off) and [`person`] take more than a
//! range and are called directly. Each analysis that reads events takes the run's
//! [`crate::model::Filter`] ([`Params::filter`]): empty, it runs its unfiltered query;
//! otherwise a separate function of its module computes it over the matching raw events
//! ([`filter`] writes the conditions). Every query takes a connected [`Client`] and a [`Range`]
//! (`[from, to)`, UTC; `to` is "now") and
//! works the same on the Community edition (where the aggregates are continuous
//! aggregates) and on the apache edition (where they are plain views over `user_events`).
//!
//! Invariants:
//! - every value travels as a bind parameter; SQL text is only ever assembled from constants
//!   of this crate (column names, step positions), never from user input;
//! - a distinct count is never summed across buckets: distinct users and sessions over a
//!   range are counted over user- or session-level rows ([`funnel`](mod@funnel),
//!   [`retention`](mod@retention)), over each person's last event time ([`activity`]:
//!   [`live`](mod@live), [`breakdown`](mod@breakdown), [`pages`]) or
//!   over raw events;
//! - an aggregate is read only over whole buckets inside the range; the partial buckets at
//!   the range's edges are read from raw events ([`split`]), so a result never depends on
//!   how the range falls on bucket boundaries;
//! - nothing reads `now()` on the server: the reference time is `range.to`, so a query is
//!   reproducible (`MONITOR_AS_OF`, see [`as_of`]) and tests can pin it; the one exception
//!   is a standby's replay lag ([`replica`]), a difference of two server times;
//! - nothing writes, creates (not even temporary tables) or runs a SET: every analysis
//!   runs on a hot standby and for the read-only `edge_monitor` role (the one session
//!   setting, `jit = off`, travels in the connection's start-up options:
//!   [`session_options`]).

pub(crate) mod activity;
pub mod breakdown;
pub mod collectors;
pub mod database;
pub mod drill;
pub(crate) mod filter;
pub mod funnel;
pub mod live;
pub mod pages;
pub mod paths;
pub mod person;
pub mod replica;
pub mod retention;

use std::{future::Future, time::Duration};

use thiserror::Error;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tokio_postgres::{types::ToSql, Client, NoTls};

pub use breakdown::breakdown;
pub use collectors::collectors;
pub use database::database;
pub use funnel::funnel;
pub use live::live;
pub use paths::paths;
pub use retention::retention;

use crate::{
    analysis::{with_model, Analysis, Params, Report},
    model::Range,
};

/// The environment variable that pins "now" for `monitor query`.
pub const AS_OF_ENV: &str = "MONITOR_AS_OF";

/// An analysis' query: fills its model type from the database.
pub(crate) trait Query: Sized {
    fn run(
        client: &Client,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Self, QueryError>> + Send;
}

/// Runs one analysis: the one way into the SQL, for the dashboard and `monitor query`.
pub async fn run(
    client: &Client,
    analysis: Analysis,
    params: Params<'_>,
) -> Result<Report, QueryError> {
    with_model!(analysis, M => Ok(Report::from(M::run(client, params).await?)))
}

/// "Now", or the time `MONITOR_AS_OF` holds.
pub fn as_of(value: Option<&str>) -> Result<OffsetDateTime, QueryError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(OffsetDateTime::now_utc()),
        Some(v) => OffsetDateTime::parse(v, &Rfc3339).map_err(|e| {
            QueryError::Range(format!("{AS_OF_ENV}={v:?} is not an RFC 3339 time: {e}"))
        }),
    }
}

/// Why a query could not answer.
#[derive(Debug, Error)]
pub enum QueryError {
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("invalid funnel steps: {0}")]
    Steps(String),
    #[error("invalid time range: {0}")]
    Range(String),
    #[error("cannot connect to the database: {}", describe(.0))]
    Connect(#[source] tokio_postgres::Error),
    #[error("{0} is read from the collectors' admin listeners, not the database")]
    NotAQuery(&'static str),
}

/// The live tail comes from the collectors ([`crate::tail`]), never from SQL; the registry
/// keeps it out of every refresh ([`Analysis::is_query`]).
impl Query for crate::model::Tail {
    async fn run(_client: &Client, _params: Params<'_>) -> Result<Self, QueryError> {
        Err(QueryError::NotAQuery("the live tail"))
    }
}

/// A driver error with the server's SQLSTATE and message, which its Display hides.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

/// The range `[to - since, to)`, at microsecond precision (PostgreSQL's).
pub fn range_ending(to: OffsetDateTime, since: Duration) -> Range {
    let to = truncate_micros(to);
    let since = time::Duration::try_from(since).unwrap_or(time::Duration::MAX);
    let from = to.checked_sub(since).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Range { from, to }
}

/// Opens one connection (no TLS, like the collector) and drives it on a background task.
pub async fn connect(url: &str) -> Result<Client, QueryError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(QueryError::Connect)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name("edge-monitor");
    session_options(&mut config);
    let (client, connection) = config.connect(NoTls).await.map_err(QueryError::Connect)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "monitor database connection closed");
        }
    });
    Ok(client)
}

/// The monitor's session settings, given at connection start-up (no statement is run, so it
/// works on a standby and for the read-only role): `jit = off`. The analyses are short
/// queries over pre-aggregates; PostgreSQL's JIT compiles their expressions first when the
/// planner's estimate is high, which measured ~350 ms of a 690 ms retention query here.
/// Options already in the URL are kept (ours come first, so the URL's win).
pub fn session_options(config: &mut tokio_postgres::Config) {
    let theirs = config.get_options().unwrap_or_default().to_string();
    let options = format!("-c jit=off {theirs}");
    config.options(options.trim());
}

pub(crate) fn check_range(range: Range) -> Result<(), QueryError> {
    if range.from >= range.to {
        return Err(QueryError::Range(format!(
            "from ({}) is not before to ({})",
            range.from, range.to
        )));
    }
    Ok(())
}

pub(crate) fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// `t` rounded down to a multiple of `width` since the Unix epoch (what `time_bucket`
/// does for widths that divide a day, with its default origin).
pub(crate) fn floor_to(t: OffsetDateTime, width: Duration) -> OffsetDateTime {
    let w = width.as_nanos().max(1) as i128;
    let ns = t.unix_timestamp_nanos();
    let floored = ns - ns.rem_euclid(w);
    OffsetDateTime::from_unix_timestamp_nanos(floored).unwrap_or(t)
}

/// `t` rounded up to a multiple of `width` since the Unix epoch.
pub(crate) fn ceil_to(t: OffsetDateTime, width: Duration) -> OffsetDateTime {
    let f = floor_to(t, width);
    if f == t {
        t
    } else {
        f + width
    }
}

/// How a range is read from an aggregate of bucket `width`: the whole buckets inside it
/// from the aggregate, the partial buckets at its edges from raw events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// `[from, to)` of whole buckets, if the range holds at least one.
    pub aggregate: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Non-empty `[from, to)` pieces to read from raw events.
    pub raw: Vec<(OffsetDateTime, OffsetDateTime)>,
}

pub(crate) fn split(range: Range, width: Duration) -> Split {
    let a = ceil_to(range.from, width);
    let b = floor_to(range.to, width);
    if a >= b {
        return Split {
            aggregate: None,
            raw: vec![(range.from, range.to)],
        };
    }
    let raw = [(range.from, a), (b, range.to)]
        .into_iter()
        .filter(|(x, y)| x < y)
        .collect();
    Split {
        aggregate: Some((a, b)),
        raw,
    }
}

/// A range cut over several grains of one rollup (`(table, bucket width)`, coarsest first):
/// each piece goes to the coarsest grain that covers it whole; what no grain covers is left
/// for raw rows.
pub(crate) struct Grains<'t> {
    /// `(table, from, to)`: whole buckets of `table`.
    pub tables: Vec<(&'t str, OffsetDateTime, OffsetDateTime)>,
    /// Non-empty `[from, to)` pieces finer than the finest grain.
    pub raw: Vec<(OffsetDateTime, OffsetDateTime)>,
}

pub(crate) fn split_grains<'t>(range: Range, grains: &[(&'t str, Duration)]) -> Grains<'t> {
    let mut tables = Vec::new();
    let mut pending = vec![(range.from, range.to)];
    for &(table, width) in grains {
        let mut rest = Vec::new();
        for (a, b) in pending {
            let s = split(Range { from: a, to: b }, width);
            if let Some((x, y)) = s.aggregate {
                tables.push((table, x, y));
            }
            rest.extend(s.raw);
        }
        pending = rest;
    }
    Grains {
        tables,
        raw: pending,
    }
}

/// For a raw piece `[a, b)` inside one minute: `Some((m, m + 1 min))`, that minute, when
/// its bucket minus the raw pieces `[m, a)` and `[b, m + 1 min)` reads fewer seconds of raw
/// events than `[a, b)` itself. At a range's end `[b, …)` is the future, usually empty.
pub(crate) fn minute_complement(
    a: OffsetDateTime,
    b: OffsetDateTime,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let minute = Duration::from_secs(60);
    let m = floor_to(a, minute);
    let m1 = m + minute;
    (b <= m1 && (a - m) + (m1 - b) < b - a).then_some((m, m1))
}

/// Positional parameters for SQL assembled at run time: `push` returns the placeholder.
#[derive(Default)]
pub(crate) struct Binds<'a> {
    values: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Binds<'a> {
    pub fn push(&mut self, v: &'a (dyn ToSql + Sync)) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }
    pub fn as_slice(&self) -> &[&'a (dyn ToSql + Sync)] {
        &self.values
    }
}

/// `n / d`, or 0 when `d` is 0.
pub(crate) fn ratio(n: i64, d: i64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_partial_minute_is_read_the_shorter_way() {
        let at = |s: &str| {
            time::PrimitiveDateTime::parse(
                &format!("2024-05-01 10:17:{s}"),
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
            )
            .map(|t| t.assume_utc())
        };
        let (Ok(s10), Ok(s50), Ok(s00), Ok(s40)) = (at("10"), at("50"), at("00"), at("40")) else {
            panic!("times");
        };
        let next = s00 + Duration::from_secs(60);
        // [:10, next): 50 s direct vs 10 s of complement.
        assert_eq!(minute_complement(s10, next), Some((s00, next)));
        // [:50, next): 10 s direct.
        assert_eq!(minute_complement(s50, next), None);
        // [:00, :40) at a range's end: 40 s direct vs the 20 s after it.
        assert_eq!(minute_complement(s00, s40), Some((s00, next)));
        assert_eq!(minute_complement(s00, s10), None);
        // Across a minute boundary: never.
        assert_eq!(minute_complement(s50, next + Duration::from_secs(5)), None);
    }

    #[test]
    fn floor_and_ceil() {
        let t = datetime!(2024-05-01 10:17:03.5 UTC);
        assert_eq!(floor_to(t, HOUR), datetime!(2024-05-01 10:00 UTC));
        assert_eq!(ceil_to(t, HOUR), datetime!(2024-05-01 11:00 UTC));
        let exact = datetime!(2024-05-01 10:00 UTC);
        assert_eq!(ceil_to(exact, HOUR), exact);
        assert_eq!(
            floor_to(t, Duration::from_secs(86_400)),
            datetime!(2024-05-01 0:00 UTC)
        );
    }

    #[test]
    fn split_reads_edges_raw() {
        let r = Range {
            from: datetime!(2024-05-01 10:17 UTC),
            to: datetime!(2024-05-01 14:05 UTC),
        };
        let s = split(r, HOUR);
        assert_eq!(
            s.aggregate,
            Some((
                datetime!(2024-05-01 11:00 UTC),
                datetime!(2024-05-01 14:00 UTC)
            ))
        );
        assert_eq!(
            s.raw,
            vec![
                (r.from, datetime!(2024-05-01 11:00 UTC)),
                (datetime!(2024-05-01 14:00 UTC), r.to)
            ]
        );
        // Aligned: no raw piece.
        let aligned = Range {
            from: datetime!(2024-05-01 10:00 UTC),
            to: datetime!(2024-05-01 12:00 UTC),
        };
        assert!(split(aligned, HOUR).raw.is_empty());
        // Shorter than a bucket: all raw.
        let short = Range {
            from: datetime!(2024-05-01 10:10 UTC),
            to: datetime!(2024-05-01 10:50 UTC),
        };
        assert_eq!(
            split(short, HOUR),
            Split {
                aggregate: None,
                raw: vec![(short.from, short.to)]
            }
        );
    }

    #[test]
    fn range_ending_truncates_to_micros() {
        let to = datetime!(2024-05-01 10:00:00.123456789 UTC);
        let r = range_ending(to, Duration::from_secs(60));
        assert_eq!(r.to, datetime!(2024-05-01 10:00:00.123456 UTC));
        assert_eq!(r.from, datetime!(2024-05-01 09:59:00.123456 UTC));
    }

    #[test]
    fn as_of_parses_rfc3339() {
        assert_eq!(
            as_of(Some("2024-05-01T00:00:00Z")).unwrap(),
            datetime!(2024-05-01 0:00 UTC)
        );
        assert!(as_of(Some("yesterday")).is_err());
        assert!(as_of(None).is_ok());
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(1, 4), 0.25);
        assert_eq!(ratio(3, 0), 0.0);
    }
}
