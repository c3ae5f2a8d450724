//! Where routes send requests: destinations resolved to backends, weights, subsets, mirrors.

use super::*;
use crate::{balance::LbPolicy, config::Backend};

/// `web.shop` with a selector, two Pods (v1, v2) and a WorkloadEntry (v2), a DestinationRule
/// with subsets v1 (its own load balancer), v2 and `all` (no labels), and Service `api` in
/// namespace `other` with one port.
const WORLD: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
    spec: {selector: {app: web}, ports: [{name: grpc, port: 9090, targetPort: 50051}, {name: http2-web, port: 8080}]}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: web-v1, namespace: shop, labels: {app: web, version: v1}}\n\
    status: {phase: Running, podIP: 10.0.0.1}\n---\n\
    apiVersion: v1\nkind: Pod\nmetadata: {name: web-v2, namespace: shop, labels: {app: web, version: v2}}\n\
    status: {phase: Running, podIP: 10.0.0.2}\n---\n\
    apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm, namespace: shop}\n\
    spec: {address: 10.0.1.1, labels: {app: web, version: v2}}\n---\n\
    apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\n\
    spec: {host: web, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}, connectionPool: {tcp: {maxConnections: 7}}},\n\
    subsets: [{name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: RANDOM}}},\n\
    {name: v2, labels: {version: v2}}, {name: all}]}\n---\n\
    apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: other}\n\
    spec: {ports: [{name: grpc, port: 7000}]}\n---\n";

/// The model of WORLD and a VirtualService `web` in `shop` with `spec`.
fn world(spec: &str) -> Model {
    model(&(WORLD.to_owned() + &virtual_service("web", "shop", spec)))
}

fn first_route(model: &Model, port: u16) -> HttpRoute {
    routes(model, port).remove(0)
}

fn backend(target: &Target) -> &Arc<Backend> {
    target.backend().unwrap()
}

fn unresolved(target: &Target) -> &Unresolved {
    target.backend().unwrap_err()
}

fn addrs(backend: &Backend) -> Vec<String> {
    backend.endpoints.iter().map(ToString::to_string).collect()
}

#[test]
fn canary_90_10_by_draw() {
    let route = first_route(
        &world(
            "{hosts: [web], http: [{route: [{destination: {host: web, subset: v1}, weight: 90}, \
             {destination: {host: web, subset: v2}, weight: 10}]}]}",
        ),
        9090,
    );
    let destinations = &route.destinations;
    assert_eq!(destinations.total_weight(), 100);
    let subset = |draw| backend(&destinations.pick(draw).target).subset.clone();
    let v1 = (0..100).filter(|&draw| subset(draw).as_deref() == Some("v1"));
    assert_eq!(v1.count(), 90);
    assert_eq!(subset(89).as_deref(), Some("v1"));
    assert_eq!(subset(90).as_deref(), Some("v2"));
    // Each subset balances on its own key, computed once.
    let keys: Vec<_> = destinations
        .iter()
        .map(|(destination, share)| (backend(&destination.target).key.clone(), share))
        .collect();
    assert_eq!(
        keys,
        [
            (("web.shop.svc.cluster.local|v1".to_owned(), 9090), 0.9),
            (("web.shop.svc.cluster.local|v2".to_owned(), 9090), 0.1)
        ]
    );
}

#[test]
fn subsets_select_endpoints_by_labels() {
    let model = world("{hosts: [web]}");
    let port = model
        .service_port_by_authority("web.shop:9090", None)
        .unwrap();
    let subsets = &port.service_port().subsets;
    assert_eq!(addrs(&subsets["v1"]), ["10.0.0.1:50051"]);
    // Pods by metadata.labels, WorkloadEntries by spec.labels.
    assert_eq!(addrs(&subsets["v2"]), ["10.0.0.2:50051", "10.0.1.1:50051"]);
    // A subset with no labels has every endpoint, as the whole port does.
    assert_eq!(addrs(&subsets["all"]), addrs(port.backend()));
    assert_eq!(addrs(port.backend()).len(), 3);
    assert_eq!(
        port.backend().key,
        ("web.shop.svc.cluster.local".to_owned(), 9090)
    );
    assert_eq!(subsets["all"].key.0, "web.shop.svc.cluster.local|all");
}

#[test]
fn a_subset_has_its_policy_over_the_hosts() {
    let model = world("{hosts: [web]}");
    let port = model
        .service_port_by_authority("web.shop:9090", None)
        .unwrap();
    let v1 = &port.service_port().subsets["v1"].traffic_policy;
    assert_eq!(v1.load_balancer, LbPolicy::Random);
    assert_eq!(
        v1.connection_pool.max_connections, 7,
        "the host's, not overridden"
    );
    let v2 = &port.service_port().subsets["v2"].traffic_policy;
    assert_eq!(v2.load_balancer, LbPolicy::RoundRobin);
    assert_eq!(model.subset_traffic_policy(&port, "v1"), Some(v1));
    assert_eq!(model.traffic_policy(&port), &port.backend().traffic_policy);
}

