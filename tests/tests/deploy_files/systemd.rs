//! `deploy/collector.service` against the project.

use super::*;

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
