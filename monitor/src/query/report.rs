//! `monitor query <live|funnel|retention|paths|breakdown|collectors|database>`: one analysis,
//! the same data the dashboard shows, printed as a table (people), JSON (the model types,
//! for scripts) or CSV (spreadsheets).
//!
//! - The range is `[now − since, now)`. `MONITOR_AS_OF` (RFC 3339, e.g.
//!   `2024-05-01T00:00:00Z`) replaces "now" to reproduce a report or pin a test.
//! - JSON is exactly the serialised [`crate::model`] type of the analysis.
//! - CSV has one block per section; each block starts with its header row, and the first
//!   column of every row names the section. Numbers are plain (rates as fractions).
//!
//! Invariant: the three formats print the same values; only the presentation differs.

use std::{fmt::Write as _, io::Write as _};

use anyhow::Context;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{connect, range_ending};
use crate::{
    cli::{Format, QueryArgs, QueryKind},
    model::{Breakdown, BreakdownRow, Collectors, DatabaseHealth, Funnel, Live, Paths, Retention},
};

/// The environment variable that pins "now".
pub const AS_OF_ENV: &str = "MONITOR_AS_OF";

/// One analysis' result.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Live(Live),
    Funnel(Funnel),
    Retention(Retention),
    Paths(Paths),
    Breakdown(Breakdown),
    Collectors(Collectors),
    Database(DatabaseHealth),
}

pub async fn run(args: QueryArgs) -> anyhow::Result<i32> {
    let url = args
        .source
        .database_url
        .as_deref()
        .context("no database: pass --database-url or set DATABASE_URL")?;
    let now = as_of(std::env::var(AS_OF_ENV).ok().as_deref())?;
    let range = range_ending(now, args.since);
    let client = connect(url).await?;
    let report = fetch(&client, args.what, range, &args.steps).await?;
    let text = render(&report, args.format)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(0)
}

/// "Now", or the time `MONITOR_AS_OF` holds.
pub fn as_of(value: Option<&str>) -> anyhow::Result<OffsetDateTime> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(OffsetDateTime::now_utc()),
        Some(v) => OffsetDateTime::parse(v, &Rfc3339)
            .with_context(|| format!("{AS_OF_ENV}={v:?} is not an RFC 3339 time")),
    }
}

/// Runs one analysis.
pub async fn fetch(
    client: &tokio_postgres::Client,
    what: QueryKind,
    range: crate::model::Range,
    steps: &[String],
) -> Result<Report, super::QueryError> {
    Ok(match what {
        QueryKind::Live => Report::Live(super::live(client, range).await?),
        QueryKind::Funnel => Report::Funnel(super::funnel(client, range, steps).await?),
        QueryKind::Retention => Report::Retention(super::retention(client, range).await?),
        QueryKind::Paths => Report::Paths(super::paths(client, range).await?),
        QueryKind::Breakdown => Report::Breakdown(super::breakdown(client, range).await?),
        QueryKind::Collectors => Report::Collectors(super::collectors(client, range).await?),
        QueryKind::Database => Report::Database(super::database(client, range).await?),
    })
}

/// The report in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => {
            let mut s = match report {
                Report::Live(v) => serde_json::to_string_pretty(v),
                Report::Funnel(v) => serde_json::to_string_pretty(v),
                Report::Retention(v) => serde_json::to_string_pretty(v),
                Report::Paths(v) => serde_json::to_string_pretty(v),
                Report::Breakdown(v) => serde_json::to_string_pretty(v),
                Report::Collectors(v) => serde_json::to_string_pretty(v),
                Report::Database(v) => serde_json::to_string_pretty(v),
            }?;
            s.push('\n');
            s
        }
        Format::Table => tables(report, Style::Human)
            .iter()
            .map(Table::text)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => tables(report, Style::Csv)
            .iter()
            .map(Table::csv)
            .collect::<String>(),
    })
}

/// How cells are written: for people (units, percentages) or for CSV (plain numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Human,
    Csv,
}

