//! Outlier detection: an endpoint that keeps failing is taken out of balancing for a while, as
//! Envoy does for Istio's DestinationRule `outlierDetection` (consecutive errors only: Istio
//! turns Envoy's success-rate detection off, and keeps local-origin errors unsplit).
//!
//! References are to Envoy's `source/common/upstream/outlier_detection_impl.cc` (Envoy 1.31+).
//!
//! - Counting (`putHttpResponseCode`): a 5xx counts toward `consecutive_5xx_errors`; a 502, 503
//!   or 504 also toward `consecutive_gateway_errors`, and any other 5xx resets that one; a
//!   non-5xx resets both. A try that got no response counts as the status Envoy maps it to
//!   (`resultToHttpCode` and the router: connect failure and reset 503, timeout 504). gRPC
//!   statuses count as `Grpc::Utility::grpcToHttpStatus` maps them (Envoy reads them from
//!   response headers only; the request path reports them from trailers too). A request
//!   strait refused itself (no route, a circuit breaker's overflow) is not the endpoint's
//!   doing and is not reported: Envoy does not count overflows either (envoyproxy/envoy#25487).
//! - Ejecting (`ejectHost`): refused unless `100 * (ejected + 1) / endpoints` is at most
//!   `max_ejection_percent`, so with Istio's default 10 % a Service port with fewer than ten
//!   endpoints ejects none. (Envoy's `always_eject_one_host`, new in 1.31, would allow one
//!   anyway; Istio never sets it.) The counter that reached its threshold is reset, ejected or not.
//! - Duration: `base_ejection_time` times the ejections so far, capped at `max_ejection_time`
//!   (Envoy's default: 300 s, or `base_ejection_time` when longer). The multiplier grows by one
//!   per ejection while below the cap, and shrinks by one on each `interval` tick that finds the
//!   endpoint back for at least an interval (`onIntervalTimer`).
//! - Returning (`checkHostForUneject`): on the first `interval` tick at or after the ejection
//!   time is over, with the consecutive counters reset.
//! - Using: below `min_health_percent` healthy endpoints (Envoy's panic threshold, which Istio
//!   sets from it) every endpoint is used. strait also uses every endpoint when all are ejected,
//!   where Envoy with Istio's default threshold (0 %) answers "no healthy upstream".
//!
//! Envoy's interval timer is evaluated lazily here: a key's ticks are applied when it is next
//! picked from, reported to or swept, with the same effect as a timer for every request that
//! sees the result. The state lives under the key's pool lock, beside the balancer's; a
//! report's counting is two atomics, and the lock is taken only when a count reaches its
//! threshold.

use std::{
    borrow::Cow,
    collections::HashMap,
    fmt,
    net::SocketAddr,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use super::{endpoint::Endpoint, pool::Pool};
use crate::config::{resources::IntPercent, OutlierDetection, TryOutcome};

/// Envoy's default `max_ejection_time`, which Istio does not set.
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// Longer than any ejection or interval that means anything; config durations are capped at it
/// before they are added to an `Instant` (which panics on overflow).
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The HTTP status Envoy's detector would be given for how a try ended: the one place that maps
/// gRPC statuses and failures without a response. A `grpc-status` decides over the HTTP status,
/// as in Envoy's router. Envoy's router reports a reset (refused streams included) and a
/// connect failure as `LocalOriginConnectFailed` (503), a timeout as `LocalOriginTimeout` (504).
fn status_for_outliers(outcome: TryOutcome) -> u16 {
    match outcome {
        TryOutcome::Response {
            grpc: Some(code), ..
        } => grpc_to_http(code),
        TryOutcome::Response { status, .. } => status,
        TryOutcome::ConnectFailure | TryOutcome::RefusedStream | TryOutcome::Reset => 503,
        TryOutcome::PerTryTimeout => 504,
    }
}

fn kind(outcome: TryOutcome) -> Kind {
    match status_for_outliers(outcome) {
        502..=504 => Kind::GatewayError,
        500..=599 => Kind::ServerError,
        _ => Kind::Success,
    }
}

/// Envoy's `Grpc::Utility::grpcToHttpStatus`.
fn grpc_to_http(code: u16) -> u16 {
    match code {
        0 => 200,          // OK
        1 => 499,          // CANCELLED
        3 | 9 | 11 => 400, // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
        4 => 504,          // DEADLINE_EXCEEDED
        5 => 404,          // NOT_FOUND
        6 | 10 => 409,     // ALREADY_EXISTS, ABORTED
        7 => 403,          // PERMISSION_DENIED
        8 => 429,          // RESOURCE_EXHAUSTED
        12 => 501,         // UNIMPLEMENTED
        14 => 503,         // UNAVAILABLE
        16 => 401,         // UNAUTHENTICATED
        // UNKNOWN (2), INTERNAL (13), DATA_LOSS (15), and codes gRPC does not define.
        _ => 500,
    }
}

/// What an outcome counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Success,
    /// A 5xx other than a gateway error.
    ServerError,
    /// 502, 503, 504: also a 5xx.
    GatewayError,
}

