//! The Database view: TimescaleDB edition and version, replication (a primary's standbys
//! with their lag, or that this is a standby and how far behind it is), table and aggregate
//! sizes, chunks, the columnstore ratio, and background jobs with failing ones highlighted.
//!
//! Invariant: a pure function of the state; a failing job is marked by its status word in
//! red, and jobs with past failures by their failure count, so neither relies on colour;
//! the replication section appears only when there is replication (a standby, or a primary
//! with standbys), and a standby whose lag the role may not read says so in words.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table, TableState},
    Frame,
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    analysis::Analysis,
    app::App,
    model::{DatabaseHealth, Job, Replication},
    text,
};

use super::{draw_missing, fmt, section_block, theme};

impl super::View for crate::model::DatabaseHealth {
    fn draw(frame: &mut Frame, area: Rect, app: &App, _hits: &mut crate::app::Hits) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(db) = &app.data.database else {
        draw_missing(frame, area, app, Analysis::Database, "Database");
        return;
    };
    let wide = area.width >= 140;
    let repl = &db.replication;
    let repl_height = if repl.status.in_recovery && repl.standbys.is_empty() {
        4
    } else if !repl.standbys.is_empty() {
        repl.standbys.len() as u16 + 3
    } else {
        0
    };
    let [info, replication, rest] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(repl_height.min(area.height / 3)),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_info(frame, info, app, db);
    if repl_height > 0 {
        draw_replication(frame, replication, app, repl, wide);
    }
    let n = db.objects.len() as u16 + 3;
    let [objects, jobs] = Layout::vertical([
        Constraint::Length(n.min(rest.height / 2).max(4)),
        Constraint::Min(0),
    ])
    .areas(rest);
    draw_objects(frame, objects, app, db);
    draw_jobs(frame, jobs, app, db, wide);
}

fn draw_info(frame: &mut Frame, area: Rect, app: &App, db: &DatabaseHealth) {
    let edition = match db.edition.as_str() {
        "timescale" => Span::styled("Community edition", theme::bold()),
        "apache" => Span::styled(
            "Apache edition (continuous aggregates are plain views)",
            theme::warn(),
        ),
        other => Span::raw(other.to_string()),
    };
    let total: i64 = db.objects.iter().filter_map(|o| o.bytes).sum();
    let failing = db.jobs.iter().filter(|j| job_failing(j)).count();
    let lines = vec![
        Line::from(vec![
            Span::styled("TimescaleDB ", theme::dim()),
            Span::styled(db.extension_version.clone(), theme::bold()),
            Span::raw(" · "),
            edition,
        ]),
        Line::from(vec![
            Span::styled("Chunks ", theme::dim()),
            Span::styled(fmt::int(db.chunks), theme::bold()),
            Span::styled("  Columnstore ", theme::dim()),
            match db.compression_ratio {
                Some(r) => Span::styled(format!("{r:.1}× smaller"), theme::bold()),
                None => Span::styled("no compressed chunks", theme::dim()),
            },
            Span::styled("  Total ", theme::dim()),
            Span::styled(fmt::bytes(total), theme::bold()),
            Span::styled("  Jobs ", theme::dim()),
            Span::styled(db.jobs.len().to_string(), theme::bold()),
            if failing > 0 {
                Span::styled(format!(" ({failing} failing)"), theme::error())
            } else {
                Span::raw("")
            },
        ]),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(section_block(app, Analysis::Database, "Database".into())),
        area,
    );
}

/// `2m 10s`, or `—` when unknown.
fn lag(s: Option<f64>) -> String {
    s.map_or("—".into(), fmt::secs)
}

fn lag_bytes(b: Option<i64>) -> String {
    b.map_or("—".into(), |b| fmt::bytes(b.max(0)))
}

