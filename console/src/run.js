// One workflow as the console shows it: its steps with what each waits for, and, once it
// runs, each step's state, output, error, duration and events, kept up to date from the
// execution's own event stream (GET /v1/executions/{id}/events). What a running step
// writes arrives as `step_output` chunks, kept as its live output (the last LIVE_LIMIT
// characters) until its whole output comes with its end. Reloading the page reads the
// execution's state and follows its events after the last one that state includes; the
// live output of steps still running is read again from the start of the log.

import { call, json, readEvents } from "./api.js";

/// What a step's state is called on the page; never shown by colour alone.
export const STATES = ["pending", "running", "retrying", "succeeded", "failed", "skipped", "cancelled"];

const FROM_SNAPSHOT = { success: "succeeded" };
/// Characters of a running step's live output kept; older ones are dropped.
export const LIVE_LIMIT = 64 * 1024;
const LIVE_CUT = "[… earlier output not shown]\n";
const FINISHED = new Set(["success", "failed", "cancelled", "lost"]);

/// The steps of a workflow definition with what each waits for: its `depends`, else (in a
/// chain, the default) the step declared before it.
export function plannedSteps(definition) {
  const steps = Array.isArray(definition?.steps) ? definition.steps : [];
  const graph = definition?.type === "graph";
  return steps
    .filter((step) => step && typeof step.name === "string")
    .map((step, index, all) => {
      let depends = step.depends;
      if (typeof depends === "string") depends = [depends];
      if (!Array.isArray(depends)) depends = !graph && index > 0 ? [all[index - 1].name] : [];
      return { name: step.name, depends: depends.filter((name) => typeof name === "string") };
    });
}

function newStep(name, depends = []) {
  return { name, depends, state: "pending", output: "", live: "", error: "", events: [], startedAt: null, durationMs: null, duration: "" };
}

/// `earlier` then `later`, keeping the last LIVE_LIMIT characters.
function appendLive(earlier, later) {
  const text = earlier + later;
  if (text.length <= LIVE_LIMIT) return text;
  return LIVE_CUT + text.slice(text.length - LIVE_LIMIT + LIVE_CUT.length);
}

/// Whether a step is still running (its live output is all there is of it).
function isRunning(step) {
  return step.state === "running" || step.state === "retrying";
}

export class Run {
  constructor({ name, definition = null, steps = [], executionId = null }) {
    this.name = name;
    this.definition = definition;
    this.executionId = executionId;
    this.status = executionId ? "queued" : "planned";
    this.error = "";
    this.lastSeq = 0;
    this.steps = new Map(steps.map((step) => [step.name, newStep(step.name, step.depends)]));
    this.listeners = new Set();
    this.abort = null;
  }

  static fromDefinition(definition) {
    return new Run({ name: definition?.name || "workflow", definition, steps: plannedSteps(definition) });
  }

  get finished() {
    return FINISHED.has(this.status);
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  changed(step) {
    for (const listener of this.listeners) listener(this, step);
  }

  step(name) {
    if (!this.steps.has(name)) this.steps.set(name, newStep(name));
    return this.steps.get(name);
  }

  /// The state `GET /v1/executions/{id}` answered: everything up to its `last_seq`.
  applySnapshot(snapshot) {
    this.name = snapshot.workflow || this.name;
    this.status = snapshot.status;
    this.error = snapshot.error || "";
    this.lastSeq = snapshot.last_seq || 0;
    for (const s of snapshot.steps || []) {
      const step = this.step(s.name);
      if (Array.isArray(s.depends) && s.depends.length) step.depends = s.depends;
      step.state = FROM_SNAPSHOT[s.status] || s.status;
      step.output = s.output || "";
      step.error = s.error || "";
      step.startedAt = s.started_at || null;
      step.durationMs = s.duration_ms ?? null;
      step.duration = s.duration || "";
    }
    this.changed(null);
  }

  /// One execution event, in order; one already applied (a replay) changes nothing.
  applyEvent(event) {
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return;
      this.lastSeq = event.seq;
    }
    if (event.type === "workflow_complete") {
      this.status = event.status;
      this.error = event.error || "";
      this.changed(null);
      return;
    }
    if (typeof event.step !== "string") return;
    this.status = "running";
    const step = this.step(event.step);
    if (event.type === "step_output") {
      if (typeof event.text === "string") step.live = appendLive(step.live, event.text);
      this.changed(step);
      return;
    }
    step.events.push(event);
    switch (event.type) {
      case "step_running":
        step.state = "running";
        step.startedAt = event.timestamp;
        step.error = "";
        // Each attempt (or repeated run) shows its own output.
        step.live = "";
        break;
      case "step_complete":
        step.state = "succeeded";
        step.output = event.output || "";
        step.durationMs = event.duration_ms ?? null;
        step.duration = event.duration || "";
        break;
      case "step_failed":
        step.state = event.will_retry ? "retrying" : "failed";
        step.error = event.error || "";
        if (step.startedAt) step.durationMs = event.timestamp - step.startedAt;
        break;
      case "step_skipped":
        step.state = "skipped";
        step.error = event.reason || "";
        break;
      default:
        break;
    }
    this.changed(step);
  }

