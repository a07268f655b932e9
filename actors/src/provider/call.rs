//! One model call from start to its terminal event: try the primary upstream, retry what is
//! retryable with backoff while nothing has reached the caller yet, then fall back to the
//! next upstream; decode the streamed or whole body into [`LlmEvent`]s and forward them.
//! Runs inside the `LlmProvider` actor's context; dropping the future drops the HTTP
//! response, which closes the upstream connection. A response that ended well is read to its
//! end after its terminal event went out, so its connection goes back to the pool. The
//! `Finished` event goes out only once the request is dropped: the caller appends to the
//! transcript the request shares ([`super::Transcript`]) as soon as it has it, and would copy
//! it while the request still held it.

use std::time::Duration;

use actix::{Message, Recipient};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::accounting::TokenAccounting;
use super::codec::{self, StreamDecoder};
use super::event::{FinishReason, LlmEvent, ProviderError, TimeoutPhase};
use super::message::ChatRequest;
use super::offline;
use super::preset::Protocol;
use super::upstream::Upstream;

/// The message that starts one model call on an `LlmProvider`: it streams the call to
/// `reply_to` (deltas, tool calls, usage, then exactly one `Finished` or `Failed`), and sends
/// nothing after `cancel` fires or `reply_to` closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartCompletion {
    pub request: ChatRequest,
    pub reply_to: Recipient<LlmEvent>,
    pub cancel: CancellationToken,
}

/// Error bodies are read for their message only; a megabyte of HTML is not a message.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;
/// After the terminal event only the body's end should follow; an upstream that keeps
/// sending more than this, or takes longer, loses the connection instead of keeping it.
const MAX_TRAILING_BYTES: usize = 64 * 1024;
const TRAILING_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards events to the caller and remembers whether any output reached it, which is
/// what decides whether a retry is still invisible.
struct Sink<'a> {
    reply_to: &'a Recipient<LlmEvent>,
    accounting: &'a TokenAccounting,
    output_started: bool,
    /// The call's `Finished`, held back until the request is dropped.
    finished: Option<FinishReason>,
}

/// Why an attempt ended without a terminal event sent.
enum AttemptError {
    Provider(ProviderError),
    CallerGone,
}

impl From<ProviderError> for AttemptError {
    fn from(error: ProviderError) -> Self {
        AttemptError::Provider(error)
    }
}

impl Sink<'_> {
    /// Sends a non-failure event; a `Failed` event is handed back as an error so the retry
    /// logic decides what the caller sees.
    async fn deliver(&mut self, event: LlmEvent) -> Result<(), AttemptError> {
        match event {
            LlmEvent::Failed(error) => Err(AttemptError::Provider(error)),
            LlmEvent::Finished { reason } => {
                self.finished = Some(reason);
                Ok(())
            }
            event => {
                if let LlmEvent::Usage(usage) = &event {
                    self.accounting.record(*usage);
                }
                if matches!(
                    event,
                    LlmEvent::TextDelta(_) | LlmEvent::ReasoningDelta(_) | LlmEvent::ToolCall(_)
                ) {
                    self.output_started = true;
                }
                self.send(event).await
            }
        }
    }

    /// Resolves once the caller took the event and has room for more, so a caller that
    /// cannot pass events on (its client reads slowly) slows the upstream read down.
    async fn send(&self, event: LlmEvent) -> Result<(), AttemptError> {
        self.reply_to
            .send(event)
            .await
            .map_err(|_| AttemptError::CallerGone)
    }
}

pub(super) async fn complete(
    upstreams: &[Upstream],
    message: StartCompletion,
    accounting: &TokenAccounting,
) {
    let StartCompletion {
        request,
        reply_to,
        cancel,
    } = message;
    let mut sink = Sink {
        reply_to: &reply_to,
        accounting,
        output_started: false,
        finished: None,
    };
    let deadline = Instant::now() + upstreams[0].config.timeouts.total;
    let outcome = tokio::select! {
        outcome = attempt_all(upstreams, request, &mut sink) => outcome,
        () = cancel.cancelled() => Err(AttemptError::CallerGone),
        () = sleep_until(deadline) => Err(AttemptError::Provider(ProviderError::Timeout { phase: TimeoutPhase::Total })),
    };
    // The request is dropped by now: `attempt_all` owned it.
    match outcome {
        Ok(()) => {
            if let Some(reason) = sink.finished.take()
                && !cancel.is_cancelled()
            {
                let _ = sink.send(LlmEvent::Finished { reason }).await;
            }
        }
        Err(AttemptError::CallerGone) => {
            tracing::debug!("model call cancelled: the caller went away")
        }
        Err(AttemptError::Provider(error)) => {
            tracing::warn!(error = %error, "model call failed");
            let _ = sink.send(LlmEvent::Failed(error)).await;
        }
    }
}

