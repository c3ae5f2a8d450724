//! End-to-end: gRPC through strait's L7 path, with the Rust Greeter and Python's grpcio.
//! Routing, failures, call kinds against a direct connection, drain. (The balance criterion
//! through eBPF capture is in `grpc_balance.rs`.)

use std::{fs, time::Duration};

use anyhow::{Context, Result};
use strait_tests::{
    greeter::{
        self,
        loopback::{
            config_dir, greeter_manifests, Loopback, AUTHORITY, GREETER_VIP, REPLICAS,
            SERVICE_LABEL,
        },
        CallOptions, FailIn, Implementation, Method, ServeOptions,
    },
    lab::{self, LocalStrait},
};
use tonic::Code;

#[test]
fn without_capture_calls_are_routed_by_authority_and_balanced() -> Result<()> {
    let lo = Loopback::start("authority", Implementation::Rust, |s| s)?;
    for authority in [
        AUTHORITY,
        "greeter.default:50051",
        "greeter:50051",
        GREETER_VIP,
    ] {
        let summary = lo.call(Implementation::Rust, authority, |c| c.count(30))?;
        assert_eq!(summary.ok, 30, "{authority}: {summary:?}");
        let answered = REPLICAS
            .iter()
            .filter(|r| summary.from_instance(r) > 0)
            .count();
        assert!(
            answered >= 2,
            "{authority}: one connection stuck to one replica: {summary:?}"
        );
    }
    // N successful calls add exactly N, under Istio's labels.
    let ok = [
        SERVICE_LABEL,
        "grpc_response_status=\"0\"",
        "response_code=\"200\"",
        "response_flags=\"-\"",
    ];
    assert_eq!(lo.requests_total(&ok)?, 120);
    Ok(())
}

/// What a call looked like to its client, without what differs between runs.
fn seen(report: &greeter::CallReport) -> Vec<(i32, u64, u64)> {
    report
        .calls
        .iter()
        .map(|call| (call.code, call.replies, call.bytes))
        .collect()
}

/// Each call kind, 16 MiB messages and deadline expiry, with grpcio and the Rust Greeter on
/// either side: every call ends with the same status, replies and bytes through strait as
/// straight to a replica.
#[test]
fn every_call_kind_behaves_as_a_direct_connection() -> Result<()> {
    let mut implementations = vec![Implementation::Rust];
    if greeter::require_python_grpc("every_call_kind_behaves_as_a_direct_connection (grpcio)") {
        implementations.push(Implementation::Python);
    }
    for server in implementations.clone() {
        let lo = Loopback::start("kinds", server, |s| s)?;
        let slow = Loopback::start("kinds-slow", server, |s| s.delayed(Duration::from_secs(2)))?;
        for &client in &implementations {
            let case = |what: &str| format!("{server:?} server, {client:?} client: {what}");
            for method in [
                Method::Unary,
                Method::ServerStream,
                Method::ClientStream,
                Method::Bidi,
            ] {
                let tune = |c: CallOptions| c.method(method).count(3);
                let direct = lo.report(client, None, tune)?;
                let through = lo.report(client, Some(AUTHORITY), tune)?;
                assert_eq!(through.summary.ok, 3, "{}", case(&format!("{method:?}")));
                assert_eq!(
                    seen(&through),
                    seen(&direct),
                    "{}",
                    case(&format!("{method:?}"))
                );
            }
            let big = |mut c: CallOptions| {
                c.size = 16 * 1024 * 1024;
                c.count(1)
            };
            let through = lo.report(client, Some(AUTHORITY), big)?;
            assert_eq!(through.summary.ok, 1, "{}", case("16 MiB"));
            assert_eq!(
                seen(&through),
                seen(&lo.report(client, None, big)?),
                "{}",
                case("16 MiB")
            );
            let expiring = |c: CallOptions| c.deadline(Duration::from_millis(300)).count(2);
            let through = slow.report(client, Some(AUTHORITY), expiring)?;
            let direct = slow.report(client, None, expiring)?;
            assert_eq!(
                through.summary.with_code(Code::DeadlineExceeded),
                2,
                "{}",
                case("deadline")
            );
            assert_eq!(seen(&through), seen(&direct), "{}", case("deadline"));
        }
    }
    Ok(())
}

