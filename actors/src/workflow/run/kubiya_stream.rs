//! The Kubiya platform's event stream, decoded: [`PlatformStream`] turns the SSE events of a
//! platform run (plain JSON or Vercel-style `2:{…}` records, where `step` is an object) into
//! our flat [`StepEvent`]s (`step` is the step's name; a step's log records, `log`,
//! `step_log`, `step_output` or any record with a step and an `output` text, become
//! `step_output` within a live budget per step), fills in what the platform leaves out
//! (a `step_running` before a lone `step_complete`, the steps it never reached) and decides
//! how the run ended. Pure, so tests and the fuzzer feed it captures; the
//! [`KubiyaRunner`](super::kubiya::KubiyaRunner) feeds it the live stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::event::{OutputStream, StepEvent, duration_millis, format_duration, now_millis};
use super::live_output::{LiveBudget, MAX_LINE_BYTES};
use crate::framing::sse::{SseDecoder, SseEvent};
use crate::workflow::dsl::model::Workflow;
use crate::workflow::run::status::ExecutionStatus;

/// How following the stream stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// The platform said how the workflow ended.
    Reported {
        success: bool,
        error: Option<String>,
    },
    /// An end marker (`[DONE]`, `d:`, `event: end`, `end: true`, `finishReason`) without a
    /// verdict.
    Marker,
    /// The body ended with no end marker at all.
    BodyEnded,
    Failed(String),
    Cancelled,
}

/// What we know of one platform step.
#[derive(Debug, Default)]
struct PlatformStep {
    /// When its current attempt started running, by our clock.
    running_since: Option<Instant>,
    /// It completed, failed for good or was skipped.
    settled: bool,
    /// Its live output allowance, from its first output record on.
    live: Option<Arc<LiveBudget>>,
}

/// The platform's event stream, mapped to ours; pure, so tests can feed it captures.
#[derive(Debug)]
pub(super) struct PlatformStream {
    runner: String,
    output_limit: usize,
    steps: HashMap<String, PlatformStep>,
    failed_steps: Vec<String>,
    last_error: Option<String>,
    /// A record with step or workflow information arrived since the last look.
    progressed: bool,
}

/// The step status words the platform uses for each outcome.
const DONE_WORDS: [&str; 5] = ["finished", "completed", "complete", "success", "succeeded"];
const FAILED_WORDS: [&str; 3] = ["failed", "error", "errored"];

impl PlatformStream {
    pub(super) fn new(runner: &str, output_limit: usize) -> Self {
        Self {
            runner: runner.to_owned(),
            output_limit,
            steps: HashMap::new(),
            failed_steps: Vec::new(),
            last_error: None,
            progressed: false,
        }
    }

