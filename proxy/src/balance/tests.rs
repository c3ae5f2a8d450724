use std::collections::BTreeMap;

use super::{pool::FORGET_AFTER, *};

fn key(name: &str) -> BalanceKey {
    (format!("{name}.default.svc.cluster.local"), 50051)
}

fn endpoints(count: u8) -> Vec<SocketAddr> {
    (1..=count)
        .map(|i| SocketAddr::from(([10, 0, 0, i], 50051)))
        .collect()
}

/// A policy with this load balancer and no outlier detection.
fn lb(load_balancer: LbPolicy) -> TrafficPolicy {
    TrafficPolicy {
        load_balancer,
        ..TrafficPolicy::default()
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// How many of `picks` sequential requests (each done before the next) each endpoint gets.
fn shares(
    balancers: &Balancers,
    policy: LbPolicy,
    endpoints: &[SocketAddr],
    picks: usize,
) -> BTreeMap<SocketAddr, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..picks {
        let pick = balancers
            .pick(&key("web"), &lb(policy.clone()), endpoints, &[])
            .unwrap();
        *counts.entry(pick.endpoint()).or_default() += 1;
    }
    counts
}

#[test]
fn one_per_proxy_shared_by_every_task() {
    fn shareable<T: Default + Send + Sync + 'static>() {}
    shareable::<Balancers>();
    fn holdable_across_awaits<T: Send + Unpin + 'static>() {}
    holdable_across_awaits::<Pick>();
}

#[test]
fn round_robin_takes_turns() {
    let balancers = Balancers::with_seed(1);
    let all = endpoints(3);
    let order: Vec<SocketAddr> = (0..6)
        .map(|_| {
            let pick = balancers.pick(&key("web"), &lb(LbPolicy::RoundRobin), &all, &[]);
            pick.unwrap().endpoint()
        })
        .collect();
    assert_eq!(order, [all[0], all[1], all[2], all[0], all[1], all[2]]);
    let counts = shares(&balancers, LbPolicy::RoundRobin, &all, 300);
    assert!(counts.values().all(|&count| count == 100), "{counts:?}");
}

/// One endpoint fails every request and each is retried avoiding it: the others still take
/// equal turns (the turn runs over every endpoint, not over the ones left to a retry).
#[test]
fn round_robin_retries_keep_the_turns_even() {
    let balancers = Balancers::with_seed(1);
    let all = endpoints(3);
    let policy = lb(LbPolicy::RoundRobin);
    let mut answered: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for _ in 0..300 {
        let mut pick = balancers.pick(&key("web"), &policy, &all, &[]).unwrap();
        if pick.endpoint() == all[0] {
            pick = balancers
                .pick(&key("web"), &policy, &all, &[all[0]])
                .unwrap();
        }
        *answered.entry(pick.endpoint()).or_default() += 1;
    }
    assert_eq!(answered.get(&all[0]), None);
    assert_eq!(
        (answered[&all[1]], answered[&all[2]]),
        (150, 150),
        "{answered:?}"
    );
}

#[test]
fn random_is_roughly_uniform() {
    let balancers = Balancers::with_seed(2);
    let counts = shares(&balancers, LbPolicy::Random, &endpoints(4), 4000);
    assert_eq!(counts.len(), 4);
    assert!(
        counts.values().all(|&count| (850..1150).contains(&count)),
        "{counts:?}"
    );
}

#[test]
fn least_request_prefers_fewer_active() {
    let balancers = Balancers::with_seed(3);
    let all = endpoints(2);
    let busy: Vec<Pick> = (0..3)
        .map(|_| {
            let pick = balancers.pick(&key("web"), &lb(LbPolicy::LeastRequest), &all, &all[1..]);
            pick.unwrap()
        })
        .collect();
    assert!(busy.iter().all(|pick| pick.endpoint() == all[0]));
    // With two endpoints both are always drawn: the idle one wins until the loads even out.
    let more: Vec<Pick> = (0..3)
        .map(|_| {
            let pick = balancers.pick(&key("web"), &lb(LbPolicy::LeastRequest), &all, &[]);
            pick.unwrap()
        })
        .collect();
    assert!(more.iter().all(|pick| pick.endpoint() == all[1]));
    drop(busy);
    let next = balancers.pick(&key("web"), &lb(LbPolicy::LeastRequest), &all, &[]);
    assert_eq!(next.unwrap().endpoint(), all[0], "its requests finished");
}

#[test]
fn peak_ewma_sends_a_slow_endpoint_little() {
    let balancers = Balancers::with_seed(4);
    let all = endpoints(3);
    let slow = all[2];
    let start = Instant::now();
    let mut counts = BTreeMap::<SocketAddr, usize>::new();
    for i in 0..1000 {
        let now = start + ms(i);
        let pick = balancers
            .pick_at(&key("web"), &lb(LbPolicy::PeakEwma), &all, &[], None, now)
            .unwrap();
        let latency = if pick.endpoint() == slow { 200 } else { 5 };
        pick.observe_at(ms(latency), now);
        *counts.entry(pick.endpoint()).or_default() += 1;
    }
    assert!(counts.get(&slow).copied().unwrap_or(0) < 20, "{counts:?}");
    // Each fast one wins every draw against the slow one (a third of the draws each); with
    // nothing in flight, the draws between them go to the lower estimate.
    assert!(all[..2].iter().all(|fast| counts[fast] > 280), "{counts:?}");
}

#[test]
fn peak_ewma_weighs_requests_in_flight() {
    let balancers = Balancers::with_seed(5);
    let all = endpoints(2);
    let now = Instant::now();
    // Equal latencies: the endpoint with requests in flight costs more.
    let held = balancers
        .pick_at(
            &key("web"),
            &lb(LbPolicy::PeakEwma),
            &all,
            &all[1..],
            None,
            now,
        )
        .unwrap();
    let next = balancers.pick_at(&key("web"), &lb(LbPolicy::PeakEwma), &all, &[], None, now);
    assert_eq!(next.unwrap().endpoint(), all[1]);
    drop(held);
}

#[test]
fn avoid_is_respected_while_another_endpoint_is_left() {
    let balancers = Balancers::with_seed(6);
    let all = endpoints(3);
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        LbPolicy::PeakEwma,
    ] {
        for _ in 0..50 {
            let pick = balancers
                .pick(&key("web"), &lb(policy.clone()), &all, &all[..1])
                .unwrap();
            assert_ne!(pick.endpoint(), all[0], "{policy}");
            let pick = balancers
                .pick(&key("web"), &lb(policy.clone()), &all, &all[..2])
                .unwrap();
            assert_eq!(pick.endpoint(), all[2], "{policy}");
        }
        let pick = balancers.pick(&key("web"), &lb(policy.clone()), &all[..1], &all[..1]);
        assert_eq!(
            pick.unwrap().endpoint(),
            all[0],
            "{policy}: better than none"
        );
        assert!(balancers
            .pick(&key("web"), &lb(policy.clone()), &[], &[])
            .is_none());
    }
}

