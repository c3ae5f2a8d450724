//! A request body that can be sent again: the client's body is streamed to the first try as it
//! arrives, and a copy of what was sent is kept (up to [`MAX_REPLAY_BYTES`]) so that a retry can
//! send it from the start and then go on with what the client sends next. A body larger than
//! that is not kept, and the request is not retried (Envoy's buffer limit does the same).
//!
//! Only the newest try reads the client's body: an older try that is still being polled (its
//! upstream stream not yet reset) gets an error, which resets its stream.
//!
//! What the newest try reads from the client also goes to the request's mirrors, each through
//! a bounded [`Tap`] (see [`super::mirror`]): a mirrored copy's body is a [`ReplayBody`] too,
//! so that it goes through the same pools.

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::mirror::{Tap, TapBody};

/// What is kept for replay: Envoy's default per-request buffer limit is 1 MiB; gRPC unary
/// requests are far smaller, and streaming ones are rarely retryable.
pub const MAX_REPLAY_BYTES: usize = 64 * 1024;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client's request body, kept for the tries: each gets its own [`ReplayBody`].
pub struct Replay<B> {
    shared: Arc<Mutex<Shared<B>>>,
}

/// What one try sends, or a mirrored copy.
pub enum ReplayBody<B> {
    Try(TryBody<B>),
    Mirror(TapBody),
}

/// What one try sends.
pub struct TryBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    /// Which try this is: only the newest reads.
    generation: u64,
    /// How many kept chunks this try has sent again.
    replayed: usize,
    trailers_sent: bool,
}

struct Shared<B> {
    source: B,
    generation: u64,
    kept: Vec<Bytes>,
    kept_bytes: usize,
    /// More than [`MAX_REPLAY_BYTES`] went by: nothing is kept any more.
    too_large: bool,
    /// The last try is under way: what it replays is let go, and nothing more is kept, so a
    /// long stream does not hold its first 64 KiB for its whole life.
    last_try: bool,
    /// How many kept chunks the newest try has sent.
    newest_sent: usize,
    trailers: Option<HeaderMap>,
    source_ended: bool,
    /// The mirrors' copies, until the client's body ends.
    taps: Vec<Tap>,
    /// Body bytes read from the client, for the access log.
    received: Arc<AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
#[error("request body superseded by a retry")]
struct Superseded;

impl<B: Body<Data = Bytes> + Unpin> Replay<B> {
    /// Keeps `source` for replay, and gives the first try's body.
    pub fn start(source: B) -> (Self, ReplayBody<B>) {
        let source_ended = source.is_end_stream();
        let replay = Self {
            shared: Arc::new(Mutex::new(Shared {
                source,
                generation: 0,
                kept: Vec::new(),
                kept_bytes: 0,
                too_large: false,
                last_try: false,
                newest_sent: 0,
                trailers: None,
                source_ended,
                taps: Vec::new(),
                received: Arc::default(),
            })),
        };
        let first = replay.body(0);
        (replay, first)
    }

    /// The body for the next try, from the start; `None` when it was too large to keep. The
    /// earlier tries' bodies stop reading.
    pub fn next_try(&self) -> Option<ReplayBody<B>> {
        let mut shared = lock(&self.shared);
        if shared.too_large || shared.last_try {
            return None;
        }
        shared.generation += 1;
        shared.newest_sent = 0;
        Some(self.body(shared.generation))
    }

    fn body(&self, generation: u64) -> ReplayBody<B> {
        ReplayBody::Try(TryBody {
            shared: self.shared.clone(),
            generation,
            replayed: 0,
            trailers_sent: false,
        })
    }
}

impl<B> Replay<B> {
    /// A mirrored copy's body: what the tries read from the client from now on (call it before
    /// the first try reads), as they read it; and the count of the body bytes it has given the
    /// copy.
    pub fn mirror(&self) -> (ReplayBody<B>, Arc<AtomicU64>) {
        let mut shared = lock(&self.shared);
        debug_assert!(
            shared.kept_bytes == 0 && !shared.too_large,
            "mirrored from the start"
        );
        let (tap, body) = Tap::new(shared.source_ended);
        if !shared.source_ended {
            shared.taps.push(tap);
        }
        let sent = body.sent();
        (ReplayBody::Mirror(body), sent)
    }
}

impl<B> Replay<B> {
    /// The count of body bytes read from the client, as it grows.
    pub fn received(&self) -> Arc<AtomicU64> {
        lock(&self.shared).received.clone()
    }

    /// No try follows the current one: let go of what was kept as it is sent.
    pub fn last_try(&self) {
        let mut shared = lock(&self.shared);
        shared.last_try = true;
        let sent = shared.newest_sent.min(shared.kept.len());
        shared.kept[..sent]
            .iter_mut()
            .for_each(|chunk| *chunk = Bytes::new());
    }
}

// What is kept stays consistent whatever a panicking holder left: recover.
fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Try(body) => Pin::new(body).poll_frame(cx),
            Self::Mirror(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Try(body) => body.is_end_stream(),
            Self::Mirror(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Try(body) => body.size_hint(),
            Self::Mirror(body) => body.size_hint(),
        }
    }
}

