//! `deploy/RUNBOOK.md`: every command, flag, name and path it cites exists.

use super::*;

/// The shell lines of the runbook's fenced code blocks, continuations joined.
pub(crate) fn runbook_shell_lines() -> Vec<String> {
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
pub(crate) fn invocations(line: &str) -> Vec<(String, Vec<String>)> {
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
pub(crate) fn test_references(text: &str) -> Vec<(String, String)> {
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
