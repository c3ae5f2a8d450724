//! End-to-end: retries on the L7 path. One of three replicas fails every call; strait retries
//! on another endpoint, reading the status from trailers as well as headers, replaying the
//! request body, within the retry budget.

use anyhow::Result;
use strait_tests::greeter::{
    self,
    loopback::{Loopback, AUTHORITY, SERVICE_LABEL},
    FailIn, Implementation, Method,
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
