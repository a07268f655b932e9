// Reads the server's Vercel data stream with the AI SDK 4's own parser (processDataStream)
// and prints what it saw as one JSON object. Usage: node vercel_client.mjs URL REQUEST_JSON
import { processDataStream } from "ai";

const [url, request] = process.argv.slice(2);
const response = await fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json", "x-streaming-format": "vercel" },
  body: request,
});
const seen = { status: response.status, header: response.headers.get("x-vercel-ai-data-stream"), text: "", toolCalls: [], toolResults: [], data: [], steps: [], finish: null, errors: [] };
await processDataStream({
  stream: response.body,
  onTextPart: (text) => { seen.text += text; },
  onToolCallPart: (call) => { seen.toolCalls.push(call); },
  onToolResultPart: (result) => { seen.toolResults.push(result); },
  onDataPart: (values) => { seen.data.push(...values); },
  onFinishStepPart: (step) => { seen.steps.push(step); },
  onFinishMessagePart: (finish) => { seen.finish = finish; },
  onErrorPart: (error) => { seen.errors.push(error); },
});
console.log(JSON.stringify(seen));
