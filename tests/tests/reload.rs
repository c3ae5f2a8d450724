//! End-to-end, issue 4's hot reload: the seed's canary served under h2load's load while its
//! weights are rewritten (90/10 → 50/50 → 0/100 → a broken file → 100/0). h2load must lose no
//! request, every call must end with grpc-status 0 (h2load counts HTTP 200 only, so strait's
//! `istio_requests_total` says), and the replicas' shares must follow each applied change and
//! stay put on a rejected one.

use std::{collections::BTreeMap, fs, process::Command, time::Duration};

use anyhow::{ensure, Result};
use strait_tests::{
    greeter::{
        self,
        loopback::{Loopback, Reload, SEED_GRPC_AUTHORITY},
        Implementation,
    },
    h2load,
    lab::{wait_until, ChildProcess},
    manifests,
};

const TEST: &str = "changing_the_canary_split_under_h2load_loses_no_request";
const HOST: &str = "grpc-service.default.svc.cluster.local";
const V1: &str = "grpc-v1";
const V2: &str = "grpc-v2";
/// h2load's calls: enough for every phase on a busy 2-core machine (the test fails if it
/// ends first). A count, not a duration: a timed run resets the calls in flight at its end,
/// which strait would rightly count as cancelled.
const LOAD: u64 = 12_000;
/// How long h2load may take for [`LOAD`] calls.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Calls in flight at most (h2load -c × -m): after a change, this many may still take the old
/// routes, so a phase's count starts after [`SETTLE`] calls.
const CONNECTIONS: u32 = 4;
const STREAMS: u32 = 10;
const SETTLE: u64 = 100;
/// Calls counted per phase.
const PHASE: u64 = 400;
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// The seed, its canary's VirtualService with these weights for v1 and v2.
fn seed_with_canary(weights: [u32; 2]) -> Result<String> {
    let canary = manifests::canary("grpc-canary", HOST, weights);
    manifests::seed_replacing("VirtualService", "grpc-canary", &canary)
}

#[test]
fn changing_the_canary_split_under_h2load_loses_no_request() -> Result<()> {
    if !h2load::require(TEST) {
        return Ok(());
    }
    for server in greeter::implementations(TEST) {
        split_changes_under_load(server)?;
    }
    Ok(())
}

