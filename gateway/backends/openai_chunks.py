"""The text chunks of an OpenAI-compatible stream read from their bytes, without parsing their JSON.

An upstream's chunks repeat the same bytes around their text (vLLM, trtllm-serve, NIM):
``{"id":"…","object":"chat.completion.chunk",…,"choices":[{"index":0,"delta":{"content":"`` TEXT
``"},"finish_reason":null}]}``. A template keeps those bytes, learnt from a chunk orjson parsed; a later chunk that
is the same bytes around a string with nothing JSON escapes (no quote, backslash or control character) parses to
that chunk with the new text, so the text is those bytes decoded. Anything else (the role chunk, tool calls,
reasoning, the finish and usage chunks, a text with escapes, an upstream whose chunks differ beyond their text) is
parsed as before. Once per token on every OpenAI-compatible answer (docs/benchmarks.md, part six).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_ESCAPED = re.compile(rb'["\\\x00-\x1f]').search  # the bytes a JSON string cannot hold as they are
_LEARN_TRIES = 3  # per stream: an upstream whose chunks differ beyond their text (a per-chunk nonce) stops trying


def plain_index(event: Any) -> int | None:
    """The choice index of a chunk that holds one choice's text and nothing else a reader takes (no usage, finish
    reason, reasoning or tool calls); None for any other."""
    if type(event) is not dict or event.get("usage"):
        return None
    choices = event.get("choices")
    if type(choices) is not list or len(choices) != 1 or type(choice := choices[0]) is not dict:
        return None
    index = choice.get("index") or 0
    delta = choice.get("delta")
    if type(index) is not int or type(delta) is not dict or choice.get("finish_reason"):
        return None
    if type(delta.get("content")) is not str or delta.get("tool_calls"):
        return None
    if delta.get("reasoning_content") or delta.get("reasoning"):
        return None
    return index


class ChunkTemplate:
    """One stream's template (per answer: ids differ between requests)."""

    __slots__ = ("_head", "_tail", "index", "prefix", "suffix", "tries")

    def __init__(self) -> None:
        self.prefix: bytes | None = None  # a chunk's bytes up to its text (None: nothing learnt)
        self.suffix = b""  # and after it
        self.index = 0  # the choice the template's chunks are text of
        self.tries = 0
        self._head = self._tail = 0

    def read(self, payload: bytes) -> str | None:
        """The text of a chunk that fits the template, else None."""
        prefix = self.prefix
        if prefix is None or not payload.startswith(prefix) or not payload.endswith(self.suffix):
            return None
        end = len(payload) - self._tail
        if end < self._head:  # the prefix and suffix overlap: not this shape
            return None
        raw = payload[self._head : end]
        if _ESCAPED(raw) is not None:
            return None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None

    def learn(self, payload: bytes, event: Any) -> None:
        """Keep the bytes around the text of a plain chunk that orjson parsed into `event` (and did not fit).

        The text's bytes are found as they must be written (an unescaped text is written as it is), and replaced by
        a probe: when the probe's parse is the event with the probe as its text, those bytes are exactly the text's
        string and every other byte lies outside it, so any unescaped text in their place parses the same way."""
        if self.tries >= _LEARN_TRIES or (index := plain_index(event)) is None:
            return
        choice = event["choices"][0]
        raw = choice["delta"]["content"].encode()
        if not raw or _ESCAPED(raw) is not None:  # an empty or escaped text cannot be found as it is written
            return
        self.tries += 1
        probe = "qz" if raw == b"zq" else "zq"  # differs from the text: the parse must show where the text lies
        expected = {**event, "choices": [{**choice, "delta": {**choice["delta"], "content": probe}}]}
        needle, end = b'"' + raw + b'"', len(payload)
        for _ in range(3):  # the text may also be another field's (the model's name): from the last one back
            at = payload.rfind(needle, 0, end)
            if at < 0:
                return
            prefix, suffix = payload[: at + 1], payload[at + 1 + len(raw) :]
            try:
                parsed = orjson.loads(prefix + probe.encode() + suffix)
            except orjson.JSONDecodeError:
                parsed = None
            if parsed == expected:
                self.prefix, self.suffix, self.index = prefix, suffix, index
                self._head, self._tail = len(prefix), len(suffix)
                return
            end = at + len(needle) - 1  # the next search ends before this one's closing quote
