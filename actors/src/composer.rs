//! The `Composer` actor: builds each model request of a turn — the system prompt that
//! teaches the workflow JSON format and the tools, the conversation so far, and the tool
//! catalog the model may call: the built-in workflow tools and, for chat, the tools of the
//! supervised MCP servers. Sessions ask it with [`ComposeTurn`]; it never does I/O on their
//! behalf. One runs on each HTTP worker ([`PerThread`]), next to the sessions it serves, and
//! keeps its copy of the MCP catalog until the supervisor's catalog changes, so composing a
//! request crosses no thread. The system prompts and tool catalogs it hands out are built
//! once (per MCP catalog version and access list) and shared, so their JSON is encoded once
//! too ([`crate::provider::prefix`]).
//!
//! [`PerThread`]: crate::per_thread::PerThread

use std::sync::Arc;

use actix::prelude::*;

use crate::mcp::{CatalogChanges, ListTools, McpAccess, McpSupervisor};
use crate::provider::{ChatRequest, SystemPrompt, ToolCatalog, ToolSpec, Transcript};
use crate::tools;

/// Builds the model request for the next step of a turn.
#[derive(Message)]
#[rtype(result = "ChatRequest")]
pub struct ComposeTurn {
    /// The session's conversation, shared with the request rather than copied into it.
    pub transcript: Transcript,
    /// Instructions the client sent as system or developer messages.
    pub instructions: Option<String>,
    pub purpose: Purpose,
    /// A model other than the provider's default (the Compose API's `model_overrides`).
    pub model: Option<String>,
    /// The MCP tools the caller's API key may use.
    pub mcp_access: McpAccess,
}

/// What the turn is for, which decides the instructions and the tools offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The chat agent: every tool.
    Chat,
    /// The Compose API: produce one valid workflow; only `validate_workflow` is offered.
    Compose,
}

/// The supervised MCP servers, whose tools join the chat catalog.
#[derive(Clone)]
pub struct McpTools {
    pub supervisor: Addr<McpSupervisor>,
    pub changes: CatalogChanges,
}

pub struct Composer {
    /// The prefix of every request, built once: shared by the requests and encoded once.
    chat: Prefix,
    compose: Prefix,
    mcp: Option<McpTools>,
    /// The MCP tools as listed at a count of catalog changes.
    listed: Option<(u64, Arc<[ToolSpec]>)>,
    /// The chat catalogs with the MCP tools each key may use, for `listed`: rebuilt only
    /// when the MCP catalog changes.
    chat_with_mcp: Vec<(McpAccess, ToolCatalog)>,
}

/// The system prompt and tools of one purpose.
struct Prefix {
    system: SystemPrompt,
    tools: ToolCatalog,
}

/// Distinct MCP access lists whose chat catalogs are kept; the keys of one deployment
/// rarely have more, and past it the kept ones are dropped and rebuilt as used.
const MAX_KEPT_CATALOGS: usize = 32;

impl Composer {
    pub fn new(mcp: Option<McpTools>) -> Self {
        let builtin = tools::builtin_catalog();
        let compose_tools = builtin
            .iter()
            .filter(|tool| tool.name == tools::VALIDATE_WORKFLOW)
            .cloned()
            .collect();
        Self {
            chat: Prefix {
                system: SystemPrompt::new(SYSTEM_PROMPT),
                tools: builtin.into(),
            },
            compose: Prefix {
                system: SystemPrompt::new(format!("{SYSTEM_PROMPT}{COMPOSE_INSTRUCTIONS}")),
                tools: compose_tools,
            },
            mcp,
            listed: None,
            chat_with_mcp: Vec::new(),
        }
    }

    /// The chat catalog with the listed MCP tools `access` allows, built once per catalog
    /// version and access list.
    fn chat_tools_with(&mut self, listed: &[ToolSpec], access: &McpAccess) -> ToolCatalog {
        if let Some((_, catalog)) = self.chat_with_mcp.iter().find(|(kept, _)| kept == access) {
            return catalog.clone();
        }
        if self.chat_with_mcp.len() >= MAX_KEPT_CATALOGS {
            self.chat_with_mcp.clear();
        }
        let catalog: ToolCatalog = self
            .chat
            .tools
            .iter()
            .cloned()
            .chain(
                listed
                    .iter()
                    .filter(|tool| access.allows(&tool.name))
                    .cloned(),
            )
            .collect();
        self.chat_with_mcp.push((access.clone(), catalog.clone()));
        catalog
    }
}

