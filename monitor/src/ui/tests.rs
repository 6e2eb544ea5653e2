//! Render tests: every view, the collector detail, the help overlay and the banners, drawn
//! from fixed data with ratatui's `TestBackend` at 80×24 and 160×48 and pinned by insta
//! snapshots (`src/ui/snapshots/`); plus styles that carry meaning, and "never panics" at
//! odd sizes.
//!
//! Invariant: the fixture is fixed (no clock, no randomness), so a snapshot changes only
//! when drawing changes.

use std::time::Duration;

use ratatui::{backend::TestBackend, Terminal};

use super::fixture::{database, rfc, seven_tabs};
pub(super) use super::fixture::{fixture, health, NOW};
use crate::{
    analysis::Analysis,
    app::{App, Config, DbStatus, TimeRange},
    model::*,
};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

pub(super) fn render(app: &App, (w, h): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = match Terminal::new(TestBackend::new(w, h)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    if let Err(e) = terminal.draw(|f| super::draw(f, app)) {
        panic!("draw: {e}");
    }
    terminal
}

pub(super) fn snap(name: &str, app: &App) {
    for size in SIZES {
        let terminal = render(app, size);
        insta::assert_snapshot!(
            format!("{name}_{}x{}", size.0, size.1),
            terminal.backend().to_string()
        );
    }
}

#[test]
fn every_view() {
    for view in fixture().tabs {
        let mut app = fixture();
        app.view = view;
        snap(&view.title().to_lowercase(), &app);
    }
}

#[test]
fn pages_view_with_every_tab() {
    let mut app = fixture();
    app.tabs = Analysis::ALL.to_vec();
    app.view = Analysis::Pages;
    snap("pages", &app);
    // Another tab selected: at 80 columns the last tab shrinks to its key.
    app.view = Analysis::Database;
    let t = render(&app, (80, 24));
    let top = t.backend().to_string();
    assert!(
        top.contains(
            "1 Overview 2 Collectors 3 Funnel 4 Retention 5 Paths 6 Breakdown 7 Database 8"
        ),
        "{top}"
    );
    app.help = true;
    snap("help_every_tab", &app);
}

#[test]
fn collector_detail() {
    let mut app = fixture();
    app.view = Analysis::Collectors;
    app.selected[Analysis::Collectors.index()] = 2; // edge-us-1, stale, not draining
    app.detail = true;
    snap("collector_detail", &app);
}

#[test]
fn retention_counts() {
    let mut app = fixture();
    app.view = Analysis::Retention;
    app.retention_counts = true;
    app.selected[Analysis::Retention.index()] = 3;
    snap("retention_counts", &app);
}

#[test]
fn switching_range_keeps_old_data_labelled() {
    let mut app = fixture();
    app.view = Analysis::Funnel;
    for s in Analysis::ALL {
        app.section_at.insert(s, (NOW, TimeRange::H1));
    }
    app.range = TimeRange::D30;
    app.fetch_started = Some(NOW);
    app.pending = Analysis::ALL.to_vec();
    app.section_started = Some(NOW);
    snap("loading_other_range", &app);
}

#[test]
fn help_overlay() {
    let mut app = fixture();
    app.help = true;
    snap("help", &app);
}

#[test]
fn banner_database_down() {
    let mut app = fixture();
    app.db = DbStatus::Failed {
        error: "error connecting to server: Connection refused (os error 111)".into(),
        failures: 3,
    };
    app.next_fetch = Some(NOW + Duration::from_secs(7));
    app.view = Analysis::Collectors;
    snap("banner_database_down", &app);
}

#[test]
fn banner_slow_and_partial() {
    let mut app = fixture();
    app.fetch_started = Some(NOW - Duration::from_secs(9));
    app.pending = vec![Analysis::Retention, Analysis::Database];
    app.section_started = Some(NOW - Duration::from_secs(6));
    snap("banner_slow", &app);

    let mut app = fixture();
    app.view = Analysis::Funnel;
    app.data.funnel = None;
    app.section_errors.insert(
        Analysis::Funnel,
        "database error: relation \"funnel_sessions\" does not exist (42P01)".into(),
    );
    app.section_errors.insert(
        Analysis::Paths,
        "database error: canceling statement due to statement timeout (57014)".into(),
    );
    snap("banner_partial", &app);
}

#[test]
fn first_start_and_polls_only() {
    let app = App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec!["page_view".into()],
            collectors: vec![],
            has_database: true,
            range: TimeRange::H1,
            tabs: seven_tabs(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        NOW,
    );
    snap("waiting", &app);

    let mut app = App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec![],
            collectors: vec!["127.0.0.1:9100".into()],
            has_database: false,
            range: TimeRange::H24,
            tabs: seven_tabs(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        NOW,
    );
    app.polls[0].last = Some(health(
        "edge-eu-1",
        "eu-west",
        1,
        1_180,
        2 << 20,
        860.0,
        "down",
    ));
    app.view = Analysis::Collectors;
    snap("polls_only", &app);
}

#[test]
fn any_size_draws() {
    let sizes = [
        (1, 1),
        (20, 5),
        (39, 9),
        (40, 10),
        (60, 15),
        (79, 23),
        (81, 25),
        (300, 100),
    ];
    for size in sizes {
        for view in Analysis::ALL {
            for (help, detail) in [(false, false), (true, false), (false, true)] {
                let mut app = fixture();
                app.view = view;
                app.help = help;
                app.detail = detail;
                render(&app, size);
            }
        }
    }
}

fn standby(name: &str, addr: &str, replay: Option<f64>, bytes: Option<i64>) -> StandbyLag {
    StandbyLag {
        application_name: name.into(),
        client_addr: Some(addr.into()),
        state: Some("streaming".into()),
        sync_state: Some("async".into()),
        write_lag_seconds: replay.map(|r| r / 4.0),
        flush_lag_seconds: replay.map(|r| r / 2.0),
        replay_lag_seconds: replay,
        replay_lag_bytes: bytes,
        visible: true,
    }
}

#[test]
fn database_on_a_primary_with_standbys() {
    let mut app = fixture();
    app.view = Analysis::Database;
    app.replica = Some(ReplicaStatus::default());
    let mut db = database();
    db.replication.standbys = vec![
        standby("replica-東京", "10.0.0.21", Some(0.0042), Some(0)),
        standby("replica-eu", "10.0.0.22", Some(12.5), Some(48 << 20)),
        StandbyLag {
            application_name: "walreceiver".into(),
            client_addr: None,
            state: None,
            sync_state: None,
            write_lag_seconds: None,
            flush_lag_seconds: None,
            replay_lag_seconds: None,
            replay_lag_bytes: None,
            visible: false,
        },
    ];
    app.data.database = Some(db);
    snap("database_primary_standbys", &app);
}

#[test]
fn database_on_a_lagging_standby_with_the_banner() {
    let mut app = fixture();
    app.view = Analysis::Database;
    let status = ReplicaStatus {
        in_recovery: true,
        replay_lag_seconds: Some(130.0),
        last_replay_age_seconds: Some(130.0),
        last_replay_at: Some(rfc(NOW - time::Duration::seconds(130))),
        receive_replay_gap_bytes: Some(14 << 20),
    };
    app.replica = Some(status.clone());
    let mut db = database();
    db.replication.status = status;
    app.data.database = Some(db);
    snap("database_standby_lag", &app);
    // Every view shows the banner; within the threshold none does.
    for view in app.tabs.clone() {
        app.view = view;
        let text = render(&app, (80, 24)).backend().to_string();
        assert!(
            text.contains("replica lags 2m 10s: numbers are older than shown"),
            "{view:?}: {text}"
        );
    }
    app.max_replica_lag = Duration::from_secs(600);
    let text = render(&app, (80, 24)).backend().to_string();
    assert!(!text.contains("replica lags"), "{text}");
    assert!(text.contains("standby"), "{text}");
}
