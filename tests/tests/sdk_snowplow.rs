//! Snowplow's trackers against the real collector and database (issue #14): the Node tracker,
//! `@snowplow/node-tracker` 4.8.0, posting the payload_data envelope to
//! `/com.snowplowanalytics.snowplow/tp2`, and the Python tracker, `snowplow-tracker` 1.1.0,
//! sending each event as the query string of the `GET /i` pixel (installed pinned by
//! `deploy/install-sdks`), the write key in an `X-Write-Key` header. A fixed script — an
//! anonymous page view, the user id set and a self-describing `identify`, an identified page
//! view, a structured event with a Chinese action, a self-describing `purchase` with a fixed
//! non-UUID `eid` and true timestamp, the others with the tracker's own ids — lands every
//! event exactly once with its fields mapped as documented; the script run again lands the
//! fixed event only once; a wrong key is a 401 the tracker reports; a permanent 400 is not
//! retried. By hand: the pixel's answer (a GIF, never cached), `?write_key=`, and a tp2 body
//! with base64 contexts and unknown fields.

use base64::Engine as _;
use e2e::{
    check::wait_rows,
    client,
    db::TestDb,
    proc::{CollectorOpts, CollectorProc},
    sdk::{assert_resend_wrong_key_and_400, fixed_time, run_library},
};
use serde_json::json;

const KEY: &str = "wk-snowplow";

#[tokio::test(flavor = "multi_thread")]
async fn snowplow_node_tracker_posts_tp2_and_events_land_once_with_their_fields_mapped() {
    snowplow_journey("snowplow", "node-").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn snowplow_python_tracker_uses_the_pixel_and_events_land_once_with_their_fields_mapped() {
    let (db, c) = snowplow_journey("python/snowplow", "py-").await;
    by_hand(&db, &c).await;
}

/// The fixed script of `lib`, whose events carry a tracker version (`tv`) starting with
/// `tracker`, checked row by row; then resent, a wrong key, a 400.
async fn snowplow_journey(lib: &str, tracker: &str) -> (TestDb, CollectorProc) {
    let name = lib.replace('/', "_");
    let db = TestDb::migrated(&format!("sdk_{name}")).await.expect("db");
    let c = CollectorOpts::new(&format!("sdk-{name}"))
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{KEY}\"]"))
        .start()
        .expect("start");

    let errors = run_library(lib, &c, KEY, "journey");
    assert!(errors.is_empty(), "the tracker reported: {errors:?}");
    assert_eq!(
        wait_rows(&db, 5, std::time::Duration::from_secs(30)).await,
        5
    );
    let client = db.client().await.expect("client");
    let rows = client
        .query(
            "SELECT event_name, event_type, user_id, app_user_id, anonymous_id, session_id,
                    page_url, referrer, device_type, properties->'$snowplow'->>'aid',
                    properties->'$snowplow'->>'tv', properties->'$snowplow'->>'p',
                    properties->'$snowplow'->>'page', properties->>'name',
                    properties->>'category', properties->>'label', properties->>'property',
                    (properties->>'value')::float8, (properties->>'total')::float8,
                    to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'),
                    properties->'$snowplow'->>'schema'
             FROM user_events ORDER BY event_time, event_name",
            &[],
        )
        .await
        .expect("rows");
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (name, kind, n) in [
        ("page_view", "page", 2),
        ("identify", "track", 1),
        ("加入购物车", "track", 1),
        ("purchase", "track", 1),
    ] {
        assert_eq!(
            got.iter().filter(|(g, k)| g == name && k == kind).count(),
            n,
            "{name} as {kind} in {got:?}"
        );
    }
    for r in &rows {
        let name: String = r.get(0);
        let text = |i: usize| r.get::<_, Option<String>>(i);
        assert_eq!(text(4).as_deref(), Some("anon-1"), "{name}: duid");
        assert_eq!(text(5).as_deref(), Some("s-1"), "{name}: sid");
        assert_eq!(text(8).as_deref(), Some("mobile"), "{name}: ua parsed");
        assert_eq!(text(9).as_deref(), Some("shop"), "{name}: aid kept");
        assert!(
            text(10).is_some_and(|tv| tv.starts_with(tracker)),
            "{name}: tv {:?}",
            text(10)
        );
        assert!(text(11).is_some(), "{name}: platform kept");
        let identified = text(3).is_some();
        if identified {
            assert_eq!(text(3).as_deref(), Some("42"), "{name}: uid as sent");
            assert_eq!(r.get::<_, Option<i64>>(2), Some(42), "{name}: numeric uid");
        }
        match name.as_str() {
            "page_view" if !identified => {
                assert_eq!(text(6).as_deref(), Some("https://shop.example/"));
                assert_eq!(text(7).as_deref(), Some("https://search.example/"));
                assert_eq!(text(12).as_deref(), Some("Home"), "page title kept");
            }
            "page_view" => assert_eq!(text(6).as_deref(), Some("https://shop.example/p/1")),
            "identify" => {
                assert!(identified, "the user id set before");
                assert_eq!(text(13).as_deref(), Some("张伟"), "the event's data");
                assert_eq!(
                    text(20).as_deref(),
                    Some("iglu:com.acme/identify/jsonschema/1-0-0")
                );
            }
            "加入购物车" => {
                assert_eq!(
                    (
                        text(14).as_deref(),
                        text(15).as_deref(),
                        text(16).as_deref()
                    ),
                    (Some("shop"), Some("A1"), Some("red"))
                );
                assert_eq!(r.get::<_, Option<f64>>(17), Some(12.5), "se_va a number");
            }
            "purchase" => {
                assert_eq!(r.get::<_, Option<f64>>(18), Some(12.5));
                assert_eq!(
                    text(19).as_deref(),
                    fixed_time().get(..19),
                    "the true timestamp"
                );
            }
            other => panic!("unexpected event {other}"),
        }
    }
    let anonymous = rows
        .iter()
        .filter(|r| r.get::<_, String>(0) == "page_view" && r.get::<_, Option<String>>(3).is_none())
        .count();
    assert_eq!(anonymous, 1, "one page view before the user id");

    // The script again: four new events and the resent one deduplicated; a wrong key; a
    // permanent 400.
    assert_resend_wrong_key_and_400(lib, &db, &c, KEY, 9).await;
    (db, c)
}

