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
    language: str  # "curl" | "python" | "node"
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
    return [
        Example(
            "curl",
            "curl",
            f"curl {base}/chat/completions \\\n"
            f'  -H "Content-Type: application/json" \\\n'
            f'  -H "Authorization: Bearer ${KEY_ENV}" \\\n'
            f"  -d '{json.dumps(body)}'",
        ),
        Example(
            "python",
            "Python (openai >= 1.0)",
            f"""import os
from openai import OpenAI

client = OpenAI(base_url="{base}", api_key=os.environ["{KEY_ENV}"])
completion = client.chat.completions.create(
    model="{name}",
    messages={py_messages},
    temperature=0.7,
)
print(completion.choices[0].message.content)""",
        ),
        Example(
            "node",
            "Node.js (openai npm)",
            f"""import OpenAI from "openai";

const client = new OpenAI({{ baseURL: "{base}", apiKey: process.env.{KEY_ENV} }});
const completion = await client.chat.completions.create({{
  model: "{name}",
  messages: {js_messages},
  temperature: 0.7,
}});
console.log(completion.choices[0].message.content);""",
        ),
    ]


def render_text(catalog: Catalog, service: Service) -> str:
    parts = [f"# {service.name} ({service.access_name})", f"# export {KEY_ENV}=<your key>", ""]
    for ex in examples(catalog, service):
        parts += [f"## {ex.title}", ex.code, ""]
    return "\n".join(parts)
