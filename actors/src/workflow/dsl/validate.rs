//! Workflow validation: every problem at once, each with a JSON path (`steps[2].depends[0]`)
//! and a message a model can act on. The composer feeds these back to the model; the HTTP
//! layer returns them to clients; the local runner refuses a workflow that has any.
//!
//! [`validate_value`] checks the raw document's types first, so that `"timeout": "ten"` is
//! one error at `timeout` rather than a serde error that hides everything after it, and then
//! runs [`validate`]'s semantic checks on what remains.
//!
//! The rule for `${NAME}` references: a reference in a step must name a workflow param, a
//! workflow env var, one of the step's own env vars, the `output` of a step it depends on
//! directly or transitively (for `chain` workflows, that includes the implicit dependency on
//! the previous step), a variable the step's own command or script assigns, or a well-known
//! shell variable ([`WELL_KNOWN_VARS`]). Workflow env values may reference params, earlier
//! workflow env vars and well-known variables; `handlerOn` steps may also reference every
//! step's output. Values passed only at run time are not known here: declare them in
//! `params` (a `{"required": true}` spec says "no default").

use serde_json::Value;
use std::collections::{HashMap, HashSet};

use super::error::ValidationError;
use super::graph::{Ancestry, DependencyGraph};
use super::model::{Depends, EnvVars, ExecutorKind, Precondition, Step, Workflow, WorkflowKind};
use super::shape::{check_shape, type_name};
use super::template::{
    WELL_KNOWN_VARS, is_var_name, json_strings, references, shell_assigned_names,
};

/// The most steps a workflow may have. Validation is near-linear in the steps, but it keeps,
/// for every step, which steps it waits for (a bit per step), and it reports every problem:
/// without a bound a megabyte of `- x` lines would hold a thread and hundreds of megabytes.
pub const MAX_STEPS: usize = 1000;

/// The error for a workflow with more than [`MAX_STEPS`] steps, if this is one.
fn too_many_steps(steps: usize) -> Option<ValidationError> {
    (steps > MAX_STEPS).then(|| {
        ValidationError::new(
            "steps",
            format!("a workflow may have at most {MAX_STEPS} steps; this one has {steps}"),
        )
    })
}

/// Parses a JSON or YAML document and validates it.
pub fn validate_text(text: &str) -> Result<Workflow, Vec<ValidationError>> {
    let value = super::model::parse_document(text)
        .map_err(|error| vec![ValidationError::new("", error.to_string())])?;
    validate_value(&value)
}

/// Checks a raw document's types, then its meaning. Returns the workflow only when there is no
/// problem at all.
pub fn validate_value(value: &Value) -> Result<Workflow, Vec<ValidationError>> {
    let Validated { workflow, errors } = validate_document(value);
    match workflow {
        Some(workflow) if errors.is_empty() => Ok(workflow),
        _ => Err(errors),
    }
}

/// What validating a raw document found.
#[derive(Debug)]
pub struct Validated {
    /// The workflow, whenever every value in the document has the type the model gives it
    /// (what `/openapi.json` shows as a workflow), even if it means something wrong.
    pub workflow: Option<Workflow>,
    /// Every problem, with its path; none means the workflow is valid.
    pub errors: Vec<ValidationError>,
}

/// Checks a raw document's types, then its meaning, keeping the workflow when it reads.
pub fn validate_document(value: &Value) -> Validated {
    let refused = |error| Validated {
        workflow: None,
        errors: vec![error],
    };
    let Some(root) = value.as_object() else {
        return refused(ValidationError::new(
            "",
            format!(
                "a workflow must be a JSON object with \"name\" and \"steps\", not {}",
                type_name(value)
            ),
        ));
    };
    // Counted before anything else looks at (or copies) the steps.
    let steps = root
        .get("steps")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(error) = too_many_steps(steps) {
        return refused(error);
    }
    let mut cleaned = root.clone();
    let mut errors = check_shape(&mut cleaned);
    let well_typed = errors.is_empty();
    match Workflow::from_value(Value::Object(cleaned)) {
        Ok(workflow) => {
            let reported: Vec<String> = errors.iter().map(|error| error.path.clone()).collect();
            // A value replaced for a bad type must not also be reported for what it now says.
            errors.extend(validate(&workflow).into_iter().filter(|error| {
                !reported
                    .iter()
                    .any(|path| error.path == *path || is_inside(&error.path, path))
            }));
            Validated {
                workflow: well_typed.then_some(workflow),
                errors,
            }
        }
        // The shape check leaves only what the model reads; this is a gap between the two.
        Err(error) => {
            errors.push(ValidationError::new("", error.to_string()));
            Validated {
                workflow: None,
                errors,
            }
        }
    }
}

