"""The seed's three clients against a real gateway process: curl, the OpenAI Python SDK, the OpenAI Node SDK."""

import json
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from devtools.standin.engine import count_input_tokens

from .harness import DEMO_KEY

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_curl_request_of_the_seed(gw):
    body = json.dumps(
        {"model": "u-8105f7322477/test", "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0.7}
    )
    r = subprocess.run(
        [
            shutil.which("curl"),
            "-sS",
            "-i",
            f"{gw.url}/v1/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-H",
            f"Authorization: Bearer {DEMO_KEY}",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    head, _, payload = r.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    assert "x-gateway-overhead-ms:" in head.lower()
    data = json.loads(payload)
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "u-8105f7322477/test"
    assert isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] and choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    # Usage is what the engine counted: the stand-in counts prompt words of the rendered chat template.
    prompt = "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    assert usage["prompt_tokens"] == count_input_tokens(prompt)
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_python_sdk_non_streaming_and_streaming(gw):
    client = OpenAI(base_url=gw.url + "/v1", api_key=DEMO_KEY, max_retries=0)
    completion = client.chat.completions.create(
        model="u-8105f7322477/test", messages=[{"role": "user", "content": "Hello!"}], temperature=0.7
    )
    assert completion.model == "u-8105f7322477/test"
    text = completion.choices[0].message.content
    assert text and completion.usage.completion_tokens == len(text.split())

    stream = client.chat.completions.create(
        model="u-8105f7322477/test",
        messages=[{"role": "user", "content": "Hello!"}],
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # deterministic engine: same prompt, same answer
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [completion.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


def test_python_sdk_max_tokens_gives_length_and_stop_is_stripped(gw):
    client = OpenAI(base_url=gw.url + "/v1", api_key=DEMO_KEY, max_retries=0)
    full = client.chat.completions.create(model="u-8105f7322477/test", messages=[{"role": "user", "content": "Count"}])
    words = full.choices[0].message.content.split(" ")
    short = client.chat.completions.create(
        model="u-8105f7322477/test", max_tokens=3, messages=[{"role": "user", "content": "Count"}]
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    assert short.choices[0].message.content == " ".join(words[:3])
    stop = " " + words[4]
    stopped = client.chat.completions.create(
        model="u-8105f7322477/test", stop=[stop], messages=[{"role": "user", "content": "Count"}]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == " ".join(words[:4])


def test_python_sdk_completions_models_and_errors(gw):
    client = OpenAI(base_url=gw.url + "/v1", api_key=DEMO_KEY, max_retries=0)
    c = client.completions.create(model="u-8105f7322477/test", prompt="Once upon a time", max_tokens=4)
    assert c.object == "text_completion" and c.usage.completion_tokens == 4 and c.choices[0].finish_reason == "length"
    ids = [m.id for m in client.models.list()]
    assert ids == ["u-8105f7322477/test", "u-8105f7322477/support-bot"]
    assert client.models.retrieve("u-8105f7322477/test").owned_by == "u-8105f7322477"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("u-3f9a2c7e51d0/receipts")
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=gw.url + "/v1", api_key="sk-nope", max_retries=0).models.list()


def test_python_sdk_vision_and_images(gw):
    from openai import OpenAI as C

    client = C(base_url=gw.url + "/v1", api_key="sk-ms-local-demo-3f9a2c7e51d0", max_retries=0)
    data_url = "data:image/png;base64,iVBORw0KGgo="
    r = client.chat.completions.create(
        model="u-3f9a2c7e51d0/receipts",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content.startswith("image-")  # the stand-in saw the image tensor
    img = client.images.generate(
        model="u-3f9a2c7e51d0/product-images", prompt="a red bicycle", n=2, response_format="b64_json", size="64x64"
    )
    import base64

    pngs = [base64.b64decode(d.b64_json) for d in img.data]
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="u-3f9a2c7e51d0/product-images", prompt="x", size="1024x1024")
    assert "64x64" in e.value.message


def test_node_sdk(gw):
    node = shutil.which("node")
    assert node, "node is required (installed by ./dev test)"
    assert (NODE_DIR / "node_modules" / "openai").exists(), "run `./dev setup` (npm ci in tests/node)"
    r = subprocess.run(
        [node, str(NODE_DIR / "chat.mjs"), gw.url + "/v1", DEMO_KEY, "u-8105f7322477/test"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["completion"]["model"] == "u-8105f7322477/test"
    assert out["completion"]["choices"][0]["message"]["content"]
    assert out["streamText"] and out["streamUsage"]["completion_tokens"] == 6
    assert out["badKey"] == {
        "isAPIError": True,
        "isAuthError": True,
        "status": 401,
        "code": "invalid_api_key",
        "type": "invalid_request_error",
    }


def test_openai_backend_forwards_to_the_upstream(gw):
    from .harness import SEARCH_KEY

    client = OpenAI(base_url=gw.url + "/v1", api_key=SEARCH_KEY, max_retries=0)
    r = client.chat.completions.create(
        model="team-search/query-rewriter",
        max_tokens=5,
        messages=[{"role": "user", "content": "rewrite: cheap flights"}],
    )
    assert r.model == "team-search/query-rewriter"  # the access name, not the upstream's model name
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(
            model="team-search/query-rewriter",
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "rewrite: cheap flights"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 5
    c = client.completions.create(model="team-search/query-rewriter", prompt="abc", max_tokens=3)
    assert c.usage.completion_tokens == 3


def test_openai_backend_forwards_tools_and_formats_and_passes_their_calls_on(gw, engines):
    """vLLM, trtllm-serve and NIM parse their own tool calls: the gateway forwards tools, tool_choice and
    response_format as given, and passes the upstream's tool_calls on; Responses calls reach it as chat."""
    from .harness import SEARCH_KEY

    client = OpenAI(base_url=gw.url + "/v1", api_key=SEARCH_KEY, max_retries=0)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "search",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            },
        }
    ]
    up = engines["upstream"].upstream
    r = client.chat.completions.create(
        model="team-search/query-rewriter",
        messages=[{"role": "user", "content": "find flights, use search"}],
        tools=tools,
        tool_choice="auto",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
    )
    sent = up.received[-1]
    assert sent["tools"] == tools and sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False
    assert sent["response_format"] == {"type": "json_object"} and sent["model"] == "mistralai/Mistral-7B-Instruct-v0.3"
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "search" and json.loads(call.function.arguments)["q"]
    assert r.choices[0].finish_reason == "tool_calls"
    chunks = list(
        client.chat.completions.create(
            model="team-search/query-rewriter",
            messages=[{"role": "user", "content": "find flights, use search"}],
            tools=tools,
            stream=True,
        )
    )
    pieces = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert pieces[0].function.name == "search"
    assert json.loads("".join(p.function.arguments or "" for p in pieces))["q"]
    resp = client.responses.create(
        model="team-search/query-rewriter",
        input="find flights, use search",
        tools=[{"type": "function", **tools[0]["function"]}],
    )
    assert [o.type for o in resp.output] == ["function_call"] and resp.output[0].name == "search"
    assert up.received[-1]["tools"] == [{"type": "function", "function": tools[0]["function"]}]
