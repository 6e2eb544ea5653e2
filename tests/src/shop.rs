//! The browser tracker's fixtures: a shop page served on its own loopback origin (so the
//! tracker's requests to the collector are cross-origin and CORS is exercised), a collector
//! for it, and the rows of `user_events` the tests compare.
//!
//! Invariant: the page loads `tracker.js` from the collector it is given, never a copy.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context;
use serde_json::Value;

use crate::{
    browser::Browser,
    client,
    db::{eventually, TestDb},
    proc::{CollectorOpts, CollectorProc},
};

/// How long a test waits for the browser or for rows.
pub const WAIT: Duration = Duration::from_secs(30);
/// The write key the shop page sends.
pub const WRITE_KEY: &str = "shop-key";

/// Serves `/shop` (the page with the tracker) and `/blank` on 127.0.0.1, until dropped.
pub struct Shop {
    addr: SocketAddr,
    /// The collector's address, which the page loads the tracker from; set once it runs.
    collector: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The shop page. `{collector}` is replaced by the collector's address. Options come from the
/// query string so one page serves every test: `batch`, `flush`, `timeout` (the tracker's
/// batch size, flush interval and session timeout), `user` (init's `userId`), `nostorage=1`
/// (localStorage and sessionStorage throw, as in a sandboxed frame or a strict privacy mode).
const SHOP_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Demo shop</title>
<script>
  var q = new URLSearchParams(location.search);
  // Test instrumentation: count beacons in localStorage, where another tab can read them.
  (function () {
    var send = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = function (url, body) {
      var ok = send(url, body);
      try {
        localStorage.setItem("test.beacons", String(Number(localStorage.getItem("test.beacons") || 0) + 1));
        localStorage.setItem("test.beacon_url", url);
        localStorage.setItem("test.beacon_ok", String(ok));
      } catch (e) { /* ?nostorage */ }
      return ok;
    };
  })();
  if (q.get("nostorage")) ["localStorage", "sessionStorage"].forEach(function (k) {
    Object.defineProperty(window, k, {configurable: true,
      get: function () { throw new DOMException("storage is blocked", "SecurityError"); }});
  });
  // The async snippet: calls queue until tracker.js has loaded. No endpoint: the tracker
  // derives it from its own script URL.
  window.edgeAnalytics = window.edgeAnalytics || [];
  edgeAnalytics.push(["init", {
    writeKey: "shop-key",
    userId: q.get("user") || undefined,
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
    pub fn start() -> anyhow::Result<Shop> {
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

    pub fn origin(&self) -> String {
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

/// A collector forwarding to `db` that accepts the write key and, for CORS, the shop's
/// origin only.
pub fn start_collector(
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
pub struct Row {
    pub event_id: uuid::Uuid,
    pub event_name: String,
    pub event_type: Option<String>,
    pub user_id: Option<i64>,
    pub session_id: Option<String>,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub device_type: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub properties: Option<Value>,
    pub collector_id: Option<String>,
    pub event_time: time::OffsetDateTime,
    /// The user id as the client sent it.
    pub app_user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub traits: Option<Value>,
}

pub async fn rows(db: &TestDb) -> anyhow::Result<Vec<Row>> {
    let c = db.client().await?;
    let rows = c
        .query(
            "SELECT event_id, event_name, event_type, user_id, session_id, page_url, referrer,
                    device_type, browser, os, properties, collector_id, event_time,
                    app_user_id, anonymous_id, traits
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
            app_user_id: r.get(13),
            anonymous_id: r.get(14),
            traits: r.get(15),
        })
        .collect())
}

/// Waits until `user_events` holds at least `n` rows; returns them.
pub async fn wait_rows(db: &TestDb, n: usize, c: &CollectorProc) -> Vec<Row> {
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
pub fn metric(c: &CollectorProc, name: &str, labels: &[&str]) -> f64 {
    let body = client::get(c.admin, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The ids the tracker holds once it has loaded in the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageIds {
    pub session: String,
    pub anonymous: String,
    /// The identified user's id, as JSON (a string or a number), `null` when anonymous.
    pub user: Value,
}

/// Waits for the tracker to load in the current page; its ids.
pub fn page_ids(b: &Browser) -> anyhow::Result<PageIds> {
    let v = b.wait_js(
        "return window.edgeAnalytics && edgeAnalytics.version && \
         [edgeAnalytics.sessionId(), edgeAnalytics.anonymousId(), edgeAnalytics.userId()];",
        WAIT,
    )?;
    Ok(PageIds {
        session: v[0].as_str().context("session id")?.to_string(),
        anonymous: v[1].as_str().context("anonymous id")?.to_string(),
        user: v[2].clone(),
    })
}
