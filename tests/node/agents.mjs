// Usage: node agents.mjs BASE_URL API_KEY MODEL → one JSON object: a forced tool call, its streamed form, the
// answer after the tool result, and the Responses API (a follow-up with previous_response_id, a streamed response).
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};
const weather = {
  type: "object",
  properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
const tools = [{ type: "function", function: { name: "get_weather", parameters: weather, strict: true } }];
const messages = [{ role: "user", content: "What is the weather in Paris? Use get_weather." }];
const forced = { type: "function", function: { name: "get_weather" } };

const first = await client.chat.completions.create({ model, messages, tools, tool_choice: forced });
out.toolCall = first.choices[0].message.tool_calls[0];

const stream = await client.chat.completions.create({ model, messages, tools, tool_choice: forced, stream: true });
out.streamedArguments = "";
for await (const chunk of stream) {
  for (const t of chunk.choices[0]?.delta?.tool_calls ?? []) {
    if (t.function?.name) out.streamedName = t.function.name;
    out.streamedArguments += t.function?.arguments ?? "";
  }
}

const second = await client.chat.completions.create({
  model,
  tools,
  messages: [
    ...messages,
    first.choices[0].message,
    { role: "tool", tool_call_id: out.toolCall.id, content: '{"temperature": 21}' },
  ],
});
out.answer = second.choices[0].message.content;

const r1 = await client.responses.create({ model, input: "My name is Ada." });
const r2 = await client.responses.create({ model, input: "What is my name?", previous_response_id: r1.id });
out.responseText = r1.output_text;
out.firstInput = r1.usage.input_tokens;
out.followUpInput = r2.usage.input_tokens;
const events = await client.responses.create({ model, input: "Hello", stream: true });
for await (const e of events) out.lastEvent = e.type;
console.log(JSON.stringify(out));
