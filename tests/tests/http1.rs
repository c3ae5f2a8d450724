//! End-to-end: HTTP/1.1 (and HTTP/2) clients on an `http` port, through strait's L7 path to
//! real HTTP servers on loopback: each request balanced on its own, bodies intact, the
//! endpoint's protocol as the DestinationRule's `h2UpgradePolicy` says, Istio's default retries,
//! Envoy's statuses, pipelining, and WebSocket upgrades.

use std::{
    collections::HashMap, fs, net::SocketAddr, num::NonZeroUsize, process::Stdio, time::Duration,
};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use strait_tests::{
    greeter::loopback::config_dir,
    lab::{self, Lab},
    web::{
        header_text, web_manifests, Body, Connection, WebLoopback, CLOSE, HOST, INSTANCE, PATH,
        PROTOCOL, REPLICAS, SAW, WEB, WEB_H2, WEB_LABEL, WEB_VIP,
    },
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const NO_FAILURES: fn(&str) -> Option<NonZeroUsize> = |_| None;

fn get(host: &str, path: &str) -> Request<Body> {
    let body = Full::new(Bytes::new()).map_err(|never| match never {});
    Request::get(format!("http://{host}{path}"))
        .body(BodyExt::boxed(body))
        .expect("a request")
}

/// The HTTP versions a client may speak on an `http` port.
const CLIENTS: [Version; 2] = [Version::HTTP_11, Version::HTTP_2];

/// Many requests over one kept-alive connection, each balanced on its own: from curl, the
/// everyday HTTP/1.1 client, and from an HTTP/2 client (hyper's: curl 7.88 does not reuse its
/// HTTP/2 prior-knowledge connections). A connection relayed whole would stick to one replica.
#[tokio::test(flavor = "multi_thread")]
async fn one_keep_alive_connection_is_balanced_per_request() -> Result<()> {
    if !curl_available("one_keep_alive_connection_is_balanced_per_request") {
        return Ok(());
    }
    let web = WebLoopback::start("balanced", NO_FAILURES, "").await?;
    let over_curl = curl(&web, 60).await?;
    let connects: u32 = over_curl.iter().map(|t| t.connects).sum();
    assert_eq!(connects, 1, "curl: one connection for all: {over_curl:?}");
    let mut over_http2 = Vec::new();
    let mut connection = Connection::open(web.outbound(), Version::HTTP_2).await?;
    for _ in 0..60 {
        let response = connection.send(get(WEB, "/")).await?;
        over_http2.push(Transfer {
            connects: 0,
            instance: header_text(&response, INSTANCE).to_owned(),
            protocol: header_text(&response, PROTOCOL).to_owned(),
            host: header_text(&response, HOST).to_owned(),
        });
    }
    for (client, transfers) in [("HTTP/1.1", over_curl), ("HTTP/2", over_http2)] {
        for transfer in &transfers {
            // An `http` port without a DestinationRule: the endpoint gets HTTP/1.1, whatever
            // the client speaks (Istio upgrades only with h2UpgradePolicy: UPGRADE).
            assert_eq!(transfer.protocol, "HTTP/1.1", "{client}: {transfer:?}");
            assert_eq!(transfer.host, WEB, "{client}: {transfer:?}");
        }
        let by_instance = by_instance(&transfers);
        eprintln!("{client} client, 60 requests over one connection: {by_instance:?}");
        for replica in REPLICAS {
            let share = by_instance.get(replica).copied().unwrap_or_default();
            // Round robin (the web Service's DestinationRule): a third each, exactly.
            assert_eq!(share, 20, "{client}: {replica} answered {share} of 60");
        }
    }
    let ok = [
        WEB_LABEL,
        "request_protocol=\"http\"",
        "response_code=\"200\"",
        "response_flags=\"-\"",
    ];
    assert_eq!(web.requests_total(&ok)?, 120);
    Ok(())
}

/// Captured by the kernel, an HTTP/1.1 connection to the Service address is routed by its
/// original destination, whatever its `Host` says, and each request on it is balanced.
#[test]
fn a_captured_connection_is_routed_by_its_original_destination() -> Result<()> {
    let test = "a_captured_connection_is_routed_by_its_original_destination";
    if !lab::require_privileges(test) || !curl_available(test) {
        return Ok(());
    }
    let mut lab = Lab::new("http1-vip")?;
    let mut pods = Vec::new();
    for name in REPLICAS {
        let pod = lab.add_pod(name)?;
        lab.serve_http_echo(&pod, 8080, name)?;
        pods.push((name, SocketAddr::new(pod.ip.into(), 8080)));
    }
    let client = lab.add_pod("client")?;
    let config = config_dir("http1-vip")?;
    fs::write(config.join("web.yaml"), web_manifests(pods))?;
    let _strait = lab.start_strait(&config, &[] as &[&str])?;

    let vip: SocketAddr = WEB_VIP.parse()?;
    let mut curl = lab.pod_command(&client, "curl");
    curl.args(["--header", "Host: nothing.default"])
        .args(curl_args(&format!("http://{vip}/"), 60));
    let transfers = transfers(&lab.output(curl)?, 60)?;
    let connects: u32 = transfers.iter().map(|t| t.connects).sum();
    assert_eq!(connects, 1, "one connection for all: {transfers:?}");
    for transfer in &transfers {
        assert_eq!(transfer.host, "nothing.default", "the Host goes as it is");
    }
    let by_instance = by_instance(&transfers);
    eprintln!("captured, 60 requests over one connection: {by_instance:?}");
    for replica in REPLICAS {
        let share = by_instance.get(replica).copied().unwrap_or_default();
        assert_eq!(share, 20, "{replica} answered {share} of 60 (round robin)");
    }
    fs::remove_dir_all(&config)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_upgrade_policy_decides_what_endpoints_get() -> Result<()> {
    let web = WebLoopback::start("h2-upgrade", NO_FAILURES, "").await?;
    for client in CLIENTS {
        let mut connection = Connection::open(web.outbound(), client).await?;
        for (host, expected) in [(WEB, "HTTP/1.1"), (WEB_H2, "HTTP/2.0")] {
            let response = connection.send(get(host, "/hello?x=1")).await?;
            let case = format!("{client:?} client to {host}");
            assert_eq!(response.status(), StatusCode::OK, "{case}");
            assert_eq!(header_text(&response, PROTOCOL), expected, "{case}");
            // Host and :authority carry the same name across protocols, the path intact.
            assert_eq!(header_text(&response, HOST), host, "{case}");
            assert_eq!(header_text(&response, PATH), "/hello", "{case}");
        }
    }
    Ok(())
}

/// Hop-by-hop headers describe one connection: the client's stay off the endpoint's, and the
/// endpoint's `Connection: close` closes its own connection, not the client's kept-alive one.
#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_headers_stay_on_their_hop() -> Result<()> {
    let web = WebLoopback::start("hop-by-hop", NO_FAILURES, "").await?;
    let mut connection = Connection::open(web.outbound(), Version::HTTP_11).await?;
    for host in [WEB, WEB_H2, WEB, WEB_H2] {
        let mut request = get(host, "/");
        for (name, value) in [
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "for strait only"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "for the endpoint"),
            (CLOSE, "please"),
        ] {
            request.headers_mut().insert(name, value.parse()?);
        }
        // Over the same connection each time: strait must not have closed it.
        let response = connection.send(request).await?;
        assert_eq!(response.status(), StatusCode::OK, "{host}: {response:?}");
        assert!(
            response.headers().get("connection").is_none(),
            "{response:?}"
        );
        let saw: Vec<&str> = header_text(&response, SAW).split(',').collect();
        assert!(saw.contains(&"x-end-to-end"), "{host}: {saw:?}");
        for hop in ["connection", "x-hop", "keep-alive", "proxy-connection"] {
            assert!(
                !saw.contains(&hop),
                "{host}: the endpoint saw {hop}: {saw:?}"
            );
        }
    }
    Ok(())
}

