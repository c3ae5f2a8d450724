//! One endpoint's load as the balancer sees it, and the handle a request holds while it uses it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use super::{
    ewma::PeakEwma,
    lock,
    outlier::{Counters, Ejection, Reporter},
};
use crate::config::TryOutcome;

/// Shared by the balancer and the picks in flight to the endpoint.
#[derive(Debug)]
pub(super) struct Endpoint {
    addr: SocketAddr,
    active: AtomicUsize,
    total: AtomicU64,
    latency: Mutex<PeakEwma>,
    counters: Counters,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, now: Instant) -> Self {
        Self {
            addr,
            active: AtomicUsize::new(0),
            total: AtomicU64::new(0),
            latency: Mutex::new(PeakEwma::new(now)),
            counters: Counters::default(),
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

    /// Its outlier detection counts.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Peak-EWMA's cost of one more request here.
    pub fn cost(&self, now: Instant) -> f64 {
        lock(&self.latency).cost(self.active(), now)
    }

    fn observe(&self, latency: Duration, now: Instant) {
        lock(&self.latency).observe(latency, now);
    }
}

/// An endpoint in use by one request (one try): it counts as active until this is dropped,
/// [`Pick::observe`] feeds its latency estimate, and [`Pick::report`] its outlier detection.
#[derive(Debug)]
#[must_use = "an endpoint counts as busy only while its Pick is held"]
pub struct Pick {
    endpoint: Arc<Endpoint>,
    /// Present while the pick was made under an `outlierDetection` and has not reported yet.
    reporter: Option<Reporter>,
}

impl Pick {
    pub(super) fn start(endpoint: Arc<Endpoint>, reporter: Option<Reporter>) -> Self {
        endpoint.active.fetch_add(1, Relaxed);
        endpoint.total.fetch_add(1, Relaxed);
        Self { endpoint, reporter }
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

    /// Reports how the try ended, for outlier detection: once, when its response ended (so a
    /// `grpc-status` in trailers counts) or the try failed; a try has one outcome, and later
    /// reports are ignored. Not for failures that are strait's own (no route, overflow).
    /// Returns the ejection it caused, for the caller's metrics and logs. Without an
    /// `outlierDetection` in the policy the pick was made under, nothing is counted.
    pub fn report(&mut self, outcome: TryOutcome) -> Option<Ejection> {
        let reporter = self.reporter.take()?;
        reporter.report(&self.endpoint, outcome, Instant::now)
    }

    #[cfg(test)]
    pub(super) fn report_at(&mut self, outcome: TryOutcome, now: Instant) -> Option<Ejection> {
        let reporter = self.reporter.take()?;
        reporter.report(&self.endpoint, outcome, || now)
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.endpoint.active.fetch_sub(1, Relaxed);
    }
}
