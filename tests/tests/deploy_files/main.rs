//! The deployment files checked against the project: `deploy/docker-compose.yml`,
//! `deploy/Dockerfile`, `deploy/collector.service` and the commands of `deploy/RUNBOOK.md`.
//!
//! No container engine or systemd runs here, so what can be checked is checked for real: the
//! files parse; every file they reference exists; every `COLLECTOR_*`/`DB_*` variable they
//! set is a key of `collector::config::Config` (and the collector loads each service's
//! environment without error); every command and flag exists (`--help` of the real
//! binaries); ports match the configuration's defaults; the image's HEALTHCHECK command
//! succeeds against a running collector and fails without one; the unit's ExecStart starts
//! a real collector; `systemd-analyze verify` accepts the unit when systemd is installed.
//!
//! One file per deployment file (`compose.rs`, `dockerfile.rs`, `systemd.rs`, `runbook.rs`,
//! `ha.rs`); what the project defines is here, the formats' parsers in `parse.rs`.

mod compose;
mod dockerfile;
mod ha;
mod parse;
mod runbook;
mod systemd;

use compose::*;
use parse::*;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use e2e::{
    db::TestDb,
    proc::{bin, temp_dir, CollectorOpts},
    repo_root,
};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// What the project defines
// ---------------------------------------------------------------------------------------------

/// Every environment variable the collector reads: `COLLECTOR_<KEY>` and
/// `COLLECTOR_<SECTION>__<KEY>` for each key of the default configuration, the seed's `DB_*`,
/// and the variables its command line and logging read.
pub(crate) fn collector_env_vars() -> BTreeSet<String> {
    let cfg = serde_json::to_value(collector::config::Config::default()).expect("config as JSON");
    let mut vars: BTreeSet<String> = [
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DATABASE_URL",
        "RUST_LOG",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for (key, value) in cfg.as_object().expect("config is an object") {
        match value {
            Json::Object(section) => {
                for sub in section.keys() {
                    vars.insert(format!(
                        "COLLECTOR_{}__{}",
                        key.to_uppercase(),
                        sub.to_uppercase()
                    ));
                }
            }
            _ => {
                vars.insert(format!("COLLECTOR_{}", key.to_uppercase()));
            }
        }
    }
    vars
}

/// Config keys as dotted names (`buffer.max_bytes`) and bare names (`max_bytes`).
pub(crate) fn config_keys() -> BTreeSet<String> {
    let cfg = serde_json::to_value(collector::config::Config::default()).expect("config as JSON");
    let mut keys = BTreeSet::new();
    for (key, value) in cfg.as_object().expect("object") {
        keys.insert(key.clone());
        if let Json::Object(section) = value {
            for sub in section.keys() {
                keys.insert(format!("{key}.{sub}"));
                keys.insert(sub.clone());
            }
        }
    }
    keys
}

pub(crate) fn default_ports() -> (u16, u16) {
    let cfg = collector::config::Config::default();
    (cfg.listen.port(), cfg.admin_listen.port())
}

/// `<binary> <args> --help`, cached: (exit code, stdout).
pub(crate) fn help(binary: &str, args: &[&str]) -> (i32, String) {
    static CACHE: OnceLock<Mutex<HashMap<String, (i32, String)>>> = OnceLock::new();
    let key = format!("{binary} {}", args.join(" "));
    if let Some(hit) = CACHE
        .get_or_init(Default::default)
        .lock()
        .ok()
        .and_then(|c| c.get(&key).cloned())
    {
        return hit;
    }
    let out = Command::new(bin(binary).expect("workspace binary"))
        .args(args)
        .arg("--help")
        .env_remove("DATABASE_URL")
        .env("COLUMNS", "200")
        .output()
        .expect("run --help");
    let result = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    );
    if let Ok(mut c) = CACHE.get_or_init(Default::default).lock() {
        c.insert(key, result.clone());
    }
    result
}

