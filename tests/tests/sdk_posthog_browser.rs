//! PostHog's browser library, `posthog-js` (pinned in `tests/sdk/node/package.json`,
//! installed by `deploy/install-sdks`), in headless Chromium: its `dist/array.no-external.js`
//! served by the test from the npm package (no CDN; flags and remote config off, so the
//! library asks nothing of PostHog's servers), pointed at the collector. It posts gzip
//! bodies labelled `text/plain` to `/e/?compression=gzip-js`, the key inside each event
//! (`properties.token`).
//!
//! - A fixed script — the library's own page view, a capture with a Chinese name, an
//!   identify with traits, a page view on a history change, a capture after it — lands
//!   exactly once, with the event names, the anonymous id (until the identify) and the
//!   user id (from it), the session id, the URLs and the traits mapped.
//! - Error paths: the first attempt answered 503 (the in-flight bound filled, see
//!   [`e2e::hog`]) is retried and lands once; a wrong project key is a 401 the library
//!   reports (`on_request_error`) and stores nothing; a permanent 400 is sent once.

use std::time::Duration;

use e2e::{
    browser::{wait_until, Browser, Site},
    check::wait_rows,
    db::TestDb,
    hog::{self, InflightHog},
    proc::{CollectorOpts, CollectorProc},
    sdk::requests,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const KEY: &str = "phc_browser_key";
const VERSION: &str = "1.449.2";

/// The page: the library's bundle, after a script that notes what each request the page
/// makes carries (URL, media type, first bytes: gzip's are 31, 139) and passes it on as it is.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>PostHog shop</title>
<script>
window.__sent = [];
var realFetch = window.fetch;
window.fetch = function (url, init) {
  var body = init && init.body;
  window.__sent.push({
    url: String(url),
    type: new Headers((init && init.headers) || {}).get('Content-Type'),
    head: body instanceof ArrayBuffer ? Array.from(new Uint8Array(body.slice(0, 2)))
      : typeof body === 'string' ? body.slice(0, 12) : null
  });
  return realFetch.apply(this, arguments);
};
var realBeacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = function (url, data) {
  window.__sent.push({url: String(url), type: data && data.type, head: 'beacon'});
  return realBeacon(url, data);
};
</script>
<script src="/ph/array.no-external.js"></script>
</head><body><h1>PostHog shop</h1></body></html>
"#;

/// Starts the library (`arguments[0]` = key, `[1]` = api host, `[2]` = instance name, or
/// null for the default one, `[3]` = more settings) with everything but capture off;
/// statuses of failed requests go to `window.__failed[name]`.
const INIT: &str = r#"
var key = arguments[0], host = arguments[1], name = arguments[2] || undefined;
window.__failed = window.__failed || {};
window.__failed[name || 'posthog'] = [];
var config = {
  api_host: host,
  advanced_disable_flags: true,
  // Headless Chromium names itself HeadlessChrome, which the library takes for a bot.
  opt_out_useragent_filter: true,
  autocapture: false,
  capture_pageview: false,
  capture_pageleave: false,
  capture_performance: false,
  capture_dead_clicks: false,
  capture_exceptions: false,
  capture_heatmaps: false,
  disable_session_recording: true,
  disable_surveys: true,
  disable_product_tours: true,
  disable_conversations: true,
  request_queue_config: {flush_interval_ms: 250},
  on_request_error: function (r) { window.__failed[name || 'posthog'].push(r.statusCode); }
};
Object.assign(config, arguments[3] || {});
var ph = posthog.init(key, config, name);
return (ph || posthog).version;
"#;

/// The fixed script, after [`INIT`] with automatic page views: resolves with the ids.
const SCRIPT: &str = r#"
var done = arguments[arguments.length - 1];
var sleep = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };
(async function () {
  var anonymous = posthog.get_distinct_id();
  await sleep(100);
  posthog.capture('加入购物车', {sku: 'SKU-42', price: 19.99});
  await sleep(100);
  posthog.identify('user-42', {email: 'ada@example.com', plan: 'pro'});
  await sleep(100);
  history.pushState({}, '', '/shop/checkout');
  await sleep(300);
  posthog.capture('购买完成', {order_id: 'A-1', total: 39.98});
  return {anonymous: anonymous, session: posthog.get_session_id()};
})().then(done, function (e) { done({error: String(e && e.stack || e)}); });
"#;

