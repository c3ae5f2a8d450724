//! The command lines of `strait-greeter serve|call`, shared by the binary (which parses them) and
//! the tests (which build them): one definition, and a round-trip test keeps both directions in
//! step. The Python scripts take the same flags.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, ValueEnum};
use tonic::Code;

/// `serve`: an h2c gRPC server of `helloworld.Greeter`.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Where to listen; port 0 picks a free port (`listening ADDR` says which).
    #[arg(long)]
    pub listen: SocketAddr,
    /// This instance's name, in every reply ("NAME: Hello ...") and in `x-instance` metadata.
    #[arg(long)]
    pub name: String,
    /// Fail calls with this gRPC status code (1-16), after reading the request.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=16))]
    pub fail_status: Option<i32>,
    /// Fail only every Nth call the server receives (counting from 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_every: u64,
    /// Where the failure's grpc-status goes.
    #[arg(long, value_enum, default_value_t = FailIn::Trailers)]
    pub fail_in: FailIn,
    /// Milliseconds to wait before each reply message (and before a failure).
    #[arg(long, default_value_t = 0)]
    pub delay: u64,
}

/// Where a server puts an injected failure's status.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailIn {
    /// Trailers-Only: one HEADERS frame with `:status 200` and `grpc-status`, ending the stream.
    Headers,
    /// HEADERS (`:status 200`, no grpc-status), no DATA, then trailers with `grpc-status`: what a
    /// server that fails after it began answering sends.
    Trailers,
    /// HEADERS, then RST_STREAM (INTERNAL_ERROR) instead of a status: a server that crashed
    /// mid-call, or a proxy that gave up on it.
    Reset,
}

/// `call`: N calls over one HTTP/2 connection; a JSON line per call, then a summary line.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct CallOptions {
    /// The address to connect to.
    #[arg(long)]
    pub to: SocketAddr,
    /// The `:authority` of every request (default: the `--to` address).
    #[arg(long)]
    pub authority: Option<String>,
    /// Calls to make.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Calls in flight at once (all on the one connection).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Milliseconds each call may take: sent as `grpc-timeout` and enforced by the client.
    #[arg(long)]
    pub deadline: Option<u64>,
    /// The name in every request.
    #[arg(long, default_value = "world")]
    pub name: String,
    #[arg(long, value_enum, default_value_t = Method::Unary)]
    pub method: Method,
    /// Pad the name with '.' to this many bytes (a request message is a few bytes more).
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Messages per streaming call: replies asked for (server-stream), requests sent
    /// (client-stream), request/reply round trips (bidi).
    #[arg(long, default_value_t = 3)]
    pub messages: u32,
    /// `KEY=VALUE` metadata sent with every call (repeatable): what header routes match.
    #[arg(long = "metadata", value_parser = parse_metadata)]
    pub metadata: Vec<(String, String)>,
    /// Call over TLS (ALPN h2), trusting only the CA certificates in this PEM file.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// With `--tls-ca`: the SNI sent and the name the certificate must carry.
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

/// The Greeter's methods, one per gRPC call kind.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

impl ServeOptions {
    /// A server that answers every call, at once.
    pub fn new(listen: SocketAddr, name: &str) -> Self {
        Self {
            listen,
            name: name.to_owned(),
            fail_status: None,
            fail_every: 1,
            fail_in: FailIn::Trailers,
            delay: 0,
        }
    }

    /// Fail every `every`th call with `code`, the status placed as `fail_in` says.
    pub fn failing(mut self, code: Code, every: u64, fail_in: FailIn) -> Self {
        self.fail_status = Some(code as i32);
        self.fail_every = every;
        self.fail_in = fail_in;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay.as_millis() as u64;
        self
    }

    /// The flags after `serve`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            flag("listen", self.listen),
            flag("name", &self.name),
            flag("fail-every", self.fail_every),
            flag("fail-in", value_name(self.fail_in)),
            flag("delay", self.delay),
        ];
        args.extend(self.fail_status.map(|code| flag("fail-status", code)));
        args
    }
}

impl CallOptions {
    /// One unary call to `to`, named "world", with no deadline.
    pub fn new(to: SocketAddr) -> Self {
        Self {
            to,
            authority: None,
            count: 1,
            concurrency: 1,
            deadline: None,
            name: "world".into(),
            method: Method::Unary,
            size: 0,
            messages: 3,
            metadata: Vec::new(),
            tls_ca: None,
            tls_server_name: None,
        }
    }

