//! `deploy/Dockerfile` against the project, and its health check against a real collector.

use super::*;

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
