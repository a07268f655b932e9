//! [`RedisConnection`]: the one connection to Redis that every shared part of a replica uses
//! (the session store, turn leases, rate limits), and what is known of Redis's health. The
//! `redis` crate's `ConnectionManager` multiplexes all commands over one socket and
//! reconnects by itself; on top of it this keeps the last known reachability, which a
//! background ping refreshes every second (at once after a failed command). While Redis is
//! known to be down, commands fail at once with [`StoreError::Unavailable`] instead of each
//! waiting for a timeout, and readiness reports it; the ping notices when it is back.
//! [`RenewedHold`] is the one pattern for things held in Redis while a turn or stream lasts
//! (turn leases, stream permits). [`RedisEndpoint`] is where Redis is: the URL and, for
//! `rediss://`, the CA to trust and the client certificate to present; every Redis client of
//! a replica is made from it. Nothing here knows what the keys mean.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    ClientTlsConfig, Cmd, FromRedisValue, RedisError, RedisResult, ScriptInvocation,
    TlsCertificates,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use crate::hold::Release;

const PING_EVERY: Duration = Duration::from_secs(1);

const OUTAGE: &str = "Redis is unreachable: requests that need it get 503 until it answers again";

/// No ping has answered yet.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A cheap handle; clones share the connection and its health.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    health: AtomicU8,
    /// Wakes the health check early after a command failed.
    failed: Arc<Notify>,
    /// `host:port/db`, for logs and messages; never the password.
    address: String,
    timeout: Duration,
}

/// Where Redis is and how to reach it. `rediss://` URLs use TLS: the server's certificate is
/// checked against `tls.ca_file` when set, else against the system's trusted roots.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisEndpoint {
    /// `redis[s]://[user:password@]host:port/db`; may hold a password, so never logged.
    pub url: String,
    pub tls: RedisTls,
}

/// Certificates for `rediss://`, as PEM files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// The CA that signed the server's certificate (managed services publish theirs).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that require mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl RedisTls {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

impl std::fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("url", &redact_url(&self.url))
            .field("tls", &self.tls)
            .finish()
    }
}

/// The URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisEndpoint {
    /// A client for this endpoint, without connecting. Reads the certificate files, so the
    /// error names a file that is missing or not PEM as well as a malformed URL.
    pub fn client(&self) -> Result<redis::Client, String> {
        if !self.tls.is_set() {
            return redis::Client::open(self.url.as_str()).map_err(|err| err.to_string());
        }
        if !self.url.starts_with("rediss://") {
            return Err("TLS certificates are set, but the URL is not rediss://".to_owned());
        }
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
        };
        let root_cert = self.tls.ca_file.as_ref().map(read).transpose()?;
        let client_tls = match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            (None, None) => None,
            _ => return Err("a client certificate needs both its file and its key".to_owned()),
        };
        redis::Client::build_with_tls(
            self.url.as_str(),
            TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|err| err.to_string())
    }
}

impl RedisConnection {
    /// Prepares the connection to `url` and starts its health check; `timeout` bounds every
    /// command and connection attempt. Connecting is lazy, so a replica starts while Redis is
    /// down and reports not ready until it answers. Must run inside a tokio runtime.
    pub fn open(endpoint: &RedisEndpoint, timeout: Duration) -> Result<Self, StoreError> {
        let client = endpoint
            .client()
            .map_err(|err| StoreError::Unavailable(format!("invalid Redis settings: {err}")))?;
        let info = client.get_connection_info();
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection gives up quickly: the health check retries every second anyway.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| StoreError::Unavailable(format!("Redis at {address}: {err}")))?;
        let connection = Self {
            inner: Arc::new(Inner {
                manager,
                health: AtomicU8::new(UNKNOWN),
                failed: Arc::new(Notify::new()),
                address,
                timeout,
            }),
        };
        tokio::spawn(watch_health(Arc::downgrade(&connection.inner)));
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// `Ok` once a ping has answered and no command or ping has failed since.
    pub fn readiness(&self) -> Result<(), String> {
        match self.inner.health.load(Ordering::Acquire) {
            UP => Ok(()),
            UNKNOWN => Err(format!("connecting to Redis at {}", self.inner.address)),
            _ => Err(format!("Redis at {} is unreachable", self.inner.address)),
        }
    }

