//! `deploy/docker-compose.yml` against the project.

use super::*;

pub(crate) fn compose() -> Yaml {
    let mut doc: Yaml =
        serde_yaml::from_str(&read("deploy/docker-compose.yml")).expect("compose file is YAML");
    // `<<` merges may nest (an anchor that merges another): apply until none is left.
    for _ in 0..8 {
        doc.apply_merge().expect("merge keys");
    }
    doc
}

/// Services built from deploy/Dockerfile (the collector image).
pub(crate) fn image_services(doc: &Yaml) -> Vec<(String, Yaml)> {
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
pub(crate) fn service_argv(s: &Yaml) -> (String, Vec<String>) {
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

pub(crate) fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args)
        .unwrap_or_else(|e| panic!("not an exec-form JSON array ({e}): {args}"))
}

pub(crate) fn instr(instrs: &[Instr], keyword: &str) -> Instr {
    instrs
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .cloned()
        .unwrap_or_else(|| panic!("Dockerfile has no {keyword}"))
}

/// The runtime (last) stage's ENV.
pub(crate) fn image_env() -> BTreeMap<String, String> {
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
