//! Cutting off a client that stopped reading its stream. Each accepted connection's socket is
//! remembered ([`remember`], as the server accepts it) and reaches the handler as a
//! [`ClientSocket`]. A streamed turn's body reports each chunk it hands over to a [`Delivery`];
//! a watchdog shuts the socket down once the Session has given up on the client (it cuts a
//! turn off when its events wait longer than the stall timeout) and the body has handed over
//! nothing for that long either. Waiting would not do: a body whose client reads nothing is
//! never polled again, and it holds the connection, its buffers, the open-stream count the
//! drain waits for and the tenant's stream permit.

use std::future::{Ready, ready};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::{Extensions, Payload};
use actix_web::rt::net::TcpStream;
use actix_web::{FromRequest, HttpRequest};
use kubiya_actors::session::TurnEvent;
use tokio::sync::mpsc::WeakSender;
use tokio::time::Instant;

/// The descriptor of a connection's socket, in the connection's data.
#[derive(Clone, Copy)]
struct SocketFd(RawFd);

/// Stores the socket of a new connection; called as each connection is accepted.
pub fn remember(connection: &TcpStream, data: &mut Extensions) {
    data.insert(SocketFd(connection.as_raw_fd()));
}

/// The request's client socket, when it is a TCP connection this server accepted.
#[derive(Clone, Copy, Default)]
pub struct ClientSocket(Option<RawFd>);

impl FromRequest for ClientSocket {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientSocket(
            req.conn_data::<SocketFd>().map(|socket| socket.0),
        )))
    }
}

/// What a stream's body shares with its watchdog.
#[derive(Default)]
pub struct Delivery {
    /// Chunks handed to the connection so far.
    chunks: AtomicU64,
    /// The socket while the body lives: the connection (and so the descriptor) outlives the
    /// body, which clears this under the lock before it goes.
    socket: Mutex<Option<RawFd>>,
}

impl Delivery {
    pub fn handed_over(&self) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
    }

    /// The body is dropped: its connection may close and its descriptor be reused.
    pub fn body_dropped(&self) {
        *self.socket.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Starts the watchdog of one stream. `session` is the Session's end of the event channel,
/// held weakly: it is gone once the Session has ended, by finishing or by giving up.
pub fn watch(
    socket: ClientSocket,
    session: WeakSender<TurnEvent>,
    stalled_after: Duration,
) -> Arc<Delivery> {
    let delivery = Arc::new(Delivery {
        chunks: AtomicU64::new(0),
        socket: Mutex::new(socket.0),
    });
    if socket.0.is_none() || stalled_after.is_zero() {
        return delivery;
    }
    let watched = delivery.clone();
    actix_web::rt::spawn(async move {
        let mut last = (0, Instant::now());
        loop {
            tokio::time::sleep(stalled_after / 4).await;
            let socket = watched
                .socket
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(fd) = *socket else {
                return;
            };
            let chunks = watched.chunks.load(Ordering::Relaxed);
            if chunks != last.0 {
                last = (chunks, Instant::now());
                continue;
            }
            if session.upgrade().is_some() || last.1.elapsed() < stalled_after {
                continue;
            }
            tracing::warn!(
                after = ?stalled_after,
                "the client stopped reading its stream; closing the connection"
            );
            // SAFETY: `fd` is the socket of the connection that owns the body; the body clears
            // it under this lock before it is dropped, and the connection closes only after.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            return;
        }
    });
    delivery
}
