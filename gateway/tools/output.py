"""One choice's text → content, reasoning and tool calls, as the engine writes it (pure, synchronous, incremental).

The formats (each written out from the family's own chat template and documentation; tests/gateway/tools has an
example of each):

* ``llama3_json`` (Llama 3.1/3.2/3.3, "JSON based tool calling" of Meta's prompt format; vLLM ``llama3_json``,
  Triton's ``llama_tool_call_parser.py``): the whole answer is one or more ``{"name": ..., "parameters": {...}}``
  objects separated by ``;``, after ``<|python_tag|>`` — a special token that Triton's postprocessing drops
  (``skip_special_tokens``), so an answer that *starts* with ``{`` is a candidate too.
* ``hermes`` (Qwen2.5, Qwen3, QwQ, Hermes 2/3; vLLM ``hermes``, trtllm-serve ``qwen3``): text, then
  ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks (``<tool_call>`` is not a special token
  in Qwen's tokenizer, so it survives); Qwen3 first writes ``<think>...</think>`` — split off as reasoning.
* ``mistral`` (Mistral 7B v0.3, Nemo, Small; Triton's ``mistral_tool_call_parser.py``, vLLM ``mistral``):
  ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]``, or with the v11 tokenizer
  ``[TOOL_CALLS]name[ARGS]{...}``; ``[TOOL_CALLS]`` and ``[ARGS]`` are special tokens, so without them the answer
  starts with ``[`` (or with an offered function's name and ``{``).
* ``array``: what the gateway's own guide for ``tool_choice: "required"`` makes the engine write:
  ``[{"name": ..., "arguments": {...}}, ...]``; ``named``: the forced function's arguments object itself.
* ``text``: no calls (no tools offered): only the reasoning split.

Streaming: text goes out as it comes until a marker can no longer be ruled out (then it is held, like a stop
string); a call goes out as its head (id, name) and then argument fragments, each a valid JSON prefix. What turns
out not to be a call is given back as text; a call that breaks after its head went out (``failed``) cannot be taken
back: the stream ends with an error. Every call is capped at ``limit`` characters (over it, a call not yet handed out
is given back as text and parsing stops; one already handed out fails).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

from ..backends.base import Delta, ToolCall, ToolCallDelta
from .calls import ArgsParse, CallParse, Malformed, NotACall, TooLarge

# Triton's frontend caps the text it re-parses at 128 KiB (--max-tool-call-parse-bytes, PR #8811); here each call is
# parsed incrementally, and capped at this many characters.
MAX_CALL_CHARS = 128 * 1024
FORMATS = ("llama3_json", "hermes", "mistral", "array", "named", "text")

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MARKERS = {"llama3_json": "<|python_tag|>", "hermes": "<tool_call>", "mistral": "[TOOL_CALLS]"}
HERMES_CLOSE = "</tool_call>"
MISTRAL_ARGS = "[ARGS]"
_ALNUM = string.ascii_letters + string.digits
_NAME_CHARS = set(_ALNUM + "_-.")


def openai_call_id() -> str:
    """OpenAI's shape: "call_" and 24 letters or digits."""
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


def mistral_call_id() -> str:
    """Mistral's templates refuse any tool-call id that is not 9 letters or digits."""
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


