//! What bounds retries besides a route's `attempts`: a budget, so that a failing Service is not
//! stormed by them, and a jittered backoff between tries.
//!
//! The budget is Envoy's `retry_budget` with the values Istio's users know from it: retries in
//! flight for a Service port stay under 20 % of its requests in flight, with 3 always allowed so
//! that a quiet Service can still retry. `connectionPool.http.maxRetries` caps them further.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc, RwLock,
    },
    time::Duration,
};

use std::net::SocketAddr;

use bytes::Bytes;
use http_body::Body;
use tokio::time::Instant;

use super::replay::{Replay, ReplayBody};
use crate::{
    balance::BalanceKey,
    config::{GrpcCodes, RetryPolicy, TryOutcome},
};

/// Retries in flight may be this share of requests in flight.
const BUDGET_PERCENT: usize = 20;
/// Retries in flight always allowed, however few requests there are.
const MIN_RETRY_CONCURRENCY: usize = 3;

/// Envoy's default backoff: 25 ms base, 250 ms at most, fully jittered.
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

/// The budget of every Service port, kept across config reloads.
#[derive(Default)]
pub struct RetryBudgets {
    budgets: RwLock<HashMap<BalanceKey, Arc<Budget>>>,
}

impl RetryBudgets {
    /// Counts a request to `key` as in flight until the returned guard is dropped.
    pub fn request(&self, key: &BalanceKey) -> ActiveRequest {
        let budget = self.budget(key);
        budget.requests.fetch_add(1, Relaxed);
        ActiveRequest { budget }
    }

    fn budget(&self, key: &BalanceKey) -> Arc<Budget> {
        let read = self.budgets.read().unwrap_or_else(|p| p.into_inner());
        if let Some(budget) = read.get(key) {
            return budget.clone();
        }
        drop(read);
        let mut write = self.budgets.write().unwrap_or_else(|p| p.into_inner());
        write.entry(key.clone()).or_default().clone()
    }
}

#[derive(Default)]
struct Budget {
    requests: AtomicUsize,
    retries: AtomicUsize,
}

/// A request in flight, counted in its Service port's budget.
pub struct ActiveRequest {
    budget: Arc<Budget>,
}

impl ActiveRequest {
    /// A retry in flight, if the budget (and `max_retries`, the pool's cap) has room for one.
    pub fn retry(&self, max_retries: u32) -> Option<ActiveRetry> {
        let budget = &self.budget;
        let allowed = (budget.requests.load(Relaxed) * BUDGET_PERCENT / 100)
            .max(MIN_RETRY_CONCURRENCY)
            .min(max_retries as usize);
        budget
            .retries
            .fetch_update(Relaxed, Relaxed, |retries| {
                (retries < allowed).then_some(retries + 1)
            })
            .ok()?;
        Some(ActiveRetry {
            budget: budget.clone(),
        })
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.budget.requests.fetch_sub(1, Relaxed);
    }
}

/// A retry in flight, until dropped.
pub struct ActiveRetry {
    budget: Arc<Budget>,
}

impl Drop for ActiveRetry {
    fn drop(&mut self) {
        self.budget.retries.fetch_sub(1, Relaxed);
    }
}

/// The tries of one request so far, under its route's retry policy.
pub struct Tries<'a> {
    policy: &'a RetryPolicy,
    /// When the request's answer is due.
    deadline: Option<Instant>,
    retries: u32,
    /// Endpoints tried so far: a retry prefers another.
    pub tried: Vec<SocketAddr>,
    /// The retry in flight, counted in the budget until the response ends.
    pub in_flight: Option<ActiveRetry>,
}

impl<'a> Tries<'a> {
    pub fn new(policy: &'a RetryPolicy, deadline: Option<Instant>) -> Self {
        Self {
            policy,
            deadline,
            retries: 0,
            tried: Vec::new(),
            in_flight: None,
        }
    }

