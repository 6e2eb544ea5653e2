//! The load generator: seed-shaped events over keep-alive HTTP/1.1 connections (hyper),
//! closed-loop (as fast as acknowledgements come) or open-loop at a fixed rate. Latency is
//! measured from the moment a request was due, so a slow server cannot hide its queueing
//! (no coordinated omission). It only ever connects to the address it is given, which the
//! callers take from a collector they started on loopback.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub events: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LoadReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        if !addr.ip().is_loopback() {
            bail!("the load generator only targets loopback addresses, not {addr}");
        }
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender, addr })
    }

    /// POSTs `body`; returns the status.
    pub async fn post(&mut self, path: &str, body: Bytes) -> anyhow::Result<u16> {
        if self.sender.is_closed() {
            *self = Conn::open(self.addr).await?;
        }
        self.sender.ready().await?;
        let req = Request::post(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(status)
    }
}

/// Pre-serialised request bodies: `count` bodies of `per` events each (distinct event ids).
pub fn bodies(seed: u64, count: usize, per: usize) -> Vec<Bytes> {
    bodies_with(seed, count, per, true)
}

/// Like [`bodies`] but without `event_id`s: the collector assigns one to every event it
/// accepts, so a body sent again is new events (for loads that must reach the database as
/// distinct rows; with ids, a resent body is deduplicated there).
pub fn bodies_without_ids(seed: u64, count: usize, per: usize) -> Vec<Bytes> {
    bodies_with(seed, count, per, false)
}

fn bodies_with(seed: u64, count: usize, per: usize, ids: bool) -> Vec<Bytes> {
    let mut rng = crate::gen::rng(seed);
    (0..count)
        .map(|_| {
            let mut events = crate::gen::batch(&mut rng, per);
            if !ids {
                for e in &mut events {
                    if let Some(o) = e.as_object_mut() {
                        o.remove("event_id");
                    }
                }
            }
            let v = if per == 1 {
                events[0].clone()
            } else {
                serde_json::Value::Array(events)
            };
            Bytes::from(v.to_string())
        })
        .collect()
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Closed loop: `connections` clients post as fast as they are answered for `duration`.
pub async fn closed_loop(
    addr: SocketAddr,
    path: &str,
    bodies: Arc<Vec<Bytes>>,
    per: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let mut m = Merged::new(per);
    closed_loop_into(&mut m, addr, path, bodies, connections, duration).await?;
    Ok(m.report())
}

/// Several slices of one load added up: a benchmark that alternates short slices of two
/// loads (A B A B …) compares them under the same machine conditions, which drift on a
/// shared machine.
pub struct Merged {
    h: Histogram<u64>,
    ok: u64,
    errors: u64,
    elapsed: Duration,
    per: usize,
}

impl Merged {
    /// An empty total for requests of `per` events.
    pub fn new(per: usize) -> Merged {
        Merged {
            h: histogram(),
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            per,
        }
    }

    /// The slices so far as one report (throughput over their summed time, latency
    /// percentiles over all their requests).
    pub fn report(&self) -> LoadReport {
        let us = |q: f64| Duration::from_micros(self.h.value_at_quantile(q));
        LoadReport {
            requests: self.ok,
            events: self.ok * self.per as u64,
            errors: self.errors,
            elapsed: self.elapsed,
            p50: us(0.5),
            p99: us(0.99),
            max: Duration::from_micros(self.h.max()),
        }
    }
}

/// One closed-loop slice (see [`closed_loop`]), added to `into`.
pub async fn closed_loop_into(
    into: &mut Merged,
    addr: SocketAddr,
    path: &str,
    bodies: Arc<Vec<Bytes>>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (bodies, next, path) = (bodies.clone(), next.clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut conn = Conn::open(addr).await?;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % bodies.len();
                let t = Instant::now();
                match conn.post(&path, bodies[i].clone()).await {
                    Ok(200) => ok += 1,
                    _ => errors += 1,
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok((h, ok, errors))
        }));
    }
    for t in tasks {
        let (th, o, e) = t.await??;
        into.h
            .add(th)
            .map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
        into.ok += o;
        into.errors += e;
    }
    into.elapsed += start.elapsed();
    Ok(())
}

/// Open loop: `rate` requests per second spread over `connections` connections for
/// `duration`; latency counts from each request's scheduled time.
pub async fn open_loop(
    addr: SocketAddr,
    path: &str,
    bodies: Arc<Vec<Bytes>>,
    rate: u64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let start = Instant::now() + Duration::from_millis(50);
    let per_conn = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total = (duration.as_secs_f64() * rate as f64) as u64;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (bodies, path) = (bodies.clone(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut conn = Conn::open(addr).await?;
            let offset = per_conn.mul_f64(c as f64 / connections as f64);
            let mut n = 0u64;
            loop {
                let due = start + offset + per_conn * n as u32;
                if (n * connections as u64 + c as u64) >= total {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let i = (n as usize * connections + c) % bodies.len();
                match conn.post(&path, bodies[i].clone()).await {
                    Ok(200) => ok += 1,
                    _ => errors += 1,
                }
                let _ = h.record(due.elapsed().as_micros() as u64);
                n += 1;
            }
            anyhow::Ok((h, ok, errors))
        }));
    }
    collect(tasks, 1, start).await
}

type Worker = tokio::task::JoinHandle<anyhow::Result<(Histogram<u64>, u64, u64)>>;

async fn collect(tasks: Vec<Worker>, per: usize, start: Instant) -> anyhow::Result<LoadReport> {
    let mut h = histogram();
    let (mut ok, mut errors) = (0u64, 0u64);
    for t in tasks {
        let (th, o, e) = t.await??;
        h.add(th).map_err(|e| anyhow::anyhow!("histogram: {e:?}"))?;
        ok += o;
        errors += e;
    }
    let us = |q: f64| Duration::from_micros(h.value_at_quantile(q));
    Ok(LoadReport {
        requests: ok,
        events: ok * per as u64,
        errors,
        elapsed: start.elapsed(),
        p50: us(0.5),
        p99: us(0.99),
        max: Duration::from_micros(h.max()),
    })
}
