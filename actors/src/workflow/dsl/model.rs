//! The workflow DSL as data: the serde model of the JSON the original Kubiya SDK produces (a
//! DAGU-style workflow of named steps). Parsing (JSON or YAML) and serializing live here;
//! checking what the data means is `validate`'s job and running it is the runners' (`run`).
//!
//! The model is deliberately permissive: every known field is optional so that a half-written
//! workflow still parses and can be validated as a whole, scalars keep their original JSON type,
//! and unknown fields at every level survive a round trip in an `extra` map. Known fields
//! serialize in the DSL's natural order (`name`, `steps` first) with the unknown ones after.
//!
//! The model is also the one description of the document's shape: its `ToSchema` derives,
//! with the `#[schema(...)]` attributes on fields and types (minimums, titles that messages
//! quote), give the schema that `/openapi.json` shows and that `shape` checks documents against.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};
use std::time::Duration;
use utoipa::ToSchema;

/// Fields this model does not know, kept verbatim.
pub type Extra = Map<String, Value>;

/// A whole workflow document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Workflow {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `chain` (implicit sequential dependencies) or `graph` (explicit `depends`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkflowKind>,
    /// Where the platform should run it; clients send it as a query parameter, not in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<IndexMap<String, ParamValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvVars>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// The older spelling of `timeout`.
    #[serde(
        default,
        rename = "timeoutSec",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_sec: Option<Seconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, rename = "handlerOn", skip_serializing_if = "Option::is_none")]
    pub handler_on: Option<HandlerOn>,
    #[serde(
        default,
        rename = "maxActiveSteps",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1)]
    pub max_active_steps: Option<u32>,
    /// Files written into the work directory before any step runs: relative path → content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<IndexMap<String, String>>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// How steps without "depends" are ordered: "chain" runs them in order, "graph" starts them
/// together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowKind {
    /// Each step without `depends` depends on the step declared before it.
    #[default]
    Chain,
    /// Steps without `depends` are roots.
    Graph,
}

/// One step of a workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A shell command line, or the interpreter for `script` (e.g. `python`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Executor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<Depends>,
    /// The variable that captures this step's trimmed stdout for later steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvVars>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    #[serde(
        default,
        rename = "retryPolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(
        default,
        rename = "repeatPolicy",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat_policy: Option<RepeatPolicy>,
    #[serde(
        default,
        rename = "continueOn",
        skip_serializing_if = "Option::is_none"
    )]
    pub continue_on: Option<ContinueOn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Vec<Precondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
    /// The older spelling of `timeout`.
    #[serde(
        default,
        rename = "timeoutSec",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_sec: Option<Seconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `{items, maxConcurrent}` or a variable reference; kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<Value>,
    /// The name of a sub-workflow to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// A platform step type such as `get_secret`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The signal a stopped step gets first (`SIGTERM` by default), e.g. `SIGINT`.
    #[serde(
        default,
        rename = "signalOnStop",
        skip_serializing_if = "Option::is_none"
    )]
    pub signal_on_stop: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// `executor: {type, config}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Executor {
    #[serde(rename = "type")]
    pub kind: ExecutorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

impl Executor {
    /// The string value of a config key, if present and a string.
    pub fn config_str(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.get(key)?.as_str()
    }

    /// A config value, if present and not null.
    pub fn config_value(&self, key: &str) -> Option<&Value> {
        self.config
            .as_ref()?
            .get(key)
            .filter(|value| !value.is_null())
    }
}

/// The executor types the DSL produces; anything else is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ExecutorKind {
    Command,
    Docker,
    Tool,
    Http,
    Ssh,
    Agent,
    InlineAgent,
    LlmCompletion,
    Kubiya,
    Jq,
    Other(String),
}

impl ExecutorKind {
    /// The known types, in the order messages list them.
    pub const KNOWN: [Self; 10] = [
        Self::Command,
        Self::Docker,
        Self::Http,
        Self::Agent,
        Self::Tool,
        Self::Ssh,
        Self::InlineAgent,
        Self::LlmCompletion,
        Self::Kubiya,
        Self::Jq,
    ];