def _holdback(text: str, marker: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of marker."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


class Output:
    """Feed the choice's text as it arrives (``feed``), then ``end()``. Each returns the Deltas the caller may see
    now, in order. Afterwards: ``content``, ``reasoning``, ``calls``, and ``failed`` (why a call broke after its
    head went out) / ``open_call`` (a call still open at the end: cut by max_tokens)."""

    def __init__(
        self,
        fmt: str,
        *,
        index: int = 0,
        tools: frozenset[str] | None = None,
        limit: int = MAX_CALL_CHARS,
        new_id: Callable[[], str] = openai_call_id,
        reasoning: bool = False,
        in_reasoning: bool = False,
        forced: str | None = None,
        max_calls: int | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown tool-call format {fmt!r}")
        self.fmt = fmt
        self.index = index
        self.tools = tools
        self.limit = limit
        self.new_id = new_id
        self.forced = forced  # "named": the function whose arguments the text is
        self.max_calls = max_calls  # parallel_tool_calls false: 1 (what the model writes after it is dropped)
        self.content_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.calls: list[ToolCall] = []
        self.failed: str | None = None
        self._out: list[Delta] = []
        self._hold = ""  # text that may start a marker (or, at the start, be part of what decides the mode)
        self._call: CallParse | ArgsParse | None = None
        self._call_raw: list[str] = []  # the text of the current candidate call, given back as text if it is not one
        self._call_id = ""
        self._call_args: list[str] = []  # the arguments of the open call handed out so far
        self._region_size = 0  # characters in the current call region outside calls (whitespace, separators)
        self._candidate = False  # the region began without a marker (a bare JSON start): a failure means text
        self._in_array = False  # mistral / array: inside the list of calls
        self._region_calls = 0  # calls completed in the current list
        self._mode = "start"
        if in_reasoning:
            self._mode = "reasoning"
        elif reasoning:
            self._mode = "think?"
        if fmt in ("array", "named"):
            self._mode = "region"
            self._candidate = False

    # -- results ------------------------------------------------------------------------------------------------
    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def open_call(self) -> bool:
        return self._call is not None and self._call.head_sent

    @property
    def partial_call(self) -> ToolCall | None:
        """The call cut short at the end (max_tokens), as far as it was handed out."""
        if not self.open_call or self._call is None:
            return None
        return ToolCall(self._call_id, self._call.name or "", "".join(self._call_args))

    # -- emitting -----------------------------------------------------------------------------------------------
    def _text(self, s: str) -> None:
        if not s:
            return
        self.content_parts.append(s)
        last = self._out[-1] if self._out else None
        if last is not None and not last.tool_calls and not last.reasoning:
            last.text += s
        else:
            self._out.append(Delta(s, index=self.index))

    def _reason(self, s: str) -> None:
        if not s:
            return
        self.reasoning_parts.append(s)
        last = self._out[-1] if self._out else None
        if last is not None and last.reasoning and not last.text and not last.tool_calls:
            last.reasoning += s
        else:
            self._out.append(Delta("", index=self.index, reasoning=s))

    def _tool(self, events: list[tuple[str, str]]) -> None:
        for kind, value in events:
            n = len(self.calls)
            last = self._out[-1] if self._out else None
            piece = last.tool_calls[-1] if last is not None and last.tool_calls else None
            if kind == "head":
                self._call_id, self._call_args = self.new_id(), []
                self._out.append(Delta("", index=self.index, tool_calls=[ToolCallDelta(n, self._call_id, value, "")]))
            elif piece is not None and piece.index == n and last is not None and not last.text:
                piece.arguments += value
                self._call_args.append(value)
            else:
                self._out.append(Delta("", index=self.index, tool_calls=[ToolCallDelta(n, arguments=value)]))
                self._call_args.append(value)

    def _flush(self) -> list[Delta]:
        out, self._out = self._out, []
        return out

    # -- input --------------------------------------------------------------------------------------------------
    def feed(self, text: str) -> list[Delta]:
        if text:
            self._run(text)
        return self._flush()

    def end(self) -> list[Delta]:
        """The engine is done: held text goes out as what it is; a call not handed out is text."""
        mode, hold = self._mode, self._hold
        self._hold = ""
        if mode in ("think?", "start", "text", "after_think"):
            self._text(hold.rstrip() if self.calls or mode == "text" else hold)
        elif mode == "reasoning":
            self._reason(hold)
        elif mode in ("region", "call", "v11_name") and (self._call is None or not self._call.head_sent):
            self._give_back(hold)  # a marker or a JSON start that no call followed
        # "close": a closing marker cut short is dropped; an open call (open_call) was cut by max_tokens
        return self._flush()

    def _give_back(self, extra: str = "") -> None:
        """The current candidate was not a call: its text (and what follows) is text, and parsing stops."""
        raw = "".join(self._call_raw) + extra
        self._call, self._call_raw = None, []
        self._mode = "text_only"
        if raw.strip():
            self._text(raw)

    def _fail(self, why: str) -> None:
        self.failed = why
        self._mode = "failed"

    def _run(self, text: str) -> None:
        # each step consumes some of `text` and may change the mode; text_only / failed take the rest at once
        while text:
            mode = self._mode
            if mode == "text_only":
                self._text(text)
                return
            if mode in ("failed", "failed_quiet"):
                return
            if mode == "think?":
                text = self._think_start(text)
            elif mode == "reasoning":
                text = self._reasoning(text)
            elif mode == "after_think":
                pending = self._hold + text
                stripped = pending.lstrip()
                if not stripped:
                    self._hold, text = pending, ""
                else:
                    self._hold, self._mode, text = "", "start", stripped
            elif mode == "start":
                text = self._start(text)
            elif mode == "text":
                text = self._plain(text)
            elif mode == "region":
                text = self._region(text)
            elif mode == "call":
                text = self._in_call(text)
            elif mode == "close":
                text = self._close(text)
            elif mode in ("v11_name", "v11_args"):
                text = self._v11(text)
            else:  # pragma: no cover
                raise AssertionError(mode)

    # -- reasoning (<think>) ------------------------------------------------------------------------------------
    def _think_start(self, text: str) -> str:
        pending = self._hold + text
        stripped = pending.lstrip()
        if stripped.startswith(THINK_OPEN):
            self._hold, self._mode = "", "reasoning"
            return stripped[len(THINK_OPEN) :]
        if THINK_OPEN.startswith(stripped):
            self._hold = pending  # could still be "<think>"
            return ""
        self._hold, self._mode = "", "start"
        return pending

    def _reasoning(self, text: str) -> str:
        """Inside <think>: reasoning until </think>; whitespace at either end of it is held and dropped."""
        pending = self._hold + text
        if not self.reasoning_parts:
            pending = pending.lstrip()
        i = pending.find(THINK_CLOSE)
        if i >= 0:
            self._reason(pending[:i].rstrip())
            self._hold, self._mode = "", "after_think"
            return pending[i + len(THINK_CLOSE) :]
        keep = _holdback(pending, THINK_CLOSE)
        body = pending[: len(pending) - keep]
        keep += len(body) - len(body.rstrip())
        self._reason(pending[: len(pending) - keep])
        self._hold = pending[len(pending) - keep :]
        return ""

    # -- text, and where a call may begin -----------------------------------------------------------------------
    def _start(self, text: str) -> str:
        """The answer's first characters: a bare JSON start opens a candidate call (the family's marker is a
        special token that postprocessing may have dropped)."""
        pending = self._hold + text
        stripped = pending.lstrip()
        if not stripped:
            self._hold = pending
            return ""
        marker = MARKERS.get(self.fmt, "")
        if marker and (stripped.startswith(marker) or marker.startswith(stripped)):
            if not stripped.startswith(marker):
                self._hold = pending  # could still be the marker
                return ""
            self._hold, self._mode = "", "text"  # the marker itself: _plain opens the region
            return pending
        self._hold = ""
        first = stripped[0]
        if (self.fmt == "llama3_json" and first == "{") or (self.fmt == "mistral" and first == "["):
            self._mode, self._candidate, self._call_raw = "region", True, [pending[: len(pending) - len(stripped)]]
            return stripped
        if self.fmt == "mistral" and self.tools and first in _NAME_CHARS:
            # v11 without its special tokens: "<function name>{...}"
            name = stripped.split("{", 1)[0]
            if "{" in stripped:
                if name in self.tools:
                    self._mode, self._candidate, self._call_raw = "v11_name", True, []
                    return pending
            elif any(t.startswith(name) for t in self.tools) and set(name) <= _NAME_CHARS:
                self._hold = pending
                return ""
        self._mode = "text"
        return pending

    def _plain(self, text: str) -> str:
        """Text, watching for the family's marker. Whitespace before a marker is not content (the templates put a
        newline between the text and the call), so trailing whitespace is held too."""
        marker = MARKERS.get(self.fmt)
        if marker is None:
            self._text(text)
            return ""
        pending = self._hold + text
        i = pending.find(marker)
        if i >= 0:
            head = pending[:i]
            body = head.rstrip()
            self._text(body if self.content_parts or self.calls else body.lstrip())
            self._hold = ""
            # what is given back if no call follows: the whitespace before the marker, and the marker
            self._mode, self._candidate, self._call_raw = "region", False, [head[len(body) :], marker]
            self._region_size = 0
            return pending[i + len(marker) :]
        keep = _holdback(pending, marker)
        body = pending[: len(pending) - keep]
        keep += len(body) - len(body.rstrip())
        out = pending[: len(pending) - keep]
        if self.calls and not self.content_parts:
            out = out.lstrip()  # whitespace between calls and the text after them
            if not out:
                self._hold = pending[len(pending) - keep :] if keep else ""
                return ""
        self._text(out)
        self._hold = pending[len(pending) - keep :]
        return ""

    # -- a call region: the calls after a marker (or at a bare JSON start) ---------------------------------------
    def _grow(self, n: int) -> bool:
        self._region_size += n
        if self._region_size > self.limit:
            if self._call is not None and self._call.head_sent:
                self._fail(f"a tool call region longer than {self.limit} characters")
            else:
                self._give_back()
            return False
        return True

    def _region(self, text: str) -> str:
        """Before a call object: whitespace, and for the array formats the opening '['."""
        i = 0
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if not self._grow(i):
            return ""
        self._call_raw.append(text[:i])
        text = text[i:]
        if not text:
            return ""
        fmt = self.fmt
        if fmt == "named":
            self._call = ArgsParse(self.forced or "", self.limit)
            self._mode = "call"
            return text
        if fmt in ("mistral", "array") and not self._in_array:
            if text[0] == "[":
                self._in_array, self._region_calls = True, 0
                self._call_raw.append("[")
                return self._region(text[1:])
            if fmt == "mistral" and text[0] in _NAME_CHARS and not self._candidate:
                self._mode = "v11_name"
                return text
            self._give_back(text)
            return ""
        if text[0] == "]" and self._in_array and self._region_calls:  # a trailing comma: the list ends
            self._in_array, self._mode = False, "text" if fmt == "mistral" else "text_only"
            return text[1:]
        if text[0] != "{":
            self._give_back(text)
            return ""
        self._call = CallParse(self.tools, self.limit)
        self._mode = "call"
        return text

    def _in_call(self, text: str) -> str:
        call = self._call
        assert call is not None
        try:
            end, events = call.feed(text)
        except NotACall:
            self._give_back(text)  # this piece and the rest of the answer are text
            return ""
        except TooLarge as e:
            if call.head_sent:
                self._fail(str(e))
            else:
                self._call_raw.append(text)
                self._give_back()
            return ""
        except Malformed as e:
            self._fail(str(e))
            return ""
        used = text if end < 0 else text[:end]
        self._call_raw.append(used)
        self._tool(events)
        if end < 0:
            return ""
        self.calls.append(ToolCall(self._call_id, call.name or "", call.arguments))
        self._region_calls += 1
        self._call, self._call_raw, self._region_size, self._call_args = None, [], 0, []
        self._candidate = False  # a call was made: what follows cannot turn it back into text
        if self.max_calls is not None and len(self.calls) >= self.max_calls:
            self._mode = "failed_quiet"  # no more calls: the rest of the answer is dropped
            return ""
        self._mode = "close"
        return text[end:]

    def _close(self, text: str) -> str:
        """After a call: the family's separator or closing marker, then maybe another call, else text."""
        fmt = self.fmt
        pending = self._hold + text
        stripped = pending.lstrip()
        if not stripped:
            self._hold = pending if len(pending) <= 64 else ""
            return ""
        self._hold = ""
        if fmt == "hermes":
            if stripped.startswith(HERMES_CLOSE):
                self._mode = "text"
                return stripped[len(HERMES_CLOSE) :]
            if HERMES_CLOSE.startswith(stripped):
                self._hold = pending
                return ""
            self._mode = "text"  # no closing tag: the call stands, the rest is text
            return pending
        if fmt == "llama3_json":
            if stripped[0] == ";":
                self._mode, self._call_raw = "region", []
                return stripped[1:]
            self._mode = "text"
            return pending
        if fmt == "named":
            self._mode = "text_only"
            return stripped
        # mistral / array: ',' another call, ']' the end of the list
        if self._in_array:
            if stripped[0] == ",":
                self._mode, self._call_raw = "region", []
                return stripped[1:]
            if stripped[0] == "]":
                self._in_array = False
                self._region_calls = 0
                self._mode = "text" if fmt == "mistral" else "text_only"
                return stripped[1:]
        self._mode = "text" if fmt == "mistral" else "text_only"
        return pending

    # -- Mistral v11: name[ARGS]{...} ---------------------------------------------------------------------------
    def _v11(self, text: str) -> str:
        if self._mode == "v11_name":
            pending = self._hold + text
            brace = pending.find("{")
            args_marker = pending.find(MISTRAL_ARGS)
            cut = min(i for i in (brace, args_marker) if i >= 0) if brace >= 0 or args_marker >= 0 else -1
            if cut < 0:
                name = pending[: len(pending) - _holdback(pending, MISTRAL_ARGS)].strip()
                if len(pending) > 256 or not set(name) <= _NAME_CHARS:
                    self._hold = ""
                    self._call_raw.append(pending)
                    self._give_back()
                    return ""
                self._hold = pending
                return ""
            name = pending[:cut].strip()
            if not name or not set(name) <= _NAME_CHARS or (self.tools is not None and name not in self.tools):
                self._hold = ""
                self._call_raw.append(pending)
                self._give_back()
                return ""
            self._hold = ""
            rest = pending[cut:]
            self._call_raw.append(pending[:cut])
            if rest.startswith(MISTRAL_ARGS):
                self._call_raw.append(MISTRAL_ARGS)
                rest = rest[len(MISTRAL_ARGS) :]
            self._call = ArgsParse(name, self.limit)
            self._mode = "call"
            return rest
        return text
