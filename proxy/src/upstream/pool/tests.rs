//! The HTTP/2 pool against a real HTTP/2 server on loopback.

use bytes::Bytes;
use http_body_util::{Empty, Full};
use hyper::{service::service_fn, Response};
use tokio::net::TcpListener;

use super::*;

type Body = Empty<Bytes>;

/// An h2c server answering every request with `ok`.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|_| async {
                let ok = Response::new(Full::new(Bytes::from_static(b"ok")));
                Ok::<_, std::convert::Infallible>(ok)
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn counts_the_connections_open_to_each_endpoint() {
    let (pool, addr) = (Pool::<Body>::default(), server().await);
    let one_stream_each = Limits {
        streams_per_connection: 1,
        ..Limits::default()
    };
    let first = pool.checkout(addr, &one_stream_each).await.unwrap();
    let second = pool.checkout(addr, &one_stream_each).await.unwrap();
    assert_eq!(pool.connections(addr), 2);
    drop((first, second));
    let third = pool.checkout(addr, &Limits::default()).await.unwrap();
    assert_eq!(pool.connections(addr), 2, "a free stream reuses one");
    drop(third);
    let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(pool.connections(elsewhere), 0);
}
