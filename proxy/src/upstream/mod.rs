//! Connecting to endpoints: raw TCP relays for L4 ports, pooled HTTP/2 ([`pool`]) and
//! HTTP/1.1 ([`http1`]) connections for L7.

pub mod http1;
pub mod pool;

use std::{
    io,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Once,
    },
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use strait_common::PROXY_SOCKET_MARK;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A request's hold on an upstream connection: a stream slot on a shared HTTP/2 connection, or
/// a whole HTTP/1.1 connection. Given back when dropped.
pub enum Lease<B: Send + 'static> {
    Http2(pool::Checkout<B>),
    Http1(http1::Checkout<B>),
}

impl<B> Lease<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Sends `request` once the connection can take it; the response's head.
    pub async fn send(&mut self, request: Request<B>) -> hyper::Result<Response<Incoming>> {
        match self {
            Self::Http2(checkout) => {
                checkout.sender.ready().await?;
                checkout.sender.send_request(request).await
            }
            Self::Http1(checkout) => {
                let sender = checkout.sender();
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// Whether this is the connection's first request, whose latency includes warming it up
    /// and so says little about the endpoint.
    pub fn is_first_use(&self) -> bool {
        match self {
            Self::Http2(checkout) => checkout.is_first_use(),
            Self::Http1(checkout) => checkout.is_first_use(),
        }
    }
}

/// Connects to an endpoint from a socket the kernel programs will not capture (SO_MARK).
pub async fn connect(endpoint: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = match endpoint {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    mark(&socket);
    socket.set_nodelay(true)?;
    tokio::time::timeout(timeout, socket.connect(endpoint))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))?
}

/// Without CAP_NET_ADMIN the mark cannot be set. Endpoints are pod addresses, which the kernel
/// does not capture, so strait still works; it is only less robust against a Service address
/// listed as an endpoint. Say so once.
fn mark(socket: &TcpSocket) {
    static WARN: Once = Once::new();
    if let Err(err) = socket2::SockRef::from(socket).set_mark(PROXY_SOCKET_MARK) {
        WARN.call_once(|| tracing::warn!(%err, "cannot set SO_MARK on upstream sockets"));
    }
}

/// Bytes relayed each way over a finished connection, and how it ended.
#[derive(Debug, Default)]
pub struct Relayed {
    pub from_client: u64,
    pub to_client: u64,
    /// The first I/O error on either side; `None` when both directions ended with EOF.
    pub error: Option<io::Error>,
}

/// Relays both directions. A half-close is passed on: when one side finishes sending, strait shuts
/// down its write side towards the other and keeps relaying the other direction. An error on
/// either side ends both (the other side is closed when the streams drop).
pub async fn relay(mut client: TcpStream, mut upstream: TcpStream) -> Relayed {
    let (from_client, to_client) = (AtomicU64::new(0), AtomicU64::new(0));
    let result = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let up = pump(client_read, upstream_write, &from_client);
        let down = pump(upstream_read, client_write, &to_client);
        tokio::pin!(up, down);
        tokio::select! {
            done = &mut up => match done { Ok(()) => down.await, err => err },
            done = &mut down => match done { Ok(()) => up.await, err => err },
        }
    };
    Relayed {
        from_client: from_client.into_inner(),
        to_client: to_client.into_inner(),
        error: result.err(),
    }
}

/// Copies until EOF, then half-closes the destination. Counts as it goes, so the bytes are known
/// even when the connection ends in an error.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    count: &AtomicU64,
) -> io::Result<()> {
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

const RELAY_BUFFER: usize = 16 * 1024;
