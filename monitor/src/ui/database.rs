//! The Database view: TimescaleDB edition and version, table and aggregate sizes, chunks,
//! the columnstore ratio, and background jobs with failing ones highlighted.
//!
//! Invariant: a pure function of the state; a failing job is marked by its status word in
//! red, and jobs with past failures by their failure count, so neither relies on colour.

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
    model::{DatabaseHealth, Job},
};

use super::{draw_missing, fmt, section_block, theme};

impl super::View for crate::model::DatabaseHealth {
    fn draw(frame: &mut Frame, area: Rect, app: &App) {
        draw(frame, area, app);
    }
}

fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(db) = &app.data.database else {
        draw_missing(frame, area, app, Analysis::Database, "Database");
        return;
    };
    let wide = area.width >= 140;
    let [info, rest] = Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(area);
    draw_info(frame, info, app, db);
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

fn draw_objects(frame: &mut Frame, area: Rect, app: &App, db: &DatabaseHealth) {
    let rows = db.objects.iter().map(|o| {
        Row::new(vec![
            Cell::from(o.name.clone()).style(theme::bold()),
            Cell::from(o.kind.clone()),
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
            Cell::from(j.name.clone()).style(if failing {
                theme::error()
            } else {
                theme::bold()
            }),
        ];
        if wide {
            cells.push(Cell::from(j.target.clone()));
        }
        if wide {
            cells.push(Cell::from(j.schedule.clone()));
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
