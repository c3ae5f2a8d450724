//! The seed's chaos test: strait delays every call 10 s; the client's 2 s deadline ends each
//! call first, DEADLINE_EXCEEDED at about 2 s.

use std::time::Duration;

use anyhow::Result;
use strait_tests::lab::{Lab, Pod};
use tonic::Code;

use super::{grpc_calls, Played};

const CALLS: u64 = 3;
const DEADLINE: Duration = Duration::from_secs(2);
/// When a call must end, in ms: at its deadline, not at the delay's 10 s.
const ENDS_MS: std::ops::RangeInclusive<f64> = 1900.0..=3000.0;

pub fn play(lab: &mut Lab, client: &Pod) -> Result<Played> {
    let report = grpc_calls(lab, client, |c| {
        let mut c = c.count(CALLS).deadline(DEADLINE);
        c.concurrency = CALLS;
        c
    })?;
    let ends: Vec<String> = report
        .calls
        .iter()
        .map(|call| {
            format!(
                "{} after {:.2} s",
                status_name(call.code),
                call.elapsed_ms / 1e3
            )
        })
        .collect();
    let mut problems = Vec::new();
    for call in &report.calls {
        if call.code != Code::DeadlineExceeded as i32 || !ENDS_MS.contains(&call.elapsed_ms) {
            problems.push(format!(
                "a call ended {} after {} ms, not DEADLINE_EXCEEDED at about 2 s",
                status_name(call.code),
                call.elapsed_ms
            ));
        }
    }
    Ok(Played {
        report: format!(
            "  gRPC  greeter-grpc  {CALLS} calls, {} s deadline, 10 s fault delay: {}",
            DEADLINE.as_secs(),
            ends.join(", ")
        ),
        problems,
    })
}

fn status_name(code: i32) -> String {
    match Code::from(code) {
        Code::Ok => "OK".into(),
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED".into(),
        other => format!("{other:?} ({code})"),
    }
}
