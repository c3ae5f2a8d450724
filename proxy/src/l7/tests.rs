//! The L7 path in one process: scripted HTTP/2 upstreams on loopback, the proxy, and a bare
//! HTTP/2 client, so each test controls exactly which frames an endpoint sends and when.

use std::{
    future::Future,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{config, telemetry::Metrics};

type Reply = Response<BoxBody<Bytes, BoxError>>;
type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// An HTTP/2 endpoint answering every request with `handler`; counts the requests it got.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let reply = handler(request);
                        async move { Ok::<_, std::convert::Infallible>(reply.await) }
                    });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            connections,
        }
    }

    /// An endpoint that answers a request's HEADERS with `frames` as they are, whatever they
    /// say: a broken server, for what strait does with what it cannot accept.
    async fn speaking(frames: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    if until_request_headers(&mut stream).await.is_ok() {
                        let _ = stream.write_all(frames).await;
                        // Held open: the client, not a close, ends it.
                        let _ = stream.read_to_end(&mut Vec::new()).await;
                    }
                });
            }
        });
        Self {
            addr,
            requests: Arc::default(),
            connections,
        }
    }

    /// An endpoint that refuses every stream (RST_STREAM REFUSED_STREAM), as a server does
    /// past its concurrency limit or while shutting down: the request was never processed.
    async fn refusing() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(stream).await else {
                        return;
                    };
                    while let Some(Ok((_, mut respond))) = connection.accept().await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            connections: Arc::default(),
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads the client preface and frames up to the first HEADERS frame (type 1): the request is
/// open.
async fn until_request_headers(stream: &mut TcpStream) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut preface = [0; 24];
    stream.read_exact(&mut preface).await?;
    loop {
        let mut head = [0; 9];
        stream.read_exact(&mut head).await?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        stream.read_exact(&mut vec![0; length]).await?;
        if head[3] == 1 {
            return Ok(());
        }
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

/// A gRPC response: headers, then `frames` (data or trailers) as the body.
fn grpc_reply(frames: Vec<http_body::Frame<Bytes>>, hang: bool) -> Reply {
    let frames = futures_util::stream::iter(frames.into_iter().map(Ok::<_, BoxError>));
    let body: BoxBody<Bytes, BoxError> = match hang {
        true => BoxBody::new(StreamBody::new(futures_util::StreamExt::chain(
            frames,
            futures_util::stream::pending(),
        ))),
        false => BoxBody::new(StreamBody::new(frames)),
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    response
}

fn status_trailers(code: u16) -> http_body::Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", code.into());
    http_body::Frame::trailers(trailers)
}

fn message() -> http_body::Frame<Bytes> {
    http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi"))
}

/// strait's L7 path for a Service `up` over `endpoints`, reached by `:authority`.
struct Proxy {
    addr: SocketAddr,
    metrics: Metrics,
}

impl Proxy {
    async fn start(endpoints: &[&Upstream], extra_yaml: &str) -> Self {
        let mut yaml = String::from(
            "apiVersion: v1\nkind: Service\nmetadata: {name: up, namespace: default}\n\
             spec:\n  clusterIP: 10.96.0.50\n  selector: {app: up}\n  ports:\n  \
             - {name: grpc, port: 80, targetPort: grpc, appProtocol: grpc}\n",
        );
        for (i, upstream) in endpoints.iter().enumerate() {
            yaml += &format!(
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
                 metadata: {{name: up-{i}, namespace: default}}\n\
                 spec: {{address: 127.0.0.1, labels: {{app: up}}, ports: {{grpc: {}}}}}\n",
                upstream.addr.port()
            );
        }
        yaml += extra_yaml;
        let loaded = config::load_str(Path::new("test.yaml"), &yaml);
        assert!(!loaded.has_errors(false), "{:?}", loaded.diagnostics);
        let model = Arc::new(Model::from_resources(&loaded.resources));
        let (_tx, model) = watch::channel(model);
        // The sender may go: the receiver keeps the last model.
        let metrics = Metrics::new();
        let proxy = Arc::new(L7Proxy::new(
            model,
            metrics.requests.clone(),
            CancellationToken::new(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, client)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(
                    proxy
                        .clone()
                        .serve_h2(stream, client, Destination::Authority),
                );
            }
        });
        Self { addr, metrics }
    }

    /// A unary gRPC request with `headers`, on a new connection: the response.
    async fn call(&self, headers: &[(&str, &str)]) -> Response<Incoming> {
        self.call_from(Ipv4Addr::LOCALHOST, headers).await
    }

    /// [`Proxy::call`] from `client`, a loopback address.
    async fn call_from(&self, client: Ipv4Addr, headers: &[(&str, &str)]) -> Response<Incoming> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((client, 0))).unwrap();
        let stream = socket.connect(self.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut request = Request::post("http://up.default:80/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = Full::new(Bytes::from_static(b"\0\0\0\0\x02hi"));
        sender
            .send_request(request.body(body).unwrap())
            .await
            .unwrap()
    }

    /// The `istio_requests_total` samples, one line each.
    fn requests_total(&self) -> Vec<String> {
        self.metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, labels: &[&str]) -> u64 {
        self.requests_total()
            .iter()
            .filter(|l| labels.iter().all(|label| l.contains(label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// The response's body to its end: its data, and its trailers (or its headers when
/// trailers-only).
async fn finish(response: Response<Incoming>) -> (Bytes, HeaderMap) {
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or(parts.headers);
    (collected.to_bytes(), trailers)
}

#[tokio::test]
async fn grpc_timeout_is_enforced_and_propagated() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let upstream = Upstream::start(handler(move |request: Request<Incoming>| {
        let _ = seen_tx.send(request.headers().get("grpc-timeout").cloned());
        futures_util::future::pending()
    }))
    .await;
    let proxy = Proxy::start(&[&upstream], "").await;
    let started = tokio::time::Instant::now();
    let response = proxy.call(&[("grpc-timeout", "200m")]).await;
    let elapsed = started.elapsed();
    assert_eq!(response.headers()["grpc-status"], "4", "{response:?}");
    assert_eq!(
        response.headers()["grpc-message"],
        "upstream request timeout"
    );
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    let propagated = seen
        .recv()
        .await
        .unwrap()
        .expect("grpc-timeout sent upstream");
    let left = deadline::parse_grpc_timeout(propagated.as_bytes()).unwrap();
    assert!(
        left <= Duration::from_millis(200) && left > Duration::from_millis(100),
        "{left:?}"
    );
    assert_eq!(
        proxy.count(&["grpc_response_status=\"4\"", "response_flags=\"UT\""]),
        1
    );
}

#[tokio::test]
async fn a_deadline_passing_mid_stream_ends_it_with_deadline_exceeded() {
    let upstream = Upstream::start(handler(|_| async { grpc_reply(vec![message()], true) })).await;
    let proxy = Proxy::start(&[&upstream], "").await;
    let response = proxy.call(&[("grpc-timeout", "300m")]).await;
    let (data, trailers) = finish(response).await;
    assert_eq!(
        &data[..],
        b"\0\0\0\0\x02hi",
        "the message sent before the deadline arrives"
    );
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(
        proxy.count(&["grpc_response_status=\"4\"", "response_flags=\"UT\""]),
        1
    );
}

#[tokio::test]
async fn nothing_is_retried_once_data_reached_the_client() {
    let fails_after_a_message =
        || handler(|_| async { grpc_reply(vec![message(), status_trailers(14)], false) });
    let a = Upstream::start(fails_after_a_message()).await;
    let b = Upstream::start(fails_after_a_message()).await;
    let proxy = Proxy::start(&[&a, &b], "").await;
    for _ in 0..4 {
        let (data, trailers) = finish(proxy.call(&[]).await).await;
        assert_eq!(data.len(), 7);
        assert_eq!(trailers["grpc-status"], "14");
    }
    assert_eq!(a.requests() + b.requests(), 4, "one try per call");
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"-\""]),
        4
    );
}

#[tokio::test]
async fn refused_streams_are_retried_on_another_endpoint() {
    let refuses = Upstream::refusing().await;
    let ok = Upstream::start(ok_reply()).await;
    // Round robin: at least every other first try goes to the refusing endpoint (a retry
    // takes a turn too).
    let round_robin = up_policy("loadBalancer: {simple: ROUND_ROBIN}");
    let proxy = Proxy::start(&[&refuses, &ok], &round_robin).await;
    for _ in 0..10 {
        let (_, trailers) = finish(proxy.call(&[]).await).await;
        assert_eq!(trailers["grpc-status"], "0");
    }
    assert_eq!(ok.requests(), 10);
    assert!(refuses.requests() >= 5, "{} refused", refuses.requests());
    assert_eq!(
        proxy.count(&["grpc_response_status=\"0\"", "response_flags=\"-\""]),
        10
    );
}

#[tokio::test]
async fn a_reset_before_the_response_is_unavailable_upstream_reset() {
    // An error from the service makes hyper reset the stream (INTERNAL_ERROR).
    let resets = Upstream::start(handler(|_| async {
        let body: BoxBody<Bytes, BoxError> =
            BoxBody::new(StreamBody::new(futures_util::stream::iter([Err::<
                http_body::Frame<Bytes>,
                BoxError,
            >(
                "broken".into(),
            )])));
        Response::new(body)
    }))
    .await;
    let proxy = Proxy::start(&[&resets], "").await;
    let response = proxy.call(&[]).await;
    assert_eq!(response.headers()["grpc-status"], "14", "{response:?}");
    // Istio's default policy does not retry resets.
    assert_eq!(resets.requests(), 1);
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"UR\""]),
        1
    );
}

