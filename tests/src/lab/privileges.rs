//! What a lab needs from the host, and the loud skip when it is missing.

use std::{
    env, fs,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};
use nix::mount::MsFlags;

use super::names::BPFFS;

/// Set (to anything but `0`) to turn a privilege skip into a failure: CI must never pass by
/// skipping the tests that matter.
pub const REQUIRE_ENV: &str = "STRAIT_TESTS_REQUIRE_PRIVILEGES";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `test` can build a lab here. Otherwise prints a loud skip line straight to the
/// process's stderr (the test harness would swallow `eprintln!` of a passing test) and returns
/// false, or panics when [`REQUIRE_ENV`] is set.
pub fn require_privileges(test: &str) -> bool {
    missing_privilege().is_none_or(|missing| skip_or_fail(test, &missing))
}

/// Says loudly that `test` is skipped because `missing`, and returns `false` (run nothing); or
/// panics when [`REQUIRE_ENV`] is set (CI), where a skip would hide a missing install step.
pub fn skip_or_fail(test: &str, missing: &str) -> bool {
    if env::var_os(REQUIRE_ENV).is_some_and(|v| v != "0") {
        panic!("{test}: {missing}, and {REQUIRE_ENV} forbids skipping");
    }
    let line = format!("\n**** SKIPPED ({missing}): {test} ****\n");
    // Best effort: a skip notice that cannot be written changes nothing.
    let _ = std::io::stderr().write_all(line.as_bytes());
    false
}

/// The cgroup v2 mount: `/sys/fs/cgroup/unified` on hybrid hosts, `/sys/fs/cgroup` on unified.
pub fn cgroup2_root() -> Result<PathBuf> {
    match mounts()?
        .into_iter()
        .find(|(_, fs_type)| fs_type == "cgroup2")
    {
        Some((mount_point, _)) => Ok(PathBuf::from(mount_point)),
        None => bail!("no cgroup v2 hierarchy is mounted"),
    }
}

/// Mounts bpffs at /sys/fs/bpf unless it is there: pinned BPF objects live on it.
pub fn ensure_bpffs() -> Result<()> {
    let mounted = mounts()?
        .iter()
        .any(|(mount_point, fs_type)| mount_point == BPFFS && fs_type == "bpf");
    if !mounted {
        nix::mount::mount(
            Some("bpf"),
            BPFFS,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting bpffs at {BPFFS}"))?;
    }
    Ok(())
}

/// (mount point, file system type) of each mount this process sees.
fn mounts() -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect())
}

fn missing_privilege() -> Option<String> {
    if !is_root() {
        return Some("needs root".into());
    }
    if let Err(err) = cgroup2_root() {
        return Some(format!("needs cgroup v2: {err}"));
    }
    if let Err(err) = bpf_usable() {
        return Some(format!("needs bpf(): {err}"));
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|status| status.success()) {
        return Some("needs iproute2 (`ip`)".into());
    }
    None
}

/// Creates and closes a one-entry array map: the cheapest proof that bpf() is allowed.
fn bpf_usable() -> std::io::Result<()> {
    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    }
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let attr = MapCreate {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    };
    // SAFETY: `attr` is a valid bpf_attr prefix for BPF_MAP_CREATE, and its size is passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreate,
            std::mem::size_of::<MapCreate>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_privileges_agree() {
        // Without root nothing else is checked; with root the answer depends on the host.
        if !is_root() {
            assert_eq!(missing_privilege().as_deref(), Some("needs root"));
        }
    }
}
