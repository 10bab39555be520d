"""The OpenAI shapes of an answer: response bodies and SSE chunks, built from the engine contract's results.

Nothing here knows about instances, limits or usage records (gateway/flow.py): a shape turns a GenResult into a
body and a stream of Deltas into SSE bytes. One shape per response format; the flow picks it by endpoint
(``shape_for``), so a new format (the Responses API's typed events, say) is a new class with the same five methods.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .backends.base import Choice, Delta, GenResult, TokenLogprob, ToolCall, ToolCallDelta
from .errors import GatewayError

DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class StreamShape(Protocol):
    """One streamed answer's bytes: head, a delta per piece, the end (before the request is metered), done."""

    def head(self) -> bytes: ...
    def delta(self, d: Delta) -> bytes: ...
    def end(self, result: GenResult) -> bytes: ...
    def done(self) -> bytes: ...
    def error(self, e: GatewayError) -> bytes: ...


def usage(r: GenResult) -> dict[str, int]:
    return {
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    }


def logprobs(chat: bool, tokens: Sequence[TokenLogprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """OpenAI's logprobs object for the chosen tokens (no alternatives: the engine returns none)."""
    if tokens is None:
        return None
    if chat:
        return {
            "content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in tokens],
            "refusal": None,
        }
    offsets = []
    for t, _ in tokens:
        offsets.append(offset)
        offset += len(t)
    return {
        "tokens": [t for t, _ in tokens],
        "token_logprobs": [lp for _, lp in tokens],
        "top_logprobs": None,
        "text_offset": offsets,
    }


def tool_calls(calls: Sequence[ToolCall] | None) -> list[dict[str, Any]] | None:
    if not calls:
        return None
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def _tool_call_deltas(pieces: Sequence[ToolCallDelta]) -> list[dict[str, Any]]:
    out = []
    for p in pieces:
        d: dict[str, Any] = {"index": p.index}
        if p.id is not None:
            d["id"], d["type"] = p.id, "function"
            d["function"] = {"name": p.name, "arguments": p.arguments}
        else:
            d["function"] = {"arguments": p.arguments}
        out.append(d)
    return out


class TextShape:
    """chat.completion(.chunk) and text_completion bodies for one call (n choices; tool calls and reasoning in
    chat: OpenAI's message.tool_calls, and reasoning_content beside content as vLLM and DeepSeek send it)."""

    __slots__ = ("_base", "_frame", "_offsets", "chat", "created", "echo", "include_usage", "model", "n", "request_id")

    def __init__(
        self,
        chat: bool,
        request_id: str,
        created: int,
        model: str,
        *,
        echo: str = "",
        include_usage: bool = False,
        n: int = 1,
    ) -> None:
        self.chat = chat
        self.request_id = request_id
        self.created = created
        self.model = model
        self.echo = echo  # completions with echo: the prompt, put before the answer
        self.include_usage = include_usage
        self.n = n
        self._base: dict[str, Any] | None = None  # what every chunk of a stream repeats (built on the first)
        self._frame: tuple[bytes, bytes] | None = None  # a plain text chunk's bytes around its JSON string
        self._offsets = [len(echo)] * n

    # -- one body -------------------------------------------------------------------------------------------------
    def _chat_choice(self, i: int, c: Choice) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": c.text, "refusal": None}
        if c.tool_calls:
            message["tool_calls"] = tool_calls(c.tool_calls)
            if not c.text:
                message["content"] = None
        if c.reasoning:
            message["reasoning_content"] = c.reasoning
        return {
            "index": i,
            "message": message,
            "logprobs": logprobs(True, c.logprobs),
            "finish_reason": c.finish_reason,
        }

    def body(self, r: GenResult) -> dict[str, Any]:
        choices: list[dict[str, Any]]
        if self.chat:
            choices = [self._chat_choice(i, c) for i, c in enumerate(r.choices())]
            obj, prefix = "chat.completion", "chatcmpl-"
        else:
            choices = [
                {
                    "index": i,
                    "text": self.echo + c.text,
                    "logprobs": logprobs(False, c.logprobs, len(self.echo)),
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(r.choices())
            ]
            obj, prefix = "text_completion", "cmpl-"
        return {
            "id": prefix + self.request_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage(r),
            "system_fingerprint": None,
        }

    # -- a stream -------------------------------------------------------------------------------------------------
    def _chunk_base(self) -> dict[str, Any]:
        if self._base is None:
            self._base = {
                "id": ("chatcmpl-" if self.chat else "cmpl-") + self.request_id,
                "object": "chat.completion.chunk" if self.chat else "text_completion",
                "created": self.created,
                "model": self.model,
            }
            if self.chat:
                self._base["system_fingerprint"] = None
        return self._base

    def _chunk(
        self,
        text: str | None,
        finish: str | None = None,
        tokens: Sequence[TokenLogprob] | None = None,
        index: int = 0,
    ) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            delta = {} if text is None else {"content": text}
            choice = {"index": index, "delta": delta, "logprobs": logprobs(True, tokens), "finish_reason": finish}
        else:
            choice = {
                "index": index,
                "text": text or "",
                "logprobs": logprobs(False, tokens, self._offsets[index] if index < self.n else 0),
                "finish_reason": finish,
            }
        out = {**self._chunk_base(), "choices": [choice]}
        if self.include_usage:
            out["usage"] = None
        return out

    def head(self) -> bytes:
        """Chat: the assistant role first (as OpenAI sends it), for each choice; completions with echo: the prompt."""
        out = b""
        for i in range(self.n):
            if self.chat:
                first = self._chunk("", index=i)
                first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
                out += sse(first)
            elif self.echo:
                out += sse(self._chunk(self.echo, index=i))
        return out

    def _text_frame(self) -> tuple[bytes, bytes]:
        """The SSE bytes of a plain text chunk of choice 0 before and after its text, encoded once per stream: the
        same bytes as sse(self._chunk(text)), with the text's JSON string in the middle."""
        if self._frame is None:
            marker = "\x00frame\x00"
            whole = sse(self._chunk(marker))
            cut = orjson.dumps(marker)
            before, _, after = whole.rpartition(cut)  # the text is the last field a caller chose
            self._frame = (before, after)
        return self._frame

    def delta(self, d: Delta) -> bytes:
        if d.index == 0 and d.logprobs is None and d.tool_calls is None and not d.reasoning:  # the common case
            before, after = self._frame or self._text_frame()
            out = before + orjson.dumps(d.text) + after
        elif d.tool_calls is None and not d.reasoning:  # plain text
            out = sse(self._chunk(d.text, tokens=d.logprobs, index=d.index))
        else:
            chunk = self._chunk(d.text or None, tokens=d.logprobs, index=d.index)
            delta = chunk["choices"][0]["delta"]
            if d.reasoning:
                delta["reasoning_content"] = d.reasoning
            if d.tool_calls:
                delta["tool_calls"] = _tool_call_deltas(d.tool_calls)
            out = sse(chunk)
        if d.index < self.n:
            self._offsets[d.index] += len(d.text)
        return out

    def end(self, result: GenResult) -> bytes:
        out = b"".join(sse(self._chunk(None, c.finish_reason, index=i)) for i, c in enumerate(result.choices()))
        if self.include_usage:
            out += sse({**self._chunk_base(), "choices": [], "usage": usage(result)})
        return out

    def done(self) -> bytes:
        return DONE

    def error(self, e: GatewayError) -> bytes:
        """After the first byte the status is sent: an error event, then the end of the stream."""
        return sse(e.body()) + DONE


def images_body(created: int, pngs: Sequence[bytes]) -> dict[str, Any]:
    return {"created": created, "data": [{"b64_json": base64.b64encode(png).decode()} for png in pngs]}


# -- the Responses API -------------------------------------------------------------------------------------------------
def _event(kind: str, body: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **body}) + b"\n\n"


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(20)}"


def responses_usage(r: GenResult) -> dict[str, Any]:
    return {
        "input_tokens": r.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": r.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    }


def output_items(r: GenResult) -> list[dict[str, Any]]:
    """A finished generation as Responses output items: reasoning, the message, the function calls."""
    items: list[dict[str, Any]] = []
    status = "incomplete" if r.finish_reason == "length" else "completed"
    if r.reasoning:
        items.append(_reasoning_item(_item_id("rs"), r.reasoning))
    if r.text or not r.tool_calls:
        items.append(_message_item(_item_id("msg"), r.text, status))
    for c in r.tool_calls or ():
        items.append(_call_item(_item_id("fc"), c.id, c.name, c.arguments, status))
    return items


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": [part]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


class ResponsesShape:
    """The Responses API's response object and its typed event stream (``event:`` and ``data:`` lines, a
    ``sequence_number`` on every event, no ``[DONE]``): response.created, response.in_progress, then per output
    item output_item.added … its deltas … output_item.done, then response.completed (or response.incomplete when
    max_output_tokens cut it; response.failed after an error event)."""

    def __init__(self, response_id: str, created: int, model: str, settings: dict[str, Any]) -> None:
        self.response_id = response_id
        self.created = created
        self.model = model
        self.settings = settings  # what the response object repeats of the request (instructions, tools, ...)
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # the output items streamed so far
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._text: list[str] = []  # its text or arguments so far
        self.final: dict[str, Any] | None = None  # the finished response object (stored by the flow)

    def response(self, status: str, output: list[dict[str, Any]], r: GenResult | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self.model,
            "output": output,
            **self.settings,
            "usage": responses_usage(r) if r is not None else None,
        }
        if status == "incomplete":
            obj["incomplete_details"] = {"reason": "max_output_tokens"}
        if status in ("completed", "incomplete"):
            obj["completed_at"] = int(time.time())
        return obj

    def body(self, r: GenResult) -> dict[str, Any]:
        status = "incomplete" if r.finish_reason == "length" else "completed"
        self.final = self.response(status, output_items(r), r)
        return self.final

    # -- a stream -------------------------------------------------------------------------------------------------
    def _ev(self, kind: str, **body: Any) -> bytes:
        out = _event(kind, {**body, "sequence_number": self.seq})
        self.seq += 1
        return out

    def head(self) -> bytes:
        pending = self.response("in_progress", [])
        return self._ev("response.created", response=pending) + self._ev("response.in_progress", response=pending)

    def _begin(self, item: dict[str, Any]) -> bytes:
        out = self._close()
        self._open, self._text = item, []
        index = len(self.items)
        out += self._ev("response.output_item.added", output_index=index, item=item)
        part = None
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": ""}
        if part is not None:
            out += self._ev(
                "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
            )
        return out

    def _close(self, status: str = "completed") -> bytes:
        item = self._open
        if item is None:
            return b""
        index, text = len(self.items), "".join(self._text)
        ids = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "message":
            done = _message_item(item["id"], text, status)
            out = self._ev("response.output_text.done", **ids, content_index=0, text=text, logprobs=[])
            out += self._ev("response.content_part.done", **ids, content_index=0, part=done["content"][0])
        elif kind == "reasoning":
            done = _reasoning_item(item["id"], text)
            out = self._ev("response.reasoning_text.done", **ids, content_index=0, text=text)
            out += self._ev("response.content_part.done", **ids, content_index=0, part=done["content"][0])
        else:
            done = _call_item(item["id"], item["call_id"], item["name"], text, status)
            out = self._ev("response.function_call_arguments.done", **ids, name=item["name"], arguments=text)
        out += self._ev("response.output_item.done", output_index=index, item=done)
        self.items.append(done)
        self._open = None
        return out

    def _kind(self) -> str | None:
        return self._open["type"] if self._open is not None else None

    def delta(self, d: Delta) -> bytes:
        out = b""
        if d.reasoning:
            if self._kind() != "reasoning":
                out += self._begin({"id": _item_id("rs"), "type": "reasoning", "summary": [], "content": []})
            self._text.append(d.reasoning)
            out += self._ev(
                "response.reasoning_text.delta",
                item_id=self._open_id(),
                output_index=len(self.items),
                content_index=0,
                delta=d.reasoning,
            )
        if d.text:
            if self._kind() != "message":
                item = {"id": _item_id("msg"), "type": "message", "role": "assistant", "status": "in_progress"}
                out += self._begin({**item, "content": []})
            self._text.append(d.text)
            out += self._ev(
                "response.output_text.delta",
                item_id=self._open_id(),
                output_index=len(self.items),
                content_index=0,
                delta=d.text,
                logprobs=[],
            )
        for piece in d.tool_calls or ():
            if piece.id is not None:
                out += self._begin(_call_item(_item_id("fc"), piece.id, piece.name or "", "", "in_progress"))
            if piece.arguments and self._kind() == "function_call":
                self._text.append(piece.arguments)
                out += self._ev(
                    "response.function_call_arguments.delta",
                    item_id=self._open_id(),
                    output_index=len(self.items),
                    delta=piece.arguments,
                )
        return out

    def _open_id(self) -> str:
        assert self._open is not None
        return str(self._open["id"])

    def end(self, result: GenResult) -> bytes:
        status = "incomplete" if result.finish_reason == "length" else "completed"
        if not self.items and self._open is None:  # nothing was written: an empty message, as OpenAI answers
            out = self._begin({"id": _item_id("msg"), "type": "message", "role": "assistant", "content": []})
        else:
            out = b""
        out += self._close(status)
        self.final = self.response(status, self.items, result)
        return out + self._ev(f"response.{status}", response=self.final)

    def done(self) -> bytes:
        return b""  # the Responses API ends with response.completed: no [DONE]

    def error(self, e: GatewayError) -> bytes:
        err = e.body()["error"]
        out = self._ev("error", code=err["code"], message=err["message"], param=err["param"])
        failed = self.response("failed", self.items)
        failed["error"] = {"code": err["code"] or "server_error", "message": err["message"]}
        return out + self._ev("response.failed", response=failed)
