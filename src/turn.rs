//! Running a turn for a handler, the same way for chat and compose: start the per-request
//! `Session` actor, wait until it holds the session (409 when another turn does, 503 when
//! the store is down) and for its first event (so a failure before any output still gets a
//! status), then either fold the events into one answer or stream them in a wire format. The
//! events come through a bounded channel; a stream whose client stops reading is watched and
//! cut off (see [`crate::stalled_client`]).

use std::time::Duration;

use actix::Actor;
use actix_web::HttpResponse;
use actix_web::http::header::{HeaderName, HeaderValue};
use kubiya_actors::session::{BeginTurn, Session, TurnEvent, TurnRequest, event_channel};
use kubiya_actors::store::SessionId;
use tokio::sync::mpsc::{Receiver, WeakSender};

use crate::error::ApiError;
use crate::identity::SESSION_ID;
use crate::session_budget;
use crate::stalled_client::{self, ClientSocket};
use crate::state::AppState;
use crate::streaming::{self, EventBody, EventSource, StreamGuard};
use crate::tenant::Tenant;
use crate::wire::{StreamEncoder, StreamFormat};

/// A turn that holds its session and has produced its first event.
pub struct StartedTurn {
    pub session_id: SessionId,
    first: TurnEvent,
    events: Receiver<TurnEvent>,
    /// The Session's end of the channel, gone once the Session has ended.
    session: WeakSender<TurnEvent>,
    stalled_after: Duration,
    /// How long the stream may be idle before a heartbeat comment (`agent.heartbeat_secs`).
    heartbeat: Duration,
    /// Counted from the start: the drain on shutdown waits for turns in progress.
    guard: StreamGuard,
}

pub async fn start(
    state: &AppState,
    tenant: &Tenant,
    turn: TurnRequest,
) -> Result<StartedTurn, ApiError> {
    let session_id = turn.key.id.clone();
    session_budget::check_room(state, &turn).await?;
    let guard = state.open_stream(tenant).await?;
    let (sender, mut events) = event_channel();
    let weak = sender.downgrade();
    let session = Session::new(state.session_deps(), turn, sender).start();
    session
        .send(BeginTurn)
        .await
        .map_err(ApiError::internal)??;
    let first = events
        .recv()
        .await
        .ok_or_else(|| ApiError::internal("the session ended without an event"))?;
    if let TurnEvent::Failed(error) = first {
        return Err(error.into());
    }
    Ok(StartedTurn {
        session_id,
        first,
        events,
        session: weak,
        stalled_after: Duration::from_secs(state.agent.stalled_reader_secs),
        heartbeat: Duration::from_secs(state.agent.heartbeat_secs),
        guard,
    })
}

impl StartedTurn {
    pub fn session_header(&self) -> (HeaderName, HeaderValue) {
        let value = HeaderValue::from_str(&self.session_id)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
        (SESSION_ID, value)
    }

    /// Every event up to the terminal one; a failure becomes the error status, since
    /// nothing has been sent yet. The tenant's stream permit is free again when this returns,
    /// so a client that continues at once is not counted twice.
    pub async fn collect(mut self, mut each: impl FnMut(TurnEvent)) -> Result<(), ApiError> {
        let mut next = Some(self.first);
        let mut outcome = Ok(());
        while let Some(event) = next {
            if let TurnEvent::Failed(error) = event {
                outcome = Err(error.into());
                break;
            }
            let terminal = event.is_terminal();
            each(event);
            next = if terminal {
                None
            } else {
                self.events.recv().await
            };
        }
        self.guard.close().await;
        outcome
    }

    /// The events as a streamed response in `format` to the client on `socket`.
    pub fn into_response(
        self,
        format: StreamFormat,
        encoder: Box<dyn StreamEncoder>,
        socket: ClientSocket,
    ) -> HttpResponse {
        let session = self.session_header();
        let source = EventSource {
            first: self.first,
            events: self.events,
            delivery: stalled_client::watch(socket, self.session, self.stalled_after),
        };
        let body = EventBody::new(source, encoder, self.heartbeat, self.guard);
        let mut response = streaming::response(match format {
            StreamFormat::OpenAiSse | StreamFormat::ComposeSse => {
                "text/event-stream; charset=utf-8"
            }
            StreamFormat::Vercel => "text/plain; charset=utf-8",
            StreamFormat::Ndjson => "application/x-ndjson",
        });
        response.insert_header(session);
        if format == StreamFormat::Vercel {
            response.insert_header(("x-vercel-ai-data-stream", "v1"));
        }
        response.streaming(body)
    }

    /// The raw parts, for transports that are not an HTTP body (WebSocket).
    pub fn into_parts(self) -> (TurnEvent, Receiver<TurnEvent>, StreamGuard) {
        (self.first, self.events, self.guard)
    }
}
