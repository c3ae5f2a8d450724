//! One key's endpoints as the balancer knows them: their load, and what each policy remembers
//! between picks.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use fastrand::Rng;

use super::{
    choose::power_of_two,
    endpoint::{Endpoint, Pick},
    lock,
    round_robin::Rotation,
    BalanceKey, EndpointStats, LbPolicy,
};

/// An endpoint neither drawn nor in use for this long is forgotten: it has left the config, or
/// its latency estimate has decayed to nothing anyway.
pub(super) const FORGET_AFTER: Duration = Duration::from_secs(60);

pub(super) struct Pool {
    state: Mutex<State>,
}

struct State {
    rng: Rng,
    rotation: Rotation,
    endpoints: HashMap<SocketAddr, Slot>,
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
                endpoints: HashMap::new(),
            }),
        }
    }

    /// Picks one of `candidates` (not empty).
    pub fn pick(&self, policy: LbPolicy, candidates: &[SocketAddr], now: Instant) -> Pick {
        let mut state = self.lock();
        let index = state.choose(policy, candidates, now);
        // Counted as active before the lock is released, so the next pick sees it.
        Pick::start(state.slot(candidates[index], now).clone())
    }

    /// Forgets endpoints that are neither in use nor recently drawn; false when none is left.
    pub fn sweep(&self, now: Instant) -> bool {
        let mut state = self.lock();
        state.endpoints.retain(|_, slot| slot.is_remembered(now));
        !state.endpoints.is_empty()
    }

    pub fn stats(&self, key: &BalanceKey, now: Instant) -> Vec<EndpointStats> {
        self.lock()
            .endpoints
            .values()
            .map(|slot| EndpointStats {
                key: key.clone(),
                endpoint: slot.endpoint.addr(),
                active: slot.endpoint.active(),
                total: slot.endpoint.total(),
                ewma: slot.endpoint.latency(now),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    fn choose(&mut self, policy: LbPolicy, candidates: &[SocketAddr], now: Instant) -> usize {
        let len = candidates.len();
        match policy {
            LbPolicy::RoundRobin => self.rotation.next(len),
            LbPolicy::Random => self.rng.usize(..len),
            LbPolicy::LeastRequest => {
                self.power_of_two(candidates, now, |endpoint| endpoint.active() as f64)
            }
            LbPolicy::PeakEwma => self.power_of_two(candidates, now, |endpoint| endpoint.cost(now)),
        }
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
