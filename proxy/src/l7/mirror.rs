//! Mirrors (VirtualService `mirror`, `mirrors`): as Envoy's request mirror policies, a copy of
//! a request goes to each mirror whose percentage admits it, with its `:authority` (or `Host`)
//! suffixed `-shadow` (`host:port` becomes `host-shadow:port`). The copy is fire and forget:
//! its answer is read and dropped, and nothing it does delays, fails or changes the request.
//!
//! A copy is sent as a try of its own ([`L7Proxy::attempt`]: its Backend's balancer and pools,
//! no retries, the request's deadline) and counted in the request metrics under the mirror's
//! `destination_service`, as Envoy counts shadow requests in the shadow cluster's stats. Its
//! body is the client's, teed as it streams: the request's body reader hands each frame it
//! reads from the client to a [`Tap`] too (see [`super::replay`]). A copy that falls more than
//! [`MAX_MIRROR_LAG_BYTES`] behind is abandoned (its stream reset), never the request; so is one
//! whose request stops reading the client's body before its end. Copies stop when strait drains.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http::{request, HeaderValue, Request};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::time::Instant;
use tracing::debug;

use super::{
    attempt::{self, TryDeadline},
    failed, grpc,
    replay::{BoxError, Replay},
    route_actions, try_request, FinalTry, L7Proxy, Record, RequestBody,
};
use crate::{
    config::{route::Mirror, Backend, GrpcCodes},
    telemetry::Peer,
};

/// How far a copy's body may fall behind the request's before the copy is abandoned.
pub const MAX_MIRROR_LAG_BYTES: usize = 64 * 1024;

/// What Envoy appends to a copy's host.
const SHADOW_SUFFIX: &str = "-shadow";

impl L7Proxy {
    /// Sends a copy of the request (`parts`, the body `replay` reads; from `client`, due by
    /// `deadline`) to each mirror that admits it, and goes on at once.
    pub(super) fn mirror(
        self: &Arc<Self>,
        mirrors: &[Mirror],
        parts: &request::Parts,
        replay: &Replay<hyper::body::Incoming>,
        client: SocketAddr,
        deadline: Option<Instant>,
    ) {
        for mirror in mirrors {
            if !mirror.percentage.admits(fastrand::u32(..)) {
                continue;
            }
            let backend = match mirror.target.backend() {
                Ok(backend) => backend.clone(),
                Err(unresolved) => {
                    debug!(%unresolved, "request not mirrored");
                    continue;
                }
            };
            let (body, sent) = replay.mirror();
            let mut copy = try_request(parts, body, deadline);
            shadow_authority(&mut copy);
            let proxy = self.clone();
            tokio::spawn(async move {
                let drain = proxy.drain.clone();
                tokio::select! {
                    _ = drain.cancelled() => {}
                    _ = proxy.send_copy(&backend, copy, sent, client, deadline) => {}
                }
            });
        }
    }

    /// One copy, to its end: its response read and dropped, its metrics recorded.
    async fn send_copy(
        &self,
        backend: &Backend,
        copy: Request<RequestBody>,
        sent: Arc<AtomicU64>,
        client: SocketAddr,
        deadline: Option<Instant>,
    ) {
        let mut record = Record::new(self.metrics.clone(), grpc::is_grpc(&copy));
        // The copy's request bytes: what its body gave it, not what the client sent.
        record.receiving(sent);
        let service = &backend.service;
        record.outcome.service = Some((service.name.clone(), service.namespace.clone()));
        let model = self.model.borrow().clone();
        record.outcome.peers.source = Peer::at(&model, client.ip());
        let response = match self.try_copy(backend, copy, client, deadline).await {
            Ok(last) => {
                let endpoint = last.answered.pick.endpoint();
                record.outcome.peers.destination = Peer::at(&model, endpoint.ip());
                last.respond(record)
            }
            Err(failure) => failed(failure, record),
        };
        if let Err(err) = response.into_body().collect().await {
            debug!(%err, "mirrored response ended with an error");
        }
    }

    async fn try_copy(
        &self,
        backend: &Backend,
        copy: Request<RequestBody>,
        client: SocketAddr,
        deadline: Option<Instant>,
    ) -> Result<FinalTry, super::failure::Failure> {
        let (parts, body) = copy.into_parts();
        let target = attempt::Destination::of(backend, &parts, client);
        let max_requests = backend.traffic_policy.connection_pool.http2_max_requests;
        let active = self.loads.request(&backend.key, max_requests)?;
        let try_deadline = deadline.map(|at| TryDeadline { at, per_try: false });
        let copy = Request::from_parts(parts, body);
        let answered = self
            .attempt(&target, &[], copy, false, try_deadline)
            .await
            .map_err(|(failure, _)| failure)?;
        Ok(FinalTry {
            answered,
            active,
            retry: None,
            exhausted_on: GrpcCodes::default(),
            deadline,
        })
    }
}

/// `host:port` → `host-shadow:port`, `host` → `host-shadow`, as Envoy names a copy's host.
fn shadow_authority<B>(copy: &mut Request<B>) {
    let authority = match copy.uri().authority() {
        Some(authority) => authority.as_str(),
        None => match copy.headers().get(http::header::HOST) {
            Some(host) => host.to_str().unwrap_or_default(),
            None => return,
        },
    };
    let shadow = shadowed(authority);
    if let Ok(shadow) = HeaderValue::try_from(shadow) {
        route_actions::set_authority(copy, &shadow);
    }
}

