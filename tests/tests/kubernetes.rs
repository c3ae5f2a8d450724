//! strait's Kubernetes source (`--kubernetes`) against a fake API server
//! (`strait_tests::kube_api`) behind kube's Client:
//! every kind's add, update and delete reaches the model, which is always the model the same
//! objects give when loaded from a file; a dropped watch resumes from its resourceVersion (or a
//! bookmark's) without losing an event; a 410 Gone relists; a bad update keeps the last good.

use std::{path::Path, sync::Arc, time::Duration};

use base64::Engine;
use serde_json::{json, Value};
use strait::config::{
    kubernetes::{watch_cluster, Secrets},
    load_str, ConfigWatch, Model,
};
use strait_tests::kube_api::ApiServer;

/// Long enough for the debounce, a load and, after a 410, kube's backoff before it relists.
const SETTLE: Duration = Duration::from_secs(10);

/// What the API server adds to every object it stores.
fn stored(mut object: Value, uid: u32) -> Value {
    let api_version = object["apiVersion"].clone();
    let metadata = object["metadata"].as_object_mut().expect("metadata");
    metadata.insert(
        "uid".into(),
        json!(format!("6f1c2d3e-0000-4000-8000-{uid:012}")),
    );
    metadata.insert("creationTimestamp".into(), json!("2026-12-01T09:30:00Z"));
    metadata.insert(
        "managedFields".into(),
        json!([{"manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": api_version, "time": "2026-12-01T09:30:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]),
    );
    object
}

fn namespace() -> Value {
    stored(
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "default",
                            "labels": {"kubernetes.io/metadata.name": "default"}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        1,
    )
}

fn service(port: u16) -> Value {
    stored(
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "greeter", "namespace": "default", "labels": {"app": "greeter"}},
               "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.30", "clusterIPs": ["10.96.0.30"],
                        "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                        "internalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                        "selector": {"app": "greeter"},
                        "ports": [{"name": "grpc", "port": port, "protocol": "TCP",
                                   "appProtocol": "grpc", "targetPort": "grpc"}]},
               "status": {"loadBalancer": {}}}),
        2,
    )
}

fn pod(name: &str, version: &str, ip: &str) -> Value {
    stored(
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "generateName": "greeter-7d9f-",
                            "labels": {"app": "greeter", "version": version,
                                       "pod-template-hash": "7d9f"},
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                 "name": "greeter-7d9f", "uid": "1",
                                                 "controller": true, "blockOwnerDeletion": true}]},
               "spec": {"nodeName": "node-1", "restartPolicy": "Always",
                        "serviceAccountName": "default", "dnsPolicy": "ClusterFirst",
                        "containers": [{"name": "greeter", "image": "greeter:1.0",
                                        "imagePullPolicy": "IfNotPresent", "resources": {},
                                        "ports": [{"name": "grpc", "containerPort": 50051,
                                                   "protocol": "TCP"}]}]},
               "status": {"phase": "Running", "hostIP": "192.168.1.10", "podIP": ip,
                          "podIPs": [{"ip": ip}], "startTime": "2026-12-01T09:30:02Z",
                          "qosClass": "BestEffort",
                          "conditions": [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": "2026-12-01T09:30:05Z"}]}}),
        3,
    )
}

fn destination_rule(subsets: &[&str]) -> Value {
    let subsets: Vec<Value> = subsets
        .iter()
        .map(|v| json!({"name": v, "labels": {"version": v}}))
        .collect();
    stored(
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "greeter", "namespace": "default", "generation": 1},
               "spec": {"host": "greeter", "subsets": subsets}}),
        4,
    )
}

fn virtual_service(v1: u32, v2: u32) -> Value {
    let to = |subset: &str, weight: u32| json!({"destination": {"host": "greeter", "subset": subset}, "weight": weight});
    stored(
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "greeter", "namespace": "default", "generation": 1},
               "spec": {"hosts": ["greeter"],
                        "http": [{"route": [to("v1", v1), to("v2", v2)]}]}}),
        5,
    )
}