  /// Reads the execution's state, then follows its events after it until it ends,
  /// reconnecting (after the last event seen) when the connection drops.
  async follow() {
    if (!this.executionId || this.abort) return;
    this.abort = new AbortController();
    const { signal } = this.abort;
    const base = `/v1/executions/${encodeURIComponent(this.executionId)}`;
    try {
      this.applySnapshot(await json("GET", base, { signal }));
      this.loadEarlier(base, this.lastSeq, signal);
      let delay = 500;
      while (!this.finished && !signal.aborted) {
        try {
          const response = await call("GET", `${base}/events`, {
            headers: { "last-event-id": String(this.lastSeq) },
            signal,
          });
          await readEvents(response, ({ data }) => this.applyEvent(JSON.parse(data)));
          delay = 500;
        } catch (error) {
          if (signal.aborted || (error.status && error.status < 500)) throw error;
          await new Promise((resolve) => setTimeout(resolve, delay));
          delay = Math.min(delay * 2, 8000);
        }
      }
    } catch (error) {
      if (!signal.aborted) {
        this.error = error.message;
        this.changed(null);
      }
    }
  }

  /// The events up to `upTo` that the state already holds, for the steps' event lists and
  /// the live output of steps still running: read from the start of the log and dropped
  /// once past them.
  async loadEarlier(base, upTo, signal) {
    if (upTo === 0) return;
    const earlier = new Map();
    const done = new AbortController();
    signal.addEventListener("abort", () => done.abort());
    const of = (name) => {
      if (!earlier.has(name)) earlier.set(name, { events: [], live: "" });
      return earlier.get(name);
    };
    try {
      const response = await call("GET", `${base}/events`, { signal: done.signal });
      await readEvents(response, ({ data }) => {
        const event = JSON.parse(data);
        if (event.seq <= upTo && typeof event.step === "string") {
          const step = of(event.step);
          if (event.type === "step_output") step.live = appendLive(step.live, event.text || "");
          else if (event.type === "step_running") step.live = "";
          if (event.type !== "step_output") step.events.push(event);
        }
        if (event.seq >= upTo) done.abort();
      });
    } catch {
      // Stopped on purpose once past `upTo`, or failed: the lists show what arrived.
    }
    if (signal.aborted) return;
    for (const [name, { events, live }] of earlier) {
      const step = this.step(name);
      // A step that started again since (a retry) shows the new attempt's output only.
      const restarted = step.events.some((event) => event.type === "step_running");
      step.events = [...events, ...step.events];
      if (isRunning(step) && live && !restarted) step.live = appendLive(live, step.live);
      this.changed(step);
    }
  }

  stop() {
    if (this.abort) this.abort.abort();
  }

  async cancel() {
    if (!this.executionId) return;
    await json("DELETE", `/v1/executions/${encodeURIComponent(this.executionId)}`);
  }
}
