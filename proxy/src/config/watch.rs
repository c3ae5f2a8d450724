//! Following `--config` as it changes: load, publish the model, reload on change.
//!
//! Files are watched through their parent directories, so that a Kubernetes ConfigMap volume's
//! symlink swap (`..data` replaced by a rename) and an editor's write-to-temp-then-rename are
//! seen like an in-place write. Events are debounced ([`DEBOUNCE`]) so a burst is one reload.

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use notify::{
    event::{AccessKind, AccessMode},
    EventKind, RecommendedWatcher, RecursiveMode, Watcher,
};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::{load, LoadError, Model};

/// Quiet time after the last change before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Reload outcomes, for telemetry.
#[derive(Debug, Default)]
pub struct ReloadStats {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl ReloadStats {
    /// Reloads whose model was published (or was unchanged).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Reloads refused, the last good model kept.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    pub(super) fn count(&self, accepted: bool) {
        let counter = if accepted {
            &self.accepted
        } else {
            &self.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The live config: the current model (`models.borrow()`, `models.changed()`) and reload counts.
/// The watch runs until every clone of `models` is dropped.
#[derive(Clone, Debug)]
pub struct ConfigWatch {
    pub models: watch::Receiver<Arc<Model>>,
    pub stats: Arc<ReloadStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("starting the file watcher: {0}")]
    Watcher(#[source] notify::Error),
    #[error("watching {}: {source}", .path.display())]
    Notify {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Loads `paths`, logs every diagnostic, and follows them. Must be called within a tokio runtime.
///
/// At start, a path that cannot be read is an error; documents with errors are dropped one by
/// one (logged as ignored) and the model is built from the rest. On reload, the same happens,
/// except that the reload is rejected and the last good model kept when a path cannot be read
/// or a document cannot be decoded (not YAML, no apiVersion or kind, a field of the wrong type):
/// that is what a half-saved edit looks like, and applying it would take Services away.
pub fn watch(paths: Vec<PathBuf>) -> Result<ConfigWatch, WatchError> {
    // Watch before the first load, so a change in between is not missed.
    let (events_tx, events) = mpsc::unbounded_channel();
    let watcher = watch_paths(&paths, move || {
        // The receiver goes only when the task ends, after which nobody listens.
        let _ = events_tx.send(());
    });
    // A path that is missing fails both: report it as the load's error, which says so plainly.
    let loaded = load(&paths)?;
    let watcher = watcher?;
    loaded.log();
    let model = Model::from_resources(&loaded.resources);
    Ok(start(model, "files", |models, stats| {
        follow(paths, watcher, events, models, stats)
    }))
}

/// Publishes a source's first model and runs `follow`, which publishes the next ones, in a
/// task of its own.
pub(super) fn start<F>(
    model: Model,
    source: &'static str,
    follow: impl FnOnce(watch::Sender<Arc<Model>>, Arc<ReloadStats>) -> F,
) -> ConfigWatch
where
    F: Future<Output = ()> + Send + 'static,
{
    info!(
        source,
        services = model.services().count(),
        captured = model.captured_addrs().len(),
        "config loaded"
    );
    let (models_tx, models) = watch::channel(Arc::new(model));
    let stats = Arc::<ReloadStats>::default();
    tokio::spawn(follow(models_tx, stats.clone()));
    ConfigWatch { models, stats }
}

fn watch_paths(
    paths: &[PathBuf],
    on_change: impl Fn() + Send + 'static,
) -> Result<RecommendedWatcher, WatchError> {
    let relevant = Relevance::new(paths);
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event)
                if changes_content(&event.kind)
                    && event.paths.iter().any(|path| relevant.covers(path)) =>
            {
                on_change()
            }
            Ok(_) => {}
            // Lost events (queue overflow): reload to be sure.
            Err(_) => on_change(),
        })
        .map_err(WatchError::Watcher)?;
    for (path, mode) in watched_dirs(paths) {
        watcher
            .watch(&path, mode)
            .map_err(|source| WatchError::Notify { path, source })?;
    }
    Ok(watcher)
}

/// Opening, reading and closing a file are not changes; reading them must not be, or every
/// reload (which reads the files) would cause the next.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Directories are watched recursively; a file through its parent directory.
fn watched_dirs(paths: &[PathBuf]) -> Vec<(PathBuf, RecursiveMode)> {
    paths
        .iter()
        .map(|path| {
            if path.is_dir() {
                (path.clone(), RecursiveMode::Recursive)
            } else {
                (parent_dir(path), RecursiveMode::NonRecursive)
            }
        })
        .collect()
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Which events matter: anything under a config directory; in a config file's directory, that
/// file and Kubernetes' `..data` machinery, not the neighbours.
struct Relevance {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Relevance {
    fn new(paths: &[PathBuf]) -> Self {
        let (dirs, files) = paths
            .iter()
            .map(|path| absolute(path))
            .partition(|path| path.is_dir());
        Self { dirs, files }
    }

    /// Event paths are relative when the watched path was.
    fn covers(&self, path: &Path) -> bool {
        let path = &absolute(path);
        let atomic_writer = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with(".."));
        self.dirs.iter().any(|dir| path.starts_with(dir))
            || self
                .files
                .iter()
                .any(|file| path == file || (atomic_writer && path.parent() == file.parent()))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Waits for a change, then until the changes stop ([`DEBOUNCE`]): a burst is one reload.
/// False when nobody follows the model any more, or nobody reports changes.
pub(super) async fn next_burst(
    changes: &mut mpsc::UnboundedReceiver<()>,
    models: &watch::Sender<Arc<Model>>,
) -> bool {
    tokio::select! {
        _ = models.closed() => return false,
        change = changes.recv() => if change.is_none() { return false },
    }
    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {}
    true
}

/// Reloads after each burst of changes until nobody holds a model receiver. Owns the watcher,
/// so watching stops with it.
async fn follow(
    paths: Vec<PathBuf>,
    _watcher: RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<()>,
    models: watch::Sender<Arc<Model>>,
    stats: Arc<ReloadStats>,
) {
    while next_burst(&mut events, &models).await {
        let reload_paths = paths.clone();
        let outcome = tokio::task::spawn_blocking(move || reload(&reload_paths))
            .await
            .unwrap_or_else(|err| {
                error!(%err, "config reload failed: keeping the last good config");
                None
            });
        stats.count(outcome.is_some());
        if let Some(model) = outcome {
            models.send_if_modified(|current| publish(current, model));
        }
    }
}

/// The new model, or `None` when the reload is rejected. Logs why.
fn reload(paths: &[PathBuf]) -> Option<Model> {
    let loaded = match load(paths) {
        Ok(loaded) => loaded,
        Err(err) => {
            warn!(%err, "config reload rejected: keeping the last good config");
            return None;
        }
    };
    loaded.log();
    if !loaded.is_complete() {
        warn!("config reload rejected: a document could not be read; keeping the last good config");
        return None;
    }
    Some(Model::from_resources(&loaded.resources))
}

/// Replaces the model when it changed, so an unchanged reload wakes nobody.
pub(super) fn publish(current: &mut Arc<Model>, model: Model) -> bool {
    if **current == model {
        return false;
    }
    info!(
        services = model.services().count(),
        captured = model.captured_addrs().len(),
        "config reloaded"
    );
    *current = Arc::new(model);
    true
}

#[cfg(test)]
mod tests;
