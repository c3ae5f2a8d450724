//! End-to-end: retries on the L7 path. One of three replicas fails every call; strait retries
//! on another endpoint, reading the status from trailers as well as headers, replaying the
//! request body, within the retry budget.

use std::time::{Duration, Instant};

use anyhow::Result;
use strait_tests::{
    greeter::{
        self,
        loopback::{Loopback, AUTHORITY, SERVICE_LABEL},
        FailIn, Implementation, Method,
    },
    manifests,
};
use tonic::Code;

const FAILING: &str = "replica-a";

/// `replica-a` fails every call with `code`, its status placed as `fail_in` says.
fn one_failing_replica(
    name: &str,
    server: Implementation,
    code: Code,
    fail_in: FailIn,
) -> Result<Loopback> {
    Loopback::start(name, server, |s| {
        if s.name == FAILING {
            s.failing(code, 1, fail_in)
        } else {
            s
        }
    })
}

/// With no VirtualService, Istio's default policy applies: UNAVAILABLE is retried. Without
/// retries about a third of the calls would fail.
#[test]
fn calls_to_a_failing_replica_are_retried_on_another() -> Result<()> {
    let mut cases = vec![(Implementation::Rust, Implementation::Rust)];
    if greeter::require_python_grpc("calls_to_a_failing_replica_are_retried_on_another (grpcio)") {
        cases.push((Implementation::Python, Implementation::Python));
    }
    for (server, client) in cases {
        for fail_in in [FailIn::Trailers, FailIn::Headers] {
            let lo = one_failing_replica("retried", server, Code::Unavailable, fail_in)?;
            let summary = lo.call(client, AUTHORITY, |c| c.count(1000))?;
            let case = format!("{server:?} servers, {client:?} client, status in {fail_in:?}");
            assert_eq!(summary.ok, 1000, "{case}: {summary:?}");
            assert_eq!(summary.from_instance(FAILING), 0, "{case}: {summary:?}");
            let ok = [
                SERVICE_LABEL,
                "grpc_response_status=\"0\"",
                "response_flags=\"-\"",
            ];
            assert_eq!(lo.requests_total(&ok)?, 1000, "{case}");
        }
    }
    Ok(())
}

/// A retry sends the request body again: client streams and bidirectional calls, whose
/// failing try already took messages, succeed whole on another replica.
#[test]
fn a_retry_replays_the_request_body() -> Result<()> {
    let lo = one_failing_replica(
        "replay",
        Implementation::Rust,
        Code::Unavailable,
        FailIn::Trailers,
    )?;
    for method in [Method::ClientStream, Method::Bidi, Method::ServerStream] {
        let summary = lo.call(Implementation::Rust, AUTHORITY, |c| {
            c.method(method).count(30)
        })?;
        assert_eq!(summary.ok, 30, "{method:?}: {summary:?}");
        assert_eq!(summary.from_instance(FAILING), 0, "{method:?}: {summary:?}");
    }
    Ok(())
}

/// INTERNAL is not in Istio's default `retryOn`: it reaches the client, untouched.
#[test]
fn statuses_the_policy_does_not_name_are_not_retried() -> Result<()> {
    let lo = one_failing_replica(
        "not-retried",
        Implementation::Rust,
        Code::Internal,
        FailIn::Trailers,
    )?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(300))?;
    let failed = summary.with_code(Code::Internal);
    assert_eq!(summary.ok + failed, 300, "{summary:?}");
    // Retried, next to none would fail; the failing replica gets its share of the calls.
    assert!(failed >= 30, "{summary:?}");
    let internal = [
        SERVICE_LABEL,
        "grpc_response_status=\"13\"",
        "response_flags=\"-\"",
    ];
    assert_eq!(lo.requests_total(&internal)?, failed);
    Ok(())
}

/// A VirtualService for the greeter whose one route has `route` (YAML flow mapping entries:
/// `retries: {...}`, `timeout: ...`).
fn virtual_service(route: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: greeter, namespace: default}}\n\
         spec:\n  hosts: [greeter]\n  http:\n  - route: [{{destination: {{host: greeter}}}}]\n    \
         {route}\n"
    )
}