#[test]
fn failures_are_grpc_statuses() -> Result<()> {
    let lo = Loopback::start("failures", Implementation::Rust, |s| {
        s.delayed(Duration::from_secs(3))
    })?;
    // No Service for the authority, and a Service without endpoints: UNAVAILABLE, at once.
    for authority in ["nothing.default:50051", "empty.default:50051"] {
        let summary = lo.call(Implementation::Rust, authority, |c| c.count(2))?;
        assert_eq!(
            summary.with_code(Code::Unavailable),
            2,
            "{authority}: {summary:?}"
        );
    }
    // The client's deadline passes while the replica is slow: DEADLINE_EXCEEDED, as direct.
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| {
        c.deadline(Duration::from_millis(300)).count(2)
    })?;
    assert_eq!(summary.with_code(Code::DeadlineExceeded), 2, "{summary:?}");
    // Each failure is counted under its status and flags: no route, no endpoint, the client
    // gone before the answer (DC).
    let unavailable = "grpc_response_status=\"14\"";
    assert_eq!(
        lo.requests_total(&[
            "destination_service=\"unknown\"",
            unavailable,
            "response_flags=\"NR\""
        ])?,
        2
    );
    let empty = "destination_service=\"empty.default.svc.cluster.local\"";
    assert_eq!(
        lo.requests_total(&[empty, unavailable, "response_flags=\"UH\""])?,
        2
    );
    // The deadline calls end either way: the client resets first (strait sees the client go:
    // DC), or the replica answers DEADLINE_EXCEEDED from grpc-timeout first. Both are counted.
    let deadline_outcomes = || -> Result<u64> {
        Ok(lo.requests_total(&["response_flags=\"DC\""])?
            + lo.requests_total(&[SERVICE_LABEL, "grpc_response_status=\"4\""])?)
    };
    assert!(lab::wait_until(Duration::from_secs(5), || {
        deadline_outcomes().is_ok_and(|n| n == 2)
    }));
    Ok(())
}

#[test]
fn grpc_status_in_trailers_is_seen() -> Result<()> {
    // Every replica fails every call with UNAVAILABLE after its response headers: in trailers.
    let lo = Loopback::start("trailers", Implementation::Rust, |s| {
        s.failing(Code::Unavailable, 1, FailIn::Trailers)
    })?;
    let summary = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(10))?;
    assert_eq!(summary.with_code(Code::Unavailable), 10, "{summary:?}");
    // Istio's default policy retries UNAVAILABLE twice; strait reads it from the trailers, so
    // each call ends with its retries exhausted (URX), with the last try's status.
    let labels = [
        SERVICE_LABEL,
        "grpc_response_status=\"14\"",
        "response_code=\"200\"",
        "response_flags=\"URX\"",
    ];
    assert_eq!(lo.requests_total(&labels)?, 10);
    Ok(())
}

/// On SIGTERM strait sends GOAWAY to every client: the call in flight finishes, the client's
/// connection is closed by strait once it is idle, and strait exits then, long before its
/// drain timeout. Without the GOAWAY the idle client connection would hold strait until the
/// timeout.
#[test]
fn sigterm_drains_with_goaway() -> Result<()> {
    let slow =
        ServeOptions::new("127.0.0.1:0".parse()?, REPLICAS[0]).delayed(Duration::from_millis(1500));
    let (_server, addr) = greeter::spawn_server(Implementation::Rust, &slow)?;
    let config = config_dir("drain")?;
    fs::write(
        config.join("greeter.yaml"),
        greeter_manifests(&[(addr.ip(), addr.port())]),
    )?;
    let strait = LocalStrait::start(&config, &["--drain-timeout", "60s"])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(strait.outbound).await?;
        let (client, mut connection) = h2::client::handshake(tcp).await?;
        let mut ping = connection.ping_pong().context("ping")?;
        let connection = tokio::spawn(connection);
        let mut client = client.ready().await?;
        let request = http::Request::post(format!("http://{AUTHORITY}{}", Method::Unary.path()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        let (response, mut send) = client.send_request(request, false)?;
        send.send_data(bytes::Bytes::from_static(b"\0\0\0\0\x07\n\x05drain"), true)?;
        // The pong comes after strait read the request's frames: the stream is strait's now.
        ping.ping(h2::Ping::opaque()).await?;
        strait.process.sigterm()?;

        let (parts, mut body) = response.await?.into_parts();
        assert_eq!(parts.status, 200);
        while let Some(chunk) = body.data().await {
            chunk?;
        }
        let trailers = body.trailers().await?.context("no trailers")?;
        assert_eq!(
            trailers["grpc-status"], "0",
            "the call in flight finished: {trailers:?}"
        );
        // GOAWAY, then the close once no stream is left: the connection task ends.
        tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .context("strait kept the idle client connection open")???;
        anyhow::Ok(())
    })?;
    let status = strait
        .process
        .wait_timeout(Duration::from_secs(10))?
        .context("strait still running 10 s after SIGTERM (drain timeout 60 s)")?;
    assert!(status.success(), "{status}");
    fs::remove_dir_all(&config)?;
    Ok(())
}
