// The AI SDK's OpenAI provider as its documents show it: openai('kubiya-workflow-agent') with
// a baseURL posts to {baseURL}/responses. Two turns with generateText and two with
// streamText; the second turn of each sends the first answer back as an item_reference (the
// provider assumes `store: true`). Records every request body and every answer. Usage: node openai_provider.mjs BASE_URL
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [base] = process.argv.slice(2);
const bodies = [];
const answers = [];
const openai = createOpenAI({
  baseURL: `${base}/v1`,
  apiKey: "not-needed",
  fetch: async (url, init) => {
    const body = JSON.parse(init.body);
    bodies.push({ url: String(url), body });
    const response = await fetch(url, init);
    answers.push(response.clone().text().then((text) => ({ stream: body.stream === true, text })));
    return response;
  },
});
const model = openai("kubiya-workflow-agent");

async function twoTurns(call) {
  const messages = [{ role: "user", content: "Create a workflow that checks disk usage" }];
  const first = await call(messages);
  messages.push(...first.response.messages, { role: "user", content: "Now back up my project directory" });
  const second = await call(messages);
  return { first: first.text, second: second.text, finishReason: second.finishReason, usage: second.usage };
}

const generated = await twoTurns((messages) => generateText({ model, messages }));
const streamed = await twoTurns(async (messages) => {
  const result = streamText({ model, messages, onError: ({ error }) => { throw error; } });
  return { text: await result.text, response: await result.response, finishReason: await result.finishReason, usage: await result.usage };
});
console.log(JSON.stringify({ generated, streamed, requests: bodies, answers: await Promise.all(answers) }));
