//! The `Session` actor: one per chat request. It takes the session's turn lease, loads the
//! transcript, then runs the agent loop — `Composer` builds the request, `LlmProvider`
//! streams the answer, the tool calls it makes run, their results go back to the model — up
//! to a configured number of model calls. Every step is forwarded to the HTTP layer as a
//! [`TurnEvent`] through its [`Outbox`]; the transcript is saved before the one terminal event
//! is sent.
//!
//! The turn is an explicit state machine ([`Phase`]). Nothing pauses the actor: each piece of
//! slow work (composing, a tool call, an execution, the save) is a future spawned into its
//! context that acts on its result only if the turn is still in the step that started it. So
//! a client leaving, a client that stops reading, a drain or the compose timeout is handled
//! at any moment, a tool call included, and cancels what the turn started (the model call,
//! the MCP call, which tells its server `notifications/cancelled`); an execution it started
//! keeps running in the `ExecutionWatcher`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use super::approval::{self, ApprovalAnswer, PendingApproval};
use super::event::{TurnError, TurnErrorKind, TurnEvent};
use super::follow::Follow;
use super::outbox::{Outbox, Pushed};
use super::spans::TurnSpans;
use super::store::{SessionKey, SessionRecord, SessionStore, TurnLease};
use crate::composer::{ComposeTurn, Composer, Purpose};
use crate::limits::{LimitError, RateLimiter, TenantLimits};
use crate::mcp::{CallTool, McpAccess, McpSupervisor};
use crate::per_thread::PerThread;
use crate::provider::{
    ChatMessage, FinishReason, LlmEvent, ProviderPool, StartCompletion, ToolCall, Transcript, Usage,
};
use crate::store::{ExecutionId, SessionId, StoreError};
use crate::tools::{self, ValidationReport};
use crate::workflow::{
    ExecutionError, ExecutionEvent, ExecutionSnapshot, ExecutionStatus, ExecutionWatcher,
    GetExecution, ListRunners, RunnerList, StartExecution, Subscription, ValidationError, Workflow,
};

/// What the HTTP layer extracted from the request.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    pub key: SessionKey,
    /// With a session id the stored transcript is the history and only the new user
    /// message counts; without one, `messages` is the whole history.
    pub continuing: bool,
    pub messages: Vec<ChatMessage>,
    pub instructions: Option<String>,
    pub mode: TurnMode,
    /// `execute_workflow` waits for the user's approval (plan → approve → act).
    pub require_approval: bool,
    /// The user's explicit answer to the session's pending approval (the chat UI protocol;
    /// the text protocols answer with a message).
    pub approval: Option<ApprovalAnswer>,
    /// Answer the stored conversation's last user message again, in place of the answer
    /// it had (the chat UI protocol's `regenerate-message`).
    pub regenerate: bool,
    /// The MCP tools the caller's API key may see and call.
    pub mcp_access: McpAccess,
    /// The tenant's limits: each workflow the turn runs takes one of its execution slots.
    pub limits: TenantLimits,
}

/// A chat turn, or a Compose API call.
#[derive(Debug, Clone)]
pub enum TurnMode {
    /// The agent loop: the model calls tools until it answers.
    Chat,
    /// The refinement loop: the model proposes a workflow, the server validates it and feeds
    /// every error back until it is valid or the attempts run out.
    Compose(ComposeOptions),
}

#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// `act`: run the valid workflow and stream its execution.
    pub act: bool,
    pub max_attempts: u32,
    /// The whole compose, model calls and execution included.
    pub timeout: Duration,
    /// A model other than the provider's default, for generation and refinement.
    pub model: Option<String>,
    pub parameters: serde_json::Map<String, Value>,
    pub runner: Option<String>,
}

/// The shared parts every session talks to.
#[derive(Clone)]
pub struct SessionDeps {
    pub providers: ProviderPool,
    pub composer: PerThread<Composer>,
    pub store: Arc<dyn SessionStore>,
    pub executions: Addr<ExecutionWatcher>,
    pub mcp: Option<Addr<McpSupervisor>>,
    pub max_iterations: u32,
    /// Fires when the server drains: the turn ends with an error and its terminator.
    pub shutdown: CancellationToken,
    /// A client that takes no event for this long while events wait is cut off; zero never.
    pub stalled_reader: Duration,
    /// Told how long each turn spent in the server's own code.
    pub overhead: Arc<dyn OverheadObserver>,
    /// Counts the tenants' running executions, across replicas when shared.
    pub limiter: Arc<RateLimiter>,
}

/// Learns, as each turn ends, the time it spent in the server's own code: its whole time
/// minus the time it waited for model calls (request sent to last event), MCP tool calls and
/// workflow executions.
pub trait OverheadObserver: Send + Sync {
    fn observe(&self, in_server: Duration);
}

