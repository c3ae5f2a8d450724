//! End-to-end, issue 4's traffic-management checks on the seed's own manifests (loaded
//! unchanged, with Greeter replicas as the Pods they select): the 90/10 canary and a header
//! route to v2, the 10 s delay chaos test against a 2 s client deadline, a 50 % abort, and
//! per-method retry rules. Each runs with the Rust Greeter and with grpcio, servers and client
//! of the same kind.

use std::time::Duration;

use anyhow::Result;
use strait_tests::{
    greeter::{
        self,
        loopback::{
            Loopback, AUTHORITY, SEED_GRPC_AUTHORITY, SEED_SERVER_AUTHORITY, SERVICE_LABEL,
        },
        FailIn, Implementation, Method,
    },
    manifests,
};
use tonic::Code;

const CALLS: u64 = 1000;
const V1: &str = "grpc-v1";
const V2: &str = "grpc-v2";
const SERVER_V1: &str = "server-v1";

/// The seed, whole, with no manifests of the test's own.
fn seed_as_written(name: &str, implementation: Implementation) -> Result<Loopback> {
    Loopback::start_seed(name, implementation, |s| s, &manifests::seed()?, "")
}

/// `grpc-canary` (the seed's 90/10 route) with a rule before it that sends calls marked
/// `x-canary: true` to v2.
const HEADER_CANARY: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: grpc-canary
  namespace: default
spec:
  hosts:
  - grpc-service.default.svc.cluster.local
  http:
  - match:
    - headers:
        x-canary:
          exact: \"true\"
    route:
    - destination:
        host: grpc-service.default.svc.cluster.local
        subset: v2
  - route:
    - destination:
        host: grpc-service.default.svc.cluster.local
        subset: v1
      weight: 90
    - destination:
        host: grpc-service.default.svc.cluster.local
        subset: v2
      weight: 10
";

/// The seed's `server-fault` routes to subset v1 of `server`, for which the seed has no
/// DestinationRule: without one strait answers such a route UNAVAILABLE with NR (after the
/// fault's delay). The tests add the rule the story implies, so that only the fault decides.
const SERVER_SUBSETS: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: default}
spec:
  host: server
  subsets:
  - {name: v1, labels: {version: v1}}
";

/// `server-fault` as the seed has it, but aborting half of the calls with UNAVAILABLE.
const SERVER_ABORT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: server-fault, namespace: default}
spec:
  hosts: [server]
  http:
  - fault:
      abort:
        percentage: {value: 50.0}
        grpcStatus: UNAVAILABLE
    route:
    - destination: {host: server, subset: v1}
";

/// The seed's canary: over 1000 calls, 90 ± 3 % reach v1, the rest v2, none fail.
#[test]
fn the_seeds_canary_puts_90_percent_on_v1() -> Result<()> {
    for implementation in greeter::implementations("the_seeds_canary_puts_90_percent_on_v1") {
        let lo = seed_as_written("canary", implementation)?;
        let summary = lo.call(implementation, SEED_GRPC_AUTHORITY, |c| c.count(CALLS))?;
        eprintln!("{implementation:?}: canary over {CALLS} calls: {summary:?}");
        assert_eq!(summary.ok, CALLS, "{implementation:?}: {summary:?}");
        let v1 = summary.from_instance(V1);
        assert!(
            (870..=930).contains(&v1),
            "{implementation:?}: {v1} of {CALLS} on v1: {summary:?}"
        );
        assert_eq!(v1 + summary.from_instance(V2), CALLS, "{summary:?}");
    }
    Ok(())
}

/// A client marked `x-canary: true` reaches only v2; unmarked ones still get the split.
#[test]
fn a_header_match_sends_a_marked_client_only_to_v2() -> Result<()> {
    let test = "a_header_match_sends_a_marked_client_only_to_v2";
    for implementation in greeter::implementations(test) {
        let seed = manifests::seed_replacing("VirtualService", "grpc-canary", HEADER_CANARY)?;
        let lo = Loopback::start_seed("header", implementation, |s| s, &seed, "")?;
        let marked = lo.call(implementation, SEED_GRPC_AUTHORITY, |c| {
            c.count(300).metadata("x-canary", "true")
        })?;
        assert_eq!(marked.ok, 300, "{implementation:?}: {marked:?}");
        assert_eq!(
            marked.from_instance(V2),
            300,
            "{implementation:?}: {marked:?}"
        );

        for unmarked in [vec![], vec![("x-canary", "false")]] {
            let summary = lo.call(implementation, SEED_GRPC_AUTHORITY, |c| {
                unmarked
                    .iter()
                    .fold(c.count(300), |c, (key, value)| c.metadata(key, value))
            })?;
            assert_eq!(summary.ok, 300, "{implementation:?}: {summary:?}");
            let v1 = summary.from_instance(V1);
            assert!(
                v1 >= 240,
                "{implementation:?} {unmarked:?}: {v1} of 300 on v1: {summary:?}"
            );
        }
    }
    Ok(())
}

