// Runs an MCP server over stdio and appends every byte its client sends it to a log file, so
// a test can see what reached the server (a `notifications/cancelled`, say).
// Usage: node recording-proxy.js <log file> <command> [args...]
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");

const [log, command, ...args] = process.argv.slice(2);
const server = spawn(command, args, { stdio: ["pipe", "inherit", "inherit"] });
process.stdin.on("data", (chunk) => {
  fs.appendFileSync(log, chunk);
  server.stdin.write(chunk);
});
process.stdin.on("end", () => server.stdin.end());
server.on("exit", (code) => process.exit(code ?? 1));
