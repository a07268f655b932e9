//! The `Session` actor: one per chat request. It takes the session's turn lease, loads the
//! transcript, then runs the agent loop — `Composer` builds the request, `LlmProvider`
//! streams the answer, the tool calls it makes run, their results go back to the model — up
//! to a configured number of model calls. Every step is forwarded to the HTTP layer as a
//! [`TurnEvent`]; the transcript is saved before the one terminal event is sent. When the
//! client goes away the actor stops, which cancels the model call it started; an execution
//! it started keeps running in the `ExecutionWatcher`.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::event::{TurnError, TurnErrorKind, TurnEvent};
use super::store::{SessionKey, SessionRecord, SessionStore, StoreError, TurnLease};
use crate::composer::{ComposeTurn, Composer};
use crate::provider::{
    ChatMessage, FinishReason, LlmEvent, ProviderPool, StartCompletion, ToolCall, Usage,
};
use crate::tools;

/// What the HTTP layer extracted from the request.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub key: SessionKey,
    /// With a session id the stored transcript is the history and only the new user
    /// message counts; without one, `messages` is the whole history.
    pub continuing: bool,
    pub messages: Vec<ChatMessage>,
    pub instructions: Option<String>,
}

/// The shared parts every session talks to.
#[derive(Clone)]
pub struct SessionDeps {
    pub providers: ProviderPool,
    pub composer: Addr<Composer>,
    pub store: Arc<dyn SessionStore>,
    pub max_iterations: u32,
    /// Fires when the server drains: the turn ends with an error and its terminator.
    pub shutdown: CancellationToken,
}

/// Starts the turn: replies once the lease is held and the history loaded, so the HTTP
/// layer can still answer 409 or 503 with a status.
#[derive(Message)]
#[rtype(result = "Result<(), TurnRejected>")]
pub struct BeginTurn;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnRejected {
    #[error("session {0} has a turn in progress; retry when it has finished")]
    Busy(String),
    #[error("{0}")]
    StoreUnavailable(String),
}

pub struct Session {
    deps: SessionDeps,
    request: TurnRequest,
    events: UnboundedSender<TurnEvent>,
    record: Option<SessionRecord>,
    lease: Option<TurnLease>,
    /// Cancels the model call in flight when the session stops.
    cancel: CancellationToken,
    iterations: u32,
    step_text: String,
    step_calls: Vec<ToolCall>,
    step_usage: Usage,
    turn_usage: Usage,
    pending_tools: VecDeque<ToolCall>,
    /// The finished model call's marker, sent once its tool calls have run.
    step_finished: Option<TurnEvent>,
    done: bool,
}

impl Session {
    pub fn new(
        deps: SessionDeps,
        request: TurnRequest,
        events: UnboundedSender<TurnEvent>,
    ) -> Self {
        Self {
            deps,
            request,
            events,
            record: None,
            lease: None,
            cancel: CancellationToken::new(),
            iterations: 0,
            step_text: String::new(),
            step_calls: Vec::new(),
            step_usage: Usage::default(),
            turn_usage: Usage::default(),
            pending_tools: VecDeque::new(),
            step_finished: None,
            done: false,
        }
    }

    fn emit(&self, event: TurnEvent) {
        // A closed channel means the client left; `started` stops the actor for that.
        let _ = self.events.send(event);
    }

    fn transcript(&mut self) -> &mut Vec<ChatMessage> {
        &mut self
            .record
            .as_mut()
            .expect("loaded before the loop starts")
            .transcript
    }