/// What a turn does once its history is loaded.
enum FirstStep {
    /// Run the `execute_workflow` call the user just approved.
    Run(ToolCall),
    CallModel,
    /// An approval answer with nothing waiting for it: the turn ends at once.
    Nothing,
}

/// Starts the turn: replies once the lease is held and the history loaded, so the HTTP
/// layer can still answer 409 or 503 with a status.
#[derive(Message)]
#[rtype(result = "Result<(), TurnRejected>")]
pub struct BeginTurn;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnRejected {
    #[error("session {0} has a turn in progress; retry when it has finished")]
    Busy(SessionId),
    #[error("{0}")]
    StoreUnavailable(String),
}

/// Where a turn is. Each step's future carries the step number it was started in and is
/// ignored when the turn has moved on (see [`Session::spawn_step`]).
#[derive(Debug)]
enum Phase {
    /// Waiting for `BeginTurn` to take the lease and load the history.
    Starting,
    /// The composer builds the next model request.
    Composing,
    /// A model call streams its answer.
    Calling(ModelStep),
    /// One tool call of the last model step runs; the rest wait in `pending_tools`.
    RunningTool,
    /// `execute_workflow` started this execution; the tool's result comes when it ends.
    Following { call: ToolCall, follow: Follow },
    /// The transcript is being saved; `Finished` follows.
    Saving,
    /// The terminal event is out or the client left; queued events still leave.
    Ended,
}

/// What a model call has produced so far.
#[derive(Debug, Default)]
struct ModelStep {
    text: String,
    calls: Vec<ToolCall>,
    usage: Usage,
}

pub struct Session {
    deps: SessionDeps,
    request: TurnRequest,
    outbox: Outbox,
    phase: Phase,
    /// Counts phase changes; a spawned future acts only if it still matches.
    step: u64,
    record: Option<SessionRecord>,
    lease: Option<TurnLease>,
    /// Cancels the model call or MCP call in flight when the turn ends.
    cancel: CancellationToken,
    iterations: u32,
    turn_usage: Usage,
    pending_tools: VecDeque<ToolCall>,
    /// The finished model call's marker, sent once its tool calls have run.
    step_finished: Option<TurnEvent>,
    /// Compose: workflows proposed so far.
    attempts: u32,
    /// The `execute_workflow` call the user approved: it runs without asking again.
    approved_call: Option<String>,
    started: Instant,
    /// Time spent waiting on model calls, tools and executions, and since when it waits now.
    waited: Duration,
    waiting_since: Option<Instant>,
    spans: TurnSpans,
}

impl Session {
    pub fn new(deps: SessionDeps, request: TurnRequest, events: Sender<TurnEvent>) -> Self {
        Self {
            spans: TurnSpans::new(&request.key),
            deps,
            request,
            outbox: Outbox::new(events),
            phase: Phase::Starting,
            step: 0,
            record: None,
            lease: None,
            cancel: CancellationToken::new(),
            iterations: 0,
            turn_usage: Usage::default(),
            pending_tools: VecDeque::new(),
            step_finished: None,
            attempts: 0,
            approved_call: None,
            started: Instant::now(),
            waited: Duration::ZERO,
            waiting_since: None,
        }
    }

    /// The turn starts waiting on something outside the server (a model, a tool, a run).
    fn begin_wait(&mut self) {
        self.waiting_since.get_or_insert_with(Instant::now);
    }

    fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.step += 1;
    }

    fn ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// Runs `work` beside the actor; `then` gets its output only if the turn is still in the
    /// step that started it.
    fn spawn_step<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl Future<Output = T> + 'static,
        then: impl FnOnce(&mut Self, T, &mut Context<Self>) + 'static,
    ) {
        let step = self.step;
        ctx.spawn(work.into_actor(self).map(move |output, session, ctx| {
            if session.step == step && !session.ended() {
                then(session, output, ctx);
            }
        }));
    }

    fn emit(&mut self, event: TurnEvent, ctx: &mut Context<Self>) {
        // A client that left is noticed by the watch `started` spawns.
        if self.outbox.push(event) == Pushed::Queued {
            self.flush(ctx);
        }
    }

    /// Waits for room in the channel and moves queued events on, until none are left; a
    /// client that takes nothing for the stall timeout is cut off.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.outbox.flushing || self.outbox.is_empty() {
            return;
        }
        self.outbox.flushing = true;
        let sender = self.outbox.sender();
        let stalled_after = self.deps.stalled_reader;
        ctx.spawn(
            async move {
                let room = sender.reserve_owned();
                // Zero: a client is never cut off for reading slowly.
                if stalled_after.is_zero() {
                    return Ok(room.await);
                }
                tokio::time::timeout(stalled_after, room).await
            }
            .into_actor(self)
            .map(|reserved, session, ctx| {
                session.outbox.flushing = false;
                match reserved {
                    Ok(Ok(permit)) => {
                        if session.outbox.drain_into(permit) {
                            session.flush(ctx);
                        } else if session.ended() {
                            ctx.stop();
                        }
                        if session.outbox.has_room()
                            && matches!(&session.phase, Phase::Following { follow, .. } if follow.is_cut())
                        {
                            session.subscribe_to_execution(ctx);
                        }
                    }
                    Ok(Err(_)) => session.client_left(ctx),
                    Err(_) => session.client_stalled(ctx),
                }
            }),
        );
    }

    /// Ends the turn: cancels what it started, and stops the actor once what is queued for
    /// the client has left.
    fn end(&mut self, ctx: &mut Context<Self>) {
        if !self.ended() {
            self.end_wait();
            let in_server = self.started.elapsed().saturating_sub(self.waited);
            self.deps.overhead.observe(in_server);
        }
        self.enter(Phase::Ended);
        self.cancel.cancel();
        if self.outbox.is_empty() {
            ctx.stop();
        }
    }

    fn client_left(&mut self, ctx: &mut Context<Self>) {
        if !self.ended() {
            tracing::debug!(session = %self.request.key.id, "client went away; stopping the turn");
        }
        self.drop_client(ctx);
    }

    fn client_stalled(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(
            session = %self.request.key.id,
            after = ?self.deps.stalled_reader,
            "the client stopped reading; cutting the turn off"
        );
        self.drop_client(ctx);
    }

    /// Nothing more reaches the client. A turn that is saving its answer keeps it (the save
    /// is short and the answer complete); any other ends now.
    fn drop_client(&mut self, ctx: &mut Context<Self>) {
        self.outbox.discard();
        if !matches!(self.phase, Phase::Saving) {
            self.end(ctx);
        }
    }

    /// The turn must end early (drain, timeout): unless it is already saving its answer,
    /// which ends it in a moment anyway.
    fn interrupt(&mut self, error: TurnError, ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Saving) {
            return;
        }
        self.fail(error, ctx);
    }

    fn transcript(&mut self) -> &mut Transcript {
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
            self.emit(TurnEvent::Text(note.clone()), ctx);
            self.transcript().push(ChatMessage::assistant_text(note));
            self.finish(FinishReason::Length, ctx);
            return;
        }
        self.iterations += 1;
        let (purpose, model) = match &self.request.mode {
            TurnMode::Chat => (Purpose::Chat, None),
            TurnMode::Compose(options) => (Purpose::Compose, options.model.clone()),
        };
        let compose = ComposeTurn {
            // Shared, not copied: the provider lets go of it before the call's last event.
            transcript: self
                .record
                .as_ref()
                .map(|r| r.transcript.clone())
                .unwrap_or_default(),
            instructions: self.request.instructions.clone(),
            purpose,
            model,
            mcp_access: self.request.mcp_access.clone(),
        };
        self.enter(Phase::Composing);
        let composing = self.deps.composer.get().send(compose);
        self.spawn_step(ctx, composing, |session, composed, ctx| match composed {
            Ok(request) => {
                let providers = &session.deps.providers;
                let model = match request.model.as_str() {
                    "" => providers.model.as_str(),
                    model => model,
                };
                session
                    .spans
                    .model_call_started(providers.primary.as_str(), model);
                session.enter(Phase::Calling(ModelStep::default()));
                session.begin_wait();
                session.deps.providers.start_completion(StartCompletion {
                    request,
                    reply_to: ctx.address().recipient(),
                    cancel: session.cancel.child_token(),
                });
            }
            Err(err) => session.fail(
                TurnError {
                    kind: TurnErrorKind::Upstream,
                    message: format!("the composer is unavailable: {err}"),
                },
                ctx,
            ),
        });
    }

    /// The model call ended: record its answer, then run its tool calls or end the turn.
    fn model_call_finished(
        &mut self,
        step: ModelStep,
        reason: FinishReason,
        ctx: &mut Context<Self>,
    ) {
        self.spans.model_call_finished(&reason);
        let ModelStep { text, calls, usage } = step;
        self.step_finished = Some(TurnEvent::StepFinished {
            reason: reason.clone(),
            usage,
        });
        if let TurnMode::Compose(options) = &self.request.mode {
            let options = options.clone();
            self.compose_step(text, calls, &options, ctx);
            return;
        }
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
            self.emit_step_finished(ctx);
            self.next_model_call(ctx);
            return;
        };
        self.enter(Phase::RunningTool);
        self.emit_tool_call(&call, ctx);
        self.spans.tool_call_started(&call);
        match call.name.as_str() {
            tools::VALIDATE_WORKFLOW => {
                let report = ValidationReport::of_arguments(&call.arguments);
                if let (Some(workflow), Some(record)) =
                    (report.valid_workflow(), self.record.as_mut())
                {
                    record.workflows.push(workflow.to_value());
                }
                self.tool_finished(&call, report.to_value(), false, ctx);
            }
            tools::LIST_RUNNERS => {
                let listing = self.deps.executions.send(ListRunners);
                self.spawn_step(ctx, listing, move |session, answer, ctx| {
                    let (result, is_error) = runners_result(answer);
                    session.tool_finished(&call, result, is_error, ctx);
                });
            }
            tools::EXECUTE_WORKFLOW
                if self.request.require_approval
                    && self.approved_call.as_deref() != Some(call.id.as_str()) =>
            {
                self.request_approval(call, ctx)
            }
            tools::EXECUTE_WORKFLOW => self.start_execution(call, ctx),
            tools::GET_EXECUTION => {
                let named = call.arguments["execution_id"].as_str().unwrap_or_default();
                match ExecutionError::known_id(named) {
                    Ok(execution_id) => {
                        self.fetch_execution(execution_id, ctx, move |session, snapshot, ctx| {
                            let (result, is_error) = snapshot_result(snapshot);
                            session.tool_finished(&call, result, is_error, ctx);
                        });
                    }
                    Err(unknown) => {
                        let (result, is_error) = snapshot_result(Err(unknown.to_string()));
                        self.tool_finished(&call, result, is_error, ctx);
                    }
                }
            }
            name if name.contains("__") && self.deps.mcp.is_some() => self.call_mcp_tool(call, ctx),
            other => {
                let result = json!({"error": format!("unknown tool `{other}`")});
                self.tool_finished(&call, result, true, ctx);
            }
        }
    }

    /// The turn's history: the stored transcript with this request's new message (or, for a
    /// new session, the request's whole history), after answering a pending approval. Says
    /// what the turn does first: run the approved call, call the model, or — an approval
    /// answer when nothing waits for one (a replay) — nothing.
    fn take_history(&mut self, mut record: SessionRecord, ctx: &mut Context<Self>) -> FirstStep {
        let mut messages = std::mem::take(&mut self.request.messages);
        let asked_last = record
            .transcript
            .iter()
            .rposition(|m| matches!(m, ChatMessage::User { .. }));
        if let (true, Some(asked)) = (self.request.regenerate, asked_last) {
            record.transcript.truncate(asked + 1);
            record.pending_approval = None;
            messages.clear();
        } else if self.request.continuing && !record.transcript.is_empty() {
            // The stored transcript is the history; only the new user message counts.
            let newest = messages
                .into_iter()
                .rev()
                .find(|m| matches!(m, ChatMessage::User { .. }));
            messages = newest.into_iter().collect();
        }
        let pending = record.pending_approval.take().map(|pending| *pending);
        self.record = Some(record);
        let first = match pending {
            Some(pending) => match self.answer_approval(pending, &mut messages, ctx) {
                Some(call) => FirstStep::Run(call),
                None => FirstStep::CallModel,
            },
            None if self.request.approval.is_some() => FirstStep::Nothing,
            None => FirstStep::CallModel,
        };
        self.transcript().extend(messages);
        first
    }

    /// Holds `call` until the user approves it and ends the turn asking; tool calls queued
    /// after it are not run either (the model sees why).
    fn request_approval(&mut self, call: ToolCall, ctx: &mut Context<Self>) {
        let approval_id = format!("approval_{}", uuid::Uuid::new_v4().simple());
        let workflow = tools::workflow_from_argument(&call.arguments)
            .ok()
            .and_then(|workflow| workflow["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "the workflow".to_owned());
        self.emit(
            TurnEvent::ApprovalRequested {
                approval_id: approval_id.clone(),
                tool_call_id: call.id.clone(),
                workflow,
            },
            ctx,
        );
        for skipped in std::mem::take(&mut self.pending_tools) {
            self.emit_tool_call(&skipped, ctx);
            let result =
                json!({"error": "not run: the user has not approved the workflow run yet"});
            self.record_tool_result(&skipped, result, true, ctx);
        }
        if let Some(record) = self.record.as_mut() {
            record.pending_approval = Some(Box::new(PendingApproval { approval_id, call }));
        }
        self.finish(FinishReason::Stop, ctx);
    }

    /// Answers the session's pending approval from this turn's request: the approved call
    /// to run first, or `None` once a declined one is recorded as such. A plain "yes" is the
    /// answer, not a message of the conversation.
    fn answer_approval(
        &mut self,
        pending: PendingApproval,
        messages: &mut Vec<ChatMessage>,
        ctx: &mut Context<Self>,
    ) -> Option<ToolCall> {
        let said = messages.iter().rev().find_map(|message| match message {
            ChatMessage::User { content } => Some(content.as_str()),
            _ => None,
        });
        let approved = match &self.request.approval {
            Some(answer) => answer.approval_id == pending.approval_id && answer.approved,
            None => said.is_some_and(approval::is_affirmative),
        };
        if approved || said.is_some_and(approval::is_negative) {
            messages.retain(|message| !matches!(message, ChatMessage::User { .. }));
        }
        if approved {
            self.approved_call = Some(pending.call.id.clone());
            return Some(pending.call);
        }
        let reason = self
            .request
            .approval
            .as_ref()
            .and_then(|answer| answer.reason.clone());
        let result = json!({
            "error": "the user declined to run this workflow",
            "declined": true,
            "reason": reason,
        });
        self.record_tool_result(&pending.call, result, true, ctx);
        None
    }

    /// `execute_workflow`: start the run, then follow it; the tool result comes when it ends.
    fn start_execution(&mut self, call: ToolCall, ctx: &mut Context<Self>) {
        let arguments = &call.arguments;
        let read = tools::workflow_from_argument(arguments).and_then(|document| {
            Workflow::from_value(document)
                .map_err(|err| vec![ValidationError::new("", err.to_string())])
        });
        let workflow = match read {
            Ok(workflow) => workflow,
            Err(errors) => {
                let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let result = json!({"error": format!("the workflow could not be read: {}; validate it first", problems.join("; "))});
                self.execution_ended(&call, result, true, ctx);
                return;
            }
        };
        let mut start = StartExecution {
            tenant: self.request.key.tenant.clone(),
            workflow,
            params: arguments["params"].as_object().cloned().unwrap_or_default(),
            runner: arguments["runner"].as_str().map(str::to_owned),
            trace: self.spans.current(),
            permit: None,
            // The session's workflows, callable by name from `run` steps.
            library: self
                .record
                .iter()
                .flat_map(|record| record.workflows.iter())
                .filter_map(|workflow| Workflow::from_value(workflow.clone()).ok())
                .collect(),
        };
        // A run from a turn counts against the tenant's executions like one started over
        // HTTP: the slot is held by the execution until it ends, whoever follows it.
        let limiter = self.deps.limiter.clone();
        let tenant = self.request.key.tenant.clone();
        let limits = self.request.limits;
        let executions = self.deps.executions.clone();
        let starting = async move {
            start.permit = Some(limiter.open_execution(&tenant, limits).await?);
            Ok::<_, LimitError>(executions.send(start).await)
        };
        self.begin_wait();
        self.spawn_step(ctx, starting, move |session, started, ctx| {
            let started = match started {
                Ok(started) => started,
                Err(limit) => {
                    let result = json!({"error": limit.to_string()});
                    return session.execution_ended(&call, result, true, ctx);
                }
            };
            let summary = match started {
                Ok(Ok(summary)) => summary,
                Ok(Err(err)) => {
                    let result = json!({"error": err.to_string()});
                    return session.execution_ended(&call, result, true, ctx);
                }
                Err(err) => {
                    let result = json!({"error": format!("executions are unavailable: {err}")});
                    return session.execution_ended(&call, result, true, ctx);
                }
            };
            if let Some(record) = session.record.as_mut() {
                record.executions.push(summary.execution_id.clone());
            }
            session.enter(Phase::Following {
                call,
                follow: Follow::new(summary.execution_id),
            });
            session.subscribe_to_execution(ctx);
        });
    }

    /// Subscribes to the followed execution's events after the last one passed on: at the
    /// start, and again once a client that fell behind has made room.
    fn subscribe_to_execution(&mut self, ctx: &mut Context<Self>) {
        let tenant = self.request.key.tenant.clone();
        let session = ctx.address().recipient();
        let Phase::Following { follow, .. } = &mut self.phase else {
            return;
        };
        let subscribing = self.deps.executions.send(follow.subscribe(tenant, session));
        self.spawn_step(ctx, subscribing, |session, subscribed, ctx| {
            if !matches!(subscribed, Ok(Ok(Subscription::Following))) {
                session.execution_complete(ctx);
            }
        });
    }

    /// The followed execution ended: its final state is the tool's result.
    fn execution_complete(&mut self, ctx: &mut Context<Self>) {
        let Phase::Following { call, follow } =
            std::mem::replace(&mut self.phase, Phase::RunningTool)
        else {
            return;
        };
        self.enter(Phase::RunningTool);
        let execution_id = follow.execution_id.clone();
        self.fetch_execution(execution_id, ctx, move |session, snapshot, ctx| {
            let succeeded = snapshot
                .as_ref()
                .is_ok_and(|snapshot| snapshot.status == ExecutionStatus::Success);
            let (result, _) = snapshot_result(snapshot);
            session.execution_ended(&call, result, !succeeded, ctx);
        });
    }

    /// Asks the watcher for an execution's state and hands the answer to `then`.
    fn fetch_execution(
        &mut self,
        execution_id: ExecutionId,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Result<ExecutionSnapshot, String>, &mut Context<Self>) + 'static,
    ) {
        let get = GetExecution {
            tenant: self.request.key.tenant.clone(),
            execution_id,
        };
        let fetching = self.deps.executions.send(get);
        self.spawn_step(ctx, fetching, move |session, answer, ctx| {
            let snapshot = match answer {
                Ok(answer) => answer.map_err(|err| err.to_string()),
                Err(err) => Err(format!("executions are unavailable: {err}")),
            };
            then(session, snapshot, ctx);
        });
    }

    /// Chat: the result goes back to the model. Compose (act): the turn ends with it.
    fn execution_ended(
        &mut self,
        call: &ToolCall,
        result: Value,
        is_error: bool,
        ctx: &mut Context<Self>,
    ) {
        self.end_wait();
        match self.request.mode {
            TurnMode::Chat => self.tool_finished(call, result, is_error, ctx),
            TurnMode::Compose(_) => {
                self.spans.tool_call_finished(is_error);
                self.emit(
                    TurnEvent::ToolResult {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        result,
                        is_error,
                    },
                    ctx,
                );
                self.finish(FinishReason::Stop, ctx);
            }
        }
    }

    /// A tool of a supervised MCP server; cancelled with the turn, which tells the server.
    fn call_mcp_tool(&mut self, call: ToolCall, ctx: &mut Context<Self>) {
        let Some(mcp) = self.deps.mcp.clone() else {
            return;
        };
        let request = CallTool {
            tool: call.name.clone(),
            arguments: call.arguments.clone(),
            cancel: self.cancel.child_token(),
            access: self.request.mcp_access.clone(),
        };
        self.begin_wait();
        self.spawn_step(ctx, mcp.send(request), move |session, answer, ctx| {
            session.end_wait();
            let (result, is_error) = match answer {
                Ok(Ok(output)) => (Value::String(output.content), output.is_error),
                Ok(Err(err)) => (json!({"error": err.to_string()}), true),
                Err(err) => (
                    json!({"error": format!("MCP servers are unavailable: {err}")}),
                    true,
                ),
            };
            session.tool_finished(&call, result, is_error, ctx);
        });
    }

    /// Compose: the context the model works with, shown as tool calls and results; `runners`
    /// is what `list_runners` answered.
    fn emit_context(&mut self, runners: (Value, bool), ctx: &mut Context<Self>) {
        let catalog: Vec<String> = tools::builtin_catalog()
            .into_iter()
            .map(|tool| tool.name)
            .collect();
        let context = [
            (tools::LIST_RUNNERS, runners),
            ("list_tools", (json!({ "tools": catalog }), false)),
        ];
        for (name, (result, is_error)) in context {
            let id = format!("context_{name}");
            self.emit(
                TurnEvent::ToolCall {
                    id: id.clone(),
                    name: name.to_owned(),
                    arguments: json!({}),
                },
                ctx,
            );
            self.emit(
                TurnEvent::ToolResult {
                    id,
                    name: name.to_owned(),
                    result,
                    is_error,
                },
                ctx,
            );
        }
    }

    /// Starts the turn's work once its history is in.
    fn take_first_step(&mut self, first: FirstStep, ctx: &mut Context<Self>) {
        match first {
            FirstStep::Run(call) => {
                self.pending_tools.push_back(call);
                self.run_next_tool(ctx);
            }
            FirstStep::CallModel => self.next_model_call(ctx),
            FirstStep::Nothing => self.finish(FinishReason::Stop, ctx),
        }
    }

    fn tool_finished(
        &mut self,
        call: &ToolCall,
        result: Value,
        is_error: bool,
        ctx: &mut Context<Self>,
    ) {
        self.record_tool_result(call, result, is_error, ctx);
        self.run_next_tool(ctx);
    }

    /// Sends a tool's result and keeps it in the transcript for the model.
    fn record_tool_result(
        &mut self,
        call: &ToolCall,
        result: Value,
        is_error: bool,
        ctx: &mut Context<Self>,
    ) {
        self.spans.tool_call_finished(is_error);
        self.emit(
            TurnEvent::ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                result: result.clone(),
                is_error,
            },
            ctx,
        );
        let content = match result {
            Value::String(text) => text,
            other => other.to_string(),
        };
        self.transcript()
            .push(ChatMessage::tool_result(call, content, is_error));
    }

    /// Compose: take the workflow the model proposed, validate it, and either finish with it
    /// or feed every error back for another attempt.
    fn compose_step(
        &mut self,
        text: String,
        calls: Vec<ToolCall>,
        options: &ComposeOptions,
        ctx: &mut Context<Self>,
    ) {
        self.attempts += 1;
        let proposed = calls
            .iter()
            .rev()
            .map(|call| {
                call.arguments
                    .get("workflow")
                    .unwrap_or(&call.arguments)
                    .clone()
            })
            .next()
            .or_else(|| tools::workflow_in_text(&text));
        let report = match &proposed {
            Some(workflow) => ValidationReport::of_field(workflow),
            None => ValidationReport::refused(ValidationError::new(
                "$",
                "no workflow found: call validate_workflow with the complete workflow JSON",
            )),
        };
        let result = report.to_value();
        for call in &calls {
            self.emit_tool_call(call, ctx);
            self.emit(
                TurnEvent::ToolResult {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    result: result.clone(),
                    is_error: false,
                },
                ctx,
            );
        }
        let feedback = result.to_string();
        self.transcript().push(ChatMessage::Assistant {
            content: (!text.is_empty()).then_some(text),
            tool_calls: calls.clone(),
        });
        for call in &calls {
            self.transcript()
                .push(ChatMessage::tool_result(call, feedback.clone(), false));
        }
        self.emit_step_finished(ctx);
        if let Some(workflow) = report.valid_workflow() {
            let document = workflow.to_value();
            if let Some(record) = self.record.as_mut() {
                record.workflows.push(document.clone());
            }
            self.emit(TurnEvent::Workflow(Box::new(workflow.clone())), ctx);
            if options.act {
                self.run_workflow(document, options, ctx);
            } else {
                self.finish(FinishReason::Stop, ctx);
            }
            return;
        }
        let errors = serde_json::to_value(&report.errors).unwrap_or_default();
        self.emit(
            TurnEvent::ValidationFailed {
                errors: report.errors,
                attempt: self.attempts,
            },
            ctx,
        );
        if self.attempts >= options.max_attempts {
            let error = TurnError {
                kind: TurnErrorKind::Unprocessable,
                message: format!(
                    "No valid workflow after {} attempts; the last errors were: {errors}",
                    self.attempts
                ),
            };
            self.fail(error, ctx);
            return;
        }
        if calls.is_empty() {
            self.transcript().push(ChatMessage::user(format!(
                "That workflow is not valid: {feedback}. Fix every error and call validate_workflow with the complete workflow."
            )));
        }
        self.next_model_call(ctx);
    }

    /// Act mode: run the validated workflow and stream its execution.
    fn run_workflow(&mut self, workflow: Value, options: &ComposeOptions, ctx: &mut Context<Self>) {
        let call = ToolCall {
            id: "compose_execute".to_owned(),
            name: tools::EXECUTE_WORKFLOW.to_owned(),
            arguments: json!({"workflow": workflow, "params": options.parameters, "runner": options.runner}),
        };
        self.enter(Phase::RunningTool);
        self.emit_tool_call(&call, ctx);
        self.spans.tool_call_started(&call);
        self.start_execution(call, ctx);
    }

    fn emit_tool_call(&mut self, call: &ToolCall, ctx: &mut Context<Self>) {
        let event = TurnEvent::ToolCall {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        };
        self.emit(event, ctx);
    }

    fn emit_step_finished(&mut self, ctx: &mut Context<Self>) {
        if let Some(marker) = self.step_finished.take() {
            self.emit(marker, ctx);
        }
    }

    /// Saves the turn and frees the session, then sends `Finished`: an acknowledged turn is
    /// a kept turn, and the client may continue it at once, on any replica.
    fn finish(&mut self, reason: FinishReason, ctx: &mut Context<Self>) {
        self.emit_step_finished(ctx);
        // Nothing reads the record after this: the store gets it whole, copying nothing.
        let Some(record) = self.record.take() else {
            return;
        };
        let usage = self.turn_usage;
        self.spans.turn_finished(usage);
        let store = self.deps.store.clone();
        let lease = self.lease.take();
        self.enter(Phase::Saving);
        let saving = async move {
            store.save(record).await?;
            if let Some(lease) = lease {
                lease.release().await;
            }
            Ok(())
        };
        self.spawn_step(
            ctx,
            saving,
            move |session, saved: Result<(), StoreError>, ctx| match saved {
                Ok(()) => {
                    session.emit(TurnEvent::Finished { reason, usage }, ctx);
                    session.end(ctx);
                }
                Err(err) => session.fail(
                    TurnError {
                        kind: TurnErrorKind::StoreUnavailable,
                        message: format!("the turn could not be saved: {err}"),
                    },
                    ctx,
                ),
            },
        );
    }

    fn fail(&mut self, error: TurnError, ctx: &mut Context<Self>) {
        if self.ended() {
            return;
        }
        self.spans.failed(&format!("{:?}", error.kind));
        tracing::warn!(session = %self.request.key.id, error = %error.message, "turn failed");
        self.emit(TurnEvent::Failed(error), ctx);
        self.end(ctx);
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let closed = self.outbox.closed();
        ctx.spawn(
            closed
                .into_actor(self)
                .map(|(), session, ctx| session.client_left(ctx)),
        );
        if let TurnMode::Compose(options) = &self.request.mode {
            ctx.run_later(options.timeout, |session, ctx| {
                let error = TurnError {
                    kind: TurnErrorKind::TimedOut,
                    message: "the compose did not finish within its timeout".into(),
                };
                session.interrupt(error, ctx);
            });
        }
        let shutdown = self.deps.shutdown.clone();
        ctx.spawn(
            async move { shutdown.cancelled().await }
                .into_actor(self)
                .map(|(), session, ctx| {
                    session.interrupt(
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
        self.outbox.discard();
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
                        session.enter(Phase::Ended);
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
                if session.ended() {
                    // The client left or the server drained while the history loaded.
                    return Ok(());
                }
                let record =
                    record.unwrap_or_else(|| SessionRecord::new(session.request.key.clone()));
                let first = session.take_history(record, ctx);
                if matches!(session.request.mode, TurnMode::Compose(_)) {
                    // Compose shows the context first: the runners, then the tools.
                    let listing = session.deps.executions.send(ListRunners);
                    session.spawn_step(ctx, listing, move |session, runners, ctx| {
                        session.emit_context(runners_result(runners), ctx);
                        session.take_first_step(first, ctx);
                    });
                } else {
                    session.take_first_step(first, ctx);
                }
                Ok(())
            }),
        )
    }
}

