//! The analyses' filter, computed independently: which generated events a `--where` term
//! list keeps, and the dataset of only those events, on which every expectation of
//! [`Dataset`] then applies unchanged (the README: a filtered analysis is the analysis
//! computed over only the matching events).
//!
//! The generated [`Event`] has no source and no properties; [`Tagged`] gives each event
//! both, deterministically from its id, plus CJK and emoji event names for two of the
//! generator's names, so filters have something to select.
//!
//! Invariant: people are resolved over *all* events (identity links are not filtered):
//! [`Tagged::subset`] rewrites each kept event's ids to its person so that [`Dataset`]'s
//! people over the subset are the full dataset's. Nothing here shares code with the
//! monitor: a term is read as the README defines it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{Dataset, Event};

/// The write keys' source names the events are sent under.
pub const SOURCES: [&str; 3] = ["web", "app", "mini"];
/// Generator names replaced (for every event) by CJK / emoji names.
pub const RENAMED: [(&str, &str); 2] = [("search", "搜索"), ("app_open", "打开应用🎉")];
/// The property `plan`'s values.
pub const PLANS: [&str; 3] = ["pro", "free", "企业版"];

/// The dataset with a source and properties per event (same order as `data.events`).
pub struct Tagged {
    pub data: Dataset,
    pub sources: Vec<&'static str>,
    pub properties: Vec<Option<Value>>,
}

impl Tagged {
    /// Tags `data` (renaming [`RENAMED`] names): source and properties from the id's bytes;
    /// one event in five has no properties; `n` is a JSON number, `mood` only on some.
    pub fn new(mut data: Dataset) -> Tagged {
        let mut sources = Vec::new();
        let mut properties = Vec::new();
        for e in &mut data.events {
            for (from, to) in RENAMED {
                if e.event_name == from {
                    e.event_name = to.to_string();
                }
            }
            let b = e.event_id.as_bytes();
            sources.push(SOURCES[b[0] as usize % SOURCES.len()]);
            properties.push(if b[1] % 5 == 0 {
                None
            } else {
                let mut p = json!({
                    "plan": PLANS[b[2] as usize % PLANS.len()],
                    "n": b[3] % 3,
                });
                if b[4] % 4 == 0 {
                    p["mood"] = json!("开心 😀");
                }
                Some(p)
            });
        }
        Tagged {
            data,
            sources,
            properties,
        }
    }

    /// Event `i` as the collector's `/v1/batch` takes it, with its properties.
    pub fn to_json(&self, i: usize) -> Value {
        let mut v = self.data.events[i].to_json();
        if let Some(p) = &self.properties[i] {
            v["properties"] = p.clone();
        }
        v
    }

    /// Whether event `i` matches every term (`FIELD=VALUE`, as `--where` takes them).
    pub fn matches(&self, i: usize, terms: &[&str]) -> bool {
        let e = &self.data.events[i];
        terms.iter().all(|t| {
            let (field, value) = t.split_once('=').unwrap_or((t, ""));
            match field {
                "source" => self.sources[i] == value,
                "event" => e.event_name == value,
                "device" => e.device_type.as_deref() == Some(value),
                "country" => e.country_code.as_deref() == Some(value),
                _ => {
                    let key = field.strip_prefix("prop.").unwrap_or(field);
                    let text = self.properties[i]
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Null => None,
                            other => Some(other.to_string()),
                        });
                    text.as_deref() == Some(value)
                }
            }
        })
    }

    /// The dataset of the events matching `terms`, each with its person (over all events)
    /// as its only id.
    pub fn subset(&self, terms: &[&str]) -> Dataset {
        let people = self.data.people();
        let events = (0..self.data.events.len())
            .filter(|&i| self.matches(i, terms))
            .map(|i| {
                let e = &self.data.events[i];
                Event {
                    user_id: None,
                    app_user_id: people.of(e),
                    anonymous_id: None,
                    traits: None,
                    ..e.clone()
                }
            })
            .collect();
        Dataset {
            t0: self.data.t0,
            events,
        }
    }
}

impl Dataset {
    /// Top pages: `page_view` events in `[from, to)` with a URL, per URL the views and the
    /// distinct people; by views descending, then URL (byte order); the first `limit`.
    pub fn top_pages(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Vec<(String, i64, i64)> {
        let people = self.people();
        let mut per: BTreeMap<&str, (i64, BTreeSet<String>)> = BTreeMap::new();
        for e in &self.events {
            let Some(url) = e.page_url.as_deref() else {
                continue;
            };
            if e.event_name != "page_view" || e.event_time < from || e.event_time >= to {
                continue;
            }
            let (views, users) = per.entry(url).or_default();
            *views += 1;
            users.extend(people.of(e));
        }
        let mut rows: Vec<(String, i64, i64)> = per
            .into_iter()
            .map(|(url, (views, users))| (url.to_string(), views, users.len() as i64))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows.truncate(limit);
        rows
    }
}