/// An endpoint that breaks HTTP/2 (here, HEADERS on stream 0) is one strait gives up on
/// itself: Envoy's LR, local reset, not UR.
#[tokio::test]
async fn a_protocol_error_from_the_endpoint_is_a_local_reset() {
    // A valid SETTINGS, then a HEADERS frame (type 1, END_HEADERS) on stream 0.
    const BROKEN: &[u8] = b"\0\0\0\x04\0\0\0\0\0\0\0\x01\x01\x04\0\0\0\0\x88";
    let broken = Upstream::speaking(BROKEN).await;
    let proxy = Proxy::start(&[&broken], "").await;
    let response = proxy.call(&[]).await;
    assert_eq!(response.headers()["grpc-status"], "14", "{response:?}");
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"LR\""]),
        1,
        "{:?}",
        proxy.requests_total()
    );
}

#[tokio::test]
async fn requests_past_http2_max_requests_overflow() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let upstream = Upstream::start(handler(move |_| {
        let _ = arrived_tx.send(());
        futures_util::future::pending()
    }))
    .await;
    let one_at_a_time = up_policy("connectionPool: {http: {http2MaxRequests: 1}}");
    let proxy = Arc::new(Proxy::start(&[&upstream], &one_at_a_time).await);
    let first = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.call(&[]).await }
    });
    arrived.recv().await.unwrap();
    let second = proxy.call(&[]).await;
    assert_eq!(second.headers()["grpc-status"], "14", "{second:?}");
    assert_eq!(
        upstream.requests(),
        1,
        "the overflow never reached the endpoint"
    );
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"UO\""]),
        1
    );
    first.abort();
}