    /// Whether the platform reported progress since the last call; heartbeats do not count.
    pub(super) fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.progressed)
    }

    /// Settles every step of the workflow the platform left open, so none stays `pending`
    /// or `running` after the run: one that never started is `step_skipped`, one still
    /// running when a run failed is `step_failed` (a cancelled run's running steps become
    /// `cancelled` with the execution).
    pub(super) fn unsettled(
        &self,
        workflow: &Workflow,
        status: ExecutionStatus,
        error: Option<&str>,
    ) -> Vec<StepEvent> {
        let why = match (status, error) {
            (ExecutionStatus::Cancelled, _) => "the run was cancelled".to_owned(),
            (_, Some(error)) => format!("the run ended first: {error}"),
            (_, None) => "the Kubiya platform did not run it".to_owned(),
        };
        let why = truncate(why, self.output_limit);
        let mut events = Vec::new();
        for step in &workflow.steps {
            let state = self.steps.get(&step.name);
            if state.is_some_and(|state| state.settled) {
                continue;
            }
            let started = state.is_some_and(|state| state.running_since.is_some());
            if !started {
                events.push(StepEvent::StepSkipped {
                    step: step.name.clone(),
                    reason: why.clone(),
                    timestamp: now_millis(),
                });
            } else if status == ExecutionStatus::Failed {
                events.push(StepEvent::StepFailed {
                    step: step.name.clone(),
                    error: why.clone(),
                    will_retry: false,
                    timestamp: now_millis(),
                });
            }
        }
        events
    }

    /// Maps one SSE event, appending ours to `out`; `Some` when the stream is over.
    pub(super) fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StepEvent>,
    ) -> Option<Ending> {
        let data = event.data.trim();
        match event.event.as_deref() {
            Some("end") => return Some(Ending::Marker),
            Some("error") => {
                self.progressed = true;
                self.last_error = Some(error_text(data));
                return None;
            }
            _ => {}
        }
        if data.is_empty() {
            return None;
        }
        if data == "[DONE]" {
            return Some(Ending::Marker);
        }
        let (prefix, payload) = split_record_prefix(data);
        match prefix {
            Some('d') => return Some(Ending::Marker),
            Some('3') => {
                self.progressed = true;
                self.last_error = Some(error_text(payload));
                return None;
            }
            // Text parts of a data stream carry no step information.
            Some('0') => return None,
            _ => {}
        }
        let value: Value = match serde_json::from_str(payload) {
            Ok(value) => value,
            Err(_) => {
                tracing::debug!(data, "platform stream line that is not JSON ignored");
                return None;
            }
        };
        let records = match value {
            Value::Array(records) => records,
            record => vec![record],
        };
        records
            .iter()
            .find_map(|record| self.on_record(record, prefix == Some('e'), out))
    }

    fn on_record(
        &mut self,
        record: &Value,
        finish_step_part: bool,
        out: &mut Vec<StepEvent>,
    ) -> Option<Ending> {
        let kind = record.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "heartbeat" | "ping" | "") {
            self.progressed = true;
        }
        match kind {
            "step_running" | "step_start" | "step_started" => {
                if let Some((name, step)) = step_of(record) {
                    self.running(&name, step, out);
                }
            }
            "step_update" | "step_complete" | "step_completed" | "step_finished" => {
                if let Some((name, step)) = step_of(record) {
                    let status = word(step, "status");
                    if kind == "step_update"
                        && !DONE_WORDS.contains(&status.as_str())
                        && !FAILED_WORDS.contains(&status.as_str())
                        && status != "skipped"
                    {
                        self.running(&name, step, out);
                    } else {
                        self.settled(&name, step, &status, out);
                    }
                }
            }
            "step_failed" | "step_error" => {
                if let Some((name, step)) = step_of(record) {
                    self.failed(&name, step, out);
                }
            }
            "step_skipped" => {
                if let Some((name, step)) = step_of(record) {
                    self.skipped(&name, step, out);
                }
            }
            "log" | "step_log" | "step_output" | "output" => {
                if let Some((name, step)) = step_of(record) {
                    self.output(&name, step, record, out);
                }
            }
            "workflow_complete" | "workflow_completed" | "workflow_finished" | "workflow_end" => {
                let status = word(record, "status");
                let success = record
                    .get("success")
                    .and_then(Value::as_bool)
                    .unwrap_or_else(|| DONE_WORDS.contains(&status.as_str()));
                return Some(Ending::Reported {
                    success,
                    error: error_of(record),
                });
            }
            "workflow_failed" | "workflow_error" => {
                return Some(Ending::Reported {
                    success: false,
                    error: error_of(record),
                });
            }
            "error" => {
                self.last_error = Some(
                    error_of(record).unwrap_or_else(|| "the platform reported an error".into()),
                );
            }
            "heartbeat" | "ping" | "workflow_start" | "workflow_started" => {}
            _ => {
                if record.get("end").and_then(Value::as_bool) == Some(true)
                    || (record.get("finishReason").is_some() && !finish_step_part)
                {
                    return Some(Ending::Marker);
                }
                if let Some((name, step)) = step_of(record)
                    && output_text(step, record).is_some()
                {
                    self.output(&name, step, record, out);
                } else if let Some(error) = error_of(record) {
                    self.last_error = Some(error);
                }
            }
        }
        None
    }

    /// A log record of a running step: a `step_output` chunk, within the step's live budget
    /// (what is over it is dropped; the step's output comes whole when it completes).
    fn output(&mut self, name: &str, step: &Value, record: &Value, out: &mut Vec<StepEvent>) {
        let Some(text) = output_text(step, record) else {
            return;
        };
        if self.steps.get(name).is_some_and(|known| known.settled) {
            return;
        }
        self.running(name, &Value::Null, out);
        let state = self.steps.entry(name.to_owned()).or_default();
        let budget = state.live.get_or_insert_with(LiveBudget::new);
        let text = truncate(text, MAX_LINE_BYTES.min(self.output_limit));
        let granted = budget.take(text.len());
        let text = truncate(text, granted);
        if text.is_empty() {
            return;
        }
        let stream = if word(record, "stream") == "stderr" || word(step, "stream") == "stderr" {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        };
        out.push(StepEvent::StepOutput {
            step: name.to_owned(),
            stream,
            text,
            timestamp: now_millis(),
        });
    }

    fn running(&mut self, name: &str, step: &Value, out: &mut Vec<StepEvent>) {
        let state = self.steps.entry(name.to_owned()).or_default();
        if state.running_since.is_some() || state.settled {
            return;
        }
        state.running_since = Some(Instant::now());
        let message = step.get("message").and_then(Value::as_str).map_or_else(
            || format!("running on Kubiya runner {}", self.runner),
            str::to_owned,
        );
        out.push(StepEvent::StepRunning {
            step: name.to_owned(),
            message,
            timestamp: now_millis(),
        });
    }

    fn settled(&mut self, name: &str, step: &Value, status: &str, out: &mut Vec<StepEvent>) {
        if FAILED_WORDS.contains(&status) {
            self.failed(name, step, out);
        } else if status == "skipped" {
            self.skipped(name, step, out);
        } else {
            self.complete(name, step, out);
        }
    }

    fn complete(&mut self, name: &str, step: &Value, out: &mut Vec<StepEvent>) {
        self.running(name, step, out);
        let state = self.steps.entry(name.to_owned()).or_default();
        if state.settled {
            return;
        }
        state.settled = true;
        let measured = state
            .running_since
            .take()
            .map_or(Duration::ZERO, |since| since.elapsed());
        let duration = step
            .get("duration")
            .and_then(parse_platform_duration)
            .unwrap_or(measured);
        let output = match step.get("output") {
            Some(Value::String(output)) => output.trim().to_owned(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        };
        out.push(StepEvent::StepComplete {
            step: name.to_owned(),
            output: truncate(output, self.output_limit),
            duration: format_duration(duration),
            duration_ms: duration_millis(duration),
            timestamp: now_millis(),
        });
    }

    fn failed(&mut self, name: &str, step: &Value, out: &mut Vec<StepEvent>) {
        self.running(name, step, out);
        let state = self.steps.entry(name.to_owned()).or_default();
        if state.settled {
            return;
        }
        let will_retry = ["canRetry", "will_retry", "willRetry"]
            .iter()
            .find_map(|key| step.get(*key).and_then(Value::as_bool))
            .unwrap_or(false);
        state.running_since = None;
        state.settled = !will_retry;
        let error = error_of(step).unwrap_or_else(|| match step.get("exitCode") {
            Some(code) => format!("the step failed with exit code {code}"),
            None => "the step failed".to_owned(),
        });
        if !will_retry {
            self.failed_steps.push(name.to_owned());
        }
        out.push(StepEvent::StepFailed {
            step: name.to_owned(),
            error: truncate(error, self.output_limit),
            will_retry,
            timestamp: now_millis(),
        });
    }

    fn skipped(&mut self, name: &str, step: &Value, out: &mut Vec<StepEvent>) {
        let state = self.steps.entry(name.to_owned()).or_default();
        if state.settled {
            return;
        }
        state.settled = true;
        state.running_since = None;
        out.push(StepEvent::StepSkipped {
            step: name.to_owned(),
            reason: error_of(step)
                .or_else(|| word_opt(step, "reason"))
                .unwrap_or_else(|| "skipped by the Kubiya platform".to_owned()),
            timestamp: now_millis(),
        });
    }

    /// The run's status and, unless it succeeded, why.
    pub(super) fn verdict(&self, ending: Ending) -> (ExecutionStatus, Option<String>) {
        let failure = || {
            self.last_error.clone().or_else(|| {
                self.failed_steps
                    .first()
                    .map(|step| format!("step '{step}' failed on the Kubiya platform"))
            })
        };
        match ending {
            Ending::Reported { success: true, .. } => (ExecutionStatus::Success, None),
            Ending::Reported {
                success: false,
                error,
            } => {
                (
                    ExecutionStatus::Failed,
                    Some(error.or_else(failure).unwrap_or_else(|| {
                        "the workflow failed on the Kubiya platform".to_owned()
                    })),
                )
            }
            Ending::Marker => match failure() {
                Some(error) => (ExecutionStatus::Failed, Some(error)),
                None => (ExecutionStatus::Success, None),
            },
            Ending::BodyEnded => (
                ExecutionStatus::Failed,
                Some(self.last_error.clone().unwrap_or_else(|| {
                    "the Kubiya platform's event stream ended before the workflow completed"
                        .to_owned()
                })),
            ),
            Ending::Failed(error) => (
                ExecutionStatus::Failed,
                Some(match &self.last_error {
                    Some(said) => format!("{said} ({error})"),
                    None => error,
                }),
            ),
            Ending::Cancelled => (
                ExecutionStatus::Cancelled,
                Some("the run was cancelled; the Kubiya platform may still finish it".to_owned()),
            ),
        }
    }
}

