//! Headers on the way through, whichever HTTP each side speaks, as Envoy treats them:
//! - hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the message: they are
//!   removed from every request and response (HTTP/2 forbids them anyway), except the
//!   `Upgrade` of a WebSocket handshake and `TE: trailers`, which gRPC needs;
//! - the request target moves between HTTP/1's origin-form path with a `Host` header and
//!   HTTP/2's absolute URI (`:scheme`, `:authority`, `:path`);
//! - a request without `x-request-id` gets one (a random UUID), as Envoy gives it, so the access
//!   logs of every hop and the application can name the request; W3C `traceparent` and
//!   `tracestate` go through unchanged (strait reports no spans of its own).

use std::net::SocketAddr;

use http::{
    header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE},
    uri::{Authority, PathAndQuery, Scheme},
    HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version,
};

/// Envoy's request ID header.
pub const REQUEST_ID: &str = "x-request-id";

/// Gives the request an `x-request-id` unless it has one.
pub fn ensure_request_id<B>(request: &mut Request<B>) {
    if request.headers().contains_key(REQUEST_ID) {
        return;
    }
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let value = HeaderValue::from_str(&id.hyphenated().to_string())
        .expect("a UUID is a valid header value");
    request
        .headers_mut()
        .insert(HeaderName::from_static(REQUEST_ID), value);
}

/// What an HTTP/1.1 request asks to switch to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Relayed: Istio enables WebSocket upgrades on every HTTP route.
    WebSocket,
    /// CONNECT and any other upgrade: Envoy answers 403 for upgrade types it is not configured
    /// for, and Istio configures only `websocket`.
    Refused,
}

/// The upgrade a request asks for, if any. `Upgrade: h2c` is no upgrade for a proxy (Envoy
/// ignores it too): the request is served as it is, and its hop-by-hop fields removed.
pub fn upgrade<B>(request: &Request<B>) -> Option<Upgrade> {
    if request.method() == Method::CONNECT {
        return Some(Upgrade::Refused);
    }
    let headers = request.headers();
    let protocol = headers.get(UPGRADE)?.as_bytes();
    if !connection_options(headers).any(|name| name == UPGRADE) {
        return None;
    }
    if protocol.eq_ignore_ascii_case(b"websocket") {
        Some(Upgrade::WebSocket)
    } else if protocol.eq_ignore_ascii_case(b"h2c") {
        None
    } else {
        Some(Upgrade::Refused)
    }
}

/// Removes the hop-by-hop fields: those `Connection` names, and the standard ones. With
/// `keep_upgrade` (a WebSocket handshake and its 101) the upgrade stays, as `Connection:
/// upgrade` and `Upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_options(headers).collect();
    for name in named {
        // `TE` is settled below, with the other standard fields.
        if name != TE && !(keep_upgrade && name == UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in [CONNECTION, TRANSFER_ENCODING] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    match keep_upgrade && headers.contains_key(UPGRADE) {
        true => {
            headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        }
        false => {
            headers.remove(UPGRADE);
        }
    }
    let trailers = headers
        .get_all(TE)
        .iter()
        .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case("trailers")));
    headers.remove(TE);
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Shapes a request for an endpoint speaking `version`: HTTP/2 gets an absolute URI whose
/// authority is the client's `Host` (which it replaces), HTTP/1.1 an origin-form target and a
/// `Host` from the client's `:authority`. A request with neither (HTTP/1.0) is for
/// `endpoint`.
pub fn for_upstream<B>(request: &mut Request<B>, version: Version, endpoint: SocketAddr) {
    let uri = request.uri();
    if version == Version::HTTP_2 && uri.scheme().is_some() && uri.authority().is_some() {
        // An HTTP/2 request (or an absolute-form HTTP/1 one) is already in HTTP/2's form.
        request.headers_mut().remove(HOST);
        *request.version_mut() = version;
        return;
    }
    let authority = request
        .uri()
        .authority()
        .cloned()
        .or_else(|| host(request.headers()))
        .unwrap_or_else(|| {
            Authority::try_from(endpoint.to_string()).expect("an address is an authority")
        });
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if version == Version::HTTP_2 {
        request.headers_mut().remove(HOST);
        let absolute = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path)
            .build();
        // An asterisk-form target (`OPTIONS *`) stays as it is.
        if let Ok(absolute) = absolute {
            *request.uri_mut() = absolute;
        }
    } else {
        let host = HeaderValue::from_str(authority.as_str()).expect("an authority is a value");
        request.headers_mut().insert(HOST, host);
        *request.uri_mut() = Uri::from(path);
    }
    *request.version_mut() = version;
}

