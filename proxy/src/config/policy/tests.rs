//! Policies through the loader and the model, as the proxy reads them.

use std::path::Path;

use super::*;
use crate::config::{load_str, Model};

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                       spec: {ports: [{name: grpc, port: 9090}, {name: http, port: 80}]}\n---\n";

fn rule(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n"
    )
}

/// The model of `yaml`, which must load without a problem.
fn model(yaml: &str) -> Model {
    let loaded = load_str(Path::new("p.yaml"), yaml);
    let problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    Model::from_resources(&loaded.resources)
}

fn policy(model: &Model, port: u16) -> TrafficPolicy {
    let port = model
        .service_port_by_authority(&format!("web.shop:{port}"), None)
        .unwrap();
    model.traffic_policy(&port).clone()
}

fn subset_policy(model: &Model, port: u16, subset: &str) -> Option<TrafficPolicy> {
    let port = model
        .service_port_by_authority(&format!("web.shop:{port}"), None)
        .unwrap();
    model.subset_traffic_policy(&port, subset).cloned()
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn non_zero(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

#[test]
fn istio_defaults_without_a_rule() {
    let policy = policy(&model(SERVICE), 9090);
    assert_eq!(policy, TrafficPolicy::default());
    assert_eq!(policy.load_balancer, LbPolicy::PeakEwma);
    let pool = policy.connection_pool;
    assert_eq!(
        (
            pool.max_connections,
            pool.http2_max_requests,
            pool.max_retries
        ),
        (UNLIMITED, UNLIMITED, UNLIMITED)
    );
    assert_eq!(pool.http1_max_pending_requests, UNLIMITED);
    assert_eq!(
        (pool.connect_timeout, pool.idle_timeout),
        (secs(10), secs(3600))
    );
    assert_eq!(pool.max_requests_per_connection, None);
    assert_eq!(pool.max_concurrent_streams, None);
    assert_eq!(pool.h2_upgrade, H2UpgradePolicy::DoNotUpgrade);
    assert_eq!(policy.outlier_detection, None);
}

#[test]
fn every_implemented_field_is_read() {
    let spec = "{host: web.shop.svc.cluster.local, trafficPolicy: {\
                loadBalancer: {simple: ROUND_ROBIN},\
                connectionPool: {tcp: {maxConnections: 100, connectTimeout: 1.5s},\
                  http: {http1MaxPendingRequests: 7, http2MaxRequests: 1000, maxRequestsPerConnection: 50,\
                         maxRetries: 3, idleTimeout: 90s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 100}},\
                outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 100ms,\
                  baseEjectionTime: 1m, maxEjectionPercent: 50, minHealthPercent: 20}}}";
    let policy = policy(
        &model(&(SERVICE.to_owned() + &rule("web", "shop", spec))),
        9090,
    );
    assert_eq!(
        policy,
        TrafficPolicy {
            load_balancer: LbPolicy::RoundRobin,
            connection_pool: ConnectionPool {
                max_connections: 100,
                connect_timeout: Duration::from_millis(1500),
                http1_max_pending_requests: 7,
                http2_max_requests: 1000,
                max_requests_per_connection: non_zero(50),
                max_retries: 3,
                idle_timeout: secs(90),
                h2_upgrade: H2UpgradePolicy::Upgrade,
                max_concurrent_streams: non_zero(100),
            },
            outlier_detection: Some(OutlierDetection {
                consecutive_5xx_errors: non_zero(3),
                consecutive_gateway_errors: non_zero(2),
                interval: Duration::from_millis(100),
                base_ejection_time: secs(60),
                max_ejection_percent: IntPercent::new(50).unwrap(),
                min_health_percent: IntPercent::new(20).unwrap(),
            }),
        }
    );
}

#[test]
fn simple_load_balancers() {
    for (simple, expected) in [
        ("ROUND_ROBIN", LbPolicy::RoundRobin),
        ("LEAST_REQUEST", LbPolicy::LeastRequest),
        ("LEAST_CONN", LbPolicy::LeastRequest),
        ("RANDOM", LbPolicy::Random),
        ("UNSPECIFIED", LbPolicy::PeakEwma),
    ] {
        let spec = format!("{{host: web, trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}}}");
        let model = model(&(SERVICE.to_owned() + &rule("web", "shop", &spec)));
        assert_eq!(policy(&model, 80).load_balancer, expected, "{simple}");
    }
}

#[test]
fn consistent_hash_keys_and_ring_sizes() {
    let hashed =
        |key: HashKey, ring_size| LbPolicy::ConsistentHash(ConsistentHash { key, ring_size });
    for (written, expected) in [
        (
            "httpHeaderName: X-User",
            hashed(HashKey::Header(HeaderName::from_static("x-user")), 1024),
        ),
        (
            "httpCookie: {name: session, ttl: 0s}, ringHash: {minimumRingSize: 64}",
            hashed(HashKey::Cookie("session".into()), 64),
        ),
        (
            "useSourceIp: true, minimumRingSize: 32",
            hashed(HashKey::SourceIp, 32),
        ),
        (
            "httpQueryParameterName: user, maglev: {tableSize: 65537}",
            hashed(HashKey::QueryParameter("user".into()), 65537),
        ),
    ] {
        let spec = format!(
            "{{host: web, trafficPolicy: {{loadBalancer: {{consistentHash: {{{written}}}}}}}}}"
        );
        let model = model(&(SERVICE.to_owned() + &rule("web", "shop", &spec)));
        assert_eq!(policy(&model, 80).load_balancer, expected, "{written}");
    }
}

#[test]
fn zero_means_istios_default() {
    let spec = "{host: web, trafficPolicy: {connectionPool: {tcp: {maxConnections: 0},\
                http: {maxRequestsPerConnection: 0, maxConcurrentStreams: 0, h2UpgradePolicy: DEFAULT}},\
                outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0, maxEjectionPercent: 0}}}";
    let policy = policy(
        &model(&(SERVICE.to_owned() + &rule("web", "shop", spec))),
        80,
    );
    let pool = policy.connection_pool;
    assert_eq!(pool.max_connections, UNLIMITED);
    assert_eq!(pool.max_requests_per_connection, None);
    assert_eq!(pool.max_concurrent_streams, None);
    assert_eq!(pool.h2_upgrade, H2UpgradePolicy::DoNotUpgrade);
    let outliers = policy.outlier_detection.unwrap();
    assert_eq!(
        (
            outliers.consecutive_5xx_errors,
            outliers.consecutive_gateway_errors
        ),
        (None, None),
        "0 turns a check off"
    );
    assert_eq!(outliers.max_ejection_percent.get(), 10, "0 is not set");
}

#[test]
fn an_empty_outlier_detection_takes_envoys_defaults() {
    let spec = "{host: web, trafficPolicy: {outlierDetection: {}}}";
    let policy = policy(
        &model(&(SERVICE.to_owned() + &rule("web", "shop", spec))),
        80,
    );
    let outliers = policy.outlier_detection.unwrap();
    assert_eq!(outliers, OutlierDetection::default());
    assert_eq!(outliers.consecutive_5xx_errors, non_zero(5));
    assert_eq!(outliers.consecutive_gateway_errors, None);
    assert_eq!(
        (outliers.interval, outliers.base_ejection_time),
        (secs(10), secs(30))
    );
    assert_eq!(
        (
            outliers.max_ejection_percent.get(),
            outliers.min_health_percent.get()
        ),
        (10, 0)
    );
}

#[test]
fn port_level_settings_replace_the_whole_policy_for_their_port() {
    let spec = "{host: web, trafficPolicy: {\
                loadBalancer: {simple: RANDOM},\
                connectionPool: {tcp: {maxConnections: 10}, http: {maxRetries: 1}},\
                outlierDetection: {consecutive5xxErrors: 2},\
                portLevelSettings: [{port: {number: 9090}, connectionPool: {http: {http2MaxRequests: 5}}}]}}";
    let model = model(&(SERVICE.to_owned() + &rule("web", "shop", spec)));
    let grpc = policy(&model, 9090);
    assert_eq!(grpc.load_balancer, LbPolicy::PeakEwma, "not inherited");
    assert_eq!(grpc.outlier_detection, None, "not inherited");
    assert_eq!(grpc.connection_pool.http2_max_requests, 5);
    assert_eq!(
        (
            grpc.connection_pool.max_connections,
            grpc.connection_pool.max_retries
        ),
        (UNLIMITED, UNLIMITED),
        "the port's connectionPool is taken whole, not merged field by field"
    );
    let http = policy(&model, 80);
    assert_eq!(http.load_balancer, LbPolicy::Random);
    assert_eq!(http.connection_pool.max_connections, 10);
    assert_eq!(
        http.outlier_detection.unwrap().consecutive_5xx_errors,
        non_zero(2)
    );
}

#[test]
fn subsets_override_the_parts_they_set() {
    let spec = "{host: web, trafficPolicy: {loadBalancer: {simple: RANDOM}, connectionPool: {tcp: {maxConnections: 10}}},\
                subsets: [\
                {name: v1, labels: {version: v1}},\
                {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}},\
                {name: v3, labels: {version: v3}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST},\
                  portLevelSettings: [{port: {number: 80}, outlierDetection: {}}]}}]}";
    let model = model(&(SERVICE.to_owned() + &rule("web", "shop", spec)));
    assert_eq!(subset_policy(&model, 80, "v1"), Some(policy(&model, 80)));
    let v2 = subset_policy(&model, 80, "v2").unwrap();
    assert_eq!(v2.load_balancer, LbPolicy::RoundRobin);
    assert_eq!(v2.connection_pool.max_connections, 10, "the host's pool");
    // v3's port-level entry replaces every part for port 80, the host's too.
    let v3 = subset_policy(&model, 80, "v3").unwrap();
    assert_eq!(v3.load_balancer, LbPolicy::PeakEwma);
    assert_eq!(v3.connection_pool, ConnectionPool::default());
    assert!(v3.outlier_detection.is_some());
    let v3_grpc = subset_policy(&model, 9090, "v3").unwrap();
    assert_eq!(v3_grpc.load_balancer, LbPolicy::LeastRequest);
    assert_eq!(v3_grpc.connection_pool.max_connections, 10);
    assert_eq!(subset_policy(&model, 80, "v4"), None);
}

#[test]
fn host_forms_and_wildcards() {
    let limited = |host: &str, namespace: &str| {
        let spec = format!(
            "{{host: '{host}', trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 7}}}}}}}}"
        );
        let model = model(&(SERVICE.to_owned() + &rule("r", namespace, &spec)));
        policy(&model, 80).connection_pool.max_connections == 7
    };
    assert!(limited("web", "shop"));
    assert!(limited("web.shop", "other"));
    assert!(limited("web.shop.svc", "other"));
    assert!(limited("WEB.shop.svc.cluster.local", "other"));
    assert!(limited("*.shop.svc.cluster.local", "other"));
    assert!(limited("*.local", "other"));
    assert!(limited("*", "other"));
    assert!(
        !limited("web", "other"),
        "a short name is in the rule's namespace"
    );
    assert!(!limited("*.other.svc.cluster.local", "shop"));
    assert!(!limited("web.shop.svc.cluster", "shop"));
}

#[test]
fn the_exact_host_beats_a_wildcard() {
    let exact =
        "{host: web.shop.svc.cluster.local, trafficPolicy: {loadBalancer: {simple: RANDOM}}}";
    let near =
        "{host: '*.shop.svc.cluster.local', trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}";
    let far = "{host: '*.local', trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}";
    let yaml = SERVICE.to_owned() + &rule("far", "istio-system", far) + &rule("near", "shop", near);
    assert_eq!(
        policy(&model(&yaml), 80).load_balancer,
        LbPolicy::RoundRobin
    );
    let yaml = yaml + &rule("exact", "shop", exact);
    assert_eq!(policy(&model(&yaml), 80).load_balancer, LbPolicy::Random);
}

#[test]
fn the_seeds_connection_pool_with_a_valid_api_version() {
    let seed = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: http2-connection-pool
  namespace: default
spec:
  host: grpc-service.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 100
      http:
        h2UpgradePolicy: DEFAULT
        maxRequestsPerConnection: 0
        maxConcurrentStreams: 100
---
apiVersion: v1
kind: Service
metadata: {name: grpc-service, namespace: default}
spec: {ports: [{name: grpc-api, port: 50051, appProtocol: grpc}]}
";
    let model = model(seed);
    let port = model
        .service_port_by_authority("grpc-service:50051", None)
        .unwrap();
    let pool = model.traffic_policy(&port).connection_pool;
    assert_eq!(pool.max_connections, 100);
    assert_eq!(pool.max_concurrent_streams, non_zero(100));
    assert_eq!(pool.max_requests_per_connection, None);
    assert_eq!(pool.h2_upgrade, H2UpgradePolicy::DoNotUpgrade);
}