fn draw_replication(frame: &mut Frame, area: Rect, app: &App, r: &Replication, wide: bool) {
    let s = &r.status;
    if s.in_recovery && r.standbys.is_empty() {
        let replayed = match s.last_replay_at.as_deref() {
            Some(t) => format!(
                "{} UTC ({})",
                crate::app::parse_time(t).map_or(t.to_string(), fmt::hms),
                when(app, t)
            ),
            None => "none since start".into(),
        };
        let lines = vec![
            Line::from(vec![
                Span::styled("Hot standby", theme::warn()),
                Span::styled(" (read-only)", theme::dim()),
                Span::styled("  Replay lag ", theme::dim()),
                Span::styled(lag(s.replay_lag_seconds), theme::bold()),
                Span::styled("  Not replayed ", theme::dim()),
                Span::styled(lag_bytes(s.receive_replay_gap_bytes), theme::bold()),
            ]),
            Line::from(vec![
                Span::styled("Last replayed transaction ", theme::dim()),
                Span::styled(replayed, theme::bold()),
            ]),
        ];
        frame.render_widget(
            Paragraph::new(lines).block(section_block(
                app,
                Analysis::Database,
                "Replication · standby".into(),
            )),
            area,
        );
        return;
    }
    let role = if s.in_recovery { "standby" } else { "primary" };
    let title = format!(
        "Replication · {role}, {} standby{}",
        r.standbys.len(),
        if r.standbys.len() == 1 { "" } else { "s" }
    );
    let rows = r.standbys.iter().map(|st| {
        let name = if st.application_name.is_empty() {
            "(unnamed)".to_string()
        } else {
            st.application_name.clone()
        };
        let name_w = if wide { 24 } else { 16 };
        let mut cells = vec![Cell::from(text::fit(&name, name_w)).style(theme::bold())];
        if !st.visible {
            cells.push(Cell::from("hidden").style(theme::dim()));
            if wide {
                cells.extend([Cell::from(""), Cell::from(""), Cell::from("")]);
            }
            cells.extend([Cell::from(""), Cell::from("")]);
            let note = if wide {
                "not visible to this role (needs pg_monitor)"
            } else {
                "not visible to this role"
            };
            cells.push(Cell::from(note).style(theme::warn()));
            return Row::new(cells);
        }
        let state = st.state.clone().unwrap_or_default();
        let streaming = state == "streaming";
        cells.push(Cell::from(state).style(if streaming {
            theme::good()
        } else {
            theme::warn()
        }));
        if wide {
            cells.extend([
                Cell::from(st.sync_state.clone().unwrap_or_default()),
                Cell::from(format!("{:>9}", lag(st.write_lag_seconds))),
                Cell::from(format!("{:>9}", lag(st.flush_lag_seconds))),
            ]);
        }
        cells.extend([
            Cell::from(format!("{:>9}", lag(st.replay_lag_seconds))),
            Cell::from(format!("{:>10}", lag_bytes(st.replay_lag_bytes))),
            Cell::from(st.client_addr.clone().unwrap_or_else(|| "local".into())),
        ]);
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(if wide { 24 } else { 16 }),
        Constraint::Length(9),
    ];
    let mut header = vec![Cell::from("Standby"), Cell::from("State")];
    if wide {
        widths.extend([
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(9),
        ]);
        header.extend([
            Cell::from("Sync"),
            Cell::from(format!("{:>9}", "Write lag")),
            Cell::from(format!("{:>9}", "Flush lag")),
        ]);
    }
    widths.extend([
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Min(10),
    ]);
    header.extend([
        Cell::from(format!("{:>9}", "Replay")),
        Cell::from(format!("{:>10}", "Behind")),
        Cell::from("Address"),
    ]);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme::header()))
        .block(section_block(app, Analysis::Database, title));
    frame.render_widget(table, area);
}

fn draw_objects(frame: &mut Frame, area: Rect, app: &App, db: &DatabaseHealth) {
    let rows = db.objects.iter().map(|o| {
        Row::new(vec![
            Cell::from(text::fit(&o.name, 40)).style(theme::bold()),
            Cell::from(text::fit(&o.kind, 20)),
            match o.bytes {
                Some(b) => Cell::from(format!("{:>10}", fmt::bytes(b))),
                None => Cell::from(format!("{:>10}", "—")).style(theme::dim()),
            },
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Max(40),
            Constraint::Length(20),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new(vec![
            Cell::from("Object"),
            Cell::from("Kind"),
            Cell::from(format!("{:>10}", "Size")),
        ])
        .style(theme::header()),
    )
    .block(section_block(
        app,
        Analysis::Database,
        "Tables and aggregates".into(),
    ));
    frame.render_widget(table, area);
}

fn job_failing(j: &Job) -> bool {
    j.last_status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("failed") || s.eq_ignore_ascii_case("failure"))
}

/// `3m ago` for an RFC 3339 time, else the text as given.
fn when(app: &App, s: &str) -> String {
    match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => format!("{} ago", fmt::age((app.now - t).as_seconds_f64())),
        Err(_) => s.to_string(),
    }
}

fn draw_jobs(frame: &mut Frame, area: Rect, app: &App, db: &DatabaseHealth, wide: bool) {
    let title = "Background jobs";
    if db.jobs.is_empty() {
        frame.render_widget(
            Paragraph::new("no background jobs (the Apache edition has none)")
                .style(theme::dim())
                .block(section_block(app, Analysis::Database, title.into())),
            area,
        );
        return;
    }
    let rows = db.jobs.iter().map(|j| {
        let failing = job_failing(j);
        let status = j.last_status.clone().unwrap_or_else(|| "never run".into());
        let status_cell = if failing {
            Cell::from(format!("{status}!")).style(theme::error())
        } else if j.last_status.is_none() {
            Cell::from(status).style(theme::dim())
        } else {
            Cell::from(status).style(theme::good())
        };
        let fails = Cell::from(format!("{:>5}", fmt::int(j.total_failures))).style(
            if j.total_failures > 0 {
                theme::warn()
            } else {
                theme::dim()
            },
        );
        let mut cells = vec![
            Cell::from(format!("{:>4}", j.id)),
            Cell::from(text::fit(&j.name, if wide { 30 } else { 24 })).style(if failing {
                theme::error()
            } else {
                theme::bold()
            }),
        ];
        if wide {
            cells.push(Cell::from(text::fit(&j.target, 26)));
            cells.push(Cell::from(text::fit(&j.schedule, 10)));
        }
        cells.extend([
            Cell::from(j.last_run.as_deref().map_or("—".into(), |s| when(app, s))),
            status_cell,
            fails,
            match &j.last_error {
                Some(e) => Cell::from(e.clone()).style(theme::error()),
                None => Cell::from("—").style(theme::dim()),
            },
        ]);
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(if wide { 30 } else { 24 }),
    ];
    let mut header = vec!["  ID", "Job"];
    if wide {
        widths.extend([Constraint::Length(26), Constraint::Length(10)]);
        header.extend(["Target", "Schedule"]);
    }
    widths.extend([
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Min(8),
    ]);
    header.extend(["Last run", "Status", "Fails", "Last error"]);
    let selected = app.selection(Analysis::Database).min(db.jobs.len() - 1);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme::header()))
        .row_highlight_style(theme::selected())
        .block(section_block(app, Analysis::Database, title.into()));
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, area, &mut state);
}
