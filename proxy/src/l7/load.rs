//! Requests and retries in flight per Service port, across all its endpoints and connections:
//! what Envoy's cluster-wide circuit breakers measure.
//!
//! - `connectionPool.http.http2MaxRequests`: past that many requests in flight, a new one fails
//!   fast with UNAVAILABLE and UO instead of queueing.
//! - The retry budget (Envoy's `retry_budget`): retries in flight stay under 20 % of requests
//!   in flight, with 3 always allowed so that a quiet Service can still retry, so a failing
//!   Service is not stormed by them. `connectionPool.http.maxRetries` caps them further.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc, RwLock,
    },
};

use crate::balance::BalanceKey;

/// Retries in flight may be this share of requests in flight.
const BUDGET_PERCENT: usize = 20;
/// Retries in flight always allowed, however few requests there are.
const MIN_RETRY_CONCURRENCY: usize = 3;

/// The load of every Service port, kept across config reloads.
#[derive(Default)]
pub struct Loads {
    ports: RwLock<HashMap<BalanceKey, Arc<Load>>>,
}

#[derive(Default)]
struct Load {
    requests: AtomicUsize,
    retries: AtomicUsize,
}

/// The Service port has `max_requests` in flight already (`http2MaxRequests`).
#[derive(Debug, thiserror::Error)]
#[error("{max_requests} requests in flight (http2MaxRequests)")]
pub struct TooManyRequests {
    pub max_requests: u32,
}

impl Loads {
    /// Counts a request to `key` as in flight until the returned guard is dropped, unless
    /// `max_requests` are in flight already.
    pub fn request(
        &self,
        key: &BalanceKey,
        max_requests: u32,
    ) -> Result<ActiveRequest, TooManyRequests> {
        let load = self.load(key);
        load.requests
            .fetch_update(Relaxed, Relaxed, |requests| {
                (requests < max_requests as usize).then_some(requests + 1)
            })
            .map_err(|_| TooManyRequests { max_requests })?;
        Ok(ActiveRequest { load })
    }

    fn load(&self, key: &BalanceKey) -> Arc<Load> {
        let read = self.ports.read().unwrap_or_else(|p| p.into_inner());
        if let Some(load) = read.get(key) {
            return load.clone();
        }
        drop(read);
        let mut write = self.ports.write().unwrap_or_else(|p| p.into_inner());
        write.entry(key.clone()).or_default().clone()
    }
}

/// A request in flight, counted in its Service port's load.
pub struct ActiveRequest {
    load: Arc<Load>,
}

impl ActiveRequest {
    /// A retry in flight, if the budget (and `max_retries`, the pool's cap) has room for one.
    pub fn retry(&self, max_retries: u32) -> Option<ActiveRetry> {
        let load = &self.load;
        let allowed = (load.requests.load(Relaxed) * BUDGET_PERCENT / 100)
            .max(MIN_RETRY_CONCURRENCY)
            .min(max_retries as usize);
        load.retries
            .fetch_update(Relaxed, Relaxed, |retries| {
                (retries < allowed).then_some(retries + 1)
            })
            .ok()?;
        Some(ActiveRetry { load: load.clone() })
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.load.requests.fetch_sub(1, Relaxed);
    }
}

/// A retry in flight, until dropped.
pub struct ActiveRetry {
    load: Arc<Load>,
}

impl Drop for ActiveRetry {
    fn drop(&mut self) {
        self.load.retries.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNLIMITED: u32 = u32::MAX;

    fn key() -> BalanceKey {
        ("greeter.default.svc.cluster.local".into(), 80)
    }

    #[test]
    fn a_quiet_service_may_retry_three_at_once() {
        let loads = Loads::default();
        let request = loads.request(&key(), UNLIMITED).unwrap();
        let retries: Vec<_> = (0..5).filter_map(|_| request.retry(UNLIMITED)).collect();
        assert_eq!(retries.len(), 3);
        drop(retries);
        assert!(
            request.retry(UNLIMITED).is_some(),
            "finished retries free the budget"
        );
    }

    #[test]
    fn retries_stay_under_a_fifth_of_requests_in_flight() {
        let loads = Loads::default();
        let requests: Vec<_> = (0..100)
            .map(|_| loads.request(&key(), UNLIMITED).unwrap())
            .collect();
        let retries: Vec<_> = requests.iter().filter_map(|r| r.retry(UNLIMITED)).collect();
        assert_eq!(retries.len(), 20);
    }

    #[test]
    fn the_pool_cap_bounds_retries_too() {
        let loads = Loads::default();
        let request = loads.request(&key(), UNLIMITED).unwrap();
        let first = request.retry(1);
        assert!(first.is_some());
        assert!(request.retry(1).is_none());
    }

    #[test]
    fn requests_past_the_limit_overflow_until_one_ends() {
        let loads = Loads::default();
        let first = loads.request(&key(), 2).unwrap();
        let _second = loads.request(&key(), 2).unwrap();
        assert!(loads.request(&key(), 2).is_err());
        let other_port = ("greeter.default.svc.cluster.local".into(), 81);
        assert!(loads.request(&other_port, 2).is_ok(), "limits are per port");
        drop(first);
        assert!(loads.request(&key(), 2).is_ok());
    }
}