fn gateway(host: &str) -> Value {
    stored(
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "ingress", "namespace": "default", "generation": 1},
               "spec": {"selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                     "hosts": [host],
                                     "tls": {"mode": "SIMPLE", "credentialName": "greeter-cert"}}]}}),
        6,
    )
}

fn tls_secret() -> Value {
    let issued = rcgen::generate_simple_self_signed(vec!["greeter.example.com".into()]).unwrap();
    let b64 = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    stored(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": "greeter-cert", "namespace": "default"},
               "data": {"tls.crt": b64(issued.cert.pem()),
                        "tls.key": b64(issued.key_pair.serialize_pem())}}),
        7,
    )
}

/// Not a certificate: strait's watch asks only for `kubernetes.io/tls` Secrets.
fn opaque_secret() -> Value {
    stored(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "db-password", "namespace": "default"},
               "data": {"password": "aHVudGVyMg=="}}),
        8,
    )
}

fn workload_entry(address: &str) -> Value {
    stored(
        json!({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
               "metadata": {"name": "vm-1", "namespace": "default", "generation": 1},
               "spec": {"address": address, "labels": {"app": "greeter", "version": "v1"},
                        "ports": {"grpc": 50051}}}),
        9,
    )
}

/// A cluster with one of every kind strait reads.
fn cluster() -> ApiServer {
    let server = ApiServer::default();
    for object in [
        namespace(),
        service(50051),
        pod("greeter-7d9f-a", "v1", "10.244.1.5"),
        pod("greeter-7d9f-b", "v2", "10.244.1.6"),
        destination_rule(&["v1", "v2"]),
        virtual_service(90, 10),
        gateway("greeter.example.com"),
        tls_secret(),
        opaque_secret(),
        workload_entry("10.0.0.9"),
    ] {
        server.apply(object);
    }
    server
}

/// The model the server's objects give when loaded from a file, as `strait run -c` would.
/// The model the server's objects that `watched` selects give when loaded from a file.
fn from_files(server: &ApiServer, watched: impl Fn(&Value) -> bool) -> Model {
    let yaml: String = server
        .objects()
        .into_iter()
        .filter(|object| watched(object))
        .map(|object| format!("---\n{}", serde_yaml::to_string(&object).unwrap()))
        .collect();
    let loaded = load_str(Path::new("cluster.yaml"), &yaml);
    Model::from_resources(&loaded.resources)
}

/// Waits until the watched model is the one the server's objects give from a file; returns it.
async fn settled(config: &mut ConfigWatch, server: &ApiServer) -> Arc<Model> {
    // The watch never asks for Secrets that are no certificates.
    settled_to(
        config,
        from_files(server, |object| object["type"] != "Opaque"),
    )
    .await
}

/// As [`settled`], for a strait that reads no Secrets.
async fn settled_without_secrets(config: &mut ConfigWatch, server: &ApiServer) -> Arc<Model> {
    settled_to(
        config,
        from_files(server, |object| object["kind"] != "Secret"),
    )
    .await
}

async fn settled_to(config: &mut ConfigWatch, expected: Model) -> Arc<Model> {
    let reached = tokio::time::timeout(SETTLE, async {
        loop {
            if **config.models.borrow_and_update() == expected {
                return;
            }
            config.models.changed().await.expect("the watch runs");
        }
    })
    .await;
    let model = config.models.borrow().clone();
    assert!(
        reached.is_ok(),
        "the model did not reach the objects' own after {SETTLE:?}:\nwatched: {model:#?}\nfrom files: {expected:#?}"
    );
    model
}

fn endpoints(model: &Model) -> Vec<String> {
    let service = model
        .service("greeter", "default")
        .expect("the greeter Service");
    service.ports[0]
        .endpoints
        .iter()
        .map(|e| e.addr.to_string())
        .collect()
}

/// A change made on the API server.
type Step = Box<dyn Fn(&ApiServer)>;

