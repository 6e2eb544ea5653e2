//! Geography from the client IP (issue #13 item 5), with the real collector, a real
//! database, and a small MaxMind DB file the test writes itself
//! (`tests/geo/write-test-mmdb.pl`, Debian's `libmaxmind-db-writer-perl`, installed by
//! `deploy/install-mmdb-writer`, which `deploy/test` runs; without it these tests fail with
//! that instruction, they never skip).
//!
//! Behind a trusted proxy (the test's own 127.0.0.1) events are located by the right-most
//! untrusted `X-Forwarded-For` address — IPv4, IPv6, a CJK city, a subdivision without a
//! name, Segment's `context.ip`, a seed event's `ip` — and an event that carries its own
//! country keeps it; from an untrusted peer `X-Forwarded-For` is ignored; without a file
//! nothing is located; a damaged or missing file stops the start with a clear message.
//! No address is stored or logged.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use e2e::{
    check::wait_rows,
    client,
    db::TestDb,
    proc::{bin, temp_dir, CollectorOpts, CollectorProc},
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// Every address the tests send, none of which may be stored or logged.
const ADDRESSES: &[&str] = &[
    "192.0.2.10",
    "198.51.100.7",
    "198.51.100.20",
    "203.0.113.9",
    "2001:db8:1::5",
    "6.6.6.6",
    "8.8.8.8",
];

/// Writes the test database into `dir` and returns its path.
fn test_mmdb(dir: &Path) -> PathBuf {
    let out = dir.join("GeoLite2-City-test.mmdb");
    let script = e2e::repo_root().join("tests/geo/write-test-mmdb.pl");
    let run = Command::new("perl")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("run perl (required to write the test MaxMind DB)");
    assert!(
        run.status.success() && out.is_file(),
        "writing the test MaxMind DB failed — run deploy/install-mmdb-writer \
         (apt-get install libmaxmind-db-writer-perl):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn collector(name: &str, db: &TestDb, geo: Option<&Path>, trusted: &str) -> CollectorProc {
    let mut opts = CollectorOpts::new(name)
        .database(&db.url)
        .fast_forwarding()
        .env("COLLECTOR_GEO__TRUSTED_PROXIES", trusted);
    if let Some(path) = geo {
        opts = opts.env("COLLECTOR_GEO__DATABASE", path.display().to_string());
    }
    opts.start().expect("start collector")
}

/// POSTs `body` to `path` with an optional `X-Forwarded-For`; asserts a 200.
fn send(c: &CollectorProc, path: &str, body: Value, xff: Option<&str>) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(x) = xff {
        headers.push(("X-Forwarded-For", x));
    }
    let r = client::post(c.ingest, path, body.to_string().as_bytes(), &headers).expect("post");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
}

type Place = (Option<String>, Option<String>, Option<String>);

/// event_name → (country_code, region, city), after `n` rows landed.
async fn places(db: &TestDb, n: i64) -> Vec<(String, Place)> {
    assert_eq!(wait_rows(db, n, WAIT).await, n, "rows landed");
    let c = db.client().await.expect("client");
    c.query(
        "SELECT event_name, country_code, region, city FROM user_events ORDER BY event_name",
        &[],
    )
    .await
    .expect("select")
    .iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
    .collect()
}

fn place(country: Option<&str>, region: Option<&str>, city: Option<&str>) -> Place {
    let s = |v: Option<&str>| v.map(str::to_string);
    (s(country), s(region), s(city))
}

/// No address appears anywhere in the stored rows nor in the collector's log.
async fn assert_no_address_kept(db: &TestDb, c: &CollectorProc) {
    let client = db.client().await.expect("client");
    let rows = client
        .query("SELECT user_events::text FROM user_events", &[])
        .await
        .expect("select");
    let log = c.log_text();
    for a in ADDRESSES {
        for r in &rows {
            let text: String = r.get(0);
            assert!(!text.contains(a), "{a} stored: {text}");
        }
        assert!(!log.contains(a), "{a} logged:\n{log}");
    }
}