/// `2:{…}` → (`Some('2')`, `{…}`); plain JSON has no prefix.
fn split_record_prefix(data: &str) -> (Option<char>, &str) {
    let mut chars = data.chars();
    match (chars.next(), chars.next()) {
        (Some(code), Some(':')) if code.is_ascii_alphanumeric() => (Some(code), &data[2..]),
        _ => (None, data),
    }
}

/// The step's name and the object holding its fields (the record itself when `step` is a
/// plain name).
fn step_of(record: &Value) -> Option<(String, &Value)> {
    match record.get("step") {
        Some(step @ Value::Object(fields)) => ["name", "id", "step_name"]
            .iter()
            .find_map(|key| fields.get(*key).and_then(Value::as_str))
            .map(|name| (name.to_owned(), step)),
        Some(Value::String(name)) => Some((name.clone(), record)),
        _ => ["step_name", "stepName"]
            .iter()
            .find_map(|key| record.get(*key).and_then(Value::as_str))
            .map(|name| (name.to_owned(), record)),
    }
}

fn word(value: &Value, key: &str) -> String {
    word_opt(value, key)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn word_opt(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned)
}

/// The text of a log record: `output`, `text`, `line`, `log` or `message`, on the step
/// object or the record.
fn output_text(step: &Value, record: &Value) -> Option<String> {
    ["output", "text", "line", "log", "message"]
        .iter()
        .find_map(|key| {
            step.get(*key)
                .or_else(|| record.get(*key))
                .and_then(Value::as_str)
        })
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// `error` as a string, or `error.message`, or a top-level `message` beside an error type.
fn error_of(value: &Value) -> Option<String> {
    match value.get("error") {
        Some(Value::String(error)) if !error.trim().is_empty() => Some(error.clone()),
        Some(Value::Object(error)) => error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| Some(Value::Object(error.clone()).to_string())),
        _ if value.get("type").and_then(Value::as_str) == Some("error") => {
            word_opt(value, "message")
        }
        _ => None,
    }
}

