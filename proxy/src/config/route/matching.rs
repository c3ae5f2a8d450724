//! Istio's HTTPMatchRequest, evaluated as Envoy evaluates what Istio makes of it: every
//! condition of one match must hold; a header named in it must be present.
//!
//! - `uri`: `exact` and `regex` against the path without its query (Envoy's `path` and
//!   `safe_regex`), `prefix` against the path with it. For gRPC the path is
//!   `/package.Service/Method`.
//! - `method`, `authority` (`:authority`, else the HTTP/1.1 `Host`), `headers`: the value as
//!   sent; a header sent more than once is matched as its values joined by `,`, as Envoy does.
//! - `port`: the Service port the request is for.
//! - `sourceLabels`, `sourceNamespace`: the client workload's, the Pod or WorkloadEntry whose
//!   IP the request's connection comes from ([`Source`]); a client that is no known workload
//!   meets no such condition, as in Istio.
//!
//! A regex matches the whole value (see [`MatchRegex`](crate::config::resources::MatchRegex)).

use std::{borrow::Cow, fmt, sync::Arc};

use http::{header, request, HeaderMap, HeaderName, Method, Request, Uri};

use crate::config::{
    resources::{HttpMatch, Labels, StringMatch},
    WorkloadIdentity,
};

/// One HTTPMatchRequest.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestMatch {
    /// `name`, for logs.
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    pub headers: Vec<HeaderCondition>,
    /// The Service port number; `None`: any.
    pub port: Option<u16>,
    /// Labels the client workload must have (each of them).
    pub source_labels: Labels,
    pub source_namespace: Option<String>,
}

/// The workload a request comes from, as routes and telemetry see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The Pod's or WorkloadEntry's own name.
    pub name: String,
    pub namespace: String,
    pub labels: Labels,
    /// As telemetry names it; shared, as every request from the workload carries it.
    pub identity: Arc<WorkloadIdentity>,
}

impl Source {
    pub fn new(name: String, namespace: String, labels: Labels) -> Self {
        let identity = Arc::new(WorkloadIdentity::of(&name, &namespace, &labels));
        Self {
            name,
            namespace,
            labels,
            identity,
        }
    }
}

/// A header that must be present, and what its value must be.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderCondition {
    pub name: HeaderKey,
    /// `None`: any value.
    pub value: Option<StringMatch>,
}

/// What a `headers` key can name: a header, or one of the request's pseudo-headers, which
/// Envoy matches like headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderKey {
    Header(HeaderName),
    /// `:method`, `:scheme`, `:authority`, `:path` (with the query), `:status` (never in a
    /// request).
    Pseudo(&'static str),
}

/// Why a `headers` key names nothing strait can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnusableKey {
    /// `@request.auth.claims.*`: Istio routes on JWT claims that its RequestAuthentication
    /// verified; strait verifies no JWTs.
    JwtClaim,
    /// Not a header name: Istio's validation refuses it.
    Invalid,
}

const PSEUDO_HEADERS: &[&str] = &[":method", ":scheme", ":authority", ":path", ":status"];

impl HeaderKey {
    /// A `headers` key as Istio reads it (header names in any case; Envoy compares them in
    /// lower case).
    pub(crate) fn parse(key: &str) -> Result<Self, UnusableKey> {
        if key.starts_with("@request.auth.claims") {
            return Err(UnusableKey::JwtClaim);
        }
        if let Some(&pseudo) = PSEUDO_HEADERS.iter().find(|&&pseudo| pseudo == key) {
            return Ok(Self::Pseudo(pseudo));
        }
        HeaderName::from_bytes(key.as_bytes())
            .map(Self::Header)
            .map_err(|_| UnusableKey::Invalid)
    }
}

/// As `strait describe` and `/config_dump` tell it: `uri starts with /api and header x-v = 2`.
impl fmt::Display for RequestMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strings = [
            ("uri", &self.uri),
            ("method", &self.method),
            ("authority", &self.authority),
        ];
        let strings = strings
            .into_iter()
            .filter_map(|(what, value)| Some(format!("{what} {}", value.as_ref()?)));
        let headers = self.headers.iter().map(|header| {
            let value = header
                .value
                .as_ref()
                .map_or("present".to_owned(), ToString::to_string);
            format!("header {} {value}", header.name)
        });
        let port = self.port.map(|port| format!("port {port}"));
        let source_labels = self
            .source_labels
            .iter()
            .map(|(k, v)| format!("source label {k}={v}"));
        let source_namespace = self
            .source_namespace
            .as_ref()
            .map(|ns| format!("source namespace {ns}"));
        let parts: Vec<String> = strings
            .chain(headers)
            .chain(port)
            .chain(source_labels)
            .chain(source_namespace)
            .collect();
        if parts.is_empty() {
            return f.write_str("every request");
        }
        f.write_str(&parts.join(" and "))
    }
}