    /// The name as it appears in the JSON.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Command => "command",
            Self::Docker => "docker",
            Self::Tool => "tool",
            Self::Http => "http",
            Self::Ssh => "ssh",
            Self::Agent => "agent",
            Self::InlineAgent => "inline_agent",
            Self::LlmCompletion => "llm_completion",
            Self::Kubiya => "kubiya",
            Self::Jq => "jq",
            Self::Other(name) => name,
        }
    }
}

impl From<String> for ExecutorKind {
    fn from(name: String) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .unwrap_or(Self::Other(name))
    }
}

/// A string; the known types are its examples (messages about a bad `type` list them).
impl utoipa::PartialSchema for ExecutorKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .examples(Self::KNOWN.iter().map(Self::as_str))
            .into()
    }
}

impl ToSchema for ExecutorKind {}

impl From<ExecutorKind> for String {
    fn from(kind: ExecutorKind) -> Self {
        match kind {
            ExecutorKind::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `depends`: one step name or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Depends {
    One(String),
    Many(Vec<String>),
}

impl Depends {
    pub fn names(&self) -> &[String] {
        match self {
            Self::One(name) => std::slice::from_ref(name),
            Self::Many(names) => names,
        }
    }
}

/// `tags`: the SDK writes a comma-joined string, other tools a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Tags {
    Joined(String),
    List(Vec<String>),
}

impl Tags {
    pub fn list(&self) -> Vec<String> {
        match self {
            Self::Joined(joined) => joined
                .split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned)
                .collect(),
            Self::List(tags) => tags.clone(),
        }
    }
}

/// A JSON scalar that keeps its type through a round trip but reads as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(title = "a string, number or boolean")]
pub enum Scalar {
    Text(String),
    #[schema(value_type = f64)]
    Number(Number),
    Bool(bool),
}

impl Scalar {
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Number(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
        }
    }
}

impl From<&str> for Scalar {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// `env`: a map, or (as some DAGU files write it) a list of one-entry maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(title = "an object of NAME: value pairs")]
pub enum EnvVars {
    Map(IndexMap<String, Scalar>),
    List(Vec<IndexMap<String, Scalar>>),
}

impl EnvVars {
    /// The variables in declaration order.
    pub fn pairs(&self) -> Vec<(&str, String)> {
        match self {
            Self::Map(map) => map
                .iter()
                .map(|(key, value)| (key.as_str(), value.to_text()))
                .collect(),
            Self::List(maps) => maps
                .iter()
                .flat_map(|map| map.iter())
                .map(|(key, value)| (key.as_str(), value.to_text()))
                .collect(),
        }
    }
}

/// A number of seconds; whole in the DSL, fractions accepted. Kept as a JSON number so that
/// `10` stays `10` (not `10.0`) through a round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub Number);

impl utoipa::PartialSchema for Seconds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Number)
            .minimum(Some(0))
            .title(Some("a number of seconds (0 or more)"))
            .into()
    }
}

impl ToSchema for Seconds {}

impl Seconds {
    pub fn from_secs(secs: u64) -> Self {
        Self(Number::from(secs))
    }

    /// The duration, or `None` when negative or not finite.
    pub fn duration(&self) -> Option<Duration> {
        let secs = self.0.as_f64()?;
        Duration::try_from_secs_f64(secs).ok()
    }
}

/// A workflow parameter: a bare default value, or a spec object (an object with one of the
/// spec's keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Spec(ParamSpec),
    Value(Value),
}

/// `{default, required, secret, description}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParamSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// Keys that make an object parameter a spec rather than an object-valued default.
const PARAM_SPEC_KEYS: [&str; 4] = ["default", "required", "secret", "description"];

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let is_spec = value
            .as_object()
            .is_some_and(|object| PARAM_SPEC_KEYS.iter().any(|key| object.contains_key(*key)));
        if is_spec {
            serde_json::from_value(value)
                .map(Self::Spec)
                .map_err(serde::de::Error::custom)
        } else {
            Ok(Self::Value(value))
        }
    }
}

/// `anyOf`, not the derive's `oneOf`: a spec object is also a value.
impl utoipa::PartialSchema for ParamValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(ParamSpec::name()))
            .item(utoipa::openapi::schema::Object::with_type(
                utoipa::openapi::schema::SchemaType::AnyValue,
            ))
            .into()
    }
}