/// One section of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(name: &'static str, headers: &[&str]) -> Table {
        Table {
            name,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Aligned columns under a title: numeric columns right-aligned, the others (and the
    /// first) left-aligned.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        let mut numeric = vec![true; widths.len()];
        if let Some(first) = numeric.first_mut() {
            *first = false;
        }
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
                if let Some(n) = numeric.get_mut(i) {
                    *n &= cell.is_empty() || looks_numeric(cell);
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                if numeric[i] {
                    let _ = write!(s, "{cell:>w$}");
                } else {
                    let _ = write!(s, "{cell:<w$}");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("== {}\n", self.name);
        out.push_str(&line(&self.headers));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        out.push('\n');
        if self.rows.is_empty() {
            out.push_str("(no data)\n");
        }
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// The header row (first cell `section`) then the rows, each prefixed by the section
    /// name; RFC 4180 quoting and line ends.
    pub fn csv(&self) -> String {
        let line = |first: &str, cells: &[String]| {
            let mut l = csv_field(first);
            for c in cells {
                l.push(',');
                l.push_str(&csv_field(c));
            }
            l.push_str("\r\n");
            l
        };
        let mut out = line("section", &self.headers);
        for r in &self.rows {
            out.push_str(&line(self.name, r));
        }
        out
    }
}

/// A number, possibly with a unit or percent sign (`12`, `-0.5`, `25.0%`, `3.1 MiB`).
fn looks_numeric(cell: &str) -> bool {
    let mut chars = cell.chars();
    match chars.next() {
        Some('-') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        Some(c) => c.is_ascii_digit(),
        None => false,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn tables(report: &Report, style: Style) -> Vec<Table> {
    match report {
        Report::Live(v) => live_tables(v, style),
        Report::Funnel(v) => vec![funnel_table(v, style)],
        Report::Retention(v) => vec![match style {
            Style::Human => retention_wide(v),
            Style::Csv => retention_long(v),
        }],
        Report::Paths(v) => vec![paths_table(v, style)],
        Report::Breakdown(v) => breakdown_tables(v),
        Report::Collectors(v) => collectors_tables(v, style),
        Report::Database(v) => database_tables(v, style),
    }
}

fn rate(r: f64, style: Style) -> String {
    match style {
        Style::Human => format!("{:.1}%", r * 100.0),
        Style::Csv => format!("{r}"),
    }
}

fn secs(s: Option<f64>, style: Style) -> String {
    match (s, style) {
        (None, _) => String::new(),
        (Some(s), Style::Human) => format!("{s:.3}s"),
        (Some(s), Style::Csv) => format!("{s}"),
    }
}

fn bytes(b: Option<i64>, style: Style) -> String {
    match (b, style) {
        (None, _) => String::new(),
        (Some(b), Style::Csv) => b.to_string(),
        (Some(b), Style::Human) => {
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut v = b as f64;
            let mut u = 0;
            while v >= 1024.0 && u + 1 < units.len() {
                v /= 1024.0;
                u += 1;
            }
            if u == 0 {
                format!("{b} B")
            } else {
                format!("{v:.1} {}", units[u])
            }
        }
    }
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn live_tables(v: &Live, style: Style) -> Vec<Table> {
    let mut summary = Table::new("live", &["metric", "value"]);
    let kv = [
        ("events_per_second", format!("{}", v.events_per_second)),
        ("active_users_5m", v.active_users_5m.to_string()),
        ("active_users_1h", v.active_users_1h.to_string()),
        ("active_users_24h", v.active_users_24h.to_string()),
        ("lag_p50_seconds", secs(v.lag_p50_seconds, style)),
        ("lag_p99_seconds", secs(v.lag_p99_seconds, style)),
    ];
    summary.rows = kv
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    let mut top = Table::new("top_events", &["event_name", "events"]);
    top.rows = v
        .top_events
        .iter()
        .map(|n| vec![n.name.clone(), n.count.to_string()])
        .collect();
    let mut minutes = Table::new("per_minute", &["minute", "events"]);
    minutes.rows = v
        .per_minute
        .iter()
        .map(|m| vec![rfc(m.minute), m.events.to_string()])
        .collect();
    vec![summary, top, minutes]
}

fn funnel_table(v: &Funnel, style: Style) -> Table {
    let mut t = Table::new(
        "funnel",
        &[
            "step",
            "name",
            "sessions",
            "step_conversion",
            "overall_conversion",
        ],
    );
    t.rows = v
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                s.name.clone(),
                s.sessions.to_string(),
                rate(s.step_conversion, style),
                rate(s.overall_conversion, style),
            ]
        })
        .collect();
    t
}

/// One row per cohort: users, then the share retained on each day.
fn retention_wide(v: &Retention) -> Table {
    let days = v
        .cohorts
        .iter()
        .map(|c| c.retained.len())
        .max()
        .unwrap_or(0);
    let mut headers = vec!["cohort".to_string(), "users".to_string()];
    headers.extend((0..days).map(|n| format!("d{n}")));
    let rows = v
        .cohorts
        .iter()
        .map(|c| {
            let mut row = vec![c.day.to_string(), c.users.to_string()];
            row.extend(
                c.retained
                    .iter()
                    .map(|&r| format!("{:.0}%", super::ratio(r, c.users) * 100.0)),
            );
            row
        })
        .collect();
    Table {
        name: "retention",
        headers,
        rows,
    }
}

/// One row per (cohort, day n): counts and rates, for scripts.
fn retention_long(v: &Retention) -> Table {
    let mut t = Table::new("retention", &["cohort", "users", "day", "retained", "rate"]);
    for c in &v.cohorts {
        for (n, &r) in c.retained.iter().enumerate() {
            t.rows.push(vec![
                c.day.to_string(),
                c.users.to_string(),
                n.to_string(),
                r.to_string(),
                format!("{}", super::ratio(r, c.users)),
            ]);
        }
    }
    t
}

fn paths_table(v: &Paths, style: Style) -> Table {
    let mut t = Table::new("paths", &["from", "to", "count", "avg_seconds"]);
    t.rows = v
        .transitions
        .iter()
        .map(|x| {
            vec![
                x.from.clone(),
                x.to.clone(),
                x.count.to_string(),
                secs(Some(x.avg_seconds), style),
            ]
        })
        .collect();
    t
}

fn breakdown_tables(v: &Breakdown) -> Vec<Table> {
    let table = |name: &'static str, key: &str, rows: &[BreakdownRow]| {
        let mut t = Table::new(name, &[key, "events", "users"]);
        t.rows = rows
            .iter()
            .map(|r| vec![r.key.clone(), r.events.to_string(), r.users.to_string()])
            .collect();
        t
    };
    vec![
        table("by_device", "device_type", &v.by_device),
        table("by_country", "country_code", &v.by_country),
        table("by_event", "event_name", &v.by_event),
    ]
}

fn collectors_tables(v: &Collectors, style: Style) -> Vec<Table> {
    let mut fleet = Table::new(
        "collectors",
        &[
            "collector_id",
            "region",
            "version",
            "at",
            "age_seconds",
            "database_state",
            "paused",
            "buffered_events",
            "fill",
            "forward_rate",
            "drain_seconds",
            "accepted",
            "forwarded",
            "rejected",
            "quarantined",
            "last_error",
        ],
    );
    fleet.rows = v
        .collectors
        .iter()
        .map(|c| {
            let h = &c.health;
            vec![
                h.collector_id.clone(),
                h.region.clone(),
                h.version.clone(),
                h.at.clone(),
                format!("{:.0}", c.age_seconds),
                h.database_state.clone(),
                h.forwarding_paused.to_string(),
                h.buffered_events.to_string(),
                rate(c.fill, style),
                format!("{:.1}", h.forward_rate),
                c.drain_seconds
                    .map(|d| format!("{d:.0}"))
                    .unwrap_or_default(),
                h.accepted_total.to_string(),
                h.forwarded_total.to_string(),
                h.rejected_total.to_string(),
                h.quarantined_total.to_string(),
                h.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut history = Table::new(
        "history",
        &[
            "at",
            "collector_id",
            "buffered_events",
            "forward_rate",
            "database_state",
        ],
    );
    history.rows = v
        .history
        .iter()
        .map(|p| {
            vec![
                rfc(p.at),
                p.collector_id.clone(),
                p.buffered_events.to_string(),
                format!("{:.1}", p.forward_rate),
                p.database_state.clone(),
            ]
        })
        .collect();
    vec![fleet, history]
}

fn database_tables(v: &DatabaseHealth, style: Style) -> Vec<Table> {
    let mut summary = Table::new("database", &["metric", "value"]);
    summary.rows = vec![
        vec!["edition".into(), v.edition.clone()],
        vec!["extension_version".into(), v.extension_version.clone()],
        vec!["user_events_chunks".into(), v.chunks.to_string()],
        vec![
            "compression_ratio".into(),
            v.compression_ratio
                .map(|r| match style {
                    Style::Human => format!("{r:.2}x"),
                    Style::Csv => format!("{r}"),
                })
                .unwrap_or_default(),
        ],
    ];
    let mut objects = Table::new("objects", &["name", "kind", "bytes"]);
    objects.rows = v
        .objects
        .iter()
        .map(|o| vec![o.name.clone(), o.kind.clone(), bytes(o.bytes, style)])
        .collect();
    let mut jobs = Table::new(
        "jobs",
        &[
            "id",
            "name",
            "target",
            "schedule",
            "last_run",
            "last_status",
            "failures",
            "last_error",
        ],
    );
    jobs.rows = v
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.name.clone(),
                j.target.clone(),
                j.schedule.clone(),
                j.last_run.clone().unwrap_or_default(),
                j.last_status.clone().unwrap_or_default(),
                j.total_failures.to_string(),
                j.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    vec![summary, objects, jobs]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cohort, FunnelStep};
    use time::macros::{date, datetime};

    fn funnel() -> Report {
        Report::Funnel(Funnel {
            steps: vec![
                FunnelStep {
                    name: "page_view".into(),
                    sessions: 200,
                    step_conversion: 1.0,
                    overall_conversion: 1.0,
                },
                FunnelStep {
                    name: "purchase, final".into(),
                    sessions: 50,
                    step_conversion: 0.25,
                    overall_conversion: 0.25,
                },
            ],
        })
    }

    #[test]
    fn table_is_aligned() {
        let text = render(&funnel(), Format::Table).unwrap();
        let expected = "\
== funnel
step  name             sessions  step_conversion  overall_conversion
----  ---------------  --------  ---------------  ------------------
1     page_view             200           100.0%              100.0%
2     purchase, final        50            25.0%               25.0%
";
        assert_eq!(text, expected);
    }

    #[test]
    fn csv_quotes_and_names_sections() {
        let text = render(&funnel(), Format::Csv).unwrap();
        let expected = "section,step,name,sessions,step_conversion,overall_conversion\r\n\
                        funnel,1,page_view,200,1,1\r\n\
                        funnel,2,\"purchase, final\",50,0.25,0.25\r\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn json_is_the_model() {
        let text = render(&funnel(), Format::Json).unwrap();
        let back: Funnel = serde_json::from_str(&text).unwrap();
        assert_eq!(Report::Funnel(back), funnel());
    }

    #[test]
    fn retention_wide_and_long() {
        let r = Report::Retention(Retention {
            cohorts: vec![Cohort {
                day: date!(2024 - 05 - 01),
                users: 4,
                retained: vec![4, 1],
            }],
        });
        let table = render(&r, Format::Table).unwrap();
        assert!(table.contains("2024-05-01      4  100%  25%"), "{table}");
        let csv = render(&r, Format::Csv).unwrap();
        assert_eq!(
            csv,
            "section,cohort,users,day,retained,rate\r\n\
             retention,2024-05-01,4,0,4,1\r\n\
             retention,2024-05-01,4,1,1,0.25\r\n"
        );
    }

    #[test]
    fn empty_sections_say_so() {
        let text = render(&Report::Paths(Paths::default()), Format::Table).unwrap();
        assert!(text.contains("(no data)"));
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
    fn human_bytes() {
        assert_eq!(bytes(Some(512), Style::Human), "512 B");
        assert_eq!(bytes(Some(3 * 1024 * 1024), Style::Human), "3.0 MiB");
        assert_eq!(bytes(None, Style::Human), "");
    }
}
