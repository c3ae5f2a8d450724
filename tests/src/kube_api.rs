//! A fake Kubernetes API server, for strait's `--kubernetes` source: in process behind kube's own
//! `Client` (over a tower service, kube-rs's way of mocking the API), or over HTTP for a strait
//! process (`serve`, with a kubeconfig pointing at it). It answers what kube's watcher asks as
//! the API server does, with the JSON the API server sends: lists with a resourceVersion and items without
//! their kind, watches as a stream of `{"type": ..., "object": ...}` lines (ADDED, MODIFIED,
//! DELETED, BOOKMARK), resumed from a resourceVersion out of its history, and a watch from a
//! version it no longer has answered with the ERROR event of a 410 Gone `Status`.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::mpsc;

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Clone, Default)]
pub struct ApiServer {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The cluster's resourceVersion: one counter across every collection, as etcd's.
    revision: u64,
    /// Watches that resume from before this get 410 Gone.
    compacted: u64,
    collections: HashMap<String, Collection>,
    /// Every request's path and query, in order.
    requests: Vec<String>,
    /// Kinds not served (their CRD not installed): 404 Not Found.
    absent: Vec<&'static str>,
}

/// Objects of one kind, e.g. `/api/v1/pods`.
#[derive(Default)]
struct Collection {
    objects: BTreeMap<(String, String), Value>,
    /// Each change: its revision and its watch event.
    history: Vec<(u64, Value)>,
    /// Open watches, with the field selector each asked for.
    watches: Vec<(Option<String>, mpsc::UnboundedSender<Bytes>)>,
}

impl ApiServer {
    /// A kube `Client` whose requests this server answers, in process.
    pub fn client(&self) -> Client {
        let server = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let response = server.answer(request.uri());
            async move { Ok::<_, Infallible>(response) }
        });
        Client::new(service, "default")
    }

    /// Serves HTTP/1.1 on `listener` (made wherever the client is: a lab's node namespace)
    /// until the runtime it is spawned on ends.
    pub fn serve(&self, listener: std::net::TcpListener) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let server = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let response = server.answer(request.uri());
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(async move {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // A watch ends when its client goes: not an error here.
                    let _ = connection.await;
                });
            }
        });
        Ok(())
    }

    /// A kubeconfig in `dir` pointing at this server on `addr` (plain HTTP, a token user).
    pub fn kubeconfig(dir: &Path, addr: SocketAddr) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: lab\n\
             clusters: [{{name: lab, cluster: {{server: 'http://{addr}'}}}}]\n\
             users: [{{name: lab, user: {{token: lab}}}}]\n\
             contexts: [{{name: lab, context: {{cluster: lab, user: lab}}}}]\n"
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Creates or replaces `object` (with its `apiVersion`, `kind` and metadata), as `kubectl
    /// apply` would; returns it with the resourceVersion it got.
    pub fn apply(&self, mut object: Value) -> Value {
        let mut state = self.lock();
        state.revision += 1;
        let revision = state.revision;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let (path, key) = place(&object);
        let collection = state.collections.entry(path).or_default();
        let kind = match collection.objects.insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        collection.publish(revision, json!({"type": kind, "object": object}));
        object
    }

    /// Deletes the object `object` names (by its kind, namespace and name).
    pub fn delete(&self, object: &Value) {
        let mut state = self.lock();
        state.revision += 1;
        let revision = state.revision;
        let (path, key) = place(object);
        let collection = state.collections.entry(path).or_default();
        if let Some(mut gone) = collection.objects.remove(&key) {
            gone["metadata"]["resourceVersion"] = json!(revision.to_string());
            collection.publish(revision, json!({"type": "DELETED", "object": gone}));
        }
    }

    /// A BOOKMARK on every open watch: the revision the cluster is at.
    pub fn bookmark(&self) {
        let state = self.lock();
        let revision = state.revision.to_string();
        for (path, collection) in &state.collections {
            let (api_version, kind) = kind_of(path);
            let event = json!({"type": "BOOKMARK", "object": {
                "apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": revision}}});
            collection.send(&event);
        }
    }

    /// Ends every open watch, as a load balancer or an API server restart does.
    pub fn drop_watches(&self) {
        for collection in self.lock().collections.values_mut() {
            collection.watches.clear();
        }
    }

    /// Forgets the history: a watch resuming from before now gets 410 Gone.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.compacted = state.revision;
        for collection in state.collections.values_mut() {
            collection.history.clear();
        }
    }

    /// Stops serving `kind`, as when its CRD is not installed.
    pub fn without(&self, kind: &str) {
        let path = collection(kind);
        self.lock().absent.push(path);
    }

    /// Serves `kind` again, as when its CRD is installed.
    pub fn install(&self, kind: &str) {
        let path = collection(kind);
        self.lock().absent.retain(|absent| *absent != path);
    }

    /// Requests so far whose path and query contain `part`.
    pub fn requests_with(&self, part: &str) -> Vec<String> {
        let state = self.lock();
        state
            .requests
            .iter()
            .filter(|r| r.contains(part))
            .cloned()
            .collect()
    }

    /// Every object, as a multi-document YAML file would hold them.
    pub fn objects(&self) -> Vec<Value> {
        let state = self.lock();
        let mut paths: Vec<_> = state.collections.keys().collect();
        paths.sort();
        paths
            .into_iter()
            .flat_map(|path| state.collections[path].objects.values().cloned())
            .collect()
    }

    fn answer(&self, uri: &Uri) -> Response<Body> {
        let query: HashMap<String, String> =
            form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let mut state = self.lock();
        state.requests.push(uri.to_string());
        let path = uri.path().to_owned();
        let served = COLLECTIONS.iter().any(|(_, p)| *p == path);
        if !served || state.absent.contains(&path.as_str()) {
            return not_found();
        }
        if query.get("watch").is_some_and(|w| w == "true") {
            let from: u64 = query
                .get("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            return state.watch(&path, from, query.get("fieldSelector").cloned());
        }
        state.list(&path, query.get("fieldSelector"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn list(&mut self, path: &str, fields: Option<&String>) -> Response<Body> {
        let (api_version, kind) = kind_of(path);
        let items: Vec<Value> = self
            .collections
            .get(path)
            .into_iter()
            .flat_map(|c| c.objects.values())
            .filter(|object| fields.is_none_or(|f| selects(f, object)))
            .map(|object| {
                // List items come without their kind, as from the API server.
                let mut item = object.clone();
                let map = item.as_object_mut().expect("objects are JSON objects");
                map.remove("apiVersion");
                map.remove("kind");
                item
            })
            .collect();
        let list = json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": items,
        });
        let body = Full::new(Bytes::from(list.to_string())).boxed_unsync();
        Response::new(body)
    }

    fn watch(&mut self, path: &str, from: u64, fields: Option<String>) -> Response<Body> {
        let (events, receiver) = mpsc::unbounded_channel();
        if from < self.compacted {
            let gone = json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("too old resource version: {from} ({})", self.compacted),
                "reason": "Expired", "code": 410}});
            let _ = events.send(line(&gone));
        } else {
            let collection = self.collections.entry(path.to_owned()).or_default();
            let missed = collection.history.iter().filter(|(rv, _)| *rv > from);
            for (_, event) in missed.filter(|(_, event)| wanted(fields.as_ref(), event)) {
                let _ = events.send(line(event));
            }
            collection.watches.push((fields, events));
        }
        let frames = stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok(Frame::data(chunk)), receiver))
        });
        let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
        *response.status_mut() = StatusCode::OK;
        response
    }
}

