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
    /// `kubernetes:KIND/NAMESPACE/NAME`: what diagnostics name as its file.
    origin: Arc<Path>,
    /// The object as JSON (a YAML document too).
    text: String,
    checked: Checked,
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        (&self.origin, &self.text) == (&other.origin, &other.text)
    }
}

#[derive(Debug, Default)]
pub(super) struct Objects {
    by_kind: BTreeMap<Kind, BTreeMap<Key, Document>>,
}

impl Objects {
    /// A complete list of `kind`: it replaces what was known, objects gone from it go.
    pub fn replace(&mut self, kind: Kind, list: Vec<DynamicObject>) {
        let previous = self.by_kind.remove(&kind).unwrap_or_default();
        let mut current = BTreeMap::new();
        for object in list {
            let (key, document) = render(kind, object);
            if let Some(kept) = readable_or_previous(document, previous.get(&key)) {
                current.insert(key, kept);
            }
        }
        self.by_kind.insert(kind, current);
    }

    /// An object added or changed; whether anything changed.
    pub fn apply(&mut self, kind: Kind, object: DynamicObject) -> bool {
        let (key, document) = render(kind, object);
        let objects = self.by_kind.entry(kind).or_default();
        match readable_or_previous(document, objects.get(&key)) {
            Some(kept) if objects.get(&key) != Some(&kept) => {
                objects.insert(key, kept);
                true
            }
            _ => false,
        }
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

/// The object as `kubectl get -o json` prints it: list items come without their kind, and the
/// field managers' bookkeeping is dropped.
fn render(kind: Kind, mut object: DynamicObject) -> (Key, Document) {
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
    let origin: Arc<Path> = Arc::from(PathBuf::from(origin));
    let checked = Checked::of(origin.clone(), &text);
    let document = Document {
        origin,
        text,
        checked,
    };
    (key, document)
}

/// `document` when it reads as its kind; else the object's previous version (if any), so a
/// bad update never takes a working object away.
fn readable_or_previous(document: Document, previous: Option<&Document>) -> Option<Document> {
    if document.checked.is_complete() {
        return Some(document);
    }
    let origin = document.origin.display();
    let diagnostics = document.checked.diagnostics();
    let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    match previous {
        Some(_) => {
            warn!(%origin, ?problems, "unreadable update: the object's last good version stays")
        }
        None => warn!(%origin, ?problems, "unreadable object: ignored"),
    }
    previous.cloned()
}
