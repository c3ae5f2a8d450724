//! Handing a node over to the next strait without a gap (a rolling update starts the new strait
//! beside the old): the listeners share their ports (`SO_REUSEPORT`, same user only), the kernel
//! maps are shared through their pins ([`capture::pins`](crate::capture::pins)), and
//! connections still waiting in the old strait's accept queue when it closes its listener move to
//! the new one's (`net.ipv4.tcp_migrate_req`) instead of being reset.

use std::net::SocketAddr;

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
