//! Where a route sends requests: its `route[]` destinations with their weights, resolved to
//! [`Backend`]s, and its mirrors.
//!
//! - A destination names a Service by host (short names are in the VirtualService's namespace,
//!   `name.ns`, or the FQDN), a port (`port.number`; else the Service's only port; else the
//!   port the request came for, as Istio's `GetDestinationCluster`), and a DestinationRule
//!   subset. What names nothing strait knows stays in the route, [`Target::Unresolved`]:
//!   Envoy answers requests for a cluster it does not have with 503 and flag NC (cluster not
//!   found). A resolved one may have no endpoints: UH.
//! - Weights, as Istio and Envoy read them now: one destination takes every request whatever
//!   its weight; among several, each takes `weight / total`, and one of weight 0 none. Istio
//!   refuses a route whose weights are all 0 (and older releases any total but 100);
//!   validation says so.
//! - Mirrors (`mirror` with `mirrorPercentage` or the deprecated `mirrorPercent`, and
//!   `mirrors`): a copy of the request goes there too, its answer ignored; every request when
//!   no percentage is written, none at 0 %.

use std::sync::Arc;

use http::HeaderValue;

use super::{headers::DestinationHeaders, HeaderChanges, Percentage};
use crate::config::{
    model::Backend,
    resources::{self, Destination},
    ServiceName,
};

/// Resolves destinations against the Services of a load.
pub(crate) trait Resolve {
    /// What `destination`, written in a VirtualService of `namespace`, names for requests that
    /// came for Service port `request_port`.
    fn resolve(&self, destination: &Destination, namespace: &str, request_port: u16) -> Target;
}

/// What a destination names.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Backend(Arc<Backend>),
    Unresolved(Unresolved),
}

impl Target {
    /// The backend, or why there is none.
    pub fn backend(&self) -> Result<&Arc<Backend>, &Unresolved> {
        match self {
            Self::Backend(backend) => Ok(backend),
            Self::Unresolved(why) => Err(why),
        }
    }
}

/// Why a destination names nothing requests can go to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("{host} is no Service")]
    NoService { host: String },
    #[error("Service {service} has no TCP port {port}")]
    NoPort { service: ServiceName, port: u16 },
    #[error("no DestinationRule for Service {service} defines subset {subset}")]
    NoSubset {
        service: ServiceName,
        subset: String,
    },
    /// A route with no `route[]`: strait does not implement its `redirect`, `directResponse` or
    /// `delegate`.
    #[error("the route has no destination")]
    NoDestination,
}

/// One of a route's destinations, with everything a request sent there needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDestination {
    /// As written; 0 when absent. What it means: see [`Destinations`].
    pub weight: u32,
    pub target: Target,
    /// Applied to requests sent here: the route's and this destination's `headers.request`.
    pub request_headers: HeaderChanges,
    /// Applied to responses from here.
    pub response_headers: HeaderChanges,
    /// The `:authority` (HTTP/1.1 `Host`) sent here instead of the request's:
    /// `rewrite.authority`, else the route's `headers` authority, else this destination's.
    pub authority: Option<HeaderValue>,
}

impl RouteDestination {
    /// Every request of the route, to `target`, unchanged.
    pub(crate) fn only(target: Target) -> Self {
        Self {
            weight: 0,
            target,
            request_headers: HeaderChanges::default(),
            response_headers: HeaderChanges::default(),
            authority: None,
        }
    }
}

/// A route's destinations, never empty, and which one a request goes to.
#[derive(Clone, Debug, PartialEq)]
pub struct Destinations {
    /// As written.
    all: Vec<RouteDestination>,
    /// `(end, index)` for each destination that takes requests, in order: `all[index]` takes
    /// the draws from the previous `end` up to this one (excluded). The last `end` is the total.
    ranges: Vec<(u32, usize)>,
}

impl Destinations {
    /// `all` must not be empty.
    fn new(all: Vec<RouteDestination>) -> Self {
        let mut weights: Vec<u32> = match all.len() {
            1 => vec![1],
            _ => all.iter().map(|destination| destination.weight).collect(),
        };
        // Validation refuses this; should it come anyway, an even split.
        if weights.iter().all(|&weight| weight == 0) {
            weights.fill(1);
        }
        let mut end = 0u32;
        let ranges = weights
            .into_iter()
            .enumerate()
            .filter(|&(_, weight)| weight > 0)
            .map(|(index, weight)| {
                end = end.saturating_add(weight);
                (end, index)
            })
            .collect();
        Self { all, ranges }
    }

    /// Each destination by its weight, as a route's; `all` must not be empty.
    pub(crate) fn weighted(all: Vec<RouteDestination>) -> Self {
        Self::new(all)
    }

    /// Only `destination`.
    pub(crate) fn one(destination: RouteDestination) -> Self {
        Self::new(vec![destination])
    }