#[test]
fn picks_count_as_active_until_dropped() {
    let balancers = Balancers::with_seed(7);
    let all = endpoints(1);
    let first = balancers.pick(&key("web"), &lb(LbPolicy::PeakEwma), &all, &[]);
    let second = balancers.pick(&key("web"), &lb(LbPolicy::PeakEwma), &all, &[]);
    let stats = |balancers: &Balancers| {
        let snapshot = balancers.snapshot();
        assert_eq!(snapshot.len(), 1);
        (snapshot[0].active, snapshot[0].total)
    };
    assert_eq!(stats(&balancers), (2, 2));
    drop(first);
    assert_eq!(stats(&balancers), (1, 2));
    second.unwrap().observe(ms(80));
    let snapshot = balancers.snapshot();
    assert_eq!((snapshot[0].active, snapshot[0].total), (0, 2));
    assert_eq!(snapshot[0].key, key("web"));
    assert!(snapshot[0].ewma > ms(79), "{:?}", snapshot[0].ewma);
}

#[test]
fn keys_are_balanced_independently() {
    let balancers = Balancers::with_seed(8);
    let all = endpoints(2);
    let first = |name| {
        let pick = balancers.pick(&key(name), &lb(LbPolicy::RoundRobin), &all, &[]);
        pick.unwrap().endpoint()
    };
    assert_eq!(
        [first("a"), first("b"), first("a")],
        [all[0], all[0], all[1]]
    );
}