impl Actor for Composer {
    type Context = Context<Self>;
}

impl Handler<ComposeTurn> for Composer {
    type Result = ResponseActFuture<Self, ChatRequest>;

    fn handle(&mut self, turn: ComposeTurn, _: &mut Context<Self>) -> Self::Result {
        let prefix = match turn.purpose {
            Purpose::Chat => &self.chat,
            Purpose::Compose => &self.compose,
        };
        let system = match &turn.instructions {
            // The application's own instructions make this turn's prompt its own.
            Some(extra) => SystemPrompt::new(format!(
                "{}\n\nInstructions from the user's application:\n{extra}",
                prefix.system.as_str()
            )),
            None => prefix.system.clone(),
        };
        let request = ChatRequest {
            model: turn.model.unwrap_or_default(),
            system: Some(system),
            messages: turn.transcript,
            tools: prefix.tools.clone(),
            max_tokens: None,
            temperature: None,
            // Always streamed upstream, whatever the client asked: the same decode path,
            // and a call that can be dropped the moment the client leaves.
            stream: true,
        };
        let Some(mcp) = self.mcp.clone().filter(|_| turn.purpose == Purpose::Chat) else {
            return Box::pin(fut::ready(request));
        };
        // The whole catalog is kept, and each turn takes what its key may use; the supervisor
        // checks the key again when a tool is called.
        let access = turn.mcp_access;
        let changes = mcp.changes.current();
        if let Some((listed_at, listed)) = &self.listed
            && *listed_at == changes
        {
            let listed = listed.clone();
            let mut request = request;
            request.tools = self.chat_tools_with(&listed, &access);
            return Box::pin(fut::ready(request));
        }
        let listing = ListTools {
            access: McpAccess::All,
        };
        Box::pin(
            async move { mcp.supervisor.send(listing).await }
                .into_actor(self)
                .map(move |listed, composer, _| {
                    let mut request = request;
                    // A supervisor that is gone has no tools to offer; the built-in ones
                    // still work.
                    if let Ok(listed) = listed {
                        let listed: Arc<[ToolSpec]> = listed.into();
                        composer.listed = Some((changes, listed.clone()));
                        composer.chat_with_mcp.clear();
                        request.tools = composer.chat_tools_with(&listed, &access);
                    }
                    request
                }),
        )
    }
}

const SYSTEM_PROMPT: &str = r#"You are the Kubiya workflow agent. You turn requests in plain language into workflows, validate them, and run them when the user asks.

A workflow is JSON:
{"name": "kebab-case-name", "description": "...", "type": "chain" | "graph",
 "params": {"NAME": "default value"}, "env": {"KEY": "value"},
 "steps": [
   {"name": "unique-step-name", "command": "shell command using ${NAME}", "output": "VAR_NAME"},
   {"name": "next", "command": "echo ${VAR_NAME}", "depends": ["unique-step-name"]},
   {"name": "script-step", "command": "python", "script": "print('hi')"},
   {"name": "call-api", "executor": {"type": "http", "config": {"url": "https://...", "method": "GET"}}}
 ]}
Rules: step names are unique; in a "chain" each step runs after the previous one; in a "graph" steps run as soon as everything in "depends" has finished, so independent steps run in parallel; "${NAME}" refers to a param, an env variable, or the "output" of a step it depends on; per step you may set "timeout" (seconds), "retryPolicy" {"limit": 3, "intervalSec": 5}, "continueOn" {"failure": true} and "preconditions".

Tools:
- validate_workflow {workflow}: always validate before running; fix every error it reports and validate again.
- execute_workflow {workflow, params, runner}: runs a valid workflow; the user sees each step live; you get the final status and outputs. Only run when the user asked for it.
- get_execution {execution_id}: the state of an execution.
- list_runners {}: where workflows can run.
After running, summarise the outcome in a few sentences."#;

const COMPOSE_INSTRUCTIONS: &str = r#"

You are serving the Compose API: turn the task into one workflow. Call validate_workflow with the complete workflow JSON; when it reports errors, fix all of them and call it again. Honour the context's preferred runner and constraints. Do not ask questions: make sensible assumptions and state them briefly."#;
