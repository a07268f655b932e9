// Drives the web console in Debian's chromium (playwright-core, no browser download) and
// prints what a user saw as one JSON object for the Rust test to assert on.
// Usage: node console.mjs SCENARIO BASE_URL SCREENSHOT_DIR [API_KEY [ANOTHER_TENANTS_EXECUTION]]

import { chromium } from "playwright-core";

const [scenario, base, shots, key, foreignExecution] = process.argv.slice(2);
const TIMEOUT = 30_000;

// A domain name for the server, as a proxy or DNS would give it (the "domain" scenario).
const DOMAIN = "console.example.test";
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage", `--host-resolver-rules=MAP ${DOMAIN} 127.0.0.1`],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 820 } });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
page.on("console", (message) => {
  // The browser logs every 4xx it is answered (a chat with no session yet is a 404); those
  // are answers, not faults of the page.
  if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) problems.push(`console: ${message.text()}`);
});
const eventRequests = [];
page.on("request", (request) => {
  if (request.url().includes("/events")) eventRequests.push(request.headers()["last-event-id"] ?? null);
});

async function nodes() {
  return page.$$eval("#graph g.node", (all) =>
    all.map((node) => ({
      name: node.dataset.step,
      state: node.dataset.state,
      label: node.getAttribute("aria-label"),
      text: node.textContent,
    })),
  );
}

async function stepsReach(expected) {
  await page.waitForFunction(
    (want) => {
      const all = [...document.querySelectorAll("#graph g.node")];
      return Object.entries(want).every(([name, state]) => all.some((n) => n.dataset.step === name && n.dataset.state === state));
    },
    expected,
    { timeout: TIMEOUT },
  );
}

async function allSucceeded() {
  await page.waitForFunction(() => {
    const all = [...document.querySelectorAll("#graph g.node")];
    return all.length > 0 && all.every((n) => n.dataset.state === "succeeded");
  });
}

async function ask(text) {
  await page.getByLabel("Message the agent").fill(text);
  await page.keyboard.press("Enter");
}

async function approve() {
  const button = page.getByRole("button", { name: "Run workflow" }).and(page.locator("button.approve"));
  await button.waitFor();
  const focused = await page.evaluate(() => document.activeElement?.classList.contains("approve"));
  await button.click();
  return focused;
}

async function panel(step, { keyboard = false } = {}) {
  const node = page.locator(`#graph g.node[data-step="${step}"]`);
  if (keyboard) {
    await node.focus();
    await page.keyboard.press("Enter");
  } else {
    await node.click();
  }
  await page.locator("#step-panel").waitFor({ state: "visible" });
  return {
    title: await page.textContent("#step-title"),
    state: await page.textContent("#step-state"),
    output: await page.textContent("#step-output"),
    error: await page.textContent("#step-error"),
    events: await page.$$eval("#step-events li", (all) => all.map((li) => li.textContent)),
  };
}

async function chatView() {
  return {
    messages: await page.$$eval("#messages > li", (all) => all.map((li) => li.className)),
    text: await page.$$eval("#messages .text", (all) => all.map((p) => p.textContent).join("\n")),
    tools: await page.$$eval("#messages details.tool summary", (all) => all.map((s) => s.textContent)),
  };
}

