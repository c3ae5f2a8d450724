//! `headers` of a route and of its destinations: what is set, added and removed on requests
//! and responses, as Istio hands it to Envoy.
//!
//! - `set` replaces a header's values, `add` adds one beside them, `remove` removes the header;
//!   each level (route, destination) removes before it writes, `set` before `add`, names in
//!   order, as Envoy applies Istio's lists.
//! - With one destination, Istio puts the destination's changes after the route's in the same
//!   lists, so a destination's `set` wins. With several, each destination's are its weighted
//!   cluster's, which Envoy applies before the route's, so the route's win.
//! - `:authority` (or `host`) in a request's `set` or `add` changes the authority sent upstream
//!   (`set` over `add`); see [`RouteDestination::authority`](super::RouteDestination::authority).
//!   Other pseudo-headers cannot be changed: Istio refuses them.
//! - Values are taken literally: Envoy would expand `%COMMAND%`s in them (validation warns).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::resources::{HeaderOperations, Headers};

/// Changes to a request's or a response's headers, applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderChanges(Vec<HeaderChange>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderChange {
    Remove(HeaderName),
    /// Replaces every value of the header, or adds it.
    Set(HeaderName, HeaderValue),
    /// Adds a value; the header's others stay.
    Add(HeaderName, HeaderValue),
}