/// A body that says when it is dropped: the stream it was sending on was reset or ended.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            let _ = signal.send(());
        }
    }
}

#[tokio::test]
async fn a_client_cancel_resets_the_upstream_stream() {
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let dropped_tx = Arc::new(std::sync::Mutex::new(Some(dropped_tx)));
    let upstream = Upstream::start(handler(move |_| {
        let guard = DropSignal(dropped_tx.lock().unwrap().take());
        async move {
            // One message, then nothing: a stream that only ends when someone cancels it.
            let frames = futures_util::stream::iter([Ok::<_, BoxError>(message())]);
            let pending = futures_util::stream::unfold(guard, |guard| async move {
                futures_util::future::pending::<()>().await;
                Some((Ok(message()), guard))
            });
            let mut response = Response::new(BoxBody::new(StreamBody::new(
                futures_util::StreamExt::chain(frames, pending),
            )));
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            response
        }
    }))
    .await;
    let proxy = Proxy::start(&[&upstream], "").await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post("http://up.default:80/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    let mut response = sender.send_request(request).await.unwrap();
    let first = response.body_mut().frame().await.unwrap().unwrap();
    assert!(first.is_data());
    // The client cancels the call (RST_STREAM) but keeps its connection.
    drop(response);
    tokio::time::timeout(Duration::from_secs(5), dropped)
        .await
        .expect("the upstream stream was not reset")
        .unwrap();
    assert!(!sender.is_closed(), "only the stream was cancelled");
    let flags = ["response_flags=\"DC\""];
    let counted = async {
        while proxy.count(&flags) != 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), counted)
        .await
        .expect("the cancelled call is counted as DC");
}

