"""The Responses API in process (tests/gateway/inproc.py, fake engines): shapes, validation, storage per owner,
images for vision services, and its one usage record."""

import json

import pytest

from .harness import DEMO_KEY, OTHER_KEY
from .inproc import InProcessGateway

SVC = "u-8105f7322477/test"
AUTH = {"authorization": f"Bearer {DEMO_KEY}"}
OTHER = {"authorization": f"Bearer {OTHER_KEY}"}


@pytest.fixture
async def gw(tmp_path):
    async with InProcessGateway(tmp_path) as g:
        yield g


async def post(gw, body, headers=AUTH):
    return await gw.client.post("/v1/responses", json=body, headers=headers)


def error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_a_response_and_its_one_usage_record(gw):
    r = await post(gw, {"model": SVC, "input": "hello", "instructions": "be brief", "max_output_tokens": 16})
    assert r.status_code == 200, r.text
    resp = r.json()
    assert resp["object"] == "response" and resp["id"].startswith("resp_") and resp["model"] == SVC
    assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
    (message,) = resp["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "output_text" and message["content"][0]["text"].startswith(" w1")
    assert resp["usage"]["output_tokens"] == 16 and resp["instructions"] == "be brief" and resp["store"] is True
    prompt = gw.backend(SVC).requests[-1].prompt
    assert prompt.startswith("<|im_start|>system\nbe brief") and "hello" in prompt
    (rec,) = gw.usage()
    assert rec["endpoint"] == "responses" and rec["request_id"] == resp["id"].removeprefix("resp_")
    assert rec["completion_tokens"] == 16 and rec["prompt_tokens"] == resp["usage"]["input_tokens"]


async def test_a_streamed_response_is_typed_events_without_done(gw):
    r = await post(gw, {"model": SVC, "input": "hello", "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "[DONE]" not in r.text
    events = []
    for block in r.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(data)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    assert len(gw.usage()) == 1


@pytest.mark.parametrize(
    "body,param,code",
    [
        ({"model": SVC}, "input", "missing_required_parameter"),
        ({"model": SVC, "input": "x", "foo": 1}, "foo", None),
        ({"model": SVC, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
        ({"model": SVC, "input": [{"type": "computer_call"}]}, "input[0].type", "unsupported_parameter"),
        (
            {"model": SVC, "input": [{"type": "message", "role": "robot", "content": "x"}]},
            "input[0].role",
            "invalid_value",
        ),
        ({"model": SVC, "input": "x", "reasoning": {"effort": "high"}}, "reasoning.effort", "unsupported_parameter"),
        ({"model": SVC, "input": "x", "background": True}, "background", "unsupported_parameter"),
        ({"model": SVC, "input": "x", "conversation": "conv_1"}, "conversation", "unsupported_parameter"),
        ({"model": SVC, "input": "x", "max_output_tokens": 8}, "max_output_tokens", "invalid_value"),
        (
            {"model": SVC, "input": "x", "previous_response_id": "resp_nope"},
            "previous_response_id",
            "previous_response_not_found",
        ),
        (
            {
                "model": SVC,
                "input": "x",
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "x",
                        "strict": True,
                        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                    }
                },
            },
            "text.format.schema",
            "invalid_json_schema",
        ),
    ],
)
async def test_refusals_name_the_parameter(gw, body, param, code):
    e = error(await post(gw, body), 400)
    assert (e["param"], e["code"]) == (param, code), e
    assert gw.usage() == []


async def test_an_empty_reasoning_object_is_accepted(gw):
    r = await post(gw, {"model": SVC, "input": "x", "reasoning": {"effort": None, "summary": None}, "include": []})
    assert r.status_code == 200, r.text


async def test_stored_responses_belong_to_their_owner(gw):
    first = (await post(gw, {"model": SVC, "input": "remember this"})).json()
    rid = first["id"]
    got = await gw.client.get(f"/v1/responses/{rid}", headers=AUTH)
    assert got.status_code == 200 and got.json() == first
    items = (await gw.client.get(f"/v1/responses/{rid}/input_items", headers=AUTH)).json()
    assert items["object"] == "list" and items["data"][0]["content"][0]["text"] == "remember this"
    assert error(await gw.client.get(f"/v1/responses/{rid}", headers=OTHER), 404)["message"] == (
        f"Response with id '{rid}' not found."
    )
    assert error(await gw.client.delete(f"/v1/responses/{rid}", headers=OTHER), 404)
    follow = await post(gw, {"model": SVC, "input": "and now?", "previous_response_id": rid})
    assert follow.status_code == 200
    prompt = gw.backend(SVC).requests[-1].prompt
    assert "remember this" in prompt and first["output"][0]["content"][0]["text"].strip() in prompt
    deleted = await gw.client.delete(f"/v1/responses/{rid}", headers=AUTH)
    assert deleted.json() == {"id": rid, "object": "response.deleted", "deleted": True}
    assert error(await gw.client.get(f"/v1/responses/{rid}", headers=AUTH), 404)
    # the follow-up still stands on its own: it carries everything before it
    again = await post(gw, {"model": SVC, "input": "and again?", "previous_response_id": follow.json()["id"]})
    assert again.status_code == 200 and "remember this" in gw.backend(SVC).requests[-1].prompt


async def test_function_call_items_and_their_outputs_become_the_chat_history(gw):
    body = {
        "model": SVC,
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "21C"},
        ],
    }
    r = await post(gw, body)
    assert r.status_code == 200, r.text
    (req,) = gw.backend(SVC).requests
    assert "21C" in req.prompt  # ChatML renders the tool message's content


async def test_images_reach_a_vision_service(gw):
    image = (
        "data:image/png;base64,"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    body = {
        "model": "u-3f9a2c7e51d0/receipts",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": image},
                ],
            }
        ],
    }
    r = await post(gw, body, headers=OTHER)
    assert r.status_code == 200, r.text
    (req,) = gw.backend("u-3f9a2c7e51d0/receipts").requests
    assert req.image_urls and req.image_urls[0].startswith("data:image/png") and "<image>" in req.prompt
    e = error(await post(gw, {"model": SVC, "input": body["input"]}), 400)
    assert e["code"] == "image_not_supported"
