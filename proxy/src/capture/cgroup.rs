//! Finding the cgroup v2 hierarchy the kernel programs attach to.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The cgroup v2 root: `/sys/fs/cgroup/unified` on hybrid hosts, else `/sys/fs/cgroup` when it is
/// a unified (v2) mount.
pub fn default_root() -> Result<PathBuf> {
    for candidate in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let dir = Path::new(candidate);
        if is_cgroup2(dir) {
            return Ok(dir.to_path_buf());
        }
    }
    bail!("no cgroup v2 hierarchy found (looked at /sys/fs/cgroup/unified and /sys/fs/cgroup); pass --cgroup DIR")
}

/// A cgroup v2 directory has `cgroup.procs` and, unlike v1 controllers, `cgroup.controllers`.
pub fn is_cgroup2(dir: &Path) -> bool {
    dir.join("cgroup.controllers").is_file() && dir.join("cgroup.procs").is_file()
}
