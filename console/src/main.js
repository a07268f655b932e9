// The console's page: the chat on the left, the workflow as a live graph in the middle, the
// session's workflows and executions on the right. The chat id (the server's session) is
// kept in localStorage, so a reload shows the same conversation, resumes a turn still
// running and follows the execution it was watching from its last event. `#/executions/ID`
// opens any execution by id.

import { ApiError, apiKey, json, randomId, setApiKey, whenUnauthorized } from "./api.js";
import { Chat } from "./chat.js";
import { GraphView } from "./graph.js";
import { Run } from "./run.js";

const CHAT = "kubiya.chatId";
const WATCHED = "kubiya.executionId";
const $ = (id) => document.getElementById(id);

function chatId() {
  let id = localStorage.getItem(CHAT);
  if (!id) {
    id = randomId("chat");
    localStorage.setItem(CHAT, id);
  }
  return id;
}

const ui = {
  title: $("workflow-title"),
  status: $("run-status"),
  runButton: $("run-workflow"),
  cancelButton: $("cancel-run"),
  workflows: $("workflows"),
  executions: $("executions"),
};

const graph = new GraphView({
  graph: $("graph"),
  panel: {
    root: $("step-panel"),
    title: $("step-title"),
    state: $("step-state"),
    output: $("step-output"),
    error: $("step-error"),
    events: $("step-events"),
  },
});

let current = null;

