//! The seed's canary: the client's calls split 90/10 between versions v1 and v2.

use anyhow::Result;
use strait_tests::lab::{Lab, Pod};

use super::{failures, grpc_calls, version_calls, version_shares, Played};

const CALLS: u64 = 100;
/// The check's calls, and how far v1's share may be from 90 % (the 90 ± 3 %).
const CHECK_CALLS: u64 = 1000;
const CHECK_PERCENT: std::ops::RangeInclusive<u64> = 87..=93;

pub fn play(lab: &mut Lab, client: &Pod, check: bool) -> Result<Played> {
    let calls = if check { CHECK_CALLS } else { CALLS };
    let summary = grpc_calls(lab, client, |c| c.count(calls))?.summary;
    let report = format!(
        "  gRPC  greeter-grpc  {calls} calls on ONE connection: {}",
        version_shares(&summary)
    );
    let mut problems: Vec<String> = failures(&summary, "calls").into_iter().collect();
    let v1_percent = 100 * version_calls(&summary, "v1") / calls;
    if check && !CHECK_PERCENT.contains(&v1_percent) {
        problems.push(format!(
            "v1 answered {v1_percent} % of the calls, not {CHECK_PERCENT:?}"
        ));
    }
    Ok(Played { report, problems })
}
