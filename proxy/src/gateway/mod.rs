//! Istio Gateways: `strait run --gateway-labels K=V,... --gateway-bind IP` serves the Gateways
//! whose `selector` those labels satisfy ([`crate::config::gateway`] resolves them), one
//! listener per port at `--gateway-bind:port`, following config generations: new ports are
//! bound, removed ones closed, unchanged ones kept; connections in flight go on.
//!
//! A connection, in order: a port with TLS servers reads the ClientHello ([`tls`]) and picks
//! the server by SNI; PASSTHROUGH relays the bytes to the `tls[]` route's destination, others
//! terminate TLS with the server's certificate (and, MUTUAL, verify the client's). Then, as on
//! cleartext ports, HTTP/2 or HTTP/1.1 is served by [`crate::l7`], each request routed by the
//! gateway's routes for its host ([`Destination::Gateway`]).

mod tls;

use std::{collections::HashMap, net::IpAddr, net::SocketAddr, sync::Arc};

use http::Request;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    config::{
        gateway::GatewayTarget, resources::Labels, route::RequestHead, split_authority, Host,
        HttpRoute, Model,
    },
    handover::{self, Port},
    l7::{self, Destination},
    listener::{accept_each, Outbound},
};

/// `--gateway-labels` and `--gateway-bind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    pub labels: Arc<Labels>,
    pub bind: IpAddr,
}

/// Parses `K=V,K=V`.
pub fn parse_labels(written: &str) -> Result<Labels, String> {
    written
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(format!("{pair:?} is not KEY=VALUE")),
        })
        .collect()
}

/// The route a request (`head`) at a gateway port takes: by its host, without the port.
pub(crate) fn http_route<'m, B>(
    model: &'m Model,
    target: &GatewayTarget,
    request: &Request<B>,
    head: RequestHead<'_>,
) -> Option<&'m HttpRoute> {
    let host = match split_authority(l7::authority(request)?)?.0 {
        Host::Name(name) => name.to_owned(),
        Host::Ip(ip) => ip.to_string(),
    };
    model.gateways().http_route(target, &host, head)
}

/// Serves the gateway ports of each config generation until `shutdown`; `bound` is told once
/// the first generation's ports are listening (or could not be bound).
pub async fn serve(
    options: GatewayOptions,
    sharing: Port,
    mut model: watch::Receiver<Arc<Model>>,
    outbound: Arc<Outbound>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    bound: tokio::sync::oneshot::Sender<()>,
) {
    let mut bound = Some(bound);
    let mut listening: HashMap<u16, CancellationToken> = HashMap::new();
    loop {
        let wanted = {
            let current = model.borrow_and_update();
            report_unserved(&current, &options.labels);
            ports(&current, &options.labels)
        };
        listening.retain(|port, stop| {
            let keep = wanted.contains(port);
            if !keep {
                info!(port, "gateway port no longer served: closing its listener");
                stop.cancel();
            }
            keep
        });
        for port in wanted {
            if listening.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::new(options.bind, port);
            match handover::bind(addr, "gateway", sharing) {
                Ok(listener) => {
                    info!(%addr, "gateway listening");
                    let stop = shutdown.child_token();
                    let port = GatewayPort {
                        target: GatewayTarget {
                            labels: options.labels.clone(),
                            port,
                        },
                        model: model.clone(),
                        outbound: outbound.clone(),
                    };
                    tokio::spawn(Arc::new(port).accept(listener, stop.clone(), tracker.clone()));
                    listening.insert(addr.port(), stop);
                }
                // Tried again on the next generation.
                Err(err) => warn!(err = format!("{err:#}"), "cannot bind a gateway port"),
            }
        }
        if let Some(bound) = bound.take() {
            let _ = bound.send(());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = model.changed() => if changed.is_err() { return },
        }
    }
}

/// Says which servers of the Gateways this strait serves cannot be served, and why.
fn report_unserved(model: &Model, labels: &Labels) {
    for gateway in model.gateways().served(labels) {
        for (index, why) in &gateway.unserved {
            let (namespace, name) = (&gateway.namespace, &gateway.name);
            let field = format!("spec.servers[{index}].{}", why.field);
            warn!(gateway = %format!("{namespace}/{name}"), field, "{}", why.message);
        }
    }
}

/// The ports of the servers of the Gateways `labels` select.
fn ports(model: &Model, labels: &Labels) -> Vec<u16> {
    let mut ports: Vec<u16> = model
        .gateways()
        .served(labels)
        .flat_map(|gateway| gateway.servers.iter().map(|server| server.port))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// One gateway port's listener.
struct GatewayPort {
    target: GatewayTarget,
    model: watch::Receiver<Arc<Model>>,
    outbound: Arc<Outbound>,
}

impl GatewayPort {
    async fn accept(
        self: Arc<Self>,
        listener: TcpListener,
        stop: CancellationToken,
        tracker: TaskTracker,
    ) {
        accept_each(listener, stop, tracker, move |stream, client| {
            let port = self.clone();
            async move { port.handle(stream, client).await }
        })
        .await;
    }

    /// With the generation current at accept: its servers and certificates.
    async fn handle(&self, client: TcpStream, client_addr: SocketAddr) {
        let _ = client.set_nodelay(true);
        let model = self.model.borrow().clone();
        let tls = model
            .gateways()
            .servers_on(&self.target)
            .any(|(_, server)| server.mode.is_tls());
        let destination = Destination::Gateway(self.target.clone());
        if !tls {
            return self
                .outbound
                .serve_http(client, client_addr, destination)
                .await;
        }
        match tls::accept(client, &model, &self.target).await {
            Ok(tls::Accepted::Terminated { stream, h2 }) => {
                let l7 = self.outbound.l7.clone();
                match h2 {
                    true => l7.serve_h2(stream, client_addr, destination).await,
                    false => l7.serve_http1(stream, client_addr, destination).await,
                }
            }
            Ok(tls::Accepted::Passthrough {
                client,
                hello,
                route,
            }) => {
                self.outbound
                    .proxy_tcp(client, client_addr, route, &hello)
                    .await
            }
            Err(refused) => {
                debug!(client = %client_addr, port = self.target.port, %refused, "gateway connection refused")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let labels = parse_labels("istio=ingressgateway,app=edge").unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels["istio"], "ingressgateway");
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("istio").unwrap_err().contains("KEY=VALUE"));
    }
}
