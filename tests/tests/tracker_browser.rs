//! The browser tracker (`collector/assets/tracker.js`, served at `/tracker.js`) end to end in
//! headless Chromium: a shop page on its own loopback origin loads the tracker from a real
//! collector (so CORS is exercised), a funnel is clicked through, the tab is closed, and the
//! events are read back from `user_events` in a real database.
//!
//! Chromium is driven by Debian's `chromedriver` (package `chromium-driver`) over plain W3C
//! WebDriver HTTP/JSON with `ureq`. Both are installed by `deploy/install-chromium`, which the
//! test command (`deploy/test`) runs; without them these tests fail with that instruction,
//! they never skip. `E2E_CHROMIUM` and `E2E_CHROMEDRIVER` override the binaries' paths.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use e2e::{
    client,
    db::{eventually, TestDb},
    proc::{temp_dir, CollectorOpts, CollectorProc},
};
use serde_json::{json, Value};

/// The flags Chromium needs on this closed network and in a container running as root.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
];

const WAIT: Duration = Duration::from_secs(30);
const WRITE_KEY: &str = "shop-key";

// ---------------------------------------------------------------------------------------------
// WebDriver over HTTP/JSON
// ---------------------------------------------------------------------------------------------

/// An executable from an environment override or the PATH.
fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver process and one browser session; both end on drop.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    dir: PathBuf,
}

impl Browser {
    fn start(name: &str) -> anyhow::Result<Browser> {
        let install = "run deploy/install-chromium (apt-get install chromium chromium-driver) \
                       or set E2E_CHROMIUM / E2E_CHROMEDRIVER";
        let chromium = find_binary("E2E_CHROMIUM", &["chromium", "chromium-browser"])
            .with_context(|| {
                format!("headless Chromium is required and was not found: {install}")
            })?;
        let chromedriver =
            find_binary("E2E_CHROMEDRIVER", &["chromedriver"]).with_context(|| {
                format!("chromedriver is required to drive Chromium and was not found: {install}")
            })?;
        let dir = temp_dir(name);
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let mut last_err = anyhow!("chromedriver did not start");
        for _ in 0..3 {
            let port = free_port()?;
            let mut driver = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    dir.join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("spawn {}", chromedriver.display()))?;
            let base = format!("http://127.0.0.1:{port}");
            let ready = wait_until(Duration::from_secs(15), || {
                agent
                    .get(&format!("{base}/status"))
                    .call()
                    .ok()
                    .and_then(|r| r.into_json::<Value>().ok())
                    .is_some_and(|v| v["value"]["ready"] == true)
            });
            if !ready {
                let _ = driver.kill();
                let _ = driver.wait();
                last_err = anyhow!("chromedriver on port {port} did not become ready");
                continue;
            }
            let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
            args.push(format!("--user-data-dir={}", profile.display()));
            let caps = json!({"capabilities": {"alwaysMatch": {
                "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
                "timeouts": {"script": 20_000, "pageLoad": 30_000, "implicit": 0},
            }}});
            let created =
                call(&agent, "POST", &format!("{base}/session"), Some(&caps)).and_then(|v| {
                    v["value"]["sessionId"]
                        .as_str()
                        .map(str::to_string)
                        .context("new session without an id")
                });
            match created {
                Ok(session) => {
                    return Ok(Browser {
                        driver,
                        base,
                        session,
                        agent,
                        dir,
                    });
                }
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    last_err = e.context(format!(
                        "starting {} (log: {})",
                        chromium.display(),
                        dir.join("chromedriver.log").display()
                    ));
                }
            }
        }
        Err(last_err)
    }

    /// One WebDriver command on the session; returns its `value`.
    fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        call(&self.agent, method, &url, body).map(|v| v["value"].clone())
    }

    fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/url", Some(&json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    fn exec(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` asynchronously: it finishes by calling `arguments[arguments.length - 1]`
    /// with its result.
    fn exec_async(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Polls `script` until it returns something truthy; returns that value.
    fn wait_js(&self, script: &str, timeout: Duration) -> anyhow::Result<Value> {
        let start = Instant::now();
        loop {
            let v = self.exec(script, &[])?;
            if !matches!(v, Value::Null | Value::Bool(false)) {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!("timed out waiting for `{script}` in the page");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn click(&self, css: &str) -> anyhow::Result<()> {
        let el = self.cmd(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        )?;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .with_context(|| format!("no element {css}: {el}"))?
            .to_string();
        self.cmd("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .map(|_| ())
    }

    fn current_window(&self) -> anyhow::Result<String> {
        Ok(self
            .cmd("GET", "/window", None)?
            .as_str()
            .context("window handle")?
            .to_string())
    }

    fn new_tab(&self) -> anyhow::Result<String> {
        Ok(
            self.cmd("POST", "/window/new", Some(&json!({"type": "tab"})))?["handle"]
                .as_str()
                .context("new tab handle")?
                .to_string(),
        )
    }

    fn switch_to(&self, handle: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/window", Some(&json!({ "handle": handle })))
            .map(|_| ())
    }

    /// Closes the current tab, as a user closing it: the page gets `visibilitychange` and
    /// `pagehide`.
    fn close_tab(&self) -> anyhow::Result<()> {
        self.cmd("DELETE", "/window", None).map(|_| ())
    }

    fn chromedriver_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            &self.agent,
            "DELETE",
            &format!("{}/session/{}", self.base, self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An HTTP/JSON request to chromedriver; WebDriver errors become `Err` with their message.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let req = agent.request(method, url);
    let resp = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    match resp {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            let v: Value = r.into_json().unwrap_or(Value::Null);
            bail!(
                "WebDriver {method} {url}: HTTP {code} {}: {}",
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or("")
            )
        }
        Err(e) => Err(anyhow!("WebDriver {method} {url}: {e}")),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

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
