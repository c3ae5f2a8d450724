//! `strait run --kubernetes`: the config from the API server instead of files. One watcher per
//! kind strait reads (kube-rs: list, then watch from that resourceVersion with bookmarks; after
//! a dropped watch it resumes from the last version seen, and after 410 Gone it lists again);
//! every object is rendered as the document `kubectl get -o json` would print and loaded by the
//! same loader the files go through, so one model has two sources and one set of rules.
//!
//! Objects are kept last-good one by one: an update that cannot be read as its kind is logged
//! and the object's previous version stays. A relist replaces a kind's objects whole, so an
//! object deleted while the watch was down goes too.

mod objects;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use futures_util::StreamExt;
use kube::{
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{
        watcher::{self, Event},
        WatchStreamExt,
    },
    Api, Client,
};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use self::objects::Objects;
use super::{
    kinds::Kind,
    watch::{next_burst, publish, start, ConfigWatch, ReloadStats},
    Model,
};

/// The kinds strait always reads from the API, and how to ask for them.
const WATCHED: [Watched; 7] = [
    Watched::core(Kind::Namespace),
    Watched::core(Kind::Service),
    Watched::core(Kind::Pod),
    Watched::istio(Kind::VirtualService),
    Watched::istio(Kind::DestinationRule),
    Watched::istio(Kind::Gateway),
    Watched::istio(Kind::WorkloadEntry),
];

/// Gateway certificates: read only when this strait serves Gateways. RBAC cannot narrow the
/// Secrets strait may read, but the watch can narrow what it asks for.
const TLS_SECRETS: Watched = Watched {
    kind: Kind::Secret,
    group: "",
    fields: Some("type=kubernetes.io/tls"),
};

/// Whether strait reads TLS Secrets (for the Gateways it serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    Read,
    Ignored,
}

/// Istio has served its networking kinds at `v1` since 1.22.
const ISTIO_VERSION: &str = "v1";

#[derive(Clone, Copy, Debug)]
struct Watched {
    kind: Kind,
    group: &'static str,
    /// A field selector, sent with the list and the watch.
    fields: Option<&'static str>,
}

impl Watched {
    const fn core(kind: Kind) -> Self {
        Self {
            kind,
            group: "",
            fields: None,
        }
    }

    const fn istio(kind: Kind) -> Self {
        Self {
            kind,
            group: "networking.istio.io",
            fields: None,
        }
    }

    fn resource(self) -> ApiResource {
        let version = if self.group.is_empty() {
            "v1"
        } else {
            ISTIO_VERSION
        };
        let gvk = GroupVersionKind::gvk(self.group, version, self.kind.as_str());
        ApiResource::from_gvk(&gvk)
    }

    fn config(self) -> watcher::Config {
        let config = watcher::Config::default();
        match self.fields {
            Some(fields) => config.fields(fields),
            None => config,
        }
    }
}

/// Follows every watched kind through `client`. Returns once each kind has been listed (or
/// found not served or not allowed: strait then serves without it, and keeps asking), with the
/// model built from all of them; the model follows every change after that, until every clone
/// of its receiver is dropped.
pub async fn watch_cluster(client: Client, secrets: Secrets) -> ConfigWatch {
    let objects = Arc::new(Mutex::new(Objects::default()));
    let (changes_tx, mut changes) = mpsc::unbounded_channel();
    let (synced_tx, mut synced) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let kinds: Vec<Watched> = match secrets {
        Secrets::Read => WATCHED.into_iter().chain([TLS_SECRETS]).collect(),
        Secrets::Ignored => WATCHED.to_vec(),
    };
    for &watched in &kinds {
        let api = Api::all_with(client.clone(), &watched.resource());
        let follow = follow_kind(
            watched,
            api,
            objects.clone(),
            changes_tx.clone(),
            synced_tx.clone(),
        );
        tasks.push(tokio::spawn(follow));
    }
    for _ in &kinds {
        // A task ends only when its stream does, which kube's watcher never does.
        let _ = synced.recv().await;
    }
    // What the first lists showed is in the first model; their change notices are spent.
    while changes.try_recv().is_ok() {}
    let mut builder = Builder::new(objects);
    let model = builder.build();
    start(model, "kubernetes", |models, stats| {
        follow_changes(builder, changes, models, stats, Watchers(tasks))
    })
}