/// The seed's chaos test: every call to `server` is delayed 10 s; clients with a 2 s deadline
/// all end DEADLINE_EXCEEDED at about 2 s, not 10 s.
#[test]
fn the_seeds_10s_delay_ends_2s_deadline_calls_at_2s() -> Result<()> {
    let test = "the_seeds_10s_delay_ends_2s_deadline_calls_at_2s";
    for implementation in greeter::implementations(test) {
        let lo = Loopback::start_seed(
            "chaos",
            implementation,
            |s| s,
            &manifests::seed()?,
            SERVER_SUBSETS,
        )?;
        let report = lo.report(implementation, Some(SEED_SERVER_AUTHORITY), |c| {
            let mut c = c.count(10).deadline(Duration::from_secs(2));
            c.concurrency = 10;
            c
        })?;
        let durations: Vec<f64> = report.calls.iter().map(|c| c.elapsed_ms).collect();
        eprintln!("{implementation:?}: 10 calls with a 2 s deadline took {durations:?} ms");
        let summary = &report.summary;
        assert_eq!(
            summary.with_code(Code::DeadlineExceeded),
            10,
            "{implementation:?}: {summary:?}"
        );
        for call in &report.calls {
            assert!(
                (1900.0..=3000.0).contains(&call.elapsed_ms),
                "{implementation:?}: a call ended after {} ms",
                call.elapsed_ms
            );
        }
        assert_eq!(summary.from_instance(SERVER_V1), 0, "{summary:?}");
    }
    Ok(())
}

/// Abort UNAVAILABLE at 50 %: 50 ± 5 % of 1000 calls fail with it (strait's fault, flag FI,
/// not retried), the rest succeed.
#[test]
fn an_abort_at_50_percent_fails_half_the_calls() -> Result<()> {
    let test = "an_abort_at_50_percent_fails_half_the_calls";
    for implementation in greeter::implementations(test) {
        let seed = manifests::seed_replacing("VirtualService", "server-fault", SERVER_ABORT)?;
        let lo = Loopback::start_seed("abort", implementation, |s| s, &seed, SERVER_SUBSETS)?;
        let summary = lo.call(implementation, SEED_SERVER_AUTHORITY, |c| c.count(CALLS))?;
        eprintln!("{implementation:?}: abort 50 % over {CALLS} calls: {summary:?}");
        let aborted = summary.with_code(Code::Unavailable);
        assert_eq!(
            summary.ok + aborted,
            CALLS,
            "{implementation:?}: {summary:?}"
        );
        assert!(
            (450..=550).contains(&aborted),
            "{implementation:?}: {aborted} of {CALLS} aborted: {summary:?}"
        );
        assert_eq!(summary.from_instance(SERVER_V1), summary.ok, "{summary:?}");
        let faulted = [
            "destination_service=\"server.default.svc.cluster.local\"",
            "grpc_response_status=\"14\"",
            "response_flags=\"FI\"",
        ];
        assert_eq!(lo.requests_total(&faulted)?, aborted, "{implementation:?}");
    }
    Ok(())
}

/// Retries for SayHello, none for a client stream (not idempotent): the first rule matches
/// the method's path exactly, the second every other Greeter method.
const PER_METHOD: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter, namespace: default}
spec:
  hosts: [greeter]
  http:
  - match:
    - uri: {exact: /helloworld.Greeter/SayHello}
    route: [{destination: {host: greeter}}]
    retries: {attempts: 3, retryOn: unavailable}
  - match:
    - uri: {prefix: /helloworld.Greeter/}
    route: [{destination: {host: greeter}}]
    retries: {attempts: 0}
";

/// One of three replicas fails every call with UNAVAILABLE, round robin spreads the calls:
/// every SayHello succeeds (retried), exactly a third of the client streams fail.
#[test]
fn per_method_rules_retry_say_hello_and_not_a_client_stream() -> Result<()> {
    let test = "per_method_rules_retry_say_hello_and_not_a_client_stream";
    let policy = manifests::documents([PER_METHOD.into(), manifests::round_robin("greeter")]);
    for implementation in greeter::implementations(test) {
        let lo = Loopback::start_with(
            "per-method",
            implementation,
            |s| match s.name == "replica-a" {
                true => s.failing(Code::Unavailable, 1, FailIn::Trailers),
                false => s,
            },
            &policy,
        )?;
        let unary = lo.call(implementation, AUTHORITY, |c| c.count(300))?;
        eprintln!("{implementation:?}: SayHello: {unary:?}");
        assert_eq!(unary.ok, 300, "{implementation:?}: SayHello {unary:?}");

        let streams = lo.call(implementation, AUTHORITY, |c| {
            c.method(Method::ClientStream).count(300)
        })?;
        eprintln!("{implementation:?}: client streams: {streams:?}");
        let failed = streams.with_code(Code::Unavailable);
        assert_eq!(streams.ok + failed, 300, "{implementation:?}: {streams:?}");
        assert_eq!(failed, 100, "{implementation:?}: a third fail: {streams:?}");
        let not_retried = [SERVICE_LABEL, "grpc_response_status=\"14\""];
        assert_eq!(lo.requests_total(&not_retried)?, 100, "{implementation:?}");
    }
    Ok(())
}
