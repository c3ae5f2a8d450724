//! HTTP/2 connections to endpoints, shared by all requests to them.
//!
//! Each endpoint has a few connections; a request takes the least loaded one that has room, and a
//! new connection is opened when all are at their stream target, so one connection's lock does
//! not serialize a busy endpoint. Past `max_connections` (DestinationRule
//! `connectionPool.tcp.maxConnections`) with every connection full, a request fails fast
//! ([`PoolError::Overflow`], Envoy's UO) instead of queueing without bound.

use std::{
    collections::HashMap,
    net::SocketAddr,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use http_body::Body;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::debug;

use super::connect;
use crate::config::ConnectionPool;

/// Limits for one endpoint's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections to the endpoint. (Envoy counts `maxConnections` over the whole Service
    /// port; strait applies it per endpoint for now, which is stricter only with one endpoint.)
    pub max_connections: usize,
    /// Streams per connection before another connection is preferred.
    pub streams_per_connection: usize,
    /// Requests a connection carries in its life (`maxRequestsPerConnection`); then it is
    /// retired: it takes no new request and closes once its last one ends.
    pub requests_per_connection: Option<NonZeroU32>,
    pub connect_timeout: Duration,
    /// HTTP/1.1: requests waiting for a connection once `max_connections` are busy
    /// (`http1MaxPendingRequests`, per endpoint too); past them a request overflows.
    pub max_pending: usize,
    /// HTTP/1.1: an idle connection older than this is not reused.
    pub idle_timeout: Duration,
}

/// Streams a connection carries before strait prefers opening another, when the
/// DestinationRule sets no `maxConcurrentStreams`: spreading a busy endpoint over a few
/// connections keeps one connection's lock from serializing it.
const DEFAULT_STREAMS_PER_CONNECTION: usize = 100;

impl From<&ConnectionPool> for Limits {
    fn from(pool: &ConnectionPool) -> Self {
        Self {
            max_connections: pool.max_connections as usize,
            streams_per_connection: pool
                .max_concurrent_streams
                .map_or(DEFAULT_STREAMS_PER_CONNECTION, |n| n.get() as usize),
            requests_per_connection: pool.max_requests_per_connection,
            connect_timeout: pool.connect_timeout,
            max_pending: pool.http1_max_pending_requests as usize,
            idle_timeout: pool.idle_timeout,
        }
    }
}

