//! Servers and clients for the lab: plain blocking TCP, one line of output per event.
//!
//! `serve` prints `listening ADDR` once bound (readiness), then per connection reads the request
//! until the client half-closes and answers `NAME received N`. `call` prints one JSON line per
//! call, with the peer address the client saw (`getpeername()`), so tests and the lab can tell
//! which replica answered and what the application observed.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    process::ExitCode,
    thread,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

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
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Serve { listen, name } => serve(listen, &name),
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strait-lab-agent: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listen: SocketAddr, name: &str) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    say(&format!("listening {}", listener.local_addr()?));
    for stream in listener.incoming() {
        let stream = stream?;
        let name = name.to_owned();
        thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map_or("?".into(), |peer| peer.to_string());
            match answer(stream, &name) {
                Ok(received) => say(&format!("served {peer} {received}")),
                Err(err) => eprintln!("strait-lab-agent: {peer}: {err}"),
            }
        });
    }
    Ok(())
}

/// Reads until EOF, then answers with the byte count.
fn answer(mut stream: TcpStream, name: &str) -> io::Result<u64> {
    let received = io::copy(&mut stream, &mut io::sink())?;
    stream.write_all(format!("{name} received {received}\n").as_bytes())?;
    Ok(received)
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
    let request: Vec<u8> = (0..plan.send).map(|i| (i % 251) as u8).collect();
    stream.write_all(&request)?;
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

fn micros(elapsed: Duration) -> u64 {
    elapsed.as_micros().try_into().unwrap_or(u64::MAX)
}

/// One line to stdout, flushed: readers wait for it.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    // A reader that went away is no reason to stop serving.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