/// A response starts as soon as the endpoint answers, while the request body is still on its
/// way, both ways at once: the client sends its next chunk only once it got the response's
/// head, and the echo of the previous one.
#[tokio::test(flavor = "multi_thread")]
async fn bodies_stream_both_ways_at_once() -> Result<()> {
    let web = WebLoopback::start("full-duplex", NO_FAILURES, "").await?;
    for client in CLIENTS {
        let mut connection = Connection::open(web.outbound(), client).await?;
        for host in [WEB, WEB_H2] {
            let case = format!("{client:?} client to {host}");
            let (chunks, body) = tokio::sync::mpsc::channel(1);
            let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(body));
            let request = Request::post(format!("http://{host}/stream")).body(body.boxed())?;
            let mut response = within(connection.start(request)).await??;
            assert_eq!(response.status(), StatusCode::OK, "{case}");
            for chunk in ["ping", "pong"] {
                chunks.send(Ok(Frame::data(Bytes::from(chunk)))).await?;
                let frame = within(response.body_mut().frame()).await?;
                let echoed = frame.context("the echo ended")??.into_data().ok();
                assert_eq!(echoed.as_deref(), Some(chunk.as_bytes()), "{case}");
            }
            drop(chunks);
            let rest = within(response.into_body().collect()).await??;
            assert!(rest.to_bytes().is_empty(), "{case}");
        }
    }
    Ok(())
}

