"""Backend kind `openai`: forward to an OpenAI-compatible server that already runs elsewhere (vLLM, trtllm-serve,
NIM, Triton's OpenAI frontend). Same interface as TritonInstance, so balancing, retries and metering are shared.

Chat requests are forwarded as messages (the upstream applies its own chat template); completions as the prompt.
Tools, tool_choice, parallel_tool_calls, response_format and n go as the caller sent them (``GenRequest.forward``):
vLLM, trtllm-serve and NIM render, constrain and parse them themselves, so their tool_calls (and reasoning_content)
come back in the answer and are passed on as they are. Responses API calls reach an upstream as chat requests
(gateway/responses/translate.py): stored responses and ``previous_response_id`` stay in this gateway, scoped to the
caller's owner, which an upstream's own store could not be.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson

from ..errors import BackendError, BackendTimeout, BackendUnavailable, InvalidRequest, UnsupportedParameter
from .base import (
    MIN_TOKENS_PER_S,
    SAMPLING_PARAMS,
    Capabilities,
    Choice,
    Delta,
    GenRequest,
    GenResult,
    ImageRequest,
    ToolCall,
    ToolCallDelta,
)
from .http1 import Http1, HttpFailure
from .openai_chunks import ChunkTemplate


class OpenAIUpstream:
    def __init__(
        self,
        base_url: str,
        upstream_model: str | None,
        *,
        deadline_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        api_key: str | None = None,
        generates: str = "text",
        collect: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if "://" not in self.base_url:
            self.base_url = "http://" + self.base_url + "/v1"
        self.upstream_model = upstream_model
        self.deadline_s = deadline_s
        self.collect = collect  # a non-streamed answer from the upstream's stream (see generate)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = Http1(self.base_url, headers, read_timeout=deadline_s, connect_timeout=connect_timeout_s)
        self.outstanding = 0
        # What an OpenAI-compatible server takes: messages (it applies its own chat template), images in them, every
        # sampling parameter and engine extension (forwarded as given: the upstream validates them).
        self._capabilities = Capabilities(
            generates=generates,
            templates_itself=True,
            vision=True,
            sampling=frozenset(SAMPLING_PARAMS),
            extensions=None,
            guided_decoding=True,  # response_format is forwarded: the upstream enforces (or refuses) it
            n=True,
            parses_tools=True,
        )

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def start(self) -> None:
        if not await self.ready():
            raise BackendUnavailable(f"upstream {self.base_url} is not reachable")

    async def ready(self) -> bool:
        try:
            r = await self._client.request("GET", "/models", timeout=2.0)
            await r.read()
            return r.status < 500
        except HttpFailure:
            return False

    async def close(self) -> None:
        await self._client.close()

    def check(self, req: GenRequest) -> None:
        if req.image_urls and not req.messages:
            raise InvalidRequest("images need the chat endpoint", param="messages")
        if req.sampling.logprobs:
            raise UnsupportedParameter(
                "log probabilities are not forwarded to this service's upstream", param="logprobs"
            )

    def _body(self, req: GenRequest, stream: bool) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.upstream_model or "default",
            "max_tokens": req.sampling.max_tokens,
            "stream": stream,
        }
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed"):
            value = getattr(req.sampling, name)
            if value is not None:
                body[name] = value
        if req.sampling.stop:
            body["stop"] = list(req.sampling.stop)
        body.update(req.sampling.extensions)  # vLLM's own names: the upstream validates and honours them
        if "bad_words" in body:
            body["bad_words"] = list(body["bad_words"])
        if req.sampling.n > 1:
            body["n"] = req.sampling.n
        if req.messages is not None:
            body.update(req.forward)  # tools, tool_choice, parallel_tool_calls, response_format: as given
        if stream:
            body["stream_options"] = {"include_usage": True}
        if req.messages is not None:
            body["messages"] = req.messages
            return "/chat/completions", body
        body["prompt"] = req.prompt
        return "/completions", body

    def _error(self, e: HttpFailure, partial: bool) -> BackendError:
        err: BackendError
        if e.kind == "timeout":
            err = BackendTimeout(f"upstream did not answer within {self.deadline_s}s")
        elif e.kind == "connect" and not partial:
            err = BackendUnavailable(f"upstream {self.base_url} refused the connection")
        else:
            err = BackendError(f"upstream error: {e.name}")
        err.partial = partial
        return err

    @staticmethod
    def _garbled(what: str, partial: bool) -> BackendError:
        """A 200 whose body or event is not the OpenAI shape: the upstream misbehaved (not retried: it may have
        done the work)."""
        err = BackendError(f"upstream sent an invalid {what}")
        err.partial = partial
        return err

    @staticmethod
    def _status_error(status: int, text: str) -> BackendError | InvalidRequest:
        if status in (400, 422):  # the upstream refused the caller's input (vLLM: the context length): theirs to fix
            try:  # OpenAI's {"error": {"message": ...}}, or vLLM's own {"object": "error", "message": ...}
                data = orjson.loads(text)
                message = str((data.get("error") or data).get("message") or "")
            except (ValueError, AttributeError):
                message = ""
            return InvalidRequest(f"the model refused the request: {message[:300] or f'HTTP {status}'}")
        cls = BackendUnavailable if status in (502, 503) else BackendError
        err = cls(f"upstream answered {status}: {text[:200]}")
        err.partial = False
        return err

    async def generate(self, req: GenRequest) -> GenResult:
        """The upstream's token stream, collected: each event counts what it generated, so a request whose caller
        leaves is metered with the tokens produced until then (a one-answer response arrives at the end: a
        cancelled one had no count). Nothing reached the caller, so no failure is partial. collect=False: one
        non-streamed exchange (cheaper; a cancelled request has no count)."""
        self.outstanding += 1
        try:
            if not self.collect:
                return await self._whole(req)
            answer = _Answer(req)
            try:
                async with aclosing(self._exchange(req, answer, collect=True)) as exchange:  # closed now if cut short
                    async for _ in exchange:
                        pass
            except BackendError as e:
                e.partial = False
                raise
            return answer.result()
        finally:
            self.outstanding -= 1

    async def _whole(self, req: GenRequest) -> GenResult:
        path, body = self._body(req, False)
        try:  # a non-streamed answer arrives when generation is done: the wait grows with the work asked
            r = await self._client.request(
                "POST", path, orjson.dumps(body), timeout=self.deadline_s + req.sampling.max_tokens / MIN_TOKENS_PER_S
            )
            content = await r.read()
        except HttpFailure as e:
            raise self._error(e, False) from None
        if r.status != 200:
            raise self._status_error(r.status, content.decode(errors="replace"))
        try:
            data = orjson.loads(content)
            choices = sorted(data["choices"], key=lambda c: int(c.get("index") or 0))
            parsed = [self._choice(c) for c in choices]
            usage = data.get("usage") or {}
            first = parsed[0]
            result = GenResult(
                first.text,
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                first.finish_reason,
                reasoning=first.reasoning,
                tool_calls=first.tool_calls,
                more=parsed[1:],
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self._garbled("response body", False) from None
        if usage.get("prompt_tokens") is not None:
            req.work.prompt_tokens = result.prompt_tokens
        req.work.completion_tokens = result.completion_tokens
        return result

    @staticmethod
    def _choice(c: dict[str, Any]) -> Choice:
        """One choice of an upstream's answer: its text, and for chat its reasoning and tool calls."""
        msg = c.get("message")
        if msg is None:
            return Choice(str(c.get("text") or ""), str(c.get("finish_reason") or "stop"))
        calls = [
            ToolCall(str(t["id"]), str(t["function"]["name"]), str(t["function"].get("arguments") or ""))
            for t in msg.get("tool_calls") or ()
        ]
        reasoning = msg.get("reasoning_content") or msg.get("reasoning") or ""
        return Choice(
            str(msg.get("content") or ""),
            str(c.get("finish_reason") or "stop"),
            reasoning=str(reasoning),
            tool_calls=calls or None,
        )

    async def stream(self, req: GenRequest) -> AsyncGenerator[Delta | GenResult, None]:
        answer = _Answer(req)
        self.outstanding += 1
        try:
            async with aclosing(self._exchange(req, answer)) as exchange:  # closed now if the caller stops reading
                async for deltas in exchange:
                    for delta in deltas[:-1]:  # one read's pieces: the caller gets them in one write
                        delta.more = True
                    for delta in deltas:
                        yield delta
        finally:
            self.outstanding -= 1
        yield answer.result()

    async def _exchange(
        self, req: GenRequest, answer: _Answer, collect: bool = False
    ) -> AsyncGenerator[list[Delta], None]:
        """One streamed exchange: the deltas of what each read brought, taken into `answer` as they arrive
        (collect: nothing is yielded; the events are taken in the connection's callback)."""
        path, body = self._body(req, True)
        yielded = False
        r = None
        try:
            r = await self._client.request("POST", path, orjson.dumps(body))
            if r.status != 200:
                raise self._status_error(r.status, (await r.read()).decode(errors="replace"))
            if collect:  # the events are taken into the answer as they arrive; this task wakes at the end
                try:
                    await r.sink(answer.feed)
                except _GARBLED:
                    raise self._garbled("stream event", False) from None
            else:
                async for batch in r.events():
                    deltas: list[Delta] = []
                    try:
                        done = answer.feed(batch, deltas)
                    except _GARBLED:
                        if deltas:  # what came before the bad event in the same read still reaches the caller
                            yielded = True
                            yield deltas
                        raise self._garbled("stream event", yielded) from None
                    if deltas:
                        yielded = True
                        yield deltas
                    if done:
                        break  # the body's end has usually arrived with [DONE]: then the connection is kept
            if not answer.done and answer.finish is None:  # a body that was no SSE at all, or cut before its end
                raise self._garbled("stream: it ended without a finish_reason or [DONE]", yielded)
        except HttpFailure as e:
            raise self._error(e, yielded) from None
        finally:
            if r is not None:
                r.aclose()  # cut short (caller gone, error event): the upstream request is dropped with it

    async def generate_images(self, req: ImageRequest) -> list[bytes]:
        body = {
            "model": self.upstream_model or "default",
            "prompt": req.prompt,
            "n": req.n,
            "response_format": "b64_json",
        }
        try:
            r = await self._client.request("POST", "/images/generations", orjson.dumps(body))
            content = await r.read()
        except HttpFailure as e:
            raise self._error(e, False) from None
        if r.status != 200:
            raise self._status_error(r.status, content.decode(errors="replace"))
        try:
            images = [base64.b64decode(d["b64_json"], validate=True) for d in orjson.loads(content)["data"]]
        except (ValueError, KeyError, TypeError):
            raise self._garbled("response body", False) from None
        req.work.images = len(images)
        return images