#[tokio::test]
async fn every_kind_added_changed_and_deleted_reaches_the_model() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    let model = settled(&mut config, &server).await;
    // The objects mean something: the Pods and the WorkloadEntry are the Service's endpoints,
    // its cluster IP is captured, the Gateway is served with the Secret's certificate.
    assert_eq!(
        endpoints(&model),
        ["10.0.0.9:50051", "10.244.1.5:50051", "10.244.1.6:50051"]
    );
    assert_eq!(
        model.captured_addrs(),
        ["10.96.0.30:50051".parse().unwrap()]
    );
    let ingress = [("istio".to_owned(), "ingressgateway".to_owned())].into();
    let served = model
        .gateways()
        .served(&ingress)
        .next()
        .expect("the Gateway");
    assert_eq!(
        (served.servers.len(), served.unserved.len()),
        (1, 0),
        "{served:?}"
    );
    assert!(
        !server
            .requests_with("fieldSelector=type%3Dkubernetes.io%2Ftls")
            .is_empty(),
        "{:?}",
        server.requests_with("secrets")
    );

    // Each step changes the model, and the model is then the objects' own.
    let steps: Vec<(&str, Step)> = vec![
        (
            "add a Pod",
            Box::new(|s| drop(s.apply(pod("greeter-7d9f-c", "v1", "10.244.2.7")))),
        ),
        (
            "change a Pod",
            Box::new(|s| drop(s.apply(pod("greeter-7d9f-a", "v1", "10.244.1.50")))),
        ),
        (
            "delete a Pod",
            Box::new(|s| s.delete(&pod("greeter-7d9f-b", "v2", ""))),
        ),
        (
            "change the Service",
            Box::new(|s| drop(s.apply(service(50052)))),
        ),
        (
            "change the VirtualService",
            Box::new(|s| drop(s.apply(virtual_service(50, 50)))),
        ),
        (
            "delete the VirtualService",
            Box::new(|s| s.delete(&virtual_service(0, 0))),
        ),
        (
            "change the DestinationRule",
            Box::new(|s| drop(s.apply(destination_rule(&["v1"])))),
        ),
        (
            "delete the DestinationRule",
            Box::new(|s| s.delete(&destination_rule(&[]))),
        ),
        (
            "change the WorkloadEntry",
            Box::new(|s| drop(s.apply(workload_entry("10.0.0.10")))),
        ),
        (
            "delete the WorkloadEntry",
            Box::new(|s| s.delete(&workload_entry(""))),
        ),
        (
            "delete the TLS Secret",
            Box::new(|s| s.delete(&tls_secret())),
        ),
        (
            "add the TLS Secret",
            Box::new(|s| drop(s.apply(tls_secret()))),
        ),
        (
            "change the Gateway",
            Box::new(|s| drop(s.apply(gateway("api.example.com")))),
        ),
        ("delete the Gateway", Box::new(|s| s.delete(&gateway("")))),
        ("delete the Service", Box::new(|s| s.delete(&service(0)))),
    ];
    let mut previous = model;
    for (step, change) in steps {
        change(&server);
        let model = settled(&mut config, &server).await;
        assert!(*model != *previous, "{step}: the model did not change");
        previous = model;
    }
    assert_eq!(previous.captured_addrs(), [], "the Service is gone");
}

#[tokio::test]
async fn a_dropped_watch_resumes_from_its_version_without_losing_an_event() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    settled(&mut config, &server).await;
    // The watch ends and, before it is made again, a Pod comes and another goes: the resumed
    // watch must replay both from the server's history.
    server.drop_watches();
    server.apply(pod("greeter-7d9f-c", "v1", "10.244.2.7"));
    server.delete(&pod("greeter-7d9f-a", "v1", ""));
    let model = settled(&mut config, &server).await;
    assert_eq!(
        endpoints(&model),
        ["10.0.0.9:50051", "10.244.1.6:50051", "10.244.2.7:50051"]
    );
    let lists = server.requests_with("/api/v1/pods?");
    let lists: Vec<_> = lists.iter().filter(|r| !r.contains("watch=true")).collect();
    assert_eq!(lists.len(), 1, "resumed, not listed again: {lists:?}");
    let watches = server.requests_with("/api/v1/pods?").len() - lists.len();
    assert!(watches >= 2, "the watch was not made again");
}

