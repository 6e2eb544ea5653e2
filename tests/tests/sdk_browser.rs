//! A real browser SDK in headless Chromium: Segment's `@segment/analytics-next` (pinned in
//! `tests/sdk/node/package.json`, installed by `deploy/install-sdks`), its UMD bundle served
//! by the test from the npm package (no CDN: settings given inline, chunks from the test's
//! own origin), pointed at the collector. A fixed script — an anonymous page, a track with a
//! Chinese name, an identify with traits, a track after it — lands exactly once with the
//! user id, the anonymous id, the traits and the page URL mapped.

use std::time::Duration;

use e2e::{browser::Browser, browser::Site, check::wait_rows, db::TestDb, proc::CollectorOpts};
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
    let dist = e2e::repo_root().join("tests/sdk/node/node_modules/@segment/analytics-next");
    let version: Value = serde_json::from_str(
        &std::fs::read_to_string(dist.join("package.json"))
            .expect("@segment/analytics-next is installed (run deploy/install-sdks)"),
    )
    .expect("package.json");
    assert_eq!(version["version"], "1.84.3", "the pinned version");
    let umd = dist.join("dist/umd");

    let db = TestDb::migrated("sdk_browser").await.expect("db");
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
