//! Named network namespaces (`ip netns`), entered with setns(2) only.
//!
//! Never `ip netns exec` for lab processes: it remounts /sys, which hides cgroup v2 from the
//! process and its children.

use std::{
    fs::{self, File},
    io,
    os::fd::AsRawFd,
    path::PathBuf,
    process::Command,
    thread,
};

use anyhow::{anyhow, bail, Context, Result};
use nix::{sys::signal::Signal, unistd::Pid};

/// Where `ip netns add` keeps the bind mounts that name namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// Runs `ip ARGS...`; the error carries the command line and ip's own message.
pub fn ip(args: &[&str]) -> Result<String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn add(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    Ok(())
}

pub fn open(name: &str) -> Result<File> {
    File::open(path(name)).with_context(|| format!("opening network namespace {name}"))
}

/// The named namespaces on this host.
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).context(NETNS_DIR),
    };
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect())
}

/// Kills every process inside the namespace, then deletes its name (the namespace, with its
/// interfaces, goes away with the last reference). Missing namespaces are fine.
pub fn remove(name: &str) -> Result<()> {
    if !path(name).exists() {
        return Ok(());
    }
    for pid in ip(&["netns", "pids", name])?.split_whitespace() {
        let pid: i32 = pid
            .parse()
            .with_context(|| format!("ip netns pids: {pid:?}"))?;
        // Gone already is fine: it has left the namespace.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    ip(&["netns", "delete", name])?;
    Ok(())
}

/// Moves the calling thread into the network namespace `netns`. Async-signal-safe: usable in
/// `pre_exec`.
pub fn enter(netns: &File) -> io::Result<()> {
    // SAFETY: a plain syscall on a descriptor we own.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread that entered `netns`: sockets it creates belong to that namespace.
/// (Network namespaces are per thread; the caller's thread stays where it is.)
pub fn run_in<T: Send>(netns: &File, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(netns).context("entering the network namespace")?;
                f()
            })
            .join()
            .map_err(|_| anyhow!("a thread in the lab's network namespace panicked"))?
    })
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}