/// A page serving the bundle, a collector taking `KEY` from the site's origin, a browser
/// on the page.
fn start(name: &str, db: &TestDb, extra_env: &[(&str, &str)]) -> (Site, CollectorProc, Browser) {
    let dist = e2e::repo_root().join("tests/sdk/node/node_modules/posthog-js");
    let package: Value = serde_json::from_str(
        &std::fs::read_to_string(dist.join("package.json"))
            .expect("posthog-js is installed (run deploy/install-sdks)"),
    )
    .expect("package.json");
    assert_eq!(package["version"], VERSION, "the pinned version");
    let site = Site::http().expect("site");
    site.put(
        "/ph/array.no-external.js",
        "application/javascript",
        std::fs::read(dist.join("dist/array.no-external.js")).expect("bundle"),
    );
    site.put("/shop", "text/html; charset=utf-8", PAGE);
    let c = CollectorOpts::new(name)
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{KEY}\"]"))
        .env("COLLECTOR_CORS_ORIGINS", format!("[\"{}\"]", site.origin()))
        .envs(extra_env.iter().copied())
        .start()
        .expect("collector");
    let b = Browser::start(&format!("{name}-chromium")).expect("start headless Chromium");
    (site, c, b)
}

fn host(c: &CollectorProc) -> Value {
    json!(format!("http://{}", c.ingest))
}