    pub async fn query<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        self.run(|mut connection| async move { cmd.query_async(&mut connection).await })
            .await
    }

    /// Sends several commands in one round trip.
    pub async fn pipeline<T: FromRedisValue + Send + 'static>(
        &self,
        pipeline: redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.run(|mut connection| async move { pipeline.query_async(&mut connection).await })
            .await
    }

    /// Runs a Lua script (loading it into Redis first if Redis does not know it yet).
    pub async fn invoke<T: FromRedisValue + Send + 'static>(
        &self,
        invocation: ScriptInvocation<'static>,
    ) -> Result<T, StoreError> {
        self.run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }

    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.inner.health.load(Ordering::Acquire) == DOWN {
            return Err(self.unreachable());
        }
        let outcome =
            tokio::time::timeout(self.inner.timeout, command(self.inner.manager.clone())).await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if is_outage(&err) => {
                self.mark_down(&err.to_string());
                Err(self.unreachable())
            }
            Ok(Err(err)) => Err(StoreError::Unavailable(format!(
                "Redis at {} refused a command: {err}",
                self.inner.address
            ))),
            Err(_) => {
                self.mark_down("no answer within the timeout");
                Err(self.unreachable())
            }
        }
    }

    /// Holds something in Redis that expires after `ttl` unless renewed: a task runs `renew`
    /// (a script answering 1 while it is still ours, 0 once it was lost) every third of the
    /// TTL, and dropping the hold stops the task and runs `release`. If this process dies,
    /// what it held simply expires.
    pub fn hold(
        &self,
        what: &'static str,
        ttl: Duration,
        renew: impl Fn() -> ScriptInvocation<'static> + Send + 'static,
        release: ScriptInvocation<'static>,
    ) -> RenewedHold {
        let stop = CancellationToken::new();
        let redis = self.clone();
        let renewal = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = renewal.cancelled() => return,
                    () = tokio::time::sleep(ttl / 3) => {}
                }
                match redis.invoke::<i64>(renew()).await {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::warn!(
                            what,
                            "expired in Redis before it was released (was Redis unreachable?)"
                        );
                        return;
                    }
                    // Redis is down: keep trying, the hold may outlive a short outage.
                    Err(err) => tracing::debug!(what, error = %err, "renewing failed"),
                }
            }
        });
        RenewedHold {
            stop,
            release: Some((self.clone(), release)),
            what,
        }
    }

    fn unreachable(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "Redis at {} is unreachable; retry in a few seconds",
            self.inner.address
        ))
    }

    fn mark_down(&self, reason: &str) {
        if self.inner.health.swap(DOWN, Ordering::AcqRel) != DOWN {
            tracing::warn!(redis = %self.inner.address, reason, "{OUTAGE}");
        }
        self.inner.failed.notify_one();
    }
}

/// Errors that mean Redis cannot be reached, as opposed to a command Redis refused.
fn is_outage(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
}

/// Pings every second, or at once after a failure, until every handle is dropped.
async fn watch_health(connection: Weak<Inner>) {
    loop {
        let Some(inner) = connection.upgrade() else {
            return;
        };
        let mut manager = inner.manager.clone();
        let ping = redis::cmd("PING");
        let answer =
            tokio::time::timeout(inner.timeout, ping.query_async::<String>(&mut manager)).await;
        let reachable = matches!(answer, Ok(Ok(_)));
        let before = inner
            .health
            .swap(if reachable { UP } else { DOWN }, Ordering::AcqRel);
        match (before, reachable) {
            (UP, true) | (DOWN, false) => {}
            (_, true) => tracing::info!(redis = %inner.address, "Redis is reachable"),
            (_, false) => {
                let reason = match answer {
                    Ok(Err(err)) => err.to_string(),
                    _ => "no answer within the timeout".to_owned(),
                };
                tracing::warn!(redis = %inner.address, reason, "{OUTAGE}");
            }
        }
        let failed = inner.failed.clone();
        drop(inner);
        tokio::select! {
            () = tokio::time::sleep(PING_EVERY) => {}
            () = failed.notified() => {}
        }
    }
}

/// Something held in Redis for as long as this value lives; see [`RedisConnection::hold`].
pub struct RenewedHold {
    stop: CancellationToken,
    release: Option<(RedisConnection, ScriptInvocation<'static>)>,
    what: &'static str,
}

impl RenewedHold {
    /// Stops the renewal; the future runs the release script.
    fn take_release(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.stop.cancel();
        let (redis, release) = self.release.take()?;
        let what = self.what;
        Some(async move {
            if let Err(err) = redis.invoke::<i64>(release).await {
                tracing::debug!(what, error = %err, "releasing failed; it will expire");
            }
        })
    }
}

impl Release for RenewedHold {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        match self.take_release() {
            Some(release) => release.boxed(),
            None => futures_util::future::ready(()).boxed(),
        }
    }
}

impl Drop for RenewedHold {
    fn drop(&mut self) {
        let Some(release) = self.take_release() else {
            return;
        };
        // Without a runtime to release it on, it expires by itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(release);
        }
    }
}
