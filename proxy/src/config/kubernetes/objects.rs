//! The latest good version of every watched object, kept as the document the loader reads.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use kube::{
    api::{DynamicObject, TypeMeta},
    ResourceExt,
};
use tracing::warn;

use crate::config::{assemble, kinds::Kind, Checked, Loaded};

/// An object's place: namespace (empty for a cluster-scoped kind), then name.
type Key = (String, String);

/// One object as a document, read and checked when it came (not at every rebuild).
#[derive(Clone, Debug)]
struct Document {
    /// The object as JSON (a YAML document too).
    text: String,
    checked: Checked,
}

#[derive(Debug, Default)]
pub(super) struct Objects {
    by_kind: BTreeMap<Kind, BTreeMap<Key, Document>>,
}

impl Objects {
    /// A complete list of `kind`: it replaces what was known, objects gone from it go.
    pub fn replace(&mut self, kind: Kind, list: Vec<DynamicObject>) {
        let mut previous = self.by_kind.remove(&kind).unwrap_or_default();
        let mut current = BTreeMap::new();
        for object in list {
            let rendered = render(kind, object);
            let key = rendered.key.clone();
            if let (Some(kept), _) = rendered.into_document(previous.remove(&key)) {
                current.insert(key, kept);
            }
        }
        self.by_kind.insert(kind, current);
    }

    /// An object added or changed; whether anything changed.
    pub fn apply(&mut self, kind: Kind, object: DynamicObject) -> bool {
        let rendered = render(kind, object);
        let key = rendered.key.clone();
        let objects = self.by_kind.entry(kind).or_default();
        let (kept, changed) = rendered.into_document(objects.remove(&key));
        if let Some(kept) = kept {
            objects.insert(key, kept);
        }
        changed
    }

    /// An object deleted; whether it was known.
    pub fn delete(&mut self, kind: Kind, object: &DynamicObject) -> bool {
        let key = key(object);
        self.by_kind
            .get_mut(&kind)
            .is_some_and(|objects| objects.remove(&key).is_some())
    }

    /// Every object, loaded as the files are: kinds in [`Kind`] order, then by namespace and
    /// name, so two loads of the same objects give the same model.
    pub fn load(&self) -> Loaded {
        let documents = self.by_kind.values().flat_map(BTreeMap::values);
        assemble(documents.map(|document| &document.checked))
    }
}

fn key(object: &DynamicObject) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// An object as text, not read yet.
struct Rendered {
    key: Key,
    origin: Arc<Path>,
    text: String,
}

impl Rendered {
    /// The document to keep in place of `previous`, and whether the model may differ: `previous`
    /// itself when the text is the same (a relist is not read again); the new one when it reads
    /// as its kind, a change only when what strait reads of it changed (an update of a Pod's
    /// `resourceVersion` or container statuses rebuilds nothing); else `previous` (if any), so
    /// a bad update never takes a working object away.
    fn into_document(self, previous: Option<Document>) -> (Option<Document>, bool) {
        if previous.as_ref().is_some_and(|p| p.text == self.text) {
            return (previous, false);
        }
        let checked = Checked::of(self.origin.clone(), &self.text);
        if checked.is_complete() {
            let changed = previous.is_none_or(|p| p.checked != checked);
            let document = Document {
                text: self.text,
                checked,
            };
            return (Some(document), changed);
        }
        let origin = self.origin.display();
        let problems: Vec<String> = checked
            .diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect();
        match previous {
            Some(_) => {
                warn!(%origin, ?problems, "unreadable update: the object's last good version stays")
            }
            None => warn!(%origin, ?problems, "unreadable object: ignored"),
        }
        (previous, false)
    }
}

/// The object as `kubectl get -o json` prints it: list items come without their kind, and the
/// field managers' bookkeeping is dropped.
fn render(kind: Kind, mut object: DynamicObject) -> Rendered {
    let api_version = match kind.api_versions() {
        [first, ..] => (*first).to_owned(),
        [] => "v1".to_owned(),
    };
    let api_version = object
        .types
        .take()
        .map(|types| types.api_version)
        .unwrap_or(api_version);
    object.types = Some(TypeMeta {
        api_version,
        kind: kind.as_str().to_owned(),
    });
    object.metadata.managed_fields = None;
    let key = key(&object);
    let origin = match &key {
        (namespace, name) if namespace.is_empty() => format!("kubernetes:{kind}/{name}"),
        (namespace, name) => format!("kubernetes:{kind}/{namespace}/{name}"),
    };
    // A DynamicObject is JSON already: serializing it cannot fail.
    let text = serde_json::to_string(&object).expect("a DynamicObject serializes");
    Rendered {
        key,
        origin: Arc::from(PathBuf::from(origin)),
        text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::config::Model;

    fn pod(resource_version: &str, version: &str, extra: Value) -> DynamicObject {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                         "resourceVersion": resource_version,
                         "labels": {"app": "web", "version": version}},
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.0.0.5"}});
        if let (Some(pod), Some(extra)) = (pod.as_object_mut(), extra.as_object()) {
            pod.extend(extra.clone());
        }
        serde_json::from_value(pod).unwrap()
    }

    fn labels_of_the_pod(objects: &Objects) -> Vec<String> {
        let loaded = objects.load();
        let model = Model::from_resources(&loaded.resources);
        let source = model.source("10.0.0.5".parse().unwrap()).expect("the pod");
        source.labels.values().cloned().collect()
    }

    #[test]
    fn a_change_is_one_only_when_what_strait_reads_changed() {
        let mut objects = Objects::default();
        assert!(
            objects.apply(Kind::Pod, pod("1", "v1", json!({}))),
            "a new object"
        );
        assert!(
            !objects.apply(Kind::Pod, pod("1", "v1", json!({}))),
            "the same text"
        );
        assert!(
            !objects.apply(Kind::Pod, pod("2", "v1", json!({}))),
            "only its resourceVersion"
        );
        assert!(
            objects.apply(Kind::Pod, pod("3", "v2", json!({}))),
            "a label"
        );
        assert_eq!(labels_of_the_pod(&objects), ["web", "v2"]);
    }

    #[test]
    fn an_unreadable_update_keeps_the_last_good_one_and_a_recreation_counts() {
        let mut objects = Objects::default();
        objects.apply(Kind::Pod, pod("1", "v1", json!({})));
        let broken = pod("2", "v2", json!({"spec": {"containers": "none"}}));
        assert!(!objects.apply(Kind::Pod, broken), "kept, so unchanged");
        assert_eq!(labels_of_the_pod(&objects), ["web", "v1"]);
        assert!(objects.delete(Kind::Pod, &pod("3", "v1", json!({}))));
        assert!(
            objects.apply(Kind::Pod, pod("4", "v1", json!({}))),
            "made again"
        );
    }
}
