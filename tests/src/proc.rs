//! Starting and stopping the real binaries. A collector's options come from the
//! [`CollectorOpts`] builder: `CollectorOpts::new("name").database(&url).fast_forwarding()`.
//!
//! The binaries are found next to the test executable (`target/<profile>/`). Unless
//! `E2E_NO_BUILD=1`, the first use in a test process runs `cargo build --bins` so a changed
//! collector is never tested stale.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, OnceLock},
    time::Duration,
};

use anyhow::{bail, Context};

static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Path of a workspace binary (`collector` or `monitor`), built if needed.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let built = BUILT.get_or_init(|| {
        if std::env::var("E2E_NO_BUILD").is_ok_and(|v| v == "1") {
            return Ok(());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bins", "-q"])
            .current_dir(crate::repo_root());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("cargo build --bins failed: {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        bail!("{e}");
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .ancestors()
        .find(|p| p.join(name).is_file())
        .map(Path::to_path_buf)
        .with_context(|| format!("no {name} binary above {}", exe.display()))?;
    Ok(dir.join(name))
}

/// How to start a collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorOpts {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Extra `COLLECTOR_*` (or other) environment variables.
    pub env: Vec<(String, String)>,
    /// Extra flags after `serve`.
    pub args: Vec<String>,
    /// Fault injection: the largest file the process may write (RLIMIT_FSIZE, with SIGXFSZ
    /// ignored), so a write past it fails with EFBIG as on a full disk.
    pub max_file_bytes: Option<u64>,
}

/// Building [`CollectorOpts`]: `CollectorOpts::new(name)` (a fresh temporary buffer
/// directory) or `CollectorOpts::in_dir(path)`, then the chainable settings. The fields stay
/// public: a test may still change `c.opts` before a restart.
impl CollectorOpts {
    /// A collector whose buffer is `buffer` in a fresh [`temp_dir`] named after `name`; no
    /// database, no extra environment or flags.
    pub fn new(name: &str) -> CollectorOpts {
        CollectorOpts::in_dir(temp_dir(name).join("buffer"))
    }

    /// A collector whose buffer is `data_dir` (created on start).
    pub fn in_dir(data_dir: impl Into<PathBuf>) -> CollectorOpts {
        CollectorOpts {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }

    /// Forwards to the database at `url`.
    pub fn database(mut self, url: impl Into<String>) -> CollectorOpts {
        self.database_url = Some(url.into());
        self
    }

    /// One more environment variable (a later one with the same name wins).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> CollectorOpts {
        self.env.push((key.into(), value.into()));
        self
    }

    /// More environment variables, in order.
    pub fn envs<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> CollectorOpts {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// One more flag after `serve`.
    pub fn arg(mut self, arg: impl Into<String>) -> CollectorOpts {
        self.args.push(arg.into());
        self
    }

    /// More flags after `serve`, in order.
    pub fn args<A: Into<String>>(mut self, args: impl IntoIterator<Item = A>) -> CollectorOpts {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Serves the ingest listener over TLS with the PEM files `cert` and `key`.
    pub fn tls(self, cert: &Path, key: &Path) -> CollectorOpts {
        self.env("COLLECTOR_TLS__CERT", cert.display().to_string())
            .env("COLLECTOR_TLS__KEY", key.display().to_string())
    }

    /// Starts with forwarding paused (`--paused`).
    pub fn paused(self) -> CollectorOpts {
        self.arg("--paused")
    }

    /// Forwards soon and retries fast: a linger of 100 ms, retries from 50 ms up to 1 s.
    pub fn fast_forwarding(self) -> CollectorOpts {
        self.env("COLLECTOR_FORWARD__LINGER_MS", "100")
            .env("COLLECTOR_FORWARD__RETRY_MAX_MS", "1000")
            .env("COLLECTOR_FORWARD__RETRY_INITIAL_MS", "50")
    }

    /// Fault injection: writes to a file past `max` bytes fail with EFBIG, as on a full disk.
    pub fn max_file_bytes(mut self, max: u64) -> CollectorOpts {
        self.max_file_bytes = Some(max);
        self
    }

    /// [`CollectorProc::start`] with these options.
    pub fn start(self) -> anyhow::Result<CollectorProc> {
        CollectorProc::start(self)
    }
}

/// A running `collector serve` on loopback ports chosen by the OS.
pub struct CollectorProc {
    child: Child,
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
    pub opts: CollectorOpts,
    pub log: PathBuf,
}

impl CollectorProc {
    pub fn start(opts: CollectorOpts) -> anyhow::Result<CollectorProc> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let log = opts.data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = Command::new(bin("collector")?);
        cmd.arg("serve")
            .arg("--listen=127.0.0.1:0")
            .arg("--admin-listen=127.0.0.1:0")
            .arg(format!("--data-dir={}", opts.data_dir.display()))
            .args(&opts.args)
            .env_remove("DATABASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("E2E_COLLECTOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        if let Some(u) = &opts.database_url {
            cmd.arg(format!("--database-url={u}"));
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(max) = opts.max_file_bytes {
            limit_file_size(&mut cmd, max);
        }
        let mut child = cmd.spawn().context("spawn collector")?;
        let stdout = child.stdout.take().context("collector stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "collector did not report its addresses; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("stdout line {line:?}"))?;
        let addr = |k: &str| -> anyhow::Result<SocketAddr> {
            v["listening"][k]
                .as_str()
                .context("address")?
                .parse()
                .context("parse address")
        };
        Ok(CollectorProc {
            ingest: addr("ingest")?,
            admin: addr("admin")?,
            child,
            opts,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush or finish anything.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        signal(self.child.id(), libc::SIGKILL);
        self.child.wait()?;
        Ok(())
    }

    /// SIGHUP: reload the TLS certificate.
    pub fn hangup(&self) {
        signal(self.child.id(), libc::SIGHUP);
    }

    /// Waits until the log holds `needle` at least `count` times; whether it did within
    /// `timeout`.
    pub fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if self.log_text().matches(needle).count() >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGTERM, then wait up to `timeout` for a graceful exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                bail!("collector did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a new process on the same data directory and options.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let next = CollectorProc::start(self.opts.clone())?;
        *self = next;
        Ok(())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CollectorProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes every write past `max` bytes of a file fail with EFBIG in the child, the way
/// writes fail on a full disk (without needing root to mount a small file system).
fn limit_file_size(cmd: &mut Command, max: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: max as libc::rlim_t,
        rlim_max: max as libc::rlim_t,
    };
    // SAFETY: between fork and exec the closure only calls signal(2) and setrlimit(2),
    // which are async-signal-safe, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Without this the kernel kills the process with SIGXFSZ instead of failing the
            // write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Peak resident memory (VmHWM) of a running process, in KiB; `None` once it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Runs `collector <args>` to completion: (exit code, stdout, stderr).
pub fn collector(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(i32, String, String)> {
    let mut cmd = Command::new(bin("collector")?);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A fresh temporary directory for a test (removed by the OS's tmp cleaning, kept for
/// post-mortems).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edge-e2e-{name}-{}", uuid::Uuid::new_v4().simple()));
    let _ = std::fs::create_dir_all(&d);
    d
}
