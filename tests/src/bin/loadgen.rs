//! `loadgen`: sample traffic for a local collector — session-shaped events (page views,
//! add-to-cart, checkout, purchase with drop-offs, returning users) posted in batches at a
//! steady rate, with event times of "now". Loopback targets only.
//!
//! ```text
//! loadgen --target 127.0.0.1:8080 [--rate 200] [--batch 20] [--seconds 0 (forever)] [--backfill-days 0]
//! ```
//! `--backfill-days N` first sends N days of history (event times in the past; the
//! collector must accept that age: COLLECTOR_LIMITS__MAX_EVENT_AGE_SECS).

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use bytes::Bytes;
use e2e::{gen, load::Conn};
use serde_json::Value;
use time::OffsetDateTime;

struct Args {
    target: SocketAddr,
    rate: u64,
    batch: usize,
    seconds: u64,
    backfill_days: i64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        target: "127.0.0.1:8080".parse()?,
        rate: 200,
        batch: 20,
        seconds: 0,
        backfill_days: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().with_context(|| format!("{x} needs a value"));
        match x.as_str() {
            "--target" => a.target = val()?.parse().context("--target HOST:PORT")?,
            "--rate" => a.rate = val()?.parse()?,
            "--batch" => a.batch = val()?.parse()?,
            "--seconds" => a.seconds = val()?.parse()?,
            "--backfill-days" => a.backfill_days = val()?.parse()?,
            "-h" | "--help" => {
                println!("usage: loadgen --target 127.0.0.1:8080 [--rate EVENTS_PER_S] [--batch N] [--seconds N] [--backfill-days N]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?} (see --help)"),
        }
    }
    anyhow::ensure!(
        a.target.ip().is_loopback(),
        "loadgen only targets loopback addresses"
    );
    anyhow::ensure!(
        a.rate > 0 && a.batch > 0,
        "--rate and --batch must be positive"
    );
    Ok(a)
}

async fn send(conn: &mut Conn, events: &[Value]) -> anyhow::Result<u16> {
    conn.post(
        "/v1/batch",
        Bytes::from(Value::Array(events.to_vec()).to_string()),
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let mut rng = gen::rng(rand::random());
    let mut conn = Conn::open(a.target).await?;
    if a.backfill_days > 0 {
        let now = OffsetDateTime::now_utc();
        let per_day = (a.rate * 600) as usize;
        let history = gen::session_stream(
            &mut rng,
            per_day * a.backfill_days as usize,
            now - time::Duration::days(a.backfill_days),
            now - time::Duration::minutes(1),
            50,
        );
        for chunk in history.chunks(500) {
            let status = send(&mut conn, chunk).await?;
            anyhow::ensure!(status == 200, "backfill refused with {status}");
        }
        eprintln!(
            "backfilled {} events over {} days",
            history.len(),
            a.backfill_days
        );
    }
    let started = std::time::Instant::now();
    let period = Duration::from_secs_f64(a.batch as f64 / a.rate as f64);
    let mut tick = tokio::time::interval(period);
    let (mut sent, mut refused) = (0u64, 0u64);
    loop {
        tick.tick().await;
        if a.seconds > 0 && started.elapsed() >= Duration::from_secs(a.seconds) {
            break;
        }
        let now = OffsetDateTime::now_utc();
        let events = gen::session_stream(
            &mut rng,
            a.batch,
            now - time::Duration::seconds(30),
            now,
            20,
        );
        match send(&mut conn, &events).await {
            Ok(200) => sent += events.len() as u64,
            Ok(s) => {
                refused += 1;
                eprintln!("batch refused: {s}");
            }
            Err(e) => {
                refused += 1;
                eprintln!("send failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if sent % (a.rate * 10).max(1) < a.batch as u64 {
            eprintln!("{sent} events sent, {refused} batches refused");
        }
    }
    eprintln!("{sent} events sent, {refused} batches refused");
    Ok(())
}
