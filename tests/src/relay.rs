//! A TCP relay a test can freeze: a silent network partition or a hung server, as the
//! client sees it.
//!
//! Until frozen it copies bytes both ways between a client and the target (the real
//! database). Once frozen it stops relaying in both directions but keeps every socket open
//! and silent, and new connections are accepted and never answered. [`Relay::freeze_after`]
//! freezes it once a given number of bytes went from clients to the target, so a test can
//! freeze it in the middle of a COPY.
//!
//! It runs on its own runtime, so it serves blocking and async tests alike, and stops when
//! dropped.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use anyhow::Context;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

struct State {
    frozen: AtomicBool,
    /// Freeze once this many client→target bytes were relayed (u64::MAX: never).
    freeze_after: AtomicU64,
    client_bytes: AtomicU64,
}

/// A running relay on a loopback port.
pub struct Relay {
    pub addr: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Relay {
    /// Listens on a free loopback port and relays to `target`.
    pub fn start(target: SocketAddr) -> anyhow::Result<Relay> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("relay runtime")?;
        // Bound with std (this may be called from inside another runtime), served on ours.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("relay bind")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            frozen: AtomicBool::new(false),
            freeze_after: AtomicU64::new(u64::MAX),
            client_bytes: AtomicU64::new(0),
        });
        let accept_state = state.clone();
        runtime.spawn(async move {
            if let Ok(listener) = TcpListener::from_std(listener) {
                accept(listener, target, accept_state).await;
            }
        });
        Ok(Relay {
            addr,
            state,
            runtime: Some(runtime),
        })
    }

    /// Stops relaying now: open sockets stay open and silent, new ones are never answered.
    pub fn freeze(&self) {
        self.state.frozen.store(true, Ordering::SeqCst);
    }

    /// Freezes once `bytes` more client→target bytes have been relayed.
    pub fn freeze_after(&self, bytes: u64) {
        let now = self.state.client_bytes.load(Ordering::SeqCst);
        self.state
            .freeze_after
            .store(now.saturating_add(bytes), Ordering::SeqCst);
    }

    pub fn is_frozen(&self) -> bool {
        self.state.frozen.load(Ordering::SeqCst)
    }

    /// Bytes relayed from clients to the target so far.
    pub fn client_bytes(&self) -> u64 {
        self.state.client_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `url` (a `postgres://` URL) with its host and port replaced by `addr`.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map(|i| i + 1).unwrap_or(0);
    let host_end = rest[host_start..]
        .find(['/', '?'])
        .map(|i| host_start + i)
        .unwrap_or(rest.len());
    format!(
        "{}{}{addr}{}",
        &url[..scheme_end],
        &rest[..host_start],
        &rest[host_end..]
    )
}

/// The `host:port` of a `postgres://` URL on loopback.
pub fn url_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let config: tokio_postgres::Config = url.parse()?;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let host = if host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    format!("{host}:{port}").parse().context("database address")
}

async fn accept(listener: TcpListener, target: SocketAddr, state: Arc<State>) {
    let mut held = Vec::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if state.frozen.load(Ordering::SeqCst) {
            // Accepted, never answered.
            held.push(client);
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pump(cr, sw, state.clone(), true));
            let down = tokio::spawn(pump(sr, cw, state, false));
            let _ = tokio::join!(up, down);
        });
    }
}

/// Copies `from` to `to` until either closes; once frozen, holds both open and silent.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
    client_to_target: bool,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        if state.frozen.load(Ordering::SeqCst) {
            let _hold = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if client_to_target {
            let total = state.client_bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if total >= state.freeze_after.load(Ordering::SeqCst) {
                state.frozen.store(true, Ordering::SeqCst);
            }
        }
        if state.frozen.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_the_host_of_a_url() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert_eq!(
            url_via("postgres://u:p@127.0.0.1:5432/db?sslmode=disable", addr),
            "postgres://u:p@127.0.0.1:4000/db?sslmode=disable"
        );
        assert_eq!(
            url_via("postgres://localhost/db", addr),
            "postgres://127.0.0.1:4000/db"
        );
    }
}
