// Talks to the server's /api/chat as useChat does, with the AI SDK's own DefaultChatTransport
// and readUIMessageStream (whichever `ai` the caller imported), and prints what the client
// ended up holding as one JSON object. Usage (through ai5/ui_chat.mjs or ai7/ui_chat.mjs):
//   node ui_chat.mjs plan|run|resume|approval|decline BASE_URL
const [scenario, base] = process.argv.slice(2);

export async function main(ai) {
  const transport = new ai.DefaultChatTransport({ api: `${base}/api/chat` });
  const scenarios = { plan, run, resume, approval, decline };
  const seen = await scenarios[scenario](ai, transport);
  console.log(JSON.stringify(seen));
}

function userMessage(text) {
  return { id: `u-${Math.random().toString(36).slice(2)}`, role: "user", parts: [{ type: "text", text }] };
}

// The message the client holds at the end, plus every chunk type it received.
async function read(ai, stream, message) {
  const [forMessage, forTypes] = stream.tee();
  const types = [];
  const counting = (async () => {
    const reader = forTypes.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      types.push(value.type);
    }
  })();
  let last = message;
  for await (const snapshot of ai.readUIMessageStream({ stream: forMessage, message, terminateOnError: true })) {
    last = snapshot;
  }
  await counting;
  return { message: last, types };
}

function summary({ message, types }) {
  const tools = message.parts
    .filter((part) => part.type.startsWith("tool-"))
    .map((part) => ({ type: part.type, state: part.state, toolCallId: part.toolCallId, errorText: part.errorText, output: part.output }));
  const workflows = message.parts.filter((part) => part.type === "data-workflow");
  return {
    role: message.role,
    text: message.parts.filter((part) => part.type === "text").map((part) => part.text).join(""),
    tools,
    workflowParts: workflows.length,
    workflow: workflows.at(-1)?.data ?? null,
    stepLogs: types.filter((type) => type === "data-step-log").length,
    stepOutputs: types.filter((type) => type === "data-step-output").length,
    types,
  };
}

async function send(transport, chatId, messages, body = {}, extra = {}) {
  return transport.sendMessages({ chatId, messages, trigger: "submit-message", messageId: undefined, abortSignal: undefined, body, ...extra });
}

async function plan(ai, transport) {
  const messages = [userMessage("Create a workflow that checks disk usage")];
  return summary(await read(ai, await send(transport, "chat-plan", messages)));
}

async function run(ai, transport) {
  const messages = [userMessage("Check the health of this system and run it")];
  return summary(await read(ai, await send(transport, "chat-run", messages)));
}

// Reads the start of a turn, drops the connection, then resumes it as useChat's
// resumeStream() does (GET {api}/{id}/stream), and resumes once more after the end.
async function resume(ai, transport) {
  const controller = new AbortController();
  const messages = [userMessage("Run the slow workflow")];
  const stream = await send(transport, "chat-resume", messages, {}, { abortSignal: controller.signal });
  const reader = stream.getReader();
  const before = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    before.push(value.type);
    if (value.type === "data-workflow") break;
  }
  controller.abort();
  reader.releaseLock();
  const resumed = await transport.reconnectToStream({ chatId: "chat-resume" });
  if (resumed === null) return { before, resumed: null };
  const seen = summary(await read(ai, resumed));
  const afterEnd = await transport.reconnectToStream({ chatId: "chat-resume" });
  return { before, resumed: seen, afterEnd };
}

// Plan → approve → act: the run waits for the user's approval, as addToolApprovalResponse
// records it in the message useChat sends back.
async function approvalRound(ai, transport, chatId, approved) {
  const user = userMessage("Check the health of this system and run it");
  const first = await read(ai, await send(transport, chatId, [user], { require_approval: true }));
  const asked = summary(first);
  const answered = {
    ...first.message,
    parts: first.message.parts.map((part) =>
      part.state === "approval-requested"
        ? { ...part, state: "approval-responded", approval: { ...part.approval, approved, reason: approved ? undefined : "not now" } }
        : part,
    ),
  };
  const stream = await transport.sendMessages({ chatId, messages: [user, answered], trigger: "submit-message", messageId: answered.id, body: { require_approval: true } });
  const after = summary(await read(ai, stream, answered));
  return { asked, after };
}

async function approval(ai, transport) {
  return approvalRound(ai, transport, "chat-approve", true);
}

async function decline(ai, transport) {
  return approvalRound(ai, transport, "chat-decline", false);
}
