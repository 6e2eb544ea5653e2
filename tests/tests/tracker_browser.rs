//! The browser tracker (`collector/assets/tracker.js`, served at `/tracker.js`) end to end in
//! headless Chromium: a shop page on its own loopback origin loads the tracker from a real
//! collector (so CORS is exercised), a funnel is clicked through, the tab is closed, and the
//! events are read back from `user_events` in a real database; batches refused with 429 are
//! retried; a visitor's anonymous id survives reloads, `identify` links it to a user id with
//! traits, and `reset` starts a new visitor.
//!
//! Chromium is driven over WebDriver by [`e2e::browser`] (installed by
//! `deploy/install-chromium`, which `deploy/test` runs; without it these tests fail with that
//! instruction, they never skip); the shop page and the rows are [`e2e::shop`]'s.

use std::time::{Duration, Instant};

use e2e::{
    browser::Browser,
    client,
    db::TestDb,
    shop::{metric, page_ids, start_collector, wait_rows, Shop, WRITE_KEY},
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn funnel_clicked_in_chromium_lands_in_user_events_after_the_tab_closes() {
    let started = Instant::now();
    let db = TestDb::migrated("tracker").await.expect("db");
    let shop = Shop::start().expect("shop server");
    let c = start_collector("tracker", &db, &shop, &[]).expect("collector");

    // The collector serves the tracker: small, JavaScript, the file in the repository.
    let js = client::get(c.ingest, "/tracker.js").expect("GET /tracker.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .is_some_and(|t| t.starts_with("application/javascript")),
        "{:?}",
        js.headers
    );
    let source = std::fs::read_to_string(e2e::repo_root().join("collector/assets/tracker.js"))
        .expect("tracker source");
    assert_eq!(js.body, source, "served tracker is the repository's file");
    assert!(
        source.len() < 16 * 1024,
        "tracker stays small: {} bytes",
        source.len()
    );

    let b = Browser::start("tracker-chromium").expect("start headless Chromium");
    let shop_url = format!("{}/shop?campaign=spring", shop.origin());
    b.goto(&shop_url).expect("open the shop");
    let ids = page_ids(&b).expect("tracker loaded and initialised");
    let (session, anonymous) = (ids.session.clone(), ids.anonymous.clone());
    assert_eq!(ids.user, Value::Null, "nobody identified yet");
    assert_uuid_v4(&anonymous);
    let ua = b
        .exec("return navigator.userAgent;", &[])
        .expect("user agent");
    let ua = ua.as_str().unwrap_or_default().to_string();
    let shop_tab = b.current_window().expect("window");
    // CORS: the shop's origin may read the collector's answers (what the tracker relies on
    // to see 429/503), here for a validation request like the tracker's.
    let cors = b
        .exec_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0], {method: 'POST', credentials: 'omit',
                                  body: JSON.stringify([{event_name: 'cors_probe'}])})
               .then(function (r) { return r.json().then(function (j) { done([r.status, j]); }); },
                     function (e) { done(['blocked', String(e)]); });",
            &[json!(format!(
                "http://{}/v1/validate?write_key={WRITE_KEY}",
                c.ingest
            ))],
        )
        .expect("fetch from the shop's origin");
    assert_eq!(
        cors,
        json!([200, {"status": "success", "processed": 1}]),
        "the collector answers the shop's origin with CORS headers"
    );

    for button in ["#add", "#checkout", "#purchase"] {
        b.click(button)
            .unwrap_or_else(|e| panic!("click {button}: {e:#}\n{}", b.chromedriver_log()));
    }
    // Nothing has left yet: the flush interval is 10 minutes and the batch size 50, so what
    // arrives below was sent when the tab closed.
    let queued = b
        .exec(
            "return edgeAnalytics.sessionId() === arguments[0];",
            &[json!(session)],
        )
        .expect("exec");
    assert_eq!(queued, json!(true), "same session across the clicks");
    assert_eq!(
        metric(&c, "collector_http_requests_total", &["endpoint=\"batch\""]),
        0.0,
        "no batch was sent before the tab closed"
    );

    // Keep the browser alive in another tab of the same origin, then close the shop's tab.
    let other = b.new_tab().expect("new tab");
    b.switch_to(&shop_tab).expect("back to the shop");
    b.close_tab().expect("close the shop tab");
    b.switch_to(&other).expect("switch to the other tab");
    b.goto(&format!("{}/blank", shop.origin()))
        .expect("open blank page");

    let got = wait_rows(&db, 4, &c).await;
    let names: Vec<&str> = got.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(
        names,
        ["page_view", "add_to_cart", "checkout_start", "purchase"],
        "the funnel, in order"
    );

    // The events left in a beacon on pagehide/visibilitychange, with the key in the query.
    let beacons = b
        .exec(
            "return [localStorage.getItem('test.beacons'), localStorage.getItem('test.beacon_url'), \
             localStorage.getItem('test.beacon_ok'), localStorage.getItem('edgeAnalytics.anonymousId')];",
            &[],
        )
        .expect("read the shop origin's localStorage");
    assert!(
        beacons[0]
            .as_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1),
        "sent with navigator.sendBeacon: {beacons}"
    );
    assert_eq!(beacons[2], json!("true"), "the browser queued the beacon");
    assert_eq!(
        beacons[1],
        json!(format!(
            "http://{}/v1/batch?write_key={WRITE_KEY}",
            c.ingest
        ))
    );
    assert_eq!(
        beacons[3],
        json!(anonymous),
        "the anonymous id is kept in localStorage"
    );
    assert!(
        metric(
            &c,
            "collector_http_requests_total",
            &["endpoint=\"batch\"", "status=\"200\""]
        ) >= 1.0
    );

    // Every field the tracker and the collector fill.
    let expected_ua = collector::event::parse_user_agent(&ua).expect("Chromium's UA parses");
    let now = time::OffsetDateTime::now_utc();
    for r in &got {
        assert_eq!(r.session_id.as_deref(), Some(session.as_str()), "{r:?}");
        assert_eq!(r.anonymous_id.as_deref(), Some(anonymous.as_str()), "{r:?}");
        assert_eq!((r.user_id, r.app_user_id.as_deref()), (None, None), "{r:?}");
        assert_eq!(r.page_url.as_deref(), Some(shop_url.as_str()), "{r:?}");
        assert_eq!(r.referrer, None, "opened directly: no referrer");
        assert_eq!(
            r.event_id.get_version_num(),
            4,
            "event_id generated in the browser (the collector would assign v7): {r:?}"
        );
        assert_eq!(r.device_type.as_deref(), Some("desktop"), "{ua}");
        assert_eq!(r.device_type.as_deref(), Some(expected_ua.device_type));
        assert_eq!(r.browser.as_deref(), Some("Chrome"), "{ua}");
        assert_eq!(r.browser, expected_ua.browser);
        assert_eq!(r.os.as_deref(), Some("Linux"), "{ua}");
        assert_eq!(r.os, expected_ua.os);
        assert_eq!(r.collector_id.as_deref(), Some("edge-tracker"));
        let age = now - r.event_time;
        assert!(
            age > time::Duration::ZERO && age < time::Duration::minutes(2),
            "event_time is the click's time: {r:?}"
        );
        let expected_type = if r.event_name == "page_view" {
            "view"
        } else {
            "action"
        };
        assert_eq!(r.event_type.as_deref(), Some(expected_type));
    }
    let props: Vec<Value> = got
        .iter()
        .map(|r| r.properties.clone().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        props,
        [
            json!({"shop": "demo", "title": "Demo shop"}),
            json!({"shop": "demo", "sku": "SKU-42", "price": 19.99, "quantity": 2}),
            json!({"shop": "demo", "items": 2}),
            json!({"shop": "demo", "order_id": "A-1001", "total": 39.98, "currency": "EUR"}),
        ]
    );
    // Closing the tab sent the queue once: no duplicate rows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(db.count_events().await.expect("count"), (4, 4));
    drop(b);
    eprintln!(
        "tracker funnel in headless Chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_batches_are_retried_and_sessions_follow_the_tab() {
    let started = Instant::now();
    let db = TestDb::migrated("tracker_retry").await.expect("db");
    let shop = Shop::start().expect("shop server");
    // One request per second per address: the tracker's second request gets 429.
    let c = start_collector(
        "tracker-retry",
        &db,
        &shop,
        &[("COLLECTOR_LIMITS__RATE_LIMIT_PER_IP", "1")],
    )
    .expect("collector");
    let b = Browser::start("tracker-retry-chromium").expect("start headless Chromium");

    // Batches of two, sent as soon as they fill or after 50 ms; a session ends after 5 s idle.
    let url = format!("{}/shop?batch=2&flush=50&timeout=5000", shop.origin());
    b.goto(&url).expect("open the shop");
    let ids = page_ids(&b).expect("tracker loaded");
    let (session, anonymous) = (ids.session.clone(), ids.anonymous.clone());
    // A reload keeps the tab's session and the visitor.
    b.goto(&url).expect("reload");
    assert_eq!(page_ids(&b).expect("tracker reloaded"), ids);
    b.exec(
        "for (var i = 0; i < 7; i++) edgeAnalytics.track('step', {i: i});",
        &[],
    )
    .expect("track");
    let tracked = Instant::now();
    // Everything arrives while the page stays open: refused batches were sent again.
    let got = wait_rows(&db, 9, &c).await;
    let refused = metric(
        &c,
        "collector_http_requests_total",
        &["endpoint=\"batch\"", "status=\"429\""],
    );
    assert!(refused >= 1.0, "the rate limit refused some batches");
    // The seven steps share one millisecond of event_time: compare them as a set.
    let mut steps: Vec<i64> = got
        .iter()
        .filter(|r| r.event_name == "step")
        .filter_map(|r| r.properties.as_ref()?["i"].as_i64())
        .collect();
    steps.sort_unstable();
    assert_eq!(steps, (0..7).collect::<Vec<_>>(), "each step once");
    assert_eq!(
        got.iter().filter(|r| r.event_name == "page_view").count(),
        2
    );
    assert!(
        got.iter()
            .all(|r| r.session_id.as_deref() == Some(session.as_str())
                && r.anonymous_id.as_deref() == Some(anonymous.as_str())),
        "one session and one visitor: {got:?}"
    );

    // After the inactivity timeout the next event starts a new session, same visitor.
    std::thread::sleep(Duration::from_millis(5500).saturating_sub(tracked.elapsed()));
    b.exec("edgeAnalytics.track('after_break');", &[])
        .expect("track");
    let got = wait_rows(&db, 10, &c).await;
    let late = got
        .iter()
        .find(|r| r.event_name == "after_break")
        .expect("after_break landed");
    assert_ne!(
        late.session_id.as_deref(),
        Some(session.as_str()),
        "a new session after the timeout"
    );
    assert_eq!(late.anonymous_id.as_deref(), Some(anonymous.as_str()));
    let (rows_n, distinct) = db.count_events().await.expect("count");
    assert_eq!(rows_n, distinct, "retries never stored an event twice");
    assert_eq!(rows_n, 10);
    drop(b);
    eprintln!(
        "tracker retries in headless Chromium: {} refused batches, {:.1} s",
        refused,
        started.elapsed().as_secs_f64()
    );
}

