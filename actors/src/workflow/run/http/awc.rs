//! [`AwcStepClient`]: the real [`HttpStepClient`] for `http` steps, over `awc` with TLS.
//!
//! The local runner wants a `Send` client, and an `awc` client is not `Send`, so the client
//! lives on an arbiter of its own: each request is handed to that arbiter, which sends it and
//! answers through a oneshot channel. The step runner only ever sees the channel's future.
//! When the step stops waiting (cancelled), the arbiter drops the request too.
//!
//! Every connection the client opens (the first one and each redirect's) goes through
//! [`GuardedConnector`], which checks the address it reached against the [`EgressPolicy`]
//! before anything is sent.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use actix_service::Service;
use actix_tls::connect::{
    ConnectError, ConnectInfo, Connection, Connector as TcpConnector, Resolver,
};
use awc::http::{Method, Uri};
use awc::{Client, Connector};
use futures_util::StreamExt;
use futures_util::future::{BoxFuture, LocalBoxFuture};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::egress::EgressPolicy;
use super::{HttpStepClient, HttpStepRequest, HttpStepResponse};

/// How long a request may take when its step sets no timeout.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    // One client per arbiter thread (each step client has its own arbiter), so requests share
    // its connection pool; set when the arbiter starts.
    static CLIENT: OnceCell<Client> = const { OnceCell::new() };
}

/// Opens TCP connections like awc's own connector, then refuses peers the policy forbids.
#[derive(Clone)]
struct GuardedConnector<S> {
    inner: S,
    policy: Arc<EgressPolicy>,
}

impl<S> Service<ConnectInfo<Uri>> for GuardedConnector<S>
where
    S: Service<ConnectInfo<Uri>, Response = Connection<Uri, TcpStream>, Error = ConnectError>,
    S::Future: 'static,
{
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::forward_ready!(inner);

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.inner.call(request);
        let policy = self.policy.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            let peer = connection.io_ref().peer_addr().map_err(ConnectError::Io)?;
            policy.check(peer).map_err(|refusal| {
                ConnectError::Io(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    refusal,
                ))
            })?;
            Ok(connection)
        })
    }
}

fn guarded_client(policy: EgressPolicy) -> Client {
    let connector = GuardedConnector {
        inner: TcpConnector::new(Resolver::default()).service(),
        policy: Arc::new(policy),
    };
    Client::builder()
        .connector(
            Connector::new()
                .connector(connector)
                .timeout(CONNECT_TIMEOUT),
        )
        .timeout(DEFAULT_REQUEST_TIMEOUT)
        .finish()
}

/// Sends `http` steps' requests from a dedicated arbiter; cheap to clone.
#[derive(Clone)]
pub struct AwcStepClient {
    arbiter: Arc<OwnedArbiter>,
    max_response_bytes: usize,
}

/// Stops the arbiter when the last client handle goes.
struct OwnedArbiter(ArbiterHandle);

impl Drop for OwnedArbiter {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl std::fmt::Debug for AwcStepClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwcStepClient")
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl AwcStepClient {
    /// Starts the client's arbiter. Must be called inside a running actix system.
    pub fn start(max_response_bytes: usize, policy: EgressPolicy) -> Self {
        let arbiter = Arbiter::new().handle();
        arbiter.spawn_fn(move || {
            CLIENT.with(|client| {
                // Runs first on a fresh arbiter: nothing has set it yet.
                let _ = client.set(guarded_client(policy));
            });
        });
        Self {
            arbiter: Arc::new(OwnedArbiter(arbiter)),
            max_response_bytes,
        }
    }
}

impl HttpStepClient for AwcStepClient {
    fn send(&self, request: HttpStepRequest) -> BoxFuture<'_, Result<HttpStepResponse, String>> {
        let (reply, answer) = oneshot::channel();
        let limit = self.max_response_bytes;
        let handed_over = self.arbiter.0.spawn_fn(move || {
            actix::spawn(async move {
                let mut reply = reply;
                let sent = tokio::select! {
                    result = exchange(request, limit) => Some(result),
                    // The step gave up (cancelled): stop the request with it.
                    () = reply.closed() => None,
                };
                if let Some(result) = sent {
                    // The step may have gone in the meantime; then nobody needs the answer.
                    let _ = reply.send(result);
                }
            });
        });
        Box::pin(async move {
            if !handed_over {
                return Err("the HTTP client is not running".to_owned());
            }
            answer
                .await
                .map_err(|_| "the HTTP client stopped before answering".to_owned())?
        })
    }
}

