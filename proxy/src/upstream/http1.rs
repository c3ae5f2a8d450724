//! HTTP/1.1 connections to endpoints, kept alive and reused, one request at a time each.
//!
//! Envoy's HTTP/1 pool, per endpoint: a request takes the most recently used idle connection,
//! else opens one while fewer than `max_connections` are open, else waits in line for one
//! while fewer than `max_pending` wait, else fails fast ([`PoolError::Overflow`], UO). A
//! connection goes back when its request is done (response ended, hyper ready for the next)
//! and straight to the first request in line; it is closed after `requests_per_connection`
//! requests, and not reused once idle for `idle_timeout` (checked when one is taken).
//!
//! Every connection counts against the limit from the moment it is reserved ([`Slot`]) until it
//! closes; the counted things ([`Slot`], [`Checkout`]) give their place back when dropped, so
//! a request that gives up (deadline, client gone) never leaks one.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, MutexGuard},
};

use http_body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::{sync::oneshot, time::Instant};
use tracing::debug;

use super::{
    connect,
    pool::{Limits, PoolError},
};

/// Connections to every endpoint, sending request bodies of type `B`.
pub struct Pool<B: Send + 'static> {
    endpoints: Mutex<HashMap<SocketAddr, Arc<Endpoint<B>>>>,
}

impl<B: Send + 'static> Default for Pool<B> {
    fn default() -> Self {
        Self {
            endpoints: Mutex::default(),
        }
    }
}

struct Endpoint<B: Send + 'static> {
    addr: SocketAddr,
    state: Mutex<State<B>>,
}

struct State<B: Send + 'static> {
    /// Most recently used last.
    idle: Vec<Idle<B>>,
    /// Connections open or being opened, idle or busy.
    open: usize,
    /// Requests waiting for a connection, first come first served.
    waiting: VecDeque<oneshot::Sender<Handoff<B>>>,
}

struct Connection<B> {
    sender: SendRequest<B>,
    /// Requests it carried, the current one included.
    requests: u32,
}

struct Idle<B> {
    connection: Connection<B>,
    since: Instant,
}

/// What a waiting request is given: a connection, or a place to open one (another closed).
enum Handoff<B: Send + 'static> {
    Connection(Checkout<B>),
    Slot(Slot<B>),
}

/// A place for one connection to an endpoint, reserved until the connection is open.
struct Slot<B: Send + 'static> {
    /// `None` once its place passed to the connection it opened.
    endpoint: Option<Arc<Endpoint<B>>>,
}

/// A connection for one request; it goes back to the pool when dropped.
pub struct Checkout<B: Send + 'static> {
    /// `None` once given back.
    connection: Option<Connection<B>>,
    endpoint: Arc<Endpoint<B>>,
    max_requests: Option<NonZeroU32>,
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// A connection to `endpoint` for one request: an idle one, a new one, or the first that
    /// comes back.
    pub async fn checkout(
        &self,
        endpoint: SocketAddr,
        limits: &Limits,
    ) -> Result<Checkout<B>, PoolError> {
        loop {
            let endpoint = self.endpoint(endpoint);
            let slot = match endpoint.take(limits)? {
                Taken::Idle(checkout) => return Ok(checkout),
                Taken::Slot(slot) => slot,
                Taken::Wait(handoff) => match handoff.await {
                    Ok(Handoff::Connection(checkout)) => return Ok(checkout),
                    Ok(Handoff::Slot(slot)) => slot,
                    // The endpoint left the config meanwhile: start over.
                    Err(_) => continue,
                },
            };
            return slot.open(limits).await;
        }
    }

    /// Connections open or opening to `endpoint`, idle or busy, for `/clusters`.
    pub fn connections(&self, endpoint: SocketAddr) -> usize {
        let endpoint = lock(&self.endpoints).get(&endpoint).cloned();
        endpoint.map_or(0, |endpoint| lock(&endpoint.state).open)
    }

    /// Drops the idle connections and waiting lines of endpoints that are no longer in the
    /// config; connections in use close when their requests end.
    pub fn retain_endpoints(&self, keep: impl Fn(&SocketAddr) -> bool) {
        lock(&self.endpoints).retain(|endpoint, _| keep(endpoint));
    }

    fn endpoint(&self, addr: SocketAddr) -> Arc<Endpoint<B>> {
        lock(&self.endpoints)
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    addr,
                    state: Mutex::new(State {
                        idle: Vec::new(),
                        open: 0,
                        waiting: VecDeque::new(),
                    }),
                })
            })
            .clone()
    }
}

enum Taken<B: Send + 'static> {
    Idle(Checkout<B>),
    Slot(Slot<B>),
    Wait(oneshot::Receiver<Handoff<B>>),
}

