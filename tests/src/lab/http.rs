//! A minimal HTTP/1.0 client for readiness and metrics endpoints: no client crate, no pooling,
//! one request per connection.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{bail, Context, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// GET `url` (`http://IP:PORT/PATH`) from the calling thread's network namespace; returns the
/// status code and the body.
pub fn http_get_local(url: &str) -> Result<(u16, String)> {
    let (addr, path) = parse_http_url(url)?;
    get(addr, path).with_context(|| format!("GET {url}"))
}

fn parse_http_url(url: &str) -> Result<(SocketAddr, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http://IP:PORT/PATH"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = authority
        .parse()
        .with_context(|| format!("{url}: the host must be IP:PORT"))?;
    Ok((addr, if path.is_empty() { "/" } else { path }))
}

fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    // HTTP/1.0: the server closes after the response.
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    parse_http_response(&String::from_utf8_lossy(&response))
}

fn parse_http_response(response: &str) -> Result<(u16, String)> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response without a header end")?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    match status.parse() {
        Ok(code) => Ok((code, body.to_owned())),
        Err(_) => bail!(
            "no status code in {:?}",
            head.lines().next().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls() {
        let (addr, path) = parse_http_url("http://127.0.0.1:15000/healthz/ready").unwrap();
        assert_eq!(addr, "127.0.0.1:15000".parse().unwrap());
        assert_eq!(path, "/healthz/ready");
        assert_eq!(parse_http_url("http://10.1.0.1:80").unwrap().1, "/");
        assert!(parse_http_url("https://127.0.0.1:1/").is_err());
        assert!(parse_http_url("http://localhost:1/").is_err());
    }

    #[test]
    fn http_responses() {
        let (code, body) =
            parse_http_response("HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nnot ready")
                .unwrap();
        assert_eq!((code, body.as_str()), (503, "not ready"));
        assert!(parse_http_response("garbage").is_err());
    }
}
