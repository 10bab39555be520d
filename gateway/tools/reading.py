"""How one request's output is read: per choice, an ``Output`` of the right format; the finished choices get their
content, reasoning, tool calls and finish reason. Pure and synchronous: the flow feeds it what the engine wrote.

* streamed: ``reader = reading.stream()``; ``reader.feed(delta)`` per engine Delta → the Deltas the caller sees;
  ``reader.finish(result)`` → the last Deltas and the finished result. A call that broke after its head went out
  raises ``ModelOutputError`` (the stream then ends with an error event).
* not streamed: ``reading.whole(result)`` → the result with its calls. A choice whose call is malformed or cut short
  keeps the model's text as its content (the caller sees what the model wrote, never a half call).

finish_reason: "tool_calls" when the model called a function — except for a forced (named) call, which OpenAI
reports as "stop" — and "length" whenever max_tokens cut the answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ..backends.base import Choice, Delta, GenResult, ToolCall
from ..errors import ModelOutputError
from .output import MAX_CALL_CHARS, Output, openai_call_id


@functools.lru_cache(maxsize=128)
def _validator(schema: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(orjson.loads(schema))


def strict_problem(call: ToolCall, schema: str) -> str | None:
    """Why the call's arguments do not fit its function's (strict) schema, or None."""
    try:
        arguments = orjson.loads(call.arguments)
    except orjson.JSONDecodeError:
        return f"the arguments of {call.name!r} are not JSON"
    error = next(iter(_validator(schema).iter_errors(arguments)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the arguments"
    return f"the arguments of {call.name!r} do not fit its strict schema at {where}: {error.message}"


@dataclass(frozen=True)
class Reading:
    fmt: str  # gateway/tools/output.py FORMATS
    tools: frozenset[str] | None = None  # the functions offered
    new_id: Callable[[], str] = openai_call_id
    reasoning: bool = False  # split a leading <think> block off (Qwen3)
    in_reasoning: bool = False  # the prompt opened the <think> block already
    forced: str | None = None  # "named": the function
    max_calls: int | None = None  # parallel_tool_calls false: 1
    strict: dict[str, str] = field(default_factory=dict)  # strict functions' schemas, checked after the fact
    limit: int = MAX_CALL_CHARS

    def output(self, index: int) -> Output:
        return Output(
            self.fmt,
            index=index,
            tools=self.tools,
            limit=self.limit,
            new_id=self.new_id,
            reasoning=self.reasoning,
            in_reasoning=self.in_reasoning,
            forced=self.forced,
            max_calls=self.max_calls,
        )

    def stream(self) -> StreamReader:
        return StreamReader(self)

    def whole(self, result: GenResult) -> GenResult:
        choices = [self._whole_choice(c) for c in result.choices()]
        first = choices[0]
        result.text, result.finish_reason, result.reasoning, result.tool_calls = (
            first.text,
            first.finish_reason,
            first.reasoning,
            first.tool_calls,
        )
        result.more = choices[1:]
        return result

    def _whole_choice(self, c: Choice) -> Choice:
        out = self.output(0)
        out.feed(c.text)
        out.end()
        if out.failed or out.open_call:
            # a call that broke or was cut: the model's text (reasoning split off when it came first)
            text = c.text if not out.reasoning else c.text.split("</think>", 1)[-1].lstrip()
            return Choice(text, c.finish_reason, c.completion_tokens, c.logprobs, out.reasoning, None)
        self._check_strict(out.calls)
        return Choice(
            out.content,
            self.finish_reason(c.finish_reason, out.calls),
            c.completion_tokens,
            c.logprobs,
            out.reasoning,
            out.calls or None,
        )

    def _check_strict(self, calls: list[ToolCall]) -> None:
        for call in calls:
            schema = self.strict.get(call.name)
            if schema is not None and (problem := strict_problem(call, schema)) is not None:
                raise ModelOutputError(f"The model produced a tool call that does not fit its schema: {problem}")

    def finish_reason(self, engine_reason: str, calls: list[ToolCall]) -> str:
        if engine_reason == "length" or not calls:
            return engine_reason
        return "stop" if self.fmt == "named" else "tool_calls"


class StreamReader:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.outputs: dict[int, Output] = {}

    def _out(self, index: int) -> Output:
        out = self.outputs.get(index)
        if out is None:
            out = self.outputs[index] = self.reading.output(index)
        return out

    def feed(self, delta: Delta) -> list[Delta]:
        out = self._out(delta.index)
        pieces = out.feed(delta.text)
        if out.failed:
            raise ModelOutputError(f"The model produced an invalid tool call: {out.failed}")
        if delta.logprobs:
            if pieces:
                pieces[0].logprobs = delta.logprobs
            else:  # held back: the tokens go with the next piece of this choice
                pieces = [Delta("", delta.logprobs, index=delta.index)]
        return pieces

    def finish(self, result: GenResult) -> tuple[list[Delta], GenResult]:
        pieces: list[Delta] = []
        choices = result.choices()
        finished = []
        for i, c in enumerate(choices):
            out = self._out(i)
            pieces += out.end()
            if out.failed:
                raise ModelOutputError(f"The model produced an invalid tool call: {out.failed}")
            calls = list(out.calls)
            if (partial := out.partial_call) is not None:
                calls.append(partial)  # cut by max_tokens: what went out (finish_reason "length")
            else:
                self.reading._check_strict(calls)
            reason = self.reading.finish_reason(c.finish_reason, calls)
            finished.append(Choice(out.content, reason, c.completion_tokens, c.logprobs, out.reasoning, calls or None))
        first = finished[0]
        result.text, result.finish_reason, result.reasoning, result.tool_calls = (
            first.text,
            first.finish_reason,
            first.reasoning,
            first.tool_calls,
        )
        result.more = finished[1:]
        return pieces, result
