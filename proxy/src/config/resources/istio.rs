//! Istio `networking.istio.io` kinds. WorkloadEntry and DestinationRule traffic policies are
//! used (the policy itself is [`TrafficPolicy`]), and so are a VirtualService's HTTP routes:
//! matches, destinations, timeouts, retries, faults, header changes, rewrites and mirrors (see
//! [`crate::config::route`]); Gateways and the VirtualServices' `tls` routes are served by
//! [`crate::config::gateway`].

use std::{collections::BTreeMap, fmt, net::IpAddr};

use serde::Deserialize;

use super::{
    GrpcStatus, HttpStatus, IntPercent, IstioDuration, Labels, MatchRegex, ObjectMeta, Percent,
    PortNumber, RewriteRegex, RouteTimeout, TrafficPolicy,
};

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WorkloadEntry {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WorkloadEntrySpec,
}

impl WorkloadEntry {
    /// strait reaches endpoints by IP; a DNS name here is reported and unused.
    pub fn ip(&self) -> Option<IpAddr> {
        self.spec.address.as_deref()?.parse().ok()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WorkloadEntrySpec {
    pub address: Option<String>,
    /// What a Service's selector matches (not `metadata.labels`), as in Istio.
    #[serde(default)]
    pub labels: Labels,
    /// Port name to number, for Services whose `targetPort` is a name.
    #[serde(default)]
    pub ports: BTreeMap<String, PortNumber>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct VirtualService {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: VirtualServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct VirtualServiceSpec {
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Empty: the mesh (sidecars, here strait's outbound side).
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
    /// Routes for TLS connections by SNI: read at gateways' PASSTHROUGH servers.
    #[serde(default)]
    pub tls: Vec<TlsRoute>,
}

/// One of `spec.tls`: connections whose SNI one of its matches names go to its destinations.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TlsRoute {
    #[serde(default, rename = "match")]
    pub matches: Vec<TlsMatch>,
    #[serde(default)]
    pub route: Vec<RouteDestinationL4>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsMatch {
    #[serde(default)]
    pub sni_hosts: Vec<String>,
    /// The gateway port; absent: any.
    pub port: Option<PortNumber>,
    /// Absent: the VirtualService's own `gateways`.
    #[serde(default)]
    pub gateways: Vec<String>,
}

/// A TCP or TLS route's destination: no header changes.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RouteDestinationL4 {
    pub destination: Destination,
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    pub timeout: Option<RouteTimeout>,
    pub retries: Option<Retries>,
    pub fault: Option<Fault>,
    pub headers: Option<Headers>,
    pub rewrite: Option<Rewrite>,
    pub mirror: Option<Destination>,
    pub mirror_percentage: Option<Percent>,
    /// Deprecated by Istio for `mirrorPercentage`, which wins when both are set.
    pub mirror_percent: Option<IntPercent>,
    #[serde(default)]
    pub mirrors: Vec<MirrorPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct HttpMatch {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    /// By name as written; what a name can be is [`crate::config::route::HeaderKey`]'s.
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    pub port: Option<PortNumber>,
    #[serde(default, rename = "sourceLabels")]
    pub source_labels: Labels,
    #[serde(rename = "sourceNamespace")]
    pub source_namespace: Option<String>,
}

/// Istio's StringMatch: exactly one of the three.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "StringMatchFields")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(MatchRegex),
}

impl fmt::Display for StringMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => write!(f, "= {exact}"),
            Self::Prefix(prefix) => write!(f, "starts with {prefix}"),
            Self::Regex(regex) => write!(f, "matches {}", regex.as_str()),
        }
    }
}

impl StringMatch {
    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(exact) => value == exact.as_bytes(),
            Self::Prefix(prefix) => value.starts_with(prefix.as_bytes()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A header's match: a [`StringMatch`], or `{}` (`None`), which asks only that the header be
/// present, as Istio reads it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "StringMatchFields")]
pub struct HeaderMatch(pub Option<StringMatch>);

/// A StringMatch as written: the oneof is checked when it becomes one of the above.
#[derive(Deserialize)]
struct StringMatchFields {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<MatchRegex>,
}

impl StringMatchFields {
    /// The match set, if one is; `Err` when more than one is.
    fn into_match(self) -> Result<Option<StringMatch>, ()> {
        let set = [
            self.exact.map(StringMatch::Exact),
            self.prefix.map(StringMatch::Prefix),
            self.regex.map(StringMatch::Regex),
        ];
        let mut set = set.into_iter().flatten();
        let first = set.next();
        match set.next() {
            None => Ok(first),
            Some(_) => Err(()),
        }
    }
}

impl TryFrom<StringMatchFields> for StringMatch {
    type Error = &'static str;

    fn try_from(fields: StringMatchFields) -> Result<Self, Self::Error> {
        let one = fields.into_match().ok().flatten();
        one.ok_or("set exactly one of exact, prefix and regex")
    }
}

impl TryFrom<StringMatchFields> for HeaderMatch {
    type Error = &'static str;

    fn try_from(fields: StringMatchFields) -> Result<Self, Self::Error> {
        let at_most_one = fields.into_match();
        at_most_one
            .map(Self)
            .map_err(|()| "set at most one of exact, prefix and regex")
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RouteDestination {
    pub destination: Destination,
    pub weight: Option<u32>,
    pub headers: Option<Headers>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<PortSelector>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct PortSelector {
    pub number: PortNumber,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Absent is 0, as in Istio's proto: retries disabled.
    pub attempts: Option<u32>,
    pub per_try_timeout: Option<IstioDuration>,
    /// Comma-separated conditions, read by [`crate::config::route::RetryOn::parse`].
    pub retry_on: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    pub percentage: Option<Percent>,
    /// Deprecated by Istio for `percentage`, which wins when both are set.
    pub percent: Option<IntPercent>,
    pub fixed_delay: Option<IstioDuration>,
}

/// A fault's `abort`: at most one of `httpStatus` and `grpcStatus` (a oneof in Istio's API).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "FaultAbortFields")]
pub struct FaultAbort {
    pub percentage: Option<Percent>,
    /// `None`: neither is set, and the abort does nothing (Istio warns, and drops it too).
    pub status: Option<AbortStatus>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortStatus {
    Http(HttpStatus),
    Grpc(GrpcStatus),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FaultAbortFields {
    percentage: Option<Percent>,
    http_status: Option<HttpStatus>,
    grpc_status: Option<GrpcStatus>,
}

impl TryFrom<FaultAbortFields> for FaultAbort {
    type Error = &'static str;

    fn try_from(fields: FaultAbortFields) -> Result<Self, Self::Error> {
        let status = match (fields.http_status, fields.grpc_status) {
            (Some(_), Some(_)) => return Err("set at most one of httpStatus and grpcStatus"),
            (http, grpc) => http.map(AbortStatus::Http).or(grpc.map(AbortStatus::Grpc)),
        };
        Ok(Self {
            percentage: fields.percentage,
            status,
        })
    }
}

/// Header changes, for a route or for one of its destinations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Headers {
    #[serde(default)]
    pub request: HeaderOperations,
    #[serde(default)]
    pub response: HeaderOperations,
}

/// By name as written: what a name can be is [`crate::config::route::HeaderChanges`]'.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HeaderOperations {
    /// Replaces the header's values. Sorted by name, the order Istio gives Envoy.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Adds a value beside the header's others.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    /// Replaces the matched prefix; empty is absent, as in Istio's proto.
    pub uri: Option<String>,
    pub uri_regex_rewrite: Option<RegexRewrite>,
    /// Empty is absent, as in Istio's proto.
    pub authority: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RegexRewrite {
    #[serde(rename = "match")]
    pub pattern: RewriteRegex,
    /// With `\1`-style references to the pattern's groups, as Envoy writes them.
    pub rewrite: String,
}

/// One of `mirrors`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct MirrorPolicy {
    pub destination: Destination,
    /// Absent: every request.
    pub percentage: Option<Percent>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DestinationRule {
    pub metadata: ObjectMeta,
    pub spec: DestinationRuleSpec,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Boxed: the largest part of any resource, and most documents are not DestinationRules.
    pub traffic_policy: Option<Box<TrafficPolicy>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    /// Overrides the host's policy part by part (see [`crate::config::policy`]).
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Gateway {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: GatewaySpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct GatewaySpec {
    #[serde(default)]
    pub selector: Labels,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Server {
    pub name: Option<String>,
    pub port: ServerPort,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub tls: Option<ServerTls>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ServerPort {
    pub number: PortNumber,
    pub name: Option<String>,
    pub protocol: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    pub mode: Option<String>,
    pub credential_name: Option<String>,
}
