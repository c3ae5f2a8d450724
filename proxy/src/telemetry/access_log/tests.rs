use std::time::UNIX_EPOCH;

use super::*;

fn failed_call() -> AccessEntry {
    AccessEntry {
        start_time: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        method: Some("POST".into()),
        path: Some("/helloworld.Greeter/SayHello".into()),
        protocol: Some("HTTP/2"),
        response_code: 200,
        grpc_status: Some(14),
        response_flags: ResponseFlags::UPSTREAM_CONNECT_FAILURE
            | ResponseFlags::RETRY_LIMIT_EXCEEDED,
        bytes_received: 12,
        bytes_sent: 0,
        duration: Duration::from_millis(31),
        user_agent: Some("grpc-python/1.85".into()),
        authority: Some("greeter:50051".into()),
        upstream_host: Some("10.0.0.5:50051".parse().unwrap()),
        upstream_cluster: Some("outbound|50051||greeter.default.svc.cluster.local".into()),
        downstream_remote_address: Some("10.0.0.9:40000".parse().unwrap()),
        route_name: Some("default".into()),
        ..AccessEntry::default()
    }
}

#[test]
fn text_is_istios_default_format() {
    assert_eq!(
        failed_call().format(Format::Text),
        "[2023-11-14T22:13:20.123Z] \"POST /helloworld.Greeter/SayHello HTTP/2\" 200 UF,URX - - \"-\" 12 0 31 - \"-\" \"grpc-python/1.85\" \"-\" \"greeter:50051\" \"10.0.0.5:50051\" outbound|50051||greeter.default.svc.cluster.local - - 10.0.0.9:40000 - default\n"
    );
}

#[test]
fn json_has_numbers_nulls_and_envoys_flags() {
    let line = failed_call().format(Format::Json);
    assert!(line.ends_with("}\n"));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["grpc_status"], 14);
    assert_eq!(value["response_code"], 200);
    assert_eq!(value["response_flags"], "UF,URX");
    assert_eq!(value["duration"], 31);
    assert_eq!(value["start_time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(value["request_id"], serde_json::Value::Null);
    let tcp = AccessEntry::default().format(Format::Json);
    let value: serde_json::Value = serde_json::from_str(&tcp).unwrap();
    assert_eq!(value["grpc_status"], serde_json::Value::Null);
    assert_eq!(value["response_flags"], "-");
}

/// Lines reach the file by themselves, promptly, without the log being dropped.
#[tokio::test]
async fn lines_are_written_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::start(&Sink::File(path.clone()), Format::Json).unwrap();
    for _ in 0..3 {
        log.log(failed_call());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let written = std::fs::read_to_string(&path).unwrap();
        if written.lines().count() == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{written:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.dropped(), 0);
}
