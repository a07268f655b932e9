//! One configured upstream: where a vendor lives, how to authenticate, and the limits a call
//! to it runs under. [`UpstreamConfig`] is plain data built by start-up; [`Upstream`] adds
//! the `awc` client with its own keep-alive connection pool, and knows how to build the
//! vendor's HTTP request for a [`ChatRequest`]. Every TCP connection the pool opens is
//! counted, so an operator sees in `/metrics` whether connections are reused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use awc::{Client, ClientRequest, Connector};
use tokio::net::TcpStream;

use super::codec;
use super::preset::{Protocol, ProviderKind};

/// How long each phase of a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection (TCP and TLS).
    pub connect: Duration,
    /// From sending the request to the response head.
    pub first_byte: Duration,
    /// Between two chunks of a streamed body.
    pub between_chunks: Duration,
    /// The whole call, retries included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            between_chunks: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// Retries of one upstream before the next fallback is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// Full jitter over an exponential ceiling, so retrying callers spread out; a server's
    /// `Retry-After` wins when it asks for longer, capped by the total timeout elsewhere.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay);
        let jittered = ceiling.mul_f64(0.5 + fastrand::f64() / 2.0);
        retry_after.map_or(jittered, |asked| asked.max(jittered))
    }
}

/// Everything needed to call one vendor; secrets stay out of `Debug`.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub kind: ProviderKind,
    pub protocol: Protocol,
    /// In the vendor SDK's convention; the protocol's chat path is appended.
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    /// Connections this upstream may hold open at once; every open stream needs one.
    pub max_connections: usize,
}

/// How long an idle upstream connection stays in the pool for the next call. Providers close
/// idle keep-alive connections after a minute or more; reusing one saves a TCP and TLS
/// handshake per model call.
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A connection is retired after this long even when busy, so DNS changes are picked up.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("kind", &self.kind)
            .field("protocol", &self.protocol)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// Vendors' version header for Anthropic Messages; every official SDK sends this value.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A configured upstream with its client. Lives on one arbiter: `awc` clients are not `Send`.
pub struct Upstream {
    pub config: UpstreamConfig,
    client: Client,
    url: String,
}

impl Upstream {
    /// `opened` counts the TCP connections this upstream's pool opens.
    pub fn new(config: UpstreamConfig, opened: Arc<AtomicU64>) -> Self {
        let connector = Connector::new()
            .connector(CountingConnector {
                inner: ConnectorService::default(),
                opened,
            })
            .timeout(config.timeouts.connect)
            .conn_keep_alive(IDLE_KEEP_ALIVE)
            .conn_lifetime(CONNECTION_LIFETIME)
            .limit(config.max_connections);
        let client = Client::builder()
            .connector(connector)
            .timeout(config.timeouts.first_byte)
            .disable_redirects()
            .finish();
        let url = format!(
            "{}{}",
            config.base_url.trim_end_matches('/'),
            codec::chat_path(config.protocol).unwrap_or_default()
        );
        Self {
            config,
            client,
            url,
        }
    }

    /// The POST of a chat call, with the vendor's auth and version headers.
    pub fn build_request_for(&self, stream: bool) -> ClientRequest {
        let mut http = self
            .client
            .post(&self.url)
            .insert_header(("content-type", "application/json"));
        if stream {
            let accept = match self.config.protocol {
                Protocol::OllamaChat => "application/x-ndjson",
                _ => "text/event-stream",
            };
            http = http.insert_header(("accept", accept));
        }
        match (self.config.protocol, &self.config.api_key) {
            (Protocol::AnthropicMessages, key) => {
                http = http.insert_header(("anthropic-version", ANTHROPIC_VERSION));
                if let Some(key) = key {
                    http = http.insert_header(("x-api-key", key.as_str()));
                }
            }
            (_, Some(key)) => http = http.bearer_auth(key),
            (_, None) => {}
        }
        http
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// awc's own TCP connector (resolve, then connect), counting each connection it opens.
#[derive(Clone)]
struct CountingConnector {
    inner: ConnectorService,
    opened: Arc<AtomicU64>,
}

impl Service<ConnectInfo<Uri>> for CountingConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<ConnectInfo<Uri>>::poll_ready(&self.inner, cx)
    }

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.inner.call(request);
        let opened = self.opened.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(connection)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        };
        for _ in 0..50 {
            let first = policy.delay(0, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            assert!(policy.delay(10, None) <= Duration::from_millis(400));
        }
        let asked = Duration::from_secs(3);
        assert_eq!(policy.delay(0, Some(asked)), asked);
    }
}
