//! `collector buffer …`: the operator commands on a stopped collector's buffer (stats,
//! export, import, verify, quarantine). Command bodies: they print, show progress and
//! return the exit code, so they live at the command edge with [`super`].
//!
//! Invariants:
//! - they refuse to run while a collector holds the buffer (sled locks its directory), with a
//!   message that says so;
//! - nothing is removed from the buffer before its destination (a synced export file, or a
//!   database commit) holds it;
//! - damaged records are reported and never cause a panic.

use std::{
    fs::File,
    io::{BufRead, BufReader, BufWriter, Read, Write},
    path::Path,
};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::{
    buffer::Buffer,
    config::{Config, Limits},
    event::{self, Event},
    record::Record,
};

/// Events per record when importing.
const IMPORT_RECORD_EVENTS: usize = 500;

fn open(cfg: &Config) -> anyhow::Result<Buffer> {
    Ok(Buffer::open(&cfg.data_dir, &cfg.buffer)?)
}

/// `collector buffer stats`.
pub fn stats(cfg: &Config, as_json: bool) -> anyhow::Result<i32> {
    let buffer = &open(cfg)?;
    let s = buffer.stats();
    if as_json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(0);
    }
    let age = s
        .oldest_received_at_us
        .map(|us| format!("{:.0} s", crate::event::age(us).as_secs_f64()))
        .unwrap_or_else(|| "-".into());
    println!("buffer            {}", buffer.dir().display());
    println!("records           {}", s.records);
    println!("events            {}", s.events);
    println!(
        "bytes             {} of {} ({:.1}%)",
        s.bytes,
        s.limit_bytes,
        100.0 * s.bytes as f64 / s.limit_bytes.max(1) as f64
    );
    println!("disk bytes        {}", s.disk_bytes);
    println!("oldest record     {age}");
    println!("quarantined       {}", s.quarantined_events);
    println!("damaged records   {}", s.damaged_records);
    println!("pending heartbeats {}", s.pending_heartbeats);
    Ok(0)
}

pub(super) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}}, ETA {{eta}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// `collector buffer export`.
pub fn export(cfg: &Config, out: &Path, remove: bool) -> anyhow::Result<i32> {
    let buffer = &open(cfg)?;
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gz = out.extension().is_some_and(|x| x == "gz");
    let mut writer: Box<dyn Write> = if gz {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(file.try_clone()?),
            flate2::Compression::default(),
        ))
    } else {
        Box::new(BufWriter::new(file.try_clone()?))
    };
    let total = buffer.stats().records;
    let bar = progress(total, "exporting records");
    let (mut events, mut damaged, mut keys) = (0u64, 0u64, Vec::new());
    for item in buffer.iter_raw() {
        let (key, bytes) = item?;
        bar.inc(1);
        match Record::decode(&bytes) {
            Ok(r) => {
                for e in &r.events {
                    serde_json::to_writer(
                        &mut writer,
                        &e.export_json(r.received_at_us, &r.collector_id),
                    )?;
                    writer.write_all(b"\n")?;
                    events += 1;
                }
                keys.push(key);
            }
            Err(e) => {
                damaged += 1;
                eprintln!("record {key}: damaged, not exported: {e}");
            }
        }
    }
    drop(writer); // finishes the gzip stream and flushes the BufWriter
    file.sync_all()?;
    bar.finish_and_clear();
    if remove {
        for k in &keys {
            buffer.remove_key(*k)?;
        }
        buffer.flush()?;
    }
    eprintln!(
        "exported {events} events from {} records to {}{}{}",
        keys.len(),
        out.display(),
        if remove {
            " (removed from the buffer)"
        } else {
            ""
        },
        if damaged > 0 {
            format!("; {damaged} damaged records left in place")
        } else {
            String::new()
        }
    );
    Ok(if damaged > 0 { 2 } else { 0 })
}

