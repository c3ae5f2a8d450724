//! The semantic checks, through the loader so the lines are what users see.

use std::path::Path;

use crate::config::load_str;

fn problems(yaml: &str) -> Vec<String> {
    load_str(Path::new("v.yaml"), yaml)
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn service(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n")
}

fn virtual_service(name: &str, spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n")
}

#[test]
fn service_ports() {
    let yaml = service("a", "{ports: [{name: x, port: 80}, {name: x, port: 80}, {name: z, port: 80, protocol: UDP}, {port: 81}]}");
    assert_eq!(
        problems(&yaml),
        [
            "error: v.yaml#1 Service/default/a: spec.ports[1].port: port 80/TCP is already spec.ports[0]; the document is ignored",
            "error: v.yaml#1 Service/default/a: spec.ports[1].name: x is already spec.ports[0]'s name; the document is ignored",
            "error: v.yaml#1 Service/default/a: spec.ports[3].name: required when a Service has more than one port; the document is ignored",
        ]
    );
}

#[test]
fn cluster_ips() {
    let yaml = service(
        "a",
        "{clusterIP: 10.96.0.1, clusterIPs: [10.96.0.2], ports: [{port: 80}]}",
    ) + &service("b", "{clusterIP: 10.96.0.3, ports: [{port: 80}]}")
        + &service("c", "{clusterIP: 10.96.0.3, ports: [{port: 80}]}");
    assert_eq!(
        problems(&yaml),
        [
            "error: v.yaml#1 Service/default/a: spec.clusterIPs[0]: must equal spec.clusterIP; the document is ignored",
            "error: v.yaml#3 Service/default/c: spec.clusterIP: 10.96.0.3 is already the cluster IP of Service default/b; the document is ignored",
        ]
    );
}

#[test]
fn unsupported_service_settings_warn() {
    let yaml = service(
        "a",
        "{sessionAffinity: ClientIP, internalTrafficPolicy: Local, ports: [{port: 80}]}",
    );
    let problems = problems(&yaml);
    assert_eq!(problems.len(), 2);
    assert!(problems[0].starts_with(
        "warning: v.yaml#1 Service/default/a: spec.sessionAffinity: ClientIP is not supported"
    ));
    assert!(problems[1].starts_with(
        "warning: v.yaml#1 Service/default/a: spec.internalTrafficPolicy: Local is not supported"
    ));
}

#[test]
fn named_target_port_no_endpoint_defines() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: a}}\n\
               spec: {containers: [{ports: [{name: web, containerPort: 8080}]}]}\nstatus: {phase: Running, podIP: 10.0.0.1}\n---\n";
    let yaml = service("a", "{selector: {app: a}, ports: [{name: http, port: 80, targetPort: http}, {name: web, port: 81, targetPort: web}]}")
        + pod
        + &service("idle", "{selector: {app: none}, ports: [{port: 80, targetPort: http}]}");
    assert_eq!(
        problems(&yaml),
        ["warning: v.yaml#1 Service/default/a: spec.ports[0].targetPort: none of the 1 selected endpoints has a TCP port named http: no endpoints"]
    );
}

#[test]
fn workload_entry_addresses() {
    let entry = |name: &str, address: &str| {
        format!("apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec: {{{address}}}\n---\n")
    };
    let yaml = entry("ip", "address: 10.0.0.1")
        + &entry("dns", "address: vm.example.com")
        + &entry("none", "labels: {a: b}");
    let problems = problems(&yaml);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("warning: v.yaml#2 WorkloadEntry/default/dns: spec.address: vm.example.com is not an IP address"));
    assert!(problems[1]
        .starts_with("warning: v.yaml#3 WorkloadEntry/default/none: spec.address: missing"));
}

