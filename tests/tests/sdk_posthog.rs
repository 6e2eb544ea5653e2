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

/// One request header, name and value.
type Header = (&'static str, &'static str);

/// An expected refusal: status and `code`.
type Answer = (u16, &'static str);
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

/// PostHog's other body forms, as `posthog-js` versions and older clients send them, with
/// exact bytes (issue #14): each lands once, the key only inside the events
/// (`properties.token`); each malformed form is a 4xx with a `code` and a `message`.
#[tokio::test(flavor = "multi_thread")]
async fn posthog_body_forms_land_once_and_malformed_ones_get_a_clear_4xx() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let gzip = |b: &[u8]| {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).expect("gzip");
        e.finish().expect("gzip")
    };
    let form = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    };
    // One event named `name`, the key in its properties (as posthog-js sends it).
    let event =
        |name: &str| json!({"event": name, "distinct_id": ">>>", "properties": {"token": KEY}});
    let array = |name: &str| json!([event(name)]).to_string().into_bytes();

    let db = TestDb::migrated("sdk_posthog_forms").await.expect("db");
    let c = CollectorOpts::new("sdk-posthog-forms")
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{KEY}\"]"))
        .start()
        .expect("start");
    const TEXT: Header = ("Content-Type", "text/plain");
    const FORM: Header = ("Content-Type", "application/x-www-form-urlencoded");
    let loose = b64(&array("form-base64-loose-plus"));
    assert!(loose.contains('+'), "the case needs a `+`: {loose}");
    let accepted: Vec<(&str, &str, Vec<u8>, Header)> = vec![
        (
            "gzip-js-query",
            "/e/?compression=gzip-js&ver=1.100.0",
            gzip(&array("gzip-js-query")),
            TEXT,
        ),
        (
            "gzip-sniffed-envelope",
            "/i/v0/e/",
            gzip(
                json!({"api_key": KEY, "batch": [event("gzip-sniffed-envelope")]})
                    .to_string()
                    .as_bytes(),
            ),
            TEXT,
        ),
        (
            "base64-query",
            "/e/?compression=base64",
            b64(&array("base64-query")).into_bytes(),
            TEXT,
        ),
        (
            "form-base64",
            "/e/",
            form(&[
                ("data", &b64(&array("form-base64"))),
                ("compression", "base64"),
            ]),
            FORM,
        ),
        (
            "form-json",
            "/capture/",
            form(&[(
                "data",
                &String::from_utf8(array("form-json")).expect("utf-8"),
            )]),
            FORM,
        ),
        // A client that does not percent-encode: the `+` of base64 arrives as a space.
        (
            "form-base64-loose-plus",
            "/e/?compression=base64",
            format!("data={loose}").into_bytes(),
            FORM,
        ),
        (
            "whole-body-base64",
            "/e/",
            b64(&array("whole-body-base64")).into_bytes(),
            TEXT,
        ),
        (
            "gzip-param-plain-json",
            "/e/?compression=gzip-js",
            array("gzip-param-plain-json"),
            TEXT,
        ),
        (
            "lone-e",
            "/e/",
            event("lone-e").to_string().into_bytes(),
            TEXT,
        ),
        (
            "lone-capture",
            "/capture/",
            event("lone-capture").to_string().into_bytes(),
            ("Content-Type", "application/json"),
        ),
        (
            "lone-i-v0-e",
            "/i/v0/e/?compression=gzip-js",
            gzip(event("lone-i-v0-e").to_string().as_bytes()),
            TEXT,
        ),
    ];
    for (name, path, body, header) in &accepted {
        let r = client::post(c.ingest, path, body, &[*header]).expect(name);
        assert_eq!(r.status, 200, "{name} on {path}: {}", r.body);
    }
    let n = accepted.len() as i64;
    assert_eq!(
        wait_rows(&db, n, std::time::Duration::from_secs(30)).await,
        n
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(db.count_events().await.expect("count"), (n, n), "each once");
    let client = db.client().await.expect("client");
    let mut stored: Vec<(String, Option<String>)> = client
        .query("SELECT event_name, app_user_id FROM user_events", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    stored.sort();
    let mut expected: Vec<(String, Option<String>)> = accepted
        .iter()
        .map(|(name, ..)| (name.to_string(), Some(">>>".to_string())))
        .collect();
    expected.sort();
    assert_eq!(stored, expected, "every form, its name and distinct_id");

    let bomb = gzip(&vec![b' '; 8 << 20]);
    let refused: Vec<(&str, &str, Vec<u8>, Header, Answer)> = vec![
        ("a form without data", "/e/", b"compression=base64&_=1".to_vec(), FORM, (400, "form")),
        ("a form label on text", "/e/", b"hello, world".to_vec(), FORM, (400, "form")),
        ("broken base64", "/e/?compression=base64", b"e*J!".to_vec(), TEXT, (400, "base64")),
        ("not gzip", "/e/?compression=gzip-js", b"not gzip at all".to_vec(), TEXT, (400, "gzip")),
        ("truncated gzip", "/e/", gzip(&array("never"))[..12].to_vec(), TEXT, (400, "gzip")),
        ("lz64", "/e/?compression=lz64", b"N4Ig".to_vec(), TEXT, (415, "compression")),
        ("a gzip bomb", "/e/?compression=gzip-js", bomb, TEXT, (413, "too_large")),
        (
            "two keys",
            "/e/",
            json!([event("never"), {"event": "never", "distinct_id": "1", "properties": {"token": "phc_other"}}])
                .to_string()
                .into_bytes(),
            TEXT, (400, "multiple_tokens"),
        ),
        (
            "a wrong key in the events",
            "/e/",
            json!([{"event": "never", "distinct_id": "1", "properties": {"token": "phc_other"}}]).to_string().into_bytes(),
            TEXT, (401, "unauthorized"),
        ),
    ];
    for (what, path, body, header, (status, code)) in &refused {
        let r = client::post(c.ingest, path, body, &[*header]).expect(what);
        let v = r.json();
        assert_eq!(
            (r.status, v["code"].as_str()),
            (*status, Some(*code)),
            "{what}: {}",
            r.body
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: a message"
        );
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        db.count_events().await.expect("count"),
        (n, n),
        "nothing refused was stored"
    );
}