fn metric(c: &CollectorProc, sample: &str) -> f64 {
    let body = client::get(c.admin, "/metrics").expect("metrics").body;
    body.lines()
        .find(|l| l.starts_with(sample))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_located_by_the_client_address_behind_a_trusted_proxy() {
    let dir = temp_dir("geo");
    let mmdb = test_mmdb(&dir);
    let db = TestDb::migrated("geo").await.expect("db");
    let c = collector("geo", &db, Some(&mmdb), r#"["127.0.0.0/8", "10.0.0.0/8"]"#);

    // The client wrote 6.6.6.6 itself; the proxies appended 192.0.2.10 and 10.1.2.3.
    let chain = "6.6.6.6, 192.0.2.10, 10.1.2.3";
    send(
        &c,
        "/batch",
        json!([
            {"event_name": "a_paris"},
            {"event_name": "b_own_country", "country_code": "de", "city": "Berlin"},
            {"event_name": "c_own_ip", "ip": "198.51.100.7"},
            {"event_name": "d_own_city", "city": "Versailles"},
        ]),
        Some(chain),
    );
    send(
        &c,
        "/track",
        json!({"event_name": "e_ipv6"}),
        Some("[2001:db8:1::5]:443"),
    );
    send(
        &c,
        "/track",
        json!({"event_name": "f_no_city"}),
        Some("203.0.113.9"),
    );
    // No header: the proxy (the peer, 127.0.0.1) is the client.
    send(&c, "/track", json!({"event_name": "g_peer"}), None);
    send(
        &c,
        "/track",
        json!({"event_name": "h_unknown_address"}),
        Some("8.8.8.8"),
    );
    send(
        &c,
        "/track",
        json!({"event_name": "i_broken_chain"}),
        Some("unknown"),
    );
    // Segment: context.ip wins over the request's address and is not kept in properties.
    send(
        &c,
        "/v1/track",
        json!({"type": "track", "event": "j_segment", "anonymousId": "anon-1",
               "context": {"ip": "198.51.100.20", "locale": "ja-JP"}}),
        Some(chain),
    );

    let got = places(&db, 10).await;
    let fr = place(Some("FR"), Some("Île-de-France"), Some("Paris"));
    let expected = vec![
        ("a_paris", fr.clone()),
        ("b_own_country", place(Some("DE"), None, Some("Berlin"))),
        ("c_own_ip", place(Some("JP"), Some("Tokyo"), Some("東京"))),
        (
            "d_own_city",
            place(Some("FR"), Some("Île-de-France"), Some("Versailles")),
        ),
        (
            "e_ipv6",
            place(Some("BR"), Some("São Paulo"), Some("São Paulo")),
        ),
        ("f_no_city", place(Some("US"), Some("CA"), None)),
        (
            "g_peer",
            place(Some("NZ"), Some("Wellington"), Some("Wellington")),
        ),
        ("h_unknown_address", place(None, None, None)),
        ("i_broken_chain", place(None, None, None)),
        ("j_segment", place(Some("JP"), Some("Tokyo"), Some("東京"))),
    ];
    let expected: Vec<(String, Place)> = expected
        .into_iter()
        .map(|(n, p)| (n.to_string(), p))
        .collect();
    assert_eq!(got, expected);

    let client = db.client().await.expect("client");
    let segment: Value = client
        .query_one(
            "SELECT properties FROM user_events WHERE event_name = 'j_segment'",
            &[],
        )
        .await
        .expect("segment row")
        .get(0);
    assert_eq!(
        segment["$segment"]["context"],
        json!({"locale": "ja-JP"}),
        "the rest of the context is kept, the address is not"
    );
    assert_no_address_kept(&db, &c).await;
    let log = c.log_text();
    assert!(
        log.contains("geography database loaded") && log.contains("geography database verified"),
        "{log}"
    );
    // At most one lookup per request's address and one per other address: the batch's
    // (once for two events) and its own ip, four /track addresses (the broken chain has
    // none), and Segment's context.ip (the request's address is then never needed).
    let found = metric(&c, "collector_geo_lookups_total{result=\"found\"}");
    let not_found = metric(&c, "collector_geo_lookups_total{result=\"not_found\"}");
    assert_eq!((found, not_found), (6.0, 1.0), "lookups counted");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let dir = temp_dir("geo-untrusted");
    let mmdb = test_mmdb(&dir);
    let db = TestDb::migrated("geo_untrusted").await.expect("db");
    // The proxies are elsewhere: the test's 127.0.0.1 is a client like any other.
    let c = collector("geo-untrusted", &db, Some(&mmdb), r#"["10.0.0.0/8"]"#);
    send(
        &c,
        "/track",
        json!({"event_name": "spoofed"}),
        Some("192.0.2.10"),
    );
    let got = places(&db, 1).await;
    assert_eq!(
        got,
        vec![(
            "spoofed".to_string(),
            place(Some("NZ"), Some("Wellington"), Some("Wellington"))
        )],
        "located by the peer (127.0.0.1), not by what it forwarded"
    );
    assert_no_address_kept(&db, &c).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_database_file_no_event_is_located() {
    let db = TestDb::migrated("geo_off").await.expect("db");
    let c = collector("geo-off", &db, None, r#"["127.0.0.0/8"]"#);
    send(
        &c,
        "/batch",
        json!([{"event_name": "a"}, {"event_name": "b", "ip": "198.51.100.7"}]),
        Some("192.0.2.10"),
    );
    send(
        &c,
        "/v1/track",
        json!({"type": "track", "event": "c", "anonymousId": "x",
               "context": {"ip": "198.51.100.20"}}),
        None,
    );
    let got = places(&db, 3).await;
    assert!(
        got.iter().all(|(_, p)| *p == place(None, None, None)),
        "{got:?}"
    );
    assert_no_address_kept(&db, &c).await;
    assert_eq!(metric(&c, "collector_geo_lookups_total"), 0.0);
}

/// Runs `collector serve` with `COLLECTOR_GEO__DATABASE=path`, expecting it to stop by
/// itself: (exit code, stderr).
fn serve_expecting_exit(path: &Path) -> (i32, String) {
    let dir = temp_dir("geo-bad");
    let mut child = Command::new(bin("collector").expect("collector binary"))
        .args([
            "serve",
            "--listen=127.0.0.1:0",
            "--admin-listen=127.0.0.1:0",
        ])
        .arg(format!("--data-dir={}", dir.join("buffer").display()))
        .env_remove("DATABASE_URL")
        .env("COLLECTOR_GEO__DATABASE", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn collector");
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the collector started with the geography file {}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_damaged_database_file_stops_the_start_with_a_clear_error() {
    let dir = temp_dir("geo-damaged");
    let good = std::fs::read(test_mmdb(&dir)).expect("read test db");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.mmdb",
            good[..good.len() / 2].to_vec(),
            "not a usable MaxMind DB file",
        ),
        (
            "garbage.mmdb",
            b"GIF89a not a database".to_vec(),
            "not a usable MaxMind DB file",
        ),
        ("empty.mmdb", Vec::new(), "not a usable MaxMind DB file"),
    ];
    for (name, bytes, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        let (code, err) = serve_expecting_exit(&path);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(
            err.contains("geo.database") && err.contains(name) && err.contains(message),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    // Damage inside the records, which the start-up check does not read: the collector
    // starts, and the deep check beside ingest reports it.
    let mut damaged = good.clone();
    let marker = good
        .windows(14)
        .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
        .expect("metadata marker");
    damaged[marker - 40..marker].fill(0xee);
    let path = dir.join("damaged-records.mmdb");
    std::fs::write(&path, damaged).expect("write");
    let c = CollectorOpts::new("geo-damaged-records")
        .env("COLLECTOR_GEO__DATABASE", path.display().to_string())
        .start()
        .expect("starts with damaged records");
    let start = Instant::now();
    while !c.log_text().contains("geography database is damaged") {
        assert!(start.elapsed() < WAIT, "not reported:\n{}", c.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    let (code, err) = serve_expecting_exit(&dir.join("missing.mmdb"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("missing.mmdb") && err.contains("cannot read the file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