    /// Asks the composer for the next request and starts the model call.
    fn next_model_call(&mut self, ctx: &mut Context<Self>) {
        if self.iterations >= self.deps.max_iterations {
            let note = format!(
                "\n\nI stopped after {} model calls, the limit for one turn. Send another message to continue.",
                self.iterations
            );
            self.emit(TurnEvent::Text(note.clone()));
            self.transcript().push(ChatMessage::assistant_text(note));
            self.finish(FinishReason::Length, ctx);
            return;
        }
        self.iterations += 1;
        let compose = ComposeTurn {
            transcript: self
                .record
                .as_ref()
                .map(|r| r.transcript.clone())
                .unwrap_or_default(),
            instructions: self.request.instructions.clone(),
        };
        self.deps
            .composer
            .send(compose)
            .into_actor(self)
            .map(|composed, session, ctx| match composed {
                Ok(request) => session.deps.providers.start_completion(StartCompletion {
                    request,
                    reply_to: ctx.address().recipient(),
                    cancel: session.cancel.child_token(),
                }),
                Err(err) => session.fail(
                    TurnError {
                        kind: TurnErrorKind::Upstream,
                        message: format!("the composer is unavailable: {err}"),
                    },
                    ctx,
                ),
            })
            .wait(ctx);
    }

    /// The model call ended: record its answer, then run its tool calls or end the turn.
    fn model_call_finished(&mut self, reason: FinishReason, ctx: &mut Context<Self>) {
        let text = std::mem::take(&mut self.step_text);
        let calls = std::mem::take(&mut self.step_calls);
        let usage = std::mem::take(&mut self.step_usage);
        self.step_finished = Some(TurnEvent::StepFinished {
            reason: reason.clone(),
            usage,
        });
        self.transcript().push(ChatMessage::Assistant {
            content: (!text.is_empty()).then_some(text),
            tool_calls: calls.clone(),
        });
        if calls.is_empty() {
            self.finish(reason, ctx);
        } else {
            self.pending_tools.extend(calls);
            self.run_next_tool(ctx);
        }
    }

    fn run_next_tool(&mut self, ctx: &mut Context<Self>) {
        let Some(call) = self.pending_tools.pop_front() else {
            self.emit_step_finished();
            self.next_model_call(ctx);
            return;
        };
        self.emit(TurnEvent::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        match call.name.as_str() {
            tools::VALIDATE_WORKFLOW => {
                let result = tools::validate_workflow(&call.arguments);
                if result["valid"] == true {
                    let workflow = result["workflow"].clone();
                    if let Some(record) = self.record.as_mut() {
                        record.workflows.push(workflow);
                    }
                }
                self.tool_finished(&call, result, false, ctx);
            }
            tools::LIST_RUNNERS => {
                let result =
                    json!({"runners": [{"name": "local", "description": "this host, sandboxed"}]});
                self.tool_finished(&call, result, false, ctx);
            }
            other => {
                let result = json!({"error": format!("unknown tool `{other}`")});
                self.tool_finished(&call, result, true, ctx);
            }
        }
    }

    fn tool_finished(
        &mut self,
        call: &ToolCall,
        result: Value,
        is_error: bool,
        ctx: &mut Context<Self>,
    ) {
        self.emit(TurnEvent::ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            result: result.clone(),
            is_error,
        });
        let content = match result {
            Value::String(text) => text,
            other => other.to_string(),
        };
        self.transcript()
            .push(ChatMessage::tool_result(call, content, is_error));
        self.run_next_tool(ctx);
    }

    fn emit_step_finished(&mut self) {
        if let Some(marker) = self.step_finished.take() {
            self.emit(marker);
        }
    }

    /// Saves the turn and frees the session, then sends `Finished`: an acknowledged turn is
    /// a kept turn, and the client may continue it at once, on any replica.
    fn finish(&mut self, reason: FinishReason, ctx: &mut Context<Self>) {
        self.emit_step_finished();
        let Some(record) = self.record.clone() else {
            return;
        };
        let usage = self.turn_usage;
        let store = self.deps.store.clone();
        let lease = self.lease.take();
        async move {
            store.save(record).await?;
            if let Some(lease) = lease {
                lease.release().await;
            }
            Ok(())
        }
        .into_actor(self)
        .map(move |saved: Result<(), StoreError>, session, ctx| {
            match saved {
                Ok(()) => {
                    session.done = true;
                    session.emit(TurnEvent::Finished { reason, usage });
                }
                Err(err) => session.fail(
                    TurnError {
                        kind: TurnErrorKind::StoreUnavailable,
                        message: format!("the turn could not be saved: {err}"),
                    },
                    ctx,
                ),
            }
            ctx.stop();
        })
        .wait(ctx);
    }

