"""STAND-IN OpenAI-compatible upstream (think vLLM or trtllm-serve), for the `openai` backend kind locally, in
tests, and as the fixed upstream of the benchmark. Not a model: text comes from the same deterministic rule as the
stand-in Triton engine.

Deliberately minimal and fast (a raw asyncio HTTP/1.1 protocol, keep-alive, chunked SSE), so that in a benchmark
the upstream's own cost is small next to the gateway's.

    python -m devtools.standin.openai_upstream --port 18005 [--token-delay 0.0]

Like vLLM with a tool parser it answers tool calls itself: given ``tools``, a forced or required ``tool_choice`` or
a last user message that names an offered function gets a call (arguments valid for the function's parameters,
devtools/standin/agents.py); ``received`` keeps the latest request bodies.

Failure injection, by a marker in the prompt (or in a chat message), for the gateway's tests of a misbehaving
upstream: ``[standin:garbage]`` answers 200 with a body that is not JSON (streamed or not);
``[standin:bad-event:K]`` streams K good events, then one whose data is not JSON, then carries on.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
from collections import deque

import orjson

from .engine import complete, count_input_tokens

_BAD_EVENT = re.compile(r"\[standin:bad-event:(\d+)\]")
GARBAGE = b"<html><body>502 upstream exploded</body></html>"


def _render(messages) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages if isinstance(m, dict))


class _Http(asyncio.Protocol):
    def __init__(self, app: OpenAIUpstream):
        self.app = app
        self.buf = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Future | None = None  # the request being answered (the loop keeps only a weak reference)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self):
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buf) < head_end + 4 + length:
            return
        body = self.buf[head_end + 4 : head_end + 4 + length]
        self.buf = self.buf[head_end + 4 + length :]
        self.busy = True
        self.task = asyncio.ensure_future(self._handle(method, path, body))

    def connection_lost(self, exc):
        self.transport = None

    def _write(self, data: bytes) -> None:
        if self.transport is not None:  # else the client went away: nobody to answer
            self.transport.write(data)

    def _send(self, status: int, obj) -> None:
        payload = orjson.dumps(obj)
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
        self._write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    async def _handle(self, method: str, path: str, body: bytes):
        try:
            if self.transport is None:
                return
            if method == "GET" and path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})
            elif method == "POST" and path.endswith(("/chat/completions", "/completions")):
                await self._complete(path.endswith("/chat/completions"), orjson.loads(body))
            else:
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        except Exception as e:
            if self.transport is not None:
                self._send(400, {"error": {"message": str(e), "type": "invalid_request_error"}})
        finally:
            self.busy = False
            if self.transport is not None and self.buf:
                self._next()

    async def _complete(self, chat: bool, req: dict):
        self.app.received.append(req)
        if chat and req.get("tools"):
            call = _wanted_call(req)
            if call is not None:
                self._tool_call(req, call)
                return
        prompt = _render(req["messages"]) if chat else req["prompt"]
        max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or 16)
        limit = self.app.max_context
        if limit is not None and count_input_tokens(prompt) + max_tokens > limit:  # vLLM's refusal: 400
            self._send(
                400,
                {
                    "object": "error",
                    "message": f"This model's maximum context length is {limit} tokens. However, you requested "
                    f"{count_input_tokens(prompt) + max_tokens} tokens. Please reduce the length of the messages.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            )
            return
        stop = req.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        # vLLM's min_tokens and ignore_eos, as the Triton stand-in honours them
        tokens = complete(
            prompt, max_tokens, req.get("seed"), stop, (), int(req.get("min_tokens") or 0), bool(req.get("ignore_eos"))
        )
        text = "".join(tokens)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        finish = "stop" if cut >= 0 or len(tokens) < max_tokens else "length"
        if cut >= 0:
            text = text[:cut]
        usage = {
            "prompt_tokens": count_input_tokens(prompt),
            "completion_tokens": len(tokens),
            "total_tokens": count_input_tokens(prompt) + len(tokens),
        }
        rid, created = f"standin-{id(req):x}", int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if "[standin:garbage]" in prompt:
            self._write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n" % len(GARBAGE) + GARBAGE
            )
            return
        bad = _BAD_EVENT.search(prompt)
        bad_after = int(bad.group(1)) if bad else None
        if not req.get("stream"):
            choice = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                if chat
                else {"index": 0, "text": text, "finish_reason": finish}
            )
            self._send(
                200,
                {
                    "id": rid,
                    "object": obj,
                    "created": created,
                    "model": req.get("model"),
                    "choices": [choice],
                    "usage": usage,
                },
            )
            return
        t = self.transport
        if t is None:  # the client went away before its answer started
            return
        t.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")

        def event(o) -> None:
            data = b"data: " + orjson.dumps(o) + b"\n\n"
            t.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        chunk_obj = obj + ".chunk" if chat else obj
        emitted = ""
        for i, tok in enumerate(tokens):
            if i == bad_after:
                data = b'data: {"choices": [{"delta": not json\n\n'
                t.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            if self.app.token_delay:
                await asyncio.sleep(self.app.token_delay)
            if self.transport is None:
                return
            self.app.tokens_generated += 1
            piece = tok[: max(0, len(text) - len(emitted))]
            emitted += piece
            if piece:
                choice = (
                    {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    if chat
                    else {"index": 0, "text": piece, "finish_reason": None}
                )
                event(
                    {"id": rid, "object": chunk_obj, "created": created, "model": req.get("model"), "choices": [choice]}
                )
        final = (
            {"index": 0, "delta": {}, "finish_reason": finish}
            if chat
            else {"index": 0, "text": "", "finish_reason": finish}
        )
        event({"id": rid, "object": chunk_obj, "created": created, "model": req.get("model"), "choices": [final]})
        if (req.get("stream_options") or {}).get("include_usage"):
            event(
                {
                    "id": rid,
                    "object": chunk_obj,
                    "created": created,
                    "model": req.get("model"),
                    "choices": [],
                    "usage": usage,
                }
            )
        done = b"data: [DONE]\n\n"
        t.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")

    def _tool_call(self, req: dict, tool: dict) -> None:
        """An answer with one tool call, whole or as OpenAI's tool_calls deltas."""
        from .agents import instance

        args = orjson.dumps(instance(tool.get("parameters") or {"type": "object"}, _render(req["messages"]))).decode()
        call_id = f"call_standin{len(self.app.received)}"
        rid, created, model = f"standin-{id(req):x}", int(time.time()), req.get("model")
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        finish = "stop" if isinstance(req.get("tool_choice"), dict) else "tool_calls"
        if not req.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": tool["name"], "arguments": args}}
                ],
            }
            body = {"id": rid, "object": "chat.completion", "created": created, "model": model, "usage": usage}
            self._send(200, {**body, "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
            return
        t = self.transport
        if t is None:  # the client went away: nobody to answer
            return
        t.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        head = {"index": 0, "id": call_id, "type": "function", "function": {"name": tool["name"], "arguments": ""}}
        deltas = [{"tool_calls": [head]}]
        deltas += [
            {"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 5]}}]} for i in range(0, len(args), 5)
        ]
        events = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (req.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        for o in events:
            data = b"data: " + orjson.dumps(o) + b"\n\n"
            t.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        done = b"data: [DONE]\n\n"
        t.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")


def _wanted_call(req: dict) -> dict | None:
    """The function a tool-parsing upstream would call: the forced one, the first if required, or the one the last
    user message names."""
    tools = [t.get("function", t) for t in req.get("tools") or () if isinstance(t, dict)]
    choice = req.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == name), None)
    if choice == "required":
        return tools[0] if tools else None
    if choice == "none":
        return None
    users = [m for m in req.get("messages") or () if isinstance(m, dict) and m.get("role") in ("user", "tool")]
    last = users[-1] if users else None
    if last is None or last.get("role") != "user":
        return None
    text = str(last.get("content"))
    return next((t for t in tools if re.search(rf"\b{re.escape(str(t.get('name')))}\b", text)), None)


class OpenAIUpstream:
    def __init__(self, token_delay: float = 0.0):
        self.token_delay = token_delay
        self.received: deque[dict] = deque(maxlen=64)  # the latest request bodies
        self.tokens_generated = 0  # tokens streamed, whoever was still listening
        self.max_context = None  # prompt + max_tokens past this: 400, as vLLM answers (None: no limit)
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Http(self), host, port, backlog=4096)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server:
            self.server.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devtools.standin.openai_upstream",
        description="STAND-IN OpenAI-compatible upstream (deterministic fake output)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18005)
    p.add_argument("--token-delay", type=float, default=0.0)
    args = p.parse_args(argv)

    async def run():
        up = OpenAIUpstream(args.token_delay)
        port = await up.start(args.host, args.port)
        print(f"stand-in OpenAI-compatible upstream ready: http://{args.host}:{port}/v1", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await up.stop()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
