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
fn collector_env_vars() -> BTreeSet<String> {
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
fn config_keys() -> BTreeSet<String> {
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

fn default_ports() -> (u16, u16) {
    let cfg = collector::config::Config::default();
    (cfg.listen.port(), cfg.admin_listen.port())
}

/// `<binary> <args> --help`, cached: (exit code, stdout).
fn help(binary: &str, args: &[&str]) -> (i32, String) {
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
fn subcommands(help_text: &str) -> BTreeSet<String> {
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
fn check_command(binary: &str, argv: &[String]) -> Result<Vec<String>, String> {
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

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Compose/shell-style interpolation with no variables set: `${X:-d}` and `${X-d}` give `d`,
/// `${X:?msg}` gives a placeholder, `${X}` gives "", and `$$` is a literal `$`.
fn interpolate(s: &str) -> String {
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

fn env_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
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

fn strings(v: Option<&Yaml>) -> Vec<String> {
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
fn config_loads(env: &BTreeMap<String, String>) -> Result<(), String> {
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
fn assert_known_vars<'a>(what: &str, names: impl IntoIterator<Item = &'a String>) {
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

// ---------------------------------------------------------------------------------------------
// Parsers for the Dockerfile and the unit
// ---------------------------------------------------------------------------------------------

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuations joined.
#[derive(Debug, Clone)]
struct Instr {
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instr> {
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
fn key_values(args: &str) -> Vec<(String, String)> {
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
fn unit() -> BTreeMap<String, Vec<(String, String)>> {
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

fn unit_value<'a>(
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
fn timespan_secs(v: &str) -> u64 {
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

// ---------------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------------

fn compose() -> Yaml {
    let mut doc: Yaml =
        serde_yaml::from_str(&read("deploy/docker-compose.yml")).expect("compose file is YAML");
    // `<<` merges may nest (an anchor that merges another): apply until none is left.
    for _ in 0..8 {
        doc.apply_merge().expect("merge keys");
    }
    doc
}

/// Services built from deploy/Dockerfile (the collector image).
fn image_services(doc: &Yaml) -> Vec<(String, Yaml)> {
    doc["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| {
            s["build"]["dockerfile"]
                .as_str()
                .is_some_and(|d| d.ends_with("Dockerfile"))
        })
        .map(|(k, s)| (k.as_str().expect("name").to_string(), s.clone()))
        .collect()
}

/// The image's command for a service: entrypoint (default `collector`) and command (default
/// the Dockerfile's CMD).
fn service_argv(s: &Yaml) -> (String, Vec<String>) {
    let entry = strings(s.get("entrypoint"));
    let program = entry.first().cloned().unwrap_or_else(|| "collector".into());
    let mut argv: Vec<String> = entry.into_iter().skip(1).collect();
    let command = strings(s.get("command"));
    if command.is_empty() {
        argv.extend(exec_form(&instr(&dockerfile(), "CMD").args));
    } else {
        argv.extend(command);
    }
    (program, argv)
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args)
        .unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {args}"))
}

fn instr(instrs: &[Instr], keyword: &str) -> Instr {
    instrs
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .cloned()
        .unwrap_or_else(|| panic!("Dockerfile has no {keyword}"))
}

/// The runtime (last) stage's ENV.
fn image_env() -> BTreeMap<String, String> {
    let instrs = dockerfile();
    let last_from = instrs
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("FROM");
    instrs[last_from..]
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| key_values(&i.args))
        .collect()
}

#[test]
fn compose_file_matches_the_project() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let (listen_port, admin_port) = default_ports();

    // The database: the official image, PostgreSQL 17, with a health check.
    let db = &doc["services"]["timescaledb"];
    let image = db["image"].as_str().expect("timescaledb image");
    assert!(
        image.starts_with("timescale/timescaledb:") && image.contains("pg17"),
        "official TimescaleDB image on PostgreSQL 17: {image}"
    );
    let test = strings(db["healthcheck"].get("test"));
    assert!(
        test.iter().any(|t| t.contains("pg_isready")),
        "database health check: {test:?}"
    );
    let db_ports = strings(db.get("ports"));
    assert!(
        db_ports.iter().all(|p| p.ends_with(":5432")),
        "{db_ports:?}"
    );

    let built = image_services(&doc);
    let names: BTreeSet<&str> = built.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains("migrate"), "a migrate service: {names:?}");
    let mut host_ports = BTreeSet::new();
    let mut volumes_used = BTreeSet::new();
    let mut collectors = 0;
    let volume_path = exec_form(&instr(&dockerfile(), "VOLUME").args);
    for (name, s) in &built {
        // Build context and Dockerfile exist.
        let context = repo_root()
            .join("deploy")
            .join(s["build"]["context"].as_str().expect("context"));
        let dockerfile_path = context.join(s["build"]["dockerfile"].as_str().expect("dockerfile"));
        assert!(
            dockerfile_path.is_file(),
            "{name}: {} exists",
            dockerfile_path.display()
        );
        assert_eq!(
            std::fs::canonicalize(&context).expect("context"),
            std::fs::canonicalize(repo_root()).expect("root"),
            "{name}: the build context is the repository root"
        );

        // Its command exists.
        let (program, argv) = service_argv(s);
        let path = check_command(&program, &argv).unwrap_or_else(|e| panic!("{name}: {e}"));

        // Its environment is made of real settings, and the collector loads it.
        let env = env_map(s.get("environment"));
        if program == "collector" {
            assert_known_vars(name, env.keys());
            let mut full = image_env();
            full.extend(env.clone());
            config_loads(&full)
                .unwrap_or_else(|e| panic!("{name}: the collector refuses its environment: {e}"));
        }

        if path.first().map(String::as_str) == Some("migrate") {
            assert!(env.contains_key("DB_HOST"), "{name}: DB_* settings");
            assert_eq!(
                s["depends_on"]["timescaledb"]["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for a healthy database"
            );
            assert_eq!(s["restart"].as_str(), Some("no"), "{name} is one-shot");
        }
        if path.first().map(String::as_str) == Some("serve") {
            collectors += 1;
            assert_eq!(
                s["depends_on"]["migrate"]["condition"].as_str(),
                Some("service_completed_successfully"),
                "{name} starts after the migration"
            );
            assert!(
                env.contains_key("COLLECTOR_COLLECTOR_ID") && env.contains_key("COLLECTOR_REGION"),
                "{name}: its own collector id and region"
            );
            // Ports: container side is the listen or admin port.
            let mut full = image_env();
            full.extend(env.clone());
            let port_of = |k: &str, d: u16| {
                full.get(k)
                    .and_then(|a| a.rsplit(':').next()?.parse::<u16>().ok())
                    .unwrap_or(d)
            };
            let (lp, ap) = (
                port_of("COLLECTOR_LISTEN", listen_port),
                port_of("COLLECTOR_ADMIN_LISTEN", admin_port),
            );
            assert_eq!(
                (lp, ap),
                (listen_port, admin_port),
                "{name}: documented ports"
            );
            for p in strings(s.get("ports")) {
                let parts: Vec<&str> = p.split(':').collect();
                let container: u16 = parts.last().and_then(|x| x.parse().ok()).expect("port");
                assert!(
                    container == lp || container == ap,
                    "{name}: {p} maps a port the collector does not listen on"
                );
                let host = parts[..parts.len() - 1].join(":");
                assert!(
                    host_ports.insert(host.clone()),
                    "{name}: host port {host} reused"
                );
                if container == ap {
                    assert!(
                        host.starts_with("127.0.0.1:"),
                        "{name}: the admin port is published on loopback only: {p}"
                    );
                }
            }
            // Its own buffer volume, at the image's VOLUME, holding data_dir.
            let vols = strings(s.get("volumes"));
            let data_dir = full.get("COLLECTOR_DATA_DIR").expect("data dir");
            let mount = vols
                .iter()
                .find_map(|v| {
                    let (src, dst) = v.split_once(':')?;
                    (volume_path.iter().any(|p| p == dst) && Path::new(data_dir).starts_with(dst))
                        .then(|| src.to_string())
                })
                .unwrap_or_else(|| panic!("{name}: a volume at {volume_path:?}: {vols:?}"));
            assert!(
                doc["volumes"].get(mount.as_str()).is_some(),
                "{name}: volume {mount} is declared"
            );
            assert!(
                volumes_used.insert(mount.clone()),
                "{name}: buffer volume {mount} is shared"
            );
            let grace = s["stop_grace_period"].as_str().expect("stop_grace_period");
            assert!(timespan_secs(grace) >= 30, "{name}: time to flush on stop");
        }
    }
    assert!(
        collectors >= 2,
        "two collectors (regions): {}",
        services.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_matches_the_project() {
    let instrs = dockerfile();
    let froms: Vec<&Instr> = instrs.iter().filter(|i| i.keyword == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage build");
    assert!(
        froms[0].args.contains("rust:") && froms[0].args.contains(" AS builder"),
        "{:?}",
        froms[0]
    );
    let runtime = froms.last().expect("runtime stage");
    assert!(
        runtime.args.contains("-slim"),
        "small runtime image: {runtime:?}"
    );

    // Rust at least the workspace's rust-version.
    let arg_rust = instrs
        .iter()
        .filter(|i| i.keyword == "ARG")
        .flat_map(|i| key_values(&i.args))
        .find(|(k, _)| k == "RUST_VERSION")
        .map(|(_, v)| v)
        .expect("ARG RUST_VERSION");
    let ws = read("Cargo.toml");
    let msrv = ws
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("workspace rust-version");
    let minor = |v: &str| -> u32 {
        v.split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("x.y version")
    };
    assert!(
        minor(&arg_rust) >= minor(&msrv),
        "image Rust {arg_rust} < {msrv}"
    );

    // Every COPY source from the context exists; the build copies both binaries out.
    for i in instrs.iter().filter(|i| i.keyword == "COPY") {
        if i.args.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = i
            .args
            .split_whitespace()
            .filter(|p| !p.starts_with("--"))
            .collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo_root().join(src).exists(),
                "COPY source {src} exists in the repository"
            );
        }
    }
    let run_build = instrs
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("RUN cargo build");
    for b in ["collector", "monitor"] {
        assert!(run_build.args.contains(&format!("--bin {b}")), "builds {b}");
        bin(b).expect("a workspace binary of that name");
        let copied = instrs.iter().any(|i| {
            i.keyword == "COPY"
                && i.args.starts_with("--from=builder")
                && i.args.contains(&format!("/{b}"))
        });
        assert!(copied, "{b} is copied into the runtime image");
    }
    assert!(run_build.args.contains("--locked"));

    // Non-root, a volume holding data_dir, documented ports.
    let user = instr(&instrs, "USER").args;
    let uid = user.split(':').next().unwrap_or("");
    assert!(
        uid != "root" && uid != "0" && !uid.is_empty(),
        "USER {user}"
    );
    let env = image_env();
    assert_known_vars("Dockerfile ENV", env.keys());
    config_loads(&env).unwrap_or_else(|e| panic!("the image's ENV does not load: {e}"));
    let volumes = exec_form(&instr(&instrs, "VOLUME").args);
    let data_dir = env
        .get("COLLECTOR_DATA_DIR")
        .expect("ENV COLLECTOR_DATA_DIR");
    assert!(
        volumes.iter().any(|v| Path::new(data_dir).starts_with(v)),
        "data_dir {data_dir} is on a VOLUME {volumes:?}"
    );
    let (listen_port, admin_port) = default_ports();
    let exposed: BTreeSet<u16> = instr(&instrs, "EXPOSE")
        .args
        .split_whitespace()
        .map(|p| p.trim_end_matches("/tcp").parse().expect("port"))
        .collect();
    assert_eq!(exposed, BTreeSet::from([listen_port, admin_port]));
    assert!(
        env.get("COLLECTOR_LISTEN")
            .is_some_and(|l| l.ends_with(&format!(":{listen_port}"))),
        "the image listens on the exposed port"
    );

    // The default command exists.
    let entry = exec_form(&instr(&instrs, "ENTRYPOINT").args);
    assert_eq!(entry, ["collector"]);
    let cmd = exec_form(&instr(&instrs, "CMD").args);
    assert_eq!(
        check_command("collector", &cmd).expect("CMD"),
        ["serve"],
        "the image serves by default"
    );

    // Shared libraries the binaries need beyond glibc are installed in the runtime stage.
    let runtime_at = instrs
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("FROM");
    let installs: String = instrs[runtime_at..]
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.args.clone())
        .collect::<Vec<_>>()
        .join(" ");
    for b in ["collector", "monitor"] {
        let out = Command::new("ldd")
            .arg(bin(b).expect("binary"))
            .output()
            .expect("ldd");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let lib = line.split_whitespace().next().unwrap_or("");
            let glibc = [
                "linux-vdso",
                "libc.so",
                "libm.so",
                "libgcc_s.so",
                "libpthread.so",
                "libdl.so",
                "librt.so",
                "ld-linux",
                "/lib64/ld-linux",
            ];
            if glibc.iter().any(|g| lib.starts_with(g)) {
                continue;
            }
            let package = match lib {
                l if l.starts_with("libssl.so.3") || l.starts_with("libcrypto.so.3") => "libssl3",
                other => panic!("{b} links {other}: add its package to the runtime stage"),
            };
            assert!(
                installs.contains(package),
                "{b} links {lib}: the runtime stage installs {package}"
            );
        }
    }
}

#[test]
fn dockerfile_healthcheck_probes_a_real_collector() {
    let instrs = dockerfile();
    let hc = instr(&instrs, "HEALTHCHECK").args;
    let json_at = hc.find("CMD [").expect("HEALTHCHECK … CMD [exec form]") + 4;
    let argv = exec_form(&hc[json_at..]);
    assert!(
        argv.join(" ").contains("/health"),
        "probes /health: {argv:?}"
    );
    // The program exists in debian:bookworm-slim (bash is essential there; curl is not).
    assert_eq!(argv[0], "bash", "no curl in the runtime image: {argv:?}");

    let run = |listen: &str| {
        let started = std::time::Instant::now();
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("COLLECTOR_LISTEN", listen)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the health check");
        (status.success(), started.elapsed())
    };
    let c = CollectorOpts::new("deploy-health")
        .start()
        .expect("collector");
    let (ok, took) = run(&format!("0.0.0.0:{}", c.ingest.port()));
    assert!(ok, "healthy collector");
    assert!(took < Duration::from_secs(5), "within the --timeout");
    drop(c);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (ok, _) = run(&format!("0.0.0.0:{closed}"));
    assert!(!ok, "no collector: unhealthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_migrate_service_migrates_with_db_variables() {
    // The migrate service's command and DB_* environment, pointed at a test database.
    let doc = compose();
    let s = &doc["services"]["migrate"];
    let (program, argv) = service_argv(s);
    assert_eq!(program, "collector");
    let db = TestDb::empty("deploy_migrate").await.expect("db");
    let url: tokio_postgres::Config = db.url.parse().expect("url");
    let host = match url.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("tcp host expected: {other:?}"),
    };
    let mut env = env_map(s.get("environment"));
    assert_known_vars("migrate", env.keys());
    env.insert("DB_HOST".into(), host);
    env.insert(
        "DB_PORT".into(),
        url.get_ports().first().copied().unwrap_or(5432).to_string(),
    );
    env.insert("DB_NAME".into(), db.name.clone());
    env.insert(
        "DB_USER".into(),
        url.get_user().unwrap_or("postgres").to_string(),
    );
    match url.get_password() {
        Some(p) => {
            env.insert(
                "DB_PASSWORD".into(),
                String::from_utf8_lossy(p).into_owned(),
            );
        }
        None => {
            env.remove("DB_PASSWORD");
        }
    }
    let out = Command::new(bin("collector").expect("collector"))
        .args(&argv)
        .env_clear()
        .envs(&env)
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "collector {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("migration(s) applied"), "{text}");
    let c = db.client().await.expect("client");
    let n: i64 = c
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("schema_migrations")
        .get(0);
    assert!(n > 0);
    drop(c);
    db.drop_db().await.expect("drop");
}

// ---------------------------------------------------------------------------------------------
// systemd unit
// ---------------------------------------------------------------------------------------------

#[test]
fn systemd_unit_matches_the_project() {
    let u = unit();
    let one = |section: &str, key: &str| -> String {
        let v = unit_value(&u, section, key);
        assert_eq!(v.len(), 1, "[{section}] {key} set once: {v:?}");
        v[0].to_string()
    };
    let exec = one("Service", "ExecStart");
    let argv: Vec<String> = exec.split_whitespace().map(String::from).collect();
    assert_eq!(argv[0], "/usr/local/bin/collector", "installed binary path");
    let header = read("deploy/collector.service");
    assert!(
        header.contains("install -m 0755 target/release/collector"),
        "the install steps put the binary where ExecStart runs it"
    );
    assert_eq!(
        check_command("collector", &argv[1..]).expect("ExecStart"),
        ["serve"]
    );

    // Buffer in the state directory, owned by the service's user.
    let state = one("Service", "StateDirectory");
    let data_dir = argv
        .iter()
        .position(|a| a == "--data-dir")
        .map(|i| argv[i + 1].clone())
        .expect("--data-dir");
    assert!(
        Path::new(&data_dir).starts_with(format!("/var/lib/{state}")),
        "--data-dir {data_dir} inside StateDirectory={state}"
    );
    let dynamic = unit_value(&u, "Service", "DynamicUser") == ["yes"];
    assert!(
        dynamic || !unit_value(&u, "Service", "User").is_empty(),
        "a dedicated user"
    );
    assert_ne!(unit_value(&u, "Service", "User"), ["root"]);

    // Restart and a graceful stop with time to flush.
    assert_eq!(one("Service", "Restart"), "on-failure");
    assert_eq!(one("Service", "KillSignal"), "SIGTERM");
    assert!(timespan_secs(&one("Service", "TimeoutStopSec")) >= 60);

    // Hardening.
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(one("Service", k), v, "{k}");
    }
    assert!(one("Service", "EnvironmentFile").contains("/etc/collector/"));
    let limit: u64 = one("Service", "LimitNOFILE").parse().expect("number");
    assert!(
        limit as usize > collector::config::Config::default().limits.max_connections,
        "room for max_connections sockets"
    );
    let env: Vec<String> = unit_value(&u, "Service", "Environment")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .map(|kv| kv.split('=').next().unwrap_or("").to_string())
        .collect();
    assert_known_vars("unit Environment", env.iter());
    assert_eq!(one("Install", "WantedBy"), "multi-user.target");

    // The --config it names is the documented file the install steps copy there.
    let config = argv
        .iter()
        .position(|a| a == "--config")
        .map(|i| argv[i + 1].clone())
        .expect("--config");
    assert!(header.contains(&format!("deploy/collector.toml {config}")));

    // The ExecStart really starts a collector: the same flags, the documented config file,
    // loopback ports and a temporary buffer.
    let dir = temp_dir("deploy-unit");
    let mut flags: Vec<String> = Vec::new();
    let mut it = argv[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => {
                it.next();
                flags.push(format!(
                    "--config={}",
                    repo_root().join("deploy/collector.toml").display()
                ));
            }
            "--data-dir" => {
                it.next();
            }
            other => flags.push(other.to_string()),
        }
    }
    let mut c = CollectorOpts::in_dir(dir.join("buffer"))
        .args(flags)
        .start()
        .expect("the unit's ExecStart starts");
    assert_eq!(
        e2e::client::get(c.ingest, "/health")
            .expect("health")
            .status,
        200
    );
    // The collector installs its SIGTERM handler just after it prints its addresses.
    std::thread::sleep(Duration::from_millis(300));
    let status = c
        .terminate(Duration::from_secs(30))
        .expect("stops on KillSignal");
    assert!(status.success(), "clean exit on SIGTERM: {status}");

    // systemd's own verification, when systemd is installed.
    if let Ok(out) = Command::new("systemd-analyze").arg("--version").output() {
        if out.status.success() {
            let copy = dir.join("collector.service");
            let text = header.replace(
                "/usr/local/bin/collector",
                &bin("collector").expect("bin").display().to_string(),
            );
            std::fs::write(&copy, text).expect("write unit copy");
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&copy)
                .output()
                .expect("systemd-analyze verify");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let problems: Vec<&str> = stderr
                .lines()
                .filter(|l| l.contains("collector.service"))
                .collect();
            assert!(
                out.status.success() && problems.is_empty(),
                "systemd-analyze verify: {stderr}"
            );
        }
    } else {
        eprintln!("systemd-analyze not installed: unit syntax checked by this test only");
    }
}

// ---------------------------------------------------------------------------------------------
// RUNBOOK.md
// ---------------------------------------------------------------------------------------------

/// The shell lines of the runbook's fenced code blocks, continuations joined.
fn runbook_shell_lines() -> Vec<String> {
    let text = read("deploy/RUNBOOK.md");
    let mut lines = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let l = line.trim();
        if let Some(cont) = l.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(l);
        lines.push(std::mem::take(&mut pending));
    }
    lines
}

/// Invocations of `collector`/`monitor` in a shell line (after sudo, a path, `exec`, …),
/// up to the next shell operator.
fn invocations(line: &str) -> Vec<(String, Vec<String>)> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut found = Vec::new();
    let compose = line.contains("docker compose");
    for (i, t) in tokens.iter().enumerate() {
        let mut name = t.rsplit('/').next().unwrap_or(t);
        // `docker compose run … collector-eu <args>`: the service runs the image's collector.
        if compose && name.starts_with("collector-") && !name.contains(':') {
            name = "collector";
        }
        if name != "collector" && name != "monitor" {
            continue;
        }
        let args: Vec<String> = tokens[i + 1..]
            .iter()
            .take_while(|a| !matches!(**a, "|" | "||" | "&&" | ";" | ">" | "2>" | ">>" | "&"))
            .map(|a| a.trim_matches(|c| c == '"' || c == '\'').to_string())
            .collect();
        // `sudo -u collector collector …`: the user name is followed by the program.
        if args
            .first()
            .is_some_and(|a| a.rsplit('/').next() == Some("collector"))
        {
            continue;
        }
        if args.is_empty() || args[0].starts_with('<') {
            continue;
        }
        found.push((name.to_string(), args));
    }
    found
}

#[test]
fn runbook_commands_flags_and_names_exist() {
    let text = read("deploy/RUNBOOK.md");
    let lines = runbook_shell_lines();
    let mut checked = 0;
    let mut used_subcommands = BTreeSet::new();
    for line in &lines {
        for (program, args) in invocations(line) {
            let path = check_command(&program, &args)
                .unwrap_or_else(|e| panic!("RUNBOOK.md: {e}\n  line: {line}"));
            used_subcommands.insert(format!("{program} {}", path.join(" ")));
            checked += 1;
        }
        // Environment assignments in the runbook's commands are real settings.
        let assigned: Vec<String> = line
            .split_whitespace()
            .filter_map(|t| t.split_once('=').map(|(k, _)| k.to_string()))
            .filter(|k| k.starts_with("COLLECTOR_") || k.starts_with("DB_"))
            .collect();
        assert_known_vars(&format!("RUNBOOK.md line `{line}`"), assigned.iter());
    }
    assert!(
        checked >= 10,
        "the runbook's commands were found: {checked}"
    );
    for needed in [
        "collector drain",
        "collector buffer export",
        "collector buffer import",
        "collector buffer quarantine list",
        "collector buffer quarantine retry",
        "collector buffer quarantine purge",
        "collector buffer verify",
        "collector buffer stats",
        "collector migrate",
    ] {
        assert!(
            used_subcommands.contains(needed),
            "the runbook uses `{needed}`: {used_subcommands:?}"
        );
    }

    // Every `snake_case` name in backticks exists somewhere in the project: a metric, a
    // /v1/buffer field, a config key, a table or column, a CLI flag or the tracker's API.
    let c = CollectorOpts::new("deploy-runbook")
        .start()
        .expect("collector");
    let metrics = e2e::client::get(c.admin, "/metrics").expect("metrics").body;
    let buffer = e2e::client::get(c.admin, "/v1/buffer")
        .expect("buffer")
        .json();
    drop(c);
    // Metric names, with the `_total` of counters (families without samples yet included).
    let mut metric_names = BTreeSet::new();
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            metric_names.insert(name.to_string());
            match kind {
                "counter" => {
                    metric_names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        metric_names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {}
            }
        }
    }
    let mut known: BTreeSet<String> = config_keys();
    known.extend(buffer.as_object().expect("object").keys().cloned());
    known.extend(metric_names.iter().cloned());
    let mut corpus = String::new();
    let mut dirs = vec![
        repo_root().join("migrations"),
        repo_root().join("collector/src"),
    ];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                corpus.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    corpus.push_str(&read("collector/assets/tracker.js"));
    corpus.push_str(&read("deploy/collector.toml"));
    let mut unknown = Vec::new();
    for file in [
        "deploy/docker-compose.yml",
        "deploy/Dockerfile",
        "deploy/collector.service",
        "deploy/local-db",
        "deploy/ha/docker-compose.yml",
        "deploy/ha/patroni.yml",
        "deploy/ha/haproxy.cfg",
    ] {
        corpus.push_str(&read(file));
    }
    for quoted in text.split('`').skip(1).step_by(2) {
        if quoted.contains("::") {
            continue; // a test reference, checked below
        }
        for word in quoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
            let word = word.trim_matches('.');
            let snake = word.contains('_')
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
                && word.chars().next().is_some_and(|c| c.is_ascii_lowercase());
            if !snake || known.contains(word) || corpus.contains(word) {
                continue;
            }
            unknown.push(word.to_string());
        }
    }
    assert!(
        unknown.is_empty(),
        "RUNBOOK.md names that exist nowhere in the project: {unknown:?}"
    );

    // Every `collector_…` name is an exported metric, unless it is a table or a config key.
    let tables = read("migrations/0003_collector_heartbeats.sql");
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("collector_")
            && !config_keys().contains(word)
            && !tables.contains(&format!("CREATE TABLE {word} "))
        {
            assert!(
                metric_names.contains(word),
                "RUNBOOK.md quotes metric {word}, not in /metrics: {metric_names:?}"
            );
        }
    }

    // Test references point at real test functions.
    for (file, func) in test_references(&text) {
        let path: PathBuf = repo_root().join(&file);
        let src = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("RUNBOOK.md cites {file}: {e}"));
        assert!(
            src.contains(&format!("fn {func}(")),
            "RUNBOOK.md cites {file}::{func}, which does not exist"
        );
    }
}

