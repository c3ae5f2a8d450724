//! The Greeter tooling on its own, on loopback, no proxy: the Rust Greeter against itself and
//! against Python's grpcio both ways, and the raw HTTP/2 view of where a status travels. Tests
//! with Python skip loudly without grpcio (and fail instead under STRAIT_TESTS_REQUIRE_PRIVILEGES).

use std::{
    collections::BTreeSet,
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use bytes::Bytes;
use prost::Message;
use strait_tests::{
    greeter::{
        parse_served, proto::HelloReply, require_python_grpc, run_client, spawn_server,
        CallOptions, CallReport, FailIn, Implementation, Method, RawCall, ServeOptions, ServedCall,
    },
    lab::ChildProcess,
};
use tonic::Code;

use Implementation::{Python, Rust};

const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: usize = 1 << 20;

/// (client, server) pairs: Rust with itself and with Python both ways.
const PAIRS: [(Implementation, Implementation); 3] = [(Rust, Rust), (Python, Rust), (Rust, Python)];

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// False (after a loud skip line) when `implementations` need a Python that is not here.
fn runnable(test: &str, implementations: &[Implementation]) -> bool {
    !implementations.contains(&Python) || require_python_grpc(test)
}

fn server(implementation: Implementation, options: &ServeOptions) -> (ChildProcess, SocketAddr) {
    spawn_server(implementation, options).unwrap()
}

fn call(implementation: Implementation, options: &CallOptions) -> CallReport {
    run_client(implementation, options, TIMEOUT).unwrap()
}

/// The server's next [`ServedCall`] line.
fn next_served(server: &mut ChildProcess) -> ServedCall {
    let line = server.next_line(TIMEOUT).unwrap().expect("the server runs");
    parse_served(&line).unwrap_or_else(|| panic!("not a served call: {line}"))
}

#[test]
fn unary_names_the_instance() {
    for (client, served_by) in PAIRS {
        if !runnable("unary_names_the_instance", &[client, served_by]) {
            continue;
        }
        let (_server, addr) = server(served_by, &ServeOptions::new(loopback(), "a"));
        let report = call(
            client,
            &CallOptions {
                concurrency: 2,
                ..CallOptions::new(addr).count(5)
            },
        );
        let pair = format!("{client:?} client, {served_by:?} server");
        assert_eq!(report.summary.ok, 5, "{pair}: {report:?}");
        assert_eq!(report.summary.from_instance("a"), 5, "{pair}");
        for line in &report.calls {
            assert_eq!(line.message, "a: Hello world", "{pair}");
            assert_eq!((line.replies, line.bytes), (1, 14), "{pair}");
        }
    }
}

#[test]
fn each_streaming_kind() {
    for (client, served_by) in PAIRS {
        if !runnable("each_streaming_kind", &[client, served_by]) {
            continue;
        }
        let (_server, addr) = server(served_by, &ServeOptions::new(loopback(), "a"));
        let pair = format!("{client:?} client, {served_by:?} server");
        let streams = CallOptions {
            messages: 4,
            name: "n".into(),
            size: 10,
            ..CallOptions::new(addr)
        };
        let greeting = "a: Hello n.........";

        let report = call(client, &streams.clone().method(Method::ServerStream));
        let line = &report.calls[0];
        assert!(line.ok, "{pair}: {line:?}");
        assert_eq!((line.replies, line.bytes), (4, 4 * greeting.len() as u64));
        assert_eq!(line.message, greeting);

        let report = call(client, &streams.clone().method(Method::ClientStream));
        let line = &report.calls[0];
        assert!(line.ok, "{pair}: {line:?}");
        assert_eq!(line.message, "a: received 4 messages, 40 bytes", "{pair}");
        assert_eq!(line.instance.as_deref(), Some("a"));

        let report = call(client, &streams.clone().method(Method::Bidi));
        let line = &report.calls[0];
        assert!(line.ok, "{pair}: {line:?}");
        assert_eq!((line.replies, line.bytes), (4, 4 * greeting.len() as u64));
    }
}

#[test]
fn sixteen_mib_messages_both_ways() {
    for (client, served_by) in PAIRS {
        if !runnable("sixteen_mib_messages_both_ways", &[client, served_by]) {
            continue;
        }
        let (_server, addr) = server(served_by, &ServeOptions::new(loopback(), "a"));
        let pair = format!("{client:?} client, {served_by:?} server");
        let big = CallOptions {
            size: 16 * MIB,
            messages: 2,
            ..CallOptions::new(addr)
        };
        let greeting_bytes = (16 * MIB + "a: Hello ".len()) as u64;
        for method in [Method::Unary, Method::Bidi] {
            let line = &call(client, &big.clone().method(method)).calls[0];
            assert!(line.ok, "{pair} {method:?}: {line:?}");
            let replies = if method == Method::Unary { 1 } else { 2 };
            assert_eq!(line.bytes, replies * greeting_bytes, "{pair} {method:?}");
        }
        let line = &call(client, &big.clone().method(Method::ClientStream)).calls[0];
        let expected = format!("a: received 2 messages, {} bytes", 32 * MIB);
        assert_eq!(line.message, expected, "{pair}");
    }
}

#[test]
fn status_in_trailers_comes_after_headers() {
    for (client, served_by) in PAIRS {
        if !runnable(
            "status_in_trailers_comes_after_headers",
            &[client, served_by],
        ) {
            continue;
        }
        let failing =
            ServeOptions::new(loopback(), "a").failing(Code::Unavailable, 1, FailIn::Trailers);
        let (_server, addr) = server(served_by, &failing);
        let pair = format!("{client:?} client, {served_by:?} server");

        let wire = RawCall::say_hello("x").send(addr, TIMEOUT).unwrap();
        assert!(!wire.trailers_only, "{pair}: {wire:?}");
        assert_eq!(wire.status, 200);
        assert_eq!(wire.header("grpc-status"), None, "{pair}: {wire:?}");
        assert_eq!(wire.header("x-instance"), Some("a"), "{pair}: {wire:?}");
        assert!(wire.data.is_empty(), "{pair}: {wire:?}");
        assert_eq!(wire.trailer("grpc-status"), Some("14"), "{pair}: {wire:?}");
        assert_eq!(wire.trailer("x-instance"), Some("a"), "{pair}: {wire:?}");
        let message = wire.grpc_message();
        assert_eq!(message.as_deref(), Some("a: injected failure of call 1"));

        for method in [
            Method::Unary,
            Method::ServerStream,
            Method::ClientStream,
            Method::Bidi,
        ] {
            let report = call(client, &CallOptions::new(addr).method(method));
            let line = &report.calls[0];
            assert_eq!(
                line.code,
                Code::Unavailable as i32,
                "{pair} {method:?}: {line:?}"
            );
            assert_eq!(line.instance.as_deref(), Some("a"), "{pair} {method:?}");
        }
    }
}

#[test]
fn status_in_headers_is_trailers_only() {
    for served_by in [Rust, Python] {
        if !runnable("status_in_headers_is_trailers_only", &[served_by]) {
            continue;
        }
        let failing =
            ServeOptions::new(loopback(), "a").failing(Code::Unavailable, 1, FailIn::Headers);
        let (_server, addr) = server(served_by, &failing);
        let wire = RawCall::say_hello("x").send(addr, TIMEOUT).unwrap();
        assert!(wire.trailers_only, "{served_by:?}: {wire:?}");
        assert_eq!(wire.header("grpc-status"), Some("14"), "{served_by:?}");
        assert_eq!(wire.header("x-instance"), Some("a"), "{served_by:?}");
        assert!(wire.trailers.is_none() && wire.data.is_empty());
        let line = &call(Rust, &CallOptions::new(addr)).calls[0];
        assert_eq!(line.code, Code::Unavailable as i32);
    }
}

#[test]
fn healthy_calls_on_the_wire() {
    for served_by in [Rust, Python] {
        if !runnable("healthy_calls_on_the_wire", &[served_by]) {
            continue;
        }
        let (_server, addr) = server(served_by, &ServeOptions::new(loopback(), "a"));
        let wire = RawCall::say_hello("x").send(addr, TIMEOUT).unwrap();
        assert_eq!(wire.grpc_status(), Some(0), "{served_by:?}: {wire:?}");
        assert_eq!(wire.header("x-instance"), Some("a"));
        let replies = wire.messages().unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            HelloReply::decode(replies[0].clone()).unwrap().message,
            "a: Hello x"
        );
    }
}

