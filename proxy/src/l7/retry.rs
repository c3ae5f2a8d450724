//! A request's tries under its route's retry policy: whether another may follow, when each
//! must answer by, and a jittered backoff between them. What bounds retries across requests
//! (the budget) is in [`super::load`].

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body::Body;
use tokio::time::Instant;

use super::{
    attempt::TryDeadline,
    load::{ActiveRequest, ActiveRetry},
    replay::{Replay, ReplayBody},
};
use crate::config::{GrpcCodes, RetryPolicy, TryOutcome};

/// Envoy's default backoff: 25 ms base, 250 ms at most, fully jittered.
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);

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

    /// When this try must have answered: the request's deadline, or the per-try timeout if
    /// that comes first.
    pub fn try_deadline(&self) -> Option<TryDeadline> {
        let per_try = self.policy.per_try_timeout.map(|t| Instant::now() + t);
        let at = match (self.deadline, per_try) {
            (Some(request), Some(per_try)) => request.min(per_try),
            (request, per_try) => request.or(per_try)?,
        };
        let per_try = Some(at) != self.deadline;
        Some(TryDeadline { at, per_try })
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

    #[test]
    fn backoff_grows_to_its_cap() {
        for _ in 0..100 {
            assert!(backoff(1) <= BACKOFF_BASE);
            assert!(backoff(2) <= BACKOFF_BASE * 2);
            assert!(backoff(30) <= BACKOFF_MAX);
        }
    }
}
