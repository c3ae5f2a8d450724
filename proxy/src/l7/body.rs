//! The body of a response on its way from an endpoint to the client. It
//! - starts with the frame strait held back while deciding whether to retry, if any;
//! - keeps the request's resources (its stream slot upstream, its place in the balancer's and
//!   the retry budget's counts) in its observer until the response is finished, and tells the
//!   observer how it ended: its trailers, an error, the end, or the deadline;
//! - enforces the request's deadline: when it passes, the upstream stream is dropped (reset)
//!   and a gRPC client gets DEADLINE_EXCEEDED in trailers, an HTTP client a reset stream.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{grpc, replay::BoxError};

/// Learns how a response ends, as its body is read.
pub trait ResponseObserver {
    /// Body bytes on their way to the client.
    fn data(&mut self, _bytes: usize) {}
    fn trailers(&mut self, _trailers: &HeaderMap) {}
    fn error(&mut self) {}
    /// The body was read to its end (may be called more than once).
    fn end(&mut self) {}
    /// The deadline passed before the end.
    fn timed_out(&mut self) {}
}

pub struct ResponseBody<B, O> {
    held: Option<Frame<Bytes>>,
    /// `None` once the deadline passed: the upstream stream is dropped.
    inner: Option<B>,
    observer: O,
    deadline: Option<Pin<Box<Sleep>>>,
    grpc: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
struct Timeout;

impl<B, O> ResponseBody<B, O> {
    pub fn new(
        held: Option<Frame<Bytes>>,
        inner: B,
        observer: O,
        deadline: Option<Instant>,
        grpc: bool,
    ) -> Self {
        Self {
            held,
            inner: Some(inner),
            observer,
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            grpc,
        }
    }
}

impl<B, O> Body for ResponseBody<B, O>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    O: ResponseObserver + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(frame) = this.held.take() {
            observe_frame(&mut this.observer, &frame, inner.is_end_stream());
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(this.expire());
            }
        }
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let ended = this.inner.as_ref().is_none_or(Body::is_end_stream);
                observe_frame(&mut this.observer, frame, ended);
            }
            Poll::Ready(Some(Err(_))) => this.observer.error(),
            Poll::Ready(None) => this.observer.end(),
            Poll::Pending => {}
        }
        polled.map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.held, &self.inner) {
            (None, Some(inner)) => inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

impl<B, O: ResponseObserver> ResponseBody<B, O> {
    /// The deadline passed: drop the upstream stream and end the response.
    fn expire(&mut self) -> Option<Result<Frame<Bytes>, BoxError>> {
        self.inner = None;
        self.held = None;
        self.observer.timed_out();
        if self.grpc {
            Some(Ok(Frame::trailers(grpc::timeout_trailers())))
        } else {
            Some(Err(Timeout.into()))
        }
    }
}

fn observe_frame(observer: &mut impl ResponseObserver, frame: &Frame<Bytes>, ended: bool) {
    if let Some(data) = frame.data_ref() {
        observer.data(data.len());
    }
    if let Some(trailers) = frame.trailers_ref() {
        observer.trailers(trailers);
    }
    // The server stops polling once the body says it is done: trailers, or data that ended the
    // stream. It may never ask for the final `None`.
    if frame.is_trailers() || ended {
        observer.end();
    }
}
