"""API call examples for one service (curl, Python, Node), filled with the gateway URL and the access name.

The CLI prints them and the console shows them; both call `examples()` so they never drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import Catalog, Service, Task

KEY_ENV = "MODELSVC_API_KEY"


@dataclass(frozen=True)
class Example:
    language: str  # "curl" | "python" | "node" | "python-agents"
    title: str
    code: str


def _chat_messages(task: Task) -> list[dict[str, Any]]:
    if task is Task.vision_chat:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/receipt.jpg"}},
                ],
            }
        ]
    return [{"role": "user", "content": "Hello! What can you do?"}]


def examples(catalog: Catalog, service: Service) -> list[Example]:
    base = catalog.gateway.public_url
    model = catalog.model_of(service)
    name = service.access_name
    if model.task is Task.image_generation:
        body: dict[str, Any] = {
            "model": name,
            "prompt": "a red bicycle on a white background",
            "response_format": "b64_json",
        }
        return [
            Example(
                "curl",
                "curl",
                f"curl {base}/images/generations \\\n"
                f'  -H "Content-Type: application/json" \\\n'
                f'  -H "Authorization: Bearer ${KEY_ENV}" \\\n'
                f"  -d '{json.dumps(body)}'",
            ),
            Example(
                "python",
                "Python (openai >= 1.0)",
                f"""import base64, os
from openai import OpenAI

client = OpenAI(base_url="{base}", api_key=os.environ["{KEY_ENV}"])
image = client.images.generate(model="{name}", prompt="a red bicycle on a white background",
                               response_format="b64_json")
open("image.png", "wb").write(base64.b64decode(image.data[0].b64_json))""",
            ),
            Example(
                "node",
                "Node.js (openai npm)",
                f"""import fs from "node:fs";
import OpenAI from "openai";

const client = new OpenAI({{ baseURL: "{base}", apiKey: process.env.{KEY_ENV} }});
const image = await client.images.generate({{
  model: "{name}",
  prompt: "a red bicycle on a white background",
  response_format: "b64_json",
}});
fs.writeFileSync("image.png", Buffer.from(image.data[0].b64_json, "base64"));""",
            ),
        ]
    messages = _chat_messages(model.task)
    body = {"model": name, "messages": messages, "temperature": 0.7}
    py_messages = json.dumps(messages)
    js_messages = json.dumps(messages, indent=2).replace("\n", "\n  ")
    agents = _agents(catalog, service)
    curl = (
        f"curl {base}/chat/completions \\\n"
        f'  -H "Content-Type: application/json" \\\n'
        f'  -H "Authorization: Bearer ${KEY_ENV}" \\\n'
        f"  -d '{json.dumps(body)}'"
    )
    python = f"""import os
from openai import OpenAI

client = OpenAI(base_url="{base}", api_key=os.environ["{KEY_ENV}"])
completion = client.chat.completions.create(
    model="{name}",
    messages={py_messages},
    temperature=0.7,
)
print(completion.choices[0].message.content)"""
    node = f"""import OpenAI from "openai";

