// A tiny legacy-era MCP server for supervisor tests: it floods stderr (synchronously, as Node
// writes to pipes on Linux, so an undrained pipe would block it) and still answers on stdout.
// Tools: `flood {lines}` writes that many 1 KiB lines to stderr, then answers;
// `hold {}` never answers (for shutdown tests); `grow {}` adds a tool `extra` and says the list
// changed. It ignores stdin EOF on purpose when HOLD_ON_EOF=1.
"use strict";
const readline = require("node:readline");

const line = "x".repeat(1023) + "\n";
function flood(lines) {
  for (let i = 0; i < lines; i++) process.stderr.write(line);
}
function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

flood(Number(process.env.FLOOD_AT_START || 0));

const tools = [
  { name: "flood", description: "floods stderr", inputSchema: { type: "object", properties: { lines: { type: "number" } } } },
  { name: "grow", description: "adds a tool", inputSchema: { type: "object" } },
  { name: "hold", description: "never answers", inputSchema: { type: "object" } },
];

const input = readline.createInterface({ input: process.stdin });
input.on("line", (text) => {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  const { id, method, params } = message;
  if (method === "initialize") {
    send({ jsonrpc: "2.0", id, result: { protocolVersion: "2025-11-25", capabilities: { tools: {} }, serverInfo: { name: "flood", version: "1" } } });
  } else if (method === "tools/list") {
    send({ jsonrpc: "2.0", id, result: { tools } });
  } else if (method === "tools/call" && params.name === "flood") {
    const lines = params.arguments.lines || 0;
    flood(lines);
    send({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: `flooded ${lines} lines` }] } });
  } else if (method === "tools/call" && params.name === "grow") {
    tools.push({ name: "extra", description: "added later", inputSchema: { type: "object" } });
    send({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    send({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "grown" }] } });
  } else if (method === "tools/call" && params.name === "hold") {
    // no answer
  } else if (id !== undefined) {
    send({ jsonrpc: "2.0", id, error: { code: -32601, message: "Method not found" } });
  }
});
input.on("close", () => {
  if (process.env.HOLD_ON_EOF === "1") {
    setInterval(() => {}, 1000);
  } else {
    process.exit(0);
  }
});
