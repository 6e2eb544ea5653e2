//! Real client libraries against the real collector and database (issue #14): Segment's own
//! Node library, `@segment/analytics-node` 3.1.0, and RudderStack's,
//! `@rudderstack/rudder-sdk-node` 3.0.13 (gzipped JSON labelled as form data), and their
//! Python libraries, `segment-analytics-python` 2.4.0 and `rudder-sdk-python` 2.1.9 (gzipped),
//! installed pinned by `deploy/install-sdks`, each send a fixed script — an anonymous page,
//! an identify, identified pages and tracks, one message with its own non-UUID `messageId`,
//! the others with the library's default ids — through `/v1/batch` with HTTP Basic auth.
//! Every message lands exactly once with its fields mapped as documented; the script run
//! again lands its fixed-id message only once; a wrong write key is a 401 the library
//! reports; a permanent 400 is not retried.

use e2e::{
    check::wait_rows,
    db::TestDb,
    proc::{CollectorOpts, CollectorProc},
    sdk::{assert_resend_wrong_key_and_400, run_library},
};

const KEY: &str = "wk-segment";

#[tokio::test(flavor = "multi_thread")]
async fn segment_node_library_events_land_once_with_their_fields_mapped() {
    library_journey("segment", "@segment/analytics-node").await;
}

/// RudderStack's library sends gzipped JSON labelled `application/x-www-form-urlencoded`.
#[tokio::test(flavor = "multi_thread")]
async fn rudderstack_node_library_events_land_once_with_their_fields_mapped() {
    library_journey("rudder", "analytics-node").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn segment_python_library_events_land_once_with_their_fields_mapped() {
    library_journey("python/segment", "analytics-python").await;
}

/// RudderStack's Python library gzips its JSON and names itself as Segment's does.
#[tokio::test(flavor = "multi_thread")]
async fn rudderstack_python_library_events_land_once_with_their_fields_mapped() {
    library_journey("python/rudder", "analytics-python").await;
}

/// The fixed script of `lib`, whose messages name `library` in `context.library.name`.
async fn library_journey(lib: &str, library_name: &str) {
    let name = lib.replace('/', "_");
    let db = TestDb::migrated(&format!("sdk_{name}")).await.expect("db");
    let run_segment = |c: &CollectorProc, key: &str, script: &str| run_library(lib, c, key, script);
    let c = CollectorOpts::new(&format!("sdk-{name}"))
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{KEY}\"]"))
        .start()
        .expect("start");

    let errors = run_segment(&c, KEY, "journey");
    assert!(errors.is_empty(), "the library reported: {errors:?}");
    assert_eq!(
        wait_rows(&db, 5, std::time::Duration::from_secs(30)).await,
        5
    );
    let client = db.client().await.expect("client");
    let rows = client
        .query(
            "SELECT event_name, event_type, user_id, session_id, page_url, referrer,
                    properties->'$segment'->>'anonymousId',
                    properties->'$segment'->'context'->'library'->>'name',
                    properties->>'sku',
                    coalesce(properties->'$segment'->'traits'->>'name',
                             properties->'$segment'->'context'->'traits'->>'name'),
                    app_user_id, anonymous_id, traits->>'name'
             FROM user_events ORDER BY event_time, event_name",
            &[],
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
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    for (name, kind) in [
        ("page_view", "page"),
        ("identify", "identify"),
        ("加入购物车", "track"),
        ("purchase", "track"),
    ] {
        assert!(
            got.iter().any(|(n, k)| n == name && k == kind),
            "{name} as {kind} in {got:?}"
        );
    }
    assert_eq!(names.iter().filter(|n| **n == "page_view").count(), 2);
    for r in &rows {
        let name: String = r.get(0);
        let library: Option<String> = r.get(7);
        assert_eq!(
            library.as_deref(),
            Some(library_name),
            "{name}: context.library kept"
        );
        let app_user: Option<String> = r.get(10);
        let anonymous: Option<String> = r.get(11);
        match name.as_str() {
            "加入购物车" => {
                assert_eq!(r.get::<_, Option<i64>>(2), Some(42), "userId 42 → user_id");
                assert_eq!(app_user.as_deref(), Some("42"), "userId as sent");
                assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("s-1"));
                assert_eq!(r.get::<_, Option<String>>(8).as_deref(), Some("A1"));
            }
            "identify" => {
                assert_eq!(
                    r.get::<_, Option<String>>(9).as_deref(),
                    Some("张伟"),
                    "traits kept (rudder-sdk-python sends them in context.traits)"
                );
                assert_eq!(r.get::<_, Option<String>>(6).as_deref(), Some("anon-1"));
                assert_eq!(
                    r.get::<_, Option<String>>(12).as_deref(),
                    Some("张伟"),
                    "traits"
                );
                assert_eq!(
                    (app_user.as_deref(), anonymous.as_deref()),
                    (Some("42"), Some("anon-1")),
                    "identify links the ids"
                );
            }
            "page_view" => {
                let url: Option<String> = r.get(4);
                assert!(url.is_some_and(|u| u.starts_with("https://shop.example/")));
                if app_user.is_none() {
                    assert_eq!(anonymous.as_deref(), Some("anon-1"), "anonymous page");
                }
            }
            _ => {}
        }
    }

    let anonymous_pages = rows
        .iter()
        .filter(|r| {
            r.get::<_, String>(0) == "page_view" && r.get::<_, Option<String>>(10).is_none()
        })
        .count();
    assert_eq!(anonymous_pages, 1, "one page before the identify");

    // The script again: four new messages and the resent one deduplicated; a wrong key;
    // a permanent 400.
    assert_resend_wrong_key_and_400(lib, &db, &c, KEY, 9).await;
}