/// Bodies of each framing reach the endpoint whole, whichever protocol each side speaks:
/// `Content-Length` (small, and larger than what strait keeps for retries), and chunked.
#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_arrive_intact() -> Result<()> {
    let web = WebLoopback::start("bodies", NO_FAILURES, "").await?;
    let big: Bytes = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    for client in CLIENTS {
        let mut connection = Connection::open(web.outbound(), client).await?;
        for host in [WEB, WEB_H2] {
            for (framing, body) in [
                ("small", sized(Bytes::from_static(b"hello, endpoint"))),
                ("1 MiB", sized(big.clone())),
                ("chunked", chunked(&big, 7)),
            ] {
                let request = Request::post(format!("http://{host}/upload")).body(body)?;
                let response = connection.send(request).await?;
                let case = format!("{client:?} client to {host}, {framing} body");
                assert_eq!(response.status(), StatusCode::OK, "{case}");
                let expected = match framing {
                    "small" => &b"hello, endpoint"[..],
                    _ => &big[..],
                };
                assert!(response.body() == expected, "{case}: the echo differs");
            }
        }
    }
    Ok(())
}

fn sized(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// `bytes` in `chunks` frames of no announced length: HTTP/1.1 sends them chunked.
fn chunked(bytes: &Bytes, chunks: usize) -> Body {
    let size = bytes.len().div_ceil(chunks);
    let frames: Vec<Result<_, std::io::Error>> = bytes
        .chunks(size)
        .map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    StreamBody::new(tokio_stream::iter(frames)).boxed()
}

/// Istio's default retry policy retries 503 (`retriable-status-codes`): with one replica of
/// three failing every request, none fails. Without retries a third would.
#[tokio::test(flavor = "multi_thread")]
async fn a_503_is_retried_on_another_replica() -> Result<()> {
    let failing = |name: &str| (name == "replica-a").then_some(NonZeroUsize::MIN);
    let web = WebLoopback::start("retries", failing, "").await?;
    let mut connection = Connection::open(web.outbound(), Version::HTTP_11).await?;
    for _ in 0..60 {
        let response = connection.send(get(WEB, "/")).await?;
        assert_eq!(response.status(), StatusCode::OK, "{response:?}");
        assert_ne!(header_text(&response, INSTANCE), "replica-a");
    }
    assert!(
        web.replica("replica-a").requests() > 0,
        "the failing replica got its share of first tries"
    );
    let ok = [WEB_LABEL, "response_code=\"200\"", "response_flags=\"-\""];
    assert_eq!(web.requests_total(&ok)?, 60);
    Ok(())
}

/// A `Host` that names no Service: Envoy's 404 with NR, counted as an HTTP request.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_without_a_service_gets_404_no_route() -> Result<()> {
    let web = WebLoopback::start("no-route", NO_FAILURES, "").await?;
    let mut connection = Connection::open(web.outbound(), Version::HTTP_11).await?;
    for _ in 0..2 {
        let response = connection.send(get("nothing.default", "/")).await?;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let no_route = [
        "destination_service=\"unknown\"",
        "request_protocol=\"http\"",
        "response_code=\"404\"",
        "response_flags=\"NR\"",
    ];
    assert_eq!(web.requests_total(&no_route)?, 2);
    Ok(())
}

/// Requests written back to back before any answer (pipelining) are answered in order; the
/// last one's `Connection: close` closes the connection after its response.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() -> Result<()> {
    let web = WebLoopback::start("pipelining", NO_FAILURES, "").await?;
    let mut client = TcpStream::connect(web.outbound()).await?;
    client
        .write_all(
            b"GET /first HTTP/1.1\r\nHost: web.default\r\n\r\n\
              POST /second HTTP/1.1\r\nHost: web.default\r\nContent-Length: 4\r\n\r\nbody\
              GET /third HTTP/1.1\r\nHost: web.default\r\nConnection: close\r\n\r\n",
        )
        .await?;
    let answer = read_to_close(&mut client).await?;
    let statuses = answer.matches("HTTP/1.1 200 OK").count();
    assert_eq!(statuses, 3, "{answer}");
    let at = |path| answer.find(&format!("{PATH}: {path}\r\n"));
    let (first, second, third) = (at("/first"), at("/second"), at("/third"));
    assert!(
        first.is_some() && first < second && second < third,
        "{answer}"
    );
    assert!(
        answer.contains("\r\n\r\nbody"),
        "the POST body echoed: {answer}"
    );
    Ok(())
}

