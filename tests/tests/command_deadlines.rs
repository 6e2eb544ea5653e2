//! The one-shot commands end on their own when the database stops answering: `monitor
//! query`, `collector migrate` and `collector maintain` against the real database, made to
//! wait (another session holds the lock they need) and, through a relay that then freezes,
//! cut off from any answer. Each must exit non-zero within its `--timeout` plus a margin,
//! saying what happened, and never hang.
//!
//! Nothing here mocks the database.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use e2e::{
    db::{eventually, TestDb},
    proc::bin,
    relay::{url_addr, url_via, Relay},
};

/// How much longer than its `--timeout` a command may take to give up (process start,
/// connection, the kernel closing the socket), on a busy 2-core machine.
const MARGIN: Duration = Duration::from_secs(15);

/// Runs `program args…` to its end; the output and the wall time. Killed past `limit`, so
/// a command that hangs fails the test instead of holding it.
fn run(program: &str, args: &[String], limit: Duration) -> (Output, Duration) {
    // Resolved (and built, the first time) before the clock starts.
    let program_path = bin(program).expect("binary");
    let started = Instant::now();
    let mut child = Command::new(program_path)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                panic!(
                    "`{program} {}` still running after {limit:?}",
                    args.join(" ")
                );
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let out = child.wait_with_output().expect("output");
    (out, started.elapsed())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Takes (`take`) or releases the advisory lock every `collector migrate` waits for, on
/// `holder`'s session.
async fn migrators_lock(holder: &tokio_postgres::Client, take: bool) -> anyhow::Result<()> {
    let sql = if take {
        "SELECT pg_advisory_lock($1)"
    } else {
        "SELECT pg_advisory_unlock($1)"
    };
    holder
        .execute(sql, &[&collector::database::migrate::LOCK_KEY])
        .await?;
    Ok(())
}

/// Runs the command on a thread, freezes `relay` after `after` (the command connected and
/// waiting), and returns the command's output and wall time.
fn frozen_midway(
    program: &'static str,
    args: Vec<String>,
    limit: Duration,
    relay: &Relay,
    after: Duration,
) -> (Output, Duration) {
    let command = std::thread::spawn(move || run(program, &args, limit));
    std::thread::sleep(after);
    relay.freeze();
    match command.join() {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// `monitor query` waits on a table another session locked, then on a frozen path: its
/// client-side deadline ends both (the monitor sets no server-side limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_query_gives_up_at_its_timeout() -> anyhow::Result<()> {
    let db = TestDb::migrated("deadline_query").await?;
    let locker = db.client().await?;
    locker
        .batch_execute("BEGIN; LOCK TABLE user_events IN ACCESS EXCLUSIVE MODE")
        .await?;
    let limit = Duration::from_secs(3) + MARGIN;
    let args = strings(&[
        "query",
        "live",
        "--timeout",
        "3s",
        "--database-url",
        &db.url,
    ]);
    let (out, took) = run("monitor", &args, limit);
    assert!(!out.status.success(), "a locked table cannot be read");
    assert!(
        stderr(&out).contains("did not answer within 3s"),
        "{}",
        stderr(&out)
    );
    assert!(took >= Duration::from_secs(3), "gave up early: {took:?}");

    let relay = Relay::start(url_addr(&db.url)?)?;
    let via = url_via(&db.url, relay.addr);
    let args = strings(&["query", "live", "--timeout", "4s", "--database-url", &via]);
    let limit = Duration::from_secs(4) + MARGIN;
    let (out, took) = frozen_midway("monitor", args, limit, &relay, Duration::from_secs(1));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did not answer within 4s"),
        "{}",
        stderr(&out)
    );
    assert!(took >= Duration::from_secs(4), "gave up early: {took:?}");

    // The same command answers once the lock is gone.
    locker.batch_execute("ROLLBACK").await?;
    let args = strings(&[
        "query",
        "live",
        "--timeout",
        "30s",
        "--database-url",
        &db.url,
    ]);
    let (out, _) = run("monitor", &args, Duration::from_secs(30) + MARGIN);
    assert!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

/// `collector migrate` waits for the migrators' advisory lock: with the database answering,
/// its `--timeout` (also the server's statement limit) ends the wait; through a relay that
/// freezes meanwhile, only the client's deadline can end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_migrate_gives_up_at_its_timeout() -> anyhow::Result<()> {
    let db = TestDb::migrated("deadline_migrate").await?;
    let holder = db.client().await?;
    migrators_lock(&holder, true).await?;
    let limit = Duration::from_secs(3) + MARGIN;
    let args = strings(&["migrate", "--timeout", "3s", "--database-url", &db.url]);
    let (out, took) = run("collector", &args, limit);
    assert!(!out.status.success(), "the lock is held");
    // The server's statement limit and the client's deadline are the same 3 s: either may
    // be first.
    let err = stderr(&out);
    assert!(
        err.contains("statement timeout") || err.contains("did not finish within 3s"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(3), "gave up early: {took:?}");

    let relay = Relay::start(url_addr(&db.url)?)?;
    let via = url_via(&db.url, relay.addr);
    let args = strings(&["migrate", "--timeout", "4s", "--database-url", &via]);
    let limit = Duration::from_secs(4) + MARGIN;
    let (out, took) = frozen_midway("collector", args, limit, &relay, Duration::from_secs(1));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did not finish within 4s"),
        "{}",
        stderr(&out)
    );
    assert!(took >= Duration::from_secs(4), "gave up early: {took:?}");

    // The frozen command's session is still queued for the lock on the server until its
    // statement limit (4 s from when its request arrived) cancels the wait; unlocking
    // before that would hand it the lock, and the frozen relay would keep its session, and
    // the lock, alive.
    drop(relay);
    let queued = || async {
        holder
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                 WHERE l.locktype = 'advisory' AND NOT l.granted
                   AND d.datname = current_database()",
                &[],
            )
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 0)
    };
    assert!(
        eventually(Duration::from_secs(30), queued).await,
        "the frozen session still waits for the lock"
    );
    // Free, the same command finds nothing to do.
    migrators_lock(&holder, false).await?;
    let args = strings(&["migrate", "--database-url", &db.url]);
    let (out, _) = run("collector", &args, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
    Ok(())
}

