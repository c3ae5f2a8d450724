//! The lab's cgroup v2 directory: where captured pods' processes live.

use std::{
    fs::{self, File},
    io,
    os::fd::AsRawFd,
    path::Path,
    time::Duration,
};

use anyhow::{ensure, Context, Result};
use nix::{sys::signal::Signal, unistd::Pid};

use super::child::wait_until;

const EMPTY_TIMEOUT: Duration = Duration::from_secs(5);

pub fn create(dir: &Path) -> Result<()> {
    fs::create_dir(dir).with_context(|| {
        format!(
            "creating cgroup {} (a leftover? `cargo xtask lab --down` removes it)",
            dir.display()
        )
    })
}

/// Opens `cgroup.procs` for [`join`] in a child about to exec.
pub fn open_procs(dir: &Path) -> Result<File> {
    let procs = dir.join("cgroup.procs");
    File::options()
        .write(true)
        .open(&procs)
        .with_context(|| format!("opening {}", procs.display()))
}

/// Moves the calling process into the cgroup of `procs`. Async-signal-safe: usable in
/// `pre_exec`, before the program creates any socket (cgroup BPF sees a socket's cgroup).
pub fn join(procs: &File) -> io::Result<()> {
    // cgroup v2 reads pid 0 as "the writing process".
    // SAFETY: a plain write of a static buffer to a descriptor we own.
    if unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kills every process in `dir` and its descendants, then removes them. Missing is fine.
pub fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove(&entry.path())?;
        }
    }
    kill_all(dir)?;
    let emptied = wait_until(EMPTY_TIMEOUT, || {
        procs(dir).is_ok_and(|pids| pids.is_empty())
    });
    ensure!(emptied, "processes are still in {}", dir.display());
    fs::remove_dir(dir).with_context(|| format!("removing cgroup {}", dir.display()))
}

/// `cgroup.kill` (Linux 5.14+) kills atomically, also processes forking right now; older
/// kernels get one SIGKILL per listed process.
fn kill_all(dir: &Path) -> Result<()> {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return Ok(());
    }
    for pid in procs(dir)? {
        // Gone already is fine: it has left the cgroup.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(())
}

fn procs(dir: &Path) -> Result<Vec<i32>> {
    let text = fs::read_to_string(dir.join("cgroup.procs"))?;
    Ok(text.lines().filter_map(|pid| pid.parse().ok()).collect())
}
