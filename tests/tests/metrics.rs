//! End-to-end: Istio's request metrics count every call once, under its Service, status and
//! flags, with the duration histogram counting the same calls (what Istio's dashboards divide).

use anyhow::Result;
use strait_tests::{
    greeter::{
        loopback::{Loopback, AUTHORITY, SEED_GRPC_AUTHORITY, SERVICE_LABEL},
        Implementation,
    },
    manifests,
};

const EMPTY: &str = "destination_service=\"empty.default.svc.cluster.local\"";

#[test]
fn each_call_is_counted_once_with_its_status_and_duration() -> Result<()> {
    let lo = Loopback::start("metrics", Implementation::Rust, |s| s)?;
    let ok = lo.call(Implementation::Rust, AUTHORITY, |c| c.count(50))?;
    assert_eq!(ok.ok, 50, "{ok:?}");
    let failed = lo.call(
        Implementation::Rust,
        "empty.default.svc.cluster.local:50051",
        |c| c.count(10),
    )?;
    assert_eq!(failed.ok, 0, "{failed:?}");

    let strait = &lo.strait;
    let ok_labels = [
        SERVICE_LABEL,
        "grpc_response_status=\"0\"",
        "response_code=\"200\"",
        "response_flags=\"-\"",
        "request_protocol=\"grpc\"",
        "reporter=\"source\"",
        // The client calls from 127.0.0.1, where the config has the greeter Pods (all
        // replicas listen there): strait takes it for one of them, by its address.
        "source_workload=\"greeter\"",
        "source_workload_namespace=\"default\"",
    ];
    assert_eq!(strait.counter("istio_requests_total", &ok_labels)?, 50);
    assert_eq!(
        strait.counter("istio_requests_total", &[SERVICE_LABEL])?,
        50
    );
    let histogram = "istio_request_duration_milliseconds_count";
    assert_eq!(strait.counter(histogram, &ok_labels)?, 50);
    // Every call's request and reply is a message in a gRPC frame (5 bytes and more), and
    // small: all 50 land above 1 byte and within 1000.
    for sizes in ["istio_request_bytes", "istio_response_bytes"] {
        let bucket = |le: &str| {
            let le = format!("le=\"{le}\"");
            let labels: Vec<&str> = ok_labels.iter().copied().chain([le.as_str()]).collect();
            strait.counter(&format!("{sizes}_bucket"), &labels)
        };
        assert_eq!(bucket("1.0")?, 0, "{sizes}");
        assert_eq!(bucket("1000.0")?, 50, "{sizes}");
        assert_eq!(strait.counter(&format!("{sizes}_count"), &ok_labels)?, 50);
    }

    let uh = [
        EMPTY,
        "grpc_response_status=\"14\"",
        "response_flags=\"UH\"",
    ];
    assert_eq!(strait.counter("istio_requests_total", &uh)?, 10);
    assert_eq!(strait.counter(histogram, &uh)?, 10);
    assert_eq!(strait.counter("istio_requests_total", &[EMPTY])?, 10);
    Ok(())
}

/// The endpoint's workload is labelled as Istio labels it, from the Pod that answered: the
/// seed's 90/10 canary lands under `destination_version` v1 and v2, adding up to every call.
#[test]
fn each_call_is_counted_under_the_workload_that_answered_it() -> Result<()> {
    const CALLS: u64 = 200;
    let lo = Loopback::start_seed(
        "metrics-seed",
        Implementation::Rust,
        |s| s,
        &manifests::seed()?,
        "",
    )?;
    let ok = lo.call(Implementation::Rust, SEED_GRPC_AUTHORITY, |c| {
        c.count(CALLS)
    })?;
    assert_eq!(ok.ok, CALLS, "{ok:?}");

    let service = "destination_service=\"grpc-service.default.svc.cluster.local\"";
    let answered_by = |version: &str| {
        let version = format!("destination_version=\"{version}\"");
        let revision = version.replace("version", "canonical_revision");
        let labels = [
            service,
            "grpc_response_status=\"0\"",
            "destination_workload=\"grpc-server\"",
            "destination_workload_namespace=\"default\"",
            "destination_app=\"grpc-server\"",
            "destination_canonical_service=\"grpc-server\"",
            "destination_cluster=\"Kubernetes\"",
            "destination_principal=\"unknown\"",
            &version,
            &revision,
        ];
        lo.strait.counter("istio_requests_total", &labels)
    };
    let (v1, v2) = (answered_by("v1")?, answered_by("v2")?);
    assert_eq!(v1 + v2, CALLS, "v1 {v1}, v2 {v2}");
    // 90/10 over 200 calls: both are all but certain to be hit.
    assert!(v1 > v2 && v2 > 0, "v1 {v1}, v2 {v2}");
    Ok(())
}
