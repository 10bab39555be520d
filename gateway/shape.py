"""The OpenAI shapes of an answer: response bodies and SSE chunks, built from the engine contract's results.

Nothing here knows about instances, limits or usage records (gateway/flow.py): a shape turns a GenResult into a
body and a stream of Deltas into SSE bytes. One shape per response format; the flow picks it by endpoint
(``shape_for``), so a new format (the Responses API's typed events, say) is a new class with the same five methods.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from .backends.base import Delta, GenResult, TokenLogprob
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


class TextShape:
    """chat.completion(.chunk) and text_completion bodies for one call."""

    __slots__ = ("_base", "_offset", "chat", "created", "echo", "include_usage", "model", "request_id")

    def __init__(
        self, chat: bool, request_id: str, created: int, model: str, *, echo: str = "", include_usage: bool = False
    ) -> None:
        self.chat = chat
        self.request_id = request_id
        self.created = created
        self.model = model
        self.echo = echo  # completions with echo: the prompt, put before the answer
        self.include_usage = include_usage
        self._base: dict[str, Any] | None = None  # what every chunk of a stream repeats (built on the first)
        self._offset = len(echo)

    # -- one body -------------------------------------------------------------------------------------------------
    def body(self, r: GenResult) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": r.text, "refusal": None},
                "logprobs": logprobs(True, r.logprobs),
                "finish_reason": r.finish_reason,
            }
            obj, prefix = "chat.completion", "chatcmpl-"
        else:
            choice = {
                "index": 0,
                "text": self.echo + r.text,
                "logprobs": logprobs(False, r.logprobs, len(self.echo)),
                "finish_reason": r.finish_reason,
            }
            obj, prefix = "text_completion", "cmpl-"
        return {
            "id": prefix + self.request_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
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
        self, text: str | None, finish: str | None = None, tokens: Sequence[TokenLogprob] | None = None
    ) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": logprobs(True, tokens), "finish_reason": finish}
        else:
            choice = {
                "index": 0,
                "text": text or "",
                "logprobs": logprobs(False, tokens, self._offset),
                "finish_reason": finish,
            }
        out = {**self._chunk_base(), "choices": [choice]}
        if self.include_usage:
            out["usage"] = None
        return out

    def head(self) -> bytes:
        """Chat: the assistant role first (as OpenAI sends it); completions with echo: the prompt."""
        if self.chat:
            first = self._chunk("")
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            return sse(first)
        return sse(self._chunk(self.echo)) if self.echo else b""

    def delta(self, d: Delta) -> bytes:
        out = sse(self._chunk(d.text, tokens=d.logprobs))
        self._offset += len(d.text)
        return out

    def end(self, result: GenResult) -> bytes:
        out = sse(self._chunk(None, result.finish_reason))
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
