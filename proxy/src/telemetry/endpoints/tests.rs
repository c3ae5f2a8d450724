//! The live view over real balancers and a real model: three Greeter replicas, one failing
//! until outlier detection ejects it.

use super::*;
use crate::{
    balance::Balancers,
    config::{load_str, TryOutcome},
    telemetry::Metrics,
};

const YAML: &str = "\
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: default}
spec:
  clusterIP: 10.96.0.30
  selector: {app: greeter}
  ports: [{name: grpc, port: 50051}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter, namespace: default}
spec:
  host: greeter
  subsets: [{name: v1, labels: {version: v1}}]
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
";

pub(crate) const WHOLE: &str = "outbound|50051||greeter.default.svc.cluster.local";
pub(crate) const SUBSET: &str = "outbound|50051|v1|greeter.default.svc.cluster.local";

/// A Running, ready Pod `greeter-N` at 10.0.0.N.
fn pod(n: u8) -> String {
    format!(
        "---
apiVersion: v1
kind: Pod
metadata: {{name: greeter-{n}, namespace: default, labels: {{app: greeter, version: v1}}}}
spec: {{containers: [{{name: greeter}}]}}
status: {{phase: Running, podIP: 10.0.0.{n}, conditions: [{{type: Ready, status: 'True'}}]}}
"
    )
}

pub(crate) fn endpoint(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 50051))
}

/// The real balancers; strait's pools are not involved (no connections).
pub(crate) struct Balanced(pub Balancers);

impl EndpointSource for Balanced {
    fn balanced(&self) -> Vec<EndpointStats> {
        self.0.snapshot()
    }

    fn connections(&self, _: SocketAddr) -> usize {
        0
    }
}

/// The Greeter's model and balancers after `ok` good calls spread over the whole port's
/// three replicas, and three UNAVAILABLE from replica 3, which ejects it.
pub(crate) fn greeter_with_an_ejection(ok: usize) -> (Model, Balanced) {
    let yaml = YAML.to_owned() + &(1..=3).map(pod).collect::<String>();
    let loaded = load_str(std::path::Path::new("greeter.yaml"), &yaml);
    let model = Model::from_resources(&loaded.resources);
    let balancers = Balancers::with_seed(7);
    let whole = backends(&model).next().expect("the port's cluster");
    let policy = &whole.traffic_policy;
    let call = |avoid: &[SocketAddr], outcome| {
        let mut pick = balancers
            .pick(&whole.key, policy, &whole.endpoints, avoid)
            .expect("endpoints");
        pick.report(outcome);
    };
    let ok_status = TryOutcome::Response {
        status: 200,
        grpc: Some(0),
    };
    for _ in 0..ok {
        call(&[endpoint(3)], ok_status);
    }
    let unavailable = TryOutcome::Response {
        status: 200,
        grpc: Some(14),
    };
    for _ in 0..3 {
        call(&[endpoint(1), endpoint(2)], unavailable);
    }
    (model, Balanced(balancers))
}

#[test]
fn rows_join_the_balancers_with_every_cluster_of_the_model() {
    let (model, balanced) = greeter_with_an_ejection(6);
    let rows = endpoint_rows(&model, &Live::read(&balanced));

    let whole: Vec<&EndpointRow> = rows.iter().filter(|r| r.cluster == WHOLE).collect();
    let addresses: Vec<SocketAddr> = whole.iter().map(|r| r.endpoint).collect();
    assert_eq!(addresses, [endpoint(1), endpoint(2), endpoint(3)]);
    let total: u64 = whole.iter().map(|r| r.state.total).sum();
    assert_eq!(total, 6 + 3, "every try counted once");
    assert!(whole.iter().all(|r| r.state.active == 0), "{whole:?}");

    let failing = &whole[2].state;
    assert_eq!(failing.times_ejected, 1);
    let left = failing.ejected_for.expect("ejected");
    // Base ejection time, back on the interval tick after it.
    assert!(
        left > Duration::from_secs(29) && left <= Duration::from_secs(31),
        "{left:?}"
    );
    assert!(!whole[0].state.is_ejected() && !whole[1].state.is_ejected());

    // The subset balances on its own: untouched, so zeros and healthy.
    let subset: Vec<&EndpointRow> = rows.iter().filter(|r| r.cluster == SUBSET).collect();
    assert_eq!(subset.len(), 3);
    assert!(subset.iter().all(|r| r.state == EndpointState::default()));
}

#[test]
fn the_collector_exports_each_endpoint_of_each_cluster() {
    let (model, balanced) = greeter_with_an_ejection(6);
    let (_, model) = watch::channel(Arc::new(model));
    let mut metrics = Metrics::new();
    let collector = EndpointCollector::new(Arc::new(balanced), model);
    metrics.register_collector(Box::new(collector));
    let text = metrics.encode();

    let labels =
        |cluster: &str, n| format!("{{cluster=\"{cluster}\",endpoint=\"{}\"}}", endpoint(n));
    let has = |line: String| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    has(format!("strait_endpoint_ejected{} 1", labels(WHOLE, 3)));
    has(format!("strait_endpoint_ejected{} 0", labels(WHOLE, 1)));
    has(format!("strait_endpoint_ejected{} 0", labels(SUBSET, 3)));
    has(format!(
        "strait_endpoint_requests_total{} 3",
        labels(WHOLE, 3)
    ));
    has(format!(
        "strait_endpoint_active_requests{} 0",
        labels(WHOLE, 1)
    ));
    has(format!("strait_endpoint_connections{} 0", labels(WHOLE, 2)));
    has("# TYPE strait_endpoint_ejected gauge".to_owned());
    has("# TYPE strait_endpoint_requests counter".to_owned());
}