fn host(headers: &HeaderMap) -> Option<Authority> {
    Authority::try_from(headers.get(HOST)?.as_bytes()).ok()
}

/// The field names a `Connection` header lists, lower-cased.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(tokens)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
}

/// A comma-separated header value's tokens, trimmed.
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort();
        names
    }

    const END_TO_END: (&str, &str) = ("content-type", "text/plain");

    #[test]
    fn hop_by_hop_fields_go_and_end_to_end_ones_stay() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "gzip"),
            END_TO_END,
            ("content-length", "3"),
        ]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["content-length", "content-type"]);
    }

    #[test]
    fn te_trailers_stays_for_grpc() {
        let mut map = headers(&[("te", "trailers"), ("connection", "te")]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(map["te"], "trailers");
        let mut map = headers(&[("te", "gzip, trailers;q=1, trailers")]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(map["te"], "trailers");
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_websocket_handshake_keeps_its_upgrade_only() {
        let mut map = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        remove_hop_by_hop(&mut map, true);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(names(&map), ["connection", "sec-websocket-key", "upgrade"]);
    }

    fn request(method: Method, uri: &str, pairs: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::builder().method(method).uri(uri);
        *request.headers_mut().unwrap() = headers(pairs);
        request.body(()).unwrap()
    }

    #[test]
    fn upgrades_asked_for() {
        let upgrade_to = |protocol| {
            upgrade(&request(
                Method::GET,
                "/",
                &[("connection", "Upgrade"), ("upgrade", protocol)],
            ))
        };
        assert_eq!(upgrade_to("websocket"), Some(Upgrade::WebSocket));
        assert_eq!(upgrade_to("WebSocket"), Some(Upgrade::WebSocket));
        assert_eq!(upgrade_to("h2c"), None);
        assert_eq!(upgrade_to("tls/1.3"), Some(Upgrade::Refused));
        // Upgrade means nothing unless Connection names it.
        let unlisted = request(Method::GET, "/", &[("upgrade", "websocket")]);
        assert_eq!(upgrade(&unlisted), None);
        let connect = request(Method::CONNECT, "svc:443", &[]);
        assert_eq!(upgrade(&connect), Some(Upgrade::Refused));
        assert_eq!(upgrade(&request(Method::GET, "/", &[])), None);
    }

    const ENDPOINT: &str = "10.1.0.7:8080";

    #[test]
    fn host_becomes_the_authority_for_http2() {
        let mut from_http1 = request(
            Method::GET,
            "/hello?x=1",
            &[("host", "web.default:80"), END_TO_END],
        );
        for_upstream(&mut from_http1, Version::HTTP_2, ENDPOINT.parse().unwrap());
        assert_eq!(from_http1.uri(), "http://web.default:80/hello?x=1");
        assert_eq!(from_http1.version(), Version::HTTP_2);
        assert_eq!(names(from_http1.headers()), ["content-type"]);
    }

    #[test]
    fn the_authority_becomes_host_for_http1() {
        let mut from_http2 = request(Method::POST, "http://web.default/submit", &[END_TO_END]);
        for_upstream(&mut from_http2, Version::HTTP_11, ENDPOINT.parse().unwrap());
        assert_eq!(from_http2.uri(), "/submit");
        assert_eq!(from_http2.headers()["host"], "web.default");
        assert_eq!(from_http2.version(), Version::HTTP_11);
        // An absolute-form HTTP/1.1 target's authority wins over its Host (RFC 9112 §3.2.2).
        let mut absolute = request(Method::GET, "http://web/a", &[("host", "other")]);
        for_upstream(&mut absolute, Version::HTTP_11, ENDPOINT.parse().unwrap());
        assert_eq!(
            (absolute.uri().to_string(), &absolute.headers()["host"]),
            ("/a".to_owned(), &HeaderValue::from_static("web"))
        );
    }

    #[test]
    fn http1_to_http1_keeps_the_target() {
        let mut request = request(Method::GET, "/x", &[("host", "web:8080")]);
        for_upstream(&mut request, Version::HTTP_11, ENDPOINT.parse().unwrap());
        assert_eq!(request.uri(), "/x");
        assert_eq!(request.headers()["host"], "web:8080");
    }

    #[test]
    fn without_host_the_endpoint_is_the_authority() {
        let mut http10 = request(Method::GET, "/", &[]);
        for_upstream(&mut http10, Version::HTTP_2, ENDPOINT.parse().unwrap());
        assert_eq!(http10.uri(), "http://10.1.0.7:8080/");
    }
}
