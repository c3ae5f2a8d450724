//! The outbound listener: where captured connections arrive. Each connection is routed by its
//! original destination: gRPC and HTTP ports go to the L7 path ([`crate::l7`]), the others
//! are relayed to an endpoint of the Service port. On HTTP ports the client's first bytes tell
//! HTTP/2 from HTTP/1.x; gRPC ports take HTTP/2 only. An uncaptured connection is served only
//! if it speaks HTTP, each request routed by its `:authority` or `Host`.

use std::{
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    balance::RoundRobin,
    capture::OriginalDst,
    config::Model,
    l7::{self, ClientProtocol, Destination, L7Proxy},
    route::{self, ConnectionRoute, TcpRoute},
    telemetry::{
        access_log::{AccessEntry, AccessLog},
        Peer, Peers, ResponseFlags, TcpLabels, TcpMetrics,
    },
    upstream,
};

/// What every connection handler shares.
pub struct Outbound {
    pub model: watch::Receiver<Arc<Model>>,
    pub original_dst: OriginalDst,
    pub balancer: RoundRobin,
    pub metrics: Arc<TcpMetrics>,
    pub connect_timeout: Duration,
    pub l7: Arc<L7Proxy>,
    /// `--access-log`: a line per relayed connection.
    pub access_log: Option<AccessLog>,
}

/// Accepts on `listener` until `stop`, each connection handled by `handle` in a task on
/// `tracker` (so the caller can drain them).
pub(crate) async fn accept_each<F, H>(
    listener: TcpListener,
    stop: CancellationToken,
    tracker: TaskTracker,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, client)) => {
                tracker.spawn(handle(stream, client));
            }
            // Out of fds and the like: keep serving the connections we have.
            Err(err) => {
                warn!(%err, addr = ?listener.local_addr().ok(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Endpoints tried for one connection before giving up with UF.
const MAX_CONNECT_ATTEMPTS: usize = 3;

impl Outbound {
    /// Accepts until `shutdown`; handlers run on `tracker` so the caller can drain them.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) {
        accept_each(listener, shutdown, tracker, move |stream, client| {
            let outbound = self.clone();
            async move { outbound.handle(stream, client).await }
        })
        .await;
    }

    async fn handle(&self, client: TcpStream, client_addr: SocketAddr) {
        let _ = client.set_nodelay(true);
        let Some(original_dst) = self.original_dst.lookup(&client) else {
            // Not captured: only HTTP can be routed, by each request's authority.
            return self
                .serve_http(client, client_addr, Destination::Authority)
                .await;
        };
        let model = self.model.borrow().clone();
        match route::connection(&model, original_dst) {
            Ok(ConnectionRoute::Http2) => {
                let destination = Destination::OriginalDst(original_dst);
                self.l7
                    .clone()
                    .serve_h2(client, client_addr, destination)
                    .await
            }
            Ok(ConnectionRoute::Http) => {
                let destination = Destination::OriginalDst(original_dst);
                self.serve_http(client, client_addr, destination).await
            }
            Ok(ConnectionRoute::Tcp(route)) => {
                self.proxy_tcp(client, client_addr, route, &[]).await
            }
            // Closing is the only safe answer: relaying to the connection's own destination
            // would make strait an open proxy.
            Err(no_route) => {
                warn!(client = %client_addr, %no_route, "closing connection: no route")
            }
        }
    }

    /// Serves a connection whose client speaks HTTP/2 or HTTP/1.x, as its first bytes tell.
    pub(crate) async fn serve_http(
        &self,
        client: TcpStream,
        client_addr: SocketAddr,
        to: Destination,
    ) {
        let l7 = self.l7.clone();
        match l7::sniff(client).await {
            Some((ClientProtocol::Http2, client)) => l7.serve_h2(client, client_addr, to).await,
            Some((ClientProtocol::Http1, client)) => l7.serve_http1(client, client_addr, to).await,
            None => debug!(client = %client_addr, "closing connection: it sent nothing"),
        }
    }

    /// Relays the connection to an endpoint of `route`; `already_read` (what was read from the
    /// client to route it) goes first.
    pub(crate) async fn proxy_tcp(
        &self,
        client: TcpStream,
        client_addr: SocketAddr,
        route: TcpRoute,
        already_read: &[u8],
    ) {
        let started = Instant::now();
        let began = SystemTime::now();
        let connected = self.connect(&route).await;
        // Counted once the endpoint is known, so that opened and closed carry the same peers.
        let peers = {
            let model = self.model.borrow();
            Peers {
                source: Peer::at(&model, client_addr.ip()),
                destination: match &connected {
                    Ok((_, endpoint)) => Peer::at(&model, endpoint.ip()),
                    Err(_) => Peer::unknown(),
                },
            }
        };
        let labels =
            |flags| TcpLabels::new(peers.clone(), &route.service_name, &route.namespace, flags);
        self.metrics.connection_opened(&labels(ResponseFlags::NONE));
        let (flags, relayed, upstream_host) = match connected {
            Err(flags) => (flags, None, None),
            Ok((mut upstream, endpoint)) => {
                debug!(client = %client_addr, %endpoint, service = %route.service_name, "relaying");
                let mut relayed = match upstream.write_all(already_read).await {
                    Ok(()) => upstream::relay(client, upstream).await,
                    Err(err) => upstream::Relayed {
                        error: Some(err),
                        ..Default::default()
                    },
                };
                relayed.from_client += already_read.len() as u64;
                (ResponseFlags::NONE, Some(relayed), Some(endpoint))
            }
        };
        let bytes = relayed.as_ref().map(|r| (r.from_client, r.to_client));
        let lasted = started.elapsed();
        self.metrics
            .connection_closed(&labels(flags), bytes, lasted);
        if let Some(log) = &self.access_log {
            let (bytes_received, bytes_sent) = bytes.unwrap_or_default();
            log.log(AccessEntry {
                start_time: Some(began),
                response_flags: flags,
                bytes_received,
                bytes_sent,
                duration: lasted,
                upstream_host,
                upstream_cluster: Some(route.cluster_name()),
                downstream_remote_address: Some(client_addr),
                ..AccessEntry::default()
            });
        }
        match relayed {
            Some(relayed) => {
                if let Some(err) = relayed.error {
                    debug!(client = %client_addr, %err, "connection ended with an error");
                }
            }
            None => {
                info!(client = %client_addr, service = %route.service_name, port = route.port, %flags, "no upstream")
            }
        }
    }

    /// Connects to the next endpoint in turn, falling over to the following ones on failure.
    async fn connect(&self, route: &TcpRoute) -> Result<(TcpStream, SocketAddr), ResponseFlags> {
        if route.endpoints.is_empty() {
            return Err(ResponseFlags::NO_HEALTHY_UPSTREAM);
        }
        let order = self
            .balancer
            .order(&route.balance_key(), route.endpoints.len());
        for index in order.take(MAX_CONNECT_ATTEMPTS) {
            let endpoint = route.endpoints[index];
            match upstream::connect(endpoint, self.connect_timeout).await {
                Ok(stream) => return Ok((stream, endpoint)),
                Err(err) => debug!(%endpoint, %err, "connect failed"),
            }
        }
        Err(ResponseFlags::UPSTREAM_CONNECT_FAILURE)
    }
}