impl HeaderChanges {
    pub fn apply(&self, headers: &mut HeaderMap) {
        for change in &self.0 {
            match change {
                HeaderChange::Remove(name) => {
                    headers.remove(name);
                }
                HeaderChange::Set(name, value) => {
                    headers.insert(name.clone(), value.clone());
                }
                HeaderChange::Add(name, value) => {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &HeaderChange> {
        self.0.iter()
    }
}

/// What one destination does to headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DestinationHeaders {
    pub request: HeaderChanges,
    pub response: HeaderChanges,
    /// From `:authority` or `host` in the route's request headers, else the destination's.
    pub authority: Option<HeaderValue>,
}

impl DestinationHeaders {
    /// The changes for one destination of a route: `weighted` when the route has several.
    pub fn new(route: Option<&Headers>, destination: Option<&Headers>, weighted: bool) -> Self {
        let route = Level::of(route);
        let destination = Level::of(destination);
        let (request, response) = if weighted {
            (
                one_after_the_other(&destination.request, &route.request),
                one_after_the_other(&destination.response, &route.response),
            )
        } else {
            (
                in_one_list(&route.request, &destination.request),
                in_one_list(&route.response, &destination.response),
            )
        };
        Self {
            request,
            response,
            authority: route.authority.or(destination.authority),
        }
    }
}

/// Two levels' changes as Envoy applies them from one list: removes, then writes.
fn in_one_list(first: &Changes, second: &Changes) -> HeaderChanges {
    let lists = [
        &first.removes,
        &second.removes,
        &first.writes,
        &second.writes,
    ];
    HeaderChanges(lists.into_iter().flatten().cloned().collect())
}

/// Two levels' changes as Envoy applies two lists, the first first.
fn one_after_the_other(first: &Changes, second: &Changes) -> HeaderChanges {
    let lists = [
        &first.removes,
        &first.writes,
        &second.removes,
        &second.writes,
    ];
    HeaderChanges(lists.into_iter().flatten().cloned().collect())
}

/// One level's `headers`, read.
#[derive(Default)]
struct Level {
    request: Changes,
    response: Changes,
    authority: Option<HeaderValue>,
}

#[derive(Default)]
struct Changes {
    removes: Vec<HeaderChange>,
    /// Sets, then adds.
    writes: Vec<HeaderChange>,
}

impl Level {
    /// What strait can apply; validation reports the rest (see [`unusable`]).
    fn of(headers: Option<&Headers>) -> Self {
        let Some(headers) = headers else {
            return Self::default();
        };
        let (request, authority) = Changes::of(&headers.request, Side::Request);
        let (response, _) = Changes::of(&headers.response, Side::Response);
        Self {
            request,
            response,
            authority,
        }
    }
}

impl Changes {
    /// The changes, and the authority they set (`set` over `add`).
    fn of(ops: &HeaderOperations, side: Side) -> (Self, Option<HeaderValue>) {
        let mut changes = Self::default();
        let (mut set_authority, mut added_authority) = (None, None);
        for (name, operation) in operations(ops) {
            match Op::parse(name, operation, side) {
                Ok(Op::Authority(value)) if operation.is_set() => set_authority = Some(value),
                Ok(Op::Authority(value)) => added_authority = Some(value),
                Ok(Op::Change(change @ HeaderChange::Remove(_))) => changes.removes.push(change),
                Ok(Op::Change(change)) => changes.writes.push(change),
                Err(_) => {}
            }
        }
        (changes, set_authority.or(added_authority))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// One operation as written, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation<'a> {
    Set(&'a str),
    Add(&'a str),
    Remove,
}

impl<'a> Operation<'a> {
    fn as_str(self) -> &'static str {
        match self {
            Self::Set(_) => "set",
            Self::Add(_) => "add",
            Self::Remove => "remove",
        }
    }

    fn value(self) -> Option<&'a str> {
        match self {
            Self::Set(value) | Self::Add(value) => Some(value),
            Self::Remove => None,
        }
    }

    fn is_set(self) -> bool {
        matches!(self, Self::Set(_))
    }
}

/// Every operation as written, by header name: sets (by name), adds (by name), removes (in
/// order).
fn operations(ops: &HeaderOperations) -> impl Iterator<Item = (&str, Operation<'_>)> {
    let sets = ops.set.iter().map(|(n, v)| (n.as_str(), Operation::Set(v)));
    let adds = ops.add.iter().map(|(n, v)| (n.as_str(), Operation::Add(v)));
    let removes = ops.remove.iter().map(|n| (n.as_str(), Operation::Remove));
    sets.chain(adds).chain(removes)
}

/// One operation, read.
enum Op {
    Change(HeaderChange),
    /// A request's `:authority` or `host` set or added.
    Authority(HeaderValue),
}

/// Why an operation cannot be applied. Istio refuses all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unusable {
    InvalidName,
    /// A pseudo-header or `host`, other than a request's authority set or added.
    Internal,
    InvalidValue,
}

impl Op {
    fn parse(name: &str, operation: Operation<'_>, side: Side) -> Result<Self, Unusable> {
        let value = operation
            .value()
            .map(|value| HeaderValue::from_str(value).map_err(|_| Unusable::InvalidValue))
            .transpose()?;
        match value {
            Some(value) if side == Side::Request && names_authority(name) => {
                return Ok(Self::Authority(value));
            }
            _ if name.starts_with(':') || name.eq_ignore_ascii_case("host") => {
                return Err(Unusable::Internal);
            }
            _ => {}
        }
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Unusable::InvalidName)?;
        Ok(Self::Change(match (operation, value) {
            (Operation::Set(_), Some(value)) => HeaderChange::Set(name, value),
            (Operation::Add(_), Some(value)) => HeaderChange::Add(name, value),
            _ => HeaderChange::Remove(name),
        }))
    }
}

/// Whether a header name is the authority's, as Istio reads it.
fn names_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Every operation of `headers`, with its field under `headers` (`request.set.x-user`).
fn fields(headers: &Headers) -> impl Iterator<Item = (String, Side, &str, Operation<'_>)> {
    [
        (Side::Request, &headers.request),
        (Side::Response, &headers.response),
    ]
    .into_iter()
    .flat_map(|(side, ops)| {
        operations(ops).map(move |(name, operation)| {
            let field = format!("{}.{}.{name}", side.as_str(), operation.as_str());
            (field, side, name, operation)
        })
    })
}

/// The operations of `headers` strait cannot apply, each with its field under `headers` and
/// why.
pub(crate) fn unusable(headers: &Headers) -> Vec<(String, Unusable)> {
    fields(headers)
        .filter_map(|(field, side, name, operation)| {
            Op::parse(name, operation, side)
                .err()
                .map(|why| (field, why))
        })
        .collect()
}

/// The fields under `headers` whose value holds a `%`, which Envoy would read as a command.
pub(crate) fn with_percent_signs(headers: &Headers) -> Vec<String> {
    fields(headers)
        .filter(|(_, _, _, operation)| operation.value().is_some_and(|v| v.contains('%')))
        .map(|(field, ..)| field)
        .collect()
}

/// How many times the route-level `headers` set the authority (`set` and `add` together).
pub(crate) fn authority_settings(headers: &Headers) -> usize {
    let ops = &headers.request;
    let names = ops.set.keys().chain(ops.add.keys());
    names.filter(|name| names_authority(name)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(yaml: &str) -> Headers {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn names(changes: &HeaderChanges) -> Vec<String> {
        changes
            .iter()
            .map(|change| match change {
                HeaderChange::Remove(name) => format!("-{name}"),
                HeaderChange::Set(name, value) => format!("{name}={}", value.to_str().unwrap()),
                HeaderChange::Add(name, value) => format!("{name}+={}", value.to_str().unwrap()),
            })
            .collect()
    }

    #[test]
    fn one_destination_puts_its_changes_after_the_routes() {
        let route = headers("{request: {set: {x-a: r}, add: {x-b: r}, remove: [x-c]}}");
        let destination =
            headers("{request: {set: {x-a: d}, remove: [x-d]}, response: {remove: [server]}}");
        let single = DestinationHeaders::new(Some(&route), Some(&destination), false);
        assert_eq!(
            names(&single.request),
            ["-x-c", "-x-d", "x-a=r", "x-b+=r", "x-a=d"]
        );
        assert_eq!(names(&single.response), ["-server"]);
        let weighted = DestinationHeaders::new(Some(&route), Some(&destination), true);
        assert_eq!(
            names(&weighted.request),
            ["-x-d", "x-a=d", "-x-c", "x-a=r", "x-b+=r"]
        );
    }

    #[test]
    fn applied_in_order() {
        let route = headers("{request: {set: {x-a: '1'}, add: {x-b: '2'}, remove: [x-c]}}");
        let changes = DestinationHeaders::new(Some(&route), None, false).request;
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("0"));
        map.append("x-a", HeaderValue::from_static("00"));
        map.append("x-b", HeaderValue::from_static("1"));
        map.append("x-c", HeaderValue::from_static("gone"));
        changes.apply(&mut map);
        let values = |name| -> Vec<&str> {
            map.get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        assert_eq!(values("x-a"), ["1"]);
        assert_eq!(values("x-b"), ["1", "2"]);
        assert!(values("x-c").is_empty());
    }

    #[test]
    fn the_authority_is_set_over_added_and_the_routes_over_the_destinations() {
        let route = headers("{request: {add: {':authority': added}, set: {Host: set}}}");
        let destination = headers("{request: {set: {':authority': own}}}");
        let both = DestinationHeaders::new(Some(&route), Some(&destination), false);
        assert_eq!(both.authority, Some(HeaderValue::from_static("set")));
        assert!(both.request.is_empty(), "the authority is no header change");
        let own = DestinationHeaders::new(None, Some(&destination), true);
        assert_eq!(own.authority, Some(HeaderValue::from_static("own")));
    }

    #[test]
    fn unusable_operations_are_named() {
        let written = headers(
            "{request: {set: {':path': /x, 'x y': a, x-ok: \"a\\x01\"}, remove: [':authority']}, \
              response: {add: {host: h}}}",
        );
        assert_eq!(
            unusable(&written),
            [
                ("request.set.:path".to_owned(), Unusable::Internal),
                ("request.set.x y".to_owned(), Unusable::InvalidName),
                ("request.set.x-ok".to_owned(), Unusable::InvalidValue),
                ("request.remove.:authority".to_owned(), Unusable::Internal),
                ("response.add.host".to_owned(), Unusable::Internal),
            ]
        );
        let literal = headers("{response: {set: {x-peer: '%DOWNSTREAM_REMOTE_ADDRESS%'}}}");
        assert_eq!(with_percent_signs(&literal), ["response.set.x-peer"]);
    }
}
