//! The Compose API: `POST /compose`, `/api/v1/compose` and the legacy `/api/v2/compose`, and
//! `GET /ws/compose` over WebSocket. A task goes in; the Session's refinement loop returns a
//! validated workflow (and, in act mode, its execution) as SSE events, the Vercel data
//! stream, raw NDJSON, one JSON object, or WebSocket text frames.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason};
use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::{ComposeOptions, SessionKey, TurnEvent, TurnMode, TurnRequest};
use kubiya_actors::tools;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::extract::{self, ValidJson};
use crate::stalled_client::ClientSocket;
use crate::state::AppState;
use crate::tenant::Tenant;
use crate::turn;
use crate::wire::compose::{ComposeSseEncoder, NdjsonEncoder};
use crate::wire::event_json;
use crate::wire::vercel::VercelEncoder;
use crate::wire::{StreamEncoder, StreamFormat};

const DEFAULT_USER: &str = "default_user";

#[derive(Debug, Deserialize)]
pub struct ComposeRequest {
    task: String,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    mode: Option<String>,
    /// The original's legacy switch: `true` means act.
    #[serde(default)]
    execute: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    /// Absent means `sse`; an explicit `null` means raw NDJSON events.
    #[serde(default, deserialize_with = "present")]
    stream_format: Option<Option<String>>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
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
}

fn validate(
    body: ComposeRequest,
    tenant: &Tenant,
    state: &AppState,
) -> Result<ValidCompose, ApiError> {
    let task = body.task.trim();
    if task.is_empty() {
        return Err(ApiError::invalid_field(
            "task",
            "`task` must describe what the workflow should do.",
        ));
    }
    let act = match body.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("act") => true,
        Some("plan") => false,
        // Provider modes such as `adk` are accepted and ignored, as the original did.
        _ => body.execute.unwrap_or(false),
    };
    let format = match body.stream_format {
        None => Some("sse".to_owned()),
        Some(format) => format.map(|f| f.to_ascii_lowercase()),
    };
    let streamed = match format.as_deref() {
        Some("sse") => StreamFormat::ComposeSse,
        Some("vercel") => StreamFormat::Vercel,
        None => StreamFormat::Ndjson,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "stream_format",
                format!("Unknown stream_format `{other}`: use \"sse\", \"vercel\" or null."),
            ));
        }
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
    let settings = &state.compose;
    Ok(ValidCompose {
        turn: TurnRequest {
            key: SessionKey {
                tenant: tenant.id.to_string(),
                user: body.user_id.unwrap_or_else(|| DEFAULT_USER.to_owned()),
                id: body
                    .session_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            },
            continuing: body.session_id.is_some(),
            messages: vec![ChatMessage::user(message)],
            instructions: None,
            require_approval: false,
            approval: None,
            regenerate: false,
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
    })
}

fn encoder(format: StreamFormat) -> Box<dyn StreamEncoder> {
    match format {
        StreamFormat::Vercel => Box::new(VercelEncoder),
        StreamFormat::Ndjson => Box::new(NdjsonEncoder),
        _ => Box::new(ComposeSseEncoder::default()),
    }
}

pub async fn compose(
    state: web::Data<AppState>,
    tenant: Tenant,
    socket: ClientSocket,
    ValidJson(body): ValidJson<ComposeRequest>,
) -> Result<HttpResponse, ApiError> {
    let ValidCompose {
        turn,
        delivery,
        act,
    } = validate(body, &tenant, &state)?;
    let started = turn::start(&state, &tenant, turn).await?;
    let format = match delivery {
        Delivery::Stream(format) => format,
        Delivery::Whole => return whole(&state, started, act).await,
    };
    let heartbeat = Duration::from_secs(state.agent.heartbeat_secs);
    Ok(started.into_response(format, encoder(format), heartbeat, socket))
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
                workflow = data;
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
/// normal close; a bad request gets an `error` frame and a close with the reason.
pub async fn compose_ws(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    tenant: Tenant,
) -> actix_web::Result<HttpResponse> {
    let (response, mut socket, mut incoming) = actix_ws::handle(&req, payload)?;
    actix_web::rt::spawn(async move {
        let request = loop {
            match incoming.recv().await {
                Some(Ok(actix_ws::Message::Text(text))) => break text,
                Some(Ok(actix_ws::Message::Ping(bytes))) => {
                    let _ = socket.pong(&bytes).await;
                }
                Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        };
        let started = match extract::parse::<ComposeRequest>(request.as_bytes())
            .and_then(|body| validate(body, &tenant, &state))
        {
            Ok(valid) => turn::start(&state, &tenant, valid.turn).await,
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
            if let Some(frame) = event_json(&event)
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
