// Usage: node chat.mjs BASE_URL API_KEY MODEL  → prints one JSON object with what the SDK returned.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const completion = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Hello from Node!" }],
  temperature: 0.7,
});
out.completion = completion;

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Stream to Node" }],
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: 6,
});
out.streamText = "";
for await (const chunk of stream) {
  if (chunk.choices.length) out.streamText += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) out.streamUsage = chunk.usage;
}

try {
  await new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 }).chat.completions.create({
    model,
    messages: [{ role: "user", content: "x" }],
  });
  out.badKey = "no error";
} catch (err) {
  out.badKey = {
    isAPIError: err instanceof OpenAI.APIError,
    isAuthError: err instanceof OpenAI.AuthenticationError,
    status: err.status,
    code: err.code,
    type: err.type,
  };
}
console.log(JSON.stringify(out));