/// Which consecutive count ejected an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EjectionReason {
    Consecutive5xxErrors,
    ConsecutiveGatewayErrors,
}

/// An endpoint taken out of balancing by a report, for the caller's metrics and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    pub endpoint: SocketAddr,
    pub reason: EjectionReason,
    /// When it is back: the first interval tick after its ejection time.
    pub until: Instant,
    /// Times the endpoint was ejected, this one included, since the balancer first saw it.
    pub times_ejected: u64,
}

/// One endpoint's counts, updated by reports without a lock.
#[derive(Debug, Default)]
pub(super) struct Counters {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    times_ejected: AtomicU64,
}

impl Counters {
    pub fn times_ejected(&self) -> u64 {
        self.times_ejected.load(Relaxed)
    }

    /// Counts one outcome; the count that reached its threshold, if one did (the gateway count
    /// first, as Envoy checks it first).
    fn count(&self, kind: Kind, policy: &OutlierDetection) -> Option<EjectionReason> {
        let reached = |counter: &AtomicU32, threshold: Option<NonZeroU32>| {
            // A count nobody reads is not kept.
            threshold.is_some_and(|n| counter.fetch_add(1, Relaxed) + 1 >= n.get())
        };
        match kind {
            Kind::Success => {
                reset(&self.consecutive_5xx);
                reset(&self.consecutive_gateway);
                None
            }
            Kind::ServerError => {
                reset(&self.consecutive_gateway);
                reached(&self.consecutive_5xx, policy.consecutive_5xx_errors)
                    .then_some(EjectionReason::Consecutive5xxErrors)
            }
            Kind::GatewayError => {
                let gateway = reached(&self.consecutive_gateway, policy.consecutive_gateway_errors);
                let any_5xx = reached(&self.consecutive_5xx, policy.consecutive_5xx_errors);
                if gateway {
                    Some(EjectionReason::ConsecutiveGatewayErrors)
                } else {
                    any_5xx.then_some(EjectionReason::Consecutive5xxErrors)
                }
            }
        }
    }

    fn reset(&self, reason: EjectionReason) {
        match reason {
            EjectionReason::Consecutive5xxErrors => reset(&self.consecutive_5xx),
            EjectionReason::ConsecutiveGatewayErrors => reset(&self.consecutive_gateway),
        }
    }

    fn reset_all(&self) {
        reset(&self.consecutive_5xx);
        reset(&self.consecutive_gateway);
    }
}

/// Stores 0 unless it is 0 already: the common success leaves the cache line shared.
fn reset(counter: &AtomicU32) {
    if counter.load(Relaxed) != 0 {
        counter.store(0, Relaxed);
    }
}

/// What a pick needs to report its try's outcome: the policy it was picked under and its key's
/// state. Only picks under an `outlierDetection` carry one.
pub(super) struct Reporter {
    policy: OutlierDetection,
    pool: Arc<Pool>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(policy: OutlierDetection, pool: Arc<Pool>) -> Self {
        Self { policy, pool }
    }

    /// Counts `outcome` for `endpoint`, and ejects it when a count reaches its threshold.
    pub fn report(
        self,
        endpoint: &Arc<Endpoint>,
        outcome: TryOutcome,
        now: impl FnOnce() -> Instant,
    ) -> Option<Ejection> {
        let reason = endpoint.counters().count(kind(outcome), &self.policy)?;
        self.pool.eject(endpoint, reason, &self.policy, now())
    }
}

/// One key's ejections, kept under its pool's lock.
#[derive(Debug, Default)]
pub(super) struct Outliers {
    /// Started by the first pick under an `outlierDetection`.
    ticks: Option<Ticks>,
    /// The endpoints at the last pick: what `max_ejection_percent` is a share of.
    endpoints: usize,
    /// Out of balancing now. Few: at most `max_ejection_percent` of the endpoints.
    ejected: Vec<Ejected>,
    /// Endpoints with an ejection multiplier above zero, every ejected one among them; each is
    /// dropped when it decays to zero, which leaves the endpoint as if never ejected.
    history: HashMap<SocketAddr, History>,
}