#[tokio::test]
async fn a_bookmark_moves_where_a_dropped_watch_resumes() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    settled(&mut config, &server).await;
    let listed_at = revision(&server.apply(virtual_service(80, 20))) - 1;
    // Changes elsewhere move the cluster's revision past the Pods' last event...
    let bookmarked = revision(&server.apply(workload_entry("10.0.0.11")));
    settled(&mut config, &server).await;
    // ...which the Pods' watch learns from a bookmark, the last line before its stream ends.
    server.bookmark();
    server.drop_watches();
    server.apply(pod("greeter-7d9f-c", "v1", "10.244.2.7"));
    settled(&mut config, &server).await;
    let watches = server.requests_with("/api/v1/pods?");
    let watches: Vec<_> = watches
        .iter()
        .filter(|r| r.contains("watch=true"))
        .collect();
    let from = |revision: u64| {
        let pair = format!("resourceVersion={revision}");
        move |request: &&String| request.split(['?', '&']).any(|part| part == pair)
    };
    assert!(
        from(listed_at)(&watches[0]),
        "the first watch starts at the list's revision: {watches:?}"
    );
    assert!(
        watches[1..].iter().any(from(bookmarked)),
        "resumed from the bookmark's revision {bookmarked}: {watches:?}"
    );
}

fn revision(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a resourceVersion")
}

#[tokio::test]
async fn after_410_gone_it_lists_again_and_sees_what_went_meanwhile() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    settled(&mut config, &server).await;
    server.drop_watches();
    server.delete(&pod("greeter-7d9f-b", "v2", ""));
    // The history that would replay the deletion is gone: the resumed watch gets 410 Gone.
    server.compact();
    let model = settled(&mut config, &server).await;
    assert_eq!(endpoints(&model), ["10.0.0.9:50051", "10.244.1.5:50051"]);
    let requests = server.requests_with("/api/v1/pods?");
    let lists = requests
        .iter()
        .filter(|r| !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 2, "listed again after 410 Gone: {requests:?}");
}

#[tokio::test]
async fn an_unreadable_update_keeps_the_objects_last_good_version() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    settled(&mut config, &server).await;
    let mut broken = service(50051);
    broken["spec"]["ports"] = json!("all of them");
    server.apply(broken);
    // A later change shows the update was seen.
    server.apply(pod("greeter-7d9f-c", "v1", "10.244.2.7"));
    let arrived = tokio::time::timeout(SETTLE, async {
        loop {
            let model = config.models.borrow_and_update().clone();
            if model.service("greeter", "default").is_some_and(|s| {
                s.ports[0]
                    .endpoints
                    .iter()
                    .any(|e| e.addr.to_string() == "10.244.2.7:50051")
            }) {
                return model;
            }
            config.models.changed().await.unwrap();
        }
    })
    .await
    .expect("the new Pod reached the model");
    let service = arrived.service("greeter", "default").unwrap();
    assert_eq!(
        service.ports[0].port, 50051,
        "the Service's last good version"
    );
}

/// A cluster without Istio's CRDs: strait serves its Services, and reads Istio's kinds once
/// they are installed.
#[tokio::test]
async fn a_kind_the_cluster_does_not_serve_is_awaited_not_required() {
    let server = ApiServer::default();
    server.without("DestinationRule");
    server.apply(namespace());
    server.apply(service(50051));
    server.apply(pod("greeter-7d9f-a", "v1", "10.244.1.5"));
    let mut config = watch_cluster(server.client(), Secrets::Read).await;
    let model = settled(&mut config, &server).await;
    assert_eq!(endpoints(&model), ["10.244.1.5:50051"]);
    server.install("DestinationRule");
    server.apply(destination_rule(&["v1"]));
    let model = settled(&mut config, &server).await;
    let port = &model.service("greeter", "default").unwrap().ports[0];
    assert!(port.subsets.contains_key("v1"), "{:?}", port.subsets.keys());
}

/// Without Gateways to serve, strait never asks for Secrets.
#[tokio::test]
async fn secrets_are_read_only_for_gateways() {
    let server = cluster();
    let mut config = watch_cluster(server.client(), Secrets::Ignored).await;
    settled_without_secrets(&mut config, &server).await;
    assert_eq!(server.requests_with("secrets"), Vec::<String>::new());
}