/// Executions started from this page's Run button (the agent's own are in the session).
const STARTED = `kubiya.started.${chatId()}`;
function startedHere() {
  try {
    const ids = JSON.parse(localStorage.getItem(STARTED) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function showStatus(run) {
  ui.title.textContent = `Workflow ${run.name}`;
  const words = {
    planned: "proposed, not run",
    awaiting_approval: "waiting for your approval",
    queued: "queued",
    running: "running",
    success: "succeeded",
  };
  const id = run.executionId ? ` · ${run.executionId}` : "";
  ui.status.textContent = `${words[run.status] || run.status}${id}${run.error ? ` · ${run.error}` : ""}`;
  ui.status.dataset.status = run.status;
  ui.runButton.hidden = run.status !== "planned" && run.status !== "awaiting_approval";
  ui.cancelButton.hidden = !run.executionId || run.finished;
}

function show(run) {
  if (current) current.stop();
  current = run;
  run.onChange((changed, step) => {
    if (current !== changed) return;
    // Watched again after a reload, once it was found.
    if (changed.executionId && !changed.error) localStorage.setItem(WATCHED, changed.executionId);
    graph.refresh(step);
    showStatus(changed);
    if (changed.finished && !step) refreshHistory().catch(() => {});
  });
  graph.show(run);
  showStatus(run);
  if (run.executionId) run.follow();
}

function watch(executionId, definition = null) {
  if (current && current.executionId === executionId) return;
  const run = definition ? Run.fromDefinition(definition) : new Run({ name: executionId });
  run.executionId = executionId;
  run.status = "queued";
  show(run);
}

function sameDefinition(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/// A `data-workflow` part of the chat: the workflow proposed, then the execution started.
function onWorkflow(part) {
  if (part.execution_id) watch(part.execution_id, part.definition);
  // A proposal replaces what is shown unless a run is still going there.
  else if (!current || current.finished || (!current.executionId && !sameDefinition(current.definition, part.definition))) {
    const run = Run.fromDefinition(part.definition);
    if (part.status === "awaiting_approval") run.status = "awaiting_approval";
    show(run);
  } else if (!current.executionId && part.status === "awaiting_approval") {
    current.status = "awaiting_approval";
    showStatus(current);
  }
}

ui.runButton.addEventListener("click", async () => {
  if (!current || !current.definition) return;
  // The agent asked: answering it in the chat runs the workflow inside the conversation.
  const asked = current.status === "awaiting_approval" && document.querySelector("#messages button.approve:not(:disabled)");
  if (asked) return asked.click();
  ui.runButton.disabled = true;
  try {
    const started = await json("POST", "/v1/executions", { body: { workflow: current.definition } });
    // Started here, not by the agent: the session does not list it, this browser does.
    const mine = startedHere();
    mine.push(started.execution_id);
    localStorage.setItem(STARTED, JSON.stringify(mine.slice(-50)));
    watch(started.execution_id, current.definition);
    refreshHistory().catch(() => {});
  } catch (error) {
    ui.status.textContent = `Could not start: ${error.message}`;
  } finally {
    ui.runButton.disabled = false;
  }
});

ui.cancelButton.addEventListener("click", async () => {
  if (!current) return;
  ui.cancelButton.disabled = true;
  try {
    await current.cancel();
  } catch (error) {
    ui.status.textContent = `Could not cancel: ${error.message}`;
  } finally {
    ui.cancelButton.disabled = false;
  }
});

function listItem(label, detail, onOpen) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = label;
  button.addEventListener("click", onOpen);
  item.append(button);
  if (detail) {
    const span = document.createElement("span");
    span.className = "detail";
    span.textContent = ` ${detail}`;
    item.append(span);
  }
  return item;
}

/// The session's workflows and executions, each execution with its status.
async function refreshHistory() {
  let session = null;
  try {
    session = await json("GET", `/v1/sessions/${encodeURIComponent(chat.chatId)}`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  const workflows = session ? session.workflows : [];
  const executions = [...(session ? session.executions : []), ...startedHere()];
  ui.workflows.replaceChildren(
    ...workflows.map((definition) =>
      listItem(definition.name || "workflow", `${(definition.steps || []).length} steps`, () => show(Run.fromDefinition(definition))),
    ),
  );
  const items = await Promise.all(
    executions.map(async (id) => {
      let detail;
      try {
        const snapshot = await json("GET", `/v1/executions/${encodeURIComponent(id)}`);
        detail = `${snapshot.workflow}: ${snapshot.status}`;
      } catch (error) {
        detail = error.status === 404 ? "no longer kept" : error.message;
      }
      return listItem(id, detail, () => {
        location.hash = `#/executions/${id}`;
      });
    }),
  );
  ui.executions.replaceChildren(...items);
  return session;
}

function openFromHash() {
  const match = /^#\/executions\/([\w-]+)$/.exec(location.hash);
  if (match) watch(match[1]);
  return Boolean(match);
}

window.addEventListener("hashchange", openFromHash);

$("open-execution").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("execution-id").value.trim();
  if (id) location.hash = `#/executions/${id}`;
});

$("new-chat").addEventListener("click", () => {
  localStorage.removeItem(CHAT);
  localStorage.removeItem(WATCHED);
  localStorage.removeItem(STARTED);
  location.hash = "";
  location.reload();
});

const chat = new Chat({
  list: $("messages"),
  form: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  askFirst: $("ask-first"),
  chatId: chatId(),
  onWorkflow,
  onTurnEnd: () => refreshHistory().catch(() => {}),
});

const keyForm = $("key-form");
whenUnauthorized((message) => {
  keyForm.hidden = false;
  $("key-error").textContent = apiKey() ? message : "This server needs an API key.";
  $("api-key").focus();
});
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  $("api-key").value = "";
  keyForm.hidden = true;
  start();
});

/// Loads the session, resumes a running turn and the execution being watched.
async function start() {
  try {
    const session = await refreshHistory();
    if (session) {
      chat.showTranscript(session.transcript, session.pending_approval);
      const last = session.workflows[session.workflows.length - 1];
      if (last && !current) {
        const run = Run.fromDefinition(last);
        if (session.pending_approval) run.status = "awaiting_approval";
        show(run);
      }
    }
    if (!openFromHash()) {
      const watched = localStorage.getItem(WATCHED);
      if (watched) watch(watched);
    }
    await chat.resume();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) ui.status.textContent = error.message;
  }
}

start();
