//! The catalog of built-in workflow tools, the one place their names, descriptions and JSON
//! schemas are written: the Session offers them to the model ([`builtin_catalog`]), our MCP
//! server lists them ([`BuiltinTool::mcp_definition`]) and the offline planner calls them by
//! these names.

use serde_json::{Value, json};

use crate::provider::ToolSpec;

/// A built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTool {
    ValidateWorkflow,
    ExecuteWorkflow,
    GetExecution,
    ListRunners,
}

pub const VALIDATE_WORKFLOW: &str = BuiltinTool::ValidateWorkflow.name();
pub const EXECUTE_WORKFLOW: &str = BuiltinTool::ExecuteWorkflow.name();
pub const GET_EXECUTION: &str = BuiltinTool::GetExecution.name();
pub const LIST_RUNNERS: &str = BuiltinTool::ListRunners.name();

impl BuiltinTool {
    /// Every built-in tool, in the order they are offered.
    pub const ALL: [Self; 4] = [
        Self::ValidateWorkflow,
        Self::ExecuteWorkflow,
        Self::GetExecution,
        Self::ListRunners,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::ValidateWorkflow => "validate_workflow",
            Self::ExecuteWorkflow => "execute_workflow",
            Self::GetExecution => "get_execution",
            Self::ListRunners => "list_runners",
        }
    }

    /// The tool called `name`, if it is a built-in one.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::ValidateWorkflow => "Validate a workflow",
            Self::ExecuteWorkflow => "Run a workflow",
            Self::GetExecution => "Follow an execution",
            Self::ListRunners => "List runners",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::ValidateWorkflow => {
                "Checks a workflow without running it. Returns {valid, errors: [{path, message}], workflow}: every problem with its JSON path, and the workflow normalised; fix every error and validate again."
            }
            Self::ExecuteWorkflow => {
                "Runs a valid workflow on a runner (\"local\": this host, each step sandboxed) and waits for it to finish; each step is seen live. Returns the execution's final state: its id, status, each step's status and output, and the output variables."
            }
            Self::GetExecution => {
                "The state of an execution of yours (status, each step's state and output), whoever started it."
            }
            Self::ListRunners => "The runners workflows can run on.",
        }
    }

    /// The arguments, as a JSON schema.
    pub fn input_schema(self) -> Value {
        let workflow = json!({
            "description": "The workflow: an object with \"name\" and \"steps\" (each step has \"name\" and a \"command\", \"script\" or \"executor\"; \"depends\" lists earlier steps), or the same as JSON or YAML text.",
            "type": ["object", "string"],
        });
        match self {
            Self::ValidateWorkflow => json!({
                "type": "object",
                "properties": {"workflow": workflow},
                "required": ["workflow"],
            }),
            Self::ExecuteWorkflow => json!({
                "type": "object",
                "properties": {
                    "workflow": workflow,
                    "params": {"type": "object", "description": "Values for the workflow's params, by name.", "additionalProperties": true},
                    "runner": {"type": "string", "description": "Where to run it; see list_runners. Default: the configured runner."},
                },
                "required": ["workflow"],
            }),
            Self::GetExecution => json!({
                "type": "object",
                "properties": {"execution_id": {"type": "string"}},
                "required": ["execution_id"],
            }),
            Self::ListRunners => json!({"type": "object", "properties": {}}),
        }
    }

    /// The tool as the model is offered it.
    pub fn spec(self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.input_schema(),
        }
    }

    /// The tool as our MCP server lists it: with a title, an output schema and hints, and
    /// the arguments only an MCP client has (`wait` to start a run without waiting for it,
    /// `after` to page through an execution's events).
    pub fn mcp_definition(self) -> Value {
        let mut input = self.input_schema();
        input["additionalProperties"] = json!(false);
        let (output, annotations) = match self {
            Self::ValidateWorkflow => (
                json!({
                    "type": "object",
                    "properties": {
                        "valid": {"type": "boolean"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}},
                        "workflow": {"type": ["object", "null"]},
                        "runnable_locally": {"type": "boolean"},
                        "local_runner_problems": {"type": "array"},
                    },
                    "required": ["valid", "errors"],
                }),
                json!({"readOnlyHint": true, "openWorldHint": false}),
            ),
            Self::ExecuteWorkflow => {
                input["properties"]["wait"] = json!({"type": "boolean", "description": "Wait for the run to end (default true); false returns the execution id at once (follow it with get_execution).", "default": true});
                (
                    json!({
                        "type": "object",
                        "properties": {
                            "execution_id": {"type": "string"},
                            "status": {"type": "string", "description": "running (wait: false), success, failed, cancelled, lost or invalid"},
                            "error": {"type": ["string", "null"]},
                            "duration_ms": {"type": ["integer", "null"]},
                            "outputs": {"type": "object"},
                            "steps": {"type": "array", "items": {"type": "object"}},
                            "errors": {"type": "array"},
                        },
                        "required": ["status"],
                    }),
                    json!({"readOnlyHint": false, "destructiveHint": true, "openWorldHint": true}),
                )
            }
            Self::GetExecution => {
                input["properties"]["after"] = json!({"type": "integer", "minimum": 0, "description": "Return only events after this many (to poll for new ones)."});
                (
                    execution_view_schema(),
                    json!({"readOnlyHint": true, "openWorldHint": false}),
                )
            }
            Self::ListRunners => (
                json!({
                    "type": "object",
                    "properties": {"runners": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "type": {"type": "string", "enum": ["local", "kubiya-hosted"]},
                            "status": {"type": "string", "enum": ["available", "unavailable", "configured"]},
                            "description": {"type": "string"},
                            "default": {"type": "boolean", "description": "Runs that name no runner go to it."},
                            "isolation": {"type": "string"},
                            "network": {"type": "boolean"},
                        },
                        "required": ["name", "type", "status", "description", "default"],
                    }}},
                    "required": ["runners"],
                }),
                json!({"readOnlyHint": true, "openWorldHint": false}),
            ),
        };
        json!({
            "name": self.name(),
            "title": self.title(),
            "description": self.description(),
            "inputSchema": input,
            "outputSchema": output,
            "annotations": annotations,
        })
    }
}

/// The built-in tools as the model is offered them.
pub fn builtin_catalog() -> Vec<ToolSpec> {
    BuiltinTool::ALL
        .into_iter()
        .map(BuiltinTool::spec)
        .collect()
}

/// What our MCP server's `get_execution` returns and its execution resource holds.
pub fn execution_view_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "execution_id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": {"type": "string"},
            "started_at": {"type": "integer", "description": "Unix time in milliseconds"},
            "event_count": {"type": "integer"},
            "events": {"type": "array", "items": {"type": "object"}},
            "result": {"type": ["object", "null"]},
        },
        "required": ["execution_id", "status", "events"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_found_by_its_name_and_lists_the_same_arguments_everywhere() {
        for tool in BuiltinTool::ALL {
            assert_eq!(BuiltinTool::named(tool.name()), Some(tool));
            let definition = tool.mcp_definition();
            assert_eq!(definition["name"], tool.name());
            let offered = tool.spec().parameters;
            for (argument, schema) in offered["properties"].as_object().into_iter().flatten() {
                assert_eq!(
                    &definition["inputSchema"]["properties"][argument],
                    schema,
                    "{argument} of {}",
                    tool.name()
                );
            }
        }
        assert_eq!(BuiltinTool::named("nope"), None);
    }
}
