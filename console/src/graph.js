// The workflow as a graph: dagre lays the steps out from what each waits for, and each
// node is an SVG group showing the step's name, a symbol and word for its state (colour is
// never the only sign) and its duration. Nodes are buttons: click, Enter or Space opens the
// step's panel with its output, error and events, which follows the step as it runs: the
// output shows what the step writes while it runs (as text, scrolled to its end unless the
// reader scrolled up), then its whole output once it ends.

import { Graph, layout } from "@dagrejs/dagre";

const SVG = "http://www.w3.org/2000/svg";
const NODE_WIDTH = 176;
const NODE_HEIGHT = 58;
const SYMBOLS = {
  pending: "○",
  running: "▶",
  retrying: "↻",
  succeeded: "✓",
  failed: "✗",
  skipped: "↷",
  cancelled: "■",
};

function svg(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function elapsed(step, now) {
  if (step.duration) return step.duration;
  if (step.durationMs != null) return `${(step.durationMs / 1000).toFixed(1)}s`;
  if ((step.state === "running" || step.state === "retrying") && step.startedAt) {
    return `${(Math.max(0, now - step.startedAt) / 1000).toFixed(1)}s`;
  }
  return "";
}

export class GraphView {
  constructor({ graph, panel }) {
    this.container = graph;
    this.panel = panel;
    this.run = null;
    this.nodes = new Map();
    this.selected = null;
    // Running steps' durations tick between events.
    setInterval(() => this.tick(), 500);
  }

  show(run) {
    this.run = run;
    this.selected = null;
    this.panel.root.hidden = true;
    this.layout();
  }

  /// Lays the whole graph out again (a step the definition did not name may appear).
  layout() {
    const run = this.run;
    this.container.replaceChildren();
    this.nodes.clear();
    if (!run || run.steps.size === 0) return;
    const g = new Graph();
    g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 40, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const step of run.steps.values()) g.setNode(step.name, { width: NODE_WIDTH, height: NODE_HEIGHT });
    for (const step of run.steps.values()) {
      for (const dependency of step.depends) if (run.steps.has(dependency)) g.setEdge(dependency, step.name);
    }
    layout(g);
    const { width, height } = g.graph();
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height });
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
    defs.append(marker);
    root.append(defs);
    for (const edge of g.edges()) {
      const points = g.edge(edge).points.map((p) => `${p.x},${p.y}`).join(" ");
      root.append(svg("polyline", { points, class: "edge", "marker-end": "url(#arrow)" }));
    }
    for (const step of run.steps.values()) {
      const { x, y } = g.node(step.name);
      const node = svg("g", {
        class: "node",
        transform: `translate(${x - NODE_WIDTH / 2},${y - NODE_HEIGHT / 2})`,
        tabindex: 0,
        role: "button",
        "data-step": step.name,
      });
      node.append(svg("rect", { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 8 }));
      const title = svg("text", { x: 12, y: 23, class: "node-name" });
      title.textContent = step.name.length > 20 ? `${step.name.slice(0, 19)}…` : step.name;
      const state = svg("text", { x: 12, y: 45, class: "node-state" });
      node.append(title, state);
      const open = () => this.select(step.name);
      node.addEventListener("click", open);
      node.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          open();
        }
      });
      root.append(node);
      this.nodes.set(step.name, { node, state });
    }
    this.container.append(root);
    this.refresh();
  }

  /// Shows the run's current state on every node and in the open panel.
  refresh(step = null) {
    const run = this.run;
    if (!run) return;
    if ([...run.steps.keys()].some((name) => !this.nodes.has(name))) return this.layout();
    const now = Date.now();
    for (const s of step ? [step] : run.steps.values()) {
      const view = this.nodes.get(s.name);
      const time = elapsed(s, now);
      view.node.setAttribute("data-state", s.state);
      view.node.setAttribute("aria-label", `Step ${s.name}: ${s.state}${time ? `, ${time}` : ""}`);
      view.state.textContent = `${SYMBOLS[s.state] || "?"} ${s.state}${time ? ` · ${time}` : ""}`;
    }
    if (this.selected && (!step || step.name === this.selected)) this.showPanel();
  }

  tick() {
    if (!this.run || this.run.finished) return;
    for (const step of this.run.steps.values()) {
      if (step.state === "running" || step.state === "retrying") this.refresh(step);
    }
  }

  select(name) {
    this.selected = name;
    for (const [stepName, view] of this.nodes) view.node.classList.toggle("selected", stepName === name);
    this.showPanel();
  }

  showPanel() {
    const step = this.run?.steps.get(this.selected);
    const panel = this.panel;
    if (!step) {
      panel.root.hidden = true;
      return;
    }
    panel.root.hidden = false;
    panel.title.textContent = `Step ${step.name}`;
    const time = elapsed(step, Date.now());
    panel.state.textContent = `${SYMBOLS[step.state] || "?"} ${step.state}${time ? ` in ${time}` : ""}${step.depends.length ? ` · after ${step.depends.join(", ")}` : ""}`;
    const output = step.output || step.live;
    const atEnd = panel.output.scrollTop + panel.output.clientHeight >= panel.output.scrollHeight - 4;
    panel.output.textContent = output || (step.state === "running" ? "(running…)" : "(none)");
    if (atEnd) panel.output.scrollTop = panel.output.scrollHeight;
    panel.error.textContent = step.error || "(none)";
    panel.events.replaceChildren(
      ...step.events.map((event) => {
        const item = document.createElement("li");
        const at = event.timestamp ? new Date(event.timestamp).toLocaleTimeString() : "";
        const detail = event.message || event.error || event.reason || event.duration || "";
        item.textContent = `${at} ${event.type}${detail ? `: ${detail}` : ""}`;
        return item;
      }),
    );
  }
}
