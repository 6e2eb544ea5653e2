//! A case (bytes and what they must get), the storable oddities, and the run that sends them and checks the collector afterwards.

use super::*;

/// A case: a name, the raw request bytes, and what it must get.
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) expect: Expect,
}

pub(crate) fn refused(name: &str, bytes: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect: Expect::Refused,
    }
}

pub(crate) fn exactly(name: &str, status: u16, bytes: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        bytes,
        expect: Expect::Exactly(status),
    }
}

/// Storable oddities: each event has its own event_id, checked in the database at the end.
pub(crate) struct Storable {
    pub(crate) event_id: String,
    /// SQL boolean expression over the row's columns that must hold.
    pub(crate) check: &'static str,
}

/// Test-wide state: the collector, the database, the failures found so far.
pub(crate) struct Run {
    pub(crate) c: CollectorProc,
    pub(crate) db: TestDb,
    pub(crate) failures: Vec<String>,
    pub(crate) storable: Vec<Storable>,
    pub(crate) sentinels: Vec<String>,
    pub(crate) cases: usize,
    pub(crate) started: Instant,
}

impl Run {
    /// Counts one case, prints its line, and records `failure()` when it did not pass;
    /// returns `ok`.
    pub(crate) fn record(
        &mut self,
        ok: bool,
        shown: &str,
        failure: impl FnOnce() -> String,
    ) -> bool {
        self.cases += 1;
        eprintln!("{} {shown}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(failure());
        }
        ok
    }

    pub(crate) fn judge(&mut self, name: &str, outcome: &Outcome, expect: Expect) {
        let ok = match (expect, outcome) {
            (Expect::Refused, Outcome::Closed) => true,
            (Expect::Refused, Outcome::Status(s, _)) => (400..500).contains(s),
            (Expect::Exactly(want), Outcome::Status(s, _)) => *s == want,
            _ => false,
        };
        let shown = match outcome {
            Outcome::Status(s, b) => format!("{s} {}", &b[..b.len().min(160)]),
            other => format!("{other:?}"),
        };
        self.record(ok, &format!("{name}: {shown}"), || {
            format!("{name}: expected {expect:?}, got {shown}")
        });
    }

    pub(crate) fn run(&mut self, cases: Vec<Case>) {
        for case in cases {
            let outcome = exchange(self.c.ingest, vec![case.bytes], Duration::ZERO);
            self.judge(&case.name, &outcome, case.expect);
        }
    }

    /// The collector is up and a fresh valid event reaches the database.
    pub(crate) async fn still_healthy(&mut self, after: &str) {
        let alive = self.c.is_running();
        let health = get(self.c.ingest, "/health").map(|r| r.status).ok();
        if !alive || health != Some(200) {
            self.failures.push(format!(
                "after {after}: collector running={alive}, /health={health:?}\n{}",
                self.c.log_text()
            ));
            panic!("the collector went down after {after}: {:?}", self.failures);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let r = post_json(
            self.c.ingest,
            "/track",
            &json!({"event_id": id, "event_name": "sentinel", "properties": {"after": after}}),
        )
        .expect("post sentinel");
        assert_eq!(r.status, 200, "sentinel after {after}: {}", r.body);
        let client = self.db.client().await.expect("db client");
        let landed = eventually(Duration::from_secs(20), || {
            let client = &client;
            let id = id.clone();
            async move {
                client
                    .query_one(
                        "SELECT count(*) FROM user_events WHERE event_id = $1::text::uuid",
                        &[&id],
                    )
                    .await
                    .map(|r| r.get::<_, i64>(0) == 1)
                    .unwrap_or(false)
            }
        })
        .await;
        if !landed {
            self.failures.push(format!(
                "after {after}: a valid event did not reach user_events within 20 s (forwarder stalled?)"
            ));
        }
        eprintln!(
            "---- healthy after {after}; sentinel landed: {landed} ({:?} so far)",
            self.started.elapsed()
        );
        self.sentinels.push(id);
    }

    /// Posts a storable oddity: must get 200; `check` is verified in the database later.
    pub(crate) fn storable(&mut self, name: &str, body_before_id: &str, check: &'static str) {
        let id = uuid::Uuid::new_v4().to_string();
        let body = body_before_id.replace("$ID", &id);
        let outcome = exchange(
            self.c.ingest,
            vec![post("/track", body.as_bytes())],
            Duration::ZERO,
        );
        self.judge(name, &outcome, Expect::Exactly(200));
        if outcome.status() == Some(200) {
            self.storable.push(Storable {
                event_id: id,
                check,
            });
        }
    }
}
