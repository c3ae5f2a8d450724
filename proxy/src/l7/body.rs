//! A response body that keeps the request's resources (its stream slot on the upstream
//! connection, its place in the balancer's active count) until the response is finished, and
//! tells an observer how it ended: its trailers, an error, or the end.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

/// Learns how a response ends, as its body is read.
pub trait ResponseObserver {
    fn trailers(&mut self, _trailers: &HeaderMap) {}
    fn error(&mut self) {}
    /// The body was read to its end (may be called more than once).
    fn end(&mut self) {}
}

pub struct Observed<B, O> {
    inner: B,
    observer: O,
}

impl<B, O> Observed<B, O> {
    pub fn new(inner: B, observer: O) -> Self {
        Self { inner, observer }
    }
}

impl<B: Body + Unpin, O: ResponseObserver + Unpin> Body for Observed<B, O> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.observer.trailers(trailers);
                }
                // The server stops polling once the body says it is done: trailers, or data
                // that ended the stream. It may never ask for the final `None`.
                if frame.is_trailers() || this.inner.is_end_stream() {
                    this.observer.end();
                }
            }
            Poll::Ready(Some(Err(_))) => this.observer.error(),
            Poll::Ready(None) => this.observer.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
