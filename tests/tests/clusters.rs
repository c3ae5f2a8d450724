//! End-to-end: the live state of each endpoint, as `/clusters`, `strait proxy-config endpoints`
//! and the `strait_endpoint_*` metrics tell it. Three Greeter replicas behind a local strait,
//! one failing every call until outlier detection ejects it.

use std::{net::SocketAddr, process::Command};

use anyhow::{Context, Result};
use serde_json::Value;
use strait_tests::{
    greeter::{
        loopback::{Loopback, AUTHORITY, REPLICAS},
        FailIn, Implementation,
    },
    lab::{self, http_get_local, sum_samples},
};
use tonic::Code;

const FAILING: &str = "replica-a";
const CLUSTER: &str = "outbound|50051||greeter.default.svc.cluster.local";
/// Calls made: each is one try (no retries), so the replicas' `rq_total` add up to it.
const CALLS: u64 = 30;

/// One try per call; round robin, so the failing replica gets its three failures early
/// whatever latencies do; eject after three, for longer than the test.
const POLICY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: default}
spec:
  hosts: [greeter]
  http: [{route: [{destination: {host: greeter}}], retries: {attempts: 0}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter, namespace: default}
spec:
  host: greeter
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
";

#[test]
fn clusters_show_each_replicas_requests_and_the_ejected_one() -> Result<()> {
    let lo = Loopback::start_with(
        "clusters",
        Implementation::Rust,
        |s| match s.name == FAILING {
            true => s.failing(Code::Unavailable, 1, FailIn::Trailers),
            false => s,
        },
        POLICY,
    )?;
    let failing = lo.backends[REPLICAS.iter().position(|r| *r == FAILING).unwrap()];
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(CALLS))?;
    assert_eq!(summary.with_code(Code::Unavailable), 3, "{summary:?}");
    assert_eq!(summary.ok, CALLS - 3, "{summary:?}");

    clusters_json_shows_the_ejection(&lo, failing)?;
    clusters_text_is_envoys(&lo, failing)?;
    proxy_config_marks_the_failing_endpoint(&lo, failing)?;
    gauges_agree(&lo, failing)
}

fn admin_get(lo: &Loopback, path: &str) -> Result<String> {
    let (status, body) = http_get_local(&format!("http://{}{path}", lo.strait.admin))?;
    anyhow::ensure!(status == 200, "{path}: {status} {body}");
    Ok(body)
}

fn clusters_json_shows_the_ejection(lo: &Loopback, failing: SocketAddr) -> Result<()> {
    let clusters: Value = serde_json::from_str(&admin_get(lo, "/clusters?format=json")?)?;
    let hosts = clusters["cluster_statuses"]
        .as_array()
        .context("cluster_statuses")?
        .iter()
        .find(|c| c["name"] == CLUSTER)
        .with_context(|| format!("no {CLUSTER} in {clusters}"))?["host_statuses"]
        .as_array()
        .context("host_statuses")?
        .clone();
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let rq_total: u64 = hosts.iter().filter_map(|h| h["rq_total"].as_u64()).sum();
    assert_eq!(rq_total, CALLS, "{hosts:?}");
    for host in &hosts {
        let ejected = host["address"] == failing.to_string();
        let flags = if ejected {
            "/failed_outlier_check"
        } else {
            "healthy"
        };
        assert_eq!(host["health_flags"], flags, "{host}");
        assert_eq!(host["ejected_until"].is_string(), ejected, "{host}");
        assert_eq!(host["times_ejected"], u64::from(ejected), "{host}");
        assert_eq!(host["rq_active"], 0, "{host}");
        // Each replica answered over a pooled HTTP/2 connection, kept open.
        assert!(host["cx_active"].as_u64() >= Some(1), "{host}");
    }
    Ok(())
}

fn clusters_text_is_envoys(lo: &Loopback, failing: SocketAddr) -> Result<()> {
    let text = admin_get(lo, "/clusters")?;
    let line = format!("{CLUSTER}::{failing}::health_flags::/failed_outlier_check");
    assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    let rq_total: u64 = text
        .lines()
        .filter(|l| l.starts_with(&format!("{CLUSTER}::")))
        .filter_map(|l| stat_value(l, "rq_total"))
        .sum();
    assert_eq!(rq_total, CALLS, "{text}");
    Ok(())
}

fn proxy_config_marks_the_failing_endpoint(lo: &Loopback, failing: SocketAddr) -> Result<()> {
    let out = Command::new(lab::strait_bin())
        .args(["proxy-config", "endpoints", "--admin"])
        .arg(lo.strait.admin.to_string())
        .output()?;
    let table = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|row: &Vec<&str>| row.last() == Some(&CLUSTER))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        let expected = if row[0] == failing.to_string() {
            ["UNHEALTHY", "FAILED"]
        } else {
            ["HEALTHY", "OK"]
        };
        assert_eq!(row[1..3], expected, "{table}");
    }
    Ok(())
}

fn gauges_agree(lo: &Loopback, failing: SocketAddr) -> Result<()> {
    let page = admin_get(lo, "/stats/prometheus")?;
    let cluster = format!("cluster=\"{CLUSTER}\"");
    let at = |endpoint: SocketAddr| format!("endpoint=\"{endpoint}\"");
    let ejected = |e| sum_samples(&page, "strait_endpoint_ejected", &[&cluster, &at(e)]);
    for &backend in &lo.backends {
        assert_eq!(ejected(backend), u64::from(backend == failing), "{page}");
    }
    let requests = sum_samples(&page, "strait_endpoint_requests_total", &[&cluster]);
    assert_eq!(requests, CALLS, "{page}");
    assert_eq!(
        sum_samples(&page, "strait_endpoint_active_requests", &[&cluster]),
        0
    );
    assert!(
        sum_samples(&page, "strait_endpoint_connections", &[&cluster]) >= 3,
        "{page}"
    );
    Ok(())
}

/// The number of a `/clusters` line `CLUSTER::ADDRESS::STAT::VALUE` whose stat is `stat`.
fn stat_value(line: &str, stat: &str) -> Option<u64> {
    line.rsplit_once(&format!("::{stat}::"))?.1.parse().ok()
}
