//! What happens to each call around the Greeter's methods, at the HTTP/2 level:
//!
//! - calls are numbered from 1; `--fail-status`/`--fail-every` doom some of them, and the method
//!   fails a doomed call after reading its request;
//! - an injected failure's status goes where `--fail-in` says. tonic answers every handler
//!   error Trailers-Only; for `trailers` that response is rewritten to HEADERS without a status,
//!   no DATA, then trailers with it (see [`status_in_trailers`]);
//! - `grpc-timeout` is enforced: DEADLINE_EXCEEDED Trailers-Only before the response starts, in
//!   the trailers after;
//! - every response carries `x-instance`, and so do the trailers of failures made here;
//! - a [`ServedCall`] line is printed when the call ends or is cancelled.

use std::{
    convert::Infallible,
    future::{poll_fn, Future},
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use tokio::time::{sleep_until, timeout_at, Instant, Sleep};
use tonic::{body::Body, codegen::Service, Code, Status};

use super::{
    report::{emit, ServedCall},
    FailIn, ServeOptions, INSTANCE_HEADER,
};

const GRPC_STATUS: &str = "grpc-status";

/// The server's side of every call: its count and what to do to them.
pub(crate) struct Calls {
    name: String,
    instance: HeaderValue,
    count: AtomicU64,
    fail_status: Option<Code>,
    fail_every: u64,
    fail_in: FailIn,
}

/// In a doomed call's request extensions: the status the method must fail with.
#[derive(Clone, Debug)]
pub(crate) struct Injected {
    code: Code,
    message: String,
}

impl Injected {
    pub(crate) fn status(&self) -> Status {
        Status::new(self.code, self.message.clone())
    }
}

impl Calls {
    pub(crate) fn new(options: &ServeOptions) -> Result<Self> {
        let instance = HeaderValue::from_str(&options.name)
            .context("--name must be a valid HTTP header value")?;
        Ok(Self {
            name: options.name.clone(),
            instance,
            count: AtomicU64::new(0),
            fail_status: options.fail_status.map(Code::from_i32),
            fail_every: options.fail_every,
            fail_in: options.fail_in,
        })
    }

    fn injected(&self, call: u64) -> Option<Injected> {
        let code = self.fail_status?;
        call.is_multiple_of(self.fail_every).then(|| Injected {
            code,
            message: format!("{}: injected failure of call {call}", self.name),
        })
    }
}

/// One call: `service` (the Greeter) answers `request`; everything listed at the top of this
/// module happens around it.
pub(crate) async fn handle<S>(
    calls: Arc<Calls>,
    mut service: S,
    mut request: http::Request<Incoming>,
) -> Result<http::Response<CallBody>, Infallible>
where
    S: Service<http::Request<Incoming>, Response = http::Response<Body>, Error = Infallible>,
{
    let call = calls.count.fetch_add(1, Ordering::Relaxed) + 1;
    let method = request.uri().path().rsplit('/').next().unwrap_or_default();
    let mut log = CallLog::new(call, method);
    let deadline = grpc_timeout(request.headers()).map(|timeout| Instant::now() + timeout);
    let injected = calls.injected(call);
    if let Some(injected) = &injected {
        request.extensions_mut().insert(injected.clone());
    }

    let answer = async {
        poll_fn(|cx| service.poll_ready(cx)).await?;
        service.call(request).await
    };
    let Ok(mut response) = match deadline {
        Some(deadline) => timeout_at(deadline, answer)
            .await
            .unwrap_or_else(|_| Ok(deadline_exceeded().into_http())),
        None => answer.await,
    };
    response
        .headers_mut()
        .insert(INSTANCE_HEADER, calls.instance.clone());
    if let Some(code) = grpc_status(response.headers()) {
        // The code check leaves alone a doomed call that hit its deadline first.
        let doomed = injected
            .as_ref()
            .is_some_and(|injected| injected.code as i32 == code);
        if doomed && calls.fail_in != FailIn::Headers {
            response = status_in_trailers(response);
        } else {
            log.end(Some(code));
        }
    }
    let reset = injected.is_some() && calls.fail_in == FailIn::Reset;
    Ok(response.map(|body| CallBody {
        body,
        reset,
        deadline: deadline.map(|deadline| Box::pin(sleep_until(deadline))),
        instance: calls.instance.clone(),
        log,
    }))
}

/// Turns a Trailers-Only response into what a server that fails after it began answering
/// sends: HEADERS with `:status 200`, `content-type` and metadata but no `grpc-status` (not the
/// end of the stream), no DATA, then a trailers HEADERS frame with `grpc-status`,
/// `grpc-message` and `x-instance`, ending the stream. Clients see response headers first, so
/// only a proxy that reads trailers learns the status before the client does.
fn status_in_trailers(response: http::Response<Body>) -> http::Response<Body> {
    let (mut parts, _empty) = response.into_parts();
    let mut trailers = HeaderMap::new();
    for name in [GRPC_STATUS, "grpc-message", "grpc-status-details-bin"] {
        if let Some(value) = parts.headers.remove(name) {
            trailers.insert(name, value);
        }
    }
    // A unary client drops the headers of a failed call; the trailers still name the instance.
    if let Some(instance) = parts.headers.get(INSTANCE_HEADER) {
        trailers.insert(INSTANCE_HEADER, instance.clone());
    }
    let body = Empty::<Bytes>::new()
        .with_trailers(std::future::ready(Some(Ok::<_, Infallible>(trailers))));
    http::Response::from_parts(parts, Body::new(body))
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("Deadline Exceeded")
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers.get(GRPC_STATUS)?.to_str().ok()?.parse().ok()
}

/// `grpc-timeout`: at most 8 digits and a unit (gRPC over HTTP/2, "Requests").
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let digits = value.get(..value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match &value[digits.len()..] {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// A response body that ends its call with DEADLINE_EXCEEDED trailers at the deadline, and
/// logs how the call ended.
pub(crate) struct CallBody {
    body: Body,
    /// Ends the stream with an error instead of its trailers: hyper resets it.
    reset: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    instance: HeaderValue,
    log: CallLog,
}

impl http_body::Body for CallBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.log.ended {
            return Poll::Ready(None);
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                let status = deadline_exceeded();
                this.log.end(Some(status.code() as i32));
                let mut trailers = HeaderMap::new();
                status
                    .add_header(&mut trailers)
                    .expect("a fixed message is a valid header");
                trailers.insert(INSTANCE_HEADER, this.instance.clone());
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if this.reset
            && frame
                .as_ref()
                .is_some_and(|f| f.as_ref().is_ok_and(Frame::is_trailers))
        {
            this.log.end(None);
            return Poll::Ready(Some(Err(Status::internal("injected reset"))));
        }
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.log.end(grpc_status(trailers));
                }
            }
            // hyper resets the stream: no status reaches the client.
            Some(Err(_)) | None => this.log.end(None),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.log.ended || self.body.is_end_stream()
    }
}