#[derive(Debug)]
struct Ejected {
    /// Its counters are reset when it returns.
    endpoint: Arc<Endpoint>,
    /// When it returns: an interval tick.
    until: Instant,
}

#[derive(Clone, Copy, Debug, Default)]
struct History {
    /// Envoy's `ejectTimeBackoff`: the multiplier of the next ejection's time, less one.
    backoff: u32,
    /// The tick it last returned at; `None` while it has never returned.
    returned: Option<Instant>,
}

impl Outliers {
    /// The endpoints to balance over under `policy`: `endpoints` (the key's whole set) without
    /// the ejected ones, unless too few would be left.
    pub fn usable<'a>(
        &mut self,
        endpoints: &'a [SocketAddr],
        policy: &OutlierDetection,
        now: Instant,
    ) -> Cow<'a, [SocketAddr]> {
        self.follow(policy, now);
        self.endpoints = endpoints.len();
        // The common case: nothing ejected, nothing to filter or allocate.
        if self.ejected.is_empty() {
            return Cow::Borrowed(endpoints);
        }
        let healthy: Vec<SocketAddr> = endpoints
            .iter()
            .copied()
            .filter(|&addr| !self.is_ejected(addr))
            .collect();
        if endpoints.len() - healthy.len() < self.ejected.len() {
            self.forget_departed(endpoints, now);
        }
        if in_panic(healthy.len(), endpoints.len(), policy.min_health_percent) {
            Cow::Borrowed(endpoints)
        } else {
            Cow::Owned(healthy)
        }
    }

    /// Ejects `endpoint` because its count for `reason` reached the threshold, if it is not
    /// ejected already and `max_ejection_percent` allows.
    pub fn eject(
        &mut self,
        endpoint: &Arc<Endpoint>,
        reason: EjectionReason,
        policy: &OutlierDetection,
        now: Instant,
    ) -> Option<Ejection> {
        endpoint.counters().reset(reason);
        let ticks = self.follow(policy, now);
        let addr = endpoint.addr();
        if self.is_ejected(addr) || !self.may_eject_another(policy.max_ejection_percent) {
            return None;
        }
        let history = self.history.entry(addr).or_default();
        let duration = history.next_ejection_time(policy.base_ejection_time);
        let until = ticks.at(ticks.first_at_or_after(after(now, duration)));
        self.ejected.push(Ejected {
            endpoint: endpoint.clone(),
            until,
        });
        let times_ejected = endpoint.counters().times_ejected.fetch_add(1, Relaxed) + 1;
        Some(Ejection {
            endpoint: addr,
            reason,
            until,
            times_ejected,
        })
    }

    /// Until when `addr` is ejected, if it is.
    pub fn ejected_until(&self, addr: SocketAddr) -> Option<Instant> {
        self.ejected
            .iter()
            .find(|ejected| ejected.endpoint.addr() == addr)
            .map(|ejected| ejected.until)
    }

    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.ejected_until(addr).is_some()
    }

    /// Whether `addr` has been ejected recently: ejected now, or back with a multiplier that
    /// has not decayed yet. The balancer keeps such an endpoint, and so its counts.
    pub fn remembers(&self, addr: SocketAddr) -> bool {
        self.history.contains_key(&addr)
    }

    /// Applies the interval ticks due by `now`: endpoints return and multipliers decay.
    pub fn advance(&mut self, now: Instant) {
        if let Some(ticks) = self.ticks {
            self.apply(ticks, now);
        }
    }

    /// Starts the ticks, or spaces the next ones by the policy's interval; then applies those
    /// due by `now`.
    fn follow(&mut self, policy: &OutlierDetection, now: Instant) -> Ticks {
        let ticks = match self.ticks {
            None => Ticks::new(policy.interval, now),
            Some(ticks) if ticks.interval == policy.interval => ticks,
            // Those due under the old interval first.
            Some(ticks) => self.apply(ticks, now).with_interval(policy.interval),
        };
        self.apply(ticks, now)
    }

    /// Applies `ticks` from the one after `done` to the last due by `now`.
    fn apply(&mut self, ticks: Ticks, now: Instant) -> Ticks {
        let first = ticks.done + 1;
        // The common case, on every pick: no tick due.
        let ticks = if now < ticks.at(first) {
            ticks
        } else {
            let last = ticks.last_at_or_before(now);
            self.return_ejected(ticks, first, last);
            self.decay(ticks, first, last);
            Ticks {
                done: last,
                ..ticks
            }
        };
        self.ticks = Some(ticks);
        ticks
    }

    /// Ticks `first..=last` return the endpoints whose ejection is over, with fresh counts.
    fn return_ejected(&mut self, ticks: Ticks, first: u64, last: u64) {
        let history = &mut self.history;
        self.ejected.retain(|ejected| {
            let tick = ticks.first_at_or_after(ejected.until).max(first);
            if tick > last {
                return true;
            }
            ejected.endpoint.counters().reset_all();
            history.entry(ejected.endpoint.addr()).or_default().returned = Some(ticks.at(tick));
            false
        });
    }

    /// Ticks `first..=last` decay the multipliers of endpoints that are back, and forget those
    /// that reach zero.
    fn decay(&mut self, ticks: Ticks, first: u64, last: u64) {
        let ejected = &self.ejected;
        self.history.retain(|&addr, history| {
            if !ejected.iter().any(|e| e.endpoint.addr() == addr) {
                history.decay(ticks, first, last);
            }
            history.backoff > 0
        });
    }

    /// Envoy's `ejectHost`: one more ejection may make at most `max` of the endpoints ejected.
    fn may_eject_another(&self, max: IntPercent) -> bool {
        100 * (self.ejected.len() + 1) <= usize::from(max.get()) * self.endpoints
    }

    /// Ejected endpoints that left the key's endpoint set are no longer ejected (Envoy drops a
    /// removed host's monitor); what is left of their history decays.
    fn forget_departed(&mut self, endpoints: &[SocketAddr], now: Instant) {
        let history = &mut self.history;
        self.ejected.retain(|ejected| {
            let addr = ejected.endpoint.addr();
            let stays = endpoints.contains(&addr);
            if !stays {
                history.entry(addr).or_default().returned = Some(now);
            }
            stays
        });
    }
}