#[test]
fn a_destination_names_its_port_or_takes_the_only_one_or_the_requests() {
    let spec = "{hosts: [web], http: [{route: [{destination: {host: web}}]}]}";
    let model = world(spec);
    // web has two ports: a destination without one goes to the port the request came for.
    for port in [9090, 8080] {
        let route = first_route(&model, port);
        assert_eq!(backend(&route.destinations.pick(0).target).port, port);
    }
    // api.other has one: that one, from any port.
    let model = world("{hosts: [web], http: [{route: [{destination: {host: api.other}}]}]}");
    let api = backend(&first_route(&model, 8080).destinations.pick(0).target).clone();
    assert_eq!(
        (api.fqdn.as_str(), api.port),
        ("api.other.svc.cluster.local", 7000)
    );
    let model = world(
        "{hosts: [web], http: [{route: [{destination: {host: web.shop.svc.cluster.local, port: {number: 8080}}}]}]}",
    );
    assert_eq!(
        backend(&first_route(&model, 9090).destinations.pick(0).target).port,
        8080
    );
}

#[test]
fn unresolved_destinations_stay_with_their_reason() {
    let spec = "{hosts: [web], http: [{route: [\
        {destination: {host: nowhere}, weight: 25}, \
        {destination: {host: web, subset: v3}, weight: 25}, \
        {destination: {host: api.other, port: {number: 7001}}, weight: 25}, \
        {destination: {host: web.shop.svc.cluster.cluster.local}, weight: 25}]}]}";
    let (problems, model) = load(&(WORLD.to_owned() + &virtual_service("web", "shop", spec)));
    assert_eq!(problems.len(), 4, "{problems:#?}");
    let route = first_route(&model, 9090);
    let reasons: Vec<String> = route
        .destinations
        .iter()
        .map(|(destination, _)| unresolved(&destination.target).to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "nowhere is no Service",
            "no DestinationRule for Service shop/web defines subset v3",
            "Service other/api has no TCP port 7001",
            "web.shop.svc.cluster.cluster.local is no Service",
        ]
    );
}

#[test]
fn a_route_without_destinations_resolves_to_none() {
    let (problems, model) = load(
        &(WORLD.to_owned()
            + &virtual_service(
                "web",
                "shop",
                "{hosts: [web], http: [{redirect: {uri: /b}}]}",
            )),
    );
    assert_eq!(
        problems.len(),
        1,
        "redirect is not supported: {problems:#?}"
    );
    let route = first_route(&model, 9090);
    assert_eq!(
        unresolved(&route.destinations.pick(0).target),
        &Unresolved::NoDestination
    );
}

#[test]
fn mirrors_with_their_percentages() {
    let spec = "{hosts: [web], http: [{route: [{destination: {host: web}}], \
        mirror: {host: web, subset: v2}, mirrorPercentage: {value: 12.5}, \
        mirrors: [{destination: {host: api.other}}, {destination: {host: web}, percentage: {value: 0}}]}]}";
    let route = first_route(&world(spec), 9090);
    let mirrors: Vec<_> = route
        .mirrors
        .iter()
        .map(|mirror| {
            let backend = backend(&mirror.target);
            (backend.key.0.clone(), mirror.percentage.per_million())
        })
        .collect();
    assert_eq!(
        mirrors,
        [
            ("web.shop.svc.cluster.local|v2".to_owned(), 125_000),
            ("api.other.svc.cluster.local".to_owned(), 1_000_000)
        ],
        "0 % is no mirror"
    );
}

#[test]
fn the_deprecated_mirror_percent_is_read_and_named() {
    let spec = "{hosts: [web], http: [{route: [{destination: {host: web}}], \
        mirror: {host: nowhere}, mirrorPercent: 30}]}";
    let (problems, model) = load(&(WORLD.to_owned() + &virtual_service("web", "shop", spec)));
    let prefix = "warning: r.yaml#7 VirtualService/shop/web: spec.http[0]";
    assert_eq!(
        problems,
        [
            format!("{prefix}.mirrorPercent: deprecated by Istio: use mirrorPercentage, which wins when both are set"),
            format!("{prefix}.mirror.host: nowhere matches no Service: no copy of the requests is sent"),
        ]
    );
    let mirror = &first_route(&model, 9090).mirrors[0];
    assert_eq!(mirror.percentage.per_million(), 300_000);
    assert!(matches!(
        mirror.target,
        Target::Unresolved(Unresolved::NoService { .. })
    ));
}

#[test]
fn weights_not_adding_up_to_100_are_shares_and_all_zero_is_refused() {
    let vs = |weights: [u32; 2]| {
        let spec = format!(
            "{{hosts: [web], http: [{{route: [{{destination: {{host: web, subset: v1}}, weight: {}}}, \
             {{destination: {{host: web, subset: v2}}, weight: {}}}]}}]}}",
            weights[0], weights[1]
        );
        load(&(WORLD.to_owned() + &virtual_service("web", "shop", &spec)))
    };
    let (problems, model) = vs([1, 3]);
    assert_eq!(
        problems,
        ["warning: r.yaml#7 VirtualService/shop/web: spec.http[0].route: the weights add up to 4, not 100: \
          each destination takes its weight out of 4 of the requests (Istio releases before 1.15 refuse this)"]
    );
    let route = first_route(&model, 9090);
    let shares: Vec<f64> = route.destinations.iter().map(|(_, share)| share).collect();
    assert_eq!(shares, [0.25, 0.75]);
    let (problems, model) = vs([0, 0]);
    assert_eq!(
        problems,
        ["error: r.yaml#7 VirtualService/shop/web: spec.http[0].route: every destination has weight 0 \
          (or none): Istio refuses this; give each its share; the document is ignored"]
    );
    assert_eq!(first_route(&model, 9090).origin, RouteOrigin::Default);
    let (problems, _) = vs([100, 0]);
    assert!(problems.is_empty(), "{problems:#?}");
}