fn is_inside(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Executor types a model may use that the platform knows beyond the ones the model names.
const OTHER_KNOWN_EXECUTORS: &[&str] = &["local", "mail", "dag"];

/// The semantic checks on a parsed workflow.
pub fn validate(workflow: &Workflow) -> Vec<ValidationError> {
    if let Some(error) = too_many_steps(workflow.steps.len()) {
        return vec![error];
    }
    let mut errors = Vec::new();
    if workflow.name.trim().is_empty() {
        errors.push(ValidationError::new(
            "name",
            "the workflow needs a non-blank \"name\"",
        ));
    }
    if workflow.steps.is_empty() {
        errors.push(ValidationError::new(
            "steps",
            "the workflow needs at least one step in \"steps\"",
        ));
    }
    if let Some(env) = &workflow.env {
        check_env_names(env, "env", &mut errors);
    }
    check_files(workflow, &mut errors);
    check_step_names(workflow, &mut errors);
    check_dependencies(workflow, &mut errors);
    let graph = DependencyGraph::new(workflow);
    check_cycles(workflow, &graph, &mut errors);
    for (index, step) in workflow.steps.iter().enumerate() {
        let path = format!("steps[{index}]");
        check_runnable(step, &path, &mut errors);
        if let Some(output) = &step.output
            && !is_var_name(output)
        {
            errors.push(ValidationError::new(
                format!("{path}.output"),
                format!(
                    "\"output\" must be a variable name (letters, digits and _, not starting with a digit), e.g. \"BUILD_OUT\"; got {output:?}"
                ),
            ));
        }
        if let Some(env) = &step.env {
            check_env_names(env, &format!("{path}.env"), &mut errors);
        }
        if let Some(signal) = &step.signal_on_stop
            && super::model::signal_number(signal).is_none()
        {
            errors.push(ValidationError::new(
                format!("{path}.signalOnStop"),
                format!("unknown signal {signal:?}: use SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 or SIGKILL"),
            ));
        }
    }
    if let Some(handlers) = &workflow.handler_on {
        for (event, handler) in handler_steps(handlers) {
            check_runnable(handler, &format!("handlerOn.{event}"), &mut errors);
        }
    }
    errors.extend(ReferenceCheck::new(workflow, &graph).run());
    errors
}

/// `files` names must be plain relative paths inside the work directory: no absolute paths,
/// no `..`, nothing in the runner's own script directory.
fn check_files(workflow: &Workflow, errors: &mut Vec<ValidationError>) {
    for (name, _) in workflow.files() {
        let path = std::path::Path::new(name);
        let inside = !name.trim().is_empty()
            && path
                .components()
                .all(|part| matches!(part, std::path::Component::Normal(_)))
            && !name.contains('\0')
            && path
                .components()
                .next()
                .is_some_and(|first| first.as_os_str() != super::model::SCRIPT_DIR);
        if !inside {
            errors.push(ValidationError::new(
                format!("files.{name}"),
                format!(
                    "file names must be relative paths inside the work directory (no leading /, no .., not under {}); got {name:?}",
                    super::model::SCRIPT_DIR
                ),
            ));
        }
    }
}

/// The handlers that are set, with their key.
pub(crate) fn handler_steps(
    handlers: &super::model::HandlerOn,
) -> impl Iterator<Item = (&'static str, &Step)> {
    [
        ("success", handlers.success.as_ref()),
        ("failure", handlers.failure.as_ref()),
        ("cancel", handlers.cancel.as_ref()),
        ("exit", handlers.exit.as_ref()),
    ]
    .into_iter()
    .filter_map(|(event, handler)| handler.map(|handler| (event, handler)))
}

fn check_env_names(env: &EnvVars, path: &str, errors: &mut Vec<ValidationError>) {
    for (name, _) in env.pairs() {
        if !is_var_name(name) {
            errors.push(ValidationError::new(
                format!("{path}.{name}"),
                format!(
                    "environment variable names must be letters, digits and _ and not start with a digit; rename {name:?}"
                ),
            ));
        }
    }
}

fn check_step_names(workflow: &Workflow, errors: &mut Vec<ValidationError>) {
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for (index, step) in workflow.steps.iter().enumerate() {
        if step.name.trim().is_empty() {
            errors.push(ValidationError::new(
                format!("steps[{index}].name"),
                "every step needs a non-blank \"name\"",
            ));
            continue;
        }
        if let Some(first) = first_use.get(step.name.as_str()) {
            errors.push(ValidationError::new(
                format!("steps[{index}].name"),
                format!(
                    "duplicate step name '{}' (already used by steps[{first}]); step names must be unique",
                    step.name
                ),
            ));
        } else {
            first_use.insert(&step.name, index);
        }
    }
}

fn check_dependencies(workflow: &Workflow, errors: &mut Vec<ValidationError>) {
    let position: HashMap<&str, usize> = workflow
        .steps
        .iter()
        .enumerate()
        .rev()
        .map(|(index, step)| (step.name.as_str(), index))
        .collect();
    let chain = workflow.kind() == WorkflowKind::Chain;
    for (index, step) in workflow.steps.iter().enumerate() {
        let Some(depends) = &step.depends else {
            continue;
        };
        for (nth, name) in depends.names().iter().enumerate() {
            let path = match depends {
                Depends::One(_) => format!("steps[{index}].depends"),
                Depends::Many(_) => format!("steps[{index}].depends[{nth}]"),
            };
            match position.get(name.as_str()) {
                None => errors.push(ValidationError::new(
                    path,
                    format!(
                        "step '{}' depends on unknown step '{name}'; known steps: {}",
                        step.name,
                        known_names(workflow)
                    ),
                )),
                Some(&target) if target == index => errors.push(ValidationError::new(
                    path,
                    format!("step '{}' depends on itself; remove '{name}' from its depends", step.name),
                )),
                Some(&target) if chain && target > index => errors.push(ValidationError::new(
                    path,
                    format!(
                        "step '{}' depends on '{name}', which is declared later; in a chain workflow a step may only depend on earlier steps (reorder the steps or set \"type\": \"graph\")",
                        step.name
                    ),
                )),
                Some(_) => {}
            }
        }
    }
}

fn known_names(workflow: &Workflow) -> String {
    const SHOWN: usize = 12;
    // Blank names are reported on their own and cannot be depended on.
    let named = || {
        workflow
            .steps
            .iter()
            .filter(|step| !step.name.trim().is_empty())
    };
    let mut names: Vec<String> = named()
        .take(SHOWN)
        .map(|step| format!("'{}'", step.name))
        .collect();
    let count = named().count();
    if count > SHOWN {
        names.push(format!("and {} more", count - SHOWN));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn check_cycles(workflow: &Workflow, graph: &DependencyGraph, errors: &mut Vec<ValidationError>) {
    for cycle in graph.cycles() {
        // Self dependencies are already reported with their exact path.
        if cycle.len() < 2 {
            continue;
        }
        let mut names: Vec<&str> = cycle
            .iter()
            .map(|&index| workflow.steps[index].name.as_str())
            .collect();
        names.push(names[0]);
        errors.push(ValidationError::new(
            format!("steps[{}].depends", cycle[0]),
            format!(
                "dependency cycle: {} (each step depends on the next); remove one of these dependencies",
                names.join(" -> ")
            ),
        ));
    }
}

/// Whether a step has something to run, and whether its executor has the config it needs.
fn check_runnable(step: &Step, path: &str, errors: &mut Vec<ValidationError>) {
    let label = step_label(step);
    let Some(executor) = &step.executor else {
        if step.command.is_none()
            && step.script.is_none()
            && step.run.is_none()
            && step.kind.is_none()
        {
            errors.push(ValidationError::new(
                path,
                format!(
                    "{label} has nothing to run: give it a \"command\", a \"script\", an \"executor\" ({{\"type\", \"config\"}}), a \"run\" (sub-workflow) or a \"type\""
                ),
            ));
        }
        return;
    };
    let config_path = format!("{path}.executor.config");
    let has = |key: &str| {
        executor
            .config_value(key)
            .is_some_and(|value| value != &Value::String(String::new()))
    };
    let mut require = |key: &str, what: &str| {
        if !has(key) {
            errors.push(ValidationError::new(
                format!("{config_path}.{key}"),
                format!(
                    "{label}: a {} executor needs config.{key} ({what})",
                    executor.kind
                ),
            ));
        }
    };
    match &executor.kind {
        ExecutorKind::Command => {
            if step.command.is_none() && step.script.is_none() {
                errors.push(ValidationError::new(
                    format!("{path}.command"),
                    format!("{label}: a command executor needs a \"command\" or a \"script\" on the step"),
                ));
            }
        }
        ExecutorKind::Docker => require("image", "the container image, e.g. \"python:3.11-slim\""),
        ExecutorKind::Http => require("url", "the URL to call"),
        ExecutorKind::Ssh => {
            require("host", "the host to connect to");
            if !has("command") && step.command.is_none() {
                errors.push(ValidationError::new(
                    format!("{config_path}.command"),
                    format!("{label}: an ssh executor needs config.command (the command to run remotely)"),
                ));
            }
        }
        ExecutorKind::Tool => {
            if !has("tool_def") && !has("name") && !has("tool_name") {
                errors.push(ValidationError::new(
                    config_path.clone(),
                    format!(
                        "{label}: a tool executor needs config.tool_def (an inline tool definition) or config.name (a registered tool)"
                    ),
                ));
            }
            if let Some(tool_def) = executor.config_value("tool_def") {
                check_tool_services(tool_def, &format!("{config_path}.tool_def"), errors);
            }
        }
        ExecutorKind::Agent => {
            require("agent_name", "the agent to ask");
            require("message", "what to ask it");
        }
        ExecutorKind::InlineAgent => {
            require("message", "what to ask the agent");
            require(
                "agent",
                "the agent definition: name, ai_instructions, runners, llm_model",
            );
        }
        ExecutorKind::LlmCompletion => {
            if !has("prompt") && !has("messages") {
                errors.push(ValidationError::new(
                    format!("{config_path}.prompt"),
                    format!(
                        "{label}: an llm_completion executor needs config.prompt or config.messages"
                    ),
                ));
            }
        }
        ExecutorKind::Kubiya => require("url", "the platform API path, e.g. \"api/v1/...\""),
        ExecutorKind::Jq => {}
        ExecutorKind::Other(name) => {
            if !OTHER_KNOWN_EXECUTORS.contains(&name.as_str()) {
                let known: Vec<&str> = ExecutorKind::KNOWN
                    .iter()
                    .map(ExecutorKind::as_str)
                    .collect();
                errors.push(ValidationError::new(
                    format!("{path}.executor.type"),
                    format!(
                        "{label}: unknown executor type {name:?}; use one of {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
}

pub(crate) fn step_label(step: &Step) -> String {
    if step.name.trim().is_empty() {
        "this step".to_owned()
    } else {
        format!("step '{}'", step.name)
    }
}

/// The original's checks on bounded services: unique names, an image, sane ports.
fn check_tool_services(tool_def: &Value, path: &str, errors: &mut Vec<ValidationError>) {
    let Some(services) = tool_def.get("with_services") else {
        return;
    };
    let Some(services) = services.as_array() else {
        errors.push(ValidationError::new(
            format!("{path}.with_services"),
            "with_services must be a list of service objects",
        ));
        return;
    };
    let mut names = HashSet::new();
    for (index, service) in services.iter().enumerate() {
        let service_path = format!("{path}.with_services[{index}]");
        let Some(service) = service.as_object() else {
            errors.push(ValidationError::new(
                service_path,
                "a service must be an object with name and image",
            ));
            continue;
        };
        match service.get("name").and_then(Value::as_str) {
            Some(name) if !name.trim().is_empty() => {
                if !names.insert(name) {
                    errors.push(ValidationError::new(
                        format!("{service_path}.name"),
                        format!("duplicate service name '{name}'"),
                    ));
                }
            }
            _ => errors.push(ValidationError::new(
                format!("{service_path}.name"),
                "a service needs a name",
            )),
        }
        if service
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(|image| image.trim().is_empty())
        {
            errors.push(ValidationError::new(
                format!("{service_path}.image"),
                "a service needs an image",
            ));
        }
        if let Some(ports) = service.get("exposed_ports") {
            let valid = ports.as_array().is_some_and(|ports| {
                ports.iter().all(|port| {
                    port.as_u64()
                        .is_some_and(|port| (1..=65535).contains(&port))
                })
            });
            if !valid {
                errors.push(ValidationError::new(
                    format!("{service_path}.exposed_ports"),
                    "exposed_ports must be a list of port numbers from 1 to 65535",
                ));
            }
        }
    }
}

/// Checks `${NAME}` references against what is in scope where they appear.
struct ReferenceCheck<'a> {
    workflow: &'a Workflow,
    /// Which steps each step waits for: whose outputs it sees.
    ancestry: Ancestry,
    /// Params and workflow env: in scope everywhere.
    global: HashSet<&'a str>,
    /// Output variable name → steps that produce it.
    producers: HashMap<&'a str, Vec<usize>>,
    errors: Vec<ValidationError>,
}

/// What one step sees beyond the workflow's params and env: its own names, and the outputs of
/// the steps it waits for (of every step, for a handler). Asked name by name, so that nothing
/// proportional to the workflow is copied for each step.
struct Scope<'a> {
    own: HashSet<&'a str>,
    step: Option<usize>,
}

impl<'a> ReferenceCheck<'a> {
    fn new(workflow: &'a Workflow, graph: &DependencyGraph) -> Self {
        let mut global: HashSet<&str> = WELL_KNOWN_VARS.iter().copied().collect();
        if let Some(params) = &workflow.params {
            global.extend(params.keys().map(String::as_str));
        }
        let mut producers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, step) in workflow.steps.iter().enumerate() {
            if let Some(output) = &step.output {
                producers.entry(output.as_str()).or_default().push(index);
            }
        }
        Self {
            workflow,
            ancestry: graph.ancestry(),
            global,
            producers,
            errors: Vec::new(),
        }
    }

    fn run(mut self) -> Vec<ValidationError> {
        let workflow = self.workflow;
        // Workflow env values see params and the env vars declared before them.
        if let Some(env) = &workflow.env {
            let mut scope = Scope {
                own: HashSet::new(),
                step: None,
            };
            for (name, value) in env.pairs() {
                self.report_unknown(&value, &format!("env.{name}"), &scope, false);
                scope.own.insert(name);
            }
            self.global.extend(scope.own);
        }
        for (index, step) in workflow.steps.iter().enumerate() {
            let scope = Scope {
                own: HashSet::new(),
                step: Some(index),
            };
            self.check_step(step, &format!("steps[{index}]"), scope);
        }
        if let Some(handlers) = &workflow.handler_on {
            for (event, handler) in handler_steps(handlers) {
                let scope = Scope {
                    own: HashSet::new(),
                    step: None,
                };
                self.check_step(handler, &format!("handlerOn.{event}"), scope);
            }
        }
        self.errors
    }

    /// Whether `name` is in scope; handlers (no step) see every step's output, workflow env
    /// values (`outputs` false) none.
    fn visible(&self, name: &str, scope: &Scope<'_>, outputs: bool) -> bool {
        if self.global.contains(name) || scope.own.contains(name) {
            return true;
        }
        let Some(producers) = self.producers.get(name) else {
            return false;
        };
        match scope.step {
            None => outputs,
            Some(step) => producers
                .iter()
                .any(|&producer| self.ancestry.waits_for(step, producer)),
        }
    }

    fn check_step(&mut self, step: &'a Step, path: &str, mut scope: Scope<'a>) {
        if step.parallel.is_some() {
            scope.own.insert(super::model::PARALLEL_ITEM);
        }
        if let Some(env) = &step.env {
            for (name, value) in env.pairs() {
                self.report_unknown(&value, &format!("{path}.env.{name}"), &scope, true);
                scope.own.insert(name);
            }
        }
        let mut shell_scope = Scope {
            own: scope.own.clone(),
            step: scope.step,
        };
        for text in [&step.command, &step.script].into_iter().flatten() {
            shell_scope.own.extend(shell_assigned_names(text));
        }
        for (field, text) in [("command", &step.command), ("script", &step.script)] {
            if let Some(text) = text {
                self.report_unknown(text, &format!("{path}.{field}"), &shell_scope, true);
            }
        }
        if let Some(dir) = &step.dir {
            self.report_unknown(dir, &format!("{path}.dir"), &scope, true);
        }
        if let Some(config) = step
            .executor
            .as_ref()
            .and_then(|executor| executor.config.as_ref())
        {
            let mut strings = Vec::new();
            for (key, value) in config {
                json_strings(value, format!(".{key}"), &mut strings);
            }
            for (suffix, text) in strings {
                self.report_unknown(
                    text,
                    &format!("{path}.executor.config{suffix}"),
                    &scope,
                    true,
                );
            }
        }
        for (nth, precondition) in step.preconditions.iter().flatten().enumerate() {
            let precondition_path = format!("{path}.preconditions[{nth}]");
            match precondition {
                Precondition::Command(command) => {
                    self.report_unknown(command, &precondition_path, &scope, true);
                }
                Precondition::Check(check) => {
                    self.report_unknown(
                        &check.condition,
                        &format!("{precondition_path}.condition"),
                        &scope,
                        true,
                    );
                    if let Some(expected) = &check.expected {
                        self.report_unknown(
                            &expected.to_text(),
                            &format!("{precondition_path}.expected"),
                            &scope,
                            true,
                        );
                    }
                }
            }
        }
    }

    fn report_unknown(&mut self, text: &str, path: &str, scope: &Scope<'_>, outputs: bool) {
        let mut seen = HashSet::new();
        for reference in references(text) {
            let name = reference.name;
            if self.visible(name, scope, outputs) || !seen.insert(name) {
                continue;
            }
            let message = self.explain_unknown(name, scope.step);
            self.errors.push(ValidationError::new(path, message));
        }
    }

    fn explain_unknown(&self, name: &str, step: Option<usize>) -> String {
        let Some(step) = step else {
            return format!(
                "${{{name}}} is not defined: declare {name} in \"params\" or \"env\", or capture it with \"output\": \"{name}\" on a step"
            );
        };
        let here = &self.workflow.steps[step];
        match self.producers.get(name).map(Vec::as_slice) {
            Some([producer, ..]) if *producer == step => format!(
                "${{{name}}} is the output of step '{}' itself; it is only available to steps that depend on it",
                here.name
            ),
            Some([producer, ..]) => format!(
                "${{{name}}} is the output of step '{}', but step '{}' does not depend on it (directly or through other steps); add '{}' to its \"depends\"",
                self.workflow.steps[*producer].name, here.name, self.workflow.steps[*producer].name
            ),
            _ => format!(
                "${{{name}}} is not defined: declare {name} in \"params\" or \"env\", or capture it with \"output\": \"{name}\" on a step that step '{}' depends on",
                here.name
            ),
        }
    }
}

/// The workflow with chain dependencies made explicit and every `depends` a list (absent when
/// a step depends on nothing).
pub fn normalised(workflow: &Workflow) -> Workflow {
    let graph = DependencyGraph::new(workflow);
    let mut normal = workflow.clone();
    for (index, step) in normal.steps.iter_mut().enumerate() {
        step.depends = match &workflow.steps[index].depends {
            // Keep names as written, unknown ones included, so validation still sees them.
            Some(depends) => Some(Depends::Many(depends.names().to_vec())),
            None => {
                let names: Vec<String> = graph
                    .dependencies_of(index)
                    .iter()
                    .map(|&dependency| workflow.steps[dependency].name.clone())
                    .collect();
                (!names.is_empty()).then_some(Depends::Many(names))
            }
        };
    }
    normal
}