/// Whether to use every endpoint: below Envoy's panic threshold (`min_health_percent`), or,
/// strait's own rule, with none healthy.
fn in_panic(healthy: usize, all: usize, min_health: IntPercent) -> bool {
    healthy == 0 || 100 * healthy < usize::from(min_health.get()) * all
}

impl History {
    /// Envoy's: `base` times one more than before, while that stays below the cap plus `base`;
    /// never above the cap.
    fn next_ejection_time(&mut self, base: Duration) -> Duration {
        let max = MAX_EJECTION_TIME.max(base);
        if base.saturating_mul(self.backoff) < max.saturating_add(base) {
            self.backoff += 1;
        }
        base.saturating_mul(self.backoff).min(max)
    }

    /// Ticks `first..=last` each take one off the multiplier if the endpoint had been back for
    /// an interval by then.
    fn decay(&mut self, ticks: Ticks, first: u64, last: u64) {
        let Some(returned) = self.returned else {
            return;
        };
        let from = ticks
            .first_at_or_after(after(returned, ticks.interval))
            .max(first);
        let decays = (last + 1).saturating_sub(from);
        self.backoff = self
            .backoff
            .saturating_sub(u32::try_from(decays).unwrap_or(u32::MAX));
    }
}

/// Envoy's interval timer, evaluated lazily: tick `n` is at `origin + n * interval`, and the
/// ticks up to `done` have been applied.
#[derive(Clone, Copy, Debug)]
struct Ticks {
    origin: Instant,
    interval: Duration,
    done: u64,
}

impl Ticks {
    fn new(interval: Duration, now: Instant) -> Self {
        Self {
            origin: now,
            interval,
            done: 0,
        }
    }

    /// The same ticks up to `done`, then every `interval` (a reload may change it).
    fn with_interval(self, interval: Duration) -> Self {
        if interval == self.interval {
            return self;
        }
        Self::new(interval, self.at(self.done))
    }

    fn at(self, tick: u64) -> Instant {
        let offset = self.interval.as_nanos().saturating_mul(u128::from(tick));
        after(self.origin, Duration::from_nanos(saturate(offset)))
    }

    fn last_at_or_before(self, time: Instant) -> u64 {
        saturate(self.elapsed(time) / self.step())
    }

    fn first_at_or_after(self, time: Instant) -> u64 {
        saturate(self.elapsed(time).div_ceil(self.step()))
    }

    fn elapsed(self, time: Instant) -> u128 {
        time.saturating_duration_since(self.origin).as_nanos()
    }

    /// The interval in nanoseconds; config has it at least a millisecond, but never divide by 0.
    fn step(self) -> u128 {
        self.interval.as_nanos().max(1)
    }
}

fn saturate(nanos_or_ticks: u128) -> u64 {
    u64::try_from(nanos_or_ticks).unwrap_or(u64::MAX)
}

/// `time + duration`, with the duration capped at a century.
fn after(time: Instant, duration: Duration) -> Instant {
    time + duration.min(CENTURY)
}

#[cfg(test)]
mod tests;