impl ToSchema for ParamValue {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            ParamSpec::name().into_owned(),
            <ParamSpec as utoipa::PartialSchema>::schema(),
        ));
        ParamSpec::schemas(schemas);
    }
}

impl ParamValue {
    /// The default value, if any (`null` counts as none).
    pub fn default_value(&self) -> Option<&Value> {
        match self {
            Self::Spec(spec) => spec.default.as_ref(),
            Self::Value(value) => Some(value),
        }
        .filter(|value| !value.is_null())
    }

    pub fn is_required(&self) -> bool {
        matches!(self, Self::Spec(spec) if spec.required == Some(true))
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Self::Spec(spec) if spec.secret == Some(true))
    }
}

/// `handlerOn`: steps run after the workflow, chosen by how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HandlerOn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Step>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// `retryPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(
        default,
        rename = "intervalSec",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval_sec: Option<Seconds>,
    #[serde(
        default,
        rename = "maxIntervalSec",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_interval_sec: Option<Seconds>,
    #[serde(
        default,
        rename = "exponentialBase",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>)]
    pub exponential_base: Option<Number>,
    /// `true` (base 2) or a base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Retry only on these exit codes.
    #[serde(default, rename = "exitCodes", skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<ExitCodes>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// `retryPolicy.backoff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(title = "true, false or a number")]
pub enum Backoff {
    Enabled(bool),
    #[schema(value_type = f64)]
    Base(Number),
}

/// `repeatPolicy`; the local runner does not repeat steps, the model keeps it for the platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RepeatPolicy {
    #[serde(
        default,
        rename = "intervalSec",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval_sec: Option<Seconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Scalar>,
    #[serde(default, rename = "exitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<ExitCodes>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// One exit code or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(title = "an exit code or a list of exit codes")]
pub enum ExitCodes {
    One(i32),
    Many(Vec<i32>),
}

impl ExitCodes {
    pub fn contains(&self, code: i32) -> bool {
        match self {
            Self::One(one) => *one == code,
            Self::Many(many) => many.contains(&code),
        }
    }
}

/// `continueOn`: what the workflow does when this step fails or is skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContinueOn {
    /// Dependents run even though this step failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<bool>,
    /// Dependents run even though this step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<bool>,
    /// Failures with these exit codes are tolerated like `failure: true`.
    #[serde(default, rename = "exitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<ExitCodes>,
    /// A tolerated failure counts as a success.
    #[serde(
        default,
        rename = "markSuccess",
        skip_serializing_if = "Option::is_none"
    )]
    pub mark_success: Option<bool>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// A precondition: a shell command that must exit 0, or a value check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(title = "a command string or a {\"condition\", \"expected\"} object")]
pub enum Precondition {
    Command(String),
    Check(PreconditionCheck),
}

/// `{condition, expected}`: the condition after `${VAR}` substitution must equal `expected`;
/// without `expected` the condition is run as a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreconditionCheck {
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Scalar>,
    #[serde(flatten)]
    #[schema(value_type = HashMap<String, Value>)]
    pub extra: Extra,
}

/// Why a workflow document could not be read into the model.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowParseError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
}

impl Workflow {
    /// Reads a JSON workflow document.
    pub fn from_json_str(text: &str) -> Result<Self, WorkflowParseError> {
        Self::from_value(serde_json::from_str(text)?)
    }

    /// Reads a YAML workflow document.
    pub fn from_yaml_str(text: &str) -> Result<Self, WorkflowParseError> {
        Self::from_value(serde_yaml_ng::from_str(text)?)
    }

    /// Reads a JSON or YAML document, telling them apart by the first non-blank character.
    pub fn parse(text: &str) -> Result<Self, WorkflowParseError> {
        Self::from_value(parse_document(text)?)
    }

    /// Converts an already-parsed document, naming the path of the first bad field.
    pub fn from_value(value: Value) -> Result<Self, WorkflowParseError> {
        serde_path_to_error::deserialize(value).map_err(|error| WorkflowParseError::Shape {
            path: error.path().to_string(),
            message: error.into_inner().to_string(),
        })
    }