#[test]
fn every_nth_call_fails() {
    for (client, served_by) in PAIRS {
        if !runnable("every_nth_call_fails", &[client, served_by]) {
            continue;
        }
        let failing =
            ServeOptions::new(loopback(), "a").failing(Code::Unavailable, 3, FailIn::Trailers);
        let (mut server, addr) = server(served_by, &failing);
        let report = call(client, &CallOptions::new(addr).count(9));
        assert_eq!(
            report.summary.ok, 6,
            "{client:?} client, {served_by:?} server"
        );
        assert_eq!(report.summary.with_code(Code::Unavailable), 3);
        let failed: BTreeSet<u64> = (0..9)
            .map(|_| next_served(&mut server))
            .filter(|served| served.code == Some(Code::Unavailable as i32))
            .map(|served| served.call)
            .collect();
        assert_eq!(failed, BTreeSet::from([3, 6, 9]));
    }
}

#[test]
fn deadline_expiry_is_deadline_exceeded() {
    for (client, served_by) in PAIRS {
        if !runnable("deadline_expiry_is_deadline_exceeded", &[client, served_by]) {
            continue;
        }
        let slow = ServeOptions::new(loopback(), "a").delayed(Duration::from_secs(5));
        let (_server, addr) = server(served_by, &slow);
        for method in [
            Method::Unary,
            Method::ServerStream,
            Method::ClientStream,
            Method::Bidi,
        ] {
            let options = CallOptions::new(addr)
                .method(method)
                .deadline(Duration::from_millis(200));
            let line = &call(client, &options).calls[0];
            let pair = format!("{client:?} client, {served_by:?} server, {method:?}");
            assert_eq!(line.code, Code::DeadlineExceeded as i32, "{pair}: {line:?}");
            assert!(
                (190.0..3000.0).contains(&line.elapsed_ms),
                "{pair}: {line:?}"
            );
        }
    }
}