/// A UUID as `crypto.randomUUID` (or the tracker's fallback) makes them: version 4, RFC 4122
/// variant.
fn assert_uuid_v4(id: &str) {
    let u = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?} is not a UUID: {e}"));
    assert_eq!(u.get_version_num(), 4, "{id}");
    assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
    assert_eq!(u.hyphenated().to_string(), id, "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_visitor_is_anonymous_until_identify_and_reset_starts_a_new_one() {
    let started = Instant::now();
    let db = TestDb::migrated("tracker_identity").await.expect("db");
    let shop = Shop::start().expect("shop server");
    let c = start_collector("tracker-identity", &db, &shop, &[]).expect("collector");
    let b = Browser::start("tracker-identity-chromium").expect("start headless Chromium");
    let js = |script: &str| {
        b.exec(script, &[])
            .unwrap_or_else(|e| panic!("{script}: {e:#}"))
    };

    // A visitor of tracker version 1 had an invented integer user id in localStorage: it is
    // adopted as the anonymous id (the actor text of the old rows, so the visitor stays one
    // person), and the old key is removed.
    b.goto(&format!("{}/blank", shop.origin()))
        .expect("open the shop's origin");
    js("localStorage.setItem('edgeAnalytics.user', '4503599627370497');");
    // Anonymous page views: the anonymous id survives a reload (localStorage).
    let url = format!("{}/shop?flush=50", shop.origin());
    b.goto(&url).expect("open the shop");
    let first = page_ids(&b).expect("tracker loaded");
    assert_eq!(
        first.anonymous, "4503599627370497",
        "version 1's id adopted"
    );
    assert_eq!(first.user, Value::Null);
    assert_eq!(
        js("return [localStorage.getItem('edgeAnalytics.user'), \
                    localStorage.getItem('edgeAnalytics.anonymousId')];"),
        json!([null, "4503599627370497"])
    );
    b.goto(&url).expect("reload");
    let reloaded = page_ids(&b).expect("tracker reloaded");
    assert_eq!(
        reloaded.anonymous, first.anonymous,
        "kept across the reload"
    );
    js("edgeAnalytics.track('browse', {category: 'shoes'});");

    // Identify mid-session, then more events, a reload (the user id is kept too).
    js("edgeAnalytics.identify('usr_8f3a2c', {plan: 'pro', name: 'Zoë 山田'});");
    assert_eq!(js("return edgeAnalytics.userId();"), json!("usr_8f3a2c"));
    // Refused without an event: the user stays who they are.
    js("edgeAnalytics.identify({id: 1}); edgeAnalytics.identify(''); edgeAnalytics.identify(1.5);");
    assert_eq!(js("return edgeAnalytics.userId();"), json!("usr_8f3a2c"));
    js("edgeAnalytics.track('add_to_cart', {sku: 'SKU-42'});");
    b.goto(&url).expect("reload while signed in");
    let signed_in = page_ids(&b).expect("tracker reloaded");
    assert_eq!(
        (signed_in.anonymous.as_str(), &signed_in.user),
        (first.anonymous.as_str(), &json!("usr_8f3a2c"))
    );

    // Logout: a new visitor and session; then another user, with an integer id.
    js("edgeAnalytics.reset();");
    let after = page_ids(&b).expect("ids after reset");
    assert_eq!(after.user, Value::Null, "reset forgets the user");
    assert_uuid_v4(&after.anonymous);
    assert_ne!(after.anonymous, first.anonymous, "a new anonymous id");
    assert_ne!(after.session, first.session, "a new session");
    js("edgeAnalytics.track('after_logout');");
    // The next event a millisecond later: rows are compared in event_time order.
    js("edgeAnalytics.identify(42); \
        for (var t = Date.now(); Date.now() === t;) {} \
        edgeAnalytics.track('second_user');");

    let got = wait_rows(&db, 9, &c).await;
    let a = Some(first.anonymous.as_str());
    let b_anon = Some(after.anonymous.as_str());
    // (event, anonymous_id, app_user_id, user_id)
    type Who<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<i64>);
    let who: Vec<Who<'_>> = got
        .iter()
        .map(|r| {
            (
                r.event_name.as_str(),
                r.anonymous_id.as_deref(),
                r.app_user_id.as_deref(),
                r.user_id,
            )
        })
        .collect();
    let user = Some("usr_8f3a2c");
    assert_eq!(
        who,
        [
            ("page_view", a, None, None),
            ("page_view", a, None, None),
            ("browse", a, None, None),
            ("identify", a, user, None),
            ("add_to_cart", a, user, None),
            ("page_view", a, user, None),
            ("after_logout", b_anon, None, None),
            ("identify", b_anon, Some("42"), Some(42)),
            ("second_user", b_anon, Some("42"), Some(42)),
        ],
        "{got:#?}"
    );
    let identify = &got[3];
    assert_eq!(identify.event_type.as_deref(), Some("identify"));
    assert_eq!(
        identify.traits,
        Some(json!({"plan": "pro", "name": "Zoë 山田"}))
    );
    for (i, r) in got.iter().enumerate().filter(|(i, _)| *i != 3) {
        assert_eq!(
            r.traits, None,
            "only the first identify had traits: {i} {r:?}"
        );
    }
    assert_ne!(
        got[6].session_id, got[5].session_id,
        "reset starts a session"
    );

    // The database linked each anonymous visitor to the user it became.
    let client = db.client().await.expect("client");
    let links: Vec<(String, String)> = client
        .query(
            "SELECT anonymous_id, app_user_id FROM identity_links ORDER BY linked_at",
            &[],
        )
        .await
        .expect("identity_links")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        links,
        [
            (first.anonymous.clone(), "usr_8f3a2c".to_string()),
            (after.anonymous.clone(), "42".to_string()),
        ]
    );

    // Storage blocked: the ids live in memory; init's userId identifies the visitor, and
    // without crypto.randomUUID the fallback still makes UUID v4s.
    let blocked = format!("{}/shop?flush=50&nostorage=1&user=u-blocked", shop.origin());
    b.goto(&blocked)
        .expect("open the shop with storage blocked");
    let mem = page_ids(&b).expect("tracker loaded without storage");
    assert_eq!(mem.user, json!("u-blocked"));
    assert_uuid_v4(&mem.anonymous);
    assert!(![&first.anonymous, &after.anonymous].contains(&&mem.anonymous));
    let got = wait_rows(&db, 11, &c).await;
    // Both tracked by init in the same millisecond: compared as a set.
    let mut tail: Vec<(&str, Option<&str>, Option<&str>)> = got[9..]
        .iter()
        .map(|r| {
            (
                r.event_name.as_str(),
                r.anonymous_id.as_deref(),
                r.app_user_id.as_deref(),
            )
        })
        .collect();
    tail.sort_unstable();
    let m = Some(mem.anonymous.as_str());
    assert_eq!(
        tail,
        [
            ("identify", m, Some("u-blocked")),
            ("page_view", m, Some("u-blocked"))
        ]
    );
    let fallback = js(
        "Object.defineProperty(crypto, 'randomUUID', {value: undefined, configurable: true}); \
         edgeAnalytics.reset(); return edgeAnalytics.anonymousId();",
    );
    let fallback = fallback.as_str().expect("an anonymous id").to_string();
    assert_uuid_v4(&fallback);
    assert_ne!(fallback, mem.anonymous);
    drop(b);
    eprintln!(
        "tracker identity in headless Chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
