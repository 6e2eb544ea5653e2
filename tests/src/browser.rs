//! Headless Chromium driven over plain W3C WebDriver HTTP/JSON (`ureq`), for the browser
//! tracker's tests: Debian's `chromium` and `chromedriver` (package `chromium-driver`),
//! installed by `deploy/install-chromium`, which the test command (`deploy/test`) runs.
//! Without them [`Browser::start`] fails with that instruction; tests never skip.
//! `E2E_CHROMIUM` and `E2E_CHROMEDRIVER` override the binaries' paths.
//!
//! Invariant: a [`Browser`] owns its chromedriver process, its profile directory and its
//! session; dropping it ends all three.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::proc::temp_dir;

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
