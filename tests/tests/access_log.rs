//! End-to-end: the JSON access log (`--access-log FILE --log-format json`). Calls through a
//! local strait cause each response flag strait sets, and each finds its line with the right
//! gRPC status, route and upstream; a successful call's line carries its bytes, its upstream
//! endpoint and a generated request id.

use std::{
    collections::HashMap,
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde_json::Value;
use strait_tests::{
    greeter::{
        loopback::{config_dir, Loopback, AUTHORITY},
        CallOptions, FailIn, Implementation, RawCall,
    },
    lab::free_local_addr,
    manifests,
};

/// replica-a resets every call's stream after its headers; replica-c answers after SLOW.
const SLOW: Duration = Duration::from_millis(600);

/// Each case is a rule of its own, named after it, picked by the `x-case` metadata.
fn policy() -> String {
    let rule = |case: &str, body: &str| {
        format!("  - name: {case}\n    match: [{{headers: {{x-case: {{exact: {case}}}}}}}]\n{body}")
    };
    let to = |subset: &str| {
        format!("    route: [{{destination: {{host: greeter, subset: {subset}}}}}]\n")
    };
    let rules = [
        rule("abort", &format!("    fault: {{abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 100}}}}}}\n{}", to("ok"))),
        rule("delay", &format!("    fault: {{delay: {{fixedDelay: 5s, percentage: {{value: 100}}}}}}\n    timeout: 200ms\n{}", to("ok"))),
        rule("timeout", &format!("    timeout: 100ms\n{}", to("slow"))),
        rule("retries", &format!("    retries: {{attempts: 2, retryOn: reset}}\n{}", to("failing"))),
        rule("reset", &format!("    retries: {{attempts: 0}}\n{}", to("failing"))),
        rule("nowhere", &to("missing")),
        rule("overflow", &format!("    retries: {{attempts: 0}}\n{}", to("slow"))),
        rule("cancel", &to("slow")),
    ];
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: greeter}}\n\
         spec:\n  host: greeter\n  subsets:\n\
         \x20 - {{name: failing, labels: {{replica: replica-a}}}}\n\
         \x20 - {{name: ok, labels: {{replica: replica-b}}}}\n\
         \x20 - {{name: slow, labels: {{replica: replica-c}}, trafficPolicy: {{connectionPool: {{http: {{http2MaxRequests: 1}}}}}}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: greeter}}\n\
         spec:\n  hosts: [greeter]\n  http:\n{}  - name: ok\n{}---\n{}",
        rules.concat(),
        to("ok"),
        broken_services().expect("starting the broken HTTP/2 server")
    )
}

/// A gRPC Service `name` (cluster IP `vip`) whose one endpoint is `endpoint`.
fn service_at(name: &str, vip: &str, endpoint: SocketAddr) -> String {
    let service = manifests::Service {
        name,
        app: name,
        vip: vip.parse().unwrap(),
        port_name: "grpc",
        app_protocol: None,
        target_port: &endpoint.port(),
    };
    let pod = manifests::pod(&format!("{name}-0"), name, endpoint.ip(), &[]);
    manifests::documents([service.yaml(), pod])
}

/// A Service whose one endpoint refuses connections, and one whose endpoint breaks HTTP/2.
fn broken_services() -> Result<String> {
    let refusing = service_at("refusing", "10.96.0.32:50051", free_local_addr());
    let broken = service_at("broken", "10.96.0.33:50051", broken_http2_server()?);
    Ok(refusing + "---\n" + &broken)
}

/// A server that, once a request's HEADERS arrived, answers with SETTINGS and then HEADERS on
/// stream 0: a protocol error the client's side finds while the request is open.
fn broken_http2_server() -> Result<SocketAddr> {
    const BROKEN: &[u8] = b"\0\0\0\x04\0\0\0\0\0\0\0\x01\x01\x04\0\0\0\0\x88";
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            if until_request_headers(&mut stream).is_ok() {
                let _ = stream.write_all(BROKEN);
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
    });
    Ok(addr)
}

/// Reads the client preface and frames up to the first HEADERS frame (type 1).
fn until_request_headers(stream: &mut impl Read) -> std::io::Result<()> {
    let mut preface = [0; 24];
    stream.read_exact(&mut preface)?;
    loop {
        let mut head = [0; 9];
        stream.read_exact(&mut head)?;
        let length = u64::from(u32::from_be_bytes([0, head[0], head[1], head[2]]));
        std::io::copy(&mut stream.take(length), &mut std::io::sink())?;
        if head[3] == 1 {
            return Ok(());
        }
    }
}

