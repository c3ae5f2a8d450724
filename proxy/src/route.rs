//! Routing a connection: from its original destination to a Service port and its endpoints.

use std::{fmt, net::SocketAddr};

use crate::config::Model;

/// Where a captured connection goes.
#[derive(Clone, Debug)]
pub enum ConnectionRoute {
    /// A gRPC port: clients speak HTTP/2 with prior knowledge; each request is routed on its
    /// own by the L7 path.
    Http2,
    /// An HTTP port (http, http2, grpc-web): the client speaks HTTP/1.x or HTTP/2, as its
    /// first bytes tell; each request is routed on its own by the L7 path.
    Http,
    /// Any other port: the connection is relayed as a whole.
    Tcp(TcpRoute),
}

/// A Service port relayed as TCP, with the endpoints of this config generation.
#[derive(Clone, Debug)]
pub struct TcpRoute {
    pub service_name: String,
    pub namespace: String,
    pub port: u16,
    pub endpoints: Vec<SocketAddr>,
}

impl TcpRoute {
    /// Istio's name for the Service port's Envoy cluster.
    pub fn cluster_name(&self) -> String {
        let fqdn = crate::config::fqdn(&self.service_name, &self.namespace);
        crate::config::cluster_name(&fqdn, self.port, None)
    }

    pub fn balance_key(&self) -> crate::balance::BalanceKey {
        (
            crate::config::fqdn(&self.service_name, &self.namespace),
            self.port,
        )
    }
}

/// A captured connection's original destination is no Service port in the config (gone since,
/// or never was). strait never relays to an address it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoute(pub SocketAddr);

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is no Service port", self.0)
    }
}

/// Finds the Service port a captured connection was addressed to, and how it is served.
pub fn connection(model: &Model, original_dst: SocketAddr) -> Result<ConnectionRoute, NoRoute> {
    let port = model
        .service_port_by_addr(original_dst)
        .ok_or(NoRoute(original_dst))?;
    let protocol = port.classification().protocol;
    if protocol.is_http2_only() {
        return Ok(ConnectionRoute::Http2);
    }
    if protocol.is_l7() {
        return Ok(ConnectionRoute::Http);
    }
    let service = port.service();
    Ok(ConnectionRoute::Tcp(TcpRoute {
        service_name: service.name.clone(),
        namespace: service.namespace.clone(),
        port: port.port(),
        endpoints: port.endpoints().iter().map(|e| e.addr).collect(),
    }))
}
