//! One round of the lab's client: a TCP call to `greeter` and a batch of gRPC calls over one
//! connection to `greeter-grpc`; who answered, and what is wrong with it.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use strait_tests::{
    greeter::{CallOptions, CallSummary, Implementation},
    lab::{Lab, Pod},
};

use super::{GRPC_SERVICE, REPLICAS, TCP_SERVICE};

/// gRPC calls per round, all over one HTTP/2 connection: enough for every replica to get some.
pub const GRPC_CALLS: u64 = 30;
/// Bytes the TCP call sends (its reply says how many the replica received).
const TCP_SEND: usize = 64;
/// How long a TCP call's connect, read or write, and a gRPC call, may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What the client saw in one round.
pub struct Round {
    /// The lab agent's report (`ok`, `reply`, `peer`, `total_us`, or `error`).
    tcp: Result<Value>,
    /// The Greeter client's summary, or why there is none (it could not connect, say).
    grpc: Result<CallSummary>,
}

impl Round {
    /// Makes the round's calls from `client`.
    pub fn play(lab: &mut Lab, client: &Pod) -> Result<Self> {
        let tcp = lab.agent_call(client, TCP_SERVICE, TCP_SEND, CALL_TIMEOUT);
        let calls = CallOptions::new(GRPC_SERVICE.parse()?)
            .count(GRPC_CALLS)
            .deadline(CALL_TIMEOUT);
        let grpc = lab
            .greeter_call(client, Implementation::Rust, &calls)
            .map(|report| report.summary);
        Ok(Self { tcp, grpc })
    }

    /// Two lines, one per Service, saying who answered.
    pub fn report(&self) -> String {
        let tcp = match &self.tcp {
            Ok(call) => tcp_outcome(call),
            Err(err) => format!("FAILED {err:#}"),
        };
        let grpc = match &self.grpc {
            Ok(summary) => grpc_outcome(summary),
            Err(err) => format!("FAILED {err:#}"),
        };
        format!(
            "  TCP   greeter       {TCP_SERVICE:<16}  1 call on a new connection: {tcp}\n  \
             gRPC  greeter-grpc  {GRPC_SERVICE:<16}  {GRPC_CALLS} calls on ONE connection: {grpc}"
        )
    }

    /// What makes the round a failure: a call that failed, or a replica that answered none of
    /// the gRPC calls (the one connection stuck to some replicas: connection-level balancing).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.tcp {
            Ok(call) if call["ok"] == true => {}
            Ok(call) => problems.push(format!(
                "the TCP call failed: {}",
                call["error"].as_str().unwrap_or("?")
            )),
            Err(err) => problems.push(format!("the TCP client: {err:#}")),
        }
        match &self.grpc {
            Ok(summary) => problems.extend(grpc_problems(summary)),
            Err(err) => problems.push(format!("the gRPC client: {err:#}")),
        }
        problems
    }
}

