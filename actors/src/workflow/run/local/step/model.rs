//! `llm_completion` and `agent` steps on the local runner, answered by the server's own
//! configured provider (the `LlmProvider` pool), not by the model the DSL names: one model
//! call, no tools, bounded by the step's timeout, [`StepModel::max_tokens`] and the output cap.
//! `llm_completion` sends `messages`, or `system_prompt` + `prompt` (`json_mode` asks for
//! JSON only); `agent` sends `message` framed by `ai_instructions` (or the agent's name).
//! `${VAR}` in them is substituted as text: nothing here reaches a shell.

use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;

use super::{Attempt, AttemptError};
use crate::provider::{ChatMessage, ChatRequest, LlmEvent, ProviderPool, StartCompletion};
use crate::workflow::dsl::model::{Executor, ExecutorKind};
use crate::workflow::dsl::template::Scope;

/// The provider steps call, and what one call may use.
#[derive(Clone)]
pub struct StepModel {
    pub pool: ProviderPool,
    /// The model the pool's primary provider serves.
    pub model: String,
    /// Most tokens a step's answer may have (a step's own `max_tokens` may only lower it).
    pub max_tokens: u32,
}

impl std::fmt::Debug for StepModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepModel")
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Receives one call's events for the step waiting on them.
struct Sink(UnboundedSender<LlmEvent>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<LlmEvent> for Sink {
    type Result = ();

    fn handle(&mut self, event: LlmEvent, _: &mut Self::Context) {
        // The step stopped waiting: nothing to do with the rest.
        let _ = self.0.send(event);
    }
}

/// What one model step needs besides the model.
pub(crate) struct ModelCall<'a> {
    pub(crate) executor: &'a Executor,
    pub(crate) scope: &'a Scope,
    pub(crate) timeout: Duration,
    pub(crate) output_limit: usize,
}

/// The step's answer, or why there is none.
pub(crate) async fn answer(
    model: &StepModel,
    call: ModelCall<'_>,
    token: &CancellationToken,
) -> Result<String, String> {
    let request = request(model, call.executor, call.scope)?;
    let (events, mut received) = unbounded_channel();
    let sink = Sink(events).start();
    let cancel = token.child_token();
    model.pool.start_completion(StartCompletion {
        request,
        reply_to: sink.recipient(),
        cancel: cancel.clone(),
    });
    let _stop_on_exit = cancel.clone().drop_guard();
    let mut text = String::new();
    let collect = async {
        while let Some(event) = received.recv().await {
            match event {
                LlmEvent::TextDelta(delta) => {
                    text.push_str(&delta);
                    if text.len() > call.output_limit {
                        return Err(format!(
                            "the model's answer is longer than the output limit of {} bytes",
                            call.output_limit
                        ));
                    }
                }
                LlmEvent::Finished { .. } => return Ok(()),
                LlmEvent::Failed(error) => return Err(format!("the model call failed: {error}")),
                _ => {}
            }
        }
        Err("the model call ended without an answer".to_owned())
    };
    tokio::select! {
        result = collect => result?,
        () = tokio::time::sleep(call.timeout) => {
            return Err(format!("the model did not answer within {}s", call.timeout.as_secs()));
        }
        () = token.cancelled() => return Err("stopped: the run was cancelled or timed out".to_owned()),
    }
    Ok(text.trim().to_owned())
}

fn config_text(executor: &Executor, key: &str, scope: &Scope) -> Option<String> {
    executor
        .config_value(key)
        .and_then(Value::as_str)
        .map(|text| scope.substitute(text))
}

/// The call a step makes.
fn request(model: &StepModel, executor: &Executor, scope: &Scope) -> Result<ChatRequest, String> {
    let (system, messages) = match executor.kind {
        ExecutorKind::LlmCompletion => {
            let mut system = config_text(executor, "system_prompt", scope);
            if executor.config_value("json_mode") == Some(&Value::Bool(true)) {
                let json_only = "Answer with one JSON value and nothing else.";
                system = Some(match system {
                    Some(system) => format!("{system}\n\n{json_only}"),
                    None => json_only.to_owned(),
                });
            }
            let messages = match executor.config_value("messages") {
                Some(Value::Array(messages)) => messages
                    .iter()
                    .filter_map(|message| {
                        let content = scope.substitute(message.get("content")?.as_str()?);
                        Some(match message.get("role").and_then(Value::as_str) {
                            Some("assistant") => ChatMessage::Assistant {
                                content: Some(content),
                                tool_calls: Vec::new(),
                            },
                            Some("system") => {
                                system = Some(content);
                                return None;
                            }
                            _ => ChatMessage::user(content),
                        })
                    })
                    .collect(),
                _ => vec![ChatMessage::user(
                    config_text(executor, "prompt", scope)
                        .ok_or("an llm_completion step needs config.prompt or config.messages")?,
                )],
            };
            (system, messages)
        }
        ExecutorKind::Agent => {
            let name = config_text(executor, "agent_name", scope).unwrap_or_default();
            let system = config_text(executor, "ai_instructions", scope)
                .unwrap_or_else(|| format!("You are the agent {name:?}. Answer the request."));
            let message = config_text(executor, "message", scope)
                .ok_or("an agent step needs config.message")?;
            (Some(system), vec![ChatMessage::user(message)])
        }
        _ => return Err(format!("{} steps are not model steps", executor.kind)),
    };
    let max_tokens = executor
        .config_value("max_tokens")
        .and_then(Value::as_u64)
        .and_then(|asked| u32::try_from(asked).ok())
        .map_or(model.max_tokens, |asked| asked.min(model.max_tokens));
    let temperature = executor
        .config_value("temperature")
        .and_then(Value::as_f64)
        .map(|temperature| temperature.clamp(0.0, 2.0) as f32);
    Ok(ChatRequest {
        model: model.model.clone(),
        system: system.map(Into::into),
        messages: messages.into(),
        tools: Default::default(),
        max_tokens: Some(max_tokens),
        temperature,
        stream: true,
    })
}

impl Attempt<'_, '_> {
    /// An `llm_completion` or `agent` step's answer from the server's provider.
    pub(super) async fn model_answer(&self) -> Result<String, AttemptError> {
        let (Some(model), Some(executor)) = (&self.context.options.model, &self.step.executor)
        else {
            return Err(AttemptError::failed(
                "this server has no model for workflow steps",
            ));
        };
        let call = ModelCall {
            executor,
            scope: self.scope,
            timeout: self.timeout(),
            output_limit: self.context.options.output_limit,
        };
        answer(model, call, self.token)
            .await
            .map_err(AttemptError::failed)
    }
}
