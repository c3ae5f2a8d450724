//! HTTP/1.x clients on HTTP ports. strait serves their connections with hyper's HTTP/1.1
//! server (keep-alive, pipelined requests answered in order, chunked bodies, `Connection:
//! close`) and sends each request down the same path as HTTP/2 ones ([`L7Proxy::forward`]):
//! route, retries, timeouts, balancing, outlier detection, metrics.
//!
//! Upgrades, as Istio configures Envoy: a WebSocket handshake is relayed (to the endpoint
//! over HTTP/1.1 whatever the port's policy); when the endpoint answers 101, the client's
//! connection and the endpoint's are joined byte for byte until either closes. CONNECT and
//! other upgrades get 403 (Envoy's `upgrade_failed`) and the connection is closed after it,
//! as Envoy closes it, so that nothing the client sent after the request is read as another
//! request. `Upgrade: h2c` is ignored: the request is served as HTTP/1.1.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use http::{header::CONNECTION, HeaderValue, Request, Response, StatusCode};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use super::{
    headers::{self, Upgrade},
    until_drained, Destination, L7Proxy, ProxyBody,
};

impl L7Proxy {
    /// Serves one client connection speaking HTTP/1.x until it closes (or is upgraded).
    pub async fn serve_http1<I>(
        self: Arc<Self>,
        client: I,
        client_addr: SocketAddr,
        destination: Destination,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let drain = self.drain.clone();
        let service = service_fn(move |request| {
            let proxy = self.clone();
            let destination = destination.clone();
            // Boxed, as HTTP/2's: a request's state is kilobytes, cheaper moved as a pointer.
            Box::pin(async move {
                let response = proxy.forward_http1(request, destination, client_addr).await;
                Ok::<_, Infallible>(response)
            })
        });
        // No header read timeout: hyper's also runs while a kept-alive connection waits for
        // its next request, and the TCP relay this replaces closed no idle connection.
        let connection = http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(TokioIo::new(client), service)
            .with_upgrades();
        // The response in flight goes with `Connection: close`; an idle connection closes.
        let ended = until_drained(&drain, connection, |c| c.graceful_shutdown()).await;
        if let Err(err) = ended {
            debug!(client = %client_addr, %err, "HTTP/1 connection ended with an error");
        }
    }

    async fn forward_http1(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        destination: Destination,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        let upgrade = headers::upgrade(&request);
        let client_side = match upgrade {
            Some(Upgrade::WebSocket) => Some(hyper::upgrade::on(&mut request)),
            _ => None,
        };
        let mut response = self.forward(request, destination, client).await;
        if let Some(client_side) = client_side {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let upstream_side = hyper::upgrade::on(&mut response);
                tokio::spawn(join_upgraded(client_side, upstream_side));
            }
        }
        if upgrade == Some(Upgrade::Refused) {
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(CONNECTION, close);
        }
        response
    }
}

/// Relays an upgraded connection both ways, once both sides have switched.
async fn join_upgraded(client: OnUpgrade, upstream: OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(err) => return debug!(%err, "upgrade abandoned"),
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        debug!(%err, "upgraded connection ended with an error");
    }
}
