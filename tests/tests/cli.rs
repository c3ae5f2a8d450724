//! The `strait` binary without privileges: `validate` and `describe` on the seed manifests, and a `--no-ebpf`
//! proxy that refuses to relay a connection it cannot route.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::Result;
use strait_tests::lab::{self, LocalStrait};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_reports_exactly_the_seeds_broken_documents() -> Result<()> {
    let seed = fixture("seed-manifests.yaml");
    let out = Command::new(lab::strait_bin())
        .args(["validate", &seed])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let expect = [
        format!("error: {seed}#6 DestinationRule/default/http2-connection-pool: apiVersion:"),
        format!("warning: {seed}#5 VirtualService/default/grpc-with-retries: spec.http[0].route[0].destination.host:"),
        format!("warning: {seed}#5 VirtualService/default/grpc-with-retries: spec.hosts[0]:"),
    ];
    for prefix in &expect {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix.as_str())),
            "no line starts with {prefix:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("ignored"),
        "the broken document must be said to be ignored:\n{stdout}"
    );
    assert!(stdout.contains("grpc-canary wins"), "{stdout}");
    Ok(())
}

/// The seed's troubleshooting story starts with describing the Service.
#[test]
fn describe_service_tells_the_seeds_story() -> Result<()> {
    let seed = fixture("seed-manifests.yaml");
    let out = Command::new(lab::strait_bin())
        .args(["describe", "service", "grpc-service", "-c", &seed])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for expected in [
        "Port 50051 grpc-api -> 50051: grpc (by appProtocol grpc)",
        "90.0% -> grpc-service.default.svc.cluster.local:50051 subset v1",
        "DestinationRule/default/http2-connection-pool: apiVersion:",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}:\n{stdout}");
    }
    let unknown = Command::new(lab::strait_bin())
        .args(["describe", "service", "nope", "-c", &seed])
        .output()?;
    assert_eq!(unknown.status.code(), Some(1));
    Ok(())
}

#[test]
fn validate_exit_codes() -> Result<()> {
    let missing = Command::new(lab::strait_bin())
        .args(["validate", "/nonexistent/strait.yaml"])
        .output()?;
    assert_eq!(missing.status.code(), Some(2));
    let dir = std::env::temp_dir().join(format!("strait-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clean = dir.join("clean.yaml");
    std::fs::write(
        &clean,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - port: 80\n",
    )?;
    let ok = Command::new(lab::strait_bin())
        .arg("validate")
        .arg(&clean)
        .output()?;
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let typo = dir.join("typo.yaml");
    std::fs::write(
        &typo,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  portz: []\n",
    )?;
    let warned = Command::new(lab::strait_bin())
        .arg("validate")
        .arg(&typo)
        .output()?;
    assert_eq!(warned.status.code(), Some(0));
    let strict = Command::new(lab::strait_bin())
        .args(["validate", "--strict"])
        .arg(&typo)
        .output()?;
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stdout).contains("spec.portz"));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn without_capture_an_unroutable_connection_is_answered_not_relayed() -> Result<()> {
    let strait = LocalStrait::start(Path::new(&fixture("seed-manifests.yaml")), &[] as &[&str])?;
    let (outbound, admin, metrics) = (strait.outbound, strait.admin, strait.metrics);

    // An HTTP request for a host that is no Service: Envoy's 404 (NR), from strait itself.
    let answer = exchange(
        outbound,
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )?;
    assert!(answer.starts_with(b"HTTP/1.1 404"), "{answer:?}");
    // Not HTTP at all: closed, at most with hyper's 400; never relayed, never left waiting.
    let answer = exchange(outbound, b"\x16\x03\x01\x00\x05hello")?;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{answer:?}"
    );
    // The admin port has the metrics too; the metrics port has no config dump.
    let (code, body) = lab::http_get_local(&format!("http://{admin}/stats/prometheus"))?;
    assert_eq!(code, 200);
    assert!(body.contains("# EOF"), "{body}");
    let (code, _) = lab::http_get_local(&format!("http://{metrics}/config_dump"))?;
    assert_eq!(code, 404);
    Ok(())
}