#[test]
fn destinations_subsets_and_ports() {
    let rule = "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {name: web-dr}\n\
                spec: {host: web, subsets: [{name: v1, labels: {version: v1}}]}\n---\n";
    let yaml = service("web", "{ports: [{port: 80}]}")
        + rule
        + &virtual_service(
            "routes",
            "{hosts: [web], http: [{route: [\
               {destination: {host: web.default.svc.cluster.local, subset: v1}, weight: 20},\
               {destination: {host: web, subset: v2}, weight: 20},\
               {destination: {host: web.default, port: {number: 81}}, weight: 20},\
               {destination: {host: api, subset: v1}, weight: 20},\
               {destination: {host: server, subset: v1}, weight: 20}]}]}",
        );
    let problems = problems(&(yaml + &service("server", "{ports: [{port: 80}]}")));
    let prefix = "warning: v.yaml#3 VirtualService/default/routes: spec.http[0]";
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with(&format!("{prefix}.route[1].destination.subset: subset v2 is not defined by DestinationRule default/web-dr for web.default.svc.cluster.local")));
    assert!(problems[1].starts_with(&format!("{prefix}.route[2].destination.port.number: Service web.default.svc.cluster.local has no port 81")));
    assert!(problems[2].starts_with(&format!(
        "{prefix}.route[3].destination.host: api matches no Service"
    )));
    // route[4]: subset v1 of a host with no DestinationRule at all is deliberately not reported.
}

#[test]
fn undefined_gateways() {
    let gateway = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: edge}\n\
                   spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n---\n";
    let yaml = gateway.to_owned()
        + &virtual_service(
            "ingress",
            "{hosts: [a.example.com], gateways: [mesh, edge/gw, gw]}",
        );
    assert_eq!(
        problems(&yaml),
        ["warning: v.yaml#2 VirtualService/default/ingress: spec.gateways[2]: Gateway default/gw is not defined: no gateway of that name serves these routes"]
    );
}

#[test]
fn the_oldest_virtual_service_wins_a_host() {
    let dated = |name: &str, time: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
             metadata: {{name: {name}, creationTimestamp: '{time}'}}\nspec: {{hosts: [shop.example.com]}}\n---\n"
        )
    };
    let yaml = dated("newer", "2024-06-01T00:00:00Z") + &dated("older", "2024-01-01T00:00:00Z");
    let problems = problems(&yaml);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("warning: v.yaml#1 VirtualService/default/newer: spec.hosts[0]: shop.example.com is also bound by VirtualService default/older (v.yaml#2) for the mesh: default/older wins because it is older"), "{}", problems[0]);
}

#[test]
fn gateway_scopes_merge_and_short_names_meet_fqdns() {
    let gateway =
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n---\n";
    let yaml = gateway.to_owned()
        + &virtual_service("a", "{hosts: [web], gateways: [gw]}")
        + &virtual_service(
            "b",
            "{hosts: [web.default.svc.cluster.local, web], gateways: [default/gw]}",
        )
        + &virtual_service("c", "{hosts: [web]}");
    let problems = problems(&yaml);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("v.yaml#3 VirtualService/default/b: spec.hosts[0]: web.default.svc.cluster.local is also bound by VirtualService default/a (v.yaml#2) for gateway default/gw: their routes are merged there, default/a's first"),
        "{}",
        problems[0]
    );
}

fn destination_rule(name: &str, spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n")
}

