//! Retries: replica-2 fails every call with UNAVAILABLE; strait retries each such call on
//! another replica, so the client sees every call succeed and none answered by replica-2.

use anyhow::Result;
use strait_tests::{
    greeter::{FailIn, ServeOptions},
    lab::{Lab, Pod},
};
use tonic::Code;

use super::{failures, grpc_calls, Played};
use crate::lab::round::grpc_outcome;

const FAILING: &str = "replica-2";
const CALLS: u64 = 30;
const CHECK_CALLS: u64 = 300;

/// replica-2 fails every call, its status in the trailers.
pub fn greeter(options: ServeOptions) -> ServeOptions {
    match options.name == FAILING {
        true => options.failing(Code::Unavailable, 1, FailIn::Trailers),
        false => options,
    }
}

pub fn play(lab: &mut Lab, client: &Pod, check: bool) -> Result<Played> {
    let calls = if check { CHECK_CALLS } else { CALLS };
    let summary = grpc_calls(lab, client, |c| c.count(calls))?.summary;
    let report = format!(
        "  gRPC  greeter-grpc  {calls} calls ({FAILING} fails every call it gets): {}",
        grpc_outcome(&summary)
    );
    let mut problems: Vec<String> = failures(&summary, "calls").into_iter().collect();
    if summary.from_instance(FAILING) > 0 {
        problems.push(format!(
            "{FAILING} answered calls: {:?}",
            summary.by_instance
        ));
    }
    Ok(Played { report, problems })
}
