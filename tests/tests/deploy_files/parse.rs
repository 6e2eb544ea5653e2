//! The Dockerfile's and the systemd unit's parsers (enough of each format for the checks).

use super::*;

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuations joined.
#[derive(Debug, Clone)]
pub(crate) struct Instr {
    pub(crate) keyword: String,
    pub(crate) args: String,
}

pub(crate) fn dockerfile() -> Vec<Instr> {
    let text = read("deploy/Dockerfile");
    let mut instrs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        instrs.push(Instr {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    assert!(
        current.is_empty(),
        "Dockerfile ends inside a continued line"
    );
    instrs
}

/// `KEY=value KEY2="v"` pairs of ENV/ARG (the legacy `ENV KEY value` form too).
pub(crate) fn key_values(args: &str) -> Vec<(String, String)> {
    if !args.contains('=') {
        let (k, v) = args.split_once(' ').unwrap_or((args, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    args.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

/// A systemd unit: section → (key, value) in order, continuations joined.
pub(crate) fn unit() -> BTreeMap<String, Vec<(String, String)>> {
    let text = read("deploy/collector.service");
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#') || t.starts_with(';')) {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (k, v) = pending
            .split_once('=')
            .unwrap_or_else(|| panic!("unit line without '=': {pending}"));
        assert!(!section.is_empty(), "unit key {k} outside a section");
        sections
            .entry(section.clone())
            .or_default()
            .push((k.trim().to_string(), v.trim().to_string()));
        pending.clear();
    }
    sections
}

pub(crate) fn unit_value<'a>(
    u: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> Vec<&'a str> {
    u.get(section)
        .map(|kv| {
            kv.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A systemd time span in seconds (`90`, `90s`, `2min`, `1min 30s`).
pub(crate) fn timespan_secs(v: &str) -> u64 {
    v.split_whitespace()
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits.parse().expect("number in time span");
            match &part[digits.len()..] {
                "" | "s" | "sec" => n,
                "m" | "min" => n * 60,
                "h" => n * 3600,
                other => panic!("unit {other} in time span {v}"),
            }
        })
        .sum()
}