/// `collector maintain` waits on the events table another session locked: its `--timeout`
/// ends the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_maintain_gives_up_at_its_timeout() -> anyhow::Result<()> {
    let db = TestDb::migrated("deadline_maintain").await?;
    let locker = db.client().await?;
    locker
        .batch_execute("BEGIN; LOCK TABLE user_events IN ACCESS EXCLUSIVE MODE")
        .await?;
    let args = strings(&["maintain", "--timeout", "3s", "--database-url", &db.url]);
    let (out, took) = run("collector", &args, Duration::from_secs(3) + MARGIN);
    assert!(!out.status.success(), "the table is locked");
    let err = stderr(&out);
    assert!(
        err.contains("statement timeout") || err.contains("did not finish within 3s"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(3), "gave up early: {took:?}");
    locker.batch_execute("ROLLBACK").await?;
    Ok(())
}

/// A migration may wait or run past the forwarder's 60 s statement limit (a backfill over a
/// large history, a lock held by a long transaction): `collector migrate` gave up at 60 s
/// before it had its own `--timeout`. Here it waits 65 s for the migrators' lock, then ends
/// well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_migrate_outlasts_the_forwarders_statement_limit() -> anyhow::Result<()> {
    let db = TestDb::migrated("deadline_long").await?;
    let holder = db.client().await?;
    migrators_lock(&holder, true).await?;
    let args = strings(&["migrate", "--database-url", &db.url]);
    bin("collector")?; // built before the wait is timed
    let command = std::thread::spawn(move || run("collector", &args, Duration::from_secs(180)));
    tokio::time::sleep(Duration::from_secs(65)).await;
    migrators_lock(&holder, false).await?;
    let (out, took) = match command.join() {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took >= Duration::from_secs(62), "did not wait: {took:?}");
    Ok(())
}