const seen = { scenario };
try {
  if (scenario === "domain") {
    // The console opened by a domain name, not by an IP address or localhost.
    const byName = base.replace("127.0.0.1", DOMAIN);
    await page.goto(byName + "/");
    seen.origin = await page.evaluate(() => location.origin);
    if (key) {
      await page.locator("#key-form").waitFor({ state: "visible" });
      await page.getByLabel("API key").fill(key);
      await page.keyboard.press("Enter");
      await page.locator("#key-form").waitFor({ state: "hidden" });
    }
    await page.getByLabel("Ask me before running a workflow").uncheck();
    await ask("Create a workflow that checks disk usage");
    if (key) {
      await page.getByRole("button", { name: "Run workflow" }).and(page.locator("#run-workflow")).waitFor();
      await page.locator("#run-workflow").click();
      await allSucceeded();
      seen.nodes = await nodes();
    } else {
      await page.locator("#messages .error").waitFor();
      seen.refused = await page.textContent("#messages .error");
    }
  } else {
    await page.goto(base + "/");
  }
  if (scenario === "domain") {
    // Done above.
  } else if (scenario === "health") {
    seen.title = await page.title();
    await ask("Create and run a health check");
    seen.approveFocused = await approve();
    await allSucceeded();
    seen.nodes = await nodes();
    seen.status = await page.textContent("#run-status");
    seen.summary = await panel("summary", { keyboard: true });
    await page.getByText("finished with status success").waitFor();
    seen.chat = await chatView();
    await page.screenshot({ path: `${shots}/console-chat.png` });
    await page.locator("section.run").screenshot({ path: `${shots}/console-graph.png` });
    // Tool calls are collapsed until opened.
    const tool = page.locator("#messages details.tool").first();
    seen.toolOpen = [await tool.evaluate((d) => d.open)];
    await tool.locator("summary").click();
    seen.toolOpen.push(await tool.evaluate((d) => d.open));
    await page.reload();
    await allSucceeded();
    seen.afterReload = { chat: await chatView(), nodes: await nodes(), history: await page.textContent("#executions") };
  } else if (scenario === "reload") {
    await ask("Run the slow workflow");
    await page.locator("button.approve").waitFor();
    // Reloaded before answering: the page asks again, and the answer runs it.
    await page.reload();
    await page.locator("button.approve").waitFor();
    seen.askedAgain = await page.textContent("#run-status");
    await approve();
    await stepsReach({ wait: "running" });
    seen.beforeReload = await nodes();
    await page.reload();
    // After the reload: the run picks up where it was, then ends.
    await page.locator('#graph g.node[data-step="wait"]').waitFor();
    seen.afterReloadFirst = await nodes();
    await stepsReach({ wait: "succeeded", done: "succeeded" });
    seen.nodes = await nodes();
    seen.done = await panel("done");
    await page.getByText("The slow workflow is done.").waitFor();
    seen.chat = await chatView();
    seen.eventRequests = eventRequests;
  } else if (scenario === "failure") {
    await ask("Run the broken workflow");
    await approve();
    await stepsReach({ explode: "failed", after: "skipped" });
    seen.nodes = await nodes();
    seen.explode = await panel("explode");
    seen.status = await page.textContent("#run-status");
    await page.getByText("It failed:").waitFor();
    seen.chat = await chatView();
    seen.injected = await page.evaluate(() => ({ pwned: window.pwned ?? null, images: document.querySelectorAll("img").length, scripts: document.querySelectorAll("script").length }));
    await page.locator("section.run").screenshot({ path: `${shots}/console-failed-step.png` });
  } else if (scenario === "live") {
    await ask("Run the talking workflow");
    await approve();
    await stepsReach({ talk: "running" });
    await page.locator('#graph g.node[data-step="talk"]').click();
    // The first line shows while the step still runs (it sleeps before the second).
    await page.waitForFunction(() => document.querySelector("#step-output").textContent.includes("first line"));
    seen.whileRunning = {
      output: await page.textContent("#step-output"),
      state: await page.getAttribute('#graph g.node[data-step="talk"]', "data-state"),
      elements: await page.$$eval("#step-output *", (all) => all.length),
    };
    // Reloaded mid-step: the live output so far is read again.
    await page.reload();
    await page.locator('#graph g.node[data-step="talk"]').click();
    await page.waitForFunction(() => document.querySelector("#step-output").textContent.includes("first line"));
    seen.afterReload = {
      output: await page.textContent("#step-output"),
      state: await page.getAttribute('#graph g.node[data-step="talk"]', "data-state"),
    };
    await stepsReach({ talk: "succeeded" });
    await page.waitForFunction(() => document.querySelector("#step-output").textContent.includes("second line"));
    seen.finished = await panel("talk");
    seen.scrolledToEnd = await page.$eval("#step-output", (pre) => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4);
    seen.injected = await page.evaluate(() => ({ pwned: window.pwned ?? null, images: document.querySelectorAll("img").length }));
  } else if (scenario === "retry") {
    await ask("Run the flaky workflow");
    await approve();
    await stepsReach({ flaky: "retrying" });
    seen.retrying = await nodes();
    await stepsReach({ flaky: "failed" });
    seen.flaky = await panel("flaky");
  } else if (scenario === "cancel") {
    await ask("Run the long workflow");
    await approve();
    await stepsReach({ long: "running" });
    await page.getByRole("button", { name: "Cancel run" }).click();
    await page.waitForFunction(() => document.querySelector("#run-status").dataset.status === "cancelled");
    seen.status = await page.textContent("#run-status");
    seen.nodes = await nodes();
    seen.cancelHidden = await page.locator("#cancel-run").isHidden();
  } else if (scenario === "auth") {
    await page.locator("#key-form").waitFor({ state: "visible" });
    seen.askedForKey = await page.textContent("#key-error");
    await page.getByLabel("API key").fill("sk-wrong");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#key-error").textContent.includes("Incorrect"));
    seen.wrongKey = await page.textContent("#key-error");
    await page.getByLabel("API key").fill(key);
    await page.keyboard.press("Enter");
    await page.locator("#key-form").waitFor({ state: "hidden" });
    await page.getByLabel("Ask me before running a workflow").uncheck();
    await ask("Create a workflow that checks disk usage");
    await page.getByRole("button", { name: "Run workflow" }).and(page.locator("#run-workflow")).waitFor();
    seen.planned = await nodes();
    await page.locator("#run-workflow").click();
    await allSucceeded();
    seen.nodes = await nodes();
    seen.storage = await page.evaluate(() => ({
      session: Object.keys(sessionStorage),
      local: Object.entries(localStorage).map(([k, v]) => `${k}=${v}`),
    }));
    await page.locator("#executions button").first().waitFor();
    seen.history = await page.textContent("#executions");
    seen.workflows = await page.textContent("#workflows");
    // Any execution by id, in a fresh page of the same tab's storage.
    const id = (await page.textContent("#run-status")).match(/exec_\w+/)[0];
    await page.goto(`${base}/#/executions/${id}`);
    await allSucceeded();
    seen.byId = { status: await page.textContent("#run-status"), nodes: await nodes() };
    // Another tenant's execution, by its id: this key does not find it.
    await page.goto(`${base}/#/executions/${foreignExecution}`);
    await page.waitForFunction(() => document.querySelector("#run-status").textContent.includes("No execution"));
    seen.foreign = { status: await page.textContent("#run-status"), nodes: await nodes() };
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
} catch (error) {
  seen.failure = String(error.stack || error);
  try {
    seen.atFailure = { nodes: await nodes(), chat: await chatView(), status: await page.textContent("#run-status") };
  } catch {}
}
seen.problems = problems;
await browser.close();
console.log(JSON.stringify(seen));