#[tokio::test]
async fn an_upstream_cancel_reaches_the_client_as_cancel() {
    // The endpoint sends a message, then cancels the stream once the client has it.
    let (cancel_tx, cancel) = tokio::sync::oneshot::channel::<()>();
    let cancel = Arc::new(std::sync::Mutex::new(Some(cancel)));
    let upstream = Upstream::start(handler(move |_| {
        let cancel = cancel.lock().unwrap().take().unwrap();
        async move {
            let cancelled = futures_util::stream::once(async move {
                let _ = cancel.await;
                Err(Box::new(h2::Error::from(h2::Reason::CANCEL)) as BoxError)
            });
            let frames = futures_util::StreamExt::chain(
                futures_util::stream::iter([Ok::<_, BoxError>(message())]),
                cancelled,
            );
            let mut response = Response::new(BoxBody::new(StreamBody::new(frames)));
            response
                .headers_mut()
                .insert("content-type", "application/grpc".parse().unwrap());
            response
        }
    }))
    .await;
    let proxy = Proxy::start(&[&upstream], "").await;
    // A bare h2 client: hyper's would read RST_STREAM(CANCEL) as a clean end.
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = Request::post("http://up.default:80/helloworld.Greeter/SayHello")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(Bytes::from_static(b"\0\0\0\0\x02hi"), true)
        .unwrap();
    let mut body = response.await.unwrap().into_body();
    assert!(
        body.data().await.unwrap().is_ok(),
        "the message before the cancel"
    );
    cancel_tx.send(()).unwrap();
    let reset = body.data().await.expect("a reset, not an end").unwrap_err();
    assert_eq!(reset.reason(), Some(h2::Reason::CANCEL), "{reset:?}");
    assert_eq!(proxy.count(&["response_flags=\"UR\""]), 1);
}

#[tokio::test]
async fn connections_retire_after_max_requests_per_connection() {
    let upstream = Upstream::start(ok_reply()).await;
    let two_per_connection = up_policy("connectionPool: {http: {maxRequestsPerConnection: 2}}");
    let proxy = Proxy::start(&[&upstream], &two_per_connection).await;
    for _ in 0..6 {
        let (_, trailers) = finish(proxy.call(&[]).await).await;
        assert_eq!(trailers["grpc-status"], "0");
    }
    assert_eq!(upstream.requests(), 6);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 3);
}

fn ok_reply() -> Handler {
    handler(|_| async { grpc_reply(vec![message(), status_trailers(0)], false) })
}

#[tokio::test]
async fn requests_go_to_their_route_destination() {
    let up = Upstream::start(ok_reply()).await;
    let down = Upstream::start(ok_reply()).await;
    let elsewhere = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: down, namespace: default}}\n\
         spec: {{clusterIP: 10.96.0.51, selector: {{app: down}}, ports: [{{name: grpc, port: 80, \
         targetPort: grpc}}]}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: down-0, namespace: default}}\n\
         spec: {{address: 127.0.0.1, labels: {{app: down}}, ports: {{grpc: {}}}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: up, namespace: default}}\n\
         spec:\n  hosts: [up]\n  http:\n  \
         - match: [{{uri: {{prefix: /nowhere}}}}]\n    route: [{{destination: {{host: nowhere}}}}]\n  \
         - route: [{{destination: {{host: down}}}}]\n",
        down.addr.port()
    );
    let proxy = Proxy::start(&[&up], &elsewhere).await;
    for _ in 0..3 {
        let (_, trailers) = finish(proxy.call(&[]).await).await;
        assert_eq!(trailers["grpc-status"], "0");
    }
    assert_eq!((up.requests(), down.requests()), (0, 3));
    let down_label = "destination_service=\"down.default.svc.cluster.local\"";
    assert_eq!(proxy.count(&[down_label, "grpc_response_status=\"0\""]), 3);
}

