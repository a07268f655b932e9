//! The raw type checks of a workflow document, before it is read into the model: each field
//! of the wrong type is reported with its JSON path and removed, so that the rest still reads
//! into the model and `validate` can check what it means. Without this, one serde error
//! would hide every other problem.

use serde_json::{Map, Value};

use super::error::ValidationError;

/// Type-checks a workflow object in place, removing bad fields; returns the problems found.
pub(crate) fn check_shape(root: &mut Map<String, Value>) -> Vec<ValidationError> {
    let mut shape = ShapeCheck::default();
    shape.workflow(root);
    shape.errors
}

/// "a string", "a list" and so on, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The raw type checks. Each bad field is reported and removed so that the rest can still be
/// read into the model and checked for meaning.
#[derive(Default)]
struct ShapeCheck {
    errors: Vec<ValidationError>,
}

/// What a field must be.
#[derive(Clone, Copy)]
enum Expect {
    Text,
    Bool,
    /// A whole number ≥ 0 that fits a u32.
    Count,
    /// A whole number ≥ 1 that fits a u32.
    Positive,
    /// A number of seconds ≥ 0.
    Seconds,
    Number,
    /// A string, number or boolean.
    Scalar,
    /// A string or a list of strings.
    TextOrList,
    /// An integer or a list of integers.
    ExitCodes,
    /// A boolean or a number.
    BoolOrNumber,
    Anything,
}

impl Expect {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::Text => value.is_string(),
            Self::Bool => value.is_boolean(),
            Self::Count => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
            Self::Positive => value
                .as_u64()
                .is_some_and(|n| n >= 1 && u32::try_from(n).is_ok()),
            Self::Seconds => value.as_f64().is_some_and(|n| n >= 0.0 && n.is_finite()),
            Self::Number => value.is_number(),
            Self::Scalar => value.is_string() || value.is_number() || value.is_boolean(),
            Self::TextOrList => {
                value.is_string()
                    || value
                        .as_array()
                        .is_some_and(|items| items.iter().all(Value::is_string))
            }
            Self::ExitCodes => {
                is_i32(value)
                    || value
                        .as_array()
                        .is_some_and(|items| items.iter().all(is_i32))
            }
            Self::BoolOrNumber => value.is_boolean() || value.is_number(),
            Self::Anything => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Text => "a string",
            Self::Bool => "true or false",
            Self::Count => "a whole number (0 or more)",
            Self::Positive => "a whole number (1 or more)",
            Self::Seconds => "a number of seconds (0 or more)",
            Self::Number => "a number",
            Self::Scalar => "a string, number or boolean",
            Self::TextOrList => "a string or a list of strings",
            Self::ExitCodes => "an exit code or a list of exit codes",
            Self::BoolOrNumber => "true, false or a number",
            Self::Anything => "any value",
        }
    }
}

fn is_i32(value: &Value) -> bool {
    value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
}

impl ShapeCheck {
    fn report(&mut self, path: String, message: String) {
        self.errors.push(ValidationError::new(path, message));
    }

    /// Checks simple fields of `object` against `fields`, removing bad ones.
    fn fields(&mut self, object: &mut Map<String, Value>, path: &str, fields: &[(&str, Expect)]) {
        for &(key, expect) in fields {
            let Some(value) = object.get(key) else {
                continue;
            };
            // `null` reads as "absent" for every optional field.
            if value.is_null() || expect.accepts(value) {
                continue;
            }
            let found = type_name(value);
            self.report(
                join(path, key),
                format!("\"{key}\" must be {}, not {found}", expect.describe()),
            );
            object.remove(key);
        }
    }

