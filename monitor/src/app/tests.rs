//! The update logic's tests: scheduling, back-off, range changes, keys, the merge of polls
//! and heartbeats; all from fixed messages and a fixed clock.
//!
//! Invariant: no I/O and no real clock: every test is deterministic.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::model::{CollectorHealth, CollectorRow, Collectors, Live, Source};
use time::macros::datetime;

pub(super) const T0: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

pub(super) fn app() -> App {
    App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec!["a".into(), "b".into()],
            collectors: vec!["127.0.0.1:9100".into()],
            has_database: true,
            range: TimeRange::H1,
            tabs: Analysis::ALL.to_vec(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        T0,
    )
}

pub(super) fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

/// A fetch answered section by section: live data, a failed funnel, then the end.
pub(super) fn ok_fetch(range: TimeRange) -> Vec<Msg> {
    let part = Fetched {
        snapshot: Snapshot {
            live: Some(Live::default()),
            ..Snapshot::default()
        },
        errors: vec![(Analysis::Funnel, "boom".into())],
        timings: vec![
            (Analysis::Live, Duration::from_millis(100)),
            (Analysis::Funnel, Duration::from_millis(20)),
        ],
        total: Duration::from_millis(120),
        replica: None,
    };
    let done = Fetched {
        total: Duration::from_millis(120),
        ..Fetched::default()
    };
    [(part, false), (done, true)]
        .into_iter()
        .map(|(f, done)| {
            Msg::Fetched(Box::new(FetchOutcome {
                range,
                result: Ok(f),
                done,
            }))
        })
        .collect()
}

/// Applies messages in order; returns the commands of the last.
pub(super) fn feed(a: &mut App, msgs: Vec<Msg>) -> Vec<Cmd> {
    let mut last = Vec::new();
    for m in msgs {
        last = update(a, m);
    }
    last
}

fn health(id: &str, at: &str, events: i64, rate: f64) -> CollectorHealth {
    CollectorHealth {
        collector_id: id.into(),
        region: "eu".into(),
        at: at.into(),
        buffered_events: events,
        buffered_bytes: 500,
        buffer_limit_bytes: 1000,
        forward_rate: rate,
        ..CollectorHealth::default()
    }
}

#[test]
fn first_tick_starts_a_fetch_and_a_poll() {
    let mut a = app();
    let cmds = update(&mut a, Msg::Tick(T0));
    assert_eq!(cmds.len(), 2);
    assert!(matches!(
        cmds[0],
        Cmd::Fetch {
            range: TimeRange::H1,
            ..
        }
    ));
    assert_eq!(cmds[1], Cmd::Poll);
    // Nothing more while they run.
    assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(5))).is_empty());
    assert_eq!(a.fetch_running_for(), Some(Duration::from_secs(5)));
}

#[test]
fn success_schedules_next_refresh_and_keeps_partial_errors() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    let cmds = feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(cmds.is_empty());
    assert_eq!(a.db, DbStatus::Ok);
    assert!(a.data.live.is_some());
    assert_eq!(
        a.section_errors.get(&Analysis::Funnel).map(String::as_str),
        Some("boom")
    );
    assert_eq!(a.next_fetch, Some(T0 + Duration::from_secs(2)));
    assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(1))).is_empty());
    let cmds = update(&mut a, Msg::Tick(T0 + Duration::from_secs(2)));
    assert!(matches!(cmds[..], [Cmd::Fetch { .. }]));
}

#[test]
fn failures_back_off_with_countdown_and_r_retries_now() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    let fail = |e: &str| {
        Msg::Fetched(Box::new(FetchOutcome {
            range: TimeRange::H1,
            result: Err(e.into()),
            done: true,
        }))
    };
    update(&mut a, fail("connection refused"));
    assert_eq!(
        a.db,
        DbStatus::Failed {
            error: "connection refused".into(),
            failures: 1
        }
    );
    assert_eq!(a.retry_in(), Some(Duration::from_secs(2)));
    update(&mut a, Msg::Tick(T0 + Duration::from_secs(2)));
    update(&mut a, fail("connection refused"));
    assert_eq!(a.retry_in(), Some(Duration::from_secs(4)));
    update(&mut a, Msg::Tick(T0 + Duration::from_secs(3)));
    assert_eq!(a.retry_in(), Some(Duration::from_secs(3)));
    let cmds = update(&mut a, key(KeyCode::Char('r')));
    assert!(cmds.iter().any(|c| matches!(c, Cmd::Fetch { .. })));
    // Old data stays on screen through failures.
    assert_eq!(retry_delay(Duration::from_secs(2), 10), MAX_RETRY_DELAY);
}

