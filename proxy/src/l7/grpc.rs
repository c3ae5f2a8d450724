//! gRPC on the wire: status codes, and the trailers-only responses strait answers with when it
//! cannot get a response from upstream (every failure is a proper gRPC response).

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};

use super::ProxyBody;

/// The gRPC status codes strait produces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Cancelled = 1,
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
}

/// Whether a request is gRPC (`content-type: application/grpc[+proto|;...]`).
pub fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/grpc") && !ct.starts_with("application/grpc-web")
        })
}

/// The `grpc-status` in response headers (trailers-only) or trailers.
pub fn status(headers: &http::HeaderMap) -> Option<u16> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// A trailers-only response: HTTP 200, `grpc-status` and `grpc-message` in the only HEADERS
/// frame, which ends the stream.
pub fn trailers_only(code: Code, message: &str) -> Response<ProxyBody> {
    trailers_only_code(code as u16, message)
}

/// [`trailers_only`] with any status code.
pub fn trailers_only_code(code: u16, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", percent_encode(message));
    response
}

/// The trailers that end a gRPC response whose deadline passed while it streamed.
pub fn timeout_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert(
        "grpc-status",
        HeaderValue::from(Code::DeadlineExceeded as u16),
    );
    trailers.insert("grpc-message", percent_encode(TIMEOUT_MESSAGE));
    trailers
}

/// Envoy's words for it.
pub const TIMEOUT_MESSAGE: &str = "upstream request timeout";

/// The HTTP answer to a non-gRPC request on an HTTP/2 port, as Envoy gives it.
pub fn http_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = http_body_util::Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn empty() -> ProxyBody {
    BoxBody::new(Empty::new().map_err(|never| match never {}))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec): printable ASCII except `%` as is.
fn percent_encode(message: &str) -> HeaderValue {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&encoded).expect("percent-encoded text is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_only_carries_the_status_and_an_encoded_message() {
        let response = trailers_only(Code::Unavailable, "no healthy upstream: 100% ejected\n");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(
            response.headers()["grpc-message"],
            "no healthy upstream: 100%25 ejected%0A"
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
    }

    #[test]
    fn recognizes_grpc_but_not_grpc_web() {
        let request = |ct: &str| {
            Request::builder()
                .header(header::CONTENT_TYPE, ct)
                .body(())
                .unwrap()
        };
        assert!(is_grpc(&request("application/grpc")));
        assert!(is_grpc(&request("application/grpc+proto")));
        assert!(!is_grpc(&request("application/grpc-web+proto")));
        assert!(!is_grpc(&request("application/json")));
    }
}