_GARBLED = (ValueError, KeyError, IndexError, TypeError, AttributeError)  # what a malformed event raises in feed()


class _Answer:
    """An answer built from an upstream's stream events as they arrive: the texts, reasoning and tool calls of each
    choice, and the counts (kept in the request's `work`, so a request cut short is metered with what arrived)."""

    __slots__ = ("calls", "done", "finish", "pieces", "reasoning", "reasons", "req", "template", "texts", "usage")

    def __init__(self, req: GenRequest) -> None:
        self.req = req
        self.pieces = 0  # deltas received: the count of tokens when the upstream sends no usage
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.done = False  # [DONE] came
        self.texts: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}
        self.reasons: dict[int, str] = {}
        self.calls: dict[tuple[int, int], list[str]] = {}  # (choice, call index) -> [id, name, arguments]
        self.template = ChunkTemplate()  # the stream's text chunks, read without parsing them

    def feed(self, batch: list[bytes], out: list[Delta] | None = None) -> bool:
        """One read's events taken into the answer (their deltas added to `out`: none are made without it); True at
        [DONE]; anything not the OpenAI shape raises. (Once per token: a text chunk that fits the stream's template
        is read from its bytes: bench.hotpath, 2.3 -> 1.7 µs a chunk.)"""
        template = self.template
        for payload in batch:
            if template.prefix is not None and (text := template.read(payload)) is not None:  # (never [DONE])
                if text:
                    self._text(text)
                    if out is not None:
                        out.append(Delta(text, None, template.index))
                continue
            if payload == b"[DONE]":
                self.done = True
                return True
            deltas = self._parsed(payload)
            if out is not None and deltas:
                out += deltas
        return False

    def _parsed(self, payload: bytes) -> list[Delta]:
        """One SSE event's deltas, parsed by orjson and taken into the answer (and learnt from, when it is a text
        chunk)."""
        event = orjson.loads(payload)
        self.template.learn(payload, event)
        work = self.req.work
        usage = event.get("usage")
        if usage:
            self.usage = usage
            if usage.get("prompt_tokens") is not None:
                work.prompt_tokens = int(usage["prompt_tokens"])
        deltas = []
        for choice in event.get("choices") or ():
            index = choice.get("index") or 0
            if type(index) is not int:
                index = int(index)
            delta = choice.get("delta")
            if delta is not None:  # chat
                text = delta.get("content") or ""
                reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
                calls = delta.get("tool_calls")
                if type(text) is not str or type(reasoning) is not str:
                    text, reasoning = str(text), str(reasoning)
                pieces = self._calls(index, calls) if calls else None
                if text or reasoning or pieces:
                    deltas.append(Delta(text, None, index, reasoning, pieces))
                    self.texts.setdefault(index, []).append(text)
                    if reasoning:
                        self.reasoning.setdefault(index, []).append(reasoning)
            elif text := choice.get("text"):  # completions
                text = str(text)
                deltas.append(Delta(text, None, index))
                self.texts.setdefault(index, []).append(text)
            if finish := choice.get("finish_reason"):
                self.finish = self.reasons[index] = str(finish)
        if deltas:
            self.pieces += len(deltas)
            if work.completion_tokens < self.pieces:
                work.completion_tokens = self.pieces
        return deltas

    def _text(self, text: str) -> None:
        """A text chunk read through the template, taken into the answer as a parsed one is."""
        self.texts.setdefault(self.template.index, []).append(text)
        self.pieces += 1
        work = self.req.work
        if work.completion_tokens < self.pieces:
            work.completion_tokens = self.pieces

    def _calls(self, index: int, calls: list[dict[str, Any]]) -> list[ToolCallDelta]:
        """Tool-call pieces of choice `index`, joined into its calls so far."""
        pieces = []
        for t in calls:
            fn = t.get("function") or {}
            piece = ToolCallDelta(int(t.get("index") or 0), t.get("id"), fn.get("name"), str(fn.get("arguments") or ""))
            entry = self.calls.setdefault((index, piece.index), ["", "", ""])
            entry[0] = piece.id or entry[0]
            entry[1] = piece.name or entry[1]
            entry[2] += piece.arguments
            pieces.append(piece)
        return pieces

    def result(self) -> GenResult:
        """The finished answer (completion tokens: the upstream's usage, else the deltas counted)."""
        req = self.req
        completion = int(self.usage.get("completion_tokens") or self.pieces)
        req.work.completion_tokens = completion
        choices = []
        for i in range(max(1, req.sampling.n)):
            made = [ToolCall(*entry) for (c, _), entry in sorted(self.calls.items()) if c == i]
            choices.append(
                Choice(
                    "".join(self.texts.get(i, ())),
                    self.reasons.get(i) or self.finish or "stop",
                    reasoning="".join(self.reasoning.get(i, ())),
                    tool_calls=made or None,
                )
            )
        first = choices[0]
        return GenResult(
            first.text,
            req.work.prompt_tokens or 0,
            completion,
            first.finish_reason,
            reasoning=first.reasoning,
            tool_calls=first.tool_calls,
            more=choices[1:],
        )
