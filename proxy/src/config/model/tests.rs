use std::path::Path;

use super::*;
use crate::{classify::Protocol, config::load_str};

fn model(yaml: &str) -> Model {
    let loaded = load_str(Path::new("m.yaml"), yaml);
    let problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    Model::from_resources(&loaded.resources)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn endpoints(port: ServicePortRef<'_>) -> Vec<(SocketAddr, String)> {
    port.endpoints()
        .iter()
        .map(|e| (e.addr, e.source.to_string()))
        .collect()
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports:
  - {name: grpc-api, port: 9090, targetPort: grpc}
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
spec:
  containers:
  - name: app
    ports: [{name: grpc, containerPort: 50051}, {name: metrics, containerPort: 9100}]
status: {phase: Running, podIP: 10.0.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec:
  containers:
  - ports: [{name: grpc, containerPort: 50052}]
status: {phase: Running, podIPs: [{ip: 10.0.0.12}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-pending, namespace: shop, labels: {app: web}}
spec: {containers: [{ports: [{name: grpc, containerPort: 50051}]}]}
status: {phase: Pending, podIP: 10.0.0.13}
---
apiVersion: v1
kind: Pod
metadata: {name: web-unready, namespace: shop, labels: {app: web}}
spec: {containers: [{ports: [{name: grpc, containerPort: 50051}]}]}
status:
  phase: Running
  podIP: 10.0.0.14
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-elsewhere, namespace: other, labels: {app: web}}
spec: {containers: [{ports: [{name: grpc, containerPort: 50051}]}]}
status: {phase: Running, podIP: 10.0.0.15}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
status: {phase: Running, podIP: 10.0.0.16}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop}
spec:
  address: 192.168.1.5
  labels: {app: web}
  ports: {grpc: 7070}
"#;

#[test]
fn named_target_ports_resolve_per_endpoint() {
    let model = model(WEB);
    let grpc = model.service_port_by_addr(addr("10.96.0.10:9090")).unwrap();
    assert_eq!(grpc.service().fqdn(), "web.shop.svc.cluster.local");
    assert_eq!(grpc.name(), Some("grpc-api"));
    assert_eq!(grpc.classification().protocol, Protocol::Grpc);
    assert_eq!(
        endpoints(grpc),
        [
            (addr("10.0.0.11:50051"), "pod/web-1".to_owned()),
            (addr("10.0.0.12:50052"), "pod/web-2".to_owned()),
            (addr("192.168.1.5:7070"), "workloadentry/vm-1".to_owned()),
        ],
        "Running, ready, same namespace, selected; pending, unready and other namespaces left out"
    );
}

#[test]
fn numeric_target_ports_apply_to_every_endpoint() {
    let model = model(WEB);
    let http = model.service_port_by_addr(addr("10.96.0.10:80")).unwrap();
    assert_eq!(http.classification().protocol, Protocol::Http);
    let addrs: Vec<SocketAddr> = http.endpoints().iter().map(|e| e.addr).collect();
    assert_eq!(
        addrs,
        [
            addr("10.0.0.11:8080"),
            addr("10.0.0.12:8080"),
            addr("192.168.1.5:8080")
        ]
    );
}

#[test]
fn absent_target_port_is_the_port() {
    let model = model(&WEB.replace("targetPort: 8080", "appProtocol: http"));
    let http = model.service_port_by_addr(addr("10.96.0.10:80")).unwrap();
    assert!(http.endpoints().iter().all(|e| e.addr.port() == 80));
}

#[test]
fn addr_lookup_is_tcp_only_and_unmaps_ipv4() {
    let model = model(WEB);
    assert!(
        model.service_port_by_addr(addr("10.96.0.10:53")).is_none(),
        "UDP is not proxied"
    );
    assert!(model.service_port_by_addr(addr("10.96.0.10:81")).is_none());
    let mapped = model
        .service_port_by_addr(addr("[::ffff:10.96.0.10]:9090"))
        .unwrap();
    assert_eq!(mapped.port(), 9090);
}

#[test]
fn captured_addrs_are_tcp_ports_of_services_with_cluster_ips() {
    let headless = r#"
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: external, namespace: shop}
spec: {type: ExternalName, externalName: example.com, ports: [{port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: shop}
spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20, "fd00::20"], ports: [{name: a, port: 8443, protocol: TCP}, {name: b, port: 8443, protocol: SCTP}]}
"#;
    let model = model(&format!("{WEB}{headless}"));
    assert_eq!(
        model.captured_addrs(),
        [
            addr("10.96.0.10:80"),
            addr("10.96.0.10:9090"),
            addr("10.96.0.20:8443"),
            addr("[fd00::20]:8443")
        ]
    );
    let db = model.service("db", "shop").unwrap();
    assert!(db.cluster_ips.is_empty());
}

#[test]
fn authority_forms() {
    let model = model(WEB);
    let port_of = |authority: &str, default: Option<u16>| {
        model
            .service_port_by_authority(authority, default)
            .map(|p| (p.service().name.clone(), p.port()))
    };
    let web = |port| Some(("web".to_owned(), port));
    assert_eq!(port_of("web.shop.svc.cluster.local:9090", None), web(9090));
    assert_eq!(port_of("web.shop.svc.cluster.local.:9090", None), web(9090));
    assert_eq!(port_of("web.shop.svc:80", None), web(80));
    assert_eq!(port_of("web.shop:9090", None), web(9090));
    assert_eq!(port_of("10.96.0.10:9090", None), web(9090));
    assert_eq!(
        port_of("web.shop", Some(80)),
        web(80),
        "the scheme's default port"
    );
    assert_eq!(
        port_of("web.shop", None),
        None,
        "two TCP ports and none named"
    );
    assert_eq!(port_of("10.96.0.10", Some(80)), web(80));
    assert_eq!(
        port_of("web:9090", None),
        None,
        "a bare name is in namespace default"
    );
    assert_eq!(port_of("web.shop:53", None), None, "UDP");
    assert_eq!(port_of("web.other:9090", None), None);
}

#[test]
fn bare_names_and_single_ports() {
    let model = model(
        "apiVersion: v1\nkind: Service\nmetadata: {name: server}\nspec: {ports: [{name: grpc, port: 8080}]}\n",
    );
    for authority in [
        "server",
        "server:8080",
        "server.default",
        "SERVER.default.svc.cluster.local",
    ] {
        let port = model
            .service_port_by_authority(authority, None)
            .unwrap_or_else(|| panic!("{authority}"));
        assert_eq!(
            (port.service().namespace.as_str(), port.port()),
            ("default", 8080)
        );
    }
    // The only port, though the scheme says 80.
    assert_eq!(
        model
            .service_port_by_authority("server", Some(80))
            .unwrap()
            .port(),
        8080
    );
}

#[test]
fn no_selector_no_endpoints() {
    let model = model(&WEB.replace("selector: {app: web}", "selector: {}"));
    let grpc = model.service_port_by_addr(addr("10.96.0.10:9090")).unwrap();
    assert!(grpc.endpoints().is_empty());
}

#[test]
fn equal_inputs_give_equal_models() {
    assert_eq!(model(WEB), model(WEB));
    assert_ne!(model(WEB), model(&WEB.replace("10.0.0.11", "10.0.0.21")));
}
