use std::path::{Path, PathBuf};

use super::describe_command;

fn seed() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed-manifests.yaml"
    ))
}

fn describe(paths: &[PathBuf], service: &str) -> (i32, String) {
    let mut out = Vec::new();
    let code = describe_command(paths, service, &mut out);
    (code, String::from_utf8(out).unwrap())
}

fn write(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The seed's grpc-service: the canary wins over grpc-with-retries, its subsets select nothing
/// (no pods), and both the broken DestinationRule (dropped, but it names this host) and the
/// routing warnings are listed; nothing about other Services is.
#[test]
fn the_seeds_grpc_service_with_its_winner_subsets_and_problems() {
    let (code, out) = describe(&[seed()], "grpc-service");
    println!("{out}");
    assert_eq!(code, 0);
    let file = seed().display().to_string();
    for expected in [
        "Service: grpc-service.default.svc.cluster.local (".to_owned(),
        "Selector: app=grpc-server".to_owned(),
        "Cluster IP: none: reached by name only, never captured".to_owned(),
        format!("DestinationRules: default/grpc-service-dr ({file}#4)"),
        format!("VirtualServices: default/grpc-canary ({file}#3), default/grpc-with-retries ({file}#5); the first applies"),
        format!("Ingress: VirtualService default/grpc-ingress ({file}#8) at gateway default/grpc-gateway"),
        "Port 50051 grpc-api -> 50051: grpc (by appProtocol grpc)".to_owned(),
        "  Endpoints: none: requests get UH (no healthy upstream)".to_owned(),
        "  Subset v1: version=v1: no endpoints: requests get UH".to_owned(),
        "  Route 0 default/grpc-canary.http[0]: every request".to_owned(),
        " 90.0% -> grpc-service.default.svc.cluster.local:50051 subset v1 (no endpoints".to_owned(),
        " 10.0% -> grpc-service.default.svc.cluster.local:50051 subset v2 (".to_owned(),
        "    Timeout: none; retries: 2 on connect-failure,refused-stream,cancelled,unavailable,503 (Istio's default)".to_owned(),
        format!("  error: {file}#6 DestinationRule/default/http2-connection-pool: apiVersion:"),
        format!("  warning: {file}#5 VirtualService/default/grpc-with-retries: spec.hosts[0]:"),
        format!("  warning: {file}#5 VirtualService/default/grpc-with-retries: spec.http[0].route[0].destination.host:"),
    ] {
        assert!(out.contains(&expected), "missing {expected:?}");
    }
    assert_eq!(
        out.matches(": error: ").count() + out.matches("  error: ").count(),
        1
    );
    assert!(
        !out.contains("server-fault"),
        "another Service's problem: {out}"
    );
}

/// The seed's chaos story: `server` is classified by its port name, and its one route delays
/// every request 10 s before sending it to a subset no DestinationRule defines.
#[test]
fn the_seeds_chaos_route_shows_its_delay_and_why_it_goes_nowhere() {
    let (code, out) = describe(&[seed()], "server.default");
    println!("{out}");
    assert_eq!(code, 0);
    for expected in [
        "Port 8080 grpc -> 8080: grpc (by port name grpc)",
        "DestinationRules: none",
        "Route 0 default/server-fault.http[0]: every request",
        "100.0% -> nowhere: no DestinationRule for Service default/server defines subset v1; requests get NR",
        "    Fault: delay 10s on 100% (DI)",
        "Problems: none",
    ] {
        assert!(out.contains(expected), "missing {expected:?}");
    }
}

#[test]
fn endpoints_matches_and_a_subsets_own_policy() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.20
  selector: {app: web}
  ports: [{name: http-web, port: 80, targetPort: 8080}, {name: tcp-db, port: 5432}]
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
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: 'true'}}, uri: {prefix: /api}, sourceLabels: {app: tester}}]
    route: [{destination: {host: web, subset: v2}}]
    retries: {attempts: 0}
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 50}}}
  - route: [{destination: {host: web}}]
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}
";
    let (code, out) = describe(&[write(dir.path(), yaml)], "web.shop.svc.cluster.local");
    println!("{out}");
    assert_eq!(code, 0);
    for expected in [
        "Cluster IP: 10.96.0.20",
        "Port 80 http-web -> 8080: http (by port name http-web)",
        "  Endpoints (1):\n    10.0.0.5:8080 pod/web-1",
        "  Load balancer: ROUND_ROBIN",
        "  Subset v2: version=v2: 1 endpoint\n    Load balancer: RING_HASH(header x-user, 1024 points)",
        "  Route 0 canary: uri starts with /api and header x-canary = true and source label app=tester",
        "    Timeout: none; retries: off",
        "    Fault: abort with gRPC 14 UNAVAILABLE on 50% (FI)",
        "  Route 1 shop/web.http[1]: every request",
        "    Timeout: 2s; retries: 3 on 5xx, 500ms per try",
        "Port 5432 tcp-db -> 5432: tcp (by port name tcp-db)\n  Served: per connection (TCP relay, no routes)",
    ] {
        assert!(out.contains(expected), "missing {expected:?}");
    }
    // A TCP port has no routes to show.
    let tcp = out.split("Port 5432").nth(1).unwrap();
    assert!(!tcp.contains("Route "), "{tcp}");
}

#[test]
fn an_unknown_service_names_those_there_are() {
    let (code, out) = describe(&[seed()], "nope.default");
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        "error: no Service default/nope in the config (Services: default/grpc-service, default/http2-service, default/server)"
    );
    let (code, out) = describe(&[seed()], "not/a/name");
    assert_eq!(code, 2, "{out}");
}