impl Handler<LlmEvent> for Session {
    /// Resolves when the turn has room for more: the model call waits for a slow client.
    type Result = ResponseFuture<()>;

    fn handle(&mut self, event: LlmEvent, ctx: &mut Context<Self>) -> Self::Result {
        let Phase::Calling(step) = &mut self.phase else {
            // A call the turn no longer waits for.
            return Box::pin(std::future::ready(()));
        };
        match event {
            LlmEvent::TextDelta(text) => {
                step.text.push_str(&text);
                self.emit(TurnEvent::Text(text), ctx);
            }
            LlmEvent::ReasoningDelta(text) => self.emit(TurnEvent::Reasoning(text), ctx),
            LlmEvent::ToolCall(call) => step.calls.push(call),
            LlmEvent::Usage(usage) => {
                self.spans.model_usage(usage);
                step.usage = usage;
                self.turn_usage.input += usage.input;
                self.turn_usage.output += usage.output;
            }
            LlmEvent::Finished { reason } => {
                self.end_wait();
                let Phase::Calling(step) = std::mem::replace(&mut self.phase, Phase::RunningTool)
                else {
                    unreachable!("matched above");
                };
                self.enter(Phase::RunningTool);
                self.model_call_finished(step, reason, ctx);
            }
            LlmEvent::Failed(error) => self.fail(error.into(), ctx),
        }
        match self.outbox.room() {
            None => Box::pin(std::future::ready(())),
            Some(room) => Box::pin(async move {
                let _ = room.await;
            }),
        }
    }
}