#[test]
fn pause_stops_refreshes_but_r_and_range_changes_still_fetch() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    feed(&mut a, ok_fetch(TimeRange::H1));
    update(&mut a, Msg::Polled(vec![Err("refused".into())]));
    update(&mut a, key(KeyCode::Char('p')));
    assert!(a.paused);
    assert!(update(&mut a, Msg::Tick(T0 + Duration::from_secs(60))).is_empty());
    let cmds = update(&mut a, key(KeyCode::Right));
    assert_eq!(a.range, TimeRange::H24);
    assert!(matches!(
        cmds[..],
        [Cmd::Fetch {
            range: TimeRange::H24,
            ..
        }]
    ));
    // A late answer for 24h is applied; unpausing resumes the schedule.
    feed(&mut a, ok_fetch(TimeRange::H24));
    assert_eq!(a.data_range, Some(TimeRange::H24));
    // Unpausing polls at once (overdue) and fetches when the next refresh is due.
    assert_eq!(update(&mut a, key(KeyCode::Char('p'))), vec![Cmd::Poll]);
    let cmds = update(&mut a, Msg::Tick(T0 + Duration::from_secs(62)));
    assert!(matches!(
        cmds[..],
        [Cmd::Fetch {
            range: TimeRange::H24,
            ..
        }]
    ));
}

#[test]
fn answer_for_an_old_range_is_dropped_and_refetched() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    update(&mut a, key(KeyCode::Left));
    assert_eq!(a.range, TimeRange::M15);
    let cmds = feed(&mut a, ok_fetch(TimeRange::H1));
    assert!(a.data.live.is_none());
    assert!(matches!(
        cmds[..],
        [Cmd::Fetch {
            range: TimeRange::M15,
            ..
        }]
    ));
    // Ranges stop at both ends.
    for _ in 0..10 {
        update(&mut a, key(KeyCode::Left));
    }
    assert_eq!(a.range, TimeRange::M15);
    for _ in 0..10 {
        update(&mut a, key(KeyCode::Right));
    }
    assert_eq!(a.range, TimeRange::D30);
}

#[test]
fn visible_section_first_others_in_the_background() {
    let mut a = app();
    // Every database analysis; never the Tail, which the collectors feed.
    assert_eq!(a.sections_due(), Analysis::QUERIED.to_vec());
    update(&mut a, Msg::Tick(T0));
    assert_eq!(a.pending, Analysis::QUERIED.to_vec());
    // Sections arrive one by one; the banner can name the one running.
    let part = |s: Analysis| {
        Msg::Fetched(Box::new(FetchOutcome {
            range: TimeRange::H1,
            result: Ok(Fetched {
                timings: vec![(s, Duration::from_millis(5))],
                ..Fetched::default()
            }),
            done: false,
        }))
    };
    update(&mut a, part(Analysis::Live));
    update(&mut a, Msg::Tick(T0 + Duration::from_secs(4)));
    assert_eq!(
        a.running_section(),
        Some((Analysis::Collectors, Duration::from_secs(4)))
    );
    for s in &Analysis::QUERIED[1..] {
        update(&mut a, part(*s));
    }
    update(
        &mut a,
        Msg::Fetched(Box::new(FetchOutcome {
            range: TimeRange::H1,
            result: Ok(Fetched::default()),
            done: true,
        })),
    );
    assert!(a.fetch_started.is_none() && a.pending.is_empty());
    update(&mut a, key(KeyCode::Char('3')));
    assert_eq!(
        a.sections_due(),
        vec![Analysis::Funnel, Analysis::Live, Analysis::Collectors]
    );
    update(
        &mut a,
        Msg::Tick(T0 + BACKGROUND_REFRESH + Duration::from_secs(5)),
    );
    assert_eq!(
        a.pending.len(),
        Analysis::QUERIED.len(),
        "background sections due again"
    );
}

#[test]
fn keys_switch_views_help_and_quit() {
    let mut a = app();
    update(&mut a, key(KeyCode::Tab));
    assert_eq!(a.view, Analysis::Collectors);
    update(&mut a, key(KeyCode::BackTab));
    update(&mut a, key(KeyCode::BackTab));
    // Back from the first tab wraps to the last one of the registry.
    assert_eq!(a.view, Analysis::Tail);
    update(&mut a, key(KeyCode::BackTab));
    assert_eq!(a.view, Analysis::Pages);
    update(&mut a, key(KeyCode::Char('8')));
    assert_eq!(a.view, Analysis::Pages);
    update(&mut a, key(KeyCode::Char('4')));
    assert_eq!(a.view, Analysis::Retention);
    update(&mut a, key(KeyCode::Char('?')));
    assert!(a.help);
    update(&mut a, key(KeyCode::Char('1')));
    assert!(!a.help);
    assert_eq!(
        a.view,
        Analysis::Retention,
        "the key that closes help does nothing else"
    );
    update(&mut a, key(KeyCode::Char('q')));
    assert!(a.quit);
    let mut b = app();
    update(
        &mut b,
        Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
    );
    assert!(b.quit);
}

