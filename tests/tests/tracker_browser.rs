//! The browser tracker (`collector/assets/tracker.js`, served at `/tracker.js`) end to end in
//! headless Chromium: a shop page on its own loopback origin loads the tracker from a real
//! collector (so CORS is exercised), a funnel is clicked through, the tab is closed, and the
//! events are read back from `user_events` in a real database.
//!
//! Chromium is driven over WebDriver by [`e2e::browser::Browser`] (Debian's chromium and
//! chromedriver, installed by `deploy/install-chromium`; without them these tests fail with
//! that instruction, they never skip).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context;
use e2e::{
    browser::Browser,
    client,
    db::{eventually, TestDb},
    proc::{CollectorOpts, CollectorProc},
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const WRITE_KEY: &str = "shop-key";

// ---------------------------------------------------------------------------------------------
// The shop: a tiny HTTP server on its own origin
// ---------------------------------------------------------------------------------------------

/// Serves `/shop` (the page with the tracker) and `/blank` on 127.0.0.1, until dropped.
struct Shop {
    addr: SocketAddr,
    /// The collector's address, which the page loads the tracker from; set once it runs.
    collector: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The shop page. `{collector}` is replaced by the collector's address. Options come from the
/// query string so one page serves both tests.
const SHOP_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Demo shop</title>
<script>
  // Test instrumentation: count beacons in localStorage, where another tab can read them.
  (function () {
    var send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = function (url, body) {
      var ok = send(url, body);
      localStorage.setItem("test.beacons", String(Number(localStorage.getItem("test.beacons") || 0) + 1));
      localStorage.setItem("test.beacon_url", url);
      localStorage.setItem("test.beacon_ok", String(ok));
      return ok;
    };
  })();
  // The async snippet: calls queue until tracker.js has loaded. No endpoint: the tracker
  // derives it from its own script URL.
  var q = new URLSearchParams(location.search);
  window.edgeAnalytics = window.edgeAnalytics || [];
  edgeAnalytics.push(["init", {
    writeKey: "shop-key",
    properties: {shop: "demo"},
    batchSize: Number(q.get("batch") || 50),
    flushIntervalMs: Number(q.get("flush") || 600000),
    sessionTimeoutMs: Number(q.get("timeout") || 1800000)
  }]);
</script>
<script async src="http://{collector}/tracker.js"></script>
</head><body>
<h1>Demo shop</h1>
<button id="add" onclick="edgeAnalytics.track('add_to_cart', {sku: 'SKU-42', price: 19.99, quantity: 2})">Add to cart</button>
<button id="checkout" onclick="edgeAnalytics.track('checkout_start', {items: 2})">Checkout</button>
<button id="purchase" onclick="edgeAnalytics.track('purchase', {order_id: 'A-1001', total: 39.98, currency: 'EUR'})">Buy now</button>
</body></html>
"#;

impl Shop {
    fn start() -> anyhow::Result<Shop> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let collector: Arc<Mutex<String>> = Arc::default();
        let (flag, shared) = (stop.clone(), collector.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let c = shared.clone();
                        std::thread::spawn(move || {
                            let _ = serve_one(stream, &c);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Shop {
            addr,
            collector,
            stop,
            thread: Some(thread),
        })
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve_one(mut stream: TcpStream, collector: &Mutex<String>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let collector = collector.lock().map(|c| c.clone()).unwrap_or_default();
    let (status, body) = match path.split('?').next().unwrap_or("") {
        "/shop" => ("200 OK", SHOP_PAGE.replace("{collector}", &collector)),
        "/blank" => (
            "200 OK",
            "<!doctype html><title>blank</title><p>another tab</p>".to_string(),
        ),
        _ => ("404 Not Found", "not found".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes())?;
    stream.flush()
}

impl Drop for Shop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A collector forwarding to `db` that accepts the write key and, for CORS, the shop's
/// origin only.
fn start_collector(
    name: &str,
    db: &TestDb,
    shop: &Shop,
    extra: &[(&str, &str)],
) -> anyhow::Result<CollectorProc> {
    let c = CollectorOpts::new(name)
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "100")
        .env("COLLECTOR_WRITE_KEYS", format!("[\"{WRITE_KEY}\"]"))
        .env("COLLECTOR_CORS_ORIGINS", format!("[\"{}\"]", shop.origin()))
        .env("COLLECTOR_COLLECTOR_ID", format!("edge-{name}"))
        .envs(extra.iter().copied())
        .start()?;
    if let Ok(mut addr) = shop.collector.lock() {
        *addr = c.ingest.to_string();
    }
    Ok(c)
}

/// One row of `user_events` as the tests compare it.
#[derive(Debug, Clone)]
struct Row {
    event_id: uuid::Uuid,
    event_name: String,
    event_type: Option<String>,
    user_id: Option<i64>,
    session_id: Option<String>,
    page_url: Option<String>,
    referrer: Option<String>,
    device_type: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    properties: Option<Value>,
    collector_id: Option<String>,
    event_time: time::OffsetDateTime,
}

async fn rows(db: &TestDb) -> anyhow::Result<Vec<Row>> {
    let c = db.client().await?;
    let rows = c
        .query(
            "SELECT event_id, event_name, event_type, user_id, session_id, page_url, referrer,
                    device_type, browser, os, properties, collector_id, event_time
             FROM user_events ORDER BY event_time, event_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Row {
            event_id: r.get(0),
            event_name: r.get(1),
            event_type: r.get(2),
            user_id: r.get(3),
            session_id: r.get(4),
            page_url: r.get(5),
            referrer: r.get(6),
            device_type: r.get(7),
            browser: r.get(8),
            os: r.get(9),
            properties: r.get(10),
            collector_id: r.get(11),
            event_time: r.get(12),
        })
        .collect())
}

/// Waits until `user_events` holds at least `n` rows; returns them.
async fn wait_rows(db: &TestDb, n: usize, c: &CollectorProc) -> Vec<Row> {
    let ok = eventually(WAIT, || async {
        rows(db).await.map(|r| r.len() >= n).unwrap_or(false)
    })
    .await;
    let got = rows(db).await.expect("read user_events");
    assert!(
        ok,
        "expected {n} events in user_events, found {}: {:?}\ncollector metrics:\n{}\ncollector log:\n{}",
        got.len(),
        got.iter().map(|r| &r.event_name).collect::<Vec<_>>(),
        client::get(c.admin, "/metrics").map(|r| r.body).unwrap_or_default(),
        c.log_text()
    );
    got
}

/// The value of one counter sample in the collector's `/metrics`, 0 when absent.
fn metric(c: &CollectorProc, name: &str, labels: &[&str]) -> f64 {
    let body = client::get(c.admin, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn page_ids(b: &Browser) -> anyhow::Result<(String, i64)> {
    let v = b.wait_js(
        "return window.edgeAnalytics && edgeAnalytics.version && \
         [edgeAnalytics.sessionId(), String(edgeAnalytics.userId())];",
        WAIT,
    )?;
    let session = v[0].as_str().context("session id")?.to_string();
    let user = v[1]
        .as_str()
        .context("user id")?
        .parse::<i64>()
        .context("user id is an integer")?;
    Ok((session, user))
}

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
    let (session, user) = page_ids(&b).expect("tracker loaded and initialised");
    assert!(
        user > 0 && user < (1i64 << 53),
        "anonymous user id is a positive 53-bit integer: {user}"
    );
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
             localStorage.getItem('test.beacon_ok'), localStorage.getItem('edgeAnalytics.user')];",
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
        json!(user.to_string()),
        "the anonymous user id is kept in localStorage"
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
        assert_eq!(r.user_id, Some(user), "{r:?}");
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
    let (session, user) = page_ids(&b).expect("tracker loaded");
    // A reload keeps the tab's session and the user.
    b.goto(&url).expect("reload");
    let (again, user_again) = page_ids(&b).expect("tracker reloaded");
    assert_eq!((again.as_str(), user_again), (session.as_str(), user));
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
            .all(|r| r.session_id.as_deref() == Some(session.as_str()) && r.user_id == Some(user)),
        "one session and one user: {got:?}"
    );

    // After the inactivity timeout the next event starts a new session, same user.
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
    assert_eq!(late.user_id, Some(user));
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