/// A WebSocket handshake is relayed and the upgraded connection joined both ways; CONNECT and
/// other upgrades get Envoy's 403, and the connection is closed after it.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_are_relayed_and_others_refused() -> Result<()> {
    let web = WebLoopback::start("upgrades", NO_FAILURES, "").await?;
    let mut client = TcpStream::connect(web.outbound()).await?;
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: web.default\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await?;
    let head = read_head(&mut client).await?;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in [&b"hello through strait"[..], b"and back"] {
        client.write_all(message).await?;
        let mut echoed = vec![0; message.len()];
        within(client.read_exact(&mut echoed)).await??;
        assert_eq!(echoed, message);
    }

    for refused in [
        &b"CONNECT web.default:80 HTTP/1.1\r\nHost: web.default:80\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: web.default\r\nConnection: upgrade\r\nUpgrade: tls/1.3\r\n\r\n",
    ] {
        let mut client = TcpStream::connect(web.outbound()).await?;
        client.write_all(refused).await?;
        let answer = read_to_close(&mut client).await?;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    }
    Ok(())
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(client: &mut TcpStream) -> Result<String> {
    let mut answer = Vec::new();
    within(client.read_to_end(&mut answer)).await??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A response's head, read byte by byte so nothing after it is taken.
async fn read_head(client: &mut TcpStream) -> Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = within(client.read_u8()).await??;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn within<F: std::future::Future>(future: F) -> Result<F::Output> {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .context("no answer within 10 s")
}

/// One response, as a client saw it.
#[derive(Debug)]
struct Transfer {
    /// New connections it took: 0 when it reused one.
    connects: u32,
    instance: String,
    protocol: String,
    /// The `Host` (or `:authority`) the endpoint got.
    host: String,
}

/// `count` GETs to `web` in one curl run, over one HTTP/1.1 connection to strait's listener.
async fn curl(web: &WebLoopback, count: usize) -> Result<Vec<Transfer>> {
    let output = tokio::process::Command::new("curl")
        .arg("--connect-to")
        .arg(format!("{WEB}:80:{}", web.outbound()))
        .args(curl_args(&format!("http://{WEB}/"), count))
        .stdin(Stdio::null())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "curl: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    transfers(&stdout, count)
}

/// curl's arguments for `count` GETs to `url` (paths `1`..`count` under it) over HTTP/1.1,
/// each reported on a line of its own.
fn curl_args(url: &str, count: usize) -> Vec<String> {
    let report = format!(
        "%{{num_connects}} %header{{{INSTANCE}}} %header{{{PROTOCOL}}} %header{{{HOST}}}\\n"
    );
    let url = format!("{url}[1-{count}]");
    [
        "--silent",
        "--show-error",
        "--http1.1",
        "--write-out",
        &report,
        &url,
    ]
    .map(String::from)
    .to_vec()
}

/// The transfers curl reported (see [`curl_args`]), `count` of them.
fn transfers(stdout: &str, count: usize) -> Result<Vec<Transfer>> {
    let transfers: Vec<Transfer> = stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(Transfer {
                connects: fields.next()?.parse().ok()?,
                instance: fields.next()?.to_owned(),
                protocol: fields.next()?.to_owned(),
                host: fields.next()?.to_owned(),
            })
        })
        .collect();
    ensure!(transfers.len() == count, "curl reported: {stdout}");
    Ok(transfers)
}

/// Replicas that answered, and how often.
fn by_instance(transfers: &[Transfer]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for transfer in transfers {
        *counts.entry(transfer.instance.as_str()).or_default() += 1;
    }
    counts
}

/// Whether curl runs here; otherwise a loud skip (or a failure where skips are forbidden).
fn curl_available(test: &str) -> bool {
    let ran = std::process::Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    ran.is_ok_and(|status| status.success()) || lab::skip_or_fail(test, "curl not installed")
}
