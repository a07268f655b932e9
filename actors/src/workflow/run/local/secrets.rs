//! Secrets for the local runner: `get_secret` steps (`{"type": "get_secret", "secret_name":
//! "GH_TOKEN"}`, whose output is the value) and `{{secret:NAME}}` in env values and executor
//! config strings. Values come from the configured [`SecretSource`] — environment variables
//! with a prefix, or a file (a JSON object, or `NAME=value` lines) — are read when a run
//! starts, and are masked (`***`) in every output, event and error of the run. A run that
//! needs a secret the source lacks fails before any step starts, naming it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use crate::workflow::dsl::model::{GET_SECRET, Workflow};

/// Where secrets come from; neither set means runs cannot use secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSource {
    /// `NAME` is read from the variable `{env_prefix}NAME` of the server's environment.
    pub env_prefix: Option<String>,
    /// A JSON object of names to values, or `NAME=value` lines (`#` comments).
    pub file: Option<PathBuf>,
}

/// A secret's name: letters, digits and `_`.
fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Every secret the workflow asks for: `get_secret` steps' `secret_name` and
/// `{{secret:NAME}}` references anywhere in the document.
pub fn secret_names(workflow: &Workflow) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for step in &workflow.steps {
        if step.kind.as_deref() == Some(GET_SECRET)
            && let Some(name) = step.extra.get("secret_name").and_then(Value::as_str)
        {
            names.insert(name.to_owned());
        }
    }
    collect_references(&workflow.to_value(), &mut names);
    names
}

fn collect_references(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{secret:") {
                let after = &rest[start + "{{secret:".len()..];
                let Some(end) = after.find("}}") else { break };
                names.insert(after[..end].trim().to_owned());
                rest = &after[end + 2..];
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, names)),
        Value::Object(fields) => fields
            .values()
            .for_each(|field| collect_references(field, names)),
        _ => {}
    }
}

impl SecretSource {
    pub fn is_configured(&self) -> bool {
        self.env_prefix
            .as_deref()
            .is_some_and(|prefix| !prefix.is_empty())
            || self.file.is_some()
    }

    /// The values of `names`, or why the run cannot have them.
    pub async fn resolve(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<HashMap<String, String>, String> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(bad) = names.iter().find(|name| !is_secret_name(name)) {
            return Err(format!(
                "{bad:?} is not a secret name (letters, digits and _ only)"
            ));
        }
        if !self.is_configured() {
            return Err(format!(
                "the workflow needs secret(s) {} but this server has no secret source; set runner.secrets.env_prefix or runner.secrets.file",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let from_file = match &self.file {
            Some(path) => read_file(path).await?,
            None => HashMap::new(),
        };
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for name in names {
            let from_env = self
                .env_prefix
                .as_deref()
                .filter(|prefix| !prefix.is_empty())
                .and_then(|prefix| std::env::var(format!("{prefix}{name}")).ok());
            match from_env.or_else(|| from_file.get(name).cloned()) {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None => missing.push(name.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "secret(s) not found in the secret source: {}",
                missing.join(", ")
            ));
        }
        Ok(values)
    }
}

async fn read_file(path: &std::path::Path) -> Result<HashMap<String, String>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|error| format!("cannot read the secrets file: {error}"))?;
    if text.trim_start().starts_with('{') {
        let values: HashMap<String, Value> = serde_json::from_str(&text).map_err(|error| {
            format!("the secrets file is not a JSON object of strings: {error}")
        })?;
        return Ok(values
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (name, value)
            })
            .collect());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .collect())
}

/// The workflow with every `{{secret:NAME}}` in env values and executor config strings
/// replaced by its value. Commands and scripts are left alone: a value pasted into shell
/// text could run as code, so secrets reach shells through env vars only.
pub fn fill(workflow: &Workflow, values: &HashMap<String, String>) -> Result<Workflow, String> {
    if values.is_empty() {
        return Ok(workflow.clone());
    }
    let mut document = workflow.to_value();
    if let Some(env) = document.get_mut("env") {
        replace_in(env, values);
    }
    if let Some(Value::Object(handlers)) = document.get_mut("handlerOn") {
        for step in handlers.values_mut() {
            fill_step(step, values);
        }
    }
    if let Some(Value::Array(steps)) = document.get_mut("steps") {
        for step in steps {
            fill_step(step, values);
        }
    }
    Workflow::from_value(document).map_err(|error| error.to_string())
}

/// A step's env values and executor config strings.
fn fill_step(step: &mut Value, values: &HashMap<String, String>) {
    if let Some(env) = step.get_mut("env") {
        replace_in(env, values);
    }
    if let Some(config) = step
        .get_mut("executor")
        .and_then(|executor| executor.get_mut("config"))
    {
        replace_in(config, values);
    }
}

fn replace_in(value: &mut Value, values: &HashMap<String, String>) {
    match value {
        Value::String(text) if text.contains("{{secret:") => {
            for (name, secret) in values {
                *text = text.replace(&format!("{{{{secret:{name}}}}}"), secret);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| replace_in(item, values)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|field| replace_in(field, values)),
        _ => {}
    }
}
