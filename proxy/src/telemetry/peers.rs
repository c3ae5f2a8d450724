//! Who talked to whom, as Istio's metrics label it: the client workload (`source_*`) and the
//! endpoint's workload (`destination_*`).

use std::{
    net::IpAddr,
    ops::Deref,
    sync::{Arc, LazyLock},
};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use crate::config::{route::Source, Model, WorkloadIdentity};

/// A workload at one end of a request or connection. Cheap to clone: every request from a
/// workload shares its identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer(Arc<WorkloadIdentity>);

static UNKNOWN: LazyLock<Peer> = LazyLock::new(|| Peer(Arc::new(WorkloadIdentity::unknown())));

impl Peer {
    /// What Istio reports for an address that is no Pod or WorkloadEntry it knows.
    pub fn unknown() -> Self {
        UNKNOWN.clone()
    }

    /// The workload `workload`, or unknown.
    pub fn of(workload: Option<&Source>) -> Self {
        workload.map_or_else(Self::unknown, |source| Self(source.identity.clone()))
    }

    /// The workload (Pod or WorkloadEntry) at `ip` in `model`, or unknown.
    pub fn at(model: &Model, ip: IpAddr) -> Self {
        Self::of(model.source(ip))
    }
}

impl Deref for Peer {
    type Target = WorkloadIdentity;

    fn deref(&self) -> &WorkloadIdentity {
        &self.0
    }
}

/// Both ends, as Istio's `source_*` and `destination_*` workload labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peers {
    pub source: Peer,
    /// The endpoint's workload; unknown while (or when) no endpoint answered.
    pub destination: Peer,
}

impl Peers {
    pub fn source_only(source: Peer) -> Self {
        Self {
            source,
            destination: Peer::unknown(),
        }
    }
}

/// strait terminates no mTLS, so no principal is known (Istio says `unknown` too).
const PRINCIPAL: &str = "unknown";
/// Istio's default cluster ID, what a single-cluster mesh reports.
const CLUSTER: &str = "Kubernetes";

/// The label names for one end, in the order [`Peers::encode`] writes them.
const SOURCE_KEYS: [&str; 8] = [
    "source_workload",
    "source_workload_namespace",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_principal",
    "source_cluster",
];
const DESTINATION_KEYS: [&str; 8] = [
    "destination_workload",
    "destination_workload_namespace",
    "destination_app",
    "destination_version",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_principal",
    "destination_cluster",
];

impl Peer {
    fn label_values(&self) -> [&str; 8] {
        [
            &self.workload,
            &self.namespace,
            &self.app,
            &self.version,
            &self.canonical_service,
            &self.canonical_revision,
            PRINCIPAL,
            CLUSTER,
        ]
    }
}

impl EncodeLabelSet for Peers {
    fn encode(&self, mut encoder: LabelSetEncoder) -> Result<(), std::fmt::Error> {
        for (keys, peer) in [
            (SOURCE_KEYS, &self.source),
            (DESTINATION_KEYS, &self.destination),
        ] {
            for label in keys.into_iter().zip(peer.label_values()) {
                label.encode(encoder.encode_label())?;
            }
        }
        Ok(())
    }
}