/// The watch tasks, aborted when the model is no longer followed.
struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Applies one kind's watch events to `objects`, telling `changes` after each and `synced`
/// after the first complete list.
async fn follow_kind(
    watched: Watched,
    api: Api<DynamicObject>,
    objects: Arc<Mutex<Objects>>,
    changes: mpsc::UnboundedSender<()>,
    synced: mpsc::UnboundedSender<()>,
) {
    let kind = watched.kind;
    let mut listing = Vec::new();
    let mut first_sync = Some(synced);
    let mut events = watcher::watcher(api, watched.config())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Init) => {
                listing.clear();
                false
            }
            Ok(Event::InitApply(object)) => {
                listing.push(object);
                false
            }
            Ok(Event::InitDone) => {
                lock(&objects).replace(kind, std::mem::take(&mut listing));
                if let Some(synced) = first_sync.take() {
                    let _ = synced.send(());
                }
                true
            }
            Ok(Event::Apply(object)) => lock(&objects).apply(kind, object),
            Ok(Event::Delete(object)) => lock(&objects).delete(kind, &object),
            Err(err) if first_sync.is_some() && unavailable(&err) => {
                // A CRD not installed, or a kind RBAC does not grant: serve without it until
                // a later list succeeds (the backoff paces the tries).
                warn!(%kind, %err, "cannot list this kind: serving without it, and trying again");
                lock(&objects).replace(kind, Vec::new());
                if let Some(synced) = first_sync.take() {
                    let _ = synced.send(());
                }
                true
            }
            Err(err) => {
                // The backoff paces the retry; a 410 Gone ends in a fresh list.
                warn!(%kind, %err, "Kubernetes watch failed; resuming");
                false
            }
        };
        if changed && changes.send(()).is_err() {
            return;
        }
    }
}

/// Whether a list failed because the kind is not served (404: its CRD is not installed) or not
/// allowed (403), rather than for a passing reason.
fn unavailable(err: &watcher::Error) -> bool {
    matches!(
        err,
        watcher::Error::InitialListFailed(kube::Error::Api(status)) if matches!(status.code, 403 | 404)
    )
}

/// Rebuilds the model after each burst of changes; ends when nobody follows the model.
async fn follow_changes(
    mut builder: Builder,
    mut changes: mpsc::UnboundedReceiver<()>,
    models: watch::Sender<Arc<Model>>,
    stats: Arc<ReloadStats>,
    _watchers: Watchers,
) {
    while next_burst(&mut changes, &models).await {
        let model = builder.build();
        stats.count(true);
        models.send_if_modified(|current| publish(current, model));
    }
}

/// Builds the model of every object as it stands, logging each problem once: in a cluster
/// the objects change all the time, and a problem is news only the first time.
struct Builder {
    objects: Arc<Mutex<Objects>>,
    /// The last build's problems, as logged.
    logged: HashSet<String>,
}

impl Builder {
    fn new(objects: Arc<Mutex<Objects>>) -> Self {
        Self {
            objects,
            logged: HashSet::new(),
        }
    }

    fn build(&mut self) -> Model {
        let loaded = lock(&self.objects).load();
        let mut problems = HashSet::with_capacity(loaded.diagnostics.len());
        for diagnostic in &loaded.diagnostics {
            let line = diagnostic.to_string();
            if !self.logged.contains(&line) {
                diagnostic.log();
            }
            problems.insert(line);
        }
        self.logged = problems;
        Model::from_resources(&loaded.resources)
    }
}

fn lock(objects: &Mutex<Objects>) -> MutexGuard<'_, Objects> {
    objects.lock().unwrap_or_else(PoisonError::into_inner)
}
