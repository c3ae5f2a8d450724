//! Routing a connection: from its original destination to a Service port and its endpoints.

use std::{fmt, net::SocketAddr};

use crate::{classify::Protocol, config::Model};

/// Where a captured connection goes: a Service port, with the endpoints of this config generation.
#[derive(Clone, Debug)]
pub struct TcpRoute {
    pub service_name: String,
    pub namespace: String,
    pub port: u16,
    pub protocol: Protocol,
    pub endpoints: Vec<SocketAddr>,
}

impl TcpRoute {
    pub fn balance_key(&self) -> crate::balance::BalanceKey {
        (
            crate::config::fqdn(&self.service_name, &self.namespace),
            self.port,
        )
    }
}

/// Why a connection has nowhere to go. strait never relays to an address it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// Capture gave no original destination (not captured, or `--no-ebpf` on a TCP port).
    NoOriginalDst,
    /// The original destination is no Service port in the config (gone since, or never was).
    UnknownDestination(SocketAddr),
}

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoOriginalDst => f.write_str("no original destination"),
            Self::UnknownDestination(addr) => write!(f, "{addr} is no Service port"),
        }
    }
}

/// Finds the Service port a connection was addressed to.
pub fn tcp(model: &Model, original_dst: Option<SocketAddr>) -> Result<TcpRoute, NoRoute> {
    let addr = original_dst.ok_or(NoRoute::NoOriginalDst)?;
    let port = model
        .service_port_by_addr(addr)
        .ok_or(NoRoute::UnknownDestination(addr))?;
    let service = port.service();
    Ok(TcpRoute {
        service_name: service.name.clone(),
        namespace: service.namespace.clone(),
        port: port.port(),
        protocol: port.classification().protocol,
        endpoints: port.endpoints().iter().map(|e| e.addr).collect(),
    })
}
