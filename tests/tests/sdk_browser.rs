//! A real browser SDK in headless Chromium: Segment's `@segment/analytics-next` (pinned in
//! `tests/sdk/node/package.json`, installed by `deploy/install-sdks`), its UMD bundle served
//! by the test from the npm package (no CDN: settings given inline, chunks from the test's
//! own origin), pointed at the collector. A fixed script — an anonymous page, a track with a
//! Chinese name, an identify with traits, a track after it — lands exactly once with the
//! user id, the anonymous id, the traits and the page URL mapped. Its error paths: a
//! retried 503 lands once, a wrong write key is a 401 it reports, a 400 is not retried.

use std::time::Duration;

use e2e::{
    browser::{wait_until, Browser, Site},
    check::wait_rows,
    db::TestDb,
    hog::{self, InflightHog},
    proc::CollectorOpts,
    sdk::requests,
};
use serde_json::{json, Value};

/// Event name, event type, user id as sent, anonymous id.
type Identity = (String, Option<String>, Option<String>, Option<String>);

const WAIT: Duration = Duration::from_secs(30);
const WRITE_KEY: &str = "seg-browser-key";

/// The page: the SDK's UMD bundle, nothing else.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Segment shop</title>
<script src="/ajs/index.js"></script>
</head><body><h1>Segment shop</h1></body></html>
"#;

/// The fixed script, run in the page: resolves with the SDK's anonymous id.
const SCRIPT: &str = r#"
var done = arguments[arguments.length - 1];
var writeKey = arguments[0], apiHost = arguments[1];
(async function () {
  // The page's <script> bundle may still be loading when this runs (seen once in CI):
  // wait for it, at most 10 s.
  for (var i = 0; i < 200 && typeof AnalyticsNext === "undefined"; i++) {
    await new Promise(function (r) { setTimeout(r, 50); });
  }
  var loaded = await AnalyticsNext.AnalyticsBrowser.load(
    {
      writeKey: writeKey,
      cdnURL: location.origin,
      cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, apiHost: apiHost, protocol: "http"}}}
    },
    {retryQueue: true});
  var analytics = loaded[0];
  await analytics.page();
  await analytics.track("加入购物车", {sku: "SKU-42", price: 19.99});
  await analytics.identify("user-42", {email: "ada@example.com", plan: "pro"});
  await analytics.track("购买完成", {order_id: "A-1", total: 39.98});
  return {anonymousId: analytics.user().anonymousId(), version: analytics.VERSION};
})().then(done, function (e) { done({error: String(e && e.stack || e)}); });
"#;

#[tokio::test(flavor = "multi_thread")]
async fn analytics_next_in_chromium_lands_once_with_identity_and_traits() {
    let db = TestDb::migrated("sdk_browser").await.expect("db");
    let site = analytics_next_site();
    let c = CollectorOpts::new("sdk-browser")
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{WRITE_KEY}\"]"))
        .env("COLLECTOR_CORS_ORIGINS", format!("[\"{}\"]", site.origin()))
        .start()
        .expect("collector");

    let b = Browser::start("sdk-browser-chromium").expect("start headless Chromium");
    let url = format!("{}/shop?campaign=autumn", site.origin());
    b.goto(&url).expect("open the page");
    let out = b
        .exec_async(
            SCRIPT,
            &[json!(WRITE_KEY), json!(format!("{}/v1", c.ingest))],
        )
        .expect("run the script");
    assert!(out["error"].is_null(), "the SDK failed: {out}");
    let anonymous = out["anonymousId"]
        .as_str()
        .unwrap_or_else(|| panic!("anonymous id: {out}"))
        .to_string();
    assert!(!anonymous.is_empty());

    assert_eq!(
        wait_rows(&db, 4, WAIT).await,
        4,
        "four messages landed\n{}",
        c.log_text()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        db.count_events().await.expect("count"),
        (4, 4),
        "exactly once"
    );
    let client = db.client().await.expect("client");
    let rows = client
        .query(
            "SELECT event_name, event_type, app_user_id, anonymous_id, traits, page_url, browser,
                    properties
             FROM user_events ORDER BY event_time, event_id",
            &[],
        )
        .await
        .expect("query");
    let got: Vec<Identity> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        [
            ("page_view".into(), s("page"), None, s(&anonymous)),
            ("加入购物车".into(), s("track"), None, s(&anonymous)),
            (
                "identify".into(),
                s("identify"),
                s("user-42"),
                s(&anonymous)
            ),
            ("购买完成".into(), s("track"), s("user-42"), s(&anonymous)),
        ],
        "names, types, user and anonymous ids"
    );
    for r in &rows {
        let page_url: Option<String> = r.get(5);
        assert_eq!(page_url.as_deref(), Some(url.as_str()), "page url mapped");
        let browser: Option<String> = r.get(6);
        assert_eq!(browser.as_deref(), Some("Chrome"), "from context.userAgent");
    }
    let traits: Option<Value> = rows[2].get(4);
    assert_eq!(
        traits,
        Some(json!({"email": "ada@example.com", "plan": "pro"})),
        "the identify's traits"
    );
    let props: Option<Value> = rows[1].get(7);
    let props = props.unwrap_or(Value::Null);
    assert_eq!(props["sku"], "SKU-42", "{props}");
    assert_eq!(props["price"], 19.99, "{props}");
    assert_eq!(
        props["$segment"]["context"]["library"]["name"], "analytics.js",
        "the SDK's own context is kept: {props}"
    );
}

