//! Which HTTP a client speaks, from its first bytes: the HTTP/2 client preface (prior
//! knowledge, as gRPC and h2c clients send it) or anything else, HTTP/1.x. The bytes read to
//! tell are put back in front of the stream for the server that then serves it.

use std::{io::Cursor, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, Chain, Join},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP clients speak first, at once. Envoy's listener filters (which detect the protocol for
/// Istio) give up after the same 15 s.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientProtocol {
    Http1,
    Http2,
}

/// A client connection with its first bytes put back.
pub type Rewound = Join<Chain<Cursor<Vec<u8>>, OwnedReadHalf>, OwnedWriteHalf>;

/// Reads until the first bytes tell the protocol: they stop matching the HTTP/2 preface, or
/// match all of it. `None` when the client closes or says nothing for `FIRST_BYTES_TIMEOUT`.
pub async fn sniff(mut stream: TcpStream) -> Option<(ClientProtocol, Rewound)> {
    let mut first = Vec::with_capacity(H2_PREFACE.len());
    let told = tokio::time::timeout(
        FIRST_BYTES_TIMEOUT,
        read_until_told(&mut stream, &mut first),
    );
    let protocol = told.await.ok()?.ok()??;
    let (read, write) = stream.into_split();
    Some((
        protocol,
        tokio::io::join(Cursor::new(first).chain(read), write),
    ))
}

async fn read_until_told(
    stream: &mut (impl AsyncRead + Unpin),
    first: &mut Vec<u8>,
) -> std::io::Result<Option<ClientProtocol>> {
    let mut chunk = [0u8; H2_PREFACE.len()];
    loop {
        if let Some(protocol) = protocol_of(first) {
            return Ok(Some(protocol));
        }
        // No further than the preface: the rest is the server's to read.
        let read = stream
            .read(&mut chunk[..H2_PREFACE.len() - first.len()])
            .await?;
        if read == 0 {
            return Ok(None);
        }
        first.extend_from_slice(&chunk[..read]);
    }
}

/// `None` while `first` is a strict prefix of the preface: more bytes are needed.
fn protocol_of(first: &[u8]) -> Option<ClientProtocol> {
    if !H2_PREFACE.starts_with(first) {
        Some(ClientProtocol::Http1)
    } else if first.len() == H2_PREFACE.len() {
        Some(ClientProtocol::Http2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_off_the_preface_tells_http1() {
        assert_eq!(protocol_of(b""), None);
        assert_eq!(protocol_of(b"G"), Some(ClientProtocol::Http1));
        assert_eq!(protocol_of(b"P"), None);
        assert_eq!(protocol_of(b"PO"), Some(ClientProtocol::Http1));
        assert_eq!(protocol_of(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(protocol_of(H2_PREFACE), Some(ClientProtocol::Http2));
    }

    #[tokio::test]
    async fn bytes_read_to_tell_are_put_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, expected) in [
            (&b"POST / HTTP/1.1\r\n"[..], ClientProtocol::Http1),
            (
                &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04"[..],
                ClientProtocol::Http2,
            ),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.set_nodelay(true).unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let sniffed = tokio::spawn(sniff(accepted));
            // Byte by byte while the sniffer reads: it must wait for as many as it needs.
            for byte in sent {
                tokio::io::AsyncWriteExt::write_all(&mut client, &[*byte])
                    .await
                    .unwrap();
            }
            drop(client);
            let (protocol, mut rewound) = sniffed.await.unwrap().unwrap();
            assert_eq!(protocol, expected);
            let mut all = Vec::new();
            rewound.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, sent);
        }
    }

    #[tokio::test]
    async fn a_client_that_closes_at_once_is_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        drop(client);
        assert!(sniff(accepted).await.is_none());
    }
}
