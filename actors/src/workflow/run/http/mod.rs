//! `http` executor steps. The local runner does not own an HTTP client: the caller passes one
//! implementing [`HttpStepClient`] in its run options. The actor layer provides the real one
//! (awc, with TLS; awc clients are not `Send`, so it forwards each request to its arbiter and
//! awaits the reply). [`PlainHttpClient`] is a minimal HTTP/1.1 client over a tokio
//! `TcpStream` for plain `http://` only, enough for tests and loopback services; it refuses
//! `https://`. Both check the address they connected to against their [`EgressPolicy`].

pub mod awc;
pub mod egress;

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use egress::EgressPolicy;

/// One request an `http` step makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStepRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Option<Duration>,
}

/// The response an `http` step receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStepResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Sends `http` step requests for the local runner.
pub trait HttpStepClient: Send + Sync {
    /// Sends the request; `Err` is a transport failure (an HTTP error status is `Ok`).
    fn send(&self, request: HttpStepRequest) -> BoxFuture<'_, Result<HttpStepResponse, String>>;
}

/// A plain-`http://` HTTP/1.1 client, one connection per request.
#[derive(Debug, Clone, Default)]
pub struct PlainHttpClient {
    /// Response bytes kept at most; the rest is dropped.
    pub max_response_bytes: Option<usize>,
    /// Where it may connect.
    pub egress: EgressPolicy,
}

/// Default cap on a response read by [`PlainHttpClient`].
const DEFAULT_MAX_RESPONSE: usize = 16 * 1024 * 1024;

impl HttpStepClient for PlainHttpClient {
    fn send(&self, request: HttpStepRequest) -> BoxFuture<'_, Result<HttpStepResponse, String>> {
        Box::pin(async move {
            let limit = request.timeout;
            let exchange = self.exchange(request);
            match limit {
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .map_err(|_| format!("no response within {}s", limit.as_secs_f64()))?,
                None => exchange.await,
            }
        })
    }
}

/// `http://host[:port]/path` split into its parts.
#[derive(Debug, PartialEq, Eq)]
struct PlainUrl<'a> {
    host: &'a str,
    port: u16,
    /// Path and query, at least `/`.
    target: &'a str,
}

fn parse_plain_url(url: &str) -> Result<PlainUrl<'_>, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            "https needs the server's HTTP client; this client speaks plain http only".to_owned()
        } else {
            format!("not an http:// URL: {url}")
        });
    };
    let (authority, target) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let (host, port_text) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or_else(|| format!("bad IPv6 host in {url}"))?;
        (
            &authority[..=close],
            authority[close + 1..].strip_prefix(':'),
        )
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        Some(port) => port.parse().map_err(|_| format!("bad port in {url}"))?,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("no host in {url}"));
    }
    Ok(PlainUrl { host, port, target })
}

impl PlainHttpClient {
    async fn exchange(&self, request: HttpStepRequest) -> Result<HttpStepResponse, String> {
        let url = parse_plain_url(&request.url)?;
        let connect_host = url.host.trim_start_matches('[').trim_end_matches(']');
        let mut stream = TcpStream::connect((connect_host, url.port))
            .await
            .map_err(|error| format!("cannot connect to {}:{}: {error}", url.host, url.port))?;
        let peer = stream
            .peer_addr()
            .map_err(|error| format!("cannot connect to {}:{}: {error}", url.host, url.port))?;
        self.egress.check(peer)?;
        let target = if url.target.starts_with('?') {
            format!("/{}", url.target)
        } else {
            url.target.to_owned()
        };
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nUser-Agent: kubiya-local-runner\r\n",
            request.method.to_uppercase(),
            url.host,
            url.port
        );
        for (name, value) in &request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = request.body.unwrap_or_default();
        if !body.is_empty() || !matches!(request.method.to_uppercase().as_str(), "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let send = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.flush().await
        };
        send.await
            .map_err(|error| format!("sending the request failed: {error}"))?;
        let limit = self.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE);
        let mut raw = Vec::new();
        (&mut stream)
            .take(u64::try_from(limit).unwrap_or(u64::MAX))
            .read_to_end(&mut raw)
            .await
            .map_err(|error| format!("reading the response failed: {error}"))?;
        parse_response(&raw)
    }
}

fn parse_response(raw: &[u8]) -> Result<HttpStepResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("the response has no complete header")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.as_str())
    };
    let mut body = &raw[head_end + 4..];
    let decoded;
    if header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
        decoded = decode_chunked(body)?;
        body = &decoded;
    } else if let Some(length) =
        header("content-length").and_then(|value| value.parse::<usize>().ok())
    {
        body = &body[..length.min(body.len())];
    }
    Ok(HttpStepResponse {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
        headers,
    })
}

fn decode_chunked(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("truncated chunked body")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = raw.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot loopback server answering `response` verbatim; yields the request it read.
    pub(crate) async fn serve_once(
        response: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("address");
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accepts");
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let count = socket.read(&mut chunk).await.expect("reads");
                request.extend_from_slice(&chunk[..count]);
                if count == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text[..head_end]
                        .lines()
                        .find_map(|line| {
                            line.split_once(':')
                                .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                        })
                        .and_then(|(_, length)| length.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
            }
            socket.write_all(response.as_bytes()).await.expect("writes");
            socket.shutdown().await.expect("closes");
            String::from_utf8_lossy(&request).into_owned()
        });
        (format!("http://{address}"), handle)
    }

    #[test]
    fn urls_are_split() {
        assert_eq!(
            parse_plain_url("http://127.0.0.1:8080/a?b=1").expect("parses"),
            PlainUrl {
                host: "127.0.0.1",
                port: 8080,
                target: "/a?b=1"
            }
        );
        assert_eq!(
            parse_plain_url("http://example.test").expect("parses"),
            PlainUrl {
                host: "example.test",
                port: 80,
                target: "/"
            }
        );
        assert!(
            parse_plain_url("https://x")
                .expect_err("https")
                .contains("plain http only")
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).expect("parses").body, "hello world");
    }

    #[tokio::test]
    async fn sends_a_request_and_reads_the_response() {
        let (base, server) =
            serve_once("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok").await;
        let (other, _other_server) = serve_once("HTTP/1.1 200 OK\r\n\r\n").await;
        let client = PlainHttpClient {
            egress: EgressPolicy {
                allowed: vec!["127.0.0.1/32".parse().expect("a range")],
                own_listener: None,
            },
            ..PlainHttpClient::default()
        };
        let refused = PlainHttpClient::default()
            .send(HttpStepRequest {
                method: "GET".to_owned(),
                url: format!("{other}/items"),
                headers: Vec::new(),
                body: None,
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect_err("loopback is not allowed by default");
        assert!(refused.contains("loopback address"), "{refused}");
        let response = client
            .send(HttpStepRequest {
                method: "post".to_owned(),
                url: format!("{base}/items"),
                headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
                body: Some(r#"{"a":1}"#.to_owned()),
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect("responds");
        assert_eq!(response.status, 201);
        assert_eq!(response.body, "ok");
        let request = server.await.expect("server ran");
        assert!(request.starts_with("POST /items HTTP/1.1\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    }
}
