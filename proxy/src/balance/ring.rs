//! Consistent hashing (DestinationRule `loadBalancer.consistentHash`), as Envoy's ring hash
//! balancer does it: each endpoint is hashed onto a ring at many points (`"ADDR_i"`, xxHash64,
//! as Envoy names them), and a request goes to the endpoint of the first point at or after its
//! own hash. A request with no hash key (the header, cookie or parameter is absent) is placed at
//! random, as in Envoy.
//!
//! The ring is built over every endpoint of the key, not only the usable ones: an ejected
//! endpoint, or one a retry avoids, is skipped by walking on along the ring, so only its own
//! requests move, and they come back when it does. Each endpoint's points are the ring size
//! shared among them rounded up to a power of two, so that an endpoint joining or leaving
//! moves only its own keys too (Envoy resizes each endpoint's share every time). `maglev.tableSize` sizes the same ring:
//! strait has no Maglev table (its lookups differ, the stickiness is the same).

use std::net::{IpAddr, SocketAddr};

use http::{header::COOKIE, request, HeaderName};
use xxhash_rust::xxh64::xxh64;

use crate::config::route::RequestHead;

/// `consistentHash`: what a request is hashed on, and the ring's size.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsistentHash {
    pub key: HashKey,
    /// Points on the ring, at least: `ringHash.minimumRingSize` (or the legacy
    /// `minimumRingSize`), or `maglev.tableSize`; Envoy's 1024 by default.
    pub ring_size: u32,
}

impl ConsistentHash {
    /// Envoy's default minimum ring size, which Istio leaves as it is.
    pub const DEFAULT_RING_SIZE: u32 = 1024;
    /// Envoy's maximum ring size: larger sizes are cut to it.
    pub const MAX_RING_SIZE: u32 = 8 * 1024 * 1024;
}

/// The part of a request its hash is taken from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// `httpHeaderName`: the header's value (several values joined by `,`).
    Header(HeaderName),
    /// `httpCookie.name`: the cookie's value. Envoy sets the cookie when the request has none;
    /// strait does not, so such a request has no hash key.
    Cookie(String),
    /// `useSourceIp`: the client's IP address.
    SourceIp,
    /// `httpQueryParameterName`: the parameter's value, as written in the query.
    QueryParameter(String),
}

impl HashKey {
    /// The request's hash; `None` when it lacks what is hashed on.
    pub fn hash(&self, request: &request::Parts, client: IpAddr) -> Option<u64> {
        match self {
            Self::Header(name) => {
                let head = RequestHead::from(request);
                Some(xxh64(&head.joined(name)?, 0))
            }
            Self::Cookie(name) => {
                let cookies = request.headers.get_all(COOKIE).iter();
                let value = cookies
                    .filter_map(|header| header.to_str().ok())
                    .flat_map(|header| header.split(';'))
                    .find_map(|pair| pair.trim().strip_prefix(name.as_str())?.strip_prefix('='))?;
                Some(xxh64(value.as_bytes(), 0))
            }
            Self::SourceIp => Some(xxh64(client.to_string().as_bytes(), 0)),
            Self::QueryParameter(name) => {
                let query = request.uri.query()?;
                let value = query.split('&').find_map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (key == name).then_some(value)
                })?;
                Some(xxh64(value.as_bytes(), 0))
            }
        }
    }
}

impl super::LbPolicy {
    /// The request's consistent hash, under a `consistentHash` policy that finds its key.
    pub fn request_hash(&self, request: &request::Parts, client: IpAddr) -> Option<u64> {
        match self {
            Self::ConsistentHash(hash) => hash.key.hash(request, client),
            _ => None,
        }
    }
}

/// One key's ring, for the endpoint set it was built over.
#[derive(Debug, Default)]
pub(super) struct Ring {
    endpoints: Vec<SocketAddr>,
    size: u32,
    /// (hash, index into `endpoints`), by hash.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring for `endpoints` (not empty) at `size` points at least: this one when it was
    /// built for them, else a new one.
    pub fn for_endpoints(&mut self, endpoints: &[SocketAddr], size: u32) -> &Self {
        if self.size != size || self.endpoints != endpoints {
            *self = Self::build(endpoints, size);
        }
        self
    }

