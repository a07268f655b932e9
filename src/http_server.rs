//! The HTTP server under the app: actix-server's workers accept on the listener, each
//! connection's stream is wrapped in a [`HeadGuardedStream`] (so heads too large for the
//! parser get the OpenAI-shaped 431 as well) and served by actix-http's HTTP/1 dispatcher with
//! the App. It is what actix-web's `HttpServer` does, with the same defaults, built by hand
//! because `HttpServer` offers no way to wrap a connection's stream: one worker per core unless
//! configured, keep-alive, the 5 s limit for a request head, graceful drain of idle keep-alive
//! connections on stop, and no signal handling of its own ([`startup`](crate::startup) drains).

use std::fmt;
use std::future::ready;
use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::{Server, ServerBuilder};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;

use crate::boundary::oversized_head::{HeadGuardedStream, OversizedHeadAnswer};
use crate::stalled_client;

/// How the server runs; the rest are `HttpServer`'s defaults.
pub struct ServerOptions {
    /// Worker threads; 0 is one per core.
    pub workers: usize,
    /// How long stopping waits for requests in flight.
    pub shutdown_timeout_secs: u64,
    /// The 431 for heads the parser refuses.
    pub oversized_head: OversizedHeadAnswer,
}

/// How long a client has to send a request's head, and to close after its answer
/// (`HttpServer`'s defaults).
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts serving `listener` with the apps `factory` makes (one per worker).
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    options: ServerOptions,
    factory: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let mut builder = ServerBuilder::default()
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout_secs);
    if options.workers > 0 {
        builder = builder.workers(options.workers);
    }
    let drain = builder.graceful_shutdown_signal();
    let answer = options.oversized_head;
    let builder = builder.listen(format!("kubiya-http-{address}"), listener, move || {
        let drain = drain.clone();
        let host = address.to_string();
        let app = factory()
            .into_factory()
            .map_err(|err| err.into().error_response());
        let http = HttpService::<HeadGuardedStream<TcpStream>, _, _>::build()
            .graceful_shutdown_signal(move || {
                let drain = drain.clone();
                async move { drain.notified().await }
            })
            .keep_alive(KeepAlive::default())
            .client_request_timeout(REQUEST_HEAD_TIMEOUT)
            .client_disconnect_timeout(DISCONNECT_TIMEOUT)
            // A client that closes its side has left: without this a turn that is silent for
            // a while (a long tool call) would not notice until its next write failed.
            .h1_allow_half_closed(false)
            .local_addr(address)
            .on_connect_ext(|io: &HeadGuardedStream<TcpStream>, data: &mut _| {
                stalled_client::remember(io.get_ref(), data)
            })
            // The constructor `HttpServer` itself uses; actix-web exposes it for servers built
            // outside it (semver-exempt, pinned by Cargo.lock).
            .h1(map_config(app, move |_| {
                AppConfig::__priv_test_new(false, host.clone(), address)
            }));
        let answer = answer.clone();
        actix_service::fn_service(move |io: TcpStream| {
            let _ = io.set_nodelay(true);
            let peer = io.peer_addr().ok();
            ready(Ok((HeadGuardedStream::new(io, answer.clone()), peer)))
        })
        .and_then(http)
    })?;
    Ok(builder.run())
}