/// One request and its response body, at most `limit` bytes of it.
async fn exchange(request: HttpStepRequest, limit: usize) -> Result<HttpStepResponse, String> {
    let timeout = request.timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let method = Method::from_bytes(request.method.to_uppercase().as_bytes())
        .map_err(|_| format!("not an HTTP method: {:?}", request.method))?;
    let url = request.url.clone();
    let client = CLIENT
        .with(|client| client.get().cloned())
        .ok_or("the HTTP client is not ready")?;
    let mut builder = client.request(method, &request.url).timeout(timeout);
    for (name, value) in &request.headers {
        builder = builder.append_header((name.as_str(), value.as_str()));
    }
    let whole = async move {
        let sent = match request.body {
            Some(body) => builder.send_body(body).await,
            None => builder.send().await,
        };
        let mut response = sent.map_err(|error| format!("request to {url} failed: {error}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response.next().await {
            let chunk = chunk.map_err(|error| format!("reading the response failed: {error}"))?;
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break;
            }
        }
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(HttpStepResponse {
            status: response.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, whole)
        .await
        .map_err(|_| format!("no complete response within {}s", timeout.as_secs_f64()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::run::http::tests::serve_once;

    #[actix_rt::test]
    async fn sends_from_its_own_arbiter_and_caps_the_body() {
        let (base, server) =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Answer: yes\r\n\r\nhello world")
                .await;
        let client = AwcStepClient::start(5, loopback_allowed());
        let response = client
            .send(HttpStepRequest {
                method: "post".to_owned(),
                url: format!("{base}/hook"),
                headers: vec![("X-Token".to_owned(), "abc".to_owned())],
                body: Some("payload".to_owned()),
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect("answers");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "hello");
        assert!(
            response
                .headers
                .iter()
                .any(|(name, value)| name == "x-answer" && value == "yes")
        );
        let request = server.await.expect("the server ran");
        assert!(request.starts_with("POST /hook HTTP/1.1\r\n"), "{request}");
        assert!(request.to_lowercase().contains("x-token: abc"), "{request}");
        assert!(request.ends_with("payload"), "{request}");
    }

    fn loopback_allowed() -> EgressPolicy {
        EgressPolicy {
            allowed: vec!["127.0.0.0/8".parse().expect("a range")],
            own_listener: None,
        }
    }

    #[actix_rt::test]
    async fn loopback_is_refused_unless_allowed_and_redirects_are_checked_too() {
        let (base, _server) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let refused = AwcStepClient::start(1024, EgressPolicy::default())
            .send(HttpStepRequest {
                method: "GET".to_owned(),
                url: format!("{base}/"),
                headers: Vec::new(),
                body: None,
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect_err("loopback is internal");
        assert!(refused.contains("loopback address"), "{refused}");
        let (target, _target_server) =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret").await;
        let redirect: &'static str = Box::leak(
            format!("HTTP/1.1 302 Found\r\nLocation: {target}/\r\nContent-Length: 0\r\n\r\n")
                .into_boxed_str(),
        );
        let (redirecting, _redirect_server) = serve_once(redirect).await;
        let target_port: u16 = target.rsplit(':').next().unwrap().parse().unwrap();
        let policy = EgressPolicy {
            own_listener: Some(std::net::SocketAddr::from(([127, 0, 0, 1], target_port))),
            ..loopback_allowed()
        };
        let error = AwcStepClient::start(1024, policy)
            .send(HttpStepRequest {
                method: "GET".to_owned(),
                url: format!("{redirecting}/"),
                headers: Vec::new(),
                body: None,
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect_err("the redirect leads to the server itself");
        assert!(error.contains("own listener"), "{error}");
    }

    #[actix_rt::test]
    async fn a_refused_connection_is_an_error() {
        let client = AwcStepClient::start(1024, loopback_allowed());
        let error = client
            .send(HttpStepRequest {
                method: "GET".to_owned(),
                url: "http://127.0.0.1:1/".to_owned(),
                headers: Vec::new(),
                body: None,
                timeout: Some(Duration::from_secs(5)),
            })
            .await
            .expect_err("nothing listens on port 1");
        assert!(error.contains("failed"), "{error}");
    }
}
