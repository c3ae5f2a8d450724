//! The admin server's live dashboard: `/stats/summary` counts each call on its edge, and the
//! page at `/` shows it, rendered by headless Chromium while calls run.

use std::{
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use anyhow::{Context, Result};
use serde_json::Value;
use strait_tests::{
    browser::Chromium,
    dashboard::{self, SETTLE},
    greeter::{self, loopback::Loopback, CallOptions, FailIn, Implementation},
    lab::{self, skip_or_fail, wait_until},
};
use tonic::Code;

const GREETER: &str = "greeter.default.svc.cluster.local";
const EMPTY: &str = "empty.default.svc.cluster.local";

fn summary(lo: &Loopback) -> Result<Value> {
    let get = |url: &str| lab::http_get_local(url);
    dashboard::summary(&get, &lo.strait.admin.to_string())
}

/// The edge from the client to `service`. The client calls from 127.0.0.1, where the config has
/// the greeter Pods, so strait takes it for the `greeter` workload.
fn edge(summary: &Value, service: &str) -> Option<Value> {
    let edges = summary["edges"].as_array()?;
    edges
        .iter()
        .find(|e| e["source_workload"] == "greeter" && e["destination_service"] == service)
        .cloned()
}

#[test]
fn the_summary_counts_each_call_on_its_edge_by_status() -> Result<()> {
    let lo = Loopback::start("summary", Implementation::Rust, |s| s)?;
    let ok = lo.call(Implementation::Rust, "greeter:50051", |c| c.count(25))?;
    assert_eq!(ok.ok, 25, "{ok:?}");
    // No endpoints: strait answers UNAVAILABLE (14) itself.
    let failed = lo.call(Implementation::Rust, "empty:50051", |c| c.count(5))?;
    assert_eq!(failed.by_code.get("14"), Some(&5), "{failed:?}");

    let counted =
        |service, n: u64| move |s: &Value| edge(s, service).is_some_and(|e| e["requests"] == n);
    let settled = wait_until(SETTLE, || {
        summary(&lo).is_ok_and(|s| counted(GREETER, 25)(&s) && counted(EMPTY, 5)(&s))
    });
    let summary = summary(&lo)?;
    assert!(settled, "not 25 and 5 requests: {summary:#}");
    let greeter = edge(&summary, GREETER).unwrap();
    assert_eq!(greeter["request_protocol"], "grpc");
    assert_eq!(greeter["outcomes"], serde_json::json!({ "0": 25 }));
    let empty = edge(&summary, EMPTY).unwrap();
    assert_eq!(empty["outcomes"], serde_json::json!({ "14": 5 }));
    let services = summary["services"].as_array().context("services")?;
    assert_eq!(services.len(), 2, "{summary:#}");
    Ok(())
}

#[test]
fn only_the_admin_server_serves_the_dashboard() -> Result<()> {
    let lo = Loopback::start("dashboard-scope", Implementation::Rust, |s| s)?;
    let (code, page) = lab::http_get_local(&format!("http://{}/", lo.strait.admin))?;
    assert_eq!(code, 200);
    assert!(page.contains("<svg id=\"graph\""), "{page}");
    for path in ["/", "/stats/summary"] {
        let (code, _) = lab::http_get_local(&format!("http://{}{path}", lo.strait.metrics))?;
        assert_eq!(code, 404, "the metrics server answered {path}");
    }
    Ok(())
}

/// Calls made from another thread until the test is done with them.
struct Traffic<'a> {
    stop: &'a AtomicBool,
}

impl Drop for Traffic<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Batches of calls through strait's `outbound` to the greeter, and a few to `empty`, until
/// `stop`. (A `Loopback` stays on the test's thread: its processes are not `Sync`.)
fn keep_calling(outbound: SocketAddr, stop: &AtomicBool) -> Result<()> {
    let batch = |authority: &str, count| {
        let mut options = CallOptions::new(outbound).count(count);
        options.authority = Some(authority.into());
        greeter::run_client(Implementation::Rust, &options, Duration::from_secs(60))
    };
    while !stop.load(Ordering::Acquire) {
        batch("greeter:50051", 40)?;
        batch("empty:50051", 1)?;
    }
    Ok(())
}

#[test]
fn the_dashboard_page_shows_live_numbers_in_chromium() -> Result<()> {
    const TEST: &str = "the_dashboard_page_shows_live_numbers_in_chromium";
    let Some(chromium) = Chromium::find() else {
        skip_or_fail(TEST, "chromium not installed: apt-get install chromium");
        return Ok(());
    };
    // One slower replica and an occasional NOT_FOUND: the page has latencies and errors to show.
    let lo = Loopback::start("dashboard", Implementation::Rust, |s| {
        match s.name.as_str() {
            "replica-c" => s.delayed(Duration::from_millis(20)),
            "replica-b" => s.failing(Code::NotFound, 10, FailIn::Headers),
            _ => s,
        }
    })?;
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let caller = scope.spawn(|| keep_calling(lo.strait.outbound, &stop));
        let traffic = Traffic { stop: &stop };
        let checked = check_page(&lo, &chromium);
        drop(traffic);
        caller.join().expect("the calling thread")?;
        checked
    })
}

fn check_page(lo: &Loopback, chromium: &Chromium) -> Result<()> {
    let png = screenshot_path();
    let get = |url: &str| lab::http_get_local(url);
    let admin = lo.strait.admin.to_string();
    let dom = dashboard::capture(chromium, &get, &admin, &[GREETER], &png)?;
    assert!(
        dom.contains(">greeter<"),
        "the graph has no greeter node:\n{dom}"
    );
    // Straight to stderr: the harness keeps a passing test's prints to itself.
    let line = format!("\ndashboard screenshot: {}\n", png.display());
    let _ = std::io::stderr().write_all(line.as_bytes());
    Ok(())
}

/// In cargo's scratch directory for integration tests (`target/tmp`), kept after the test.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("strait-dashboard.png")
}