    /// The ring for `endpoints` (not empty) at `size` points at least.
    fn build(endpoints: &[SocketAddr], size: u32) -> Self {
        let size = size.clamp(1, ConsistentHash::MAX_RING_SIZE);
        // Equal weights: each endpoint gets an equal share, rounded up to a power of two, so
        // that its points stay the same as endpoints come and go (until their number crosses
        // a power of two) and only the keys of those move. Envoy resizes every time.
        let per_endpoint = (size as usize)
            .div_ceil(endpoints.len())
            .next_power_of_two();
        let mut points: Vec<(u64, usize)> = endpoints
            .iter()
            .enumerate()
            .flat_map(|(index, endpoint)| {
                (0..per_endpoint)
                    .map(move |i| (xxh64(format!("{endpoint}_{i}").as_bytes(), 0), index))
            })
            .collect();
        points.sort_unstable();
        Self {
            endpoints: endpoints.to_vec(),
            size,
            points,
        }
    }

    /// The first endpoint at or after `hash` on the ring that `admits`; `None` when none does.
    pub fn walk(&self, hash: u64, admits: impl Fn(SocketAddr) -> bool) -> Option<SocketAddr> {
        let start = self.points.partition_point(|&(point, _)| point < hash);
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|&(_, index)| self.endpoints[index])
            .find(|&endpoint| admits(endpoint))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn endpoints(count: u8) -> Vec<SocketAddr> {
        (1..=count)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 8080)))
            .collect()
    }

    fn owners(ring: &Ring, keys: u64) -> Vec<SocketAddr> {
        (0..keys)
            .map(|key| ring.walk(xxh64(&key.to_le_bytes(), 0), |_| true).unwrap())
            .collect()
    }

    #[test]
    fn keys_spread_over_the_endpoints() {
        let ring = Ring::build(&endpoints(3), ConsistentHash::DEFAULT_RING_SIZE);
        let mut counts = BTreeMap::<SocketAddr, usize>::new();
        for owner in owners(&ring, 3000) {
            *counts.entry(owner).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(
            counts.values().all(|&count| (800..1200).contains(&count)),
            "{counts:?}"
        );
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let all = endpoints(3);
        let before = owners(&Ring::build(&all, 1024), 3000);
        let after = owners(&Ring::build(&[all[0], all[2]], 1024), 3000);
        for (was, is) in before.iter().zip(&after) {
            match *was == all[1] {
                true => assert_ne!(*is, all[1]),
                false => assert_eq!(was, is, "a key of a remaining endpoint moved"),
            }
        }
    }

    #[test]
    fn the_ring_is_rebuilt_only_when_its_endpoints_change() {
        let mut ring = Ring::default();
        let all = endpoints(2);
        let points = ring.for_endpoints(&all, 16).points.clone();
        assert_eq!(points.len(), 16);
        assert_eq!(ring.for_endpoints(&all, 16).points, points);
        assert_eq!(ring.for_endpoints(&all[..1], 16).points.len(), 16);
        assert_eq!(ring.for_endpoints(&all[..1], 64).points.len(), 64);
        assert_eq!(
            Ring::build(&endpoints(3), 16).points.len(),
            3 * 8,
            "6 rounded up"
        );
    }

    #[test]
    fn request_keys_are_read_from_the_request() {
        let (parts, ()) = http::Request::get("/p?user=ann&x=1")
            .header("x-user", "a")
            .header("cookie", "theme=dark; session=s1")
            .body(())
            .unwrap()
            .into_parts();
        let client = IpAddr::from([10, 1, 2, 3]);
        let hash = |key: HashKey| key.hash(&parts, client);
        let header = HashKey::Header(HeaderName::from_static("x-user"));
        assert_eq!(hash(header), Some(xxh64(b"a", 0)));
        assert_eq!(
            hash(HashKey::Cookie("session".into())),
            Some(xxh64(b"s1", 0))
        );
        assert_eq!(hash(HashKey::Cookie("sess".into())), None);
        assert_eq!(hash(HashKey::SourceIp), Some(xxh64(b"10.1.2.3", 0)));
        let parameter = HashKey::QueryParameter("user".into());
        assert_eq!(hash(parameter), Some(xxh64(b"ann", 0)));
        assert_eq!(hash(HashKey::QueryParameter("us".into())), None);
        assert_eq!(hash(HashKey::Header(HeaderName::from_static("x-no"))), None);
    }
}