#[test]
fn every_response_flag_is_in_the_json_access_log() -> Result<()> {
    // Beside the config, not in it: the config directory is watched.
    let log = config_dir("access-log-out")?.join("access.log");
    let log_arg = log.display().to_string();
    let args = ["--access-log", log_arg.as_str(), "--log-format", "json"];
    let lo = Loopback::start_with_args(
        "access-log",
        Implementation::Rust,
        |s| match s.name.as_str() {
            "replica-a" => s.failing(tonic::Code::Unavailable, 1, FailIn::Reset),
            "replica-c" => s.delayed(SLOW),
            _ => s,
        },
        &policy(),
        &args,
    )?;
    let call = |authority: &str, case: &str, tune: &dyn Fn(CallOptions) -> CallOptions| {
        lo.call(Implementation::Rust, authority, |c| {
            tune(c.metadata("x-case", case))
        })
    };
    let plain = |c: CallOptions| c;
    call(AUTHORITY, "ok", &plain)?;
    call(AUTHORITY, "abort", &plain)?;
    call(AUTHORITY, "delay", &plain)?;
    call(AUTHORITY, "timeout", &plain)?;
    call(AUTHORITY, "retries", &plain)?;
    call(AUTHORITY, "reset", &plain)?;
    call(AUTHORITY, "nowhere", &plain)?;
    // Two at once where one may be in flight: the second overflows.
    call(AUTHORITY, "overflow", &|c| {
        let mut c = c.count(2);
        c.concurrency = 2;
        c
    })?;
    // The client gives up, with no deadline strait knows of (no grpc-timeout), and goes.
    let mut cancel = RawCall::say_hello("cancel").metadata("x-case", "cancel");
    cancel.authority = Some(AUTHORITY.to_owned());
    let gave_up = cancel.send(lo.strait.outbound, Duration::from_millis(100));
    assert!(
        gave_up.is_err(),
        "the slow replica answered within 100 ms: {gave_up:?}"
    );
    call("empty.default.svc.cluster.local:50051", "-", &plain)?;
    call("refusing.default.svc.cluster.local:50051", "-", &plain)?;
    call("nobody.default.svc.cluster.local:50051", "-", &plain)?;
    call("broken.default.svc.cluster.local:50051", "-", &plain)?;

    let lines = wait_for_lines(&log, 14)?;
    let by_route = |route: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["route_name"] == route).collect()
    };
    let one = |route: &str| -> &Value {
        let found = by_route(route);
        assert_eq!(found.len(), 1, "{route}: {lines:#?}");
        found[0]
    };
    let by_authority = |authority: &str| -> &Value {
        let found: Vec<&Value> = lines
            .iter()
            .filter(|l| l["authority"] == authority)
            .collect();
        assert_eq!(found.len(), 1, "{authority}: {lines:#?}");
        found[0]
    };
    let expect = |line: &Value, flags: &str, grpc_status: u64| {
        assert_eq!(line["response_flags"], flags, "{line}");
        assert_eq!(line["grpc_status"], grpc_status, "{line}");
    };

    let ok = one("ok");
    expect(ok, "-", 0);
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["path"], "/helloworld.Greeter/SayHello");
    assert_eq!(ok["protocol"], "HTTP/2");
    assert_eq!(ok["authority"], AUTHORITY);
    assert_eq!(
        ok["upstream_cluster"],
        "outbound|50051|ok|greeter.default.svc.cluster.local"
    );
    assert_eq!(ok["upstream_host"], lo.backends[1].to_string());
    assert!(
        ok["bytes_received"].as_u64() > Some(0) && ok["bytes_sent"].as_u64() > Some(0),
        "{ok}"
    );
    assert_eq!(ok["request_id"].as_str().map(str::len), Some(36), "{ok}");
    assert!(ok["downstream_remote_address"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(ok["start_time"].as_str().is_some_and(|t| t.ends_with('Z')));

    expect(one("abort"), "FI", 14);
    expect(one("delay"), "UT,DI", 4);
    expect(one("timeout"), "UT", 4);
    expect(one("reset"), "UR", 14);
    expect(one("retries"), "UR,URX", 14);
    expect(one("nowhere"), "NR", 14);
    let overflow = by_route("overflow");
    let flags: Vec<&Value> = overflow.iter().map(|l| &l["response_flags"]).collect();
    assert!(
        flags.contains(&&Value::from("UO")) && flags.contains(&&Value::from("-")),
        "{overflow:#?}"
    );
    assert_eq!(one("cancel")["response_flags"], "DC");
    expect(
        by_authority("empty.default.svc.cluster.local:50051"),
        "UH",
        14,
    );
    let refused = by_authority("refusing.default.svc.cluster.local:50051");
    assert!(
        refused["response_flags"]
            .as_str()
            .is_some_and(|f| f.starts_with("UF")),
        "{refused}"
    );
    assert_eq!(refused["grpc_status"], 14);
    expect(
        by_authority("broken.default.svc.cluster.local:50051"),
        "LR",
        14,
    );
    let unknown = by_authority("nobody.default.svc.cluster.local:50051");
    expect(unknown, "NR", 14);
    assert_eq!(unknown["route_name"], Value::Null);
    Ok(())
}

/// The log's lines once there are `count` (each is written within a second of its request's
/// end; the calls above ended before this is called).
fn wait_for_lines(log: &Path, count: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        if lines.len() >= count {
            return Ok(lines);
        }
        if Instant::now() > deadline {
            let routes: HashMap<String, usize> = lines.iter().fold(HashMap::new(), |mut m, l| {
                *m.entry(l["route_name"].to_string()).or_default() += 1;
                m
            });
            bail!("{} lines of {count} after 5 s: {routes:?}", lines.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