/// `tests/tests/x.rs::name` references in a text.
fn test_references(text: &str) -> Vec<(String, String)> {
    text.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')' || c == ',')
        .filter_map(|w| {
            let (file, func) = w.split_once("::")?;
            let func = func.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            (file.ends_with(".rs") && file.contains("tests/"))
                .then(|| (file.to_string(), func.to_string()))
        })
        .collect()
}

#[test]
fn repository_paths_named_in_the_deploy_files_exist() {
    let prefixes = ["deploy/", "tests/", "collector/", "monitor/", "migrations/"];
    let mut checked = 0;
    for file in [
        "deploy/docker-compose.yml",
        "deploy/Dockerfile",
        "deploy/collector.service",
        "deploy/RUNBOOK.md",
    ] {
        let text = read(file);
        for word in text.split(|c: char| {
            !(c.is_ascii_alphanumeric() || c == '/' || c == '.' || c == '_' || c == '-')
        }) {
            let word = word.trim_end_matches('.');
            if !prefixes.iter().any(|p| word.starts_with(p)) || !word.contains('.') {
                continue; // only repository-relative file names
            }
            assert!(
                repo_root().join(word).exists(),
                "{file} names {word}, which is not in the repository"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "paths found: {checked}");
}

// ---------------------------------------------------------------------------------------------
// deploy/ha: Patroni + etcd + HAProxy
// ---------------------------------------------------------------------------------------------

/// The `host:port` list and the query of a `postgres://` URL.
fn url_hosts(url: &str) -> (Vec<String>, String) {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    (hosts.split(',').map(str::to_string).collect(), query)
}

#[test]
fn ha_example_matches_the_project() {
    let mut doc: Yaml = serde_yaml::from_str(&read("deploy/ha/docker-compose.yml"))
        .expect("HA compose file is YAML");
    for _ in 0..8 {
        doc.apply_merge().expect("merge keys");
    }
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();

    // HAProxy: the primary port checks Patroni's /primary, the replica port /replica, and
    // every server is a database service of this file, checked on Patroni's REST port.
    let haproxy = read("deploy/ha/haproxy.cfg");
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in haproxy.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("listen ") {
            current = name.trim().to_string();
        } else if !current.is_empty() && !line.is_empty() && !line.starts_with('#') {
            sections
                .entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
    }
    let port_of = |section: &str, check: &str| -> u16 {
        let lines = sections
            .get(section)
            .unwrap_or_else(|| panic!("haproxy: listen {section}"));
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("option httpchk GET {check}")),
            "haproxy {section}: checks {check}"
        );
        let servers: Vec<&String> = lines.iter().filter(|l| l.starts_with("server ")).collect();
        assert!(servers.len() >= 2, "haproxy {section}: both nodes");
        for s in servers {
            let addr = s.split_whitespace().nth(2).expect("server address");
            let host = addr.split(':').next().expect("host");
            assert!(
                names.contains(host),
                "haproxy {section}: {host} is a service"
            );
            assert!(
                s.contains("check port 8008"),
                "haproxy {section}: Patroni health: {s}"
            );
        }
        lines
            .iter()
            .find_map(|l| l.strip_prefix("bind *:"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("haproxy {section}: bind"))
    };
    let (primary_port, replica_port) = (
        port_of("primary", "/primary"),
        port_of("replicas", "/replica"),
    );

    // Patroni: synchronous replication, TimescaleDB preloaded, REST API on 8008.
    let patroni: Yaml = serde_yaml::from_str(&read("deploy/ha/patroni.yml")).expect("patroni.yml");
    let dcs = &patroni["bootstrap"]["dcs"];
    assert_eq!(
        dcs["synchronous_mode"].as_bool(),
        Some(true),
        "a synchronous standby"
    );
    let preload = dcs["postgresql"]["parameters"]["shared_preload_libraries"]
        .as_str()
        .unwrap_or_default();
    assert!(
        preload.contains("timescaledb"),
        "TimescaleDB preloaded: {preload}"
    );
    assert_eq!(patroni["restapi"]["listen"].as_str(), Some("0.0.0.0:8008"));
    for node in ["db1", "db2"] {
        let s = &doc["services"][node];
        assert!(
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("timescale/timescaledb-ha:")),
            "{node}: the image with Patroni and TimescaleDB"
        );
        let env = env_map(s.get("environment"));
        assert_eq!(env.get("PATRONI_NAME").map(String::as_str), Some(node));
        assert!(env.contains_key("PATRONI_ETCD3_HOSTS"), "{node}: etcd");
    }

    // The collector and the migration write through the primary port first, then both
    // nodes, read-write only; the monitor reads the replica port.
    let (collector_program, argv) = service_argv(&doc["services"]["collector"]);
    check_command(&collector_program, &argv).unwrap_or_else(|e| panic!("collector: {e}"));
    let env = env_map(doc["services"]["collector"].get("environment"));
    assert_known_vars("collector", env.keys());
    let mut full = image_env();
    full.extend(env.clone());
    config_loads(&full).unwrap_or_else(|e| panic!("the HA collector's environment: {e}"));
    for (service, key) in [
        ("collector", "COLLECTOR_DATABASE_URL"),
        ("migrate", "DATABASE_URL"),
    ] {
        let env = env_map(doc["services"][service].get("environment"));
        let (hosts, query) = url_hosts(env.get(key).unwrap_or_else(|| panic!("{service}: {key}")));
        assert_eq!(
            hosts.first(),
            Some(&format!("haproxy:{primary_port}")),
            "{service}: {hosts:?}"
        );
        assert!(
            hosts.len() >= 3,
            "{service}: both nodes after HAProxy: {hosts:?}"
        );
        assert!(
            query.contains("target_session_attrs=read-write"),
            "{service}: {query}"
        );
    }
    let (program, argv) = service_argv(&doc["services"]["monitor"]);
    check_command(&program, &argv).unwrap_or_else(|e| panic!("monitor: {e}"));
    let env = env_map(doc["services"]["monitor"].get("environment"));
    let (hosts, _) = url_hosts(env.get("DATABASE_URL").expect("monitor DATABASE_URL"));
    assert_eq!(
        hosts,
        vec![format!("haproxy:{replica_port}")],
        "the monitor reads a replica"
    );
    let context = repo_root().join("deploy/ha").join(
        doc["services"]["collector"]["build"]["context"]
            .as_str()
            .expect("context"),
    );
    assert_eq!(
        std::fs::canonicalize(context).expect("context"),
        std::fs::canonicalize(repo_root()).expect("root"),
        "the build context is the repository root"
    );
}