#[test]
fn traffic_policy_values_out_of_range_name_their_field() {
    for (field, value, expected) in [
        (
            "connectionPool: {tcp: {maxConnections: -1}}",
            "spec.trafficPolicy.connectionPool.tcp.maxConnections: invalid value: integer `-1`",
            "expected a non-negative integer up to 2147483647",
        ),
        (
            "connectionPool: {tcp: {connectTimeout: 0s}}",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout: invalid value: string \"0s\"",
            "at least 1ms",
        ),
        (
            "outlierDetection: {maxEjectionPercent: 150}",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent: invalid value: integer `150`",
            "a percentage from 0 to 100",
        ),
        (
            "loadBalancer: {simple: FASTEST}",
            "spec.trafficPolicy.loadBalancer.simple: unknown variant `FASTEST`",
            "ROUND_ROBIN",
        ),
        (
            "connectionPool: {http: {h2UpgradePolicy: ALWAYS}}",
            "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: unknown variant `ALWAYS`",
            "DO_NOT_UPGRADE",
        ),
    ] {
        let yaml = destination_rule("dr", &format!("{{host: web, trafficPolicy: {{{field}}}}}"));
        let problems = problems(&yaml);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with(&format!(
                "error: v.yaml#1 DestinationRule/default/dr: {value}"
            )),
            "{}",
            problems[0]
        );
        assert!(problems[0].contains(expected), "{}", problems[0]);
        assert!(
            problems[0].ends_with("the document is ignored"),
            "{}",
            problems[0]
        );
    }
}

#[test]
fn load_balancers_strait_does_not_implement() {
    let yaml = destination_rule(
        "dr",
        "{host: web, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH},\
         portLevelSettings: [{port: {number: 80}, loadBalancer: {consistentHash: {httpHeaderName: x-user}}}, \
         {port: {number: 81}, loadBalancer: {consistentHash: {minimumRingSize: 10}}}, \
         {port: {number: 82}, loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x-user}}}]},\
         subsets: [{name: v1, trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}}]}",
    );
    assert_eq!(
        problems(&yaml),
        [
            "warning: v.yaml#1 DestinationRule/default/dr: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is not supported by strait; requests are balanced by strait's default (least request, weighted by latency)",
            "warning: v.yaml#1 DestinationRule/default/dr: spec.trafficPolicy.portLevelSettings[1].loadBalancer.consistentHash: names no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName); requests are balanced at random",
            "error: v.yaml#1 DestinationRule/default/dr: spec.trafficPolicy.portLevelSettings[2].loadBalancer.consistentHash: names more than one hash key: set one; the document is ignored",
            "error: v.yaml#1 DestinationRule/default/dr: spec.subsets[0].trafficPolicy.loadBalancer: simple and consistentHash are mutually exclusive: set one; the document is ignored",
        ]
    );
}

#[test]
fn a_port_set_twice_takes_the_first_entry() {
    let yaml = destination_rule(
        "dr",
        "{host: web, trafficPolicy: {portLevelSettings: [\
         {port: {number: 80}, loadBalancer: {simple: RANDOM}},\
         {port: {number: 81}, loadBalancer: {simple: RANDOM}},\
         {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}]}}",
    );
    assert_eq!(
        problems(&yaml),
        ["warning: v.yaml#1 DestinationRule/default/dr: spec.trafficPolicy.portLevelSettings[2].port.number: port 80 already has portLevelSettings[0], which applies: this entry is ignored"]
    );
}

#[test]
fn rules_for_one_host_merge_first_first() {
    let yaml = destination_rule(
        "first",
        "{host: web, trafficPolicy: {loadBalancer: {simple: RANDOM}}, subsets: [{name: v1}]}",
    ) + &destination_rule(
        "second",
        "{host: web.default.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}},\
         subsets: [{name: v2}, {name: v1}]}",
    ) + &destination_rule("elsewhere", "{host: api, trafficPolicy: {loadBalancer: {simple: RANDOM}}}");
    let why = "DestinationRule default/first (v.yaml#1), which goes first because neither has a creationTimestamp and it comes first in load order: this one is ignored";
    assert_eq!(
        problems(&yaml),
        [
            format!("warning: v.yaml#2 DestinationRule/default/second: spec.trafficPolicy: web.default.svc.cluster.local takes its traffic policy from {why}"),
            format!("warning: v.yaml#2 DestinationRule/default/second: spec.subsets[1].name: subset v1 of web.default.svc.cluster.local is defined by {why}"),
        ]
    );
}