/// The watcher's runner list as `list_runners`' result, or the error the model should see.
fn runners_result(answer: Result<RunnerList, MailboxError>) -> (Value, bool) {
    match answer {
        Ok(runners) => (serde_json::to_value(runners).unwrap_or_default(), false),
        Err(err) => (
            json!({"error": format!("executions are unavailable: {err}")}),
            true,
        ),
    }
}

/// A snapshot as a tool result, or the error the model should see.
fn snapshot_result(snapshot: Result<ExecutionSnapshot, String>) -> (Value, bool) {
    match snapshot {
        Ok(snapshot) => (serde_json::to_value(snapshot).unwrap_or_default(), false),
        Err(message) => (json!({ "error": message }), true),
    }
}

impl Handler<ExecutionEvent> for Session {
    type Result = ();

    fn handle(&mut self, event: ExecutionEvent, ctx: &mut Context<Self>) {
        let Phase::Following { follow, .. } = &mut self.phase else {
            return;
        };
        if !follow.is_next(&event) {
            return;
        }
        let last = event.is_final();
        if !last && !self.outbox.has_room() {
            // The client reads slower than the run goes: the rest stays in the execution's
            // log until it has made room (see `follow`).
            follow.cut();
            return;
        }
        follow.passed(&event);
        self.emit(TurnEvent::Execution(Box::new(event)), ctx);
        if last {
            self.execution_complete(ctx);
        }
    }
}
