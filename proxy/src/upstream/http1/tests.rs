//! The HTTP/1.1 pool against a real HTTP/1.1 server on loopback that counts its connections.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use tokio::net::TcpListener;

use super::*;

type Body = Empty<Bytes>;

struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Server {
    /// Answers every request with `ok`; with `close`, also `Connection: close`.
    async fn start(close: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let service = service_fn(move |_| async move {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    if close {
                        response
                            .headers_mut()
                            .insert("connection", "close".parse().unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(response)
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn limits(tune: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    tune(&mut limits);
    limits
}

/// One request on `checkout`, its response read to the end.
async fn request(checkout: &mut Checkout<Body>) {
    let sender = checkout.sender();
    sender.ready().await.unwrap();
    let request = Request::get("/").header("host", "up").body(Body::new());
    let response = sender.send_request(request.unwrap()).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"ok");
}

async fn one_request(pool: &Pool<Body>, server: &Server, limits: &Limits) {
    let mut checkout = pool.checkout(server.addr, limits).await.unwrap();
    request(&mut checkout).await;
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    for _ in 0..5 {
        one_request(&pool, &server, &Limits::default()).await;
    }
    assert_eq!(server.connections(), 1);
    assert_eq!(
        pool.connections(server.addr),
        1,
        "the idle one still counts"
    );
}

#[tokio::test]
async fn concurrent_requests_get_a_connection_each() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = Limits::default();
    let mut first = pool.checkout(server.addr, &limits).await.unwrap();
    let mut second = pool.checkout(server.addr, &limits).await.unwrap();
    assert!(first.is_first_use() && second.is_first_use());
    request(&mut first).await;
    request(&mut second).await;
    assert_eq!(server.connections(), 2);
    assert_eq!(pool.connections(server.addr), 2);
    let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(pool.connections(elsewhere), 0);
}

#[tokio::test]
async fn a_connection_the_endpoint_closes_is_not_reused() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(true).await);
    for _ in 0..3 {
        one_request(&pool, &server, &Limits::default()).await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn max_requests_per_connection_retires_connections() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = limits(|l| l.requests_per_connection = NonZeroU32::new(2));
    for _ in 0..4 {
        one_request(&pool, &server, &limits).await;
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn connections_idle_past_the_idle_timeout_are_not_reused() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = limits(|l| l.idle_timeout = Duration::ZERO);
    for _ in 0..3 {
        one_request(&pool, &server, &limits).await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn past_max_connections_a_request_waits_for_one_to_come_back() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = limits(|l| l.max_connections = 1);
    let mut busy = pool.checkout(server.addr, &limits).await.unwrap();
    let waiting = pool.checkout(server.addr, &limits);
    tokio::pin!(waiting);
    // The waiter queues (its first poll returns Pending), then gets the connection back.
    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    request(&mut busy).await;
    drop(busy);
    let mut next = waiting.await.unwrap();
    assert!(!next.is_first_use());
    request(&mut next).await;
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn past_max_pending_requests_overflow() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = limits(|l| {
        l.max_connections = 1;
        l.max_pending = 0;
    });
    let _busy = pool.checkout(server.addr, &limits).await.unwrap();
    let overflow = pool.checkout(server.addr, &limits).await;
    assert!(matches!(overflow, Err(PoolError::Overflow { .. })));
}

#[tokio::test]
async fn a_waiter_that_gives_up_leaks_nothing() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(false).await);
    let limits = limits(|l| {
        l.max_connections = 1;
        l.max_pending = 1;
    });
    let mut busy = pool.checkout(server.addr, &limits).await.unwrap();
    {
        let gives_up = pool.checkout(server.addr, &limits);
        tokio::pin!(gives_up);
        assert!(futures_util::poll!(gives_up.as_mut()).is_pending());
    }
    // Its place in line is free again, and the connection comes back to the pool.
    request(&mut busy).await;
    drop(busy);
    one_request(&pool, &server, &limits).await;
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn a_closed_connection_lets_the_next_in_line_open_another() {
    let (pool, server) = (Pool::<Body>::default(), Server::start(true).await);
    let limits = limits(|l| l.max_connections = 1);
    let mut busy = pool.checkout(server.addr, &limits).await.unwrap();
    let waiting = pool.checkout(server.addr, &limits);
    tokio::pin!(waiting);
    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    // `Connection: close`: the connection ends with its response; its place passes on.
    request(&mut busy).await;
    drop(busy);
    let mut next = waiting.await.unwrap();
    request(&mut next).await;
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_failed_connect_frees_its_place() {
    let pool = Pool::<Body>::default();
    // Nothing listens there (the port was just handed out and given back).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let limits = limits(|l| {
        l.max_connections = 1;
        l.max_pending = 0;
    });
    for _ in 0..2 {
        let failed = pool.checkout(closed, &limits).await;
        assert!(
            matches!(failed, Err(PoolError::Connect { .. })),
            "not an overflow"
        );
    }
}
