//! What a route does to a request besides choosing where it goes: fault injection (delay, then
//! abort, as Envoy's fault filter runs before its router), and the changes to the request head:
//! the path rewrite, the authority, the header changes of the route and its destination.

use http::{
    header::HOST,
    uri::{self, Authority, PathAndQuery},
    HeaderValue, Request, Uri,
};
use tokio::time::Instant;

use super::failure::Failure;
use crate::{
    config::route::{Fault, HttpRoute, RequestHead, RouteDestination, Source},
    telemetry::ResponseFlags,
};

/// Delays the request, or aborts it, as the route's `fault` says for this request's draws.
/// A delay never outlasts the request's deadline: then the request times out (UT).
pub async fn inject_fault(
    fault: &Fault,
    deadline: Option<Instant>,
    flags: &mut ResponseFlags,
) -> Result<(), Failure> {
    if let Some(delay) = fault
        .delay
        .filter(|d| d.percentage.admits(fastrand::u32(..)))
    {
        *flags |= ResponseFlags::DELAY_INJECTED;
        let until = Instant::now() + delay.duration;
        match deadline {
            Some(deadline) if deadline < until => {
                tokio::time::sleep_until(deadline).await;
                return Err(Failure::Timeout { per_try: false });
            }
            _ => tokio::time::sleep_until(until).await,
        }
    }
    if let Some(abort) = fault
        .abort
        .filter(|a| a.percentage.admits(fastrand::u32(..)))
    {
        return Err(Failure::FaultAbort(abort.status));
    }
    Ok(())
}

/// The request (from `source`) as the route sends it to `destination`: path rewritten,
/// authority replaced, headers changed.
pub fn shape_request<B>(
    route: &HttpRoute,
    destination: &RouteDestination,
    request: &mut Request<B>,
    port: u16,
    source: Option<&Source>,
) {
    let head = RequestHead::from(&*request).from_source(source);
    if let Some(path) = route.rewritten_path(head, port) {
        set_path(request, &path);
    }
    if let Some(authority) = &destination.authority {
        set_authority(request, authority);
    }
    destination.request_headers.apply(request.headers_mut());
}

fn set_path<B>(request: &mut Request<B>, path: &str) {
    if let Ok(path) = PathAndQuery::try_from(path) {
        edit_uri(request, |parts| parts.path_and_query = Some(path));
    }
}

/// `:authority` for HTTP/2 (the URI's), `Host` for HTTP/1.1: both, whichever the request has.
pub fn set_authority<B>(request: &mut Request<B>, authority: &HeaderValue) {
    if request.uri().authority().is_some() {
        if let Ok(authority) = Authority::try_from(authority.as_bytes()) {
            edit_uri(request, |parts| parts.authority = Some(authority));
        }
    }
    if request.headers().contains_key(HOST) {
        request.headers_mut().insert(HOST, authority.clone());
    }
}

/// Changes a part of the request's URI; a change that would make it invalid is not made.
fn edit_uri<B>(request: &mut Request<B>, edit: impl FnOnce(&mut uri::Parts)) {
    let mut parts = request.uri().clone().into_parts();
    edit(&mut parts);
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}
