//! The JSON shapes `monitor query … --format json` prints (the monitor's model types),
//! re-declared here so that the tests read the binary's output, not the library's structs.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Live {
    pub per_minute: Vec<MinuteCount>,
    pub events_per_second: f64,
    pub active_users_5m: i64,
    pub active_users_1h: i64,
    pub active_users_24h: i64,
    pub top_events: Vec<NameCount>,
    pub lag_p50_seconds: Option<f64>,
    pub lag_p99_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MinuteCount {
    pub minute: String,
    pub events: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NameCount {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunnelStep {
    pub name: String,
    pub sessions: i64,
    pub step_conversion: f64,
    pub overall_conversion: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Retention {
    pub cohorts: Vec<Cohort>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cohort {
    pub day: String,
    pub users: i64,
    pub retained: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Paths {
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub count: i64,
    pub avg_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Breakdown {
    pub by_device: Vec<BreakdownRow>,
    pub by_country: Vec<BreakdownRow>,
    pub by_event: Vec<BreakdownRow>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BreakdownRow {
    pub key: String,
    pub events: i64,
    pub users: i64,
}
