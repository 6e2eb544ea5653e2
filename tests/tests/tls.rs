//! HTTPS on the collector's ingest listener, with the real binary and a CA made by the test
//! (rcgen): curl over HTTP/2 and HTTP/1.1 on the same port lands events in the database; a
//! SIGHUP with a new certificate keeps open connections (HTTP/2 and HTTP/1.1) working while
//! new handshakes get the new certificate, and a broken or mismatched replacement keeps the
//! old one; the handshake, an idle HTTP/2 connection and HTTP/2 headers are bounded; bad
//! files stop the start with a message naming them; and headless Chromium, trusting the test
//! CA, sends the tracker's events from an https page to the https collector.

use std::{
    io::Read,
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use e2e::{
    browser::{Browser, Site},
    check::wait_rows,
    client,
    db::TestDb,
    proc::{collector, temp_dir, CollectorOpts},
    tls::{leaf_of, replace, TestCa, TlsConn},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A test CA and the collector's certificate files in a fresh directory.
struct Pki {
    ca: TestCa,
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca = TestCa::new(name).expect("test CA");
        let dir = temp_dir(name);
        ca.write(&dir.join("ca.pem")).expect("write CA");
        Pki {
            ca,
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// `curl -sS --cacert CA ARGS URL`: (stdout without the last line, the last line:
/// "HTTP_VERSION STATUS").
fn curl(ca: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    assert!(
        out.status.success(),
        "curl {args:?}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    (body.to_string(), last.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_over_http2_and_http1_on_one_port_lands_events() {
    let version = Command::new("curl")
        .arg("--version")
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("HTTP2"),
        "this test needs a curl built with HTTP/2"
    );
    let db = TestDb::migrated("tls_curl").await.expect("db");
    let pki = Pki::new("tls-curl");
    pki.ca
        .issue("collector")
        .expect("issue")
        .install(&pki.cert, &pki.key)
        .expect("install");
    let c = CollectorOpts::new("tls-curl")
        .database(&db.url)
        .fast_forwarding()
        .tls(&pki.cert, &pki.key)
        .start()
        .expect("collector");
    let port = c.ingest.port();

    let batch = json!([
        {"event_name": "h2_one", "user_id": "u-1"},
        {"event_name": "h2_two", "user_id": "u-1"},
    ])
    .to_string();
    let (body, line) = curl(
        &pki.ca_file(),
        &[
            "--http2",
            "-H",
            "content-type: application/json",
            "--data-binary",
            &batch,
            &format!("https://127.0.0.1:{port}/v1/batch"),
        ],
    );
    assert_eq!(line, "2 200", "HTTP/2 by ALPN: {body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).ok(),
        Some(json!({"status": "success", "processed": 2}))
    );
    // The same port, HTTP/1.1, the name instead of the address.
    let (body, line) = curl(
        &pki.ca_file(),
        &[
            "--http1.1",
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"event_name": "h1_one", "user_id": "u-2"}"#,
            &format!("https://localhost:{port}/track"),
        ],
    );
    assert_eq!(line, "1.1 200", "{body}");

    assert_eq!(wait_rows(&db, 3, WAIT).await, 3);
    let client = db.client().await.expect("client");
    let names: Vec<String> = client
        .query(
            "SELECT event_name FROM user_events ORDER BY event_name",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["h1_one", "h2_one", "h2_two"]);

    // Plain HTTP on the TLS port gets no answer; the admin listener stays plain HTTP.
    assert!(
        !matches!(client::get(c.ingest, "/health"), Ok(r) if r.status == 200),
        "plain HTTP is not served on a TLS listener"
    );
    assert_eq!(client::get(c.admin, "/health").expect("admin").status, 200);
    assert!(c.log_text().contains("TLS on the ingest listener"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate_and_open_connections_keep_working() {
    let pki = Pki::new("tls-reload");
    let first = pki.ca.issue("first").expect("issue");
    first.install(&pki.cert, &pki.key).expect("install");
    let mut c = CollectorOpts::new("tls-reload")
        .tls(&pki.cert, &pki.key)
        .start()
        .expect("collector");
    let event = r#"[{"event_name": "reload_probe"}]"#;

    let mut h2 = TlsConn::connect(c.ingest, &pki.ca, &[b"h2", b"http/1.1"])
        .await
        .expect("h2 connection");
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let mut h1 = TlsConn::connect(c.ingest, &pki.ca, &[b"http/1.1"])
        .await
        .expect("h1 connection");
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h2.leaf, first.der);
    assert_eq!(h2.post("/v1/validate", event).await.expect("h2").0, 200);
    assert_eq!(h1.post("/v1/validate", event).await.expect("h1").0, 200);

    // A renewal: new key, new certificate, then SIGHUP.
    let second = pki.ca.issue("second").expect("issue");
    second.install(&pki.cert, &pki.key).expect("install");
    c.hangup();
    assert!(
        c.wait_log("TLS certificate reloaded", 1, WAIT),
        "{}",
        c.log_text()
    );
    assert_eq!(
        leaf_of(c.ingest, &pki.ca).await.expect("new handshake"),
        second.der,
        "a new handshake gets the new certificate"
    );
    for _ in 0..3 {
        assert_eq!(h2.post("/v1/validate", event).await.expect("h2").0, 200);
        assert_eq!(h1.post("/v1/validate", event).await.expect("h1").0, 200);
    }
    assert!(!h2.is_closed() && !h1.is_closed(), "open connections stay");

    // A broken replacement: logged, the second certificate stays.
    replace(
        &pki.cert,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .expect("break");
    c.hangup();
    assert!(c.wait_log("NOT reloaded", 1, WAIT), "{}", c.log_text());
    assert_eq!(leaf_of(c.ingest, &pki.ca).await.expect("tls"), second.der);
    // A renewal caught halfway: a new certificate beside the old key.
    let third = pki.ca.issue("third").expect("issue");
    replace(&pki.cert, &third.cert_pem).expect("cert only");
    c.hangup();
    assert!(c.wait_log("NOT reloaded", 2, WAIT), "{}", c.log_text());
    assert!(c.log_text().contains("do not match"), "{}", c.log_text());
    assert_eq!(leaf_of(c.ingest, &pki.ca).await.expect("tls"), second.der);
    // The key arrives: the next SIGHUP takes the pair.
    third.install(&pki.cert, &pki.key).expect("install");
    c.hangup();
    assert!(c.wait_log("TLS certificate reloaded", 2, WAIT));
    assert_eq!(leaf_of(c.ingest, &pki.ca).await.expect("tls"), third.der);
    assert_eq!(h2.post("/v1/validate", event).await.expect("h2").0, 200);
    assert_eq!(h1.post("/v1/validate", event).await.expect("h1").0, 200);
    assert!(c.is_running());

    // Graceful shutdown with both connections open.
    let started = Instant::now();
    let status = c.terminate(Duration::from_secs(10)).expect("exit");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn handshakes_idle_http2_connections_and_http2_headers_are_bounded() {
    let pki = Pki::new("tls-bounds");
    pki.ca
        .issue("bounds")
        .expect("issue")
        .install(&pki.cert, &pki.key)
        .expect("install");
    let c = CollectorOpts::new("tls-bounds")
        .tls(&pki.cert, &pki.key)
        .env("COLLECTOR_TLS__HANDSHAKE_TIMEOUT_SECS", "1")
        .env("COLLECTOR_LIMITS__HEADER_TIMEOUT_SECS", "2")
        .start()
        .expect("collector");

    // A client that connects and never starts the handshake is dropped after 1 s.
    let mut silent = TcpStream::connect(c.ingest).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let n = silent.read(&mut [0u8; 16]).unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0, "closed without a byte");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // HTTP/2 header list over 16 KiB: refused, not served.
    let mut h2 = TlsConn::connect(c.ingest, &pki.ca, &[b"h2"])
        .await
        .expect("h2");
    let big = "x".repeat(20 * 1024);
    let r = h2
        .post_with("/v1/validate", "[]", &[("x-padding", &big)])
        .await;
    assert!(!matches!(r, Ok((200, _))), "oversized headers: {r:?}");

    // An HTTP/2 connection with no request in progress is closed after the header timeout,
    // like a kept-alive HTTP/1.1 one.
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut conn = TlsConn::connect(c.ingest, &pki.ca, &[alpn])
            .await
            .expect("connect");
        assert_eq!(
            conn.post("/v1/validate", r#"[{"event_name": "x"}]"#)
                .await
                .expect("request")
                .0,
            200
        );
        let started = Instant::now();
        while !conn.is_closed() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        assert!(
            conn.is_closed() && took >= Duration::from_millis(1500),
            "{}: idle connection closed after {took:?}",
            String::from_utf8_lossy(alpn)
        );
    }
}

#[test]
fn missing_unreadable_or_mismatched_files_stop_the_start_with_a_clear_message() {
    let pki = Pki::new("tls-files");
    let good = pki.ca.issue("good").expect("issue");
    good.install(&pki.cert, &pki.key).expect("install");
    let other = pki.ca.issue("other").expect("issue");
    let other_key = pki.dir.join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).expect("write");
    let missing = pki.dir.join("missing.pem");
    let data = pki.dir.join("buffer");
    let serve = |cert: &Path, key: &Path| {
        let (code, out, err) = collector(
            &[
                "serve",
                "--listen=127.0.0.1:0",
                "--admin-listen=127.0.0.1:0",
                &format!("--data-dir={}", data.display()),
            ],
            &[
                ("COLLECTOR_TLS__CERT", &cert.display().to_string()),
                ("COLLECTOR_TLS__KEY", &key.display().to_string()),
            ],
        )
        .expect("run collector");
        assert_ne!(code, 0, "refused: {out}");
        assert!(out.is_empty(), "never reported listening: {out}");
        err
    };
    let err = serve(&missing, &pki.key);
    assert!(
        err.contains(&format!("tls.cert {}: cannot read", missing.display())),
        "{err}"
    );
    // A directory cannot be read as a file (root reads files whatever their mode).
    let err = serve(&pki.cert, &pki.dir);
    assert!(
        err.contains("tls.key") && err.contains("cannot read"),
        "{err}"
    );
    let err = serve(&pki.key, &pki.key);
    assert!(err.contains("no PEM certificate"), "{err}");
    let err = serve(&pki.cert, &pki.cert);
    assert!(err.contains("no PEM private key"), "{err}");
    let err = serve(&pki.cert, &other_key);
    assert!(err.contains("do not match"), "{err}");

    let (code, _, err) = collector(
        &[
            "serve",
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
        ],
        &[("COLLECTOR_TLS__CERT", &pki.cert.display().to_string())],
    )
    .expect("run collector");
    assert_ne!(code, 0);
    assert!(err.contains("tls.cert is set without tls.key"), "{err}");
}

/// The https page: the tracker from the https collector, one event sent as soon as it is
/// tracked.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Secure shop</title>
<script>
  window.edgeAnalytics = window.edgeAnalytics || [];
  edgeAnalytics.push(["init", {writeKey: "tls-key", batchSize: 1, flushIntervalMs: 100}]);
  edgeAnalytics.push(["track", "secure_add_to_cart", {sku: "TLS-1"}]);
</script>
<script async src="https://{collector}/tracker.js"></script>
</head><body><h1>Secure shop</h1></body></html>
"#;

#[tokio::test(flavor = "multi_thread")]
async fn chromium_sends_tracker_events_from_an_https_page_to_the_https_collector() {
    let db = TestDb::migrated("tls_browser").await.expect("db");
    let pki = Pki::new("tls-browser");
    pki.ca
        .issue("collector")
        .expect("issue")
        .install(&pki.cert, &pki.key)
        .expect("install");
    let site_cert = pki.ca.issue("site").expect("issue");
    let site = Site::https(TestCa::server_config(&site_cert).expect("site TLS")).expect("site");
    let c = CollectorOpts::new("tls-browser")
        .database(&db.url)
        .fast_forwarding()
        .tls(&pki.cert, &pki.key)
        .env("COLLECTOR_WRITE_KEYS", r#"["tls-key"]"#)
        .env("COLLECTOR_CORS_ORIGINS", format!("[\"{}\"]", site.origin()))
        .start()
        .expect("collector");
    site.put(
        "/shop",
        "text/html; charset=utf-8",
        PAGE.replace("{collector}", &c.ingest.to_string()),
    );

    let b = Browser::start_trusting("tls-chromium", Some(&pki.ca_file()))
        .expect("start headless Chromium");
    let url = format!("{}/shop", site.origin());
    b.goto(&url).expect("open the https page");
    assert_eq!(
        b.exec("return location.protocol;", &[]).expect("exec"),
        json!("https:"),
        "the page itself is https (its certificate trusted)"
    );
    let landed = wait_rows(&db, 2, WAIT).await;
    assert_eq!(
        landed,
        2,
        "page_view and the track landed\n{}\n{}",
        b.chromedriver_log(),
        c.log_text()
    );
    let client = db.client().await.expect("client");
    let rows: Vec<(String, Option<String>)> = client
        .query(
            "SELECT event_name, page_url FROM user_events ORDER BY event_name",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [
            ("page_view".to_string(), Some(url.clone())),
            ("secure_add_to_cart".to_string(), Some(url.clone())),
        ]
    );
}