#[tokio::test]
async fn a_route_to_no_service_is_no_route() {
    let up = Upstream::start(ok_reply()).await;
    let nowhere = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
        metadata: {name: up, namespace: default}\n\
        spec: {hosts: [up], http: [{route: [{destination: {host: nowhere}}]}]}\n";
    let proxy = Proxy::start(&[&up], nowhere).await;
    let response = proxy.call(&[]).await;
    assert_eq!(response.headers()["grpc-status"], "14", "{response:?}");
    assert_eq!(up.requests(), 0);
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"NR\""]),
        1
    );
}

/// A DestinationRule for `up` with `traffic_policy` (YAML flow mapping entries).
fn up_policy(traffic_policy: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: up, namespace: default}}\n\
         spec: {{host: up, trafficPolicy: {{{traffic_policy}}}}}\n"
    )
}

/// A VirtualService for `up` whose one route has `route` (YAML flow mapping entries).
fn up_route(route: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: up, namespace: default}}\n\
         spec: {{hosts: [up], http: [{{route: [{{destination: {{host: up}}}}], {route}}}]}}\n"
    )
}

#[tokio::test]
async fn a_fault_abort_answers_for_the_endpoint() {
    let up = Upstream::start(ok_reply()).await;
    let abort = "fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}";
    let proxy = Proxy::start(&[&up], &up_route(abort)).await;
    let response = proxy.call(&[]).await;
    assert_eq!(response.headers()["grpc-status"], "14", "{response:?}");
    assert_eq!(up.requests(), 0);
    assert_eq!(
        proxy.count(&["grpc_response_status=\"14\"", "response_flags=\"FI\""]),
        1
    );
}

#[tokio::test]
async fn a_fault_abort_takes_its_percentage() {
    let up = Upstream::start(ok_reply()).await;
    let abort =
        "fault: {abort: {httpStatus: 503, percentage: {value: 50}}}, retries: {attempts: 0}";
    let proxy = Proxy::start(&[&up], &up_route(abort)).await;
    for _ in 0..400 {
        drop(proxy.call(&[]).await);
    }
    let aborted = proxy.count(&["response_code=\"503\"", "response_flags=\"FI\""]);
    assert!((170..=230).contains(&aborted), "{aborted} of 400 aborted");
    assert_eq!(up.requests() as u64, 400 - aborted);
}

#[tokio::test]
async fn a_fault_delay_counts_against_the_deadline() {
    let up = Upstream::start(ok_reply()).await;
    let delay = "fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}";
    let proxy = Proxy::start(&[&up], &up_route(delay)).await;
    let started = tokio::time::Instant::now();
    let (_, trailers) = finish(proxy.call(&[]).await).await;
    assert_eq!(trailers["grpc-status"], "0");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        proxy.count(&["grpc_response_status=\"0\"", "response_flags=\"DI\""]),
        1
    );
    // The client's deadline passes during the delay: DEADLINE_EXCEEDED, the endpoint never
    // asked.
    let response = proxy.call(&[("grpc-timeout", "100m")]).await;
    assert_eq!(response.headers()["grpc-status"], "4", "{response:?}");
    assert_eq!(up.requests(), 1);
    assert_eq!(
        proxy.count(&["grpc_response_status=\"4\"", "response_flags=\"UT,DI\""]),
        1
    );
}

#[tokio::test]
async fn routes_rewrite_and_change_headers() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let up = Upstream::start(handler(move |request: Request<Incoming>| {
        let _ = seen_tx.send((
            request.uri().path().to_owned(),
            request.headers().get("x-canary").cloned(),
        ));
        async { grpc_reply(vec![message(), status_trailers(0)], false) }
    }))
    .await;
    let actions = "rewrite: {uri: /helloworld.Greeter/}, \
        headers: {request: {set: {x-canary: \"yes\"}}, response: {add: {x-served-by: strait}}}";
    let proxy = Proxy::start(&[&up], &up_route(actions)).await;
    let response = proxy.call(&[]).await;
    assert_eq!(response.headers()["x-served-by"], "strait");
    let (path, canary) = seen.recv().await.unwrap();
    assert_eq!(path, "/helloworld.Greeter/helloworld.Greeter/SayHello");
    assert_eq!(canary.unwrap(), "yes");
}

mod request_features;
