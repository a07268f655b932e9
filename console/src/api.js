// The API the console talks to: the same server that served it. The API key, when the server
// wants one, lives in this browser tab's sessionStorage only and goes out as a Bearer token.

const KEY = "kubiya.apiKey";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/// Called with every 401, so the page can ask for a key.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export async function call(method, path, { body, headers = {}, signal } = {}) {
  const all = { ...headers };
  const key = apiKey();
  if (key) all.authorization = `Bearer ${key}`;
  if (body !== undefined) all["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: all,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const error = (await response.json()).error;
      if (error && error.message) message = error.message;
    } catch {
      // Not an OpenAI-shaped error: the status says enough.
    }
    if (response.status === 401) onUnauthorized(message);
    throw new ApiError(response.status, message);
  }
  return response;
}

/// A random id. `crypto.randomUUID` exists only in secure contexts, and the console is
/// also opened over plain HTTP on a LAN address; `getRandomValues` works everywhere.
export function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export async function json(method, path, options) {
  const response = await call(method, path, options);
  return response.json();
}

/// Reads an SSE body, calling `onEvent({id, data})` for each event with data; comments
/// (keep-alives) are skipped. Resolves when the stream ends.
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent({ id, data: data.join("\n") });
    }
  }
}
