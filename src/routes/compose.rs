//! The Compose API: `POST /compose`, `/api/v1/compose` and the legacy `/api/v2/compose`, and
//! `GET /ws/compose` over WebSocket. A task goes in; the Session's refinement loop returns a
//! validated workflow (and, in act mode, its execution) as SSE events, the Vercel data
//! stream, raw NDJSON, one JSON object, or WebSocket text frames.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::{ComposeOptions, TurnEvent, TurnMode, TurnRequest};
use kubiya_actors::tools;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::openapi::SseEvent;
use crate::boundary::choice::{self, Choice};
use crate::boundary::guard::BoundaryRules;
use crate::boundary::websocket;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{self, ValidJson};
use crate::identity::Identity;
use crate::stalled_client::ClientSocket;
use crate::state::AppState;
use crate::turn;
use crate::wire::compose::{ComposeSseEncoder, NdjsonEncoder};
use crate::wire::event_json;
use crate::wire::filter::{FilteredEncoder, StreamFilter};
use crate::wire::vercel::VercelEncoder;
use crate::wire::{StreamEncoder, StreamFormat};

#[derive(Debug, Deserialize, ToSchema)]
pub struct ComposeRequest {
    /// What the workflow should do.
    task: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    context: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// `plan` (the default) or `act`; the legacy provider modes are accepted and ignored.
    #[serde(default)]
    #[schema(value_type = Option<ComposeMode>)]
    mode: Option<String>,
    /// The original's legacy switch: `true` means act.
    #[serde(default)]
    execute: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    /// Absent means `sse`; an explicit `null` means raw NDJSON events.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ComposeStreamFormat>)]
    stream_format: Option<Option<String>>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    /// Which events the stream carries; absent keeps tool events, drops thoughts.
    #[serde(default)]
    stream_filter: Option<StreamFilter>,
}

/// What `mode` may say (any case): plan or act, or one of the original's provider modes,
/// which are accepted and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComposeMode {
    Plan,
    Act,
    Adk,
    Mcp,
    Basic,
}

impl Choice for ComposeMode {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("plan", Self::Plan),
        ("act", Self::Act),
        ("adk", Self::Adk),
        ("mcp", Self::Mcp),
        ("basic", Self::Basic),
    ];
}

/// What `stream_format` may say (any case); `null` means raw NDJSON events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComposeStreamFormat {
    Sse,
    Vercel,
}

impl Choice for ComposeStreamFormat {
    const NAMES: &'static [(&'static str, Self)] = &[("sse", Self::Sse), ("vercel", Self::Vercel)];
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// How the answer goes out.
enum Delivery {
    Whole,
    Stream(StreamFormat),
}

struct ValidCompose {
    turn: TurnRequest,
    delivery: Delivery,
    act: bool,
    filter: StreamFilter,
}

