// The chat: the user's messages and the agent's answers, read from the AI SDK's UI message
// stream of POST /api/chat (and GET /api/chat/{id}/stream to resume a turn that is still
// running after a reload). Text streams in; each tool call is a collapsible item with its
// input and result; an approval request gets Run and Decline buttons, whose answer goes back
// the way the chat protocol wants it (the assistant message's tool part, approval-responded).
// Everything the agent or a workflow wrote is set as text, never as HTML.

import { call, randomId, readEvents } from "./api.js";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pretty(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/// One assistant message on the page, built from its chunks.
class AssistantMessage {
  constructor(list, chat) {
    this.chat = chat;
    this.id = null;
    this.root = element("li", "message assistant");
    this.root.append(element("span", "who", "Agent"));
    this.body = element("div", "parts");
    this.root.append(this.body);
    list.append(this.root);
    this.texts = new Map();
    this.tools = new Map();
  }

  text(id) {
    if (!this.texts.has(id)) {
      const paragraph = element("p", id.startsWith("reasoning-") ? "text reasoning" : "text");
      this.body.append(paragraph);
      this.texts.set(id, paragraph);
    }
    return this.texts.get(id);
  }

  tool(toolCallId, toolName) {
    if (!this.tools.has(toolCallId)) {
      const details = element("details", "tool");
      const summary = element("summary");
      const name = element("span", "tool-name", toolName || "tool");
      const state = element("span", "tool-state", "called");
      summary.append(name, " ", state);
      const input = element("pre", "tool-input");
      const output = element("pre", "tool-output");
      details.append(summary, element("h5", null, "Input"), input, element("h5", null, "Result"), output);
      this.body.append(details);
      this.tools.set(toolCallId, { details, name, state, input, output, toolName });
    }
    return this.tools.get(toolCallId);
  }

  apply(chunk) {
    switch (chunk.type) {
      case "start":
        this.id = chunk.messageId || this.id;
        break;
      case "text-start":
      case "reasoning-start": {
        // Ids may repeat across the turns of one message: each start is a new paragraph.
        const key = chunk.type === "text-start" ? chunk.id : `reasoning-${chunk.id}`;
        this.texts.delete(key);
        this.text(key);
        break;
      }
      case "text-delta":
        this.text(chunk.id).textContent += chunk.delta;
        break;
      case "reasoning-delta":
        this.text(`reasoning-${chunk.id}`).textContent += chunk.delta;
        break;
      case "tool-input-available": {
        const tool = this.tool(chunk.toolCallId, chunk.toolName);
        tool.input.textContent = pretty(chunk.input);
        tool.state.textContent = "running";
        break;
      }
      case "tool-output-available": {
        const tool = this.tool(chunk.toolCallId);
        tool.output.textContent = pretty(chunk.output);
        tool.state.textContent = "done";
        break;
      }
      case "tool-output-error": {
        const tool = this.tool(chunk.toolCallId);
        tool.output.textContent = chunk.errorText;
        tool.state.textContent = "failed";
        tool.details.classList.add("failed");
        break;
      }
      case "tool-output-denied":
        this.tool(chunk.toolCallId).state.textContent = "declined";
        break;
      case "tool-approval-request":
        this.askApproval(chunk);
        break;
      case "data-workflow":
        this.chat.onWorkflow(chunk.data);
        break;
      case "error":
        this.body.append(element("p", "error", `Error: ${chunk.errorText}`));
        break;
      default:
        break;
    }
  }

  askApproval({ approvalId, toolCallId }) {
    const tool = this.tool(toolCallId, "execute_workflow");
    tool.state.textContent = "waiting for your approval";
    const box = element("div", "approval");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Approve the run");
    box.append(element("p", null, "The agent wants to run this workflow."));
    const run = element("button", "approve", "Run workflow");
    run.type = "button";
    const decline = element("button", "decline", "Decline");
    decline.type = "button";
    const answer = (approved) => {
      run.disabled = true;
      decline.disabled = true;
      box.replaceChildren(element("p", null, approved ? "Approved: running." : "Declined."));
      this.chat.answerApproval(this, { approvalId, toolCallId, toolName: tool.toolName, approved });
    };
    run.addEventListener("click", () => answer(true));
    decline.addEventListener("click", () => answer(false));
    box.append(run, " ", decline);
    this.body.append(box);
    this.chat.onApprovalRequested(run);
  }
}

export class Chat {
  constructor({ list, form, prompt, send, askFirst, chatId, onWorkflow, onTurnEnd }) {
    this.list = list;
    this.prompt = prompt;
    this.send = send;
    this.askFirst = askFirst;
    this.chatId = chatId;
    this.onWorkflow = onWorkflow;
    this.onTurnEnd = onTurnEnd;
    this.busy = false;
    this.onApprovalRequested = (button) => button.focus();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = prompt.value.trim();
      if (text && !this.busy) {
        prompt.value = "";
        this.ask(text);
      }
    });
    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }

  userMessage(text) {
    const item = element("li", "message user");
    item.append(element("span", "who", "You"), element("p", "text", text));
    this.list.append(item);
    item.scrollIntoView({ block: "end" });
  }

  /// Shows a conversation kept by the server (GET /v1/sessions/{id}'s transcript), asking
  /// again for the approval it waits for, if any.
  showTranscript(transcript, pending = null) {
    this.list.replaceChildren();
    let current = null;
    for (const message of transcript) {
      if (message.role === "user") {
        this.userMessage(message.content);
        current = null;
      } else if (message.role === "assistant") {
        current = current || new AssistantMessage(this.list, this);
        if (message.content) current.apply({ type: "text-delta", id: `kept-${this.list.childElementCount}-${current.texts.size}`, delta: message.content });
        for (const toolCall of message.tool_calls || []) {
          current.apply({ type: "tool-input-available", toolCallId: toolCall.id, toolName: toolCall.name, input: toolCall.arguments });
        }
      } else if (message.role === "tool" && current) {
        current.apply(
          message.is_error
            ? { type: "tool-output-error", toolCallId: message.tool_call_id, errorText: message.content }
            : { type: "tool-output-available", toolCallId: message.tool_call_id, output: message.content },
        );
      }
    }
    if (pending && current && current.tools.has(pending.tool_call_id)) {
      // A new id: the answer's stream continues this message on the page.
      current.id = randomId("msg");
      current.askApproval({ approvalId: pending.approval_id, toolCallId: pending.tool_call_id });
    }
  }

  setBusy(busy) {
    this.busy = busy;
    this.send.disabled = busy;
    this.send.textContent = busy ? "Working…" : "Send";
  }

  async ask(text) {
    this.userMessage(text);
    await this.turn({
      id: this.chatId,
      messages: [{ id: randomId("msg"), role: "user", parts: [{ type: "text", text }] }],
      require_approval: this.askFirst.checked,
    });
  }

  async answerApproval(message, { approvalId, toolCallId, toolName, approved }) {
    const part = {
      type: `tool-${toolName}`,
      toolCallId,
      state: "approval-responded",
      approval: { id: approvalId, approved },
    };
    await this.turn(
      { id: this.chatId, messages: [{ id: message.id, role: "assistant", parts: [part] }], require_approval: true },
      message,
    );
  }

  /// Sends one turn and reads its answer into `message` (a new one unless continuing).
  async turn(body, message = null) {
    this.setBusy(true);
    const target = message || new AssistantMessage(this.list, this);
    try {
      const response = await call("POST", "/api/chat", { body });
      await this.read(response, target);
    } catch (error) {
      target.apply({ type: "error", errorText: error.message });
    } finally {
      this.setBusy(false);
      this.onTurnEnd();
    }
  }

  /// Resumes the chat's turn still running on the server, if any (204: none).
  async resume() {
    const response = await call("GET", `/api/chat/${encodeURIComponent(this.chatId)}/stream`);
    if (response.status === 204) return false;
    this.setBusy(true);
    try {
      await this.read(response, new AssistantMessage(this.list, this));
    } finally {
      this.setBusy(false);
      this.onTurnEnd();
    }
    return true;
  }

  async read(response, message) {
    await readEvents(response, ({ data }) => {
      if (data === "[DONE]") return;
      message.apply(JSON.parse(data));
      message.root.scrollIntoView({ block: "end" });
    });
  }
}
