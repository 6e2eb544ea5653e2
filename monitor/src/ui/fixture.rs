//! The fixed data the render tests draw: a dashboard a few seconds into a healthy run
//! (every analysis filled, two collectors polled, one failing) and the builders of its
//! parts, shared by `tests.rs` and the other `tests_*` modules.
//!
//! Invariant: no clock, no randomness: everything is relative to [`NOW`], so a snapshot
//! changes only when drawing changes.

use std::{collections::VecDeque, time::Duration};

use time::{macros::datetime, Date, OffsetDateTime};

use crate::{
    analysis::{Analysis, Snapshot},
    app::{App, Config, DbStatus, PollSlot, TimeRange},
    model::*,
};

/// The tabs before the Pages analysis: the snapshots taken then keep their screens (the tab
/// bar, the help's key range, the banner's query count); the full registry is drawn by
/// [`pages_view_with_every_tab`].
pub(super) fn seven_tabs() -> Vec<Analysis> {
    Analysis::ALL[..7].to_vec()
}

pub(super) const NOW: OffsetDateTime = datetime!(2025-03-01 12:00:00 UTC);

pub(super) fn rfc(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(super) fn health(
    id: &str,
    region: &str,
    age_s: i64,
    events: i64,
    bytes: i64,
    rate: f64,
    db: &str,
) -> CollectorHealth {
    CollectorHealth {
        collector_id: id.into(),
        region: region.into(),
        version: "0.1.0".into(),
        at: rfc(NOW - time::Duration::seconds(age_s)),
        buffered_events: events,
        buffered_bytes: bytes,
        buffer_limit_bytes: 256 << 20,
        oldest_buffered_age_seconds: if events > 0 { 42.0 } else { 0.0 },
        accepted_total: 1_204_511,
        forwarded_total: 1_203_307,
        rejected_total: 17,
        quarantined_total: 2,
        forward_rate: rate,
        last_error: None,
        database_state: db.into(),
        forwarding_paused: false,
    }
}

fn row(h: CollectorHealth) -> CollectorRow {
    CollectorRow {
        source: Source::Heartbeat,
        age_seconds: 0.0,
        fill: 0.0,
        drain_seconds: None,
        health: h,
    }
}

fn live() -> Live {
    Live {
        per_minute: (0..60)
            .map(|i: i64| MinuteCount {
                minute: NOW - time::Duration::minutes(59 - i),
                events: if (38..43).contains(&i) {
                    120 + i
                } else {
                    800 + (i * 37) % 400
                },
            })
            .collect(),
        events_per_second: 14.2,
        active_users_5m: 312,
        active_users_1h: 2_841,
        active_users_24h: 41_207,
        top_events: [
            ("page_view", 31_204),
            ("add_to_cart", 9_811),
            ("checkout_start", 3_207),
            ("purchase", 1_402),
            ("search", 980),
            ("login", 512),
            ("signup", 87),
        ]
        .into_iter()
        .map(|(n, c)| NameCount {
            name: n.into(),
            count: c,
        })
        .collect(),
        lag_p50_seconds: Some(0.42),
        lag_p99_seconds: Some(3.8),
    }
}

fn collectors() -> Collectors {
    let mut us = health("edge-us-1", "us-east", 95, 48_211, 231 << 20, 0.0, "down");
    us.last_error = Some("connection refused (os error 111)".into());
    us.oldest_buffered_age_seconds = 1_830.0;
    let history = (0..90)
        .map(|i: i64| HistoryPoint {
            at: NOW - time::Duration::seconds(95 + (89 - i) * 10),
            collector_id: "edge-us-1".into(),
            buffered_events: if i < 40 {
                300 + (i % 7) * 20
            } else {
                (i - 39) * 940
            },
            forward_rate: if i < 40 {
                850.0 + (i % 5) as f64 * 10.0
            } else {
                0.0
            },
            database_state: if i < 40 { "up" } else { "down" }.into(),
        })
        .collect();
    Collectors {
        collectors: vec![
            row(health(
                "edge-eu-1",
                "eu-west",
                6,
                1_204,
                2 << 20,
                851.5,
                "up",
            )),
            row(us),
            row(health("edge-ap-1", "ap-south", 8, 0, 0, 112.0, "up")),
        ],
        history,
    }
}

fn funnel() -> Funnel {
    let steps = [
        ("page_view", 12_840),
        ("add_to_cart", 3_912),
        ("checkout_start", 1_204),
        ("purchase", 611),
    ];
    let first = steps[0].1 as f64;
    let mut prev = first;
    Funnel {
        steps: steps
            .iter()
            .map(|(n, s)| {
                let st = FunnelStep {
                    name: (*n).into(),
                    sessions: *s,
                    step_conversion: *s as f64 / prev,
                    overall_conversion: *s as f64 / first,
                };
                prev = *s as f64;
                st
            })
            .collect(),
    }
}

fn retention() -> Retention {
    let today: Date = NOW.date();
    Retention {
        cohorts: (0..14i64)
            .map(|k| {
                let days_ago = 13 - k;
                let users = 900 + (k * 53) % 300;
                let len = (days_ago + 1).min(31) as usize;
                let retained = (0..len)
                    .map(|n| {
                        if n == 0 {
                            users
                        } else {
                            (users as f64 * 0.42 * 0.9f64.powi(n as i32 - 1)).round() as i64
                        }
                    })
                    .collect();
                Cohort {
                    day: today - time::Duration::days(days_ago),
                    users,
                    retained,
                }
            })
            .collect(),
    }
}

fn paths() -> Paths {
    let t = [
        ("page_view", "page_view", 18_204, 41.2),
        ("page_view", "add_to_cart", 6_310, 63.0),
        ("add_to_cart", "page_view", 3_118, 22.5),
        ("add_to_cart", "checkout_start", 2_904, 95.4),
        ("page_view", "search", 1_877, 12.1),
        ("search", "page_view", 1_702, 8.3),
        ("checkout_start", "purchase", 1_205, 184.0),
        ("checkout_start", "page_view", 611, 30.9),
        ("purchase", "page_view", 402, 300.2),
        ("login", "page_view", 390, 3.1),
        ("signup", "login", 80, 45.0),
        (
            "page_view",
            "a_really_long_event_name_that_is_cut",
            12,
            7200.0,
        ),
    ];
    Paths {
        transitions: t
            .iter()
            .map(|(f, to, c, s)| Transition {
                from: (*f).into(),
                to: (*to).into(),
                count: *c,
                avg_seconds: *s,
            })
            .collect(),
    }
}

fn breakdown() -> Breakdown {
    let rows = |v: &[(&str, i64, i64)]| {
        v.iter()
            .map(|(k, e, u)| BreakdownRow {
                key: (*k).into(),
                events: *e,
                users: *u,
            })
            .collect()
    };
    Breakdown {
        by_device: rows(&[
            ("desktop", 21_408, 8_102),
            ("mobile", 18_733, 9_877),
            ("tablet", 4_102, 1_520),
            ("other", 611, 301),
        ]),
        by_country: rows(&[
            ("US", 14_922, 6_120),
            ("DE", 9_310, 3_904),
            ("FR", 7_004, 2_871),
            ("BR", 5_871, 2_402),
            ("IN", 4_966, 2_310),
            ("CN", 2_781, 1_193),
            ("(none)", 12, 9),
        ]),
        by_event: rows(&[
            ("page_view", 31_204, 19_004),
            ("add_to_cart", 9_811, 6_120),
            ("checkout_start", 3_207, 2_409),
            ("purchase", 1_402, 1_198),
            ("search", 980, 702),
            ("login", 512, 498),
            ("signup", 87, 87),
        ]),
    }
}

pub(super) fn database() -> DatabaseHealth {
    let job = |id, name: &str, target: &str, status: Option<&str>, fails, err: Option<&str>| Job {
        id,
        name: name.into(),
        target: target.into(),
        schedule: "1 hour".into(),
        last_run: status.map(|_| rfc(NOW - time::Duration::minutes(12))),
        last_status: status.map(Into::into),
        total_failures: fails,
        last_error: err.map(Into::into),
    };
    DatabaseHealth {
        edition: "timescale".into(),
        extension_version: "2.19.3".into(),
        objects: vec![
            ObjectSize {
                name: "user_events".into(),
                kind: "hypertable".into(),
                bytes: Some(3_221_225_472),
            },
            ObjectSize {
                name: "collector_heartbeats".into(),
                kind: "hypertable".into(),
                bytes: Some(48 << 20),
            },
            ObjectSize {
                name: "events_per_minute".into(),
                kind: "continuous aggregate".into(),
                bytes: Some(96 << 20),
            },
            ObjectSize {
                name: "daily_users".into(),
                kind: "continuous aggregate".into(),
                bytes: Some(12 << 20),
            },
            ObjectSize {
                name: "edge_aggregates".into(),
                kind: "view".into(),
                bytes: None,
            },
        ],
        chunks: 38,
        compression_ratio: Some(7.4),
        jobs: vec![
            job(
                1000,
                "Refresh events_per_minute",
                "events_per_minute",
                Some("Success"),
                0,
                None,
            ),
            job(
                1001,
                "Refresh daily_users",
                "daily_users",
                Some("Failed"),
                3,
                Some("canceling statement due to statement timeout"),
            ),
            job(
                1002,
                "Columnstore policy",
                "user_events",
                Some("Success"),
                1,
                None,
            ),
            job(
                1003,
                "Retention policy",
                "collector_heartbeats",
                None,
                0,
                None,
            ),
        ],
        replication: Replication::default(),
    }
}

fn pages() -> Pages {
    let pages = [
        ("/", 48_112, 21_004),
        ("/products/espresso-machine", 12_480, 9_311),
        ("/cart", 9_870, 8_002),
        ("/商品/抹茶-セット", 7_204, 5_190),
        ("/search?q=🎧+headphones", 3_311, 2_870),
        (
            "/checkout/shipping-and-payment-details-for-returning-customers",
            2_104,
            1_980,
        ),
        ("/blog/2025/02/how-we-roast", 812, 640),
    ]
    .into_iter()
    .map(|(url, views, users)| PageRow {
        url: url.into(),
        views,
        users,
    })
    .collect();
    Pages { pages }
}

/// The dashboard a few seconds into a healthy run, with two direct polls (one failing).
pub(super) fn fixture() -> App {
    let mut app = App::new(
        Config {
            refresh: Duration::from_secs(2),
            steps: ["page_view", "add_to_cart", "checkout_start", "purchase"]
                .map(String::from)
                .to_vec(),
            collectors: vec!["127.0.0.1:9100".into(), "10.0.0.9:9100".into()],
            has_database: true,
            range: TimeRange::H1,
            tabs: seven_tabs(),
            max_replica_lag: crate::app::DEFAULT_MAX_REPLICA_LAG,
        },
        NOW,
    );
    app.data = Snapshot {
        live: Some(live()),
        funnel: Some(funnel()),
        retention: Some(retention()),
        paths: Some(paths()),
        breakdown: Some(breakdown()),
        collectors: Some(collectors()),
        database: Some(database()),
        pages: Some(pages()),
        tail: app.data.tail.take(),
    };
    app.db = DbStatus::Ok;
    app.data_at = Some(NOW - Duration::from_secs(1));
    app.data_range = Some(TimeRange::H1);
    app.last_took = Some(Duration::from_millis(143));
    app.next_fetch = Some(NOW + Duration::from_secs(1));
    let polled = health("edge-eu-1", "eu-west", 1, 1_180, 2 << 20, 860.0, "up");
    app.polls[0] = PollSlot {
        address: "127.0.0.1:9100".into(),
        last: Some(polled),
        error: None,
        history: VecDeque::new(),
    };
    app.polls[1].error =
        Some("cannot connect to 10.0.0.9:9100: Connection refused (os error 111)".into());
    app
}