/// Every upstream in order, each with its retries; returns once a terminal event was sent.
async fn attempt_all(
    upstreams: &[Upstream],
    mut request: ChatRequest,
    sink: &mut Sink<'_>,
) -> Result<(), AttemptError> {
    let requested_model = std::mem::take(&mut request.model);
    let mut last_error = None;
    for (index, upstream) in upstreams.iter().enumerate() {
        request.model = if index == 0 && !requested_model.is_empty() {
            requested_model.clone()
        } else {
            upstream.config.model.clone()
        };
        if upstream.config.protocol == Protocol::Offline {
            for event in offline::plan(&request) {
                sink.deliver(event).await?;
            }
            return Ok(());
        }
        let retry = upstream.config.retry;
        for attempt in 0..=retry.max_retries {
            // Encoded for each attempt rather than kept for a retry: an open stream would
            // otherwise hold its request body (a few KB, the tool catalog included) for as long
            // as it streams, and retries are rare.
            let body = codec::encode_request(upstream.config.protocol, &request)
                .map(Bytes::from)
                .unwrap_or_default();
            let error = match attempt_once(upstream, body, request.stream, sink).await {
                Ok(()) => return Ok(()),
                Err(AttemptError::CallerGone) => return Err(AttemptError::CallerGone),
                Err(AttemptError::Provider(error)) if sink.output_started => {
                    return Err(error.into());
                }
                Err(AttemptError::Provider(error)) => error,
            };
            let retrying = error.is_retryable() && attempt < retry.max_retries;
            tracing::warn!(
                provider = %upstream.config.kind,
                attempt = attempt + 1,
                retrying,
                error = %error,
                "model call attempt failed"
            );
            if retrying {
                sleep(retry.delay(attempt, retry_after(&error))).await;
            }
            last_error = Some(error);
            if !retrying {
                break;
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| ProviderError::protocol("no upstream is configured"))
        .into())
}

fn retry_after(error: &ProviderError) -> Option<Duration> {
    match error {
        ProviderError::RateLimited { retry_after, .. } => *retry_after,
        _ => None,
    }
}

/// One HTTP exchange with one upstream.
async fn attempt_once(
    upstream: &Upstream,
    body: Bytes,
    stream: bool,
    sink: &mut Sink<'_>,
) -> Result<(), AttemptError> {
    let config = &upstream.config;
    let mut response = upstream
        .build_request_for(stream)
        .send_body(body)
        .await
        .map_err(classify_send_error)?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(ProviderError::parse_retry_after);
        let body = timeout(
            config.timeouts.between_chunks,
            response.body().limit(MAX_ERROR_BODY),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
        return Err(ProviderError::from_status(status.as_u16(), &body, retry_after).into());
    }
    if !stream {
        let body = timeout(
            config.timeouts.between_chunks,
            response.body().limit(MAX_RESPONSE_BODY),
        )
        .await
        .map_err(|_| ProviderError::Timeout {
            phase: TimeoutPhase::Stream,
        })?
        .map_err(|err| ProviderError::UpstreamUnavailable {
            status: None,
            message: format!("reading the response failed: {err}"),
        })?;
        for event in codec::parse_response(config.protocol, &body).unwrap_or_default() {
            sink.deliver(event).await?;
        }
        return Ok(());
    }
    let Some(mut decoder) = StreamDecoder::new(config.protocol) else {
        return Err(ProviderError::protocol("this protocol cannot stream").into());
    };
    let mut events = Vec::with_capacity(8);
    loop {
        let chunk = timeout(config.timeouts.between_chunks, response.next())
            .await
            .map_err(|_| ProviderError::Timeout {
                phase: TimeoutPhase::Stream,
            })?;
        match chunk {
            Some(Ok(bytes)) => decoder.feed(&bytes, &mut events),
            Some(Err(err)) => {
                return Err(ProviderError::UpstreamUnavailable {
                    status: None,
                    message: format!("the connection broke mid-stream: {err}"),
                }
                .into());
            }
            None => decoder.finish(&mut events),
        }
        if decoder.is_done() {
            // The end of the body is read on the side, out of reach of this call's
            // cancellation, so the connection goes back to the pool: the last events let the
            // caller finish its turn, which cancels this call, possibly before it resumes.
            actix::spawn(read_to_end(response));
            for event in events.drain(..) {
                sink.deliver(event).await?;
            }
            return Ok(());
        }
        for event in events.drain(..) {
            sink.deliver(event).await?;
        }
    }
}

/// Reads a finished response's remaining body so awc returns its connection to the pool;
/// dropping a response before its end closes the connection.
async fn read_to_end<S>(mut response: awc::ClientResponse<S>)
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut left = MAX_TRAILING_BYTES;
    while let Ok(Some(Ok(bytes))) = timeout(TRAILING_TIMEOUT, response.next()).await {
        let Some(rest) = left.checked_sub(bytes.len()) else {
            return;
        };
        left = rest;
    }
}

fn classify_send_error(error: awc::error::SendRequestError) -> ProviderError {
    use awc::error::{ConnectError, SendRequestError};
    match error {
        SendRequestError::Connect(ConnectError::Timeout) => ProviderError::Timeout {
            phase: TimeoutPhase::Connect,
        },
        SendRequestError::Timeout => ProviderError::Timeout {
            phase: TimeoutPhase::Response,
        },
        other => ProviderError::connect(other),
    }
}
