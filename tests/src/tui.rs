//! The real `monitor` in a pseudo-terminal, its output fed to a terminal emulator (vt100):
//! start it, type keys, resize, hang up, read the screen, wait for text or an exit.
//!
//! Invariant: the child is killed when the handle is dropped; every wait has a bound.

use std::{
    io::{Read, Write},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

use crate::{
    client::post_json,
    db::{eventually, TestDb},
    proc::{self, CollectorOpts, CollectorProc},
};

/// A migrated database `e2e_<prefix>_…` holding `events`, posted in one `/v1/batch` to a
/// real collector and landed within `wait`: what the dashboard tests open. The collector
/// keeps running (the dashboard's Collectors row).
pub async fn loaded(
    prefix: &str,
    events: &[serde_json::Value],
    wait: Duration,
) -> anyhow::Result<(TestDb, CollectorProc)> {
    let db = TestDb::migrated(prefix).await?;
    let collector = CollectorOpts::new(&prefix.replace('_', "-"))
        .database(&db.url)
        .env("COLLECTOR_FORWARD__LINGER_MS", "50")
        .start()?;
    let n = events.len() as i64;
    let r = post_json(collector.ingest, "/v1/batch", &serde_json::json!(events))?;
    anyhow::ensure!(r.status == 200, "{}", r.body);
    let landed = eventually(wait, || async {
        db.count_events().await.map(|c| c.0 == n).unwrap_or(false)
    })
    .await;
    anyhow::ensure!(
        landed,
        "events did not land; log:\n{}",
        collector.log_text()
    );
    Ok((db, collector))
}

/// The real `monitor` in a pseudo-terminal, its output fed to a terminal emulator.
pub struct Tui {
    child: Box<dyn Child + Send + Sync>,
    master: Option<Box<dyn MasterPty + Send>>,
    writer: Option<Box<dyn Write + Send>>,
    /// The emulated screen and every byte the program wrote.
    screen: Arc<Mutex<(vt100::Parser, Vec<u8>)>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Tui {
    pub fn start(args: &[&str], cols: u16, rows: u16) -> anyhow::Result<Tui> {
        Tui::start_in(args, cols, rows, None)
    }

    /// [`Tui::start`] in the working directory `dir` (where an export is written).
    pub fn start_in(
        args: &[&str],
        cols: u16,
        rows: u16,
        dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Tui> {
        let pair = native_pty_system().openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })?;
        let mut cmd = CommandBuilder::new(proc::bin("monitor")?);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("DATABASE_URL");
        cmd.env_remove("COLLECTOR_ADMIN_TOKEN");
        if let Some(d) = dir {
            cmd.cwd(d);
        }
        let child = pair.slave.spawn_command(cmd)?;
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let screen = Arc::new(Mutex::new((vt100::Parser::new(rows, cols, 0), Vec::new())));
        let sink = screen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return, // EOF, or EIO once the program is gone
                    Ok(n) => {
                        if let Ok(mut s) = sink.lock() {
                            s.0.process(&buf[..n]);
                            s.1.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        });
        Ok(Tui {
            child,
            master: Some(pair.master),
            writer: Some(writer),
            screen,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    pub fn contents(&self) -> String {
        self.screen
            .lock()
            .map(|s| s.0.screen().contents())
            .unwrap_or_default()
    }

    /// A left click on cell (`col`, `row`), 0-based, as an xterm sends it with SGR mouse
    /// reporting (press, then release).
    pub fn click(&mut self, col: u16, row: u16) -> anyhow::Result<()> {
        let (x, y) = (col + 1, row + 1);
        self.keys(&format!("\x1b[<0;{x};{y}M\x1b[<0;{x};{y}m"))
    }

    pub fn keys(&mut self, keys: &str) -> anyhow::Result<()> {
        let w = self.writer.as_mut().context("terminal hung up")?;
        w.write_all(keys.as_bytes())?;
        w.flush()?;
        Ok(())
    }

    /// What a closed terminal window or a dropped SSH session sends the program.
    pub fn hang_up(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the child we spawned; no memory is touched.
            unsafe {
                libc::kill(pid as i32, libc::SIGHUP);
            }
        }
    }

    /// Waits until a screen line holds every token (whole words), returns that line.
    pub fn wait_line(&self, tokens: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if let Some(line) = find_line(&screen, tokens) {
                return Ok(line);
            }
            if start.elapsed() > timeout {
                bail!("no line with {tokens:?} within {timeout:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_text(&self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if screen.contains(text) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("no {text:?} within {timeout:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the terminal (the program gets SIGWINCH) and the emulated screen.
    pub fn resize(&mut self, cols: u16, rows: u16) -> anyhow::Result<()> {
        if let Ok(mut s) = self.screen.lock() {
            s.0.screen_mut().set_size(rows, cols);
        }
        self.master
            .as_ref()
            .context("terminal hung up")?
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })?;
        Ok(())
    }

    /// Peak resident memory (VmHWM) of the running program, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        proc::peak_rss_kib(self.pid()?)
    }

    /// After the program left: (still on the alternate screen, cursor hidden, every byte
    /// it wrote).
    pub fn terminal_state(&self) -> (bool, bool, Vec<u8>) {
        self.screen
            .lock()
            .map(|s| {
                (
                    s.0.screen().alternate_screen(),
                    s.0.screen().hide_cursor(),
                    s.1.clone(),
                )
            })
            .unwrap_or_default()
    }

    /// Waits until `check` holds for the screen (at most `timeout`); returns the screen.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if check(&screen) {
                return Ok(screen);
            }
            if start.elapsed() > timeout {
                bail!("{what}: not within {timeout:?}; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the exit; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<u32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Ok(status.exit_code());
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                bail!(
                    "monitor did not exit within {timeout:?}; screen:\n{}",
                    self.contents()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The terminal's line discipline is back in cooked mode with echo (raw mode left).
    pub fn cooked(&self) -> Option<bool> {
        let fd = self.master.as_ref()?.as_raw_fd()?;
        // SAFETY: tcgetattr only writes the termios struct we own; fd is the pty's master.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        Some(t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0)
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn find_line(screen: &str, tokens: &[&str]) -> Option<String> {
    screen
        .lines()
        .find(|line| {
            let words: Vec<&str> = line
                .split(|c: char| c.is_whitespace() || "│┌┐└┘─".contains(c))
                .filter(|w| !w.is_empty())
                .collect();
            tokens.iter().all(|t| words.contains(t))
        })
        .map(str::to_string)
}
