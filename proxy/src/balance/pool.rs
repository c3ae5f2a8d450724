//! One key's endpoints as the balancer knows them: their load, what each policy remembers
//! between picks, and their outlier ejections.

use std::{
    borrow::Cow,
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use fastrand::Rng;

use super::{
    choose::{candidates, power_of_two},
    endpoint::{Endpoint, Pick},
    lock,
    outlier::{Ejection, EjectionReason, Outliers, Reporter},
    ring::Ring,
    round_robin::Rotation,
    BalanceKey, EndpointStats, LbPolicy,
};
use crate::config::{OutlierDetection, TrafficPolicy};

/// An endpoint neither drawn nor in use for this long, nor ejected recently, is forgotten: it
/// has left the config, or its latency estimate has decayed to nothing anyway.
pub(super) const FORGET_AFTER: Duration = Duration::from_secs(60);

pub(super) struct Pool {
    state: Mutex<State>,
}

struct State {
    rng: Rng,
    rotation: Rotation,
    /// Built at the first consistent-hash pick, rebuilt when the endpoints change.
    ring: Ring,
    endpoints: HashMap<SocketAddr, Slot>,
    outliers: Outliers,
}

struct Slot {
    endpoint: Arc<Endpoint>,
    /// When a pick last drew it, chosen or not.
    last_seen: Instant,
}

impl Pool {
    pub fn new(rng: Rng) -> Self {
        Self {
            state: Mutex::new(State {
                rng,
                rotation: Rotation::default(),
                ring: Ring::default(),
                endpoints: HashMap::new(),
                outliers: Outliers::default(),
            }),
        }
    }

    /// Picks one of `endpoints` (not empty: the key's whole set) under `policy`, avoiding
    /// `avoid` while another is usable; `hash` is the request's consistent hash, if any.
    pub fn pick(
        self: &Arc<Self>,
        policy: &TrafficPolicy,
        endpoints: &[SocketAddr],
        avoid: &[SocketAddr],
        hash: Option<u64>,
        now: Instant,
    ) -> Pick {
        let mut state = self.lock();
        let usable = match &policy.outlier_detection {
            None => Cow::Borrowed(endpoints),
            Some(outlier) => state.outliers.usable(endpoints, outlier, now),
        };
        let candidates = candidates(&usable, avoid);
        let chosen = match (&policy.load_balancer, hash) {
            (LbPolicy::ConsistentHash(ring), Some(hash)) => {
                let ring = state.ring.for_endpoints(endpoints, ring.ring_size);
                // The candidates are on the ring: the walk ends.
                let on_ring = ring.walk(hash, |endpoint| candidates.contains(&endpoint));
                on_ring.unwrap_or(candidates[0])
            }
            (load_balancer, _) => state.choose(load_balancer, endpoints, &candidates, now),
        };
        let endpoint = state.slot(chosen, now).clone();
        let reporter = policy
            .outlier_detection
            .map(|outlier| Reporter::new(outlier, self.clone()));
        // Counted as active before the lock is released, so the next pick sees it.
        Pick::start(endpoint, reporter)
    }

    /// Ejects `endpoint`, whose count for `reason` reached its threshold, if `policy` allows.
    pub fn eject(
        &self,
        endpoint: &Arc<Endpoint>,
        reason: EjectionReason,
        policy: &OutlierDetection,
        now: Instant,
    ) -> Option<Ejection> {
        self.lock().outliers.eject(endpoint, reason, policy, now)
    }

    /// Forgets endpoints that are neither in use, nor recently drawn, nor recently ejected;
    /// false when none is left.
    pub fn sweep(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let State {
            endpoints,
            outliers,
            ..
        } = &mut *state;
        outliers.advance(now);
        endpoints.retain(|&addr, slot| slot.is_remembered(now) || outliers.remembers(addr));
        !endpoints.is_empty()
    }

    pub fn stats(&self, key: &BalanceKey, now: Instant) -> Vec<EndpointStats> {
        let mut state = self.lock();
        state.outliers.advance(now);
        state
            .endpoints
            .values()
            .map(|slot| {
                let endpoint = &slot.endpoint;
                EndpointStats {
                    key: key.clone(),
                    endpoint: endpoint.addr(),
                    active: endpoint.active(),
                    total: endpoint.total(),
                    ewma: endpoint.latency(now),
                    times_ejected: endpoint.counters().times_ejected(),
                    ejected_until: state.outliers.ejected_until(endpoint.addr()),
                }
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    /// The candidate `policy` chooses; a consistent hash without the request's key chooses at
    /// random, as Envoy does. Round robin turns over all `endpoints` and takes the next that is
    /// a candidate, so a retry that must avoid one endpoint does not skew the turns (Envoy
    /// re-picks past a host its retry predicate refuses in the same way).
    fn choose(
        &mut self,
        policy: &LbPolicy,
        endpoints: &[SocketAddr],
        candidates: &[SocketAddr],
        now: Instant,
    ) -> SocketAddr {
        let len = candidates.len();
        let index = match policy {
            LbPolicy::RoundRobin => {
                let next = self.rotation.next_of(endpoints, |e| candidates.contains(e));
                return next.unwrap_or(candidates[0]);
            }
            LbPolicy::Random | LbPolicy::ConsistentHash(_) => self.rng.usize(..len),
            LbPolicy::LeastRequest => {
                self.power_of_two(candidates, now, |endpoint| endpoint.active() as f64)
            }
            LbPolicy::PeakEwma => self.power_of_two(candidates, now, |endpoint| endpoint.cost(now)),
        };
        candidates[index]
    }

    fn power_of_two(
        &mut self,
        candidates: &[SocketAddr],
        now: Instant,
        cost: impl Fn(&Endpoint) -> f64,
    ) -> usize {
        let Self { rng, endpoints, .. } = self;
        power_of_two(candidates.len(), rng, |i| {
            cost(slot(endpoints, candidates[i], now))
        })
    }

    fn slot(&mut self, addr: SocketAddr, now: Instant) -> &Arc<Endpoint> {
        slot(&mut self.endpoints, addr, now)
    }
}

/// The endpoint at `addr`, new ones starting with no load and the default latency.
fn slot(
    endpoints: &mut HashMap<SocketAddr, Slot>,
    addr: SocketAddr,
    now: Instant,
) -> &Arc<Endpoint> {
    let slot = endpoints.entry(addr).or_insert_with(|| Slot {
        endpoint: Arc::new(Endpoint::new(addr, now)),
        last_seen: now,
    });
    slot.last_seen = slot.last_seen.max(now);
    &slot.endpoint
}

impl Slot {
    fn is_remembered(&self, now: Instant) -> bool {
        self.endpoint.active() > 0 || now.saturating_duration_since(self.last_seen) < FORGET_AFTER
    }
}