fn failing_replica_with(name: &str, manifests: &str) -> Result<Loopback> {
    Loopback::start_with(
        name,
        Implementation::Rust,
        |s| match s.name == FAILING {
            true => s.failing(Code::Unavailable, 1, FailIn::Trailers),
            false => s,
        },
        manifests,
    )
}

/// Round robin, so that a third of the first tries go to the failing replica whatever the
/// machine's load does to latencies (the latency balancer may favour a replica that fails fast).
fn round_robin() -> String {
    format!("---\n{}", manifests::round_robin("greeter"))
}

/// The check: with retries configured all 1000 calls succeed; with `attempts: 0` a
/// third fail.
#[test]
fn virtual_service_retries_decide() -> Result<()> {
    let configured = virtual_service("retries: {attempts: 3, retryOn: unavailable}");
    let lo = failing_replica_with("vs-retries", &(configured + &round_robin()))?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(1000))?;
    assert_eq!(summary.ok, 1000, "{summary:?}");
    drop(lo);

    let none = virtual_service("retries: {attempts: 0}") + &round_robin();
    let lo = failing_replica_with("vs-no-retries", &none)?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(1000))?;
    let failed = summary.with_code(Code::Unavailable);
    eprintln!("attempts 0: {summary:?}");
    assert_eq!(summary.ok + failed, 1000, "{summary:?}");
    assert!((333..=334).contains(&failed), "a third fail: {summary:?}");
    Ok(())
}

/// A replica that hangs is cut off by the per-try timeout and the call retried elsewhere.
#[test]
fn per_try_timeouts_retry_a_slow_replica() -> Result<()> {
    let route = "retries: {attempts: 2, perTryTimeout: 200ms, retryOn: deadline-exceeded}";
    let lo = Loopback::start_with(
        "per-try",
        Implementation::Rust,
        |s| match s.name == FAILING {
            true => s.delayed(Duration::from_secs(30)),
            false => s,
        },
        &virtual_service(route),
    )?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(30))?;
    assert_eq!(summary.ok, 30, "{summary:?}");
    assert_eq!(summary.from_instance(FAILING), 0, "{summary:?}");
    Ok(())
}

/// The route's `timeout` is strait's to enforce: the replicas never learn of it (no
/// `grpc-timeout` from the client), and strait answers DEADLINE_EXCEEDED with UT.
#[test]
fn the_route_timeout_answers_deadline_exceeded() -> Result<()> {
    let lo = Loopback::start_with(
        "route-timeout",
        Implementation::Rust,
        |s| s.delayed(Duration::from_secs(30)),
        &virtual_service("timeout: 300ms"),
    )?;
    let started = Instant::now();
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(3))?;
    assert_eq!(summary.with_code(Code::DeadlineExceeded), 3, "{summary:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let timed_out = [
        SERVICE_LABEL,
        "grpc_response_status=\"4\"",
        "response_flags=\"UT\"",
    ];
    assert_eq!(lo.requests_total(&timed_out)?, 3);
    Ok(())
}

/// Outlier detection ejects the failing replica after 3 consecutive failures: with no retries,
/// only the calls before the ejection fail, where a third would without it.
#[test]
fn outlier_detection_ejects_a_failing_replica() -> Result<()> {
    let manifests = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: greeter, namespace: default}}\n\
         spec:\n  host: greeter\n  trafficPolicy:\n    outlierDetection:\n      \
         {{consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 60s, maxEjectionPercent: 50}}\n",
        virtual_service("retries: {attempts: 0}")
    );
    let lo = failing_replica_with("outlier", &manifests)?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(300))?;
    let failed = summary.with_code(Code::Unavailable);
    assert_eq!(summary.ok + failed, 300, "{summary:?}");
    assert_eq!(failed, 3, "three consecutive failures eject: {summary:?}");
    Ok(())
}
