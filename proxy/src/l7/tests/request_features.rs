//! Consistent hashing, routes on the client workload, and mirrors, through the whole L7 path.

use super::*;

/// A second Service, `down`, served by `upstream`.
fn down_service(upstream: &Upstream) -> String {
    service("down", 51, upstream)
}

/// A gRPC Service `name` (cluster IP 10.96.0.`ip`) served by `upstream`.
fn service(name: &str, ip: u8, upstream: &Upstream) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{clusterIP: 10.96.0.{ip}, selector: {{app: {name}}}, ports: [{{name: grpc, port: 80, \
         targetPort: grpc, appProtocol: grpc}}]}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: {name}-0, namespace: default}}\n\
         spec: {{address: 127.0.0.1, labels: {{app: {name}}}, ports: {{grpc: {}}}}}\n",
        upstream.addr.port()
    )
}

const DOWN: &str = "destination_service=\"down.default.svc.cluster.local\"";

/// Waits (boundedly) for what a mirrored copy does in the background: nothing signals it.
async fn eventually(mut done: impl FnMut() -> bool) {
    let polled = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), polled)
        .await
        .expect("in time");
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

#[tokio::test]
async fn a_mirror_gets_a_shadow_copy_and_the_client_only_the_primary_answer() {
    // Reads the whole request first, as a gRPC server does: a copy's body is what the request
    // reads from the client (one answered before that abandons its copies).
    let up = Upstream::start(handler(|request: Request<Incoming>| async {
        request.into_body().collect().await.unwrap();
        grpc_reply(vec![message(), status_trailers(0)], false)
    }))
    .await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let down = Upstream::start(handler(move |request: Request<Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let authority = request.uri().authority().map(ToString::to_string);
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let _ = seen_tx.send((authority, body));
            grpc_reply(vec![status_trailers(7)], false)
        }
    }))
    .await;
    let config = down_service(&down) + &up_route("mirrors: [{destination: {host: down}}]");
    let proxy = Proxy::start(&[&up], &config).await;
    let (data, trailers) = finish(proxy.call(&[]).await).await;
    assert_eq!(&data[..], b"\0\0\0\0\x02hi");
    assert_eq!(trailers["grpc-status"], "0", "the primary's answer");
    let (authority, body) = seen.recv().await.unwrap();
    assert_eq!(authority.as_deref(), Some("up.default-shadow:80"));
    assert_eq!(&body[..], b"\0\0\0\0\x02hi", "the client's body, teed");
    assert_eq!(up.requests(), 1);
    // Counted under the mirror's Service, as Envoy's shadow cluster stats, with the body it
    // sent (the client's 7 bytes).
    eventually(|| proxy.count(&[DOWN, "grpc_response_status=\"7\""]) == 1).await;
    let text = proxy.metrics.encode();
    let sizes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("istio_request_bytes_sum{") && l.contains(DOWN))
        .collect();
    assert_eq!(sizes.len(), 1, "{text}");
    assert!(sizes[0].ends_with(" 7.0"), "{}", sizes[0]);
}

#[tokio::test]
async fn a_mirror_that_hangs_or_fails_changes_nothing_for_the_client() {
    let up = Upstream::start(ok_reply()).await;
    let hangs = Upstream::start(handler(|_| futures_util::future::pending())).await;
    let refuses = Upstream::refusing().await;
    let config = down_service(&hangs)
        + &service("refuses", 52, &refuses)
        + &up_route("mirrors: [{destination: {host: down}}, {destination: {host: refuses}}]");
    let proxy = Proxy::start(&[&up], &config).await;
    for _ in 0..3 {
        let call = tokio::time::timeout(Duration::from_secs(5), proxy.call(&[]));
        let (_, trailers) = finish(call.await.expect("not held by a mirror")).await;
        assert_eq!(trailers["grpc-status"], "0");
    }
    eventually(|| hangs.requests() == 3).await;
    // Refused copies are not retried; the primary's calls are counted as they were.
    let refused = "destination_service=\"refuses.default.svc.cluster.local\"";
    eventually(|| proxy.count(&[refused, "grpc_response_status=\"14\""]) == 3).await;
    assert_eq!(refuses.requests(), 3);
    let primary = "destination_service=\"up.default.svc.cluster.local\"";
    assert_eq!(proxy.count(&[primary, "grpc_response_status=\"0\""]), 3);
}

#[tokio::test]
async fn a_mirror_percentage_mirrors_that_share() {
    let up = Upstream::start(ok_reply()).await;
    let down = Upstream::start(ok_reply()).await;
    let half = "mirror: {host: down}, mirrorPercentage: {value: 50}";
    let proxy = Proxy::start(&[&up], &(down_service(&down) + &up_route(half))).await;
    for _ in 0..200 {
        finish(proxy.call(&[]).await).await;
    }
    // Every copy was started before its request was answered: once those that reached the
    // mirror have all been answered, and none more arrives, the count is final.
    let settled = || proxy.count(&[DOWN]) as usize == down.requests();
    eventually(settled).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(settled());
    let mirrored = down.requests();
    assert!((60..=140).contains(&mirrored), "{mirrored} of 200 mirrored");
    assert_eq!(up.requests(), 200);
}