#[tokio::test(flavor = "multi_thread")]
async fn posthog_js_in_chromium_lands_once_with_its_fields_mapped() {
    let db = TestDb::migrated("sdk_posthog_js").await.expect("db");
    let (site, c, b) = start("sdk-posthog-js", &db, &[]);
    let url = format!("{}/shop?campaign=autumn", site.origin());
    b.goto(&url).expect("open the page");
    let version = b
        .exec(
            INIT,
            &[
                json!(KEY),
                host(&c),
                Value::Null,
                json!({"capture_pageview": "history_change"}),
            ],
        )
        .expect("init");
    assert_eq!(version, VERSION);
    let out = b.exec_async(SCRIPT, &[]).expect("run the script");
    assert!(out["error"].is_null(), "the library failed: {out}");
    let anonymous = out["anonymous"].as_str().expect("anonymous id").to_string();
    let session = out["session"].as_str().expect("session id").to_string();
    assert_ne!(anonymous, "user-42");
    assert_eq!(
        wait_rows(&db, 5, WAIT).await,
        5,
        "five events landed\n{}",
        c.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        db.count_events().await.expect("count"),
        (5, 5),
        "exactly once"
    );
    let failed = b
        .exec("return window.__failed.posthog", &[])
        .expect("failed");
    assert_eq!(failed, json!([]), "no request failed");

    let client = db.client().await.expect("client");
    let rows = client
        .query(
            "SELECT event_name, event_type, app_user_id, anonymous_id, session_id, page_url,
                    referrer, traits, browser, properties
             FROM user_events ORDER BY event_time, event_id",
            &[],
        )
        .await
        .expect("query");
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let got: Vec<Row> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let s = |v: &str| Some(v.to_string());
    let checkout = format!("{}/shop/checkout", site.origin());
    assert_eq!(
        got,
        [
            (
                "page_view".into(),
                s("page"),
                None,
                s(&anonymous),
                s(&session),
                s(&url)
            ),
            (
                "加入购物车".into(),
                s("track"),
                None,
                s(&anonymous),
                s(&session),
                s(&url)
            ),
            (
                "identify".into(),
                s("identify"),
                s("user-42"),
                s(&anonymous),
                s(&session),
                s(&url)
            ),
            (
                "page_view".into(),
                s("page"),
                s("user-42"),
                s(&anonymous),
                s(&session),
                s(&checkout)
            ),
            (
                "购买完成".into(),
                s("track"),
                s("user-42"),
                s(&anonymous),
                s(&session),
                s(&checkout)
            ),
        ],
        "names, types, user and anonymous ids, session, url"
    );
    for r in &rows {
        let referrer: Option<String> = r.get(6);
        assert_eq!(referrer, None, "a direct visit ($direct) has no referrer");
        let browser: Option<String> = r.get(8);
        assert_eq!(browser.as_deref(), Some("Chrome"), "from $raw_user_agent");
        let props: Value = r.get(9);
        assert_eq!(props["$lib"], "web", "{props}");
        assert!(
            props.get("token").is_none(),
            "the key is not stored: {props}"
        );
    }
    let traits: Option<Value> = rows[2].get(7);
    assert_eq!(
        traits,
        Some(json!({"email": "ada@example.com", "plan": "pro"})),
        "the identify's traits ($set)"
    );
    let props: Value = rows[1].get(9);
    assert_eq!(
        (&props["sku"], &props["price"]),
        (&json!("SKU-42"), &json!(19.99))
    );
    // Its other body forms: with compression off, JSON by fetch, and a beacon in base64
    // (`data=` form, `?compression=base64`), as it sends on page unload.
    b.exec(
        INIT,
        &[
            json!(KEY),
            host(&c),
            json!("plain"),
            json!({"disable_compression": true}),
        ],
    )
    .expect("init a second instance");
    b.exec(
        "posthog.plain.capture('plain-json', {form: 'json'});
         posthog.plain.capture('beacon-base64', {form: 'base64'}, {transport: 'sendBeacon'});",
        &[],
    )
    .expect("capture");
    assert_eq!(wait_rows(&db, 7, WAIT).await, 7, "both landed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        db.count_events().await.expect("count"),
        (7, 7),
        "exactly once"
    );
    let forms: Vec<(String, String)> = client
        .query(
            "SELECT event_name, properties->>'form' FROM user_events
             WHERE properties ? 'form' ORDER BY 1",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        forms,
        [
            ("beacon-base64".to_string(), "base64".to_string()),
            ("plain-json".into(), "json".into())
        ]
    );
    // What the library sent, as the page saw it.
    let sent = b.exec("return window.__sent", &[]).expect("sent");
    let sent = sent.as_array().expect("requests");
    let events: Vec<&Value> = sent
        .iter()
        .filter(|r| r["url"].as_str().is_some_and(|u| u.contains("/e/")))
        .collect();
    let gzip = events
        .iter()
        .filter(|r| r["type"] == "text/plain" && r["head"] == json!([31, 139]))
        .count();
    assert!(gzip >= 1, "gzip bodies labelled text/plain: {sent:?}");
    assert!(
        events
            .iter()
            .any(|r| r["type"] == "application/json" && r["head"] == "{\"api_key\":\""),
        "plain JSON: {sent:?}"
    );
    assert!(
        events.iter().any(|r| r["head"] == "beacon"
            && r["type"] == "application/x-www-form-urlencoded"
            && r["url"]
                .as_str()
                .is_some_and(|u| u.contains("compression=base64"))),
        "a base64 form beacon: {sent:?}"
    );
    assert_eq!(
        events.len(),
        sent.len(),
        "nothing but events was requested: {sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn posthog_js_retries_a_503_once_reports_a_401_and_does_not_retry_a_400() {
    let db = TestDb::migrated("sdk_posthog_js_faults").await.expect("db");
    let (site, c, b) = start("sdk-posthog-js-faults", &db, hog::HOG_LIMITS);
    b.goto(&format!("{}/shop", site.origin()))
        .expect("open the page");
    b.exec(INIT, &[json!(KEY), host(&c), Value::Null, Value::Null])
        .expect("init");

    // A retried batch lands once: its first attempt is refused (503) while the bound is full.
    let hog = InflightHog::hold(&c, KEY);
    b.exec("posthog.capture('retried', {n: 1})", &[])
        .expect("capture");
    assert!(
        wait_until(WAIT, || hog::refused(&c) >= 1.0),
        "the first attempt was refused\n{}",
        c.log_text()
    );
    hog.release();
    assert_eq!(wait_rows(&db, 1, WAIT).await, 1, "the retry landed");
    let failed = b
        .exec("return window.__failed.posthog", &[])
        .expect("failed");
    assert_eq!(failed, json!([503]), "the library saw the 503 once");
    assert!(requests(&c, 503) >= 1.0 && requests(&c, 200) >= 1.0);

    // A wrong project key: 401, reported, nothing stored.
    b.exec(
        INIT,
        &[json!("phc_wrong"), host(&c), json!("wrong"), json!(false)],
    )
    .expect("init a second instance");
    b.exec("posthog.wrong.capture('never-stored')", &[])
        .expect("capture");
    let reported = b
        .wait_js(
            "return window.__failed.wrong.length > 0 && window.__failed.wrong",
            WAIT,
        )
        .expect("the 401 is reported");
    assert_eq!(reported, json!([401]));
    assert!(requests(&c, 401) >= 1.0);

    // A permanent 400 (an event name over the limit) is sent once: posthog-js retries only
    // 5xx and network errors; its retry queue polls every 3 s with a backoff from 1.5 s.
    let before = requests(&c, 400);
    b.exec("posthog.capture('x'.repeat(300))", &[])
        .expect("capture");
    assert!(
        wait_until(WAIT, || requests(&c, 400) > before),
        "the 400 was answered"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(requests(&c, 400) - before, 1.0, "a 400 is not retried");
    let failed = b
        .exec("return window.__failed.posthog", &[])
        .expect("failed");
    assert_eq!(failed, json!([503, 400]));
    assert_eq!(
        db.count_events().await.expect("count"),
        (1, 1),
        "only the retried event is stored, once"
    );
}
