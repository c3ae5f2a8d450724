//! [`EchoServer`]: an HTTP endpoint for the tests, speaking HTTP/1.1 and HTTP/2 (prior
//! knowledge) on one port, that says in every response what it received:
//! - `x-instance`: its name; `x-protocol`: the request's HTTP version as it saw it (`HTTP/1.1`,
//!   `HTTP/2.0`); `x-path` and `x-host` (the `Host`, or the `:authority`); `x-saw`: the names
//!   of the request's headers;
//! - the body: the request body, echoed as it arrives (the response starts at once);
//! - a request with `x-close` is answered with `Connection: close` (HTTP/1.1);
//! - every `fail_every`-th request is answered 503 instead;
//! - a WebSocket handshake is answered 101, and the connection then echoes what it gets.

use std::{
    convert::Infallible,
    net::SocketAddr,
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, task::JoinHandle};

/// What it answers with: the request body streamed back, or nothing.
type EchoBody = BoxBody<Bytes, hyper::Error>;

pub const INSTANCE: &str = "x-instance";
pub const PROTOCOL: &str = "x-protocol";
pub const PATH: &str = "x-path";
pub const HOST: &str = "x-host";
pub const SAW: &str = "x-saw";
/// Asks for `Connection: close` on the response.
pub const CLOSE: &str = "x-close";

/// Serves on the caller's runtime until dropped.
pub struct EchoServer {
    pub name: String,
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl EchoServer {
    /// On a loopback port of its own. `fail_every`: answer every Nth request 503 (1: all).
    pub async fn start(name: &str, fail_every: Option<NonZeroUsize>) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("an address"), name, fail_every).await
    }

    pub async fn bind(
        listen: SocketAddr,
        name: &str,
        fail_every: Option<NonZeroUsize>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let echo = Echo {
            name: HeaderValue::from_str(name).expect("a name is a header value"),
            fail_every,
            requests: requests.clone(),
        };
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let echo = echo.clone();
                let service = service_fn(move |request| {
                    let echo = echo.clone();
                    async move { Ok::<_, Infallible>(echo.answer(request)) }
                });
                tokio::spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = connection.await;
                });
            }
        });
        Ok(Self {
            name: name.to_owned(),
            addr,
            requests,
            accepting,
        })
    }

    /// The requests it received, failed ones included.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

#[derive(Clone)]
struct Echo {
    name: HeaderValue,
    fail_every: Option<NonZeroUsize>,
    requests: Arc<AtomicUsize>,
}

impl Echo {
    fn answer(&self, request: Request<Incoming>) -> Response<EchoBody> {
        let count = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self
            .fail_every
            .is_some_and(|n| count.is_multiple_of(n.get()));
        let mut response = match is_websocket(&request) {
            true => switch_to_echo(request),
            false => echo(request, fail),
        };
        response.headers_mut().insert(INSTANCE, self.name.clone());
        response
    }
}

fn echo(request: Request<Incoming>, fail: bool) -> Response<EchoBody> {
    let (parts, body) = request.into_parts();
    let mut response = Response::new(body.boxed());
    if fail {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .unwrap_or_default();
    let mut saw: Vec<&str> = parts.headers.keys().map(|name| name.as_str()).collect();
    saw.sort();
    let headers = response.headers_mut();
    headers.insert(SAW, value(&saw.join(",")));
    if parts.headers.contains_key(CLOSE) && parts.version == http::Version::HTTP_11 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(PROTOCOL, value(&format!("{:?}", parts.version)));
    headers.insert(PATH, value(parts.uri.path()));
    headers.insert(HOST, value(host));
    response
}

fn is_websocket<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// 101, then whatever arrives on the upgraded connection is sent back.
fn switch_to_echo(mut request: Request<Incoming>) -> Response<EchoBody> {
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut read, &mut write).await;
    });
    let mut response = status(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response
}

fn status(code: StatusCode) -> Response<EchoBody> {
    let empty = Full::default().map_err(|never| match never {});
    let mut response = Response::new(empty.boxed());
    *response.status_mut() = code;
    response
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("?"))
}