#[test]
fn a_client_going_away_cancels_the_call() {
    for served_by in [Rust, Python] {
        if !runnable("a_client_going_away_cancels_the_call", &[served_by]) {
            continue;
        }
        let slow = ServeOptions::new(loopback(), "a").delayed(Duration::from_secs(30));
        let (mut server, addr) = server(served_by, &slow);
        // The raw client gives up and closes its connection mid-call.
        let err = RawCall::say_hello("x")
            .send(addr, Duration::from_millis(1500))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("no complete response"),
            "{err:#}"
        );
        let served = next_served(&mut server);
        assert!(served.cancelled, "{served_by:?}: {served:?}");
        assert_eq!(served.code, None);
    }
}

/// Clients put every call on one connection and send `--authority` as `:authority`, which a
/// bare HTTP/2 server records.
#[test]
fn one_connection_and_the_authority() {
    for client in [Rust, Python] {
        if !runnable("one_connection_and_the_authority", &[client]) {
            continue;
        }
        let recorder = Recorder::start();
        let authority = "greeter.default.svc.cluster.local:80";
        let options = CallOptions {
            authority: Some(authority.into()),
            concurrency: 3,
            ..CallOptions::new(recorder.addr).count(6)
        };
        let report = call(client, &options);
        assert_eq!(report.summary.ok, 6, "{client:?}: {report:?}");
        assert_eq!(report.summary.from_instance("recorder"), 6);
        let seen = recorder.seen.lock().unwrap();
        assert_eq!(seen.connections, 1, "{client:?}");
        assert_eq!(
            seen.authorities,
            vec![authority.to_owned(); 6],
            "{client:?}"
        );
    }
}

/// A bare HTTP/2 server answering any unary call with "recorder: Hello", recording the
/// connections and `:authority`s it sees.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    connections: usize,
    authorities: Vec<String>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recorded = seen.clone();
        // Detached: it dies with the test process.
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    recorded.lock().unwrap().connections += 1;
                    tokio::spawn(Self::connection(tcp, recorded.clone()));
                }
            })
        });
        Recorder { addr, seen }
    }

    async fn connection(tcp: tokio::net::TcpStream, seen: Arc<Mutex<Seen>>) {
        let Ok(mut connection) = h2::server::handshake(tcp).await else {
            return;
        };
        // Polling accept() drives the connection, so each stream is answered on a task.
        while let Some(Ok((request, respond))) = connection.accept().await {
            let authority = request.uri().authority().map(|a| a.to_string());
            seen.lock()
                .unwrap()
                .authorities
                .push(authority.unwrap_or_default());
            tokio::spawn(Self::answer(request.into_body(), respond));
        }
    }

    /// Reads the request to its end, then answers with one reply and status 0. A peer that
    /// went away is not this test's concern: the client's report is.
    async fn answer(mut body: h2::RecvStream, mut respond: h2::server::SendResponse<Bytes>) {
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let reply = HelloReply {
            message: "recorder: Hello".into(),
        }
        .encode_to_vec();
        let mut frame = vec![0];
        frame.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        frame.extend_from_slice(&reply);
        let response = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let Ok(mut send) = respond.send_response(response, false) else {
            return;
        };
        let _ = send.send_data(Bytes::from(frame), false);
        let _ = send.send_trailers(trailers);
    }
}
