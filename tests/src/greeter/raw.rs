//! A gRPC call made with a bare HTTP/2 client (the `h2` crate), to see what a server or proxy
//! put in which frame: a gRPC library hides whether the status came Trailers-Only or after
//! headers.

use std::{net::SocketAddr, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use percent_encoding::percent_decode_str;
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use super::{proto::HelloRequest, Method};

/// One request: a path, its messages, its metadata.
#[derive(Clone, Debug)]
pub struct RawCall {
    /// `:authority`; the address called when `None`.
    pub authority: Option<String>,
    pub path: String,
    /// Protobuf messages, each sent as one gRPC length-prefixed message.
    pub messages: Vec<Bytes>,
    pub metadata: Vec<(String, String)>,
}

/// A response as it came off the wire.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The response HEADERS frame ended the stream: a Trailers-Only response.
    pub trailers_only: bool,
    /// The DATA payload, all frames together.
    pub data: Bytes,
    /// The trailing HEADERS frame; `None` for Trailers-Only.
    pub trailers: Option<HeaderMap>,
}

impl RawCall {
    /// `SayHello` for `name`.
    pub fn say_hello(name: &str) -> Self {
        let hello = HelloRequest {
            name: name.to_owned(),
        };
        Self {
            authority: None,
            path: Method::Unary.path(),
            messages: vec![hello.encode_to_vec().into()],
            metadata: Vec::new(),
        }
    }

    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Makes the call on a new connection to `to`, giving up after `timeout`.
    pub fn send(&self, to: SocketAddr, timeout: Duration) -> Result<RawResponse> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(async { tokio::time::timeout(timeout, self.exchange(to)).await })
            .with_context(|| format!("no complete response from {to} within {timeout:?}"))?
    }

    async fn exchange(&self, to: SocketAddr) -> Result<RawResponse> {
        let tcp = TcpStream::connect(to)
            .await
            .with_context(|| format!("connecting to {to}"))?;
        self.exchange_on(tcp, &to.to_string()).await
    }

    /// Makes the call over `io` (say a TLS stream), as HTTP/2 with prior knowledge;
    /// `default_authority` when the call names none.
    pub async fn exchange_on<S>(&self, io: S, default_authority: &str) -> Result<RawResponse>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (client, connection) = h2::client::handshake(io).await?;
        tokio::spawn(connection);
        let mut client = client.ready().await?;

        let authority = self
            .authority
            .clone()
            .unwrap_or_else(|| default_authority.to_owned());
        let mut request = Request::post(format!("http://{authority}{}", self.path))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in &self.metadata {
            request = request.header(name, value);
        }
        let (response, mut send) = client.send_request(request.body(())?, false)?;
        let mut body = BytesMut::new();
        for message in &self.messages {
            body.put_u8(0); // not compressed
            body.put_u32(message.len().try_into()?);
            body.put_slice(message);
        }
        send.reserve_capacity(body.len());
        send.send_data(body.freeze(), true)?;

        let (parts, mut recv) = response.await?.into_parts();
        let trailers_only = recv.is_end_stream();
        let mut data = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            recv.flow_control().release_capacity(chunk.len())?;
            data.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await?;
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            trailers_only,
            data: data.freeze(),
            trailers,
        })
    }
}

impl RawResponse {
    /// `grpc-status` from the trailers, else from the headers.
    pub fn grpc_status(&self) -> Option<i32> {
        self.status_field("grpc-status")?.parse().ok()
    }

    /// `grpc-message`, percent-decoded, from the trailers, else from the headers.
    pub fn grpc_message(&self) -> Option<String> {
        let encoded = self.status_field("grpc-message")?;
        Some(percent_decode_str(encoded).decode_utf8_lossy().into_owned())
    }

    fn status_field(&self, name: &str) -> Option<&str> {
        let value = match &self.trailers {
            Some(trailers) => trailers.get(name),
            None => self.headers.get(name),
        };
        value?.to_str().ok()
    }

    /// A header of the response headers, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A trailer, as text.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        let value: &HeaderValue = self.trailers.as_ref()?.get(name)?;
        value.to_str().ok()
    }

    /// The gRPC messages in [`data`](Self::data), in order.
    pub fn messages(&self) -> Result<Vec<Bytes>> {
        let mut data = self.data.clone();
        let mut messages = Vec::new();
        while data.has_remaining() {
            ensure!(data.remaining() >= 5, "a cut message prefix");
            if data.get_u8() != 0 {
                bail!("a compressed message");
            }
            let len = data.get_u32() as usize;
            ensure!(data.remaining() >= len, "a message cut short");
            messages.push(data.split_to(len));
        }
        Ok(messages)
    }
}