/// The pixel's answer and `?write_key=`; a tp2 body by hand with base64 self-describing
/// data and contexts and an unknown field.
async fn by_hand(db: &TestDb, c: &CollectorProc) {
    let client::BytesResp {
        status,
        headers,
        body,
    } = client::get_bytes(
        c.ingest,
        &format!("/i?e=pv&url=https%3A%2F%2Fx.example%2F%3Fq%3D1&eid=px-1&write_key={KEY}"),
        &[],
    )
    .expect("pixel");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(status, 200);
    assert_eq!(header("content-type"), Some("image/gif"));
    assert_eq!(header("cache-control"), Some("no-store"));
    assert!(body.starts_with(b"GIF89a") && body.len() == 43, "{body:?}");
    let wrong = client::get_bytes(c.ingest, "/i?e=pv&write_key=nope", &[]).expect("get");
    assert_eq!(wrong.status, 401, "a wrong key on the pixel");

    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let body = json!({
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [{
            "e": "ue", "eid": "0190b6e4-0000-4000-8000-0000000005a1", "p": "web", "tv": "js-4",
            "ue_px": b64(json!({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                "data": {"schema": "iglu:com.acme/add_to_cart/jsonschema/1-0-0", "data": {"sku": "B2"}}})),
            "cx": b64(json!({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
                "data": [{"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"tier": "gold"}}]})),
            "zz_new": "kept"
        }]
    });
    let r = client::post(
        c.ingest,
        "/com.snowplowanalytics.snowplow/tp2",
        body.to_string().as_bytes(),
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Write-Key", KEY),
        ],
    )
    .expect("tp2");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        wait_rows(db, 11, std::time::Duration::from_secs(30)).await,
        11
    );
    let client = db.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT properties->>'sku', properties->'$snowplow'->'contexts'->0->'data'->>'tier',
                    properties->'$snowplow'->>'zz_new'
             FROM user_events WHERE event_name = 'add_to_cart'",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("B2"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("gold"));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("kept"));
    let url: Option<String> = client
        .query_one(
            "SELECT page_url FROM user_events WHERE properties->'$snowplow'->>'eid' IS NULL
               AND page_url LIKE 'https://x.example/%'",
            &[],
        )
        .await
        .expect("pixel row")
        .get(0);
    assert_eq!(url.as_deref(), Some("https://x.example/?q=1"), "decoded");
    let keys: i64 = client
        .query_one(
            "SELECT count(*) FROM user_events WHERE properties::text LIKE '%' || $1 || '%'",
            &[&KEY],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(keys, 0, "the key is never stored");
}