impl<B: Send + 'static> Endpoint<B> {
    fn take(self: &Arc<Self>, limits: &Limits) -> Result<Taken<B>, PoolError> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let before = state.idle.len();
        state.idle.retain(|idle| {
            !idle.connection.sender.is_closed() && now - idle.since < limits.idle_timeout
        });
        state.open -= before - state.idle.len();
        if let Some(idle) = state.idle.pop() {
            let max_requests = limits.requests_per_connection;
            return Ok(Taken::Idle(self.lend(idle.connection, max_requests)));
        }
        if state.open < limits.max_connections {
            state.open += 1;
            return Ok(Taken::Slot(Slot {
                endpoint: Some(self.clone()),
            }));
        }
        state.waiting.retain(|waiter| !waiter.is_closed());
        if state.waiting.len() < limits.max_pending {
            let (handoff, wait) = oneshot::channel();
            state.waiting.push_back(handoff);
            return Ok(Taken::Wait(wait));
        }
        Err(PoolError::Overflow {
            endpoint: self.addr,
            connections: state.open,
        })
    }

    /// `connection` for one more request.
    fn lend(
        self: &Arc<Self>,
        mut connection: Connection<B>,
        max_requests: Option<NonZeroU32>,
    ) -> Checkout<B> {
        connection.requests += 1;
        Checkout {
            connection: Some(connection),
            endpoint: self.clone(),
            max_requests,
        }
    }

    /// A connection is ready for another request: to the first in line, else idle.
    fn give_back(self: &Arc<Self>, connection: Connection<B>, max_requests: Option<NonZeroU32>) {
        let mut state = lock(&self.state);
        let checkout = self.lend(connection, max_requests);
        let unclaimed = hand_over(&mut state, Handoff::Connection(checkout));
        if let Some(Handoff::Connection(mut checkout)) = unclaimed {
            // Taken out, the checkout is dropped as an empty shell.
            if let Some(mut connection) = checkout.connection.take() {
                connection.requests -= 1;
                let since = Instant::now();
                state.idle.push(Idle { connection, since });
            }
        }
    }

    /// A connection closed (or was never opened): its place to the first in line, else free.
    fn release(self: &Arc<Self>) {
        let mut state = lock(&self.state);
        let slot = Slot {
            endpoint: Some(self.clone()),
        };
        if let Some(Handoff::Slot(mut unclaimed)) = hand_over(&mut state, Handoff::Slot(slot)) {
            unclaimed.endpoint = None;
            state.open -= 1;
        }
    }
}

/// Gives `handoff` to the first request still waiting; returns it when none is.
fn hand_over<B: Send + 'static>(
    state: &mut State<B>,
    mut handoff: Handoff<B>,
) -> Option<Handoff<B>> {
    while let Some(waiter) = state.waiting.pop_front() {
        match waiter.send(handoff) {
            Ok(()) => return None,
            Err(unclaimed) => handoff = unclaimed,
        }
    }
    Some(handoff)
}

impl<B> Slot<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Opens the connection this slot was reserved for (marked socket, connect timeout).
    async fn open(mut self, limits: &Limits) -> Result<Checkout<B>, PoolError> {
        let endpoint = self.endpoint.clone().expect("an unused slot");
        let addr = endpoint.addr;
        let stream = connect(addr, limits.connect_timeout)
            .await
            .map_err(|source| PoolError::Connect {
                endpoint: addr,
                source,
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| PoolError::Handshake {
                endpoint: addr,
                source,
            })?;
        // With upgrades: after a 101 the connection is handed to the WebSocket relay.
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                debug!(endpoint = %addr, %err, "upstream HTTP/1.1 connection ended");
            }
        });
        // The place passes to the connection.
        self.endpoint = None;
        let connection = Connection {
            sender,
            requests: 0,
        };
        Ok(endpoint.lend(connection, limits.requests_per_connection))
    }
}

impl<B: Send + 'static> Drop for Slot<B> {
    fn drop(&mut self) {
        if let Some(endpoint) = self.endpoint.take() {
            endpoint.release();
        }
    }
}

impl<B: Send + 'static> Checkout<B> {
    pub fn sender(&mut self) -> &mut SendRequest<B> {
        &mut self.connection.as_mut().expect("checked out").sender
    }

    /// Whether this is the connection's first request.
    pub fn is_first_use(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| c.requests == 1)
    }
}

impl<B: Send + 'static> Drop for Checkout<B> {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let spent = self
            .max_requests
            .is_some_and(|max| connection.requests >= max.get());
        if spent || connection.sender.is_closed() {
            // Dropping the sender closes the connection once it is idle.
            return endpoint.release();
        }
        let max_requests = self.max_requests;
        if connection.sender.is_ready() {
            return endpoint.give_back(connection, max_requests);
        }
        // The response ended, but hyper is not done with the exchange yet (the rest of the
        // request body, or reading the end of the response): back when it is.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return endpoint.release();
        };
        runtime.spawn(async move {
            match connection.sender.ready().await {
                Ok(()) => endpoint.give_back(connection, max_requests),
                Err(_) => endpoint.release(),
            }
        });
    }
}

// What is kept stays consistent whatever a panicking holder left: recover.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
