//! Capture: how connections reach strait and how strait learns where they were going.
//!
//! - [`ebpf`]: the kernel programs rewrite connects to Service addresses; the original destination
//!   comes from a BPF map keyed by the connection's 4-tuple.
//! - [`iptables`]: a REDIRECT/DNAT rule in the pod's namespace (as sidecars and ambient mode do
//!   today); the original destination comes from `SO_ORIGINAL_DST`. The fallback for nodes without
//!   cgroup BPF, and the baseline of `cargo xtask bench capture`.
//! - none (`--no-ebpf`): no original destination; L7 ports route by `:authority`.

pub mod cgroup;
pub mod ebpf;
pub mod enrollment;
pub mod iptables;
pub mod pins;

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The capture mode, chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// cgroup eBPF programs (the default).
    Ebpf,
    /// An iptables REDIRECT rule installed by someone else; SO_ORIGINAL_DST.
    Iptables,
    /// No capture: clients address strait directly.
    None,
}

/// Finds the original destination of an accepted connection.
#[derive(Clone)]
pub enum OriginalDst {
    Kernel(std::sync::Arc<ebpf::OrigDstTable>),
    Iptables,
    None,
}

impl OriginalDst {
    /// The address the client connected to before capture rewrote it, if capture says so.
    pub fn lookup(&self, stream: &TcpStream) -> Option<SocketAddr> {
        let (peer, local) = (stream.peer_addr().ok()?, stream.local_addr().ok()?);
        match self {
            Self::Kernel(table) => table.lookup(peer, local),
            Self::Iptables => iptables::original_dst(stream)
                // A connection that was not redirected reports strait's own address.
                .filter(|orig| *orig != local),
            Self::None => None,
        }
    }
}
