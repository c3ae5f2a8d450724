//! One endpoint's load as the balancer sees it, and the handle a request holds while it uses it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use super::{ewma::PeakEwma, lock};

/// Shared by the balancer and the picks in flight to the endpoint.
#[derive(Debug)]
pub(super) struct Endpoint {
    addr: SocketAddr,
    active: AtomicUsize,
    total: AtomicU64,
    latency: Mutex<PeakEwma>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            active: AtomicUsize::new(0),
            total: AtomicU64::new(0),
            latency: Mutex::new(PeakEwma::new(now)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests in flight.
    pub fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Requests ever sent.
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    pub fn latency(&self, now: Instant) -> Duration {
        lock(&self.latency).estimate(now)
    }

    /// Peak-EWMA's cost of one more request here.
    pub fn cost(&self, now: Instant) -> f64 {
        lock(&self.latency).cost(self.active(), now)
    }

    fn observe(&self, latency: Duration, now: Instant) {
        lock(&self.latency).observe(latency, now);
    }
}

/// An endpoint in use by one request: it counts as active until this is dropped, and
/// [`Pick::observe`] feeds its latency estimate.
#[derive(Debug)]
#[must_use = "an endpoint counts as busy only while its Pick is held"]
pub struct Pick {
    endpoint: Arc<Endpoint>,
}

impl Pick {
    pub(super) fn start(endpoint: Arc<Endpoint>) -> Self {
        endpoint.active.fetch_add(1, Relaxed);
        endpoint.total.fetch_add(1, Relaxed);
        Self { endpoint }
    }

    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// Records how long the endpoint took to answer: for a request, the time to its response
    /// headers (what the endpoint controls; a stream's length is the caller's).
    pub fn observe(&self, latency: Duration) {
        self.observe_at(latency, Instant::now());
    }

    pub(super) fn observe_at(&self, latency: Duration, now: Instant) {
        self.endpoint.observe(latency, now);
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Relaxed);
    }
}
