//! Headless Chromium driven over W3C WebDriver (Debian's `chromedriver`, plain HTTP/JSON
//! with `ureq`), and [`Site`], a small web server (HTTP, or HTTPS with a certificate of the
//! test CA) for the pages the browser opens.
//!
//! Chromium, chromedriver and `certutil` are installed by `deploy/install-chromium`, which
//! the test command (`deploy/test`) runs; without them the browser tests fail with that
//! instruction, they never skip. `E2E_CHROMIUM` and `E2E_CHROMEDRIVER` override the
//! binaries' paths.
//!
//! Invariant: the browser and its driver end when the [`Browser`] is dropped, the server's
//! threads when the [`Site`] is; no certificate error is ever ignored (an https page loads
//! only when its certificate chains to a CA the browser was told to trust).

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::proc::temp_dir;

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
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    dir: PathBuf,
}

impl Browser {
    pub fn start(name: &str) -> anyhow::Result<Browser> {
        Browser::start_trusting(name, None)
    }

    /// A browser that also trusts the CA certificate `ca_pem` (PEM) for https pages and
    /// requests: it is added to an NSS database in the browser's own `$HOME`
    /// (`~/.pki/nssdb`, where Chromium on Linux reads locally trusted roots), with Debian's
    /// `certutil` (package `libnss3-tools`, installed by `deploy/install-chromium`).
    pub fn start_trusting(name: &str, ca_pem: Option<&std::path::Path>) -> anyhow::Result<Browser> {
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
        let home = dir.join("home");
        if let Some(ca) = ca_pem {
            trust_in_nss(&home, ca)?;
        }
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
                .envs(ca_pem.map(|_| ("HOME", home.clone())))
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
    pub fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        call(&self.agent, method, &url, body).map(|v| v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/url", Some(&json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn exec(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` asynchronously: it finishes by calling `arguments[arguments.length - 1]`
    /// with its result.
    pub fn exec_async(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Polls `script` until it returns something truthy; returns that value.
    pub fn wait_js(&self, script: &str, timeout: Duration) -> anyhow::Result<Value> {
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

    pub fn click(&self, css: &str) -> anyhow::Result<()> {
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

    pub fn current_window(&self) -> anyhow::Result<String> {
        Ok(self
            .cmd("GET", "/window", None)?
            .as_str()
            .context("window handle")?
            .to_string())
    }

    pub fn new_tab(&self) -> anyhow::Result<String> {
        Ok(
            self.cmd("POST", "/window/new", Some(&json!({"type": "tab"})))?["handle"]
                .as_str()
                .context("new tab handle")?
                .to_string(),
        )
    }

    pub fn switch_to(&self, handle: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/window", Some(&json!({ "handle": handle })))
            .map(|_| ())
    }

    /// Closes the current tab, as a user closing it: the page gets `visibilitychange` and
    /// `pagehide`.
    pub fn close_tab(&self) -> anyhow::Result<()> {
        self.cmd("DELETE", "/window", None).map(|_| ())
    }

    pub fn chromedriver_log(&self) -> String {
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

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Makes `home/.pki/nssdb` trust the CA certificate at `ca` for TLS servers.
fn trust_in_nss(home: &Path, ca: &Path) -> anyhow::Result<()> {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db)?;
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("certutil")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("certutil is required to trust the test CA (deploy/install-chromium installs libnss3-tools)")?;
        if !out.status.success() {
            bail!(
                "certutil {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(&["-N", "-d", &db_arg, "--empty-password"])?;
    let ca = ca.display().to_string();
    run(&[
        "-A",
        "-d",
        &db_arg,
        "-n",
        "e2e test CA",
        "-t",
        "C,,",
        "-i",
        &ca,
    ])
}

// ---------------------------------------------------------------------------------------------
// Site: a small web server for the browser's pages
// ---------------------------------------------------------------------------------------------

/// A page or file: content type and body.
#[derive(Clone)]
struct Resource {
    content_type: String,
    body: Vec<u8>,
}

/// Serves the resources it was given on 127.0.0.1 (HTTPS when started with a TLS
/// configuration), each request on its own thread, one request per connection, until
/// dropped. Unknown paths are 404.
pub struct Site {
    pub addr: SocketAddr,
    tls: bool,
    resources: Arc<Mutex<HashMap<String, Resource>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    /// A plain HTTP site.
    pub fn http() -> anyhow::Result<Site> {
        Site::start(None)
    }

    /// An HTTPS site with `config` (see [`crate::tls::TestCa::server_config`]).
    pub fn https(config: Arc<rustls::ServerConfig>) -> anyhow::Result<Site> {
        Site::start(Some(config))
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Site> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let resources: Arc<Mutex<HashMap<String, Resource>>> = Arc::default();
        let (flag, shared, secure) = (stop.clone(), resources.clone(), tls.is_some());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (shared, tls) = (shared.clone(), tls.clone());
                        std::thread::spawn(move || {
                            let _ = serve_connection(stream, tls, &shared);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Site {
            addr,
            tls: secure,
            resources,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` or `https://…`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Serves `body` at `path` (the query string is ignored when matching).
    pub fn put(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) {
        if let Ok(mut r) = self.resources.lock() {
            r.insert(
                path.to_string(),
                Resource {
                    content_type: content_type.to_string(),
                    body: body.into(),
                },
            );
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    resources: &Mutex<HashMap<String, Resource>>,
) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    match tls {
        None => serve_one(stream, resources),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            serve_one(&mut tls, resources)?;
            tls.conn.send_close_notify();
            tls.flush()?;
            Ok(())
        }
    }
}

fn serve_one(
    mut stream: impl Read + Write,
    resources: &Mutex<HashMap<String, Resource>>,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("");
    let found = resources.lock().ok().and_then(|r| r.get(path).cloned());
    let (status, resource) = match found {
        Some(r) => ("200 OK", r),
        None => (
            "404 Not Found",
            Resource {
                content_type: "text/plain".into(),
                body: b"not found".to_vec(),
            },
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        resource.content_type,
        resource.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&resource.body)?;
    stream.flush()?;
    Ok(())
}