const client = new OpenAI({{ baseURL: "{base}", apiKey: process.env.{KEY_ENV} }});
const completion = await client.chat.completions.create({{
  model: "{name}",
  messages: {js_messages},
  temperature: 0.7,
}});
console.log(completion.choices[0].message.content);"""
    out = [
        Example("curl", "curl", curl + (agents.curl if agents else "")),
        Example("python", "Python (openai >= 1.0)", python + (agents.python if agents else "")),
        Example("node", "Node.js (openai npm)", node + (agents.node if agents else "")),
    ]
    if agents:
        out.append(Example("python-agents", "Python (OpenAI Agents SDK)", agents.agents_sdk))
    return out


# A function tool and a structured output, for the examples of services whose model takes them.
_WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": _WEATHER},
}
_ASK = "What is the weather in Paris? Use get_weather."


@dataclass(frozen=True)
class _Agents:
    curl: str
    python: str
    node: str
    agents_sdk: str


def _agents(catalog: Catalog, service: Service) -> _Agents | None:
    """The tool-call and structured-output examples (None: the model takes no tools)."""
    from .families import tool_parser
    from .model import Backend, ToolParser

    model = catalog.model_of(service)
    if model.task is not Task.chat:
        return None
    if model.backend is Backend.triton and tool_parser(service.model, model) is ToolParser.none:
        return None
    base, name = catalog.gateway.public_url, service.access_name
    tool_body = {
        "model": name,
        "messages": [{"role": "user", "content": _ASK}],
        "tools": [_TOOL],
        "tool_choice": "auto",
    }
    schema_body = {
        "model": name,
        "messages": [{"role": "user", "content": "Describe Paris in one line."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "summary": {"type": "string"}},
                    "required": ["name", "summary"],
                    "additionalProperties": False,
                },
            },
        },
    }
    head = (
        f"curl {base}/chat/completions \\\n"
        f'  -H "Content-Type: application/json" \\\n'
        f'  -H "Authorization: Bearer ${KEY_ENV}" \\\n'
    )
    curl = (
        "\n\n# A tool call: the answer's message.tool_calls[0].function.arguments is JSON for get_weather\n"
        + head
        + f"  -d '{json.dumps(tool_body)}'"
        + "\n\n# A structured output: the answer's content is JSON matching the schema\n"
        + head
        + f"  -d '{json.dumps(schema_body)}'"
    )
    python = f"""

# A tool call, its result sent back, and the answer
import json
tools = {[_TOOL]!r}
messages = [{{"role": "user", "content": "{_ASK}"}}]
first = client.chat.completions.create(model="{name}", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
print(call.function.name, json.loads(call.function.arguments))
messages += [first.choices[0].message, {{"role": "tool", "tool_call_id": call.id, "content": '{{"temperature": 21}}'}}]
print(client.chat.completions.create(model="{name}", messages=messages, tools=tools).choices[0].message.content)

# A structured output, parsed into a Pydantic model
from pydantic import BaseModel

class City(BaseModel):
    name: str
    summary: str

parsed = client.chat.completions.parse(
    model="{name}", messages=[{{"role": "user", "content": "Describe Paris in one line."}}], response_format=City
)
print(parsed.choices[0].message.parsed)"""
    node = f"""

// A tool call, its result sent back, and the answer
const tools = {json.dumps([_TOOL])};
const messages = [{{ role: "user", content: "{_ASK}" }}];
const first = await client.chat.completions.create({{ model: "{name}", messages, tools }});
const call = first.choices[0].message.tool_calls[0];
console.log(call.function.name, JSON.parse(call.function.arguments));
messages.push(first.choices[0].message, {{ role: "tool", tool_call_id: call.id, content: '{{"temperature": 21}}' }});
const answer = await client.chat.completions.create({{ model: "{name}", messages, tools }});
console.log(answer.choices[0].message.content);

// A structured output: JSON matching the schema
const city = await client.chat.completions.create({{
  model: "{name}",
  messages: [{{ role: "user", content: "Describe Paris in one line." }}],
  response_format: {json.dumps(schema_body["response_format"])},
}});
console.log(JSON.parse(city.choices[0].message.content));"""
    owner = name.split("/")[0]
    agents_sdk = f"""# The OpenAI Agents SDK routes a model *string* by its prefix ("litellm/..."): "{owner}/" is the
# owner in the access name, not a provider, so pass a model object (or set_default_openai_client).
import asyncio, os
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)  # traces would go to OpenAI's platform
client = AsyncOpenAI(base_url="{base}", api_key=os.environ["{KEY_ENV}"])

@function_tool
def get_weather(city: str) -> str:
    return f"21 degrees and sunny in {{city}}"

agent = Agent(
    name="assistant",
    instructions="Answer briefly.",
    tools=[get_weather],
    model=OpenAIChatCompletionsModel(model="{name}", openai_client=client),
)
print(asyncio.run(Runner.run(agent, "{_ASK}")).final_output)"""
    return _Agents(curl, python, node, agents_sdk)


def render_text(catalog: Catalog, service: Service) -> str:
    parts = [f"# {service.name} ({service.access_name})", f"# export {KEY_ENV}=<your key>", ""]
    for ex in examples(catalog, service):
        parts += [f"## {ex.title}", ex.code, ""]
    return "\n".join(parts)