    /// Calls over TLS to a server whose certificate for `server_name` chains to `ca` (PEM).
    pub fn tls(mut self, ca: &Path, server_name: &str) -> Self {
        self.tls_ca = Some(ca.to_owned());
        self.tls_server_name = Some(server_name.to_owned());
        self
    }

    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline.as_millis() as u64);
        self
    }

    /// Sends `key: value` metadata with every call.
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The flags after `call`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            flag("to", self.to),
            flag("count", self.count),
            flag("concurrency", self.concurrency),
            flag("name", &self.name),
            flag("method", value_name(self.method)),
            flag("size", self.size),
            flag("messages", self.messages),
        ];
        args.extend(self.authority.as_ref().map(|a| flag("authority", a)));
        args.extend(self.deadline.map(|ms| flag("deadline", ms)));
        args.extend(
            self.metadata
                .iter()
                .map(|(key, value)| flag("metadata", format!("{key}={value}"))),
        );
        args.extend(self.tls_ca.as_ref().map(|ca| flag("tls-ca", ca.display())));
        args.extend(
            self.tls_server_name
                .as_ref()
                .map(|name| flag("tls-server-name", name)),
        );
        args
    }

    /// The name each request carries: `--name` padded to `--size` bytes.
    pub fn request_name(&self) -> String {
        let mut name = self.name.clone();
        let padding = self.size.saturating_sub(name.len());
        name.extend(std::iter::repeat_n('.', padding));
        name
    }
}

impl Method {
    /// The method's name in `helloworld.Greeter`.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Method::Unary => "SayHello",
            Method::ServerStream => "SayHelloServerStream",
            Method::ClientStream => "SayHelloClientStream",
            Method::Bidi => "SayHelloBidi",
        }
    }

    /// The request path, `/helloworld.Greeter/<method>`.
    pub fn path(self) -> String {
        format!("/helloworld.Greeter/{}", self.grpc_name())
    }
}

/// `KEY=VALUE`, split at the first '='; gRPC metadata keys are lowercase.
fn parse_metadata(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_ascii_lowercase(), value.to_owned())),
        _ => Err(format!("{pair:?} is not KEY=VALUE")),
    }
}

/// `--name=value` in one argument, so a value starting with '-' is never taken for a flag.
fn flag(name: &str, value: impl std::fmt::Display) -> String {
    format!("--{name}={value}")
}

fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .expect("no variant is skipped")
        .get_name()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    enum Cli {
        Serve(ServeOptions),
        Call(CallOptions),
    }

    fn parse(subcommand: &str, args: Vec<String>) -> Cli {
        Cli::try_parse_from(
            ["greeter".to_owned(), subcommand.to_owned()]
                .into_iter()
                .chain(args),
        )
        .unwrap_or_else(|err| panic!("{err}"))
    }

    #[test]
    fn serve_args_round_trip() {
        let addr = "127.0.0.1:0".parse().unwrap();
        for options in [
            ServeOptions::new(addr, "-a"),
            ServeOptions::new(addr, "b")
                .failing(Code::Unavailable, 3, FailIn::Headers)
                .delayed(Duration::from_millis(20)),
        ] {
            let Cli::Serve(parsed) = parse("serve", options.args()) else {
                panic!("not serve")
            };
            assert_eq!(parsed, options);
        }
    }

    #[test]
    fn call_args_round_trip() {
        let options = CallOptions {
            authority: Some("greeter.default.svc.cluster.local:80".into()),
            concurrency: 4,
            name: "-x".into(),
            size: 100,
            messages: 7,
            metadata: vec![
                ("x-canary".into(), "true".into()),
                ("x-b".into(), "1=2".into()),
            ],
            ..CallOptions::new("10.0.0.1:80".parse().unwrap())
                .method(Method::ClientStream)
                .count(9)
                .deadline(Duration::from_millis(250))
        };
        let Cli::Call(parsed) = parse("call", options.args()) else {
            panic!("not call")
        };
        assert_eq!(parsed, options);
        let defaults = CallOptions::new(options.to);
        let Cli::Call(parsed) = parse("call", vec![format!("--to={}", options.to)]) else {
            panic!("not call")
        };
        assert_eq!(parsed, defaults);
    }

    #[test]
    fn names_are_padded_to_size() {
        let options = CallOptions {
            name: "ab".into(),
            size: 5,
            ..CallOptions::new("127.0.0.1:1".parse().unwrap())
        };
        assert_eq!(options.request_name(), "ab...");
        assert_eq!(
            CallOptions { size: 1, ..options }.request_name(),
            "ab",
            "never truncated"
        );
    }
}