/// A site serving the pinned analytics-next's UMD bundle, its chunks and [`PAGE`] at `/shop`.
fn analytics_next_site() -> Site {
    let dist = e2e::repo_root().join("tests/sdk/node/node_modules/@segment/analytics-next");
    let version: Value = serde_json::from_str(
        &std::fs::read_to_string(dist.join("package.json"))
            .expect("@segment/analytics-next is installed (run deploy/install-sdks)"),
    )
    .expect("package.json");
    assert_eq!(version["version"], "1.84.3", "the pinned version");
    let umd = dist.join("dist/umd");

    let site = Site::http().expect("site");
    // The bundle, and its lazily loaded chunks where it looks for them: `cdnURL` +
    // `/analytics-next/bundles/`.
    site.put(
        "/ajs/index.js",
        "application/javascript",
        std::fs::read(umd.join("index.js")).expect("index.js"),
    );
    for entry in std::fs::read_dir(&umd).expect("dist/umd").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") {
            site.put(
                &format!("/analytics-next/bundles/{name}"),
                "application/javascript",
                std::fs::read(entry.path()).expect("chunk"),
            );
        }
    }
    site.put("/shop", "text/html; charset=utf-8", PAGE);
    site
}

/// Loads the SDK as `window[name]` (`arguments[0]` = write key, `[1]` = api host, `[2]` =
/// name); the messages of the errors it emits go to `window.__errors[name]`.
const LOAD: &str = r#"
var done = arguments[arguments.length - 1];
var writeKey = arguments[0], apiHost = arguments[1], name = arguments[2];
window.__errors = window.__errors || {};
window.__errors[name] = [];
AnalyticsNext.AnalyticsBrowser.load(
  {
    writeKey: writeKey,
    cdnURL: location.origin,
    cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, apiHost: apiHost, protocol: "http"}}}
  },
  {retryQueue: true}
).then(function (loaded) {
  window[name] = loaded[0];
  loaded[0].on('error', function (e) {
    window.__errors[name].push(String(e && e.reason && e.reason.message || e && e.code));
  });
  done(true);
}, function (e) { done({error: String(e && e.stack || e)}); });
"#;

/// analytics-next's error paths (issue #14): its first attempt answered 503 (the in-flight
/// bound filled, [`e2e::hog`]) is retried and lands once; a wrong write key is a 401 it
/// reports (an `error` event, `delivery_failure`) and stores nothing; a permanent 400 is
/// sent once and reported.
#[tokio::test(flavor = "multi_thread")]
async fn analytics_next_retries_a_503_once_reports_a_401_and_does_not_retry_a_400() {
    let db = TestDb::migrated("sdk_browser_faults").await.expect("db");
    let site = analytics_next_site();
    let c = CollectorOpts::new("sdk-browser-faults")
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{WRITE_KEY}\"]"))
        .env("COLLECTOR_CORS_ORIGINS", format!("[\"{}\"]", site.origin()))
        .envs(hog::HOG_LIMITS.iter().copied())
        .start()
        .expect("collector");
    let b = Browser::start("sdk-browser-faults-chromium").expect("start headless Chromium");
    b.goto(&format!("{}/shop", site.origin()))
        .expect("open the page");
    let api = json!(format!("{}/v1", c.ingest));
    let out = b
        .exec_async(LOAD, &[json!(WRITE_KEY), api.clone(), json!("ajs")])
        .expect("load");
    assert_eq!(out, json!(true), "{out}");
    let errors = |name: &str| {
        b.exec(&format!("return window.__errors.{name}"), &[])
            .expect("errors")
    };

    // A retried message lands once: its first attempt is refused (503) while the bound is full.
    let hog = InflightHog::hold(&c, WRITE_KEY);
    b.exec("ajs.track('retried', {n: 1})", &[]).expect("track");
    assert!(
        wait_until(WAIT, || hog::refused(&c) >= 1.0),
        "the first attempt was refused\n{}",
        c.log_text()
    );
    hog.release();
    let landed = wait_rows(&db, 1, WAIT).await;
    assert_eq!(
        landed,
        1,
        "the retry landed: 503 {} 200 {} errors {}\n{}",
        requests(&c, 503),
        requests(&c, 200),
        errors("ajs"),
        c.log_text()
    );
    assert!(requests(&c, 503) >= 1.0 && requests(&c, 200) >= 1.0);
    assert_eq!(errors("ajs"), json!([]), "a retried 503 is no error");

    // A wrong write key: 401, reported, nothing stored.
    let out = b
        .exec_async(LOAD, &[json!("wrong-key"), api, json!("wrong")])
        .expect("load a second instance");
    assert_eq!(out, json!(true), "{out}");
    b.exec("wrong.track('never-stored')", &[]).expect("track");
    let reported = b
        .wait_js(
            "return window.__errors.wrong.length > 0 && window.__errors.wrong",
            WAIT,
        )
        .expect("the 401 is reported");
    assert_eq!(reported, json!(["Non-retryable error: 401"]));
    assert!(requests(&c, 401) >= 1.0);

    // A permanent 400 (an event name over the limit) is sent once; a retry would follow
    // within about a second (backoff from 0.5 s).
    let before = requests(&c, 400);
    b.exec("ajs.track('x'.repeat(300))", &[]).expect("track");
    let reported = b
        .wait_js(
            "return window.__errors.ajs.length > 0 && window.__errors.ajs",
            WAIT,
        )
        .expect("the 400 is reported");
    assert_eq!(reported, json!(["Non-retryable error: 400"]));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(requests(&c, 400) - before, 1.0, "a 400 is not retried");
    assert_eq!(
        db.count_events().await.expect("count"),
        (1, 1),
        "only the retried message is stored, once"
    );
}
