//! How lab resources are named, and how leftovers are recognised by name alone.
//!
//! Every resource a lab makes outside its own namespaces carries the lab's prefix:
//! `strait-lab-<prefix>` for the cgroup and strait's bpffs pin directory, and
//! `strait-lab-<prefix>.<pod>` (and `.node`) for the network namespaces. Interfaces live inside the lab's namespaces, so their names are short and
//! fixed and never collide with the host's or another lab's.
//!
//! Generated prefixes start with the owning process id (`<pid>-<n>-<name>`): a leftover whose
//! owner is gone can be removed without touching labs of tests still running in parallel.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{ensure, Result};

/// The start of every lab resource name (netns, cgroup).
pub const RESOURCE_PREFIX: &str = "strait-lab-";
/// Where bpffs is mounted (`ensure_bpffs`).
pub const BPFFS: &str = "/sys/fs/bpf";
/// The bridge in the node namespace.
pub const BRIDGE: &str = "br0";
/// The pod end of each veth, inside the pod namespace.
pub const POD_IFACE: &str = "eth0";
/// The netns suffix of the node namespace; no pod may take it.
const NODE: &str = "node";
/// Lab and pod names stay readable in `ip netns list`.
const MAX_LABEL: usize = 40;
const MAX_TEST_NAME: usize = 24;

static LABS: AtomicU32 = AtomicU32::new(0);

/// The names of one lab's resources.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Result<Self> {
        check_label("lab prefix", prefix)?;
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn cgroup(&self) -> String {
        format!("{RESOURCE_PREFIX}{}", self.prefix)
    }

    pub fn node_netns(&self) -> String {
        self.netns(NODE)
    }

    /// strait's pinned kernel maps (`--bpf-pin-dir`), under the bpffs mount.
    pub fn bpf_pins(&self) -> PathBuf {
        Path::new(BPFFS).join(self.cgroup())
    }

    pub fn pod_netns(&self, pod: &str) -> Result<String> {
        check_label("pod name", pod)?;
        ensure!(
            pod != NODE,
            "pod name {NODE:?} is reserved for the node namespace"
        );
        Ok(self.netns(pod))
    }

    fn netns(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.cgroup())
    }
}

/// The node end of the veth of the pod at host number `host` (10.X.0.`host`).
pub fn node_veth(host: u8) -> String {
    format!("veth{host}")
}

/// A fresh lab: a prefix no lab of this or any other live process uses (`<pid>-<n>-<name>`)
/// and a subnet octet (10.X.0.0/24) that differs between the labs of this process. Labs are
/// isolated from each other, so subnet clashes would be harmless; distinct ones keep traces
/// readable. Octets from 250 up are left to `cargo xtask lab`.
pub fn unique_lab(name: &str) -> (String, u8) {
    const FIRST_OCTET: u32 = 100;
    const OCTETS: u32 = 150;
    let n = LABS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let octet = FIRST_OCTET + pid.wrapping_add(n) % OCTETS;
    (format!("{pid}-{n}-{}", sanitize(name)), octet as u8)
}

/// True for resources of a lab whose owner process no longer exists.
pub fn is_orphan(resource: &str) -> bool {
    owner_pid(resource).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

fn owner_pid(resource: &str) -> Option<u32> {
    let rest = resource.strip_prefix(RESOURCE_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Test names become `[a-z0-9-]`, cut to a readable length.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let cut: String = cleaned.chars().take(MAX_TEST_NAME).collect();
    match cut.trim_matches('-') {
        "" => "lab".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

fn check_label(what: &str, label: &str) -> Result<()> {
    let valid_chars = label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ensure!(
        !label.is_empty() && label.len() <= MAX_LABEL && valid_chars,
        "{what} {label:?} must be 1-{MAX_LABEL} characters of [a-z0-9-]"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's IFNAMSIZ counts the trailing NUL.
    const IFNAMSIZ: usize = 16;

    #[test]
    fn interface_names_fit_ifnamsiz() {
        for name in [BRIDGE, POD_IFACE, &node_veth(254)] {
            assert!(name.len() < IFNAMSIZ, "{name}");
        }
    }

    #[test]
    fn unique_prefixes_differ_and_name_the_owner() {
        let (a, octet_a) = unique_lab("capture_of_a_vip");
        let (b, octet_b) = unique_lab("capture_of_a_vip");
        assert_ne!(a, b);
        assert_ne!(octet_a, octet_b);
        let names = Names::new(&a).unwrap();
        assert_eq!(owner_pid(&names.cgroup()), Some(std::process::id()));
        assert_eq!(
            owner_pid(&names.pod_netns("client").unwrap()),
            Some(std::process::id())
        );
    }

    #[test]
    fn test_names_are_sanitized() {
        assert_eq!(
            sanitize("Fail_Open::after SIGKILL"),
            "fail-open--after-sigkill"
        );
        assert_eq!(sanitize("a".repeat(100).as_str()).len(), MAX_TEST_NAME);
        assert_eq!(sanitize("::"), "lab");
        assert!(Names::new(&unique_lab(&"x".repeat(100)).0).is_ok());
    }

    #[test]
    fn resource_names() {
        let names = Names::new("demo").unwrap();
        assert_eq!(names.cgroup(), "strait-lab-demo");
        assert_eq!(names.node_netns(), "strait-lab-demo.node");
        assert_eq!(
            names.pod_netns("replica-1").unwrap(),
            "strait-lab-demo.replica-1"
        );
        assert!(names.pod_netns("node").is_err());
        assert!(names.pod_netns("Bad_Name").is_err());
        assert!(Names::new("").is_err());
    }

    #[test]
    fn orphans_are_labs_of_dead_processes() {
        let live = format!("strait-lab-{}-0-x.node", std::process::id());
        assert!(!is_orphan(&live));
        // Above the kernel's pid_max limit (2^22): never a live process.
        assert!(is_orphan("strait-lab-4999999-3-x.client"));
        assert!(is_orphan("strait-lab-4999999-3-x"));
        // Fixed prefixes (cargo xtask lab) have no owner: only removed on request.
        assert!(!is_orphan("strait-lab-demo.node"));
        assert!(!is_orphan("other-4999999-3-x"));
    }

    #[test]
    fn subnet_octets_stay_in_the_test_range() {
        for _ in 0..300 {
            assert!((100..250).contains(&unique_lab("x").1));
        }
    }
}
