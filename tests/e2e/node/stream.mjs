// Streams one chat completion with the official openai npm package and prints what it saw as JSON.
// Usage: node stream.mjs BASE_URL MODEL PROMPT
import OpenAI from "openai";

const [baseURL, model, prompt] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-client", maxRetries: 0, timeout: 20000 });

const seen = { content: "", reasoning: "", toolCalls: {}, finishReason: null, chunks: 0, candor: null, ids: new Set() };
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: prompt }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  seen.chunks += 1;
  seen.ids.add(chunk.id);
  if (chunk.candor) seen.candor = chunk.candor;
  for (const choice of chunk.choices) {
    const delta = choice.delta ?? {};
    if (delta.content) seen.content += delta.content;
    if (delta.reasoning_content) seen.reasoning += delta.reasoning_content;
    for (const call of delta.tool_calls ?? []) {
      const slot = (seen.toolCalls[call.index] ??= { id: "", name: "", arguments: "" });
      if (call.id) slot.id = call.id;
      if (call.function?.name) slot.name += call.function.name;
      if (call.function?.arguments) slot.arguments += call.function.arguments;
    }
    if (choice.finish_reason) seen.finishReason = choice.finish_reason;
  }
}
seen.ids = [...seen.ids];
console.log(JSON.stringify(seen));