#[test]
fn polls_merge_with_heartbeats_freshest_wins() {
    let mut a = app();
    a.polls.push(PollSlot {
        address: "127.0.0.1:9999".into(),
        last: None,
        error: None,
        history: VecDeque::new(),
    });
    a.data.collectors = Some(Collectors {
        collectors: vec![
            CollectorRow {
                health: health("edge-a", "2025-03-01T11:59:50Z", 100, 50.0),
                source: Source::Heartbeat,
                age_seconds: 10.0,
                fill: 0.5,
                drain_seconds: Some(2.0),
            },
            CollectorRow {
                health: health("edge-b", "2025-03-01T11:58:00Z", 100, 0.0),
                source: Source::Heartbeat,
                age_seconds: 120.0,
                fill: 0.5,
                drain_seconds: None,
            },
        ],
        history: vec![],
    });
    update(
        &mut a,
        Msg::Polled(vec![
            Ok(health("edge-a", "2025-03-01T12:00:00Z", 10, 5.0)),
            Err("connection refused".into()),
        ]),
    );
    let lines = a.collector_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].id, "edge-a");
    assert_eq!(lines[0].source, Some(Source::Poll));
    assert_eq!(
        lines[0].health.as_ref().map(|h| h.buffered_events),
        Some(10)
    );
    assert_eq!(lines[0].drain_seconds, Some(2.0));
    assert!(!lines[0].stale());
    assert_eq!(lines[1].id, "edge-b");
    assert!(lines[1].stale());
    assert_eq!(lines[1].drain_seconds, None);
    assert_eq!(lines[2].id, "127.0.0.1:9999");
    assert!(lines[2].stale());
    assert_eq!(lines[2].poll_error.as_deref(), Some("connection refused"));
    assert_eq!(a.history_for(&lines[0]).len(), 1);
    // Selection and detail.
    update(&mut a, key(KeyCode::Char('2')));
    update(&mut a, key(KeyCode::End));
    assert_eq!(a.selection(Analysis::Collectors), 2);
    update(&mut a, key(KeyCode::Enter));
    assert!(a.detail);
    update(&mut a, key(KeyCode::Esc));
    assert!(!a.detail);
}

#[test]
fn no_database_means_polls_only() {
    let mut a = App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: vec![],
            collectors: vec!["x:1".into()],
            has_database: false,
            range: TimeRange::H1,
            tabs: Analysis::ALL.to_vec(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        T0,
    );
    let cmds = update(&mut a, Msg::Tick(T0));
    assert_eq!(cmds, vec![Cmd::Poll]);
    assert_eq!(a.db, DbStatus::NotConfigured);
    assert!(update(&mut a, key(KeyCode::Char('r'))).is_empty());
}

fn replica(in_recovery: bool, lag: Option<f64>) -> Msg {
    Msg::Fetched(Box::new(FetchOutcome {
        range: TimeRange::H1,
        result: Ok(Fetched {
            replica: Some(crate::model::ReplicaStatus {
                in_recovery,
                replay_lag_seconds: lag,
                ..Default::default()
            }),
            ..Fetched::default()
        }),
        done: false,
    }))
}

#[test]
fn replica_lag_past_the_threshold_is_flagged() {
    let mut a = app();
    update(&mut a, Msg::Tick(T0));
    assert!(!a.on_standby());
    assert_eq!(a.replica_lagging(), None);
    // A standby within the threshold: known as a standby, no lag flagged.
    update(&mut a, replica(true, Some(12.0)));
    assert!(a.on_standby());
    assert_eq!(a.replica_lagging(), None);
    // Past it (default 30 s).
    update(&mut a, replica(true, Some(130.0)));
    assert_eq!(a.replica_lagging(), Some(130.0));
    // A part without a status (a section's answer) keeps the last one.
    update(&mut a, ok_fetch(TimeRange::H1).remove(0));
    assert_eq!(a.replica_lagging(), Some(130.0));
    // Promoted: a primary has no replay lag.
    update(&mut a, replica(false, None));
    assert!(!a.on_standby());
    assert_eq!(a.replica_lagging(), None);
    // The threshold is the configured one.
    a.max_replica_lag = Duration::from_secs(5);
    update(&mut a, replica(true, Some(6.0)));
    assert_eq!(a.replica_lagging(), Some(6.0));
}
