//! End-to-end: Istio's request metrics count every call once, under its Service, status and
//! flags, with the duration histogram counting the same calls (what Istio's dashboards divide).

use anyhow::Result;
use strait_tests::greeter::{
    loopback::{Loopback, AUTHORITY, SERVICE_LABEL},
    Implementation,
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