fn split_changes_under_load(server: Implementation) -> Result<()> {
    let seed = manifests::seed()?;
    let mut lo = Loopback::start_seed("reload", server, |s| s, &seed, "")?;
    let request = lo.config.with_extension("request.bin");
    fs::write(&request, h2load::grpc_frame("world"))?;
    let mut load = Command::new(h2load::PROGRAM);
    load.arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-m{STREAMS}"))
        .arg(format!("--requests={LOAD}"))
        .args(h2load::unary_grpc_args(&request, SEED_GRPC_AUTHORITY))
        .arg(format!(
            "http://{}/helloworld.Greeter/SayHello",
            lo.strait.outbound
        ));
    let mut load = ChildProcess::spawn(load, "h2load")?;

    let case = format!("{server:?} servers");
    let shares = phase(&mut lo, &load)?;
    eprintln!("{case}: 90/10: {shares:?}");
    assert_share(&shares, 850..=950, &format!("{case}, 90/10"));

    lo.rewrite("seed.yaml", &seed_with_canary([50, 50])?, Reload::Accepted)?;
    let shares = phase(&mut lo, &load)?;
    eprintln!("{case}: 50/50: {shares:?}");
    assert_share(&shares, 400..=600, &format!("{case}, 50/50"));

    lo.rewrite("seed.yaml", &seed_with_canary([0, 100])?, Reload::Accepted)?;
    let shares = phase(&mut lo, &load)?;
    eprintln!("{case}: 0/100: {shares:?}");
    assert_share(&shares, 0..=0, &format!("{case}, 0/100"));

    // Half an edit: not YAML. Rejected, the last good split (0/100) keeps serving.
    let broken = seed_with_canary([90, 10])?.replace("weight: 90", "weight: [90");
    lo.rewrite("seed.yaml", &broken, Reload::Rejected)?;
    let shares = phase(&mut lo, &load)?;
    eprintln!("{case}: rejected change: {shares:?}");
    assert_share(&shares, 0..=0, &format!("{case}, after a rejected change"));

    lo.rewrite("seed.yaml", &seed_with_canary([100, 0])?, Reload::Accepted)?;
    let shares = phase(&mut lo, &load)?;
    eprintln!("{case}: 100/0: {shares:?}");
    assert_share(&shares, 1000..=1000, &format!("{case}, 100/0"));

    ensure!(
        load.try_wait()?.is_none(),
        "{case}: h2load ended before the last change was checked: raise LOAD"
    );
    let summary = finish(&mut load)?;
    eprintln!("{case}: h2load: {summary:?}");
    assert_eq!(summary.failures(), 0, "{case}: {summary:?}");
    assert_eq!(summary.succeeded, summary.done, "{case}: {summary:?}");
    // Every call strait answered ended with grpc-status 0 (responses are counted as they end:
    // wait until all of h2load's are).
    let service = format!("destination_service=\"{HOST}\"");
    let counted = wait_until(Duration::from_secs(5), || {
        lo.requests_total(&[&service]).ok() == Some(summary.done)
    });
    let ok = lo.requests_total(&[&service, "grpc_response_status=\"0\""])?;
    assert!(
        counted && ok == summary.done,
        "{case}: h2load finished {} calls; strait counted {} with grpc-status 0 of {}",
        summary.done,
        ok,
        lo.requests_total(&[&service])?
    );
    fs::remove_file(&request)?;
    Ok(())
}

/// Calls each replica served in the next [`PHASE`] calls, after [`SETTLE`] calls that may
/// still have been routed before the last change.
fn phase(lo: &mut Loopback, load: &ChildProcess) -> Result<BTreeMap<String, u64>> {
    lo.served();
    count_calls(lo, load, SETTLE)?;
    count_calls(lo, load, PHASE)
}

/// Waits until the replicas have served at least `calls` calls; their counts.
fn count_calls(
    lo: &mut Loopback,
    load: &ChildProcess,
    calls: u64,
) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    let enough = wait_until(PHASE_TIMEOUT, || {
        for (replica, served) in lo.served() {
            *counts.entry(replica).or_default() += served;
        }
        counts.values().sum::<u64>() >= calls || load.try_wait().is_ok_and(|s| s.is_some())
    });
    ensure!(
        enough && counts.values().sum::<u64>() >= calls,
        "the replicas served {counts:?}, not {calls} calls, within {PHASE_TIMEOUT:?} \
         (is h2load still running?){}",
        load.stderr_report()
    );
    Ok(counts)
}

/// v1's share of the calls in per mille is within `range`, and only v1 and v2 served any.
fn assert_share(shares: &BTreeMap<String, u64>, range: std::ops::RangeInclusive<u64>, case: &str) {
    let v1 = shares.get(V1).copied().unwrap_or(0);
    let v2 = shares.get(V2).copied().unwrap_or(0);
    let total: u64 = shares.values().sum();
    assert_eq!(v1 + v2, total, "{case}: {shares:?}");
    let per_mille = v1 * 1000 / total;
    assert!(
        range.contains(&per_mille),
        "{case}: v1 served {per_mille} ‰, not {range:?}: {shares:?}"
    );
}

/// h2load's summary once it exits on its own.
fn finish(load: &mut ChildProcess) -> Result<h2load::Summary> {
    let mut output = String::new();
    while let Some(line) = load.next_line(LOAD_TIMEOUT)? {
        output += &line;
        output.push('\n');
    }
    let status = load.wait_timeout(Duration::from_secs(5))?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "h2load: {status:?}\n{output}{}",
        load.stderr_report()
    );
    h2load::Summary::parse(&output)
}
