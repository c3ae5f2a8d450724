//! What a VirtualService's HTTP routes say about requests to a Service port: the route a request
//! takes, its timeout and its retry policy, Istio's defaults where nothing is written.
//!
//! A Service port's routes are, as Istio builds a sidecar's (see
//! [`Model::http_route`](crate::config::Model::http_route)):
//! - those of the first VirtualService bound to the Service's host in the mesh (no `gateways`,
//!   or `mesh` among them), in Istio's order, that has routes for the port: its `http` in
//!   order, without the matches for other ports and the routes left with none;
//! - else Istio's default route: every request, no timeout, the default retry policy.
//!
//! The first route with a match the request meets (or with no match at all) is the request's;
//! when none is, the request has no route (Envoy's NR). A route's `timeout` applies to the
//! whole request, retries included; none is the default (Istio turns off Envoy's 15 s).
//!
//! A route also says where its requests go ([`destination`]: weighted destinations resolved to
//! [`Backend`]s, and mirrors), what it injects ([`fault`]), and what it changes on the way
//! ([`headers`], [`rewrite`]). The loader reports the fields it does not read.

mod destination;
mod fault;
mod headers;
mod matching;
mod percentage;
mod retry;
mod rewrite;

use std::{sync::Arc, time::Duration};

pub(crate) use self::{
    destination::Resolve,
    headers::{
        authority_settings, unusable as unusable_header_changes, with_percent_signs, Unusable,
    },
    matching::UnusableKey,
    retry::Skipped,
};
pub use self::{
    destination::{Destinations, Mirror, RouteDestination, Target, Unresolved},
    fault::{Abort, AbortStatus, Delay, Fault},
    headers::{HeaderChange, HeaderChanges},
    matching::{HeaderCondition, HeaderKey, RequestHead, RequestMatch, Source},
    percentage::Percentage,
    retry::{GrpcCodes, RetryOn, RetryPolicy, TryOutcome},
    rewrite::PathRewrite,
};
use super::{
    model::Backend,
    resources::{self, RouteTimeout, VirtualService},
};

/// One route of a Service port.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    /// `spec.http[].name`.
    pub name: Option<String>,
    pub origin: RouteOrigin,
    /// What access logs and metrics call the route: its `name`, else where it was written
    /// (`NAMESPACE/VIRTUALSERVICE.http[INDEX]`); `default` for Istio's default route, as Envoy
    /// names it.
    pub route_name: String,
    /// Any one of them selects the route; none at all selects every request.
    pub matches: Vec<RequestMatch>,
    /// For the whole request, retries included; `None`: no timeout.
    pub timeout: Option<Duration>,
    pub retries: RetryPolicy,
    /// Where requests go: [`Destinations::pick`] chooses one per request.
    pub destinations: Destinations,
    pub fault: Fault,
    /// See [`HttpRoute::rewritten_path`].
    pub rewrite: Option<PathRewrite>,
    pub mirrors: Vec<Mirror>,
}

/// Where a route comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOrigin {
    /// Istio's default route: no VirtualService has routes for the port.
    Default,
    /// `spec.http[index]` of a VirtualService.
    VirtualService {
        namespace: String,
        name: String,
        index: usize,
    },
}

impl HttpRoute {
    /// Istio's route for a Service port no VirtualService routes: every request to `backend`,
    /// the port's own.
    pub fn istio_default(backend: Arc<Backend>) -> Self {
        Self {
            name: None,
            origin: RouteOrigin::Default,
            route_name: "default".to_owned(),
            matches: Vec::new(),
            timeout: None,
            retries: RetryPolicy::istio_default(),
            destinations: Destinations::one(RouteDestination::only(Target::Backend(backend))),
            fault: Fault::default(),
            rewrite: None,
            mirrors: Vec::new(),
        }
    }

    /// Whether a request for Service port `port` takes this route (if no route before it does).
    pub fn matches<'r>(&self, request: impl Into<RequestHead<'r>>, port: u16) -> bool {
        let request = request.into();
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(&request, port))
    }

    /// The path and query a request for Service port `port` that took this route goes upstream
    /// with, when the route rewrites it; `None`: its own.
    pub fn rewritten_path<'r>(
        &self,
        request: impl Into<RequestHead<'r>>,
        port: u16,
    ) -> Option<String> {
        let rewrite = self.rewrite.as_ref()?;
        let request = request.into();
        let matched = self.matches.iter().find(|m| m.matches(&request, port));
        Some(rewrite.apply(
            request.path_and_query(),
            matched.and_then(|m| m.uri.as_ref()),
        ))
    }

    /// `spec.http[index]` of `service` as a route of Service port `port`; `None` when none of
    /// its matches can apply there.
    fn for_port(
        service: &VirtualService,
        index: usize,
        spec: &resources::HttpRoute,
        port: u16,
        resolve: &impl Resolve,
    ) -> Option<Self> {
        let matches: Vec<RequestMatch> = spec
            .matches
            .iter()
            .filter_map(RequestMatch::from_spec)
            .filter(|m| m.applies_to_port(port))
            .collect();
        if matches.is_empty() && !spec.matches.is_empty() {
            return None;
        }
        let meta = &service.metadata;
        let route_name = match &spec.name {
            Some(name) => name.clone(),
            None => format!("{}/{}.http[{index}]", meta.namespace, meta.name),
        };
        Some(Self {
            name: spec.name.clone(),
            origin: RouteOrigin::VirtualService {
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                index,
            },
            route_name,
            matches,
            timeout: spec.timeout.and_then(RouteTimeout::get),
            retries: RetryPolicy::from_spec(spec.retries.as_ref()),
            destinations: Destinations::from_spec(spec, &meta.namespace, port, resolve),
            fault: Fault::from_spec(spec.fault.as_ref()),
            rewrite: PathRewrite::from_spec(spec.rewrite.as_ref()),
            mirrors: Mirror::all_of(spec, &meta.namespace, port, resolve),
        })
    }
}

/// The routes of Service port `port`, whose own backend is `backend`, given the
/// VirtualServices bound to its Service in the mesh, first first.
pub(crate) fn routes_for_port<'v>(
    services: impl IntoIterator<Item = &'v VirtualService>,
    port: u16,
    backend: &Arc<Backend>,
    resolve: &impl Resolve,
) -> Vec<HttpRoute> {
    services
        .into_iter()
        .map(|service| virtual_service_routes(service, port, resolve))
        .find(|routes| !routes.is_empty())
        .unwrap_or_else(|| vec![HttpRoute::istio_default(backend.clone())])
}

/// One VirtualService's routes for Service port (or gateway port) `port`, in order.
pub(crate) fn virtual_service_routes(
    service: &VirtualService,
    port: u16,
    resolve: &impl Resolve,
) -> Vec<HttpRoute> {
    service
        .spec
        .http
        .iter()
        .enumerate()
        .filter_map(|(index, spec)| HttpRoute::for_port(service, index, spec, port, resolve))
        .collect()
}

#[cfg(test)]
mod tests;