/// `collector buffer import`.
pub fn import(cfg: &Config, path: &Path) -> anyhow::Result<i32> {
    let buffer = &open(cfg)?;
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    drop(file);
    let file = File::open(path)?;
    let reader: Box<dyn BufRead> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    // Imported events may be old (an outage's backlog): keep every bound but event age.
    let limits = Limits {
        max_event_age_secs: 100 * 365 * 24 * 3600,
        ..cfg.limits.clone()
    };
    let now = OffsetDateTime::now_utc();
    let ctx = event::Context {
        now,
        user_agent: None,
        source: None,
    };
    let bar = ProgressBar::new_spinner();
    let (mut imported, mut refused) = (0u64, 0u64);
    let mut pending: Vec<(Event, i64, String)> = Vec::new();
    let flush_pending = |pending: &mut Vec<(Event, i64, String)>| -> anyhow::Result<()> {
        // Group consecutive events of the same lineage into records.
        while !pending.is_empty() {
            let (_, at, cid) = pending[0].clone();
            let take = pending
                .iter()
                .take(IMPORT_RECORD_EVENTS)
                .take_while(|(_, a, c)| *a == at && *c == cid)
                .count();
            let events: Vec<Event> = pending.drain(..take).map(|(e, _, _)| e).collect();
            buffer.append_blocking(&Record {
                collector_id: cid,
                received_at_us: at,
                events,
            })?;
        }
        Ok(())
    };
    for (line_no, line) in reader.lines().enumerate() {
        let line = line
            .with_context(|| format!("{}: read error at line {}", path.display(), line_no + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        match import_line(&line, line_no, &limits, &ctx, &cfg.collector_id) {
            Ok(event) => {
                pending.push(event);
                imported += 1;
                if pending.len() >= IMPORT_RECORD_EVENTS * 4 {
                    flush_pending(&mut pending)?;
                    bar.set_message(format!("{imported} events imported"));
                    bar.tick();
                }
            }
            Err(message) => {
                refused += 1;
                eprintln!("line {}: {message}", line_no + 1);
            }
        }
    }
    flush_pending(&mut pending)?;
    buffer.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "imported {imported} events into {}; {refused} lines refused",
        buffer.dir().display()
    );
    Ok(if refused > 0 { 2 } else { 0 })
}

/// One line of an export: the event, its receive time and collector, or why it is refused.
fn import_line(
    line: &str,
    line_no: usize,
    limits: &Limits,
    ctx: &event::Context<'_>,
    default_collector: &str,
) -> Result<(Event, i64, String), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("event_id").and_then(Value::as_str).is_none() {
        return Err("event_id is required on import (it makes import idempotent)".into());
    }
    let mut e = event::validate(&value, line_no, limits, ctx)
        .map_err(|e| format!("field '{}' {}", e.field, e.message))?;
    // An export's source was set by the collector that accepted the event: kept as it is
    // (an operator's file, not a client's claim), within the string bound.
    e.source = value
        .get("source")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= limits.max_string_bytes && !s.contains('\0'))
        .map(str::to_string);
    let at = value
        .get("received_at")
        .and_then(Value::as_str)
        .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
        .map(event::micros)
        .unwrap_or_else(|| event::micros(ctx.now));
    let cid = value
        .get("collector_id")
        .and_then(Value::as_str)
        .unwrap_or(default_collector)
        .to_string();
    Ok((e, at, cid))
}

/// `collector buffer verify`.
pub fn verify(cfg: &Config) -> anyhow::Result<i32> {
    let buffer = &open(cfg)?;
    let total = buffer.stats().records;
    let bar = progress(total, "verifying records");
    let (mut ok, mut events, mut damaged) = (0u64, 0u64, 0u64);
    for item in buffer.iter_raw() {
        match item {
            Ok((key, bytes)) => match Record::decode(&bytes) {
                Ok(r) => {
                    ok += 1;
                    events += r.events.len() as u64;
                }
                Err(e) => {
                    damaged += 1;
                    bar.suspend(|| println!("damaged record {key}: {e}"));
                }
            },
            Err(e) => {
                damaged += 1;
                bar.suspend(|| println!("unreadable entry: {e}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let aside = buffer.damaged()?;
    for (key, bytes) in &aside {
        let why = Record::decode(bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "decodes now".into());
        println!("record {key} set aside at start-up as damaged: {why}");
    }
    damaged += aside.len() as u64;
    println!("{ok} records ({events} events) decode; {damaged} damaged");
    Ok(if damaged > 0 { 2 } else { 0 })
}

/// `collector buffer quarantine list`: quarantined events with the database's error, NDJSON.
pub fn quarantine_list(cfg: &Config) -> anyhow::Result<i32> {
    let buffer = open(cfg)?;
    for (_, q) in buffer.quarantined()? {
        for e in &q.record.events {
            let mut v = e.export_json(q.record.received_at_us, &q.record.collector_id);
            v["quarantine_error"] = json!(q.error);
            println!("{v}");
        }
    }
    Ok(0)
}

/// `collector buffer quarantine retry`: quarantined events back into the buffer.
pub fn quarantine_retry(cfg: &Config) -> anyhow::Result<i32> {
    let buffer = open(cfg)?;
    let entries = buffer.quarantined()?;
    let mut keys = Vec::new();
    for (k, q) in entries {
        buffer.append_blocking(&q.record)?;
        keys.push(k);
    }
    buffer.flush()?;
    buffer.remove_quarantined(&keys)?;
    eprintln!(
        "{} quarantined events moved back into the buffer",
        keys.len()
    );
    Ok(0)
}

/// `collector buffer quarantine purge`: deletes quarantined events (only with `yes`).
pub fn quarantine_purge(cfg: &Config, yes: bool) -> anyhow::Result<i32> {
    if !yes {
        bail!("purge deletes quarantined events for good: list them first, then pass --yes");
    }
    let buffer = open(cfg)?;
    let keys: Vec<_> = buffer.quarantined()?.into_iter().map(|(k, _)| k).collect();
    buffer.remove_quarantined(&keys)?;
    eprintln!("{} quarantined events deleted", keys.len());
    Ok(0)
}
