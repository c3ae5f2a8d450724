//! Header routing: a test client marks its calls `x-canary: true` and reaches only v2; an
//! unmarked client gets the canary split.

use anyhow::Result;
use strait_tests::lab::{Lab, Pod};

use super::{failures, grpc_calls, version_calls, version_shares, Played};

const CALLS: u64 = 30;
const CHECK_CALLS: u64 = 100;
const MARK: (&str, &str) = ("x-canary", "true");

pub fn play(lab: &mut Lab, client: &Pod, check: bool) -> Result<Played> {
    let calls = if check { CHECK_CALLS } else { CALLS };
    let marked = grpc_calls(lab, client, |c| c.count(calls).metadata(MARK.0, MARK.1))?.summary;
    let unmarked = grpc_calls(lab, client, |c| c.count(calls))?.summary;
    let report = format!(
        "  gRPC  marked {}: {}   {calls} calls each\n  gRPC  unmarked:        {}",
        MARK.0,
        version_shares(&marked),
        version_shares(&unmarked)
    );
    let mut problems: Vec<String> = [
        failures(&marked, "marked calls"),
        failures(&unmarked, "unmarked calls"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if version_calls(&marked, "v2") != calls {
        problems.push(format!(
            "marked calls reached {}, not only v2",
            version_shares(&marked)
        ));
    }
    // 90/10: a quarter of the unmarked calls on v1 is far below the split.
    if version_calls(&unmarked, "v1") * 4 < calls * 3 {
        problems.push(format!(
            "unmarked calls did not follow the 90/10 split: {}",
            version_shares(&unmarked)
        ));
    }
    Ok(Played { report, problems })
}