/// The subcommands a `--help` text lists.
pub(crate) fn subcommands(help_text: &str) -> BTreeSet<String> {
    help_text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Checks one command line of `binary` (`collector` or `monitor`) without running it: every
/// subcommand exists, and every `--flag` is listed by the subcommand's `--help`.
/// Returns the subcommand path.
pub(crate) fn check_command(binary: &str, argv: &[String]) -> Result<Vec<String>, String> {
    let mut path: Vec<String> = Vec::new();
    let (code, mut text) = help(binary, &[]);
    if code != 0 {
        return Err(format!("{binary} --help failed"));
    }
    let mut flags_seen = Vec::new();
    for token in argv {
        if let Some(flag) = token.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or(flag);
            flags_seen.push((name.to_string(), text.clone(), path.clone()));
            continue;
        }
        if token.starts_with('-') {
            continue; // short flags: -c (documented alias of --config)
        }
        if flags_seen.is_empty() && subcommands(&text).contains(token.as_str()) {
            path.push(token.clone());
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let (code, t) = help(binary, &p);
            if code != 0 {
                return Err(format!("{binary} {} --help failed", path.join(" ")));
            }
            text = t;
        }
    }
    for (name, text, at) in flags_seen {
        if name == "help" || name == "version" {
            continue;
        }
        if !text.contains(&format!("--{name}")) {
            return Err(format!(
                "`{binary} {}` has no flag --{name} (command line: {})",
                at.join(" "),
                argv.join(" ")
            ));
        }
    }
    Ok(path)
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Compose/shell-style interpolation with no variables set: `${X:-d}` and `${X-d}` give `d`,
/// `${X:?msg}` gives a placeholder, `${X}` gives "", and `$$` is a literal `$`.
pub(crate) fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').expect("closed ${…}");
            let expr = &body[..end];
            let value = if let Some((_, d)) = expr.split_once(":-") {
                d.to_string()
            } else if let Some((_, d)) = expr.split_once('-') {
                d.to_string()
            } else if expr.contains(":?") || expr.contains('?') {
                "set-by-operator".to_string()
            } else {
                String::new()
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn env_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match v {
        Some(Yaml::Mapping(m)) => {
            for (k, v) in m {
                let k = k.as_str().expect("env name").to_string();
                let v = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Null => String::new(),
                    other => panic!("{k}: unsupported value {other:?}"),
                };
                env.insert(k, interpolate(&v));
            }
        }
        Some(Yaml::Sequence(items)) => {
            for item in items {
                let s = item.as_str().expect("KEY=value");
                let (k, v) = s.split_once('=').unwrap_or((s, ""));
                env.insert(k.to_string(), interpolate(v));
            }
        }
        None => {}
        Some(other) => panic!("environment: unsupported {other:?}"),
    }
    env
}

pub(crate) fn strings(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(items)) => items
            .iter()
            .map(|i| interpolate(i.as_str().expect("string item")))
            .collect(),
        Some(Yaml::String(s)) => s.split_whitespace().map(interpolate).collect(),
        None => Vec::new(),
        Some(other) => panic!("expected a list of strings, got {other:?}"),
    }
}

/// Runs `collector buffer stats` on an empty buffer with exactly `env`: the configuration
/// loads (known keys, right types, admin token rules) or the error is returned.
pub(crate) fn config_loads(env: &BTreeMap<String, String>) -> Result<(), String> {
    let dir = temp_dir("deploy-config");
    let out = Command::new(bin("collector").expect("collector"))
        .args(["buffer", "stats", "--json", "--data-dir"])
        .arg(dir.join("buffer"))
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Asserts every `COLLECTOR_*`/`DB_*` name is one the collector reads.
pub(crate) fn assert_known_vars<'a>(what: &str, names: impl IntoIterator<Item = &'a String>) {
    let valid = collector_env_vars();
    for name in names {
        if name.starts_with("COLLECTOR_") || name.starts_with("DB_") {
            assert!(
                valid.contains(name),
                "{what}: {name} is not a collector setting (known: {valid:?})"
            );
        }
        assert_ne!(
            name, "COLLECTOR_CONFIG",
            "{what}: COLLECTOR_CONFIG would be read as an (unknown) config key"
        );
    }
}
