//! Servers and clients for the lab, one line of output per event.
//!
//! `serve` prints `listening ADDR` once bound (readiness), then per connection reads the request
//! until the client half-closes and answers `NAME received N`. `http-serve` is the HTTP/1.1 and
//! HTTP/2 echo server of the HTTP tests (`strait_tests::web`), with the same readiness line. `call` prints one JSON line per
//! call, with the peer address the client saw (`getpeername()`), so tests and the lab can tell
//! which replica answered and what the application observed. `bench` is the load generator of
//! `cargo xtask bench`: short connections from many workers, one JSON summary line.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    ops::Range,
    process::ExitCode,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "TCP servers and clients for strait's lab")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer each connection with `NAME received N` once the client half-closes.
    Serve {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        name: String,
    },
    /// Answer HTTP/1.1 and HTTP/2 requests as `strait_tests::web::EchoServer` does.
    HttpServe {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        name: String,
    },
    /// Send N bytes, half-close, read the reply; one JSON line per call.
    Call {
        #[arg(long)]
        to: SocketAddr,
        /// Request bytes per call.
        #[arg(long, default_value_t = 0)]
        send: usize,
        /// Calls to make; 0 = until killed.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Milliseconds from the start of one call to the start of the next.
        #[arg(long, default_value_t = 0)]
        every: u64,
        /// Milliseconds for the connect and for each read or write.
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
    },
    /// Load: WORKERS loops of short connections (connect, send, half-close, read to EOF). Prints
    /// `measuring` when the warm-up ends, then one JSON line: connections, errors, conns_per_s,
    /// and p50_us/p99_us from connect start to the first reply byte.
    Bench {
        #[arg(long)]
        to: SocketAddr,
        /// Connections in flight at any time.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// Seconds of load before the measurement.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds measured.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Request bytes per connection.
        #[arg(long, default_value_t = 64)]
        send: usize,
        /// Milliseconds a connection may take, connect to EOF, before it counts as an error.
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Serve { listen, name } => serve(listen, &name),
        Cmd::HttpServe { listen, name } => http_serve(listen, &name),
        Cmd::Call {
            to,
            send,
            count,
            every,
            timeout,
        } => {
            let plan = Plan {
                to,
                send,
                timeout: Duration::from_millis(timeout),
            };
            return call_repeatedly(&plan, count, Duration::from_millis(every));
        }
        Cmd::Bench {
            to,
            workers,
            warmup,
            duration,
            send,
            timeout,
        } => bench(Load {
            to,
            workers,
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            request: request(send),
            timeout: Duration::from_millis(timeout),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strait-lab-agent: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One thread running a task per connection: benchmarks pin the backend to the client's core, and
/// at tens of thousands of connections a second, a thread per connection would be the bottleneck.
fn serve(listen: SocketAddr, name: &str) -> io::Result<()> {
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        say(&format!("listening {}", listener.local_addr()?));
        accept_loop(listener, name.into()).await
    })
}

fn http_serve(listen: SocketAddr, name: &str) -> io::Result<()> {
    runtime()?.block_on(async {
        let server = strait_tests::web::EchoServer::bind(listen, name, None).await?;
        say(&format!("listening {}", server.addr));
        std::future::pending().await
    })
}

async fn accept_loop(listener: tokio::net::TcpListener, name: Arc<str>) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let name = name.clone();
        tokio::spawn(async move {
            if let Err(err) = answer(stream, &name).await {
                eprintln!("strait-lab-agent: {peer}: {err}");
            }
        });
    }
}