/// An error payload that may be a JSON string, a JSON object or plain text.
fn error_text(payload: &str) -> String {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::String(text)) => text,
        Ok(value) => error_of(&value).unwrap_or_else(|| value.to_string()),
        Err(_) => payload.to_owned(),
    }
}

/// Seconds as a number, or Go-style text: `1.5s`, `350ms`, `2m3s`, `1h`.
fn parse_platform_duration(value: &Value) -> Option<Duration> {
    match value {
        Value::Number(secs) => Duration::try_from_secs_f64(secs.as_f64()?).ok(),
        Value::String(text) => parse_go_duration(text.trim()),
        _ => None,
    }
}

fn parse_go_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&end| end > 0)?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Decodes a whole platform event stream (SSE bytes) into our step events, up to its end
/// marker, as [`KubiyaRunner`](super::kubiya::KubiyaRunner) does incrementally while it follows a run; for tools and tests
/// that have the stream as bytes.
pub fn decode_platform_stream(bytes: &[u8], output_limit: usize) -> Vec<StepEvent> {
    let mut decoder = SseDecoder::new();
    decoder.feed(bytes);
    decoder.finish();
    let mut stream = PlatformStream::new("platform", output_limit);
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event() {
        if stream.on_event(&event, &mut out).is_some() {
            break;
        }
    }
    out
}