fn shadowed(authority: &str) -> String {
    let port_start = authority
        .rfind(':')
        .filter(|&colon| authority[colon + 1..].bytes().all(|b| b.is_ascii_digit()))
        // A colon inside an IPv6 address is not a port's.
        .filter(|&colon| !authority[..colon].contains(':') || authority[..colon].ends_with(']'));
    let (host, port) = authority.split_at(port_start.unwrap_or(authority.len()));
    format!("{host}{SHADOW_SUFFIX}{port}")
}

/// Where the request's body reader puts what it reads from the client, for one copy.
pub struct Tap {
    shared: Arc<Mutex<Teed>>,
}

/// A copy's body: what its [`Tap`] was given.
pub struct TapBody {
    shared: Arc<Mutex<Teed>>,
    /// Body bytes given to the copy so far.
    sent: Arc<AtomicU64>,
}

#[derive(Default)]
struct Teed {
    frames: VecDeque<Frame<Bytes>>,
    buffered: usize,
    state: TapState,
    /// The copy's body, waiting for a frame.
    waker: Option<Waker>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TapState {
    #[default]
    Open,
    Ended,
    /// Behind by too much, or the request stopped reading, or the copy went away.
    Abandoned,
}

#[derive(Debug, thiserror::Error)]
#[error("mirrored request body abandoned")]
struct Abandoned;

impl Tap {
    /// A tap and the body it feeds; `ended` when the client's body has ended already.
    pub fn new(ended: bool) -> (Self, TapBody) {
        let state = match ended {
            true => TapState::Ended,
            false => TapState::Open,
        };
        let shared = Arc::new(Mutex::new(Teed {
            state,
            ..Teed::default()
        }));
        let body = TapBody {
            shared: shared.clone(),
            sent: Arc::default(),
        };
        (Self { shared }, body)
    }

    /// Hands the copy `frame`; false when the copy is abandoned (now or before): drop the tap.
    pub fn feed(&self, frame: &Frame<Bytes>) -> bool {
        let mut teed = lock(&self.shared);
        if teed.state != TapState::Open {
            return false;
        }
        let len = frame.data_ref().map_or(0, Bytes::len);
        if teed.buffered + len > MAX_MIRROR_LAG_BYTES {
            teed.finish(TapState::Abandoned);
            return false;
        }
        teed.buffered += len;
        let copy = match (frame.data_ref(), frame.trailers_ref()) {
            (Some(data), _) => Frame::data(data.clone()),
            (None, Some(trailers)) => Frame::trailers(trailers.clone()),
            (None, None) => return true,
        };
        teed.frames.push_back(copy);
        teed.wake();
        true
    }

    /// The client's body ended: the copy's ends once it has sent what it was given.
    pub fn end(&self) {
        lock(&self.shared).finish(TapState::Ended);
    }
}

impl Drop for Tap {
    /// Dropped before the end: the request stopped reading the client's body.
    fn drop(&mut self) {
        lock(&self.shared).finish(TapState::Abandoned);
    }
}

impl Teed {
    /// Ends an open tap as `state`; an abandoned copy lets go of what it was given.
    fn finish(&mut self, state: TapState) {
        if self.state != TapState::Open {
            return;
        }
        self.state = state;
        if state == TapState::Abandoned {
            self.frames.clear();
        }
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl TapBody {
    /// The count of body bytes given to the copy, as it grows.
    pub fn sent(&self) -> Arc<AtomicU64> {
        self.sent.clone()
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut teed = lock(&self.shared);
        if let Some(frame) = teed.frames.pop_front() {
            let len = frame.data_ref().map_or(0, Bytes::len);
            teed.buffered -= len;
            self.sent.fetch_add(len as u64, Ordering::Relaxed);
            return Poll::Ready(Some(Ok(frame)));
        }
        match teed.state {
            TapState::Ended => Poll::Ready(None),
            TapState::Abandoned => Poll::Ready(Some(Err(Abandoned.into()))),
            TapState::Open => {
                teed.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let teed = lock(&self.shared);
        teed.state == TapState::Ended && teed.frames.is_empty()
    }
}

impl Drop for TapBody {
    /// The copy went away: nothing more is kept for it.
    fn drop(&mut self) {
        lock(&self.shared).finish(TapState::Abandoned);
    }
}

// A tap's queue stays consistent whatever a panicking holder left: recover.
fn lock(shared: &Mutex<Teed>) -> MutexGuard<'_, Teed> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shadow_host_keeps_its_port() {
        assert_eq!(shadowed("web.default:8080"), "web.default-shadow:8080");
        assert_eq!(shadowed("web"), "web-shadow");
        assert_eq!(shadowed("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadowed("::1"), "::1-shadow");
    }

    #[tokio::test]
    async fn a_copy_gets_what_was_fed_then_ends() {
        let (tap, body) = Tap::new(false);
        assert!(tap.feed(&Frame::data(Bytes::from_static(b"ab"))));
        assert!(tap.feed(&Frame::data(Bytes::from_static(b"c"))));
        tap.end();
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abc");
    }

    #[tokio::test]
    async fn a_copy_that_falls_behind_is_abandoned() {
        let (tap, body) = Tap::new(false);
        let chunk = Bytes::from(vec![0; MAX_MIRROR_LAG_BYTES / 2]);
        assert!(tap.feed(&Frame::data(chunk.clone())));
        assert!(tap.feed(&Frame::data(chunk.clone())));
        assert!(!tap.feed(&Frame::data(chunk)), "past the bound");
        assert!(
            lock(&tap.shared).frames.is_empty(),
            "what was kept is let go"
        );
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn a_copy_whose_request_stops_reading_is_abandoned() {
        let (tap, body) = Tap::new(false);
        tap.feed(&Frame::data(Bytes::from_static(b"a")));
        drop(tap);
        assert!(body.collect().await.is_err());
        let (_, empty) = Tap::new(true);
        assert!(empty.is_end_stream());
    }
}