    /// Takes an object-valued field out for nested checks, reporting it if it is not an object.
    fn take_object(
        &mut self,
        object: &mut Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<Map<String, Value>> {
        match object.remove(key)? {
            Value::Object(inner) => Some(inner),
            Value::Null => None,
            other => {
                self.report(
                    join(path, key),
                    format!("\"{key}\" must be an object, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn workflow(&mut self, root: &mut Map<String, Value>) {
        self.fields(
            root,
            "",
            &[
                ("name", Expect::Text),
                ("description", Expect::Text),
                ("runner", Expect::Text),
                ("timeout", Expect::Seconds),
                ("timeoutSec", Expect::Seconds),
                ("schedule", Expect::Text),
                ("tags", Expect::TextOrList),
                ("maxActiveSteps", Expect::Positive),
            ],
        );
        if let Some(kind) = root.get("type")
            && !matches!(kind.as_str(), Some("chain" | "graph"))
        {
            self.report(
                "type".to_owned(),
                format!("\"type\" must be \"chain\" (steps run in order) or \"graph\" (steps run by depends), not {kind}"),
            );
            root.remove("type");
        }
        match root.get_mut("steps") {
            None => {}
            Some(Value::Array(steps)) => {
                let mut kept = Vec::with_capacity(steps.len());
                for (index, step) in std::mem::take(steps).into_iter().enumerate() {
                    let path = format!("steps[{index}]");
                    match step {
                        Value::Object(mut step) => {
                            self.step(&mut step, &path);
                            kept.push(Value::Object(step));
                        }
                        other => {
                            self.report(
                                path,
                                format!(
                                    "each step must be an object with a \"name\", not {}",
                                    type_name(&other)
                                ),
                            );
                            // Keep the slot so later paths stay right; it reports no more.
                            kept.push(Value::Object(Map::from_iter([
                                (
                                    "name".to_owned(),
                                    Value::String(format!("(steps[{index}])")),
                                ),
                                ("type".to_owned(), Value::String("invalid".to_owned())),
                            ])));
                        }
                    }
                }
                *steps = kept;
            }
            Some(other) => {
                let found = type_name(other);
                self.report(
                    "steps".to_owned(),
                    format!("\"steps\" must be a list of step objects, not {found}"),
                );
                root.remove("steps");
            }
        }
        self.params(root);
        self.env(root, "");
        if let Some(mut handlers) = self.take_object(root, "handlerOn", "") {
            for event in ["success", "failure", "cancel", "exit"] {
                if let Some(mut handler) = self.take_object(&mut handlers, event, "handlerOn") {
                    self.step(&mut handler, &format!("handlerOn.{event}"));
                    handlers.insert(event.to_owned(), Value::Object(handler));
                }
            }
            root.insert("handlerOn".to_owned(), Value::Object(handlers));
        }
    }

    fn params(&mut self, root: &mut Map<String, Value>) {
        let Some(mut params) = self.take_object(root, "params", "") else {
            return;
        };
        for (name, value) in params.iter_mut() {
            let Value::Object(spec) = value else {
                continue;
            };
            let is_spec = ["default", "required", "secret", "description"]
                .iter()
                .any(|key| spec.contains_key(*key));
            if is_spec {
                self.fields(
                    spec,
                    &format!("params.{name}"),
                    &[
                        ("required", Expect::Bool),
                        ("secret", Expect::Bool),
                        ("description", Expect::Text),
                    ],
                );
            }
        }
        root.insert("params".to_owned(), Value::Object(params));
    }

    fn env(&mut self, object: &mut Map<String, Value>, path: &str) {
        let key = "env";
        let env_path = join(path, key);
        let Some(env) = object.get_mut(key) else {
            return;
        };
        let mut bad_values = Vec::new();
        let mut check_map = |map: &mut Map<String, Value>, map_path: &str| {
            map.retain(|name, value| {
                let ok = value.is_string() || value.is_number() || value.is_boolean();
                if !ok {
                    bad_values.push((format!("{map_path}.{name}"), type_name(value)));
                }
                ok
            });
        };
        match env {
            Value::Null => {}
            Value::Object(map) => check_map(map, &env_path),
            Value::Array(items) if items.iter().all(Value::is_object) => {
                for (index, item) in items.iter_mut().enumerate() {
                    if let Value::Object(map) = item {
                        check_map(map, &format!("{env_path}[{index}]"));
                    }
                }
            }
            other => {
                let found = type_name(other);
                self.report(
                    env_path,
                    format!("\"env\" must be an object of NAME: value pairs, not {found}"),
                );
                object.remove(key);
                return;
            }
        }
        for (value_path, found) in bad_values {
            self.report(
                value_path,
                format!("environment values must be strings (or numbers/booleans), not {found}"),
            );
        }
    }

    fn step(&mut self, step: &mut Map<String, Value>, path: &str) {
        self.fields(
            step,
            path,
            &[
                ("name", Expect::Text),
                ("description", Expect::Text),
                ("command", Expect::Text),
                ("script", Expect::Text),
                ("depends", Expect::TextOrList),
                ("output", Expect::Text),
                ("dir", Expect::Text),
                ("shell", Expect::Text),
                ("timeout", Expect::Seconds),
                ("timeoutSec", Expect::Seconds),
                ("retries", Expect::Count),
                ("run", Expect::Text),
                ("type", Expect::Text),
                ("parallel", Expect::Anything),
            ],
        );
        self.env(step, path);
        let has_executor = step
            .get("executor")
            .is_some_and(|executor| !executor.is_null());
        if let Some(mut executor) = self.take_object(step, "executor", path) {
            let executor_path = join(path, "executor");
            match executor.get("type") {
                Some(Value::String(kind)) if !kind.trim().is_empty() => {
                    if let Some(config) = executor.get("config")
                        && !config.is_object()
                        && !config.is_null()
                    {
                        self.report(
                            join(&executor_path, "config"),
                            format!(
                                "executor \"config\" must be an object, not {}",
                                type_name(config)
                            ),
                        );
                        executor.remove("config");
                    }
                    step.insert("executor".to_owned(), Value::Object(executor));
                }
                other => {
                    let found = other.map_or("missing", type_name);
                    self.report(
                        join(&executor_path, "type"),
                        format!(
                            "an executor needs a \"type\" such as \"command\", \"docker\", \"http\" or \"agent\" (found {found})"
                        ),
                    );
                    mark_runnable(step);
                }
            }
        } else if has_executor {
            mark_runnable(step);
        }
        if let Some(mut policy) = self.take_object(step, "retryPolicy", path) {
            self.fields(
                &mut policy,
                &join(path, "retryPolicy"),
                &[
                    ("limit", Expect::Count),
                    ("intervalSec", Expect::Seconds),
                    ("maxIntervalSec", Expect::Seconds),
                    ("exponentialBase", Expect::Number),
                    ("backoff", Expect::BoolOrNumber),
                    ("exitCodes", Expect::ExitCodes),
                ],
            );
            step.insert("retryPolicy".to_owned(), Value::Object(policy));
        }
        if let Some(mut policy) = self.take_object(step, "repeatPolicy", path) {
            self.fields(
                &mut policy,
                &join(path, "repeatPolicy"),
                &[
                    ("intervalSec", Expect::Seconds),
                    ("limit", Expect::Count),
                    ("repeat", Expect::Bool),
                    ("condition", Expect::Text),
                    ("expected", Expect::Scalar),
                    ("exitCode", Expect::ExitCodes),
                ],
            );
            step.insert("repeatPolicy".to_owned(), Value::Object(policy));
        }
        if let Some(mut continue_on) = self.take_object(step, "continueOn", path) {
            self.fields(
                &mut continue_on,
                &join(path, "continueOn"),
                &[
                    ("failure", Expect::Bool),
                    ("skipped", Expect::Bool),
                    ("markSuccess", Expect::Bool),
                    ("exitCode", Expect::ExitCodes),
                ],
            );
            step.insert("continueOn".to_owned(), Value::Object(continue_on));
        }
        self.preconditions(step, path);
    }

    fn preconditions(&mut self, step: &mut Map<String, Value>, path: &str) {
        let list_path = join(path, "preconditions");
        match step.get_mut("preconditions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let mut bad = Vec::new();
                for (index, item) in items.iter_mut().enumerate() {
                    let item_path = format!("{list_path}[{index}]");
                    match item {
                        Value::String(_) => {}
                        Value::Object(check) => {
                            if !check.get("condition").is_some_and(Value::is_string) {
                                bad.push((
                                    format!("{item_path}.condition"),
                                    "a precondition object needs a \"condition\" string (and usually \"expected\")".to_owned(),
                                ));
                                continue;
                            }
                            if let Some(expected) = check.get("expected")
                                && !(expected.is_null() || Expect::Scalar.accepts(expected))
                            {
                                bad.push((
                                    format!("{item_path}.expected"),
                                    format!("\"expected\" must be a string, number or boolean, not {}", type_name(expected)),
                                ));
                                check.remove("expected");
                            }
                        }
                        other => bad.push((
                            item_path,
                            format!(
                                "a precondition must be a command string or {{\"condition\", \"expected\"}}, not {}",
                                type_name(other)
                            ),
                        )),
                    }
                }
                // Drop the unreadable items; their errors are reported.
                items.retain(|item| match item {
                    Value::String(_) => true,
                    Value::Object(check) => check.get("condition").is_some_and(Value::is_string),
                    _ => false,
                });
                for (item_path, message) in bad {
                    self.report(item_path, message);
                }
            }
            Some(other) => {
                let found = type_name(other);
                self.report(
                    list_path,
                    format!("\"preconditions\" must be a list of command strings or {{\"condition\", \"expected\"}} objects, not {found}"),
                );
                step.remove("preconditions");
            }
        }
    }
}

/// Gives a step whose executor was unreadable a stand-in `type`, so that it is not also
/// reported as having nothing to run.
fn mark_runnable(step: &mut Map<String, Value>) {
    step.entry("type")
        .or_insert_with(|| Value::String("invalid".to_owned()));
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