/// `replica-2 answered (client's peer 10.96.0.10:80, 0.61 ms)`, or `FAILED <error>`.
fn tcp_outcome(call: &Value) -> String {
    if call["ok"] != true {
        return format!("FAILED {}", call["error"].as_str().unwrap_or("?"));
    }
    // The agent's reply is `NAME received N`.
    let reply = call["reply"].as_str().unwrap_or("?");
    let replica = reply.split_whitespace().next().unwrap_or("?");
    let total_ms = call["total_us"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    format!(
        "{replica} answered (client's peer {}, {total_ms:.2} ms)",
        call["peer"].as_str().unwrap_or("?")
    )
}

/// `replica-1 10, replica-2 11, replica-3 9`, every replica named even with 0, then any other
/// instance, then the failures by status: `; 3 failed (grpc-status 14: 3)`.
pub fn grpc_outcome(summary: &CallSummary) -> String {
    let others = summary
        .by_instance
        .keys()
        .filter(|name| !REPLICAS.contains(&name.as_str()));
    let shares: Vec<String> = REPLICAS
        .iter()
        .copied()
        .chain(others.map(String::as_str))
        .map(|name| format!("{name} {}", summary.from_instance(name)))
        .collect();
    let mut outcome = shares.join(", ");
    let failed = summary.calls - summary.ok;
    if failed > 0 {
        let codes: Vec<String> = summary
            .by_code
            .iter()
            .filter(|(code, _)| code.as_str() != "0")
            .map(|(code, n)| format!("grpc-status {code}: {n}"))
            .collect();
        outcome += &format!("; {failed} failed ({})", codes.join(", "));
    }
    outcome
}

fn grpc_problems(summary: &CallSummary) -> Vec<String> {
    let mut problems = Vec::new();
    if summary.ok < summary.calls {
        problems.push(format!(
            "{} of {} gRPC calls failed: {:?}",
            summary.calls - summary.ok,
            summary.calls,
            summary.by_code
        ));
    }
    for replica in REPLICAS {
        if summary.from_instance(replica) == 0 {
            problems.push(format!(
                "{replica} answered none of the {} gRPC calls over the one connection: {:?}",
                summary.calls, summary.by_instance
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use anyhow::anyhow;

    use super::*;

    fn summary(ok: &[(&str, u64)], failed: &[(&str, u64)]) -> CallSummary {
        let mut summary = CallSummary {
            summary: true,
            ..CallSummary::default()
        };
        for (name, n) in ok.iter().chain(failed) {
            *summary.by_instance.entry(name.to_string()).or_default() += n;
            summary.calls += n;
        }
        summary.ok = ok.iter().map(|(_, n)| n).sum();
        summary.by_code.insert("0".into(), summary.ok);
        if summary.calls > summary.ok {
            summary
                .by_code
                .insert("14".into(), summary.calls - summary.ok);
        }
        summary
    }

    fn tcp_ok() -> Value {
        serde_json::from_str(
            r#"{"ok":true,"to":"10.96.0.10:80","peer":"10.96.0.10:80","local":"10.250.0.5:4000","sent":64,"received":22,"reply":"replica-2 received 64","connect_us":95,"total_us":610}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_good_round_says_who_answered() {
        let round = Round {
            tcp: Ok(tcp_ok()),
            grpc: Ok(summary(
                &[("replica-1", 10), ("replica-2", 11), ("replica-3", 9)],
                &[],
            )),
        };
        assert_eq!(
            round.report(),
            "  TCP   greeter       10.96.0.10:80     1 call on a new connection: replica-2 answered (client's peer 10.96.0.10:80, 0.61 ms)\n  \
             gRPC  greeter-grpc  10.96.0.11:50051  30 calls on ONE connection: replica-1 10, replica-2 11, replica-3 9"
        );
        assert!(round.problems().is_empty());
    }

    #[test]
    fn a_replica_left_out_or_a_failure_is_a_problem() {
        let failed_tcp = r#"{"ok":false,"to":"10.96.0.10:80","error":"Network is unreachable (os error 101)","after_us":40}"#;
        let round = Round {
            tcp: Ok(serde_json::from_str(failed_tcp).unwrap()),
            grpc: Ok(summary(
                &[("replica-1", 20), ("replica-3", 7)],
                &[("replica-3", 3)],
            )),
        };
        let report = round.report();
        assert!(
            report.contains("new connection: FAILED Network is unreachable (os error 101)"),
            "{report}"
        );
        assert!(
            report
                .ends_with("replica-1 20, replica-2 0, replica-3 10; 3 failed (grpc-status 14: 3)"),
            "{report}"
        );
        let problems = round.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("the TCP call failed"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("3 of 30 gRPC calls failed"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("replica-2 answered none of the 30 gRPC calls"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_client_without_a_report_is_a_problem() {
        let round = Round {
            tcp: Ok(tcp_ok()),
            grpc: Err(anyhow!("no summary line")),
        };
        assert!(round
            .report()
            .ends_with("ONE connection: FAILED no summary line"));
        assert_eq!(round.problems(), ["the gRPC client: no summary line"]);
    }

    #[test]
    fn other_instances_are_shown_too() {
        let outcome = grpc_outcome(&summary(
            &[
                ("replica-1", 1),
                ("replica-2", 1),
                ("replica-3", 1),
                ("stray", 2),
            ],
            &[],
        ));
        assert_eq!(outcome, "replica-1 1, replica-2 1, replica-3 1, stray 2");
    }
}
