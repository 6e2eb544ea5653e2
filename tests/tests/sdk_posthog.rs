//! PostHog's own Node library, `posthog-node` 5.70.0, and its Python library, `posthog`
//! 7.91.1 (installed pinned by `deploy/install-sdks`), against the real collector and
//! database (issue #14): each posts
//! gzipped `{"api_key": …, "batch": [...]}` to `/batch/`. A fixed script — a `$pageview`
//! with a URL, referrer, session and user agent, an identify, a capture with a Chinese name
//! and properties, one capture with its own `uuid` — lands every message exactly once with
//! its fields mapped as documented; the script run again lands its fixed-uuid message only
//! once; a wrong project key is a 401 the library reports; a permanent 400 is not retried;
//! PostHog bodies posted by hand to `/e/`, `/capture/` and `/i/v0/e/` land too.

use e2e::{
    check::wait_rows,
    client,
    db::TestDb,
    proc::{CollectorOpts, CollectorProc},
    sdk::{assert_resend_wrong_key_and_400, run_library},
};
use serde_json::json;

const KEY: &str = "phc_edge_posthog";
const FIXED_UUID: &str = "0190b6e4-0000-7000-8000-00000000c0de";

#[tokio::test(flavor = "multi_thread")]
async fn posthog_node_library_events_land_once_with_their_fields_mapped() {
    let (db, c) = posthog_journey("posthog", "posthog-node").await;
    let client = db.client().await.expect("client");

    // PostHog's other capture routes, by hand: the key in the body (`api_key`, `token`) or
    // a header.
    for (i, (path, body, headers)) in [
        (
            "/e/",
            json!({"api_key": KEY, "batch": [{"event": "$autocapture", "distinct_id": "7"}]}),
            vec![],
        ),
        (
            "/capture/",
            json!({"token": KEY, "batch": [{"event": "signup", "distinct_id": 8}]}),
            vec![],
        ),
        (
            "/i/v0/e/",
            json!([{"event": "$pageleave", "distinct_id": "9", "properties": {"token": KEY}}]),
            vec![("X-Write-Key", KEY)],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = client::post(c.ingest, path, body.to_string().as_bytes(), &headers).expect(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(
            wait_rows(&db, 8 + i as i64, std::time::Duration::from_secs(30)).await,
            8 + i as i64
        );
    }
    let users: Vec<Option<i64>> = client
        .query(
            "SELECT user_id FROM user_events
             WHERE event_name IN ('$autocapture', 'signup', '$pageleave') ORDER BY user_id",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, vec![Some(7), Some(8), Some(9)]);
    let r = client::post(
        c.ingest,
        "/e/",
        json!({"api_key": "wrong", "batch": [{"event": "x", "distinct_id": "1"}]})
            .to_string()
            .as_bytes(),
        &[],
    )
    .expect("post");
    assert_eq!(r.status, 401, "a wrong api_key in the body");
}

/// PostHog's Python library, `posthog` 7.91.1: the same script (it has no identify call: the
/// driver captures `$identify` with `$set` and `$anon_distinct_id`, as posthog-node does).
#[tokio::test(flavor = "multi_thread")]
async fn posthog_python_library_events_land_once_with_their_fields_mapped() {
    posthog_journey("python/posthog", "posthog-python").await;
}

/// The fixed script of `lib` (whose events carry `$lib` = `lib_name`), checked row by row;
/// then resent, a wrong key, a 400. The database and collector, for more checks.
async fn posthog_journey(lib: &str, lib_name: &str) -> (TestDb, CollectorProc) {
    let name = lib.replace('/', "_");
    let db = TestDb::migrated(&format!("sdk_{name}")).await.expect("db");
    let c = CollectorOpts::new(&format!("sdk-{name}"))
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{KEY}\"]"))
        .start()
        .expect("start");

    let errors = run_library(lib, &c, KEY, "journey");
    assert!(errors.is_empty(), "the library reported: {errors:?}");
    assert_eq!(
        wait_rows(&db, 4, std::time::Duration::from_secs(30)).await,
        4
    );
    let client = db.client().await.expect("client");
    let rows = client
        .query(
            "SELECT event_name, event_type, user_id, session_id, page_url, referrer, device_type,
                    properties->'$posthog'->>'distinct_id',
                    properties->'$posthog'->>'$anon_distinct_id',
                    properties->'$posthog'->'$set'->>'name',
                    properties->>'sku', properties->>'$lib', event_id::text,
                    properties::text LIKE '%' || $1 || '%'
             FROM user_events ORDER BY event_time, event_name",
            &[&KEY],
        )
        .await
        .expect("rows");
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1).unwrap_or_default(),
            )
        })
        .collect();
    for (name, kind) in [
        ("page_view", "page"),
        ("identify", "identify"),
        ("加入购物车", "track"),
        ("purchase", "track"),
    ] {
        assert_eq!(
            got.iter().filter(|(n, k)| n == name && k == kind).count(),
            1,
            "{name} as {kind} once in {got:?}"
        );
    }
    for r in &rows {
        let name: String = r.get(0);
        assert_eq!(
            r.get::<_, Option<String>>(11).as_deref(),
            Some(lib_name),
            "{name}: $lib kept"
        );
        assert_eq!(
            r.get::<_, Option<bool>>(13),
            Some(false),
            "{name}: no key stored"
        );
        match name.as_str() {
            "page_view" => {
                assert_eq!(r.get::<_, Option<i64>>(2), None, "anon-1 is not a user id");
                assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("s-1"));
                assert_eq!(
                    r.get::<_, Option<String>>(4).as_deref(),
                    Some("https://shop.example/")
                );
                assert_eq!(
                    r.get::<_, Option<String>>(5).as_deref(),
                    Some("https://search.example/")
                );
                assert_eq!(
                    r.get::<_, Option<String>>(6).as_deref(),
                    Some("mobile"),
                    "$raw_user_agent parsed"
                );
                assert_eq!(r.get::<_, Option<String>>(7).as_deref(), Some("anon-1"));
            }
            "identify" => {
                assert_eq!(r.get::<_, Option<i64>>(2), Some(42), "distinct_id 42");
                assert_eq!(r.get::<_, Option<String>>(8).as_deref(), Some("anon-1"));
                assert_eq!(
                    r.get::<_, Option<String>>(9).as_deref(),
                    Some("张伟"),
                    "$set kept"
                );
            }
            "加入购物车" => {
                assert_eq!(r.get::<_, Option<i64>>(2), Some(42));
                assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("s-1"));
                assert_eq!(r.get::<_, Option<String>>(10).as_deref(), Some("A1"));
            }
            "purchase" => {
                assert_eq!(r.get::<_, Option<String>>(12).as_deref(), Some(FIXED_UUID));
            }
            other => panic!("unexpected event {other}"),
        }
    }

    // The script again: three new messages and the resent one deduplicated; a wrong key;
    // a permanent 400.
    assert_resend_wrong_key_and_400(lib, &db, &c, KEY, 7).await;
    (db, c)
}
