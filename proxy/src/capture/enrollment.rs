//! Telling the kernel which pods are enrolled (`--enroll ambient`): by cgroup. kubelet gives each
//! pod a cgroup named after its uid (`pod<uid>` with the cgroupfs driver,
//! `kubepods-<qos>-pod<uid_with_underscores>.slice` with systemd's), and its containers' cgroups
//! below it; the connect program walks the connecting process's cgroup and its ancestors and
//! captures when one of them is listed. A cgroup is the one identity every process of the pod
//! carries from its first syscall, whatever its network namespace or address (a pod's IP is
//! not known at connect time; its netns cookie would have to be fetched from inside).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use strait_common::MAX_CGROUP_DEPTH;

use crate::config::{EnrolledPod, Model};

/// Whose connections the kernel captures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enrollment {
    /// Every process in the cgroup the programs are attached to (`--enroll all`).
    All,
    /// The pods ambient mode's labels enroll on this node (`--enroll ambient --node-name`).
    Ambient { node: String },
}

/// The cgroup ids the kernel is to capture, as the model and `--enroll` say.
#[derive(Debug)]
pub struct Enrolled {
    /// `None` with [`Enrollment::All`].
    node: Option<(String, PodCgroups)>,
}

impl Enrolled {
    /// Enrolled pods' cgroups are looked for under `root`, the cgroup the programs attach to.
    pub fn new(enrollment: &Enrollment, root: &Path) -> Self {
        let node = match enrollment {
            Enrollment::All => None,
            Enrollment::Ambient { node } => Some((node.clone(), PodCgroups::new(root))),
        };
        Self { node }
    }

    /// The cgroup ids of the pods `model` enrolls on this node, and how many of those pods
    /// have no cgroup yet.
    pub fn of(&mut self, model: &Model) -> (BTreeSet<u64>, usize) {
        match &mut self.node {
            None => (BTreeSet::new(), 0),
            Some((node, cgroups)) => cgroups.resolve(model.enrolled_on(node)),
        }
    }
}

/// The cgroups of enrolled pods, found under the cgroup the programs are attached to.
#[derive(Debug)]
pub struct PodCgroups {
    root: PathBuf,
    /// Found so far, by pod uid: the cgroup's id (its inode on cgroup v2).
    found: BTreeMap<String, u64>,
}

impl PodCgroups {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            found: BTreeMap::new(),
        }
    }

    /// The cgroup ids of `pods`, and how many have no cgroup yet (kubelet has not started
    /// them: look again later).
    pub fn resolve<'a>(
        &mut self,
        pods: impl Iterator<Item = &'a EnrolledPod>,
    ) -> (BTreeSet<u64>, usize) {
        let wanted: BTreeSet<&str> = pods.map(|pod| pod.uid.as_str()).collect();
        self.found.retain(|uid, _| wanted.contains(uid.as_str()));
        if wanted.iter().any(|uid| !self.found.contains_key(*uid)) {
            self.scan(&wanted);
        }
        let ids = self.found.values().copied().collect();
        (ids, wanted.len() - self.found.len())
    }

    /// Walks the tree once for the cgroups of `wanted` pods not found yet.
    fn scan(&mut self, wanted: &BTreeSet<&str>) {
        let mut dirs = vec![(self.root.clone(), 0)];
        while let Some((dir, depth)) = dirs.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if !metadata.is_dir() {
                    continue;
                }
                match pod_uid(&entry.file_name().to_string_lossy()) {
                    // A pod's cgroup: its containers below it need no look.
                    Some(uid) if wanted.contains(uid.as_str()) => {
                        self.found.insert(uid, metadata.ino());
                    }
                    Some(_) => {}
                    None if depth + 1 < MAX_CGROUP_DEPTH as usize => {
                        dirs.push((entry.path(), depth + 1))
                    }
                    None => {}
                }
            }
        }
    }
}

/// The uid of the pod whose cgroup directory is called `name`, in either kubelet driver's
/// naming: `pod<uid>` (cgroupfs), `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd).
fn pod_uid(name: &str) -> Option<String> {
    if let Some(uid) = name.strip_prefix("pod") {
        return Some(uid.to_owned());
    }
    let (_, uid) = name.strip_suffix(".slice")?.rsplit_once("-pod")?;
    Some(uid.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c2d3e-0000-4000-8000-000000000003";

    #[test]
    fn both_kubelet_cgroup_drivers_name_a_pod_by_its_uid() {
        assert_eq!(pod_uid(&format!("pod{UID}")).as_deref(), Some(UID));
        let systemd = format!("kubepods-burstable-pod{}.slice", UID.replace('-', "_"));
        assert_eq!(pod_uid(&systemd).as_deref(), Some(UID));
        let guaranteed = format!("kubepods-pod{}.slice", UID.replace('-', "_"));
        assert_eq!(pod_uid(&guaranteed).as_deref(), Some(UID));
        assert_eq!(pod_uid("kubepods-burstable.slice"), None);
        assert_eq!(pod_uid("kubepods.slice"), None);
    }

    #[test]
    fn finds_a_pod_below_the_root_and_forgets_it_when_it_is_not_wanted() {
        let root = std::env::temp_dir().join(format!("strait-cgroups-{}", std::process::id()));
        let pod_dir = root.join("kubepods/burstable").join(format!("pod{UID}"));
        fs::create_dir_all(pod_dir.join("container-1")).unwrap();
        let pod = |uid: &str| EnrolledPod {
            node: "node-1".into(),
            uid: uid.into(),
            namespace: "shop".into(),
            name: "web".into(),
        };
        let mut cgroups = PodCgroups::new(&root);
        let inode = fs::metadata(&pod_dir).unwrap().ino();
        let (ids, missing) = cgroups.resolve([pod(UID), pod("not-started")].iter());
        assert_eq!((ids, missing), ([inode].into(), 1));
        let (ids, missing) = cgroups.resolve([].iter());
        assert_eq!((ids.len(), missing), (0, 0));
        fs::remove_dir_all(&root).unwrap();
    }
}