impl fmt::Display for HeaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => f.write_str(name.as_str()),
            Self::Pseudo(name) => f.write_str(name),
        }
    }
}

impl RequestMatch {
    /// The match as written; `None` when it can never apply (a header key strait cannot match).
    pub(crate) fn from_spec(spec: &HttpMatch) -> Option<Self> {
        let headers = spec
            .headers
            .iter()
            .map(|(key, value)| {
                let name = HeaderKey::parse(key).ok()?;
                Some(HeaderCondition {
                    name,
                    value: value.0.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            name: spec.name.clone(),
            uri: spec.uri.clone(),
            method: spec.method.clone(),
            authority: spec.authority.clone(),
            headers,
            port: spec.port.map(|port| port.get()),
            source_labels: spec.source_labels.clone(),
            source_namespace: spec.source_namespace.clone(),
        })
    }

    /// Whether it may apply to requests for Service port `port`.
    pub fn applies_to_port(&self, port: u16) -> bool {
        self.port.is_none_or(|own| own == port)
    }

    /// Whether a request for Service port `port` meets every condition.
    pub fn matches(&self, request: &RequestHead<'_>, port: u16) -> bool {
        let holds = |condition: &Option<StringMatch>, value: Option<&[u8]>| match condition {
            None => true,
            Some(condition) => value.is_some_and(|value| condition.matches(value)),
        };
        self.applies_to_port(port)
            && self.uri.as_ref().is_none_or(|uri| request.uri_matches(uri))
            && holds(&self.method, Some(request.method.as_str().as_bytes()))
            && holds(&self.authority, request.authority())
            && self.headers.iter().all(|header| {
                let value = request.header(&header.name);
                value.is_some() && holds(&header.value, value.as_deref())
            })
            && self.source_matches(request.source)
    }

    fn source_matches(&self, source: Option<&Source>) -> bool {
        if self.source_labels.is_empty() && self.source_namespace.is_none() {
            return true;
        }
        source.is_some_and(|source| {
            let labels = &self.source_labels;
            labels
                .iter()
                .all(|(key, value)| source.labels.get(key) == Some(value))
                && self
                    .source_namespace
                    .as_ref()
                    .is_none_or(|ns| *ns == source.namespace)
        })
    }
}

/// The parts of a request routes look at: from a [`Request`] or its [`request::Parts`].
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'r> {
    method: &'r Method,
    uri: &'r Uri,
    headers: &'r HeaderMap,
    /// The client workload, when known.
    source: Option<&'r Source>,
}

impl<'r, B> From<&'r Request<B>> for RequestHead<'r> {
    fn from(request: &'r Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            source: None,
        }
    }
}

impl<'r> From<&'r request::Parts> for RequestHead<'r> {
    fn from(parts: &'r request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            source: None,
        }
    }
}

impl<'r> RequestHead<'r> {
    /// The request as coming from `source`.
    pub fn from_source(self, source: Option<&'r Source>) -> Self {
        Self { source, ..self }
    }

    fn uri_matches(&self, uri: &StringMatch) -> bool {
        let value = match uri {
            StringMatch::Prefix(_) => self.path_and_query(),
            StringMatch::Exact(_) | StringMatch::Regex(_) => self.uri.path(),
        };
        uri.matches(value.as_bytes())
    }

    pub(super) fn path_and_query(&self) -> &str {
        self.uri
            .path_and_query()
            .map_or_else(|| self.uri.path(), |path| path.as_str())
    }

    /// `:authority` (HTTP/2 and absolute-form HTTP/1.1), else the `Host` header.
    fn authority(&self) -> Option<&[u8]> {
        match self.uri.authority() {
            Some(authority) => Some(authority.as_str().as_bytes()),
            None => self.headers.get(header::HOST).map(|host| host.as_bytes()),
        }
    }

    fn header(&self, key: &HeaderKey) -> Option<Cow<'_, [u8]>> {
        match key {
            HeaderKey::Header(name) => self.joined(name),
            HeaderKey::Pseudo(":method") => Some(self.method.as_str().as_bytes().into()),
            HeaderKey::Pseudo(":scheme") => self.uri.scheme_str().map(|s| s.as_bytes().into()),
            HeaderKey::Pseudo(":authority") => self.authority().map(Cow::from),
            HeaderKey::Pseudo(":path") => Some(self.path_and_query().as_bytes().into()),
            HeaderKey::Pseudo(_) => None,
        }
    }

    /// A header's values, joined by `,` when there are several.
    pub fn joined(&self, name: &HeaderName) -> Option<Cow<'_, [u8]>> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(first.as_bytes().into());
        };
        let mut joined = first.as_bytes().to_vec();
        for value in [second].into_iter().chain(values) {
            joined.push(b',');
            joined.extend_from_slice(value.as_bytes());
        }
        Some(joined.into())
    }
}