/// Prints the call's [`ServedCall`] line once: when it ends, or as cancelled when the client
/// went away first (hyper drops the response future or body on RST_STREAM).
struct CallLog {
    call: u64,
    method: String,
    ended: bool,
}

impl CallLog {
    fn new(call: u64, method: &str) -> Self {
        Self {
            call,
            method: method.to_owned(),
            ended: false,
        }
    }

    fn end(&mut self, code: Option<i32>) {
        self.print(code, false);
    }

    fn print(&mut self, code: Option<i32>, cancelled: bool) {
        if !self.ended {
            self.ended = true;
            emit(&ServedCall {
                call: self.call,
                method: std::mem::take(&mut self.method),
                code,
                cancelled,
            });
        }
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        self.print(None, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_str(value).unwrap());
        grpc_timeout(&headers)
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "m", "123456789m", "+5m", "5", "5x", "-1S", "1.5S"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn every_nth_call_is_doomed() {
        let options = ServeOptions::new("127.0.0.1:0".parse().unwrap(), "a").failing(
            Code::Unavailable,
            3,
            FailIn::Trailers,
        );
        let calls = Calls::new(&options).unwrap();
        let doomed: Vec<u64> = (1..=9).filter(|&n| calls.injected(n).is_some()).collect();
        assert_eq!(doomed, [3, 6, 9]);
        let status = calls.injected(3).unwrap().status();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "a: injected failure of call 3");
        let healthy = Calls::new(&ServeOptions::new(options.listen, "a")).unwrap();
        assert!(healthy.injected(3).is_none());
    }

    #[tokio::test]
    async fn status_moves_to_trailers() {
        let mut response: http::Response<Body> = Status::unavailable("down").into_http();
        response
            .headers_mut()
            .insert(INSTANCE_HEADER, HeaderValue::from_static("a"));
        let response = status_in_trailers(response);
        assert!(response.headers().get(GRPC_STATUS).is_none());
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()[INSTANCE_HEADER], "a");
        let body = response.into_body();
        assert!(!http_body::Body::is_end_stream(&body));
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(trailers[GRPC_STATUS], "14");
        assert_eq!(trailers["grpc-message"], "down");
        assert_eq!(trailers[INSTANCE_HEADER], "a");
        assert!(collected.to_bytes().is_empty());
    }
}
