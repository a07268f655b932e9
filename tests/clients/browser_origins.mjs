// A real browser (Debian's chromium, driven by playwright-core) on a page of another origin
// tries what a malicious site would against the server, and what an allowed web app does.
// Usage: node browser_origins.mjs REFUSING_URL ALLOWING_URL PAGE_PORT
// REFUSING_URL is a server with no allowed origins, ALLOWING_URL one that allows
// http://127.0.0.1:PAGE_PORT. Prints one JSON object with what the page could do.
import http from "node:http";
import { chromium } from "playwright-core";

const [refusing, allowing, pagePort] = process.argv.slice(2);
const page_server = http.createServer((_, response) => {
  response.writeHead(200, { "content-type": "text/html" });
  response.end("<!doctype html><title>elsewhere</title><p>a page on another origin</p>");
});
await new Promise((resolve) => page_server.listen(Number(pagePort), "127.0.0.1", resolve));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${pagePort}/`);
  const seen = await page.evaluate(async ({ refusing, allowing }) => {
    const workflow = { name: "pwned", steps: [{ name: "run", command: "echo pwned" }] };
    const seen = {};
    // 1. The classic: a "simple" cross-origin POST, no preflight, response unreadable.
    await fetch(`${refusing}/v1/executions`, {
      method: "POST",
      mode: "no-cors",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ workflow }),
    });
    await fetch(`${refusing}/compose`, {
      method: "POST",
      mode: "no-cors",
      body: new Blob([JSON.stringify({ task: "Say hello", mode: "act" })]),
    });
    // 2. JSON needs a preflight, which a refusing server does not grant.
    try {
      await fetch(`${refusing}/v1/executions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ workflow }),
      });
      seen.jsonPostRead = true;
    } catch {
      seen.jsonPostRead = false;
    }
    // 3. A WebSocket to the compose endpoint.
    seen.socketOpened = await new Promise((resolve) => {
      const socket = new WebSocket(`${refusing.replace("http", "ws")}/ws/compose`);
      socket.onopen = () => {
        socket.send(JSON.stringify({ task: "Say hello", mode: "act" }));
        resolve(true);
      };
      socket.onerror = () => resolve(false);
    });
    // 4. The allowed web app: a JSON call with an exposed header, and an error it can read.
    const answer = await fetch(`${allowing}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": "web-user" },
      body: JSON.stringify({
        model: "kubiya-workflow-agent",
        messages: [{ role: "user", content: "Create a hello world workflow" }],
      }),
    });
    const completion = await answer.json();
    seen.allowedStatus = answer.status;
    seen.allowedObject = completion.object;
    seen.allowedSessionHeader = answer.headers.get("x-session-id");
    const refused = await fetch(`${allowing}/v1/models/nope`);
    seen.allowedErrorStatus = refused.status;
    seen.allowedErrorCode = (await refused.json()).error.code;
    return seen;
  }, { refusing, allowing });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
  page_server.close();
}
