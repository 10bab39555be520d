"""What agent frameworks do by default, with the official SDKs against a real gateway process over stand-in engines
that serve the real Llama 3.1 and Qwen3 chat templates: structured outputs (chat.completions.parse), a forced named
tool and the tool result round trip, the same streamed, automatic calls, n > 1, the Responses API with stored
responses (previous_response_id, GET, DELETE, input items) owner by owner, and the usage they leave."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import jsonschema
import openai
import pydantic
import pytest
from openai import OpenAI

from devtools.standin.testing import StandInThread

from .harness import DEMO_KEY, OTHER_KEY, Gateway, example_catalog

SVC = "u-8105f7322477/test"  # llama-3.1-8b-instruct: Llama 3.1's template, tool_parser llama3_json by default
QWEN = "u-8105f7322477/support-bot"  # served with Qwen3's template here (tool_parser: hermes for this test)
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER, "strict": True},
    }
]
ASK = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]


@pytest.fixture(scope="module")
def engines(e2e):
    threads = {
        "llama": StandInThread("chat", family="llama3").start(),
        "qwen": StandInThread("chat", family="qwen3").start(),
    }
    yield threads
    for t in threads.values():
        t.stop()


@pytest.fixture(scope="module")
def gw(engines, tmp_path_factory):
    catalog = example_catalog().replace(
        "    dtype: fp8\n", "    dtype: fp8\n    tool_parser: hermes   # the stand-in serves Qwen3's template here\n"
    )
    g = Gateway(
        tmp_path_factory.mktemp("agents"),
        {SVC: [engines["llama"].url], QWEN: [engines["qwen"].url]},
        catalog_text=catalog,
    ).start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def client(gw):
    return OpenAI(base_url=gw.url + "/v1", api_key=DEMO_KEY, max_retries=0)


def records(gw, request_id_suffix: str) -> list[dict]:
    return [r for r in gw.usage() if r["request_id"].endswith(request_id_suffix)]


# -- structured outputs ----------------------------------------------------------------------------------------------
class Weather(pydantic.BaseModel):
    city: str
    temperature: int
    conditions: list[str]


def test_parse_with_a_pydantic_model_returns_a_parsed_object(client, engines):
    completion = client.chat.completions.parse(
        model=SVC, messages=[{"role": "user", "content": "Weather in Paris as JSON"}], response_format=Weather
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Weather) and parsed.city
    sent = engines["llama"].server.received[-1]
    assert sent["guided_decoding_guide_type"] == ["json_schema"]
    from openai.lib._pydantic import to_strict_json_schema

    assert json.loads(sent["guided_decoding_guide"][0]) == to_strict_json_schema(Weather)  # the inner schema


def test_json_object_answers_an_object(client):
    r = client.chat.completions.create(model=SVC, messages=ASK, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_a_schema_openai_would_refuse_is_refused_before_the_engine(client, engines):
    before = len(engines["llama"].server.received)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=SVC,
            messages=ASK,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "w", "strict": True, "schema": {**WEATHER, "additionalProperties": True}},
            },
        )
    assert e.value.body["param"] == "response_format" and "additionalProperties" in e.value.body["message"]
    assert len(engines["llama"].server.received) == before


# -- tool calling ----------------------------------------------------------------------------------------------------
def test_forced_named_tool_then_the_result_then_an_answer(client, gw):
    first = client.chat.completions.create(
        model=SVC, messages=ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    choice = first.choices[0]
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)
    assert choice.finish_reason == "stop"  # OpenAI's finish reason for a forced function
    messages = [*ASK, choice.message.model_dump(exclude_none=True)]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'})
    second = client.chat.completions.create(model=SVC, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.usage.prompt_tokens > first.usage.prompt_tokens  # the call and its result were rendered
    assert len(records(gw, first.id.removeprefix("chatcmpl-"))) == 1


def test_the_same_streamed_assembles_into_one_call(client):
    with client.chat.completions.stream(
        model=SVC, messages=ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    ) as stream:
        deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert len(deltas) > 1  # the arguments came in fragments
    jsonschema.validate(json.loads(call.function.arguments), WEATHER)


def test_an_automatic_call_ends_with_finish_reason_tool_calls(client):
    r = client.chat.completions.create(model=SVC, messages=ASK, tools=TOOLS)
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
    chunks = list(client.chat.completions.create(model=SVC, messages=ASK, tools=TOOLS, stream=True))
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    pieces = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert finals == ["tool_calls"] and pieces[0].id and pieces[0].function.name == "get_weather"
    assert "".join(p.function.arguments or "" for p in pieces) == r.choices[0].message.tool_calls[0].function.arguments
    # the end-of-turn tokens went as stop words, so nothing after the call reached the caller
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)


def test_required_and_none(client, engines):
    r = client.chat.completions.create(
        model=SVC, messages=[{"role": "user", "content": "hello"}], tools=TOOLS, tool_choice="required"
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    r = client.chat.completions.create(model=SVC, messages=ASK, tools=TOOLS, tool_choice="none")
    assert not r.choices[0].message.tool_calls
    assert "Environment: ipython" not in engines["llama"].server.received[-1]["text_input"][0]  # tools left out


def test_qwen3_reasoning_is_split_off_and_calls_are_hermes(client):
    r = client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "[standin:think] hi"}])
    message = r.choices[0].message
    assert message.model_extra["reasoning_content"] and "<think>" not in message.content
    r = client.chat.completions.create(model=QWEN, messages=ASK, tools=TOOLS)
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_n_choices_each_metered(client, gw):
    r = client.chat.completions.create(model=SVC, messages=[{"role": "user", "content": "Count"}], n=3, max_tokens=6)
    assert [c.index for c in r.choices] == [0, 1, 2] and len({c.message.content for c in r.choices}) > 1
    (rec,) = records(gw, r.id.removeprefix("chatcmpl-"))
    assert (
        rec["completion_tokens"] == r.usage.completion_tokens == sum(len(c.message.content.split()) for c in r.choices)
    )
    chunks = list(
        client.chat.completions.create(
            model=SVC, messages=[{"role": "user", "content": "Count"}], n=2, stream=True, max_tokens=4
        )
    )
    texts = {0: "", 1: ""}
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts[0] == r.choices[0].message.content[: len(texts[0])] and texts[1]


# -- the Responses API -----------------------------------------------------------------------------------------------
def test_responses_and_a_follow_up_that_sees_the_earlier_turn(client, gw):
    first = client.responses.create(model=SVC, input="My name is Ada.", instructions="Be brief.")
    assert first.status == "completed" and first.output_text and first.id.startswith("resp_")
    follow = client.responses.create(model=SVC, input="What is my name?", previous_response_id=first.id)
    assert follow.usage.input_tokens > first.usage.input_tokens + 3  # the earlier turn is in the prompt
    assert follow.previous_response_id == first.id
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text
    items = client.responses.input_items.list(follow.id)
    assert [i.content[0].text for i in items.data] == ["What is my name?"]
    assert len(records(gw, first.id.removeprefix("resp_"))) == 1
    rec = records(gw, follow.id.removeprefix("resp_"))[0]
    assert rec["endpoint"] == "responses" and rec["prompt_tokens"] == follow.usage.input_tokens


def test_a_streamed_response_ends_with_response_completed(client):
    events = list(client.responses.create(model=SVC, input="Hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text


def test_responses_tools_and_structured_text(client):
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True}
    r = client.responses.create(model=SVC, input=ASK[0]["content"], tools=[tool])
    (call,) = [o for o in r.output if o.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), WEATHER)
    follow = client.responses.create(
        model=SVC,
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21}'}],
        tools=[tool],
    )
    assert follow.output_text and not [o for o in follow.output if o.type == "function_call"]
    parsed = client.responses.parse(model=SVC, input="Weather in Paris", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    events = list(client.responses.create(model=SVC, input=ASK[0]["content"], tools=[tool], stream=True))
    assert "response.function_call_arguments.delta" in {e.type for e in events}
    assert events[-1].type == "response.completed"


def test_builtin_tools_are_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=SVC, input="x", tools=[{"type": "web_search"}])
    assert e.value.body["param"] == "tools[0].type" and "web_search" in e.value.body["message"]


def test_another_owners_key_cannot_read_chain_or_delete_a_stored_response(client, gw):
    mine = client.responses.create(model=SVC, input="secret plans")
    other = OpenAI(base_url=gw.url + "/v1", api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as e:  # as for an id that does not exist
        other.responses.create(model="u-3f9a2c7e51d0/receipts", input="x", previous_response_id=mine.id)
    assert e.value.body["code"] == "previous_response_not_found"
    unknown = "resp_" + "0" * 24
    with pytest.raises(openai.BadRequestError) as e2:
        client.responses.create(model=SVC, input="x", previous_response_id=unknown)
    assert e2.value.body["message"] == e.value.body["message"].replace(mine.id, unknown)
    client.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(mine.id)


def test_store_false_is_not_kept(client):
    r = client.responses.create(model=SVC, input="forget me", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_the_usage_api_counts_responses_calls(client, gw):
    r = client.responses.create(model=SVC, input="count me")
    day = int(r.created_at) // 86400 * 86400
    got = httpx.get(
        gw.url + "/v1/organization/usage/completions",
        params={"start_time": day, "bucket_width": "1d"},
        headers=gw.headers(),
    ).json()
    total_in = sum(res["input_tokens"] for b in got["data"] for res in b["results"])
    mine = [x for x in gw.usage() if x["access_name"].startswith("u-8105f7322477/") and x["status"] == "ok"]
    assert total_in == sum(x["prompt_tokens"] for x in mine)
    assert any(x["endpoint"] == "responses" for x in mine)


def test_node_sdk_tools_and_responses(gw):
    node = shutil.which("node")
    assert node and (NODE_DIR / "node_modules" / "openai").exists(), "run ./dev setup (npm ci in tests/node)"
    r = subprocess.run(
        [node, str(NODE_DIR / "agents.mjs"), gw.url + "/v1", DEMO_KEY, SVC],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["toolCall"]["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(out["toolCall"]["function"]["arguments"]), WEATHER)
    assert out["streamedArguments"] == out["toolCall"]["function"]["arguments"] or out["streamedName"] == "get_weather"
    assert out["answer"] and out["responseText"] and out["followUpInput"] > out["firstInput"]
    assert out["lastEvent"] == "response.completed"


def test_the_examples_run(gw, monkeypatch, capsys):
    """The Python example `modelsvc examples` and the console show (chat, a tool call and its result, a parsed
    structured output) runs as written against this gateway."""
    from modelsvc.catalog import loads
    from modelsvc.catalog.examples import KEY_ENV, examples

    catalog = loads(gw.config.read_text())
    code = {e.language: e.code for e in examples(catalog, catalog.service(SVC))}
    monkeypatch.setenv(KEY_ENV, DEMO_KEY)
    exec(compile(code["python"].replace(catalog.gateway.public_url, gw.url + "/v1"), "example.py", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith("get_weather {") and "name=" in printed[-1] and "summary=" in printed[-1]
    compile(code["python-agents"], "agents_example.py", "exec")  # the Agents SDK example is valid Python


def test_the_end_tokens_beyond_the_engines_end_id_go_as_stop_words(client, engines):
    # The preprocessing model sends the tokenizer's eos_token as END_ID; Llama 3.1's other end tokens, and Qwen's
    # <|endoftext|>, end generation only as stop words
    client.chat.completions.create(model=SVC, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert engines["llama"].server.received[-1]["stop_words"] == ["<|eom_id|>", "<|end_of_text|>"]
    client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert engines["qwen"].server.received[-1]["stop_words"] == ["<|endoftext|>"]