    /// The document as JSON.
    pub fn to_value(&self) -> Value {
        // Serializing this model cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The workflow type, `chain` when absent.
    pub fn kind(&self) -> WorkflowKind {
        self.kind.unwrap_or_default()
    }

    /// The workflow timeout; also reads the older `timeoutSec` spelling.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout
            .as_ref()
            .or(self.timeout_sec.as_ref())
            .and_then(Seconds::duration)
    }

    /// The `files` to write, in document order.
    pub fn files(&self) -> impl Iterator<Item = (&String, &String)> {
        self.files.iter().flatten()
    }

    /// The index of the step with this name.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.name == name)
    }
}

/// The variable each child of a `parallel` step gets its item in.
pub const PARALLEL_ITEM: &str = "ITEM";

/// The step `type` that reads a secret.
pub const GET_SECRET: &str = "get_secret";

/// The work directory's subdirectory for step scripts, which `files` may not write into.
pub(crate) const SCRIPT_DIR: &str = ".kubiya";

/// Signals a step may ask to be stopped with, by name (with or without `SIG`).
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_uppercase();
    Some(match name.strip_prefix("SIG").unwrap_or(&name) {
        "TERM" => libc::SIGTERM,
        "INT" => libc::SIGINT,
        "HUP" => libc::SIGHUP,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "KILL" => libc::SIGKILL,
        _ => return None,
    })
}

/// A `parallel` step's fan-out as written: the items (or a `${VAR}` to read them from at run
/// time) and how many run at once.
#[derive(Debug, Clone, PartialEq)]
pub enum ParallelItems {
    Listed(Vec<Value>),
    /// `${NAME}` or `$NAME`: a JSON array, else one item per line or word.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub items: ParallelItems,
    pub max_concurrent: Option<u64>,
}

impl Parallel {
    /// Reads `{items, maxConcurrent}`, a bare list, a variable reference, and the SDK's
    /// double-nested `{items: {items, maxConcurrent}}`; `None` for anything else.
    pub fn of(value: &Value) -> Option<Self> {
        match value {
            Value::Array(items) => Some(Self {
                items: ParallelItems::Listed(items.clone()),
                max_concurrent: None,
            }),
            Value::String(reference) => Some(Self {
                items: ParallelItems::Variable(reference.clone()),
                max_concurrent: None,
            }),
            Value::Object(fields) => {
                let max_concurrent = fields.get("maxConcurrent").and_then(Value::as_u64);
                let inner = Self::of(fields.get("items")?)?;
                Some(Self {
                    items: inner.items,
                    max_concurrent: max_concurrent.or(inner.max_concurrent),
                })
            }
            _ => None,
        }
    }
}

/// An item as its child step sees it: strings as they are, anything else as JSON.
pub fn item_text(item: &Value) -> String {
    match item {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl Step {
    /// The step's fan-out, when it has a readable `parallel`.
    pub fn parallel(&self) -> Option<Parallel> {
        self.parallel.as_ref().and_then(Parallel::of)
    }

    /// The names this step lists in `depends` (empty when absent).
    pub fn depends_names(&self) -> &[String] {
        self.depends.as_ref().map_or(&[], Depends::names)
    }

    /// The executor type, `command` for a plain command or script step.
    pub fn executor_kind(&self) -> Option<&ExecutorKind> {
        self.executor.as_ref().map(|executor| &executor.kind)
    }

    /// The step timeout; also reads the older `timeoutSec` spelling.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout
            .as_ref()
            .or(self.timeout_sec.as_ref())
            .and_then(Seconds::duration)
    }
}

/// Parses a JSON or YAML document into a JSON value without interpreting it.
pub fn parse_document(text: &str) -> Result<Value, WorkflowParseError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Ok(serde_json::from_str(text)?)
    } else {
        Ok(serde_yaml_ng::from_str(text)?)
    }
}

