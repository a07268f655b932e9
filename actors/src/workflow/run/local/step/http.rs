//! `http` steps: the executor's config (`url`, `method`, `headers`, `body`, `timeout`) with
//! `${VAR}`s filled in, sent through the HTTP client the run was given (which checks where it
//! may connect); the response body, capped, is the output, and a status of 400 or more fails
//! the attempt.

use std::time::Duration;

use serde_json::Value;

use super::{Attempt, AttemptError, AttemptOutput, STDERR_IN_ERROR};
use crate::workflow::run::http::HttpStepRequest;
use crate::workflow::run::process::CappedBuffer;

impl Attempt<'_, '_> {
    pub(super) fn http_plan(&self) -> Result<HttpStepRequest, AttemptError> {
        let (executor, config) = self.executor_config()?;
        let url = executor
            .config
            .as_ref()
            .and_then(|config| config.get("url"))
            .and_then(Value::as_str)
            .map(|url| self.scope.substitute_url(url))
            .ok_or_else(|| AttemptError::failed("the http executor needs config.url"))?;
        let mut headers: Vec<(String, String)> = config
            .get("headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value_text(value)))
                    .collect()
            })
            .unwrap_or_default();
        let body = match config.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(body)) => Some(body.clone()),
            Some(json) => {
                if !headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                {
                    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
                }
                Some(json.to_string())
            }
        };
        let timeout = config
            .get("timeout")
            .and_then(Value::as_f64)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .or_else(|| Some(self.timeout()));
        Ok(HttpStepRequest {
            method: config
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("GET")
                .to_owned(),
            url,
            headers,
            body,
            timeout,
        })
    }

    pub(super) async fn send_http(
        &self,
        request: HttpStepRequest,
    ) -> Result<AttemptOutput, AttemptError> {
        let client = self.context.options.http_client.clone().ok_or_else(|| {
            AttemptError::failed(
                "http steps need the server's HTTP client, which this run was not given",
            )
        })?;
        let response = tokio::select! {
            response = client.send(request) => response.map_err(AttemptError::failed)?,
            () = self.token.cancelled() => return Err(AttemptError::Interrupted),
        };
        let mut body = CappedBuffer::new(self.context.options.output_limit);
        body.push(response.body.as_bytes());
        let body = body.into_text();
        if response.status >= 400 {
            let preview: String = body.chars().take(STDERR_IN_ERROR).collect();
            return Err(AttemptError::Failed {
                message: format!("HTTP {}: {preview}", response.status),
                exit_code: None,
                stdout: body,
                stderr: String::new(),
            });
        }
        Ok(AttemptOutput {
            stdout: body,
            stderr: String::new(),
        })
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
