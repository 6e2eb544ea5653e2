//! `deploy/ha/`: Patroni + etcd + HAProxy against the project.

use super::*;

/// The `host:port` list and the query of a `postgres://` URL.
pub(crate) fn url_hosts(url: &str) -> (Vec<String>, String) {
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
