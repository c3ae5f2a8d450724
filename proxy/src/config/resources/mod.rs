//! The resources users write, decoded with serde, and where each came from.

mod istio;
mod kube;
mod traffic_policy;
mod values;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use self::{istio::*, kube::*, traffic_policy::*, values::*};
use super::{
    decode::{decode, DecodeError, Decoded},
    diagnostics::{Source, Subject},
    kinds::Kind,
};

pub type Labels = BTreeMap<String, String>;

/// The namespace of a resource whose `metadata.namespace` is absent.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub creation_timestamp: Option<Timestamp>,
    /// Set by the API server; a Pod's names its cgroup on the node (enrollment).
    pub uid: Option<String>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

/// A kind strait reads, with its metadata.
pub trait Object {
    fn kind(&self) -> Kind;
    fn metadata(&self) -> &ObjectMeta;
}

impl<T: Object> Object for &T {
    fn kind(&self) -> Kind {
        (**self).kind()
    }

    fn metadata(&self) -> &ObjectMeta {
        (**self).metadata()
    }
}

/// A typed kind that can be picked out of a [`Resource`].
pub trait Typed: Object + Sized + 'static {
    fn from_resource(resource: &Resource) -> Option<&Self>;
}

macro_rules! resources {
    ($($kind:ident),* $(,)?) => {
        /// One decoded document.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Resource {
            $($kind($kind),)*
        }

        impl Resource {
            pub(crate) fn decode(
                kind: Kind,
                value: serde_yaml::Value,
            ) -> Result<Decoded<Self>, DecodeError> {
                match kind {
                    $(Kind::$kind => Ok(decode::<$kind>(value)?.map(Self::$kind)),)*
                }
            }
        }

        impl Object for Resource {
            fn kind(&self) -> Kind {
                match self {
                    $(Self::$kind(_) => Kind::$kind,)*
                }
            }

            fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Self::$kind(resource) => &resource.metadata,)*
                }
            }
        }

        $(
            impl Object for $kind {
                fn kind(&self) -> Kind {
                    Kind::$kind
                }

                fn metadata(&self) -> &ObjectMeta {
                    &self.metadata
                }
            }

            impl Typed for $kind {
                fn from_resource(resource: &Resource) -> Option<&Self> {
                    match resource {
                        Resource::$kind(typed) => Some(typed),
                        _ => None,
                    }
                }
            }
        )*
    };
}

resources!(
    Service,
    Pod,
    Secret,
    ConfigMap,
    Namespace,
    VirtualService,
    DestinationRule,
    Gateway,
    WorkloadEntry
);

/// What a diagnostic says a resource is: `KIND/NAMESPACE/NAME`.
pub fn subject_of(object: &impl Object) -> Subject {
    let kind = object.kind();
    let meta = object.metadata();
    Subject {
        kind: Some(kind.as_str().to_owned()),
        namespace: kind.is_namespaced().then(|| meta.namespace.clone()),
        name: Some(meta.name.clone()),
    }
}

/// A resource and the document it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub source: Source,
    pub resource: T,
}

impl<T: Object> Located<T> {
    pub fn subject(&self) -> Subject {
        subject_of(&self.resource)
    }
}

/// The resources of one load, in load order (file order, then document order), which decides
/// among equals (see [`crate::config::validate`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    items: Vec<Located<Resource>>,
}

impl Resources {
    pub fn iter(&self) -> impl Iterator<Item = &Located<Resource>> {
        self.items.iter()
    }

    /// The resources of one kind, in load order.
    pub fn of<T: Typed>(&self) -> impl Iterator<Item = Located<&T>> {
        self.items.iter().filter_map(|item| {
            T::from_resource(&item.resource).map(|resource| Located {
                source: item.source.clone(),
                resource,
            })
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn push(&mut self, item: Located<Resource>) {
        self.items.push(item);
    }

    /// Keeps the resources `keep` accepts, in order.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&Located<Resource>) -> bool) {
        self.items.retain(keep);
    }
}

impl FromIterator<Located<Resource>> for Resources {
    fn from_iter<I: IntoIterator<Item = Located<Resource>>>(iter: I) -> Self {
        Self {
            items: iter.into_iter().collect(),
        }
    }
}
