//! `strait-greeter serve|call`: the Rust Greeter, a gRPC (h2c) server and client of
//! `helloworld.Greeter` for strait's tests. See `strait_tests::greeter`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strait_tests::greeter::{self, CallOptions, ServeOptions};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "gRPC Greeter server and client for strait's tests")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve helloworld.Greeter; prints `listening ADDR` once bound, then a JSON line per call.
    Serve(ServeOptions),
    /// Make calls over one HTTP/2 connection; prints a JSON line per call, then a summary line.
    /// Exits 0 when every call succeeded, 1 otherwise.
    Call(CallOptions),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Serve(options) => serve(options).await,
        Cmd::Call(options) => call(options).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("strait-greeter: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn serve(options: ServeOptions) -> Result<ExitCode> {
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    // The readiness line; println! flushes it (stdout is line-buffered).
    println!("listening {}", listener.local_addr()?);
    greeter::serve(listener, &options).await?;
    Ok(ExitCode::SUCCESS)
}

async fn call(options: CallOptions) -> Result<ExitCode> {
    let summary = greeter::call(&options, greeter::emit).await?;
    greeter::emit(&summary);
    Ok(if summary.ok == summary.calls {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
