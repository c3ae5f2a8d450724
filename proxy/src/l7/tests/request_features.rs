//! Consistent hashing, routes on the client workload, and mirrors, through the whole L7 path.

use super::*;

/// A second Service, `down`, served by `upstream`.
fn down_service(upstream: &Upstream) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: down, namespace: default}}\n\
         spec: {{clusterIP: 10.96.0.51, selector: {{app: down}}, ports: [{{name: grpc, port: 80, \
         targetPort: grpc, appProtocol: grpc}}]}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: down-0, namespace: default}}\n\
         spec: {{address: 127.0.0.1, labels: {{app: down}}, ports: {{grpc: {}}}}}\n",
        upstream.addr.port()
    )
}

/// A running Pod at `ip` with `labels` (a YAML flow mapping).
fn client_pod(name: &str, ip: &str, labels: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {labels}}}\n\
         spec: {{containers: [{{name: app}}]}}\nstatus: {{phase: Running, podIP: {ip}}}\n"
    )
}

#[tokio::test]
async fn consistent_hash_keeps_a_user_on_one_endpoint() {
    let upstreams = [
        Upstream::start(ok_reply()).await,
        Upstream::start(ok_reply()).await,
        Upstream::start(ok_reply()).await,
    ];
    let by_user = up_policy("loadBalancer: {consistentHash: {httpHeaderName: x-user}}");
    let proxy = Proxy::start(&[&upstreams[0], &upstreams[1], &upstreams[2]], &by_user).await;
    let requests = || upstreams.each_ref().map(Upstream::requests);
    for _ in 0..20 {
        finish(proxy.call(&[("x-user", "a")]).await).await;
    }
    let after_a = requests();
    assert!(
        after_a.contains(&20),
        "every call of user a on one endpoint: {after_a:?}"
    );
    for user in 0..60 {
        finish(proxy.call(&[("x-user", &format!("user-{user}"))]).await).await;
    }
    let now = requests();
    let spread = now
        .iter()
        .zip(after_a)
        .filter(|(now, before)| **now > *before);
    assert_eq!(spread.count(), 3, "other users go everywhere: {now:?}");
}

#[tokio::test]
async fn source_labels_route_by_the_client_workload() {
    let up = Upstream::start(ok_reply()).await;
    let down = Upstream::start(ok_reply()).await;
    let config = down_service(&down)
        + &client_pod("client-a", "127.0.0.2", "{app: client-a}")
        + &client_pod("client-b", "127.0.0.3", "{app: client-b}")
        + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
           metadata: {name: up, namespace: default}\n\
           spec:\n  hosts: [up]\n  http:\n  \
           - match: [{sourceLabels: {app: client-a}, sourceNamespace: default}]\n    \
             route: [{destination: {host: down}}]\n  \
           - route: [{destination: {host: up}}]\n";
    let proxy = Proxy::start(&[&up], &config).await;
    let from = |ip: [u8; 4]| proxy.call_from(Ipv4Addr::from(ip), &[]);
    finish(from([127, 0, 0, 2]).await).await;
    assert_eq!(
        (down.requests(), up.requests()),
        (1, 0),
        "client-a goes down"
    );
    finish(from([127, 0, 0, 3]).await).await;
    assert_eq!((down.requests(), up.requests()), (1, 1), "client-b goes up");
    finish(from([127, 0, 0, 1]).await).await;
    assert_eq!(
        (down.requests(), up.requests()),
        (1, 2),
        "no known workload matches no sourceLabels"
    );
}