impl Default for Limits {
    /// Istio's defaults.
    fn default() -> Self {
        Self::from(&ConnectionPool::default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        endpoint: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP handshake with {endpoint}: {source}")]
    Handshake {
        endpoint: SocketAddr,
        source: hyper::Error,
    },
    #[error("{endpoint}: all {connections} connections are full")]
    Overflow {
        endpoint: SocketAddr,
        connections: usize,
    },
}

/// Connections to every endpoint, sending request bodies of type `B`.
pub struct Pool<B> {
    endpoints: Mutex<HashMap<SocketAddr, Connections<B>>>,
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Self {
            endpoints: Mutex::default(),
        }
    }
}

struct Connections<B> {
    open: Vec<Connection<B>>,
    /// Connects in progress count against the limit, so a burst does not overshoot it.
    connecting: usize,
}

impl<B> Default for Connections<B> {
    fn default() -> Self {
        Self {
            open: Vec::new(),
            connecting: 0,
        }
    }
}

struct Connection<B> {
    sender: SendRequest<B>,
    /// Streams in flight.
    streams: Arc<AtomicUsize>,
    /// Streams ever carried.
    used: Arc<AtomicUsize>,
}

/// A stream slot on a connection, held until the response is done.
pub struct Checkout<B> {
    pub sender: SendRequest<B>,
    streams: Arc<AtomicUsize>,
    first_use: bool,
}

impl<B> Checkout<B> {
    /// Whether this is the connection's first stream, whose latency includes warming the
    /// connection up (settings exchange, window growth, the server's lazy setup) and so says
    /// little about the endpoint.
    pub fn is_first_use(&self) -> bool {
        self.first_use
    }
}

impl<B> Drop for Checkout<B> {
    fn drop(&mut self) {
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<B> Pool<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A connection to `endpoint` with room for one more stream, opening one if needed.
    pub async fn checkout(
        &self,
        endpoint: SocketAddr,
        limits: &Limits,
    ) -> Result<Checkout<B>, PoolError> {
        if let Some(checkout) = self.reuse_or_reserve(endpoint, limits)? {
            return Ok(checkout);
        }
        let opened = open(endpoint, limits.connect_timeout).await;
        let mut endpoints = self.lock();
        let connections = endpoints.entry(endpoint).or_default();
        // The entry may have been pruned and recreated meanwhile.
        connections.connecting = connections.connecting.saturating_sub(1);
        let connection = opened?;
        let checkout = claim(&connection);
        connections.open.push(connection);
        Ok(checkout)
    }

    /// The least loaded open connection with room, or `None` with a connect reserved for the
    /// caller, or overflow when every connection is full and no more may be opened.
    fn reuse_or_reserve(
        &self,
        endpoint: SocketAddr,
        limits: &Limits,
    ) -> Result<Option<Checkout<B>>, PoolError> {
        let mut endpoints = self.lock();
        let connections = endpoints.entry(endpoint).or_default();
        // Closed connections go, and so do retired ones (their streams in flight keep them).
        connections
            .open
            .retain(|c| !c.sender.is_closed() && !c.is_retired(limits));
        let least_loaded = connections
            .open
            .iter()
            .filter(|c| c.sender.is_ready())
            .min_by_key(|c| c.streams.load(Ordering::Relaxed));
        if let Some(c) = least_loaded
            .filter(|c| c.streams.load(Ordering::Relaxed) < limits.streams_per_connection)
        {
            return Ok(Some(claim(c)));
        }
        let total = connections.open.len() + connections.connecting;
        if total >= limits.max_connections {
            return Err(PoolError::Overflow {
                endpoint,
                connections: total,
            });
        }
        connections.connecting += 1;
        Ok(None)
    }

    /// Connections open to `endpoint` (closed ones not yet pruned left out), for `/clusters`.
    pub fn connections(&self, endpoint: SocketAddr) -> usize {
        self.lock().get(&endpoint).map_or(0, |connections| {
            let open = connections.open.iter();
            open.filter(|c| !c.sender.is_closed()).count()
        })
    }

    /// Drops the connections of endpoints that are no longer in the config.
    pub fn retain_endpoints(&self, keep: impl Fn(&SocketAddr) -> bool) {
        self.lock().retain(|endpoint, _| keep(endpoint));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Connections<B>>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<B> Connection<B> {
    fn is_retired(&self, limits: &Limits) -> bool {
        limits
            .requests_per_connection
            .is_some_and(|max| self.used.load(Ordering::Relaxed) >= max.get() as usize)
    }
}

fn claim<B>(connection: &Connection<B>) -> Checkout<B> {
    connection.streams.fetch_add(1, Ordering::Relaxed);
    Checkout {
        sender: connection.sender.clone(),
        streams: connection.streams.clone(),
        first_use: connection.used.fetch_add(1, Ordering::Relaxed) == 0,
    }
}

async fn open<B>(endpoint: SocketAddr, timeout: Duration) -> Result<Connection<B>, PoolError>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connect(endpoint, timeout)
        .await
        .map_err(|source| PoolError::Connect { endpoint, source })?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .adaptive_window(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| PoolError::Handshake { endpoint, source })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(%endpoint, %err, "upstream HTTP/2 connection ended");
        }
    });
    Ok(Connection {
        sender,
        streams: Arc::default(),
        used: Arc::default(),
    })
}

#[cfg(test)]
mod tests;