/// `strait proxy-config` against a running strait shows what it loaded: the seed's canary
/// routes to its two subsets, and the route of the chaos rule to a subset that does not exist.
#[test]
fn proxy_config_shows_the_running_config() -> Result<()> {
    let strait = LocalStrait::start(Path::new(&fixture("seed-manifests.yaml")), &[] as &[&str])?;
    let admin = strait.admin.to_string();
    let show = |args: &[&str]| -> Result<String> {
        let out = Command::new(lab::strait_bin())
            .arg("proxy-config")
            .args(args)
            .args(["--admin", &admin])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let routes = show(&["routes"])?;
    let canary = routes
        .lines()
        .find(|l| l.starts_with("grpc-service.default.svc.cluster.local:50051 "))
        .unwrap_or_else(|| panic!("no canary route:\n{routes}"));
    assert!(canary.contains("default/grpc-canary.http[0]"), "{canary}");
    assert!(
        canary.contains("outbound|50051|v1|grpc-service.default.svc.cluster.local 90%, outbound|50051|v2|grpc-service.default.svc.cluster.local 10%"),
        "{canary}"
    );
    assert!(
        routes
            .contains("NR (no DestinationRule for Service default/server defines subset v1) 100%"),
        "{routes}"
    );
    let clusters = show(&["clusters"])?;
    assert!(clusters.starts_with("SERVICE FQDN"), "{clusters}");
    assert_eq!(
        clusters
            .lines()
            .filter(|l| l.contains("grpc-service.default"))
            .count(),
        3,
        "{clusters}"
    );
    let all: serde_json::Value = serde_json::from_str(&show(&["all", "-o", "json"])?)?;
    for section in ["listeners", "routes", "clusters", "endpoints"] {
        assert!(all[section].is_array(), "{section}: {all}");
    }
    Ok(())
}

/// Envoy's `/logging`: levels change with a POST, and only with a valid filter.
#[test]
fn log_levels_change_at_run_time() -> Result<()> {
    let strait = LocalStrait::start(Path::new(&fixture("seed-manifests.yaml")), &[] as &[&str])?;
    let admin = strait.admin;
    let request = |method: &str, query: &str| -> Result<String> {
        let head = format!("{method} /logging{query} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        Ok(String::from_utf8(exchange(admin, head.as_bytes())?)?)
    };
    assert!(request("GET", "")?.contains("active filter: info"));
    let changed = request("POST", "?level=debug")?;
    assert!(
        changed.starts_with("HTTP/1.1 200") && changed.contains("active filter: debug"),
        "{changed}"
    );
    let scoped = request("POST", "?filter=warn,strait::l7=trace")?;
    assert!(scoped.contains("strait::l7=trace"), "{scoped}");
    assert!(request("POST", "?level=loud")?.starts_with("HTTP/1.1 400"));
    assert!(request("GET", "?level=info")?.starts_with("HTTP/1.1 405"));
    assert!(
        request("GET", "")?.contains("strait::l7=trace"),
        "a refused change changes nothing"
    );
    Ok(())
}

/// Writes `request` and reads until strait closes the connection (EOF or a reset; a timeout
/// would mean it waited).
fn exchange(outbound: std::net::SocketAddr, request: &[u8]) -> Result<Vec<u8>> {
    let mut conn = TcpStream::connect(outbound)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = conn.write_all(request);
    let mut answer = Vec::new();
    match conn.read_to_end(&mut answer) {
        Ok(_) => Ok(answer),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Ok(answer),
        Err(err) => Err(err.into()),
    }
}

/// `strait probe --ready-file` answers for the one strait that writes the file: ready while it
/// serves, not before it starts and not after it stops.
#[test]
fn the_probe_follows_its_own_straits_ready_file() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("strait-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ready_file = dir.join("ready");
    // A file left by an earlier run (a crashed container's, in the same pod) is cleared at start.
    std::fs::write(&ready_file, "stale")?;
    let probe = || -> Result<bool> {
        let out = Command::new(lab::strait_bin())
            .arg("probe")
            .arg("--ready-file")
            .arg(&ready_file)
            .output()?;
        Ok(out.status.success())
    };
    let config = dir.join("empty.yaml");
    std::fs::write(&config, "")?;
    let strait = LocalStrait::start(&config, &["--ready-file".as_ref(), ready_file.as_os_str()])?;
    assert!(probe()?, "ready once serving");
    strait.process.signal(lab::Signal::SIGTERM)?;
    strait.process.wait_timeout(Duration::from_secs(10))?;
    assert!(!probe()?, "not ready once stopped");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