    /// Whether a try after this one is possible: worth holding a response back for.
    pub fn may_retry(&self) -> bool {
        self.retries < self.policy.attempts
    }

    /// When this try must have answered: the request's deadline, or the per-try timeout.
    pub fn try_deadline(&self) -> Option<Instant> {
        let per_try = self.policy.per_try_timeout.map(|t| Instant::now() + t);
        match (self.deadline, per_try) {
            (Some(request), Some(per_try)) => Some(request.min(per_try)),
            (request, per_try) => request.or(per_try),
        }
    }

    /// The next try's body, when a try that ended with `outcome` is to be retried: the policy
    /// retries it, attempts are left, the deadline has not passed, the body could be kept, and
    /// the budget has room. `max_retries` is the connection pool's cap.
    pub fn retry<B: Body<Data = Bytes> + Unpin>(
        &mut self,
        outcome: TryOutcome,
        body: &Replay<B>,
        request: &ActiveRequest,
        max_retries: u32,
    ) -> Option<ReplayBody<B>> {
        if !self.may_retry() || !self.policy.retry_on.retries(outcome) {
            return None;
        }
        if self.deadline.is_some_and(|at| at <= Instant::now()) {
            return None;
        }
        let budget = request.retry(max_retries)?;
        let next = body.next_try()?;
        self.retries += 1;
        self.in_flight = Some(budget);
        Some(next)
    }

    /// Whether the request ends because its retries ran out (Envoy's URX): the last try
    /// failed in a way the policy retries, and every attempt was used.
    pub fn exhausted(&self, outcome: Option<TryOutcome>) -> bool {
        self.all_used() && outcome.is_some_and(|outcome| self.policy.retry_on.retries(outcome))
    }

    /// The gRPC statuses that, found in the last try's trailers, mean its retries ran out.
    pub fn exhausted_on(&self) -> GrpcCodes {
        match self.all_used() {
            true => self.policy.retry_on.grpc,
            false => GrpcCodes::default(),
        }
    }

    fn all_used(&self) -> bool {
        self.policy.attempts > 0 && self.retries == self.policy.attempts
    }

    /// Waits before the next try, never past the deadline.
    pub async fn backoff(&self) {
        let mut until = Instant::now() + backoff(self.retries);
        if let Some(deadline) = self.deadline {
            until = until.min(deadline);
        }
        tokio::time::sleep_until(until).await;
    }
}

/// How long to wait before retry number `retry` (1 for the first).
pub fn backoff(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BalanceKey {
        ("greeter.default.svc.cluster.local".into(), 80)
    }

    #[test]
    fn a_quiet_service_may_retry_three_at_once() {
        let budgets = RetryBudgets::default();
        let request = budgets.request(&key());
        let retries: Vec<_> = (0..5).filter_map(|_| request.retry(u32::MAX)).collect();
        assert_eq!(retries.len(), 3);
        drop(retries);
        assert!(
            request.retry(u32::MAX).is_some(),
            "finished retries free the budget"
        );
    }

    #[test]
    fn retries_stay_under_a_fifth_of_requests_in_flight() {
        let budgets = RetryBudgets::default();
        let requests: Vec<_> = (0..100).map(|_| budgets.request(&key())).collect();
        let retries: Vec<_> = requests.iter().filter_map(|r| r.retry(u32::MAX)).collect();
        assert_eq!(retries.len(), 20);
    }

    #[test]
    fn the_pool_cap_bounds_retries_too() {
        let budgets = RetryBudgets::default();
        let request = budgets.request(&key());
        let first = request.retry(1);
        assert!(first.is_some());
        assert!(request.retry(1).is_none());
    }

    #[test]
    fn backoff_grows_to_its_cap() {
        for _ in 0..100 {
            assert!(backoff(1) <= BACKOFF_BASE);
            assert!(backoff(2) <= BACKOFF_BASE * 2);
            assert!(backoff(30) <= BACKOFF_MAX);
        }
    }
}