#[test]
fn endpoints_and_keys_out_of_use_are_forgotten() {
    let balancers = Balancers::with_seed(9);
    let all = endpoints(3);
    let start = Instant::now();
    let pick = |name, endpoints: &[SocketAddr], at| {
        balancers.pick_at(
            &key(name),
            &lb(LbPolicy::RoundRobin),
            endpoints,
            &[],
            None,
            at,
        )
    };
    for _ in 0..3 {
        drop(pick("web", &all, start));
    }
    let in_flight = pick("old", &all[..1], start);
    drop(pick("gone", &all[..1], start));
    assert_eq!(balancers.snapshot().len(), 5);

    // A reload removed the third endpoint; a while later only what is in use is left.
    let later = start + FORGET_AFTER + SWEEP_EVERY;
    drop(pick("web", &all[..2], later));
    drop(pick("web", &all[..2], later));
    let remembered: Vec<(String, SocketAddr)> = balancers
        .snapshot()
        .into_iter()
        .map(|stats| (stats.key.0, stats.endpoint))
        .collect();
    assert_eq!(
        remembered,
        [
            (key("old").0, all[0]),
            (key("web").0, all[0]),
            (key("web").0, all[1]),
        ],
        "the request in flight keeps its endpoint"
    );

    drop(in_flight);
    drop(pick("web", &all[..2], later + FORGET_AFTER + SWEEP_EVERY));
    assert!(balancers
        .snapshot()
        .iter()
        .all(|stats| stats.key == key("web")));
}

/// Consistent hashing on `x-user`, with any endpoint ejected after one 5xx.
fn by_user(outliers: bool) -> TrafficPolicy {
    let outlier_detection = outliers.then(|| crate::config::OutlierDetection {
        consecutive_5xx_errors: std::num::NonZeroU32::new(1),
        max_ejection_percent: crate::config::resources::IntPercent::new(100).unwrap(),
        ..crate::config::OutlierDetection::default()
    });
    TrafficPolicy {
        load_balancer: LbPolicy::ConsistentHash(ConsistentHash {
            key: HashKey::Header(http::HeaderName::from_static("x-user")),
            ring_size: ConsistentHash::DEFAULT_RING_SIZE,
        }),
        outlier_detection,
        ..TrafficPolicy::default()
    }
}

fn hashed(balancers: &Balancers, policy: &TrafficPolicy, all: &[SocketAddr], hash: u64) -> Pick {
    let pick = balancers.pick_hashed(&key("web"), policy, all, &[], Some(hash));
    pick.unwrap()
}

#[test]
fn consistent_hash_keeps_a_key_on_its_endpoint_and_spreads_keys() {
    let balancers = Balancers::with_seed(10);
    let all = endpoints(3);
    let policy = by_user(false);
    let mut counts = BTreeMap::<SocketAddr, usize>::new();
    for key in 0..3000u64 {
        let hash = xxhash_rust::xxh64::xxh64(&key.to_le_bytes(), 0);
        let first = hashed(&balancers, &policy, &all, hash).endpoint();
        assert_eq!(hashed(&balancers, &policy, &all, hash).endpoint(), first);
        *counts.entry(first).or_default() += 1;
    }
    assert!(
        counts.values().all(|&count| (800..1200).contains(&count)),
        "{counts:?}"
    );
    // No key: at random, as Envoy does.
    let unkeyed = balancers.pick(&key("web"), &policy, &all, &[]);
    assert!(all.contains(&unkeyed.unwrap().endpoint()));
}

#[test]
fn consistent_hash_walks_past_ejected_and_avoided_endpoints() {
    let balancers = Balancers::with_seed(11);
    let all = endpoints(3);
    let policy = by_user(true);
    let owners: Vec<SocketAddr> = (0..300u64)
        .map(|hash| hashed(&balancers, &policy, &all, hash << 54).endpoint())
        .collect();
    let (gone, kept) = (owners[0], owners.iter().find(|o| **o != owners[0]).copied());
    // Avoided by a retry: another endpoint, the same for every try of the key.
    let retry = |hash| {
        let pick = balancers.pick_hashed(&key("web"), &policy, &all, &[gone], Some(hash));
        pick.unwrap().endpoint()
    };
    assert_ne!(retry(0), gone);
    assert_eq!(retry(0), retry(0));
    let mut pick = hashed(&balancers, &policy, &all, 0);
    let failed = crate::config::TryOutcome::Response {
        status: 503,
        grpc: None,
    };
    assert!(pick.report(failed).is_some(), "ejected");
    for (hash, owner) in (0..300u64).zip(&owners) {
        let now = hashed(&balancers, &policy, &all, hash << 54).endpoint();
        match *owner == gone {
            true => assert_ne!(now, gone, "an ejected endpoint is walked past"),
            false => assert_eq!(now, *owner, "only the ejected endpoint's keys move"),
        }
    }
    assert!(kept.is_some());
}
