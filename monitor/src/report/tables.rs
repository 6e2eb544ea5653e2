//! The tables of each analysis' report: one [`Tabular`] implementation per model type.
//!
//! Invariant: a table holds every value of the model that the JSON holds (except raw
//! timestamps' precision); cells are written per [`Style`], never computed differently.

use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{table::Table, Style, Tabular};
use crate::model::{
    Breakdown, BreakdownRow, Collectors, DatabaseHealth, Funnel, Live, Pages, Paths, Retention,
    Tail,
};

impl Tabular for Live {
    fn tables(&self, style: Style) -> Vec<Table> {
        live_tables(self, style)
    }
}

impl Tabular for Funnel {
    fn tables(&self, style: Style) -> Vec<Table> {
        vec![funnel_table(self, style)]
    }
}

impl Tabular for Retention {
    fn tables(&self, style: Style) -> Vec<Table> {
        vec![match style {
            Style::Human => retention_wide(self),
            Style::Csv => retention_long(self),
        }]
    }
}

impl Tabular for Paths {
    fn tables(&self, style: Style) -> Vec<Table> {
        vec![paths_table(self, style)]
    }
}

impl Tabular for Breakdown {
    fn tables(&self, _style: Style) -> Vec<Table> {
        breakdown_tables(self)
    }
}

impl Tabular for Collectors {
    fn tables(&self, style: Style) -> Vec<Table> {
        collectors_tables(self, style)
    }
}

impl Tabular for Pages {
    fn tables(&self, _style: Style) -> Vec<Table> {
        let mut t = Table::new("pages", &["page_url", "views", "users"]);
        t.rows = self
            .pages
            .iter()
            .map(|p| vec![p.url.clone(), p.views.to_string(), p.users.to_string()])
            .collect();
        vec![t]
    }
}

impl Tabular for Tail {
    fn tables(&self, _style: Style) -> Vec<Table> {
        let mut t = Table::new(
            "tail",
            &[
                "received_at",
                "collector_id",
                "seq",
                "event_name",
                "user_id",
                "session_id",
                "country_code",
                "page_url",
                "properties",
            ],
        );
        t.rows = self
            .events
            .iter()
            .map(|e| {
                vec![
                    rfc(e.received_at),
                    e.collector_id.clone(),
                    e.seq.to_string(),
                    e.event_name.clone(),
                    e.user_id
                        .clone()
                        .or_else(|| e.anonymous_id.clone())
                        .unwrap_or_default(),
                    e.session_id.clone().unwrap_or_default(),
                    e.country_code.clone().unwrap_or_default(),
                    e.page_url.clone().unwrap_or_default(),
                    e.properties
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        vec![t]
    }
}

impl Tabular for DatabaseHealth {
    fn tables(&self, style: Style) -> Vec<Table> {
        database_tables(self, style)
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

pub(super) fn bytes(b: Option<i64>, style: Style) -> String {
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
                    .map(|&r| format!("{:.0}%", crate::query::ratio(r, c.users) * 100.0)),
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
                format!("{}", crate::query::ratio(r, c.users)),
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
    let r = &v.replication.status;
    summary.rows.extend([
        vec![
            "role".into(),
            if r.in_recovery { "standby" } else { "primary" }.into(),
        ],
        vec![
            "replay_lag_seconds".into(),
            secs(r.replay_lag_seconds, style),
        ],
        vec![
            "last_replay_age_seconds".into(),
            secs(r.last_replay_age_seconds, style),
        ],
        vec![
            "last_replay_at".into(),
            r.last_replay_at.clone().unwrap_or_default(),
        ],
        vec![
            "receive_replay_gap_bytes".into(),
            bytes(r.receive_replay_gap_bytes, style),
        ],
    ]);
    let mut standbys = Table::new(
        "standbys",
        &[
            "application_name",
            "client_addr",
            "state",
            "sync_state",
            "write_lag_seconds",
            "flush_lag_seconds",
            "replay_lag_seconds",
            "replay_lag_bytes",
            "visible",
        ],
    );
    standbys.rows = v
        .replication
        .standbys
        .iter()
        .map(|s| {
            let state = match (&s.state, s.visible, style) {
                (_, false, Style::Human) => "not visible to this role".to_string(),
                (state, _, _) => state.clone().unwrap_or_default(),
            };
            vec![
                s.application_name.clone(),
                s.client_addr.clone().unwrap_or_default(),
                state,
                s.sync_state.clone().unwrap_or_default(),
                secs(s.write_lag_seconds, style),
                secs(s.flush_lag_seconds, style),
                secs(s.replay_lag_seconds, style),
                bytes(s.replay_lag_bytes, style),
                s.visible.to_string(),
            ]
        })
        .collect();
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
    vec![summary, standbys, objects, jobs]
}