impl<B> Body for TryBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut shared = lock(&this.shared);
        if shared.generation != this.generation {
            return Poll::Ready(Some(Err(Superseded.into())));
        }
        if !shared.too_large && this.replayed < shared.kept.len() {
            let last_try = shared.last_try;
            let kept = &mut shared.kept[this.replayed];
            // Sent by the last try: nothing needs it again (an empty chunk holds no memory).
            let chunk = if last_try {
                std::mem::take(kept)
            } else {
                kept.clone()
            };
            this.replayed += 1;
            shared.newest_sent = this.replayed;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if shared.source_ended {
            return match shared.trailers.clone() {
                Some(trailers) if !this.trailers_sent => {
                    this.trailers_sent = true;
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                _ => Poll::Ready(None),
            };
        }
        let polled = match Pin::new(&mut shared.source).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(polled) => polled,
        };
        match polled {
            None => {
                shared.source_ended = true;
                shared.end_taps();
                Poll::Ready(None)
            }
            Some(Err(err)) => {
                // The copies are abandoned with it.
                shared.taps.clear();
                Poll::Ready(Some(Err(err.into())))
            }
            Some(Ok(frame)) => {
                shared.keep(&frame);
                shared.taps.retain(|tap| tap.feed(&frame));
                this.replayed = shared.kept.len();
                shared.newest_sent = this.replayed;
                this.trailers_sent = frame.is_trailers();
                if shared.source.is_end_stream() {
                    shared.source_ended = true;
                }
                if shared.source_ended {
                    shared.end_taps();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.source_ended
            && (shared.too_large || self.replayed == shared.kept.len())
            && (shared.trailers.is_none() || self.trailers_sent)
    }

    fn size_hint(&self) -> SizeHint {
        let shared = lock(&self.shared);
        match (shared.source_ended, self.replayed) {
            // All of it is kept and none of it sent yet.
            (true, 0) if !shared.too_large => SizeHint::with_exact(shared.kept_bytes as u64),
            // Nothing was read yet: the client's own hint (its content-length).
            (false, 0) if shared.kept_bytes == 0 => shared.source.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

impl<B> Shared<B> {
    fn end_taps(&mut self) {
        self.taps.drain(..).for_each(|tap| tap.end());
    }
}

impl<B: Body<Data = Bytes>> Shared<B> {
    fn keep(&mut self, frame: &Frame<Bytes>) {
        if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
            self.source_ended = true;
            return;
        }
        let Some(data) = frame.data_ref() else { return };
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.too_large || self.last_try {
            return;
        }
        self.kept_bytes += data.len();
        if self.kept_bytes > MAX_REPLAY_BYTES {
            self.too_large = true;
            self.kept = Vec::new();
        } else {
            self.kept.push(data.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    type Frames = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;

    fn body(chunks: &[&'static [u8]], trailers: bool) -> (Replay<Frames>, ReplayBody<Frames>) {
        let mut frames: Vec<_> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        if trailers {
            let mut map = HeaderMap::new();
            map.insert("x-end", "1".parse().unwrap());
            frames.push(Ok(Frame::trailers(map)));
        }
        Replay::start(StreamBody::new(futures_util::stream::iter(frames)))
    }

    async fn read_all<B: Body<Data = Bytes> + Unpin>(body: B) -> (Vec<u8>, bool)
    where
        B::Error: std::fmt::Debug,
    {
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().is_some();
        (collected.to_bytes().to_vec(), trailers)
    }

    #[tokio::test]
    async fn a_retry_sends_the_whole_body_again() {
        let (replay, first) = body(&[b"hello ", b"world"], true);
        assert_eq!(read_all(first).await, (b"hello world".to_vec(), true));
        for _ in 0..2 {
            let sent = read_all(replay.next_try().unwrap()).await;
            assert_eq!(sent, (b"hello world".to_vec(), true));
        }
    }

    #[tokio::test]
    async fn a_retry_after_a_partial_read_replays_then_goes_on() {
        let (replay, mut first) = body(&[b"a", b"b", b"c"], false);
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "a");
        let retry = replay.next_try().unwrap();
        // The first try is superseded: it reads no further.
        assert!(first.frame().await.unwrap().is_err());
        assert_eq!(read_all(retry).await, (b"abc".to_vec(), false));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_replayable() {
        static BIG: [u8; MAX_REPLAY_BYTES] = [7; MAX_REPLAY_BYTES];
        let (replay, first) = body(&[&BIG, b"!"], false);
        let (sent, _) = read_all(first).await;
        assert_eq!(sent.len(), MAX_REPLAY_BYTES + 1);
        assert!(replay.next_try().is_none());
    }

    #[tokio::test]
    async fn a_retry_that_replayed_everything_lets_go_of_it_when_last() {
        let (replay, mut first) = body(&[b"a", b"b"], false);
        first.frame().await.unwrap().unwrap();
        let mut retry = replay.next_try().unwrap();
        assert_eq!(
            retry.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        replay.last_try();
        assert!(
            lock(&replay.shared).kept[0].is_empty(),
            "what the retry sent is let go"
        );
        assert_eq!(read_all(retry).await, (b"b".to_vec(), false));
    }

    #[tokio::test]
    async fn a_first_try_that_is_the_last_lets_go_of_what_it_sent() {
        let (replay, mut first) = body(&[b"a", b"b"], false);
        first.frame().await.unwrap().unwrap();
        replay.last_try();
        assert_eq!(read_all(first).await, (b"b".to_vec(), false));
        let shared = lock(&replay.shared);
        assert!(shared.kept.iter().all(Bytes::is_empty), "{:?}", shared.kept);
    }

    #[tokio::test]
    async fn the_last_try_lets_go_of_what_was_kept() {
        let (replay, mut first) = body(&[b"a", b"b", b"c"], false);
        first.frame().await.unwrap().unwrap();
        let last = replay.next_try().unwrap();
        replay.last_try();
        assert!(replay.next_try().is_none(), "no try after the last");
        assert_eq!(read_all(last).await, (b"abc".to_vec(), false));
        let shared = lock(&replay.shared);
        assert!(shared.kept.iter().all(Bytes::is_empty), "{:?}", shared.kept);
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once() {
        let (replay, first) = Replay::start(http_body_util::Empty::<Bytes>::new());
        assert!(first.is_end_stream());
        assert!(replay.next_try().unwrap().is_end_stream());
    }
}