/// Reads until EOF, then answers with the byte count.
async fn answer(mut stream: tokio::net::TcpStream, name: &str) -> io::Result<()> {
    let mut buf = [0; 4096];
    let mut received = 0;
    loop {
        match stream.read(&mut buf).await? {
            0 => break,
            n => received += n,
        }
    }
    stream
        .write_all(format!("{name} received {received}\n").as_bytes())
        .await
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

struct Plan {
    to: SocketAddr,
    send: usize,
    timeout: Duration,
}

/// Succeeds when every call did.
fn call_repeatedly(plan: &Plan, count: u64, every: Duration) -> ExitCode {
    let mut all_ok = true;
    let mut n = 0;
    while count == 0 || n < count {
        let started = Instant::now();
        let report = call(plan, started);
        all_ok &= report["ok"] == true;
        say(&report.to_string());
        n += 1;
        if count == 0 || n < count {
            thread::sleep(every.saturating_sub(started.elapsed()));
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn call(plan: &Plan, started: Instant) -> Value {
    match exchange(plan, started) {
        Ok(report) => report,
        Err(err) => json!({
            "ok": false,
            "to": plan.to.to_string(),
            "error": err.to_string(),
            "after_us": micros(started.elapsed()),
        }),
    }
}

fn exchange(plan: &Plan, started: Instant) -> io::Result<Value> {
    let mut stream = TcpStream::connect_timeout(&plan.to, plan.timeout)?;
    let connect_us = micros(started.elapsed());
    // Once both sides have closed, getpeername() fails: ask while connected.
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    stream.set_read_timeout(Some(plan.timeout))?;
    stream.set_write_timeout(Some(plan.timeout))?;
    stream.write_all(&request(plan.send))?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(json!({
        "ok": true,
        "to": plan.to.to_string(),
        "peer": peer.to_string(),
        "local": local.to_string(),
        "sent": plan.send,
        "received": reply.len(),
        "reply": String::from_utf8_lossy(&reply).trim_end(),
        "connect_us": connect_us,
        "total_us": micros(started.elapsed()),
    }))
}

fn request(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

struct Load {
    to: SocketAddr,
    workers: usize,
    warmup: Duration,
    duration: Duration,
    request: Vec<u8>,
    timeout: Duration,
}

/// What the workers saw in the measurement window.
#[derive(Default)]
struct Tally {
    /// Connect start to first reply byte, in microseconds, per successful connection.
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// One thread for all workers: the benchmark pins the client to one core, where an event loop
/// costs far less per connection than threads taking turns.
fn bench(load: Load) -> io::Result<()> {
    let summary = runtime()?.block_on(run_load(Arc::new(load)));
    say(&summary.to_string());
    Ok(())
}

async fn run_load(load: Arc<Load>) -> Value {
    let start = Instant::now() + load.warmup;
    let window = start..start + load.duration;
    let workers: Vec<_> = (0..load.workers)
        .map(|_| tokio::spawn(worker(load.clone(), window.clone())))
        .collect();
    tokio::time::sleep_until(start.into()).await;
    // The caller samples the proxy's CPU time at this line and at the summary.
    say("measuring");
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.expect("a load worker panicked");
        total.errors += tally.errors;
        total.first_error = total.first_error.or(tally.first_error);
        total.latencies_us.extend(tally.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let seconds = load.duration.as_secs_f64();
    json!({
        "to": load.to.to_string(),
        "workers": load.workers,
        "seconds": seconds,
        "connections": total.latencies_us.len(),
        "errors": total.errors,
        "first_error": total.first_error,
        "conns_per_s": total.latencies_us.len() as f64 / seconds,
        "p50_us": percentile(&total.latencies_us, 50.0),
        "p99_us": percentile(&total.latencies_us, 99.0),
    })
}

async fn worker(load: Arc<Load>, window: Range<Instant>) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let started = Instant::now();
        let outcome =
            tokio::time::timeout(load.timeout, short_connection(load.to, &load.request)).await;
        // A connection counts in the window it ended in; warm-up ones are not measured.
        if !window.contains(&Instant::now()) {
            continue;
        }
        let error = match outcome {
            Ok(Ok(first_byte)) => {
                tally.latencies_us.push(micros(first_byte - started));
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no EOF within {:?}", load.timeout),
        };
        tally.errors += 1;
        tally.first_error.get_or_insert(error);
    }
    tally
}

/// Connects, sends, half-closes and reads to EOF; returns when the first reply byte came.
async fn short_connection(to: SocketAddr, request: &[u8]) -> io::Result<Instant> {
    let mut stream = tokio::net::TcpStream::connect(to).await?;
    stream.write_all(request).await?;
    stream.shutdown().await?;
    let mut buf = [0; 1024];
    if stream.read(&mut buf).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed without a reply",
        ));
    }
    let first_byte = Instant::now();
    while stream.read(&mut buf).await? > 0 {}
    Ok(first_byte)
}

/// Nearest rank of `sorted`; `None` without samples.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().try_into().unwrap_or(u64::MAX)
}

/// One line to stdout, flushed: readers wait for it.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    // A reader that went away is no reason to stop serving.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=200).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(100));
        assert_eq!(percentile(&sorted, 99.0), Some(198));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[7], 0.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
