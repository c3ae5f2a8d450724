//! The Greeter client: N calls of one kind over one HTTP/2 connection (one tonic `Channel`,
//! shared by every call in flight), each reported as a [`CallLine`].

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    metadata::{MetadataKey, MetadataMap, MetadataValue},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
    Code, Request, Status,
};

use super::{
    proto::{greeter_client::GreeterClient, HelloRequest, HelloStreamRequest},
    report::{preview, CallLine, CallSummary},
    CallOptions, Method, INSTANCE_HEADER, MAX_MESSAGE_BYTES,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes the calls `options` asks for, `options.concurrency` at a time, passing each line to
/// `report` as its call ends; returns their summary.
pub async fn call(options: &CallOptions, mut report: impl FnMut(&CallLine)) -> Result<CallSummary> {
    let client = GreeterClient::new(channel(options)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let plan = Arc::new(Plan {
        metadata: metadata(options)?,
        method: options.method,
        name: options.request_name(),
        messages: options.messages,
        deadline: options.deadline.map(Duration::from_millis),
    });
    let started = Arc::new(AtomicU64::new(0));
    let (lines, mut done) = mpsc::unbounded_channel();
    for _ in 0..options.concurrency.min(options.count) {
        let (client, plan, started, lines) =
            (client.clone(), plan.clone(), started.clone(), lines.clone());
        let count = options.count;
        tokio::spawn(async move {
            while started.fetch_add(1, Ordering::Relaxed) < count {
                if lines.send(plan.call(client.clone()).await).is_err() {
                    break;
                }
            }
        });
    }
    drop(lines);
    let mut summary = CallSummary {
        summary: true,
        ..CallSummary::default()
    };
    while let Some(line) = done.recv().await {
        report(&line);
        summary.add(&line);
    }
    Ok(summary)
}

/// One channel is one HTTP/2 connection, made on the first call (so a refused connect is a
/// call's UNAVAILABLE, not the client's error). `--authority` becomes every request's
/// `:authority`.
fn channel(options: &CallOptions) -> Result<Channel> {
    let scheme = if options.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", options.to))?
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(ca) = &options.tls_ca {
        let pem = std::fs::read(ca).with_context(|| format!("--tls-ca {}", ca.display()))?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        if let Some(name) = &options.tls_server_name {
            tls = tls.domain_name(name);
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    if let Some(authority) = &options.authority {
        let origin = format!("http://{authority}")
            .parse()
            .with_context(|| format!("--authority {authority}"))?;
        endpoint = endpoint.origin(origin);
    }
    Ok(endpoint.connect_lazy())
}

/// `--metadata`, checked once: a key or value gRPC cannot send is the client's error.
fn metadata(options: &CallOptions) -> Result<MetadataMap> {
    let mut metadata = MetadataMap::new();
    for (key, value) in &options.metadata {
        let name = MetadataKey::from_bytes(key.as_bytes())
            .with_context(|| format!("--metadata key {key:?}"))?;
        let value = MetadataValue::try_from(value.as_str())
            .with_context(|| format!("--metadata {key}: value {value:?}"))?;
        metadata.append(name, value);
    }
    Ok(metadata)
}

struct Plan {
    metadata: MetadataMap,
    method: Method,
    name: String,
    messages: u32,
    deadline: Option<Duration>,
}

/// What a call got before it ended, failed or not.
#[derive(Default)]
struct Seen {
    instance: Option<String>,
    replies: u64,
    bytes: u64,
    last: String,
}

impl Plan {
    async fn call(&self, mut client: GreeterClient<Channel>) -> CallLine {
        let started = Instant::now();
        let mut seen = Seen::default();
        let exchange = self.exchange(&mut client, &mut seen);
        let result = match self.deadline {
            // Dropping the call at the deadline resets its stream, as grpc clients do.
            Some(deadline) => tokio::time::timeout(deadline, exchange)
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("Deadline Exceeded"))),
            None => exchange.await,
        };
        let elapsed = started.elapsed();
        let result = result.map_err(|status| match self.deadline {
            // tonic's channel enforces the same grpc-timeout and calls it CANCELLED ("Timeout
            // expired"); grpc-go and grpcio call an expired deadline DEADLINE_EXCEEDED.
            Some(deadline) if status.code() == Code::Cancelled && elapsed >= deadline => {
                Status::with_metadata(
                    Code::DeadlineExceeded,
                    status.message(),
                    status.metadata().clone(),
                )
            }
            _ => status,
        });
        let elapsed_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        match result {
            Ok(()) => CallLine {
                ok: true,
                code: Code::Ok as i32,
                message: preview(&seen.last),
                instance: seen.instance,
                elapsed_ms,
                replies: seen.replies,
                bytes: seen.bytes,
            },
            Err(status) => CallLine {
                ok: false,
                code: status.code() as i32,
                message: preview(status.message()),
                instance: seen.instance.or_else(|| instance(status.metadata())),
                elapsed_ms,
                replies: seen.replies,
                bytes: seen.bytes,
            },
        }
    }

    async fn exchange(
        &self,
        client: &mut GreeterClient<Channel>,
        seen: &mut Seen,
    ) -> Result<(), Status> {
        let hello = || HelloRequest {
            name: self.name.clone(),
        };
        match self.method {
            Method::Unary => {
                let response = client.say_hello(self.request(hello())).await?;
                seen.headers(response.metadata());
                seen.reply(response.into_inner().message);
            }
            Method::ServerStream => {
                let request = HelloStreamRequest {
                    name: self.name.clone(),
                    count: self.messages,
                };
                let response = client
                    .say_hello_server_stream(self.request(request))
                    .await?;
                seen.headers(response.metadata());
                let mut replies = response.into_inner();
                while let Some(reply) = replies.message().await? {
                    seen.reply(reply.message);
                }
            }
            Method::ClientStream => {
                let requests: Vec<_> = (0..self.messages).map(|_| hello()).collect();
                let response = client
                    .say_hello_client_stream(self.request(tokio_stream::iter(requests)))
                    .await?;
                seen.headers(response.metadata());
                seen.reply(response.into_inner().message);
            }
            Method::Bidi => {
                // Ping-pong: each request waits for the previous reply, so a proxy that holds
                // requests until the client half-closes stalls this call.
                let (requests, outbound) = mpsc::channel(1);
                // The first request goes before the response headers are awaited: a server may
                // send none until it has a request.
                if self.messages > 0 {
                    requests.send(hello()).await.expect("the receiver is here");
                }
                let response = client
                    .say_hello_bidi(self.request(ReceiverStream::new(outbound)))
                    .await?;
                seen.headers(response.metadata());
                let mut replies = response.into_inner();
                for sent in 1..=self.messages {
                    let Some(reply) = replies.message().await? else {
                        let expected = self.messages;
                        return Err(Status::internal(format!(
                            "the reply stream ended after {} of {expected} replies",
                            sent - 1
                        )));
                    };
                    seen.reply(reply.message);
                    if sent < self.messages {
                        // A closed request stream means the call is over: its status follows.
                        let _ = requests.send(hello()).await;
                    }
                }
                drop(requests);
                if replies.message().await?.is_some() {
                    return Err(Status::internal("more replies than requests"));
                }
            }
        }
        Ok(())
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        if let Some(deadline) = self.deadline {
            request.set_timeout(deadline);
        }
        request
    }
}

impl Seen {
    fn headers(&mut self, metadata: &MetadataMap) {
        self.instance = instance(metadata);
    }

    fn reply(&mut self, message: String) {
        self.replies += 1;
        self.bytes += message.len() as u64;
        if self.instance.is_none() {
            self.instance = message.split_once(": ").map(|(name, _)| name.to_owned());
        }
        self.last = message;
    }
}

fn instance(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get(INSTANCE_HEADER)?.to_str().ok()?;
    Some(value.to_owned())
}
