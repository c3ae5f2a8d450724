//! Handing a node over to the next strait without a gap (a rolling update starts the new strait
//! beside the old): the listeners share their ports (`SO_REUSEPORT`, same user only), the kernel
//! maps are shared through their pins ([`capture::pins`](crate::capture::pins)), and
//! connections still waiting in the old strait's accept queue when it closes its listener move to
//! the new one's (`net.ipv4.tcp_migrate_req`) instead of being reset. Readiness is per instance
//! ([`ReadyFile`]): while two straits share the node's ports, an HTTP probe may be answered by
//! the other one.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

/// How a listener holds its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Alone: a second strait on it is an error.
    Exclusive,
    /// With the strait that takes over (with eBPF capture, where one strait serves a node).
    Shared,
}

/// Binds `what`'s listener to `addr`, with a clear error (the usual cause: the port is taken).
pub fn bind(addr: SocketAddr, what: &str, port: Port) -> Result<TcpListener> {
    let bound = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        if port == Port::Shared {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        socket.listen(1024)
    };
    bound().with_context(|| format!("binding the {what} listener to {addr}"))
}

const MIGRATE_REQUESTS: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Asks the kernel (in strait's network namespace) to move a closing listener's pending
/// connections to another listener on its port. Without it (no permission: set the sysctl on
/// the node), a handover can reset the few connections that were waiting to be accepted.
pub fn migrate_pending_connections() {
    match std::fs::write(MIGRATE_REQUESTS, "1") {
        Ok(()) => info!("pending connections move to the next strait on handover"),
        Err(err) => {
            warn!(%err, "cannot set net.ipv4.tcp_migrate_req=1: on handover, connections not yet accepted may be reset; set it on the node")
        }
    }
}

/// `--ready-file`: present while this strait is ready, for an exec probe (`strait probe`) that
/// asks this instance, not whichever one holds the shared port.
#[derive(Debug)]
pub struct ReadyFile(Option<PathBuf>);

impl ReadyFile {
    /// Clears what an earlier run left: the file outlives a crashed container in its pod.
    pub fn new(path: Option<PathBuf>) -> Result<Self> {
        let file = Self(path);
        file.remove()?;
        Ok(file)
    }

    pub fn ready(&self) -> Result<()> {
        match &self.0 {
            Some(path) => std::fs::write(path, "ready\n")
                .with_context(|| format!("writing the ready file {}", path.display())),
            None => Ok(()),
        }
    }

    /// Shutting down: the probe fails from now on.
    pub fn unready(&self) {
        if let Err(err) = self.remove() {
            warn!(err = format!("{err:#}"), "removing the ready file");
        }
    }

    fn remove(&self) -> Result<()> {
        let Some(path) = &self.0 else { return Ok(()) };
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// `strait probe --ready-file PATH`: whether the strait that writes `path` is ready.
pub fn probe(path: &Path) -> bool {
    path.is_file()
}
