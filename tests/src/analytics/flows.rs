//! The expected funnel, retention and paths of a [`Dataset`]: sessions through the ordered
//! funnel, cohorts by first-seen day, and transitions between consecutive events of a
//! session — the README's definitions applied to the generated events.
//!
//! Invariant (the module's): nothing here reads the database or shares code with the
//! monitor's queries.

use super::*;

impl Dataset {
    /// Per-step session counts of the ordered funnel: sessions judged on all their
    /// events, counted when their first step-1 event is in `[from, to)`.
    pub fn funnel(&self, from: OffsetDateTime, to: OffsetDateTime, steps: &[&str]) -> Funnel {
        // session -> first time of each step, over all its events
        let mut all: HashMap<&str, Vec<Option<OffsetDateTime>>> = HashMap::new();
        for e in &self.events {
            let Some(sid) = e.session_id.as_deref() else {
                continue;
            };
            let Some(k) = steps.iter().position(|s| *s == e.event_name) else {
                continue;
            };
            let slot = &mut all.entry(sid).or_insert_with(|| vec![None; steps.len()])[k];
            match *slot {
                Some(t) if t <= e.event_time => {}
                _ => *slot = Some(e.event_time),
            }
        }
        let firsts: Vec<&Vec<Option<OffsetDateTime>>> = all
            .values()
            .filter(|t| t[0].is_some_and(|t1| t1 >= from && t1 < to))
            .collect();
        let mut counts = vec![0i64; steps.len()];
        for times in firsts {
            let mut prev: Option<OffsetDateTime> = None;
            for (k, t) in times.iter().enumerate() {
                let reached = match (k, prev, *t) {
                    (0, _, Some(_)) => true,
                    (_, Some(p), Some(t)) => t > p,
                    _ => false,
                };
                if !reached {
                    break;
                }
                counts[k] += 1;
                prev = *t;
            }
        }
        let first = counts.first().copied().unwrap_or(0);
        let ratio = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        Funnel {
            steps: steps
                .iter()
                .enumerate()
                .map(|(k, name)| FunnelStep {
                    name: name.to_string(),
                    sessions: counts[k],
                    step_conversion: if k == 0 {
                        if counts[0] > 0 {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        ratio(counts[k], counts[k - 1])
                    },
                    overall_conversion: if k == 0 {
                        if counts[0] > 0 {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        ratio(counts[k], first)
                    },
                })
                .collect(),
        }
    }

    /// Day-N retention, in people, for cohorts whose first-seen day is in `[day(from), to)`.
    pub fn retention(&self, from: OffsetDateTime, to: OffsetDateTime) -> Retention {
        let people = self.people();
        let mut first: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
        let mut active: BTreeSet<(String, Date)> = BTreeSet::new();
        for e in &self.events {
            if let Some(p) = people.of(e) {
                let t = first.entry(p.clone()).or_insert(e.event_time);
                *t = (*t).min(e.event_time);
                active.insert((p, e.event_time.date()));
            }
        }
        let from_day = day_start(from);
        let mut cohorts: BTreeMap<Date, Vec<String>> = BTreeMap::new();
        for (person, &seen) in &first {
            if seen >= from_day && seen < to {
                cohorts.entry(seen.date()).or_default().push(person.clone());
            }
        }
        Retention {
            cohorts: cohorts
                .into_iter()
                .map(|(day, members)| {
                    let start = day.midnight().assume_utc();
                    let days = (0..=30)
                        .take_while(|n| start + Duration::days(*n) < to)
                        .count();
                    let retained = (0..days as i64)
                        .map(|n| {
                            let d = day + Duration::days(n);
                            members
                                .iter()
                                .filter(|p| active.contains(&((*p).clone(), d)))
                                .count() as i64
                        })
                        .collect();
                    Cohort {
                        day: day.to_string(),
                        users: members.len() as i64,
                        retained,
                    }
                })
                .collect(),
        }
    }

    /// The retention counters (`rollup_retention`, migration 0014) over every cohort: per
    /// (cohort day, n) the people of the cohort active on day + n (n = 0..=30), and per
    /// (cohort day, -1) the cohort's size.
    pub fn retention_cells(&self) -> BTreeMap<(Date, i16), i64> {
        let people = self.people();
        let mut first: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
        let mut active: BTreeMap<String, BTreeSet<Date>> = BTreeMap::new();
        for e in &self.events {
            if let Some(p) = people.of(e) {
                let t = first.entry(p.clone()).or_insert(e.event_time);
                *t = (*t).min(e.event_time);
                active.entry(p).or_default().insert(e.event_time.date());
            }
        }
        let mut cells: BTreeMap<(Date, i16), i64> = BTreeMap::new();
        for (person, seen) in &first {
            let cohort = seen.date();
            *cells.entry((cohort, -1)).or_default() += 1;
            for day in active.get(person).into_iter().flatten() {
                let n = (*day - cohort).whole_days();
                if (0..=30).contains(&n) {
                    *cells.entry((cohort, n as i16)).or_default() += 1;
                }
            }
        }
        cells
    }

    /// Every transition whose second event is in `[from, to)`: consecutive events of a
    /// session (all its events, by time then id) less than a day apart; by count desc,
    /// then names; `limit` of them.
    pub fn paths(&self, from: OffsetDateTime, to: OffsetDateTime, limit: usize) -> Vec<Transition> {
        let mut pairs: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
        for ((a, b), (n, gap_us)) in self.transitions(from, to, 0) {
            let e = pairs.entry((a, b)).or_default();
            e.0 += n;
            e.1 += gap_us as f64 / 1e6;
        }
        let mut out: Vec<Transition> = pairs
            .into_iter()
            .map(|((from, to), (count, total))| Transition {
                from,
                to,
                count,
                avg_seconds: total / count as f64,
            })
            .collect();
        out.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.from.cmp(&b.from))
                .then_with(|| a.to.cmp(&b.to))
        });
        out.truncate(limit);
        out
    }

    /// Per (bucket of the second event, from, to) with bucket width `width_secs` (0: no
    /// bucket), the transitions whose second event is in `[from, to)` and their summed gaps
    /// in microseconds.
    pub fn transitions_by_bucket(
        &self,
        width_secs: i64,
    ) -> BTreeMap<(OffsetDateTime, String, String), (i64, i64)> {
        let mut by_session: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in &self.events {
            if let Some(s) = e.session_id.as_deref() {
                by_session.entry(s).or_default().push(e);
            }
        }
        let mut out: BTreeMap<(OffsetDateTime, String, String), (i64, i64)> = BTreeMap::new();
        for events in by_session.values_mut() {
            events.sort_by_key(|e| (e.event_time, e.event_id));
            for w in events.windows(2) {
                let gap = w[1].event_time - w[0].event_time;
                if gap >= Duration::days(1) {
                    continue;
                }
                let bucket = if width_secs > 0 {
                    floor(w[1].event_time, width_secs)
                } else {
                    w[1].event_time
                };
                let e = out
                    .entry((bucket, w[0].event_name.clone(), w[1].event_name.clone()))
                    .or_default();
                e.0 += 1;
                e.1 += (gap.whole_microseconds()) as i64;
            }
        }
        out
    }

    fn transitions(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        width_secs: i64,
    ) -> BTreeMap<(String, String), (i64, i64)> {
        let mut out: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for ((t, a, b), (n, gap)) in self.transitions_by_bucket(width_secs) {
            if t >= from && t < to {
                let e = out.entry((a, b)).or_default();
                e.0 += n;
                e.1 += gap;
            }
        }
        out
    }
}