/// At most `limit` bytes, cut at a character boundary.
fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stream: &mut PlatformStream, raw: &str) -> (Vec<StepEvent>, Option<Ending>) {
        let mut decoder = SseDecoder::new();
        decoder.feed(raw.as_bytes());
        decoder.finish();
        let mut out = Vec::new();
        while let Some(event) = decoder.next_event() {
            if let Some(ending) = stream.on_event(&event, &mut out) {
                return (out, Some(ending));
            }
        }
        (out, None)
    }

    fn summary(events: &[StepEvent]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                StepEvent::StepRunning { step, .. } => format!("running {step}"),
                StepEvent::StepOutput {
                    step, stream, text, ..
                } => format!("output {step} {stream:?} {text:?}"),
                StepEvent::StepComplete {
                    step,
                    output,
                    duration,
                    ..
                } => format!("complete {step} {output:?} {duration}"),
                StepEvent::StepFailed {
                    step,
                    error,
                    will_retry,
                    ..
                } => format!("failed {step} {error:?} retry={will_retry}"),
                StepEvent::StepSkipped { step, reason, .. } => format!("skipped {step} {reason}"),
                StepEvent::WorkflowComplete { status, .. } => format!("done {status:?}"),
            })
            .collect()
    }

    #[test]
    fn platform_events_with_step_objects_become_flat_events() {
        let raw = concat!(
            ": heartbeat\n\n",
            "retry: 3000\n\n",
            "data: {\"type\":\"workflow_start\",\"requestId\":\"r1\",\"progress\":{\"completed\":0,\"total\":2}}\n\n",
            "data: {\"type\":\"step_running\",\"step\":{\"name\":\"build\",\"status\":\"running\",\"logs\":[]}}\n\n",
            "data: {\"type\":\"step_update\",\"step\":{\"name\":\"build\",\"status\":\"running\"}}\n\n",
            "data: {\"type\":\"heartbeat\"}\n\n",
            "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"build\",\"status\":\"finished\",\"output\":\"built\\n\",\"exitCode\":0,\"duration\":\"1m2.5s\"}}\n\n",
            "data: 2:{\"type\":\"step_running\",\"step\":{\"name\":\"test\"}}\n\n",
            "data: {\"type\":\"step_failed\",\"step\":{\"name\":\"test\",\"error\":\"exit status 1\",\"canRetry\":true}}\n\n",
            "data: {\"type\":\"step_running\",\"step\":{\"name\":\"test\",\"retryCount\":1}}\n\n",
            "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"test\",\"status\":\"failed\",\"error\":\"exit status 2\",\"canRetry\":false}}\n\n",
            "data: {\"type\":\"workflow_complete\",\"requestId\":\"r1\",\"status\":\"failed\",\"success\":false}\n\n",
            "data: [DONE]\n\n",
        );
        let mut stream = PlatformStream::new("k8s", 1024);
        let (events, ending) = feed(&mut stream, raw);
        assert_eq!(
            summary(&events),
            [
                "running build",
                "complete build \"built\" 62.5s",
                "running test",
                "failed test \"exit status 1\" retry=true",
                "running test",
                "failed test \"exit status 2\" retry=false",
            ]
        );
        let ending = ending.expect("ended");
        assert_eq!(
            ending,
            Ending::Reported {
                success: false,
                error: None
            }
        );
        assert_eq!(
            stream.verdict(ending),
            (
                ExecutionStatus::Failed,
                Some("step 'test' failed on the Kubiya platform".to_owned())
            )
        );
    }

    #[test]
    fn a_steps_log_records_become_live_output_until_it_completes() {
        let raw = concat!(
            "data: {\"type\":\"log\",\"step\":{\"name\":\"build\"},\"message\":\"compiling\\n\"}\n\n",
            "data: {\"type\":\"step_output\",\"step\":\"build\",\"output\":\"warning\\n\",\"stream\":\"stderr\"}\n\n",
            "data: 2:{\"step\":{\"name\":\"build\",\"output\":\"linking\\n\"}}\n\n",
            "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"build\",\"status\":\"finished\",\"output\":\"done\",\"duration\":\"2s\"}}\n\n",
            "data: {\"type\":\"log\",\"step\":{\"name\":\"build\"},\"message\":\"late\"}\n\n",
        );
        let mut stream = PlatformStream::new("k8s", 1024);
        let (events, ending) = feed(&mut stream, raw);
        assert_eq!(ending, None);
        assert_eq!(
            summary(&events),
            [
                "running build",
                "output build Stdout \"compiling\\n\"",
                "output build Stderr \"warning\\n\"",
                "output build Stdout \"linking\\n\"",
                "complete build \"done\" 2.0s",
            ]
        );
    }

    #[test]
    fn end_markers_without_a_verdict_end_the_stream() {
        for (raw, expected) in [
            ("data: d:{\"finishReason\":\"stop\"}\n\n", Ending::Marker),
            ("event: end\ndata: {}\n\n", Ending::Marker),
            ("data: {\"end\":true}\n\n", Ending::Marker),
            ("data: {\"finishReason\":\"stop\"}\n\n", Ending::Marker),
        ] {
            let mut stream = PlatformStream::new("r", 1024);
            assert_eq!(feed(&mut stream, raw).1, Some(expected), "{raw}");
        }
        let mut stream = PlatformStream::new("r", 1024);
        let (_, ending) = feed(
            &mut stream,
            "data: {\"type\":\"error\",\"error\":{\"code\":\"E1\",\"message\":\"runner offline\"}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(
            stream.verdict(ending.expect("ended")),
            (ExecutionStatus::Failed, Some("runner offline".to_owned()))
        );
    }

    #[test]
    fn a_complete_without_running_is_preceded_by_one_and_duplicates_are_dropped() {
        let mut stream = PlatformStream::new("r", 3);
        let (events, _) = feed(
            &mut stream,
            concat!(
                "data: {\"type\":\"step_finished\",\"step\":{\"name\":\"a\",\"output\":\"abcdef\"}}\n\n",
                "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"a\",\"status\":\"completed\"}}\n\n",
                "data: {\"type\":\"step_skipped\",\"step_name\":\"b\"}\n\n",
            ),
        );
        assert_eq!(
            summary(&events),
            [
                "running a",
                "complete a \"abc\" 0.0s",
                "skipped b skipped by the Kubiya platform"
            ]
        );
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("350ms"), Some(Duration::from_millis(350)));
        assert_eq!(parse_go_duration("1h2m"), Some(Duration::from_secs(3720)));
        assert_eq!(parse_go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("soon"), None);
    }
}