impl Collection {
    fn publish(&mut self, revision: u64, event: Value) {
        self.send(&event);
        self.history.push((revision, event));
    }

    fn send(&self, event: &Value) {
        for (fields, watch) in &self.watches {
            if wanted(fields.as_ref(), event) {
                let _ = watch.send(line(event));
            }
        }
    }
}

/// Whether a watch with `fields` gets `event` (a bookmark goes to every watch).
fn wanted(fields: Option<&String>, event: &Value) -> bool {
    event["type"] == "BOOKMARK" || fields.is_none_or(|f| selects(f, &event["object"]))
}

fn line(event: &Value) -> Bytes {
    Bytes::from(format!("{event}\n"))
}

/// The API server's answer for a resource it does not serve.
fn not_found() -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": "the server could not find the requested resource",
        "reason": "NotFound", "details": {}, "code": 404});
    let mut response = Response::new(Full::new(Bytes::from(status.to_string())).boxed_unsync());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Where `kind` is served.
fn collection(kind: &str) -> &'static str {
    COLLECTIONS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, path)| *path)
        .unwrap_or_else(|| panic!("no collection serves {kind}"))
}

/// The collection path and key of an object: `/api/v1/pods`, (namespace, name).
fn place(object: &Value) -> (String, (String, String)) {
    let path = collection(object["kind"].as_str().expect("kind"));
    let metadata = &object["metadata"];
    let namespace = metadata["namespace"].as_str().unwrap_or_default();
    let name = metadata["name"].as_str().expect("metadata.name");
    (path.to_string(), (namespace.to_owned(), name.to_owned()))
}

/// The apiVersion and kind served at a collection path.
fn kind_of(path: &str) -> (String, String) {
    let (kind, _) = COLLECTIONS
        .iter()
        .find(|(_, p)| *p == path)
        .unwrap_or_else(|| panic!("an unexpected collection {path}"));
    let api_version = path
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/")
        .rsplit_once('/')
        .expect("a collection path")
        .0;
    (api_version.to_owned(), kind.to_string())
}

/// What the API server serves, and where: the resource names are the API's own, not derived.
const COLLECTIONS: [(&str, &str); 8] = [
    ("Namespace", "/api/v1/namespaces"),
    ("Service", "/api/v1/services"),
    ("Pod", "/api/v1/pods"),
    ("Secret", "/api/v1/secrets"),
    (
        "VirtualService",
        "/apis/networking.istio.io/v1/virtualservices",
    ),
    (
        "DestinationRule",
        "/apis/networking.istio.io/v1/destinationrules",
    ),
    ("Gateway", "/apis/networking.istio.io/v1/gateways"),
    (
        "WorkloadEntry",
        "/apis/networking.istio.io/v1/workloadentries",
    ),
];

/// `type=kubernetes.io/tls`, the one field selector strait sends.
fn selects(selector: &str, object: &Value) -> bool {
    selector.split(',').all(|term| match term.split_once('=') {
        Some(("type", value)) => object["type"] == value,
        _ => panic!("an unexpected field selector {selector}"),
    })
}