/// A workflow document as YAML, the way a person reads it: fields in the model's order
/// (`name` first), unknown fields kept; `None` when it is not a workflow.
pub fn yaml_document(value: &Value) -> Option<String> {
    let workflow = Workflow::from_value(value.clone()).ok()?;
    serde_yaml_ng::to_string(&workflow).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(document: &Value) {
        let workflow: Workflow = Workflow::from_value(document.clone()).expect("parses");
        assert_eq!(&workflow.to_value(), document);
    }

    /// The four serialized examples of the original SDK (reference §2.3).
    pub(crate) fn example_a() -> Value {
        json!({"name":"hello-world",
         "steps":[
           {"name":"print-hello","command":"echo 'Hello ${NAME}'","executor":{"type":"command","config":{}}},
           {"name":"second","command":"echo done","executor":{"type":"command","config":{}}}],
         "description":"Simple hello world","runner":"kubiya-hosted",
         "params":{"NAME":"world"},"env":{"LOG_LEVEL":"info"}})
    }

    pub(crate) fn example_b() -> Value {
        json!({"name":"ci",
         "steps":[
           {"name":"build","executor":{"type":"docker","config":{"image":"python:3.11-slim","content":"pip install -r req.txt"}},
            "output":"BUILD_OUT","retryPolicy":{"limit":3,"intervalSec":10},"timeout":120},
           {"name":"test","command":"python","script":"print('ok')","depends":["build"],
            "preconditions":[{"condition":"${BUILD_OUT}","expected":"ok"}],
            "continueOn":{"failure":true,"markSuccess":false}},
           {"name":"notify","command":"echo hi","executor":{"type":"command","config":{}},
            "depends":["build","test"],"env":{"A":"1"}}],
         "type":"graph","runner":"k8s-runner","timeout":600,
         "handlerOn":{"success":{"command":"echo ok"},"failure":{"command":"echo fail"}}})
    }

    pub(crate) fn example_c() -> Value {
        json!({"name":"db-test",
         "steps":[
           {"name":"test-api","output":"TEST_RESULT",
            "executor":{"type":"tool","config":{
              "tool_def":{"name":"api-tester","type":"docker","image":"python:3.11-alpine",
                          "content":"#!/bin/sh\nset -e\npython test.py",
                          "args":[{"name":"url","type":"string","required":true}],
                          "with_services":[{"name":"database","image":"postgres:15-alpine","exposed_ports":[5432],
                                            "env":{"POSTGRES_DB":"app_db","POSTGRES_USER":"app_user","POSTGRES_PASSWORD":"app_password"}}]},
              "args":{"url":"${API_URL}"},"timeout":300}}},
           {"name":"fetch-token","type":"get_secret","secret_name":"GH_TOKEN"},
           {"name":"child","run":"other-workflow","params":"A=1"},
           {"name":"poll","command":"curl -s http://x/health","executor":{"type":"command","config":{}},
            "repeatPolicy":{"intervalSec":10,"limit":5},"depends":["test-api"],"retries":2,"signalOnStop":"SIGINT"}],
         "description":"API test with bounded services","runner":"kubiya-hosted","type":"graph",
         "schedule":"0 2 * * *","queue":"q1","maxActiveRuns":2,"tags":"ci,db",
         "mailOn":{"failure":true,"success":false},"files":{"config.json":"{\"k\": 1}"}})
    }

    pub(crate) fn example_d() -> Value {
        json!({"name":"agent-wf","steps":[
          {"name":"ask","executor":{"type":"agent","config":{"agent_name":"my-agent","message":"hi","runners":["r1"],"llm_model":"gpt-4o"}}},
          {"name":"llm","executor":{"type":"llm_completion","config":{"model":"gpt-4o","evaluate":true,"prompt":"Summarize ${x}","json_mode":true}}},
          {"name":"http","executor":{"type":"http","config":{"url":"https://x","method":"POST","body":{"a":1}}}},
          {"name":"pre","executor":{"type":"tool","config":{"name":"slack","args":{"channel":"#a"}}}},
          {"name":"analyze-logs","output":"ANALYSIS","executor":{"type":"inline_agent","config":{
             "message":"Analyze these logs: ${LOG_CONTENT}",
             "agent":{"name":"log-analyzer","ai_instructions":"…","runners":["core-testing-2"],"llm_model":"gpt-4o","is_debug_mode":true,"tools":[]}}}}]})
    }

    #[test]
    fn example_a_round_trips() {
        round_trip(&example_a());
    }

    #[test]
    fn example_b_round_trips() {
        round_trip(&example_b());
    }

    #[test]
    fn example_c_round_trips() {
        round_trip(&example_c());
    }

    #[test]
    fn example_d_round_trips() {
        round_trip(&example_d());
    }

    #[test]
    fn known_fields_are_typed_and_unknown_ones_kept() {
        let workflow = Workflow::from_value(example_c()).expect("parses");
        assert_eq!(workflow.kind(), WorkflowKind::Graph);
        assert_eq!(
            workflow.tags.as_ref().map(Tags::list),
            Some(vec!["ci".to_owned(), "db".to_owned()])
        );
        assert_eq!(workflow.extra.get("queue"), Some(&json!("q1")));
        let poll = &workflow.steps[3];
        assert_eq!(poll.depends_names(), ["test-api".to_owned()]);
        assert_eq!(poll.retries, Some(2));
        assert_eq!(poll.signal_on_stop.as_deref(), Some("SIGINT"));
        assert_eq!(workflow.steps[1].kind.as_deref(), Some("get_secret"));
        assert_eq!(workflow.steps[0].executor_kind(), Some(&ExecutorKind::Tool));
    }

    #[test]
    fn serialization_keeps_natural_key_order() {
        let workflow = Workflow::from_value(example_a()).expect("parses");
        let text = serde_json::to_string(&workflow).expect("serializes");
        assert!(text.starts_with(r#"{"name":"hello-world","steps":[{"name":"print-hello","#));
    }

    #[test]
    fn unknown_executor_type_is_kept_as_written() {
        let document = json!({"name":"w","steps":[{"name":"s","executor":{"type":"mail","config":{"to":"a"}}}]});
        let workflow = Workflow::from_value(document.clone()).expect("parses");
        assert_eq!(
            workflow.steps[0].executor_kind(),
            Some(&ExecutorKind::Other("mail".to_owned()))
        );
        round_trip(&document);
    }

    #[test]
    fn params_distinguish_specs_from_object_defaults() {
        let document = json!({"name":"w","steps":[],"params":{
            "plain":"x","spec":{"default":3,"required":true,"secret":true,"description":"d"},
            "object":{"a":1}}});
        let workflow = Workflow::from_value(document.clone()).expect("parses");
        let params = workflow.params.as_ref().expect("params");
        assert!(params["spec"].is_required());
        assert!(params["spec"].is_secret());
        assert_eq!(params["spec"].default_value(), Some(&json!(3)));
        assert_eq!(params["object"].default_value(), Some(&json!({"a":1})));
        round_trip(&document);
    }

    #[test]
    fn env_accepts_a_list_of_maps_and_scalars() {
        let document = json!({"name":"w","steps":[],"env":[{"A":"1"},{"PORT":8080},{"ON":true}]});
        let workflow = Workflow::from_value(document.clone()).expect("parses");
        let pairs = workflow.env.as_ref().expect("env").pairs();
        assert_eq!(
            pairs,
            [
                ("A", "1".to_owned()),
                ("PORT", "8080".to_owned()),
                ("ON", "true".to_owned())
            ]
        );
        round_trip(&document);
    }

    #[test]
    fn yaml_and_json_are_told_apart() {
        let yaml = "name: hello\nsteps:\n  - name: a\n    command: echo ${X}\n    depends: start\n    timeout: 5\n";
        let workflow = Workflow::parse(yaml).expect("yaml parses");
        assert_eq!(workflow.name, "hello");
        assert_eq!(workflow.steps[0].depends_names(), ["start".to_owned()]);
        assert_eq!(
            workflow.steps[0].timeout_duration(),
            Some(Duration::from_secs(5))
        );
        let json = Workflow::parse(&example_a().to_string()).expect("json parses");
        assert_eq!(json.name, "hello-world");
        assert!(Workflow::from_yaml_str("name: [unclosed").is_err());
    }

    #[test]
    fn bad_shapes_name_their_path() {
        let error = Workflow::from_value(json!({"name":"w","steps":[{"name":"a","timeout":"x"}]}))
            .expect_err("bad timeout");
        let WorkflowParseError::Shape { path, .. } = error else {
            panic!("expected a shape error, got {error}");
        };
        assert_eq!(path, "steps[0].timeout");
    }

    #[test]
    fn old_timeout_sec_spelling_is_read() {
        let workflow =
            Workflow::from_value(json!({"name":"w","steps":[],"timeoutSec":30})).expect("parses");
        assert_eq!(workflow.timeout_duration(), Some(Duration::from_secs(30)));
    }
}