    /// A route's `route[]` resolved for Service port `request_port`.
    pub(crate) fn from_spec(
        spec: &resources::HttpRoute,
        namespace: &str,
        request_port: u16,
        resolve: &impl Resolve,
    ) -> Self {
        if spec.route.is_empty() {
            return Self::one(RouteDestination::only(Target::Unresolved(
                Unresolved::NoDestination,
            )));
        }
        let weighted = spec.route.len() > 1;
        let rewritten_authority = spec
            .rewrite
            .as_ref()
            .and_then(|rewrite| rewrite.authority.as_deref())
            .filter(|authority| !authority.is_empty())
            .and_then(|authority| HeaderValue::from_str(authority).ok());
        let all = spec
            .route
            .iter()
            .map(|written| {
                let headers = DestinationHeaders::new(
                    spec.headers.as_ref(),
                    written.headers.as_ref(),
                    weighted,
                );
                RouteDestination {
                    weight: written.weight.unwrap_or(0),
                    target: resolve.resolve(&written.destination, namespace, request_port),
                    request_headers: headers.request,
                    response_headers: headers.response,
                    authority: rewritten_authority.clone().or(headers.authority),
                }
            })
            .collect();
        Self::new(all)
    }

    /// The destination of the request that drew `draw` (any `u32`, uniformly random; taken
    /// modulo [`total_weight`](Self::total_weight)).
    pub fn pick(&self, draw: u32) -> &RouteDestination {
        let point = draw % self.total_weight();
        let slot = self.ranges.partition_point(|&(end, _)| end <= point);
        &self.all[self.ranges[slot].1]
    }

    /// The sum of the weights that count (1 for a single destination); never 0.
    pub fn total_weight(&self) -> u32 {
        self.ranges.last().map_or(1, |&(end, _)| end)
    }

    /// Each destination as written, with the share of requests it takes (0 to 1).
    pub fn iter(&self) -> impl Iterator<Item = (&RouteDestination, f64)> {
        let total = f64::from(self.total_weight());
        let mut start = 0;
        let mut shares = vec![0.0; self.all.len()];
        for &(end, index) in &self.ranges {
            shares[index] = f64::from(end - start) / total;
            start = end;
        }
        self.all.iter().zip(shares)
    }
}

/// A copy of the route's requests, sent on the side.
#[derive(Clone, Debug, PartialEq)]
pub struct Mirror {
    pub target: Target,
    /// Never zero.
    pub percentage: Percentage,
}

impl Mirror {
    /// `mirror` then `mirrors`, as Istio lists them; those at 0 % are left out.
    pub(crate) fn all_of(
        spec: &resources::HttpRoute,
        namespace: &str,
        request_port: u16,
        resolve: &impl Resolve,
    ) -> Vec<Self> {
        let mirror = spec
            .mirror
            .as_ref()
            .map(|destination| (destination, mirror_percentage(spec)));
        let mirrors = spec.mirrors.iter().map(|policy| {
            let percentage = policy
                .percentage
                .map_or(Percentage::ALWAYS, Percentage::from);
            (&policy.destination, percentage)
        });
        mirror
            .into_iter()
            .chain(mirrors)
            .filter(|(_, percentage)| !percentage.is_never())
            .map(|(destination, percentage)| Self {
                target: resolve.resolve(destination, namespace, request_port),
                percentage,
            })
            .collect()
    }
}

/// `mirrorPercentage`, else the deprecated `mirrorPercent`, else every request.
fn mirror_percentage(spec: &resources::HttpRoute) -> Percentage {
    spec.mirror_percentage
        .map(Percentage::from)
        .or(spec.mirror_percent.map(Percentage::from))
        .unwrap_or(Percentage::ALWAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weights: &[u32]) -> Destinations {
        let all = weights
            .iter()
            .map(|&weight| RouteDestination {
                weight,
                ..RouteDestination::only(Target::Unresolved(Unresolved::NoDestination))
            })
            .collect();
        Destinations::new(all)
    }

    /// Which destination (by position) each draw from 0 to `total` picks, counted.
    fn spread(destinations: &Destinations) -> Vec<u32> {
        let mut counts = vec![0; destinations.all.len()];
        for draw in 0..destinations.total_weight() {
            let picked = destinations.pick(draw);
            let index = destinations
                .all
                .iter()
                .position(|d| std::ptr::eq(d, picked))
                .unwrap();
            counts[index] += 1;
        }
        counts
    }

    #[test]
    fn weights_are_relative_and_zero_takes_nothing() {
        assert_eq!(spread(&weighted(&[90, 10])), [90, 10]);
        assert_eq!(spread(&weighted(&[1, 0, 3])), [1, 0, 3]);
        assert_eq!(spread(&weighted(&[60, 60])), [60, 60]);
        // One destination takes everything, whatever its weight.
        assert_eq!(spread(&weighted(&[0])), [1]);
        // All zero (refused by validation): an even split.
        assert_eq!(spread(&weighted(&[0, 0])), [1, 1]);
        let shares: Vec<f64> = weighted(&[1, 0, 3])
            .iter()
            .map(|(_, share)| share)
            .collect();
        assert_eq!(shares, [0.25, 0.0, 0.75]);
    }

    #[test]
    fn any_draw_picks() {
        let canary = weighted(&[90, 10]);
        assert_eq!(canary.pick(89).weight, 90);
        assert_eq!(canary.pick(90).weight, 10);
        assert_eq!(canary.pick(100).weight, 90, "modulo the total");
        assert_eq!(canary.pick(u32::MAX).weight, 10, "u32::MAX % 100 is 95");
    }
}
