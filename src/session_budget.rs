//! The per-session byte cap, checked before a turn starts: what the session already holds
//! plus what this request adds must stay within `sessions.max_transcript_bytes`, or the
//! request gets 413 `session_too_large` and nothing runs. A continued session adds only the
//! request's last user message (the stored transcript is the history), a new one every
//! message sent. The store's total byte budget bounds all sessions together; this bounds one,
//! so a single conversation cannot take the whole budget.

use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::{TurnRequest, json_bytes};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub async fn check_room(state: &AppState, turn: &TurnRequest) -> Result<(), ApiError> {
    let cap = state.max_transcript_bytes;
    let stored = if turn.continuing {
        state.store.stored_bytes(&turn.key).await?
    } else {
        0
    };
    let added = if stored > 0 {
        turn.messages
            .iter()
            .rev()
            .find(|message| matches!(message, ChatMessage::User { .. }))
            .map_or(0, json_bytes)
    } else {
        json_bytes(&turn.messages)
    };
    if stored + added <= cap {
        return Ok(());
    }
    let (param, message) = if stored == 0 {
        (
            "messages",
            format!(
                "The request's messages take {added} bytes, more than a session may hold \
             ({cap} bytes); send less."
            ),
        )
    } else {
        (
            "session_id",
            format!(
                "Session `{}` holds {stored} bytes and this message would take it past the \
             {cap} bytes a session may hold; start a new session (send no session_id).",
                turn.key.id
            ),
        )
    };
    Err(ApiError::new(ErrorCode::SessionTooLarge, message).with_param(param))
}
