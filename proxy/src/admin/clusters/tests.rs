use std::time::UNIX_EPOCH;

use super::*;
use crate::telemetry::endpoints::{
    endpoint_rows,
    tests::{endpoint, greeter_with_an_ejection, SUBSET, WHOLE},
    EndpointState, Live,
};

fn row(cluster: &str, n: u8, state: EndpointState) -> EndpointRow {
    EndpointRow {
        cluster: cluster.to_owned(),
        endpoint: endpoint(n),
        state,
    }
}

#[test]
fn text_is_envoys_one_line_per_stat() {
    let busy = EndpointState {
        active: 2,
        total: 41,
        connections: 1,
        latency: Duration::from_micros(1_250),
        ..EndpointState::default()
    };
    let ejected = EndpointState {
        total: 3,
        times_ejected: 1,
        ejected_for: Some(Duration::from_secs(30)),
        ..EndpointState::default()
    };
    let rows = vec![row(WHOLE, 1, busy), row(WHOLE, 3, ejected)];
    let clusters = Clusters::of(rows, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let expected = "\
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::cx_active::1
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::rq_active::2
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::rq_total::41
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::health_flags::healthy
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::times_ejected::0
outbound|50051||greeter.default.svc.cluster.local::10.0.0.1:50051::latency_ewma_ms::1.25
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::cx_active::0
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::rq_active::0
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::rq_total::3
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::health_flags::/failed_outlier_check
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::ejected_until::2023-11-14T22:13:50Z
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::times_ejected::1
outbound|50051||greeter.default.svc.cluster.local::10.0.0.3:50051::latency_ewma_ms::0
";
    assert_eq!(clusters.text(), expected);
}

#[test]
fn json_groups_hosts_by_cluster_from_the_live_balancers() {
    let (model, balanced) = greeter_with_an_ejection(6);
    let rows = endpoint_rows(&model, &Live::read(&balanced));
    let json = serde_json::to_string(&Clusters::of(rows, SystemTime::now())).unwrap();
    let clusters: Clusters = serde_json::from_str(&json).unwrap();

    let names: Vec<&str> = clusters
        .cluster_statuses
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, [WHOLE, SUBSET]);
    let hosts = &clusters.cluster_statuses[0].host_statuses;
    assert_eq!(hosts.iter().map(|h| h.rq_total).sum::<u64>(), 9);
    let flags: Vec<&str> = hosts.iter().map(|h| h.health_flags.as_str()).collect();
    assert_eq!(flags, ["healthy", "healthy", FAILED_OUTLIER_CHECK]);
    assert!(hosts[2].ejected_until.is_some() && hosts[0].ejected_until.is_none());
    let untouched = &clusters.cluster_statuses[1].host_statuses[0];
    assert_eq!((untouched.rq_total, untouched.times_ejected), (0, 0));
}