mod in_the_lab {
    //! `strait run --kubernetes --enroll ambient` in a lab, on the fake API server over HTTP:
    //! what the API says reaches the kernel's maps. A Service deleted and added again stops and
    //! resumes capture (the Service map); a namespace relabelled and a pod labelled move capture
    //! from one pod to another (the enrolled cgroups).

    use std::{fs, time::Duration};

    use anyhow::Result;
    use serde_json::{json, Value};
    use strait_tests::{
        kube_api::ApiServer,
        lab::{self, Lab, Pod, Source},
    };

    const VIP: &str = "10.96.0.10";
    const GREETER: &str = "10.96.0.10:80";
    const NODE: &str = "lab-node";
    /// Until a change on the API server shows in what the kernel captures.
    const FOLLOW: Duration = Duration::from_secs(10);

    fn namespace(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": labels}})
    }

    fn service() -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "greeter", "namespace": "default"},
               "spec": {"clusterIP": VIP, "selector": {"app": "greeter"},
                        "ports": [{"name": "tcp-greeter", "port": 80, "targetPort": 8080}]}})
    }

    fn pod(pod: &Pod, namespace: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod.name, "namespace": namespace, "uid": pod.uid,
                            "labels": labels},
               "spec": {"nodeName": NODE},
               "status": {"phase": "Running", "podIP": pod.ip.to_string()}})
    }

    /// Waits until calls from `member` and `other` are captured as `expected` says.
    fn follows(lab: &mut Lab, (member, other): (&Pod, &Pod), expected: (bool, bool)) -> bool {
        lab::wait_until(FOLLOW, || {
            let now = (
                lab.is_captured(member, GREETER).ok(),
                lab.is_captured(other, GREETER).ok(),
            );
            now == (Some(expected.0), Some(expected.1))
        })
    }

    #[test]
    fn what_the_api_says_reaches_the_kernel() -> Result<()> {
        if !lab::require_privileges("what_the_api_says_reaches_the_kernel") {
            return Ok(());
        }
        let mut lab = Lab::new("kube")?;
        let server = lab.add_pod("greeter-0")?;
        lab.serve_agent(&server, 8080, "greeter-0")?;
        let member = lab.add_pod("member")?;
        let other = lab.add_pod("other")?;

        let api = ApiServer::default();
        api.apply(namespace(
            "shop",
            json!({"istio.io/dataplane-mode": "ambient"}),
        ));
        api.apply(namespace("plain", json!({})));
        api.apply(service());
        api.apply(pod(&server, "default", json!({"app": "greeter"})));
        api.apply(pod(&member, "shop", json!({"app": "member"})));
        api.apply(pod(&other, "plain", json!({"app": "other"})));

        // The API server listens where strait runs: in the lab's node namespace.
        let runtime = tokio::runtime::Runtime::new()?;
        let _in_runtime = runtime.enter();
        let listener = lab.in_node_netns(|| Ok(std::net::TcpListener::bind("127.0.0.1:0")?))?;
        let addr = listener.local_addr()?;
        api.serve(listener)?;
        let dir = std::env::temp_dir().join(format!("strait-kube-lab-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let kubeconfig = ApiServer::kubeconfig(&dir, addr)?;
        let args = ["--enroll", "ambient", "--node-name", NODE];
        let _strait = lab.start_strait_from(
            Source::Kubernetes {
                kubeconfig: &kubeconfig,
            },
            &args,
        )?;
        let pods = (&member, &other);

        assert!(
            follows(&mut lab, pods, (true, false)),
            "the shop pod alone is captured"
        );
        api.delete(&service());
        assert!(
            follows(&mut lab, pods, (false, false)),
            "a deleted Service is not captured"
        );
        api.apply(service());
        assert!(
            follows(&mut lab, pods, (true, false)),
            "an added Service is captured"
        );
        api.apply(namespace("shop", json!({})));
        api.apply(pod(
            &other,
            "plain",
            json!({"istio.io/dataplane-mode": "ambient"}),
        ));
        assert!(
            follows(&mut lab, pods, (false, true)),
            "enrollment follows the labels"
        );
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}
