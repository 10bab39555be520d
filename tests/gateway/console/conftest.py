"""A catalog for the console tests: two owners, a hostile display name, one service per task."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from devtools.standin.testing import StandInThread

from ..harness import Gateway

OWNER, OTHER = "u-8105f7322477", "u-3f9a2c7e51d0"
# Display names refuse '<' '>' and control characters (modelsvc.catalog.model); what is left must still stay text:
# quotes that would end an attribute and entities a careless innerHTML would decode.
HOSTILE = "\"' onmouseover=alert(1) x=&lt;img src=x onerror=alert(2)&gt;"
CHAT, EVIL, PAINTER, VISION, FOREIGN = (
    f"{OWNER}/support-bot",
    f"{OWNER}/evil",
    f"{OWNER}/painter",
    f"{OWNER}/receipts",
    f"{OTHER}/secret-project",
)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


CATALOG = f"""\
version: 1
gateway:
  public_url: https://models.test.example/v1
pools:
  h100: {{instance_type: p5.48xlarge, gpus_per_node: 8, max_nodes: 2}}
models:
  llama-3.1-8b-instruct: {{task: chat, source: s3://m/llama, gpus: 1, max_output_tokens: 512}}
  qwen2-vl-7b-instruct: {{task: vision-chat, source: s3://m/qwen, gpus: 1}}
  stable-diffusion-xl: {{task: image-generation, source: s3://m/sdxl, gpus: 1}}
keys:
  - {{id: k-owner, owner: {OWNER}, sha256: {_digest("sk-test-owner-not-a-real-key-1")}}}
  - {{id: k-other, owner: {OTHER}, sha256: {_digest("sk-test-other-not-a-real-key-2")}}}
services:
  - name: Support Bot
    access_name: {CHAT}
    id: ms-a2547eda8901
    model: llama-3.1-8b-instruct
    instances: 2
    pool: h100
    autoscale: {{max_instances: 4, target: 0.5, scale_down_delay: 10m}}
  - name: '{HOSTILE.replace("'", "''")}'
    access_name: {EVIL}
    id: ms-0000000000e1
    model: llama-3.1-8b-instruct
    instances: 1
    pool: h100
    description: '</p><script>alert(3)</script>'
  - name: Painter
    access_name: {PAINTER}
    id: ms-ab2970f31223
    model: stable-diffusion-xl
    instances: 1
    pool: h100
  - name: Receipt Reader
    access_name: {VISION}
    id: ms-7ed65f98d9b7
    model: qwen2-vl-7b-instruct
    instances: 1
    pool: h100
  - name: Secret Project
    access_name: {FOREIGN}
    id: ms-f058dd7a36b5
    model: llama-3.1-8b-instruct
    instances: 1
    pool: h100
"""


@pytest.fixture(scope="module")
def console_engines(e2e):
    threads = {
        # the Support Bot's model is a Llama 3.1: its stand-ins serve Llama 3.1's chat template (tools, end tokens)
        "chat": StandInThread("chat", token_delay=0.01, family="llama3").start(),
        "chat2": StandInThread("chat", token_delay=0.01, family="llama3").start(),
        "vision": StandInThread("vision").start(),
        "image": StandInThread("image").start(),
    }
    yield threads
    for t in threads.values():
        t.stop(grace=0.2)


def seed_history(path, now: float) -> None:
    """Thirty days of earlier traffic of the Support Bot in the gateway's usage log, so the usage page has history
    to draw (deterministic; the same schema the gateway writes)."""
    lines = []
    for h in range(1, 30 * 24):
        n = (3 + (h * 7) % 11) if h < 24 else (h * 13) % 5
        for i in range(n):
            lines.append(
                json.dumps(
                    {
                        "request_id": f"seed-{h}-{i}",
                        "service_id": "ms-a2547eda8901",
                        "access_name": CHAT,
                        "key_id": "k-owner",
                        "endpoint": "chat.completions",
                        "stream": bool(i % 2),
                        "status": "ok",
                        "prompt_tokens": 40 + (h * 31 + i) % 90,
                        "completion_tokens": 60 + (h * 17 + i) % 200,
                        "latency_ms": 300.0,
                        "overhead_ms": 0.4,
                        "instance": "",
                        "error": "",
                        "ts": now - h * 3600 - i,
                        "images": 0,
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def console_gw(e2e, console_engines, tmp_path_factory):
    e = {k: t.url for k, t in console_engines.items()}
    g = Gateway(
        tmp_path_factory.mktemp("console-gw"),
        {
            CHAT: [e["chat"], e["chat2"]],
            EVIL: [e["chat"]],
            PAINTER: [e["image"]],
            VISION: [e["vision"]],
            FOREIGN: [e["chat"]],
        },
        catalog_text=CATALOG,
    )
    seed_history(g.usage_log, time.time())
    g.start()
    yield g
    g.stop()