    fn fail(&mut self, error: TurnError, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        self.done = true;
        tracing::warn!(session = %self.request.key.id, error = %error.message, "turn failed");
        self.emit(TurnEvent::Failed(error));
        ctx.stop();
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let events = self.events.clone();
        ctx.spawn(
            async move { events.closed().await }
                .into_actor(self)
                .map(|(), session, ctx| {
                    if !session.done {
                        tracing::debug!(session = %session.request.key.id, "client went away; stopping the turn");
                        session.done = true;
                    }
                    ctx.stop();
                }),
        );
        let shutdown = self.deps.shutdown.clone();
        ctx.spawn(
            async move { shutdown.cancelled().await }
                .into_actor(self)
                .map(|(), session, ctx| {
                    session.fail(
                        TurnError {
                            kind: TurnErrorKind::Draining,
                            message: "the server is shutting down; the turn was not completed"
                                .into(),
                        },
                        ctx,
                    );
                }),
        );
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.cancel.cancel();
        self.lease = None;
        Running::Stop
    }
}

impl Handler<BeginTurn> for Session {
    type Result = ResponseActFuture<Self, Result<(), TurnRejected>>;

    fn handle(&mut self, _: BeginTurn, _: &mut Context<Self>) -> Self::Result {
        let store = self.deps.store.clone();
        let key = self.request.key.clone();
        Box::pin(
            async move {
                let lease = store.acquire_turn(&key).await?;
                let record = store.load(&key).await?;
                Ok((lease, record))
            }
            .into_actor(self)
            .map(|loaded: Result<_, StoreError>, session, ctx| {
                let (lease, record) = match loaded {
                    Ok(loaded) => loaded,
                    Err(err) => {
                        session.done = true;
                        ctx.stop();
                        return Err(match err {
                            StoreError::Busy => TurnRejected::Busy(session.request.key.id.clone()),
                            StoreError::Unavailable(message) => {
                                TurnRejected::StoreUnavailable(message)
                            }
                        });
                    }
                };
                session.lease = Some(lease);
                let mut record =
                    record.unwrap_or_else(|| SessionRecord::new(session.request.key.clone()));
                let messages = std::mem::take(&mut session.request.messages);
                if session.request.continuing && !record.transcript.is_empty() {
                    // The stored transcript is the history; only the new user message counts.
                    record.transcript.extend(
                        messages
                            .into_iter()
                            .rev()
                            .find(|m| matches!(m, ChatMessage::User { .. })),
                    );
                } else {
                    record.transcript.extend(messages);
                }
                session.record = Some(record);
                session.next_model_call(ctx);
                Ok(())
            }),
        )
    }
}

impl Handler<LlmEvent> for Session {
    type Result = ();

    fn handle(&mut self, event: LlmEvent, ctx: &mut Context<Self>) {
        if self.done {
            return;
        }
        match event {
            LlmEvent::TextDelta(text) => {
                self.step_text.push_str(&text);
                self.emit(TurnEvent::Text(text));
            }
            LlmEvent::ReasoningDelta(text) => self.emit(TurnEvent::Reasoning(text)),
            LlmEvent::ToolCall(call) => self.step_calls.push(call),
            LlmEvent::Usage(usage) => {
                self.step_usage = usage;
                self.turn_usage.input += usage.input;
                self.turn_usage.output += usage.output;
            }
            LlmEvent::Finished { reason } => self.model_call_finished(reason, ctx),
            LlmEvent::Failed(error) => self.fail(error.into(), ctx),
        }
    }
}
