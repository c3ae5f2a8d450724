//! The Greeter's gRPC methods and the h2c accept loop.
//!
//! The methods only greet, wait and stream. What concerns the call as a whole — numbering,
//! injected failures and where their status goes, the deadline, `x-instance`, the log line — is
//! done around them by [`wire`], which hands a doomed call its failure through the request's
//! extensions.

use std::{pin::Pin, sync::Arc, time::Duration};

use anyhow::Result;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    proto::{
        greeter_server::{self, GreeterServer},
        HelloReply, HelloRequest, HelloStreamRequest, HelloStreamSummary,
    },
    wire::{self, Injected},
    ServeOptions, MAX_MESSAGE_BYTES,
};

/// Serves `helloworld.Greeter` on `listener` (prior-knowledge HTTP/2, as gRPC clients speak it)
/// until the process ends.
///
/// Not tonic's `Server`: it answers an expired `grpc-timeout` with CANCELLED, and only until the
/// response headers; real servers (grpc-go, C-core) answer DEADLINE_EXCEEDED, also mid-stream.
pub async fn serve(listener: TcpListener, options: &ServeOptions) -> Result<()> {
    let calls = Arc::new(wire::Calls::new(options)?);
    let greeter = GreeterServer::new(Greeter {
        name: options.name.clone().into(),
        delay: Duration::from_millis(options.delay),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Say out of descriptors: the next accept may succeed.
            Err(err) => {
                eprintln!("strait-greeter: accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Best effort: only latency depends on it.
        let _ = stream.set_nodelay(true);
        let (calls, greeter) = (calls.clone(), greeter.clone());
        let service = hyper::service::service_fn(move |request| {
            wire::handle(calls.clone(), greeter.clone(), request)
        });
        tokio::spawn(async move {
            let connection = http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                eprintln!("strait-greeter: connection: {err}");
            }
        });
    }
}

#[derive(Clone)]
struct Greeter {
    name: Arc<str>,
    delay: Duration,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl greeter_server::Greeter for Greeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.fail(injected(&request)).await?;
        self.pause().await;
        Ok(Response::new(self.greet(&request.get_ref().name)))
    }

    type SayHelloServerStreamStream = ReplyStream;

    async fn say_hello_server_stream(
        &self,
        request: Request<HelloStreamRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        self.fail(injected(&request)).await?;
        let HelloStreamRequest { name, count } = request.into_inner();
        let greeter = self.clone();
        Ok(Response::new(Box::pin(async_stream::stream! {
            for _ in 0..count {
                greeter.pause().await;
                yield Ok(greeter.greet(&name));
            }
        })))
    }

    async fn say_hello_client_stream(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloStreamSummary>, Status> {
        let injected = injected(&request);
        let mut requests = request.into_inner();
        let (mut count, mut bytes) = (0, 0);
        while let Some(HelloRequest { name }) = requests.message().await? {
            count += 1;
            bytes += name.len() as u64;
        }
        // Like a unary call, it fails only once the whole request is in.
        self.fail(injected).await?;
        self.pause().await;
        Ok(Response::new(HelloStreamSummary {
            message: format!("{}: received {count} messages, {bytes} bytes", self.name),
            count,
            bytes,
        }))
    }

    type SayHelloBidiStream = ReplyStream;

    async fn say_hello_bidi(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let injected = injected(&request);
        let mut requests = request.into_inner();
        if injected.is_some() {
            // Like every kind, it fails once it has a request. (Failing before would race the
            // client's first write, and grpcio reports a write that fails that way as INTERNAL,
            // not the status.)
            requests.message().await?;
        }
        self.fail(injected).await?;
        let greeter = self.clone();
        Ok(Response::new(Box::pin(async_stream::try_stream! {
            while let Some(HelloRequest { name }) = requests.message().await? {
                greeter.pause().await;
                yield greeter.greet(&name);
            }
        })))
    }
}

impl Greeter {
    fn greet(&self, name: &str) -> HelloReply {
        HelloReply {
            message: format!("{}: Hello {name}", self.name),
        }
    }

    async fn pause(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// Fails a call [`wire`] doomed, after the delay its reply would have had.
    async fn fail(&self, injected: Option<Injected>) -> Result<(), Status> {
        match injected {
            Some(injected) => {
                self.pause().await;
                Err(injected.status())
            }
            None => Ok(()),
        }
    }
}

/// The failure [`wire`] doomed this call to, if any.
fn injected<T>(request: &Request<T>) -> Option<Injected> {
    request.extensions().get::<Injected>().cloned()
}
