//! The `strait` binary without privileges: `validate` on the seed manifests, and a `--no-ebpf`
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
fn validate_reports_exactly_the_seeds_broken_documents_and_missing_secret() -> Result<()> {
    let seed = fixture("seed-manifests.yaml");
    let out = Command::new(lab::strait_bin())
        .args(["validate", &seed])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let expect = [
        format!("error: {seed}#6 DestinationRule/default/http2-connection-pool: apiVersion:"),
        format!("warning: {seed}#5 VirtualService/default/grpc-with-retries: spec.http[0].route[0].destination.host:"),
        format!("warning: {seed}#5 VirtualService/default/grpc-with-retries: spec.hosts[0]:"),
        format!("warning: {seed}#7 Gateway/default/grpc-gateway: spec.servers[0].tls.credentialName: Secret default/grpc-tls-cert is not loaded"),
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