fn validate(
    body: ComposeRequest,
    identity: &Identity,
    state: &AppState,
) -> Result<ValidCompose, ApiError> {
    let task = body.task.trim();
    if task.is_empty() {
        return Err(ApiError::invalid_field(
            "task",
            "`task` must describe what the workflow should do.",
        ));
    }
    let mode = body
        .mode
        .as_deref()
        .map(|mode| choice::parse::<ComposeMode>(mode, "mode"))
        .transpose()?;
    let act = match mode {
        Some(ComposeMode::Act) => true,
        Some(ComposeMode::Plan) => false,
        // The original's provider modes are accepted and ignored; `execute` then decides.
        None | Some(ComposeMode::Adk | ComposeMode::Mcp | ComposeMode::Basic) => {
            body.execute.unwrap_or(false)
        }
    };
    let streamed = match body.stream_format {
        None => StreamFormat::ComposeSse,
        Some(None) => StreamFormat::Ndjson,
        Some(Some(format)) => match choice::parse(&format, "stream_format")? {
            ComposeStreamFormat::Sse => StreamFormat::ComposeSse,
            ComposeStreamFormat::Vercel => StreamFormat::Vercel,
        },
    };
    let delivery = if body.stream.unwrap_or(true) {
        Delivery::Stream(streamed)
    } else {
        Delivery::Whole
    };
    // Context keys may come with or without the `context.` prefix.
    let context: Map<String, Value> = body
        .context
        .into_iter()
        .map(|(key, value)| {
            (
                key.strip_prefix("context.")
                    .map(str::to_owned)
                    .unwrap_or(key),
                value,
            )
        })
        .collect();
    let runner = context
        .get("preferred_runner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut message = format!("Task: {task}");
    if !context.is_empty() {
        message.push_str(&format!("\n\nContext: {}", Value::Object(context)));
    }
    if !body.parameters.is_empty() {
        message.push_str(&format!(
            "\n\nParameters: {}",
            Value::Object(body.parameters.clone())
        ));
    }
    let (key, continuing) = identity.turn_session(body.user_id, body.session_id)?;
    let settings = &state.compose;
    Ok(ValidCompose {
        turn: TurnRequest {
            key,
            continuing,
            messages: vec![ChatMessage::user(message)],
            instructions: None,
            require_approval: false,
            approval: None,
            regenerate: false,
            mcp_access: identity.tenant.mcp_access.clone(),
            limits: identity.tenant.limits,
            mode: TurnMode::Compose(ComposeOptions {
                act,
                max_attempts: settings.max_loop_iterations.max(1),
                timeout: Duration::from_secs(settings.timeout_secs),
                model: (!settings.generation_model.is_empty())
                    .then(|| settings.generation_model.clone()),
                parameters: body.parameters,
                runner,
            }),
        },
        delivery,
        act,
        filter: body.stream_filter.unwrap_or_default(),
    })
}

fn encoder(format: StreamFormat, filter: StreamFilter) -> Box<dyn StreamEncoder> {
    let inner: Box<dyn StreamEncoder> = match format {
        StreamFormat::Vercel => Box::new(VercelEncoder),
        StreamFormat::Ndjson => Box::new(NdjsonEncoder),
        _ => Box::new(ComposeSseEncoder::default()),
    };
    Box::new(FilteredEncoder::new(inner, filter))
}

#[utoipa::path(post, path = "/compose", tag = "compose",
    request_body(content = ComposeRequest, content_type = "application/json"),
    params(("X-Session-Id" = Option<String>, Header, description = "Continue this session"),
        ("X-User-Id" = Option<String>, Header, description = "The user")),
    responses((status = 200, description = "The workflow (and, in act mode, its execution) as one JSON answer or a stream of events",
        content((Object = "application/json"), (SseEvent = "text/event-stream"), (String = "application/x-ndjson"), (String = "text/plain"))),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn compose(
    state: web::Data<AppState>,
    identity: Identity,
    socket: ClientSocket,
    ValidJson(body): ValidJson<ComposeRequest>,
) -> Result<HttpResponse, ApiError> {
    let ValidCompose {
        turn,
        delivery,
        act,
        filter,
    } = validate(body, &identity, &state)?;
    let started = turn::start(&state, &identity.tenant, turn).await?;
    let format = match delivery {
        Delivery::Stream(format) => format,
        Delivery::Whole => return whole(&state, started, act).await,
    };
    Ok(started.into_response(format, encoder(format, filter), socket))
}

/// The non-streamed answer: the workflow with metadata, and the execution in act mode.
async fn whole(
    state: &AppState,
    started: turn::StartedTurn,
    act: bool,
) -> Result<HttpResponse, ApiError> {
    let session = started.session_header();
    let session_id = started.session_id.clone();
    let mut workflow = Value::Null;
    let mut iterations = 0;
    let mut tokens = 0;
    let mut execution = Value::Null;
    started
        .collect(|event| match event {
            TurnEvent::Workflow(data) => {
                iterations += 1;
                workflow = data.to_value();
            }
            TurnEvent::ValidationFailed { .. } => iterations += 1,
            TurnEvent::ToolResult { name, result, .. } if name == tools::EXECUTE_WORKFLOW => {
                execution = result
            }
            TurnEvent::Finished { usage, .. } => tokens = usage.input + usage.output,
            _ => {}
        })
        .await?;
    let generated_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let model = match state.compose.generation_model.as_str() {
        "" => state.providers.model.clone(),
        model => model.to_owned(),
    };
    let mut body = json!({
        "workflow": workflow,
        "metadata": {
            "generated_at": generated_at,
            "model": model,
            "tokens_used": tokens,
            "iterations": iterations,
            "session_id": session_id,
        },
    });
    if act {
        body["execution_result"] = json!({
            "execution_id": execution["execution_id"],
            "status": execution["status"],
            "steps": execution["steps"],
            "duration": execution["duration"],
        });
    }
    Ok(HttpResponse::Ok().insert_header(session).json(body))
}

/// `GET /ws/compose`: one JSON compose request in, each event out as a text frame, then a
/// normal close; a bad request gets an `error` frame and a close with the reason. The
/// request is read under the boundary's rules ([`websocket`]).
#[utoipa::path(get, path = "/ws/compose", tag = "compose",
    responses((status = 101, description = "Switched to a WebSocket: send one compose request as a text message, read events as text messages"),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn compose_ws(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    boundary: web::Data<BoundaryRules>,
    identity: Identity,
) -> actix_web::Result<HttpResponse> {
    let (response, mut socket, incoming) = actix_ws::handle(&req, payload).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("This route takes a WebSocket handshake: {error}."),
        )
    })?;
    let rules = boundary.websocket;
    actix_web::rt::spawn(async move {
        let mut incoming = websocket::limit(incoming, rules);
        let request = match websocket::first_request(&mut incoming, &mut socket, rules).await {
            Ok(request) => request,
            Err(reason) => {
                let _ = socket.close(reason).await;
                return;
            }
        };
        let mut filter = StreamFilter::default();
        let started = match extract::parse::<ComposeRequest>(&request)
            .and_then(|body| validate(body, &identity, &state))
        {
            Ok(valid) => {
                filter = valid.filter;
                turn::start(&state, &identity.tenant, valid.turn).await
            }
            Err(error) => Err(error),
        };
        let (first, mut events, _guard) = match started {
            Ok(started) => started.into_parts(),
            Err(error) => {
                let frame =
                    json!({"type": "error", "message": error.message, "code": error.code.code()});
                let _ = socket.text(frame.to_string()).await;
                let reason = CloseReason {
                    code: CloseCode::Policy,
                    description: Some(error.message),
                };
                let _ = socket.close(Some(reason)).await;
                return;
            }
        };
        let mut next = Some(first);
        while let Some(event) = next {
            let terminal = event.is_terminal();
            if let Some(frame) = event_json(&event).filter(|_| filter.keeps(&event))
                && socket.text(frame.to_string()).await.is_err()
            {
                // The client left: dropping the receiver stops the Session.
                return;
            }
            next = if terminal { None } else { events.recv().await };
        }
        let _ = socket.close(Some(CloseCode::Normal.into())).await;
    });
    Ok(response)
}
