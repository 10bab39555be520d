"""gateway/flow.py's stream relay, seen as the writes it makes: the app called through ASGI, where each
`response.send` of Sanic's is one `http.response.body` message (over HTTP/1 it is one socket write)."""

import json

import pytest

from .harness import DEMO_KEY
from .inproc import InProcessGateway

SVC = "u-8105f7322477/test"


async def writes(gw: InProcessGateway, path: str, body: dict) -> list[tuple[bytes, bool]]:
    """The response body's messages, (bytes, more_body) each."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"authorization", f"Bearer {DEMO_KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway", 80),
    }
    requests = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await gw.app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent[:2]
    return [(m.get("body", b""), m.get("more_body", False)) for m in sent[1:]]


def events(data: bytes) -> list[str]:
    return [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("usage", [False, True])
async def test_a_chat_stream_writes_its_head_with_the_first_delta_and_its_end_with_done(tmp_path, usage):
    body = {"model": SVC, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    async with InProcessGateway(tmp_path) as gw:
        out = await writes(gw, "/v1/chat/completions", body)
    # one write per token (the role chunk in the first), then finish (and usage) with [DONE], which ends the body
    assert [more for _, more in out] == [True, True, True, False], out
    first, *middle, last = (events(data) for data, _ in out)
    assert [json.loads(e)["choices"][0]["delta"] for e in first] == [
        {"role": "assistant", "content": ""},
        {"content": " w1"},
    ]
    assert [[json.loads(e)["choices"][0]["delta"] for e in m] for m in middle] == [
        [{"content": " w2"}],
        [{"content": " w3"}],
    ]
    assert json.loads(last[0])["choices"][0]["finish_reason"] == "length"
    assert last[-1] == "[DONE]" and len(last) == (3 if usage else 2)
    if usage:
        assert json.loads(last[1])["usage"]["completion_tokens"] == 3


async def test_a_stream_that_fails_after_output_ends_its_body_with_the_error_event(tmp_path):
    body = {"model": SVC, "stream": True, "messages": [{"role": "user", "content": "x [fake:die:2]"}]}
    async with InProcessGateway(tmp_path) as gw:
        out = await writes(gw, "/v1/chat/completions", body)
    assert [more for _, more in out] == [True, True, False], out
    *_, last = events(out[-1][0])
    assert last == "[DONE]" and json.loads(events(out[-1][0])[0])["error"]["code"] == "backend_error"


async def test_a_responses_stream_ends_its_body_with_response_completed(tmp_path):
    body = {"model": SVC, "input": "hi", "max_output_tokens": 16, "stream": True}
    async with InProcessGateway(tmp_path) as gw:
        out = await writes(gw, "/v1/responses", body)
    assert [more for _, more in out][-1] is False and all(more for _, more in out[:-1]), out
    text = out[0][0].decode()
    assert text.index("response.created") < text.index("response.output_text.delta")  # the head, then delta 1
    kinds = [line[7:] for line in out[-1][0].decode().splitlines() if line.startswith("event: ")]
    assert kinds[0] == "response.output_text.done" and kinds[-1] == "response.incomplete"  # 16 tokens: the cap


def deltas(data: bytes) -> list[str]:
    return [json.loads(e)["choices"][0]["delta"].get("content", "") for e in events(data) if e != "[DONE]"]


async def test_pieces_that_came_together_are_written_together(tmp_path):
    """[fake:pairs]: the backend hands over its tokens two at a time (Delta.more on the first, as the openai backend
    marks the events of one read): one write per pair, none held back for a piece that has not come."""
    body = {"model": SVC, "messages": [{"role": "user", "content": "[fake:pairs]"}], "max_tokens": 5, "stream": True}
    async with InProcessGateway(tmp_path) as gw:
        out = await writes(gw, "/v1/chat/completions", body)
    assert [deltas(data) for data, _ in out] == [["", " w1", " w2"], [" w3", " w4"], [" w5"], [""]]
    assert [more for _, more in out] == [True, True, True, False]


async def test_a_piece_waiting_for_its_pair_is_written_with_the_error_that_ended_the_stream(tmp_path):
    content = "[fake:pairs] [fake:die:3]"  # w3 is the first of a pair whose second never comes
    body = {"model": SVC, "messages": [{"role": "user", "content": content}], "max_tokens": 5, "stream": True}
    async with InProcessGateway(tmp_path) as gw:
        out = await writes(gw, "/v1/chat/completions", body)
    assert [deltas(data) for data, _ in out[:-1]] == [["", " w1", " w2"]]
    last = events(out[-1][0])
    assert json.loads(last[0])["choices"][0]["delta"] == {"content": " w3"}
    assert json.loads(last[1])["error"]["code"] == "backend_error" and last[2] == "[DONE]"
    assert out[-1][1] is False
