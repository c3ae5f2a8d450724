use super::*;
use crate::{
    admin::proxy_config::{render, Output, Section},
    config::load_str,
};

const YAML: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports: [{name: grpc, port: 50051}, {name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v2}}
spec: {containers: [{name: web}]}
status: {phase: Running, podIP: 10.0.0.5, conditions: [{type: Ready, status: 'True'}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /helloworld.Greeter/}}]
    route: [{destination: {host: web, subset: v2}, weight: 75}, {destination: {host: web, subset: v9}, weight: 25}]
    retries: {attempts: 0}
    fault: {delay: {fixedDelay: 1s, percentage: {value: 10}}}
  - route: [{destination: {host: web}}]
";

fn dump() -> ConfigDump {
    let loaded = load_str(std::path::Path::new("test.yaml"), YAML);
    ConfigDump::of(&Model::from_resources(&loaded.resources), &Live::idle())
}

#[test]
fn every_view_of_a_service() {
    let dump = dump();
    let addresses: Vec<String> = dump
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(addresses, ["10.96.0.20:50051", "10.96.0.20:5432"]);
    assert_eq!(dump.listeners[0].classified_by, "port name grpc");

    // Only the gRPC port has routes; the TCP port is relayed.
    assert_eq!(dump.routes.len(), 1);
    let table = &dump.routes[0];
    assert_eq!(table.name, "web.shop.svc.cluster.local:50051");
    let first = &table.routes[0];
    assert_eq!(first.matches, ["uri starts with /helloworld.Greeter/"]);
    assert_eq!(first.retries.attempts, 0);
    assert_eq!(first.fault.as_deref(), Some("delay 1s on 10% (DI)"));
    let v2 = &first.destinations[0];
    assert_eq!(
        v2.cluster.as_deref(),
        Some("outbound|50051|v2|web.shop.svc.cluster.local")
    );
    assert_eq!(v2.percent, 75.0);
    let v9 = &first.destinations[1];
    assert_eq!(v9.cluster, None);
    assert!(
        v9.unresolved.as_deref().unwrap().contains("subset v9"),
        "{v9:?}"
    );
    assert_eq!(
        table.routes[1].retries.retry_on,
        "connect-failure,refused-stream,cancelled,unavailable,503"
    );

    // The port, and each subset, per port; endpoints by cluster.
    let clusters: Vec<&str> = dump.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        clusters,
        [
            "outbound|50051||web.shop.svc.cluster.local",
            "outbound|50051|v2|web.shop.svc.cluster.local",
            "outbound|50051|v3|web.shop.svc.cluster.local",
            "outbound|5432||web.shop.svc.cluster.local",
            "outbound|5432|v2|web.shop.svc.cluster.local",
            "outbound|5432|v3|web.shop.svc.cluster.local",
        ]
    );
    assert_eq!(dump.clusters[2].endpoints, 0);
    let v2_endpoints: Vec<String> = dump
        .endpoints
        .iter()
        .filter(|e| e.cluster == "outbound|50051|v2|web.shop.svc.cluster.local")
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(v2_endpoints, ["10.0.0.5:50051"]);
}

#[test]
fn json_round_trips_and_tables_align() {
    let dump = dump();
    let json = render(&dump, Section::All, Output::Json);
    let back: ConfigDump = serde_json::from_str(&json).unwrap();
    assert_eq!(back.clusters.len(), dump.clusters.len());

    let clusters = render(&dump, Section::Clusters, Output::Table);
    let lines: Vec<&str> = clusters.lines().collect();
    assert_eq!(
        lines[0],
        "SERVICE FQDN                PORT   SUBSET  DIRECTION  PROTOCOL  LB         ENDPOINTS"
    );
    assert_eq!(
        lines[1],
        "web.shop.svc.cluster.local  50051  -       outbound   grpc      PEAK_EWMA  1"
    );
    assert_eq!(lines.len(), 7);

    let all = render(&dump, Section::All, Output::Table);
    for header in ["ADDRESS", "NAME", "SERVICE FQDN", "ENDPOINT"] {
        assert!(
            all.lines().any(|l| l.starts_with(header)),
            "{header}: {all}"
        );
    }
}

#[test]
fn endpoints_carry_their_outlier_state() {
    use crate::telemetry::endpoints::tests::{endpoint, greeter_with_an_ejection, WHOLE};

    let (model, balanced) = greeter_with_an_ejection(3);
    let dump = ConfigDump::of(&model, &Live::read(&balanced));
    let table = render(&dump, Section::Endpoints, Output::Table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "ENDPOINT        STATUS     OUTLIER CHECK  CLUSTER",
            "10.0.0.1:50051  HEALTHY    OK             outbound|50051||greeter.default.svc.cluster.local",
            "10.0.0.2:50051  HEALTHY    OK             outbound|50051||greeter.default.svc.cluster.local",
            "10.0.0.3:50051  UNHEALTHY  FAILED         outbound|50051||greeter.default.svc.cluster.local",
        ]
    );
    // The subset balances on its own: its endpoints were never ejected.
    assert!(
        lines[4..].iter().all(|l| l.contains("HEALTHY    OK")),
        "{table}"
    );

    let json = render(&dump, Section::Endpoints, Output::Json);
    let endpoints: Vec<ClusterEndpoint> = serde_json::from_str(&json).unwrap();
    let failing = endpoints
        .iter()
        .find(|e| e.cluster == WHOLE && e.address == endpoint(3))
        .expect("replica 3 in the port's cluster");
    let health = (failing.health.as_str(), failing.outlier.as_str());
    assert_eq!(health, ("UNHEALTHY", "FAILED"));
}
