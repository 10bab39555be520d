"""The request flow, one call from parsed body to answer: the service the key may use → validated parameters →
admission (limits) → an instance (retried elsewhere before the first byte) → the engine → the shaped answer, with
exactly one usage record whatever happens.

The HTTP handlers (gateway/api/openai.py) parse the JSON body, ``begin`` a Call and ``run`` it; the shapes of the
answer are gateway/shape.py's. Backends are known only through gateway/backends/base.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelsvc.catalog import Backend, Key, Model, Service, Task
from modelsvc.catalog.chat_templates import takes_tools
from modelsvc.catalog.families import END_TOKENS, tool_parser
from modelsvc.catalog.model import ToolParser

from . import params
from .auth import authorize
from .backends.base import Capabilities, Delta, GenRequest, GenResult, ImageRequest, Sampling, Work
from .balancer import Instance, InstancePool
from .errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
    InvalidRequest,
    ShuttingDown,
    StoreUnavailable,
    UnsupportedParameter,
)
from .image_fetch import ImageBytes
from .image_fetch import check as check_images
from .limits import Admission
from .prompt import mistral_id, render_chat
from .responses import ResponsesRequest, responses_request, validated
from .runtime import Runtime
from .shape import ResponsesShape, StreamShape, TextShape, images_body
from .tools import mistral_call_id, openai_call_id
from .tools.reading import Reading
from .tooluse import ToolUse
from .usage import UsageRecord

log = logging.getLogger("gateway.flow")


class StreamResponse(Protocol):
    """What the handler's ``respond()`` opens: the HTTP response of a stream (Sanic's)."""

    async def send(self, data: bytes, end_stream: bool | None = None) -> None: ...  # end_stream: the body's last
    async def eof(self) -> None: ...


Respond = Callable[[], Awaitable[StreamResponse]]


def _partial(e: BaseException) -> bool:
    return isinstance(e, BackendError) and e.partial


def _retryable(e: BaseException) -> bool:
    """Failures that say nothing reached the caller and the instance itself is at fault."""
    return isinstance(e, (BackendUnavailable, BackendTimeout)) and not _partial(e)


def _retryable_unary(e: BaseException) -> bool:
    """For a non-streaming request the caller has seen nothing yet, so an engine that died mid-generation
    (partial output, then the connection dropped) is retried elsewhere too. Errors before any output that are
    not about reachability (a refused input) are the request's fault: not retried."""
    return _retryable(e) or (isinstance(e, BackendError) and _partial(e))


@dataclass
class Call:
    """One request's bookkeeping, from authentication to its one usage record."""

    runtime: Runtime
    key: Key
    service: Service
    model: Model
    pool: InstancePool
    endpoint: str
    body: dict[str, Any]
    stream: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    t0: float = field(default_factory=time.perf_counter)
    created: int = field(default_factory=lambda: int(time.time()))
    backend_s: float = 0.0
    instance: str = ""
    admission: Admission = field(default_factory=Admission)
    work: Work = field(default_factory=Work)  # what the engine did so far (backends update it)
    images: ImageBytes = field(default_factory=ImageBytes)  # fetched image bytes held until the request is done
    req: GenRequest | None = None
    recorded: bool = False
    reading: Reading | None = None  # how the model's raw text is read (tool calls, reasoning); None: as it is
    responses: ResponsesRequest | None = None  # a Responses API call: what it asked (and what is stored)
    history: list[dict[str, Any]] = field(default_factory=list)  # the stored items previous_response_id names

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def overhead_ms(self) -> float:
        return max(0.0, self.elapsed_ms() - self.backend_s * 1000)

    def failed(self, e: GatewayError) -> None:
        log.warning(
            "%s %s (%s) on %s failed: %s",
            self.endpoint,
            self.request_id,
            self.service.access_name,
            self.instance or "-",
            e.message,
        )
        if isinstance(e, InvalidRequest):  # the engine refused the caller's input: their error to fix, not billed
            return
        # No instance could be reached: nothing was sent, nothing to meter but the attempt.
        reached = not (isinstance(e, BackendUnavailable) and not _partial(e))
        self.record("error", error=e.code or type(e).__name__, reached=reached)

    def interrupted(self) -> GatewayError | None:
        """The request's task was cancelled: the caller went away (None: re-raise the cancellation), or the shutdown
        grace ended (the error to answer instead; the cancellation is withdrawn)."""
        if not self.runtime.cutting:
            self.record("cancelled")
            return None
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        err = ShuttingDown("the gateway is shutting down and stopped this request; retry it")
        self.record("error", error=err.code or "")
        return err

    def record(self, status: str, error: str = "", reached: bool = True) -> None:
        """The request's one usage record (later calls are no-ops): the engine's counts so far, or for the prompt
        the gateway's estimate, marked as such, when the engine's count never arrived."""
        if self.recorded:
            return
        self.recorded = True
        w = self.work
        prompt, estimated = w.prompt_tokens, False
        if prompt is None:  # reached: the engine got the prompt, whatever happened next
            reached = reached and self.req is not None
            prompt, estimated = (self.req.estimated_prompt_tokens(), True) if self.req and reached else (0, False)
        self.runtime.limiter.spend(self.admission, self.key, self.service, prompt, w.completion_tokens)
        self.runtime.usage.record(
            UsageRecord(
                request_id=self.request_id,
                service_id=self.service.id,
                access_name=self.service.access_name,
                key_id=self.key.id,
                endpoint=self.endpoint,
                stream=self.stream,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=w.completion_tokens,
                latency_ms=round(self.elapsed_ms(), 3),
                overhead_ms=round(self.overhead_ms(), 3),
                instance=self.instance,
                error=error,
                prompt_tokens_estimated=estimated,
                images=w.images,
            )
        )

    def headers(self) -> dict[str, str]:
        """What every answer carries: the request id and the rate-limit state."""
        return {"x-request-id": self.request_id, **self.admission.headers}


def begin(rt: Runtime, key: Key, body: Any, endpoint: str) -> Call:
    """The service the key may use (404 otherwise: unknown and not yours look the same)."""
    name = params.model_name(body)
    service = authorize(key, rt.catalog.service(name), name)
    return Call(rt, key, service, rt.catalog.model_of(service), rt.pools[service.access_name], endpoint, body)


async def run(call: Call, respond: Respond) -> dict[str, Any] | None:
    """The whole request: the answer's body, or None when it was streamed through `respond()`."""
    if call.endpoint == "images.generations":
        async with _admitted(call, False):
            return await _images(call)
    if call.endpoint == "responses":
        await _responses_history(call)
    req, shape = _prepare(call)
    # Everything that can be refused without work is, before the limits are touched and before any outbound fetch:
    # the parameters (above), what the model cannot honour, the number and inline size of the images.
    _check(call, req)
    fetch = bool(req.image_urls) and call.model.backend is Backend.triton
    if fetch:
        check_images(req.image_urls, call.runtime.settings.images)
    async with _admitted(call, call.stream):
        if fetch:
            # Triton engines get image bytes, never a URL to fetch (gateway/image_fetch.py); openai upstreams get
            # the caller's messages as they are.
            call.images = ImageBytes(call.runtime.images)
            req.image_urls = await call.runtime.images.inline(req.image_urls, call.images)
        if not call.stream:
            body = shape.body(await _complete(call, req))
            await _store(call, shape)
            return body
        stream = await _open_stream(call, req)  # errors before the first byte are plain JSON errors
        await _relay(stream, shape, respond)
        return None


async def _responses_history(call: Call) -> None:
    """A Responses call's validated body and, for previous_response_id, the stored items it continues (the key's
    owner's only: another owner's id is answered as one that does not exist)."""
    v = validated(call.body)
    call.body = v
    previous = v.get("previous_response_id")
    if previous is None:
        return
    store = call.runtime.responses
    if store is None:
        raise InvalidRequest(
            "'previous_response_id' needs stored responses, which this gateway does not keep (its responses store "
            "is turned off)",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    try:
        found = await store.get(call.key.owner, previous)
    except Exception as e:
        log.error("responses store read failed: %s: %s", type(e).__name__, e)
        raise StoreUnavailable("stored responses cannot be read right now; retry later") from None
    if found is None:
        raise InvalidRequest(
            f"Previous response with id '{previous[:100]}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    call.history = found.history()


async def _store(call: Call, shape: StreamShape | TextShape | ResponsesShape) -> None:
    """Keep a finished Responses answer (store: true) for follow-ups and GET /v1/responses/{id}."""
    r = call.responses
    store = call.runtime.responses
    if r is None or not r.store or store is None or not isinstance(shape, ResponsesShape) or shape.final is None:
        return
    try:
        await store.put(call.key.owner, shape.final, r.input_items, call.history)
    except Exception as e:  # the answer stands; only the follow-up will not find it
        log.error("responses store write failed for %s: %s: %s", shape.response_id, type(e).__name__, e)


@contextlib.asynccontextmanager
async def _admitted(call: Call, stream: bool) -> AsyncIterator[None]:
    """The request's time inside the limits (429 with Retry-After when over): whatever way it ends (refused
    parameter, backend error, caller gone, success), its stream slots are given back. While inside, the request
    can be stopped at the end of the shutdown grace."""
    rt = call.runtime
    call.admission = await rt.limiter.admit(call.key, call.service, stream)
    task = asyncio.current_task()
    if task is not None:
        rt.requests.add(task)
    try:
        yield
    finally:
        call.images.release()
        if task is not None:
            rt.requests.discard(task)
        if call.admission.stream_keys:
            with contextlib.suppress(Exception):
                await asyncio.shield(rt.limiter.release(call.admission))


def _capabilities(call: Call) -> Capabilities | None:
    """What the model can honour, from a started instance (it has read the model's config), or None."""
    for inst in call.pool.instances:
        if inst.started and (caps := inst.backend.capabilities) is not None:
            return caps
    return None


def _prepare(call: Call) -> tuple[GenRequest, TextShape | ResponsesShape]:
    """(backend request, answer shape) for chat.completions, completions or responses."""
    m = call.model
    if call.endpoint == "completions":
        c = params.completion_params(call.body, m)
        call.stream = c.stream
        call.req = req = GenRequest(c.prompt, c.sampling, [], call.request_id, None, call.work)
        shape = TextShape(
            False,
            call.request_id,
            call.created,
            call.service.access_name,
            echo=c.prompt if c.echo else "",
            include_usage=c.include_usage,
            n=c.sampling.n,
        )
        return req, shape
    if call.endpoint == "responses":
        call.responses = r = responses_request(call.body, m, call.history, storing=call.runtime.responses is not None)
        p = r.chat
        response_shape = ResponsesShape("resp_" + call.request_id, call.created, call.service.access_name, r.settings)
        return _chat_request(call, p), response_shape
    p = params.chat_params(call.body, m)
    req = _chat_request(call, p)
    chat_shape = TextShape(
        True,
        call.request_id,
        call.created,
        call.service.access_name,
        include_usage=p.include_usage,
        n=p.sampling.n,
    )
    return req, chat_shape


def _chat_request(call: Call, p: params.ChatParams) -> GenRequest:
    """The engine request of a chat (or Responses) call: the prompt rendered with the model's template, tools and
    all, and how its output will be read."""
    m = call.model
    call.stream = p.stream
    sampling: Sampling = p.sampling
    if m.backend is Backend.openai:  # the upstream applies its own chat template and reads its own tool calls
        messages = list(p.raw_messages)
        call.req = req = GenRequest("", sampling, list(p.images), call.request_id, messages, call.work)
        req.forward = dict(p.forward or {})
        return req
    caps = _capabilities(call)
    template = m.chat_template or (caps.chat_template if caps else None)
    parser = tool_parser(call.service.model, m)
    tools = p.tools
    if tools.offered:
        if caps is None and m.chat_template is None:  # no instance has started: its template is not known yet
            raise BackendUnavailable("no instance of this service is ready yet; retry shortly")
        _check_tools(parser, template, caps)
    prompt = render_chat(
        p.messages,
        template,
        bos_token=caps.bos_token if caps else None,
        eos_token=caps.eos_token if caps else None,
        model=call.service.model if caps is not None else "",
        special_tokens=caps.special_tokens if caps else frozenset(),
        placeholder=params.IMAGE_PLACEHOLDER if m.task is Task.vision_chat else None,
        tools=[t.as_template_tool() for t in tools.tools] if tools.offered else None,
        id_map=mistral_id if parser is ToolParser.mistral else None,
    )
    call.reading = _reading(parser, tools, prompt)
    end_tokens = END_TOKENS[parser]
    if end_tokens and caps is not None and caps.eos_token in end_tokens:
        # NVIDIA's preprocessing model sends the tokenizer's eos_token as END_ID (tensorrtllm_backend
        # all_models/inflight_batcher_llm/preprocessing/1/model.py, tokenizer_end_id): the engine ends there itself
        end_tokens = tuple(t for t in end_tokens if t != caps.eos_token)
    call.req = req = GenRequest(prompt, sampling, list(p.images), call.request_id, None, call.work, end_tokens)
    return req


def _check_tools(parser: ToolParser, template: str | None, caps: Capabilities | None) -> None:
    if caps is not None and caps.parses_tools:
        return
    if parser is ToolParser.none:
        raise UnsupportedParameter(
            "'tools' are not supported by this model: no tool-call format is known for it (set tool_parser for "
            "the model in services.yaml: llama3_json, hermes or mistral)",
            param="tools",
        )
    if template is None or not takes_tools(template):
        raise UnsupportedParameter(
            "'tools' are not supported by this model: its chat template does not render tools, so the model "
            "would never see them",
            param="tools",
        )


def _reading(parser: ToolParser, tools: ToolUse, prompt: str) -> Reading | None:
    """How the answer is read: the tool-call format the request leads to (gateway/tooluse.py), and Qwen-style
    reasoning split off; None: the text is the answer as it is (the plain chat path)."""
    reasoning = parser is ToolParser.hermes
    fmt = {"family": parser.value, "array": "array", "named": "named"}.get(tools.reading, "text")
    if fmt == "text" and not reasoning:
        return None
    return Reading(
        fmt,
        tools=tools.names if tools.offered else None,
        new_id=mistral_call_id if parser is ToolParser.mistral else openai_call_id,
        reasoning=reasoning,
        in_reasoning=reasoning and prompt.rstrip().endswith("<think>"),
        forced=tools.forced,
        max_calls=None if tools.parallel else 1,
        strict={t.name: t.parameters for t in tools.tools if t.strict} if tools.reading == "family" else {},
    )


def _check(call: Call, req: GenRequest) -> None:
    """Refuse parameters the model cannot honour before anything is sent (any started instance knows the config)."""
    for inst in call.pool.instances:
        if inst.started:
            inst.backend.check(req)
            return


async def _on_instance(call: Call, attempt: Callable[[Instance], Awaitable[Any]]) -> Any:
    """pool.run for a one-answer request, metering every way it can end but success (the caller records that)."""
    t = time.perf_counter()
    try:
        return await call.pool.run(attempt, retryable=_retryable_unary)
    except GatewayError as e:
        call.failed(e)
        raise
    except asyncio.CancelledError:
        if (err := call.interrupted()) is None:
            raise
        raise err from None
    finally:
        call.backend_s += time.perf_counter() - t


async def _complete(call: Call, req: GenRequest) -> GenResult:
    """Non-streaming chat.completions / completions (the parameters were checked before admission)."""

    async def attempt(inst: Instance) -> GenResult:
        call.instance = inst.endpoint
        return await inst.backend.generate(req)

    result: GenResult = await _on_instance(call, attempt)
    if call.reading is not None:
        try:
            result = call.reading.whole(result)
        except GatewayError as e:
            call.failed(e)
            raise
    call.record("ok")
    return result


# -- streaming ---------------------------------------------------------------------------------------------------------
@dataclass
class _Stream:
    call: Call
    instance: Instance
    first: Delta | GenResult
    rest: AsyncGenerator[Delta | GenResult, None]
    status: str = "cancelled"  # until the stream ends one way or another
    error: str = ""
    closed: bool = False


async def _open_stream(call: Call, req: GenRequest) -> _Stream:
    """Start the backend stream and wait for its first piece, so that a failure before any byte reached the caller
    can still be retried elsewhere or answered with a plain JSON error (the parameters were checked before
    admission)."""

    async def first_piece(
        inst: Instance,
    ) -> tuple[Instance, Delta | GenResult, AsyncGenerator[Delta | GenResult, None]]:
        gen = inst.backend.stream(req)
        try:
            first = await gen.__anext__()
        except BaseException as e:
            with contextlib.suppress(Exception):
                await gen.aclose()
            if isinstance(e, StopAsyncIteration):
                raise BackendError("the engine closed the stream without output") from None
            raise
        call.instance = inst.endpoint
        return inst, first, gen

    t = time.perf_counter()
    try:
        inst, first, gen = await call.pool.run(first_piece, retryable=_retryable, hold=True)
    except GatewayError as e:
        call.failed(e)
        raise
    except asyncio.CancelledError:  # the caller left (or shutdown) before the first token: the prompt was sent
        if (err := call.interrupted()) is None:
            raise
        raise err from None
    finally:
        call.backend_s += time.perf_counter() - t
    return _Stream(call, inst, first, gen)


async def _relay(s: _Stream, shape: StreamShape, respond: Respond) -> None:
    """Send the stream to the caller (`respond()` starts the HTTP response). Whatever happens — caller gone,
    backend error, shutdown grace over — the backend stream is closed and the request metered once; a stream the
    gateway itself has to stop ends with an error event, never a silent truncation."""
    response = None
    try:
        response = await respond()
        ended = False
        async with contextlib.aclosing(_events(s, shape)) as events:
            async for event in events:
                # _events ends its status before its last event: that one closes the chunked body in its write
                ended = s.status != "cancelled"
                await response.send(event, end_stream=ended)
        if not ended:
            await response.eof()
    except asyncio.CancelledError:
        # before the response started there is nothing to end properly: the cancellation goes on, _close meters
        if response is None or (err := s.call.interrupted()) is None:
            raise
        s.status, s.error = "error", err.code or ""
        with contextlib.suppress(Exception):
            await response.send(shape.error(err))
            await response.eof()
    finally:
        _close(s)


def _close(s: _Stream) -> None:
    """Free the instance, meter the request and cancel the backend stream (the GPU stops for nobody)."""
    if s.closed:
        return
    s.closed = True
    s.instance.outstanding -= 1
    s.call.record(s.status, s.error)
    task = asyncio.ensure_future(s.rest.aclose())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def _events(s: _Stream, shape: StreamShape) -> AsyncGenerator[bytes, None]:
    """The stream's bytes, what is ready together in one item (one write): the head with the first delta, the
    pieces of one upstream read (`Delta.more`: never waiting for a piece that has not come), the end with [DONE].
    Errors after the first byte become the shape's error event (the status is already sent); `s.status` says how
    it ended, and leaves "cancelled" only just before the last item."""
    call = s.call
    reader = call.reading.stream() if call.reading is not None else None
    ready: list[bytes] = []
    try:
        if head := shape.head():
            ready.append(head)
        item = s.first
        while not isinstance(item, GenResult):
            if reader is not None:
                for piece in reader.feed(item):
                    ready.append(shape.delta(piece))
            elif item.text or item.tool_calls or item.reasoning:
                ready.append(shape.delta(item))
            if ready and not item.more:
                yield b"".join(ready)
                ready.clear()
            t = time.perf_counter()
            try:
                item = await s.rest.__anext__()
            except StopAsyncIteration:
                raise BackendError("the engine closed the stream before it finished") from None
            finally:
                call.backend_s += time.perf_counter() - t
        if reader is not None:
            rest, item = reader.finish(item)
            for piece in rest:
                ready.append(shape.delta(piece))
        end = b"".join((*ready, shape.end(item), shape.done()))
        s.status = "ok"
        call.record(s.status)  # before the caller can see the end: an answered stream is always billed
        await _store(call, shape)  # before the caller can see the end: a follow-up finds it
        yield end
    except Exception as e:
        err = e if isinstance(e, GatewayError) else GatewayError("internal error")
        if err is not e:
            log.exception("stream %s (%s) broke", call.request_id, call.service.access_name)
        s.status, s.error = "error", err.code or type(err).__name__
        log.warning(
            "stream %s (%s) on %s failed after output: %s",
            call.request_id,
            call.service.access_name,
            call.instance,
            err.message,
        )
        if isinstance(err, (BackendUnavailable, BackendTimeout)) or _partial(err):
            call.pool.failed(s.instance)
        call.record(s.status, s.error)
        yield b"".join(ready) + shape.error(err)


# -- images ------------------------------------------------------------------------------------------------------------
async def _images(call: Call) -> dict[str, Any]:
    p = params.image_params(call.body, call.model)
    req = ImageRequest(p.prompt, p.n, p.negative_prompt, call.request_id, call.work)

    async def attempt(inst: Instance) -> list[bytes]:
        call.instance = inst.endpoint
        caps = inst.backend.capabilities
        size = caps.image_size if caps is not None else None
        if p.size not in (None, "auto") and size and p.size != f"{size[0]}x{size[1]}":
            raise InvalidRequest(
                f"'size' must be {size[0]}x{size[1]}, the size this model is deployed with",
                param="size",
                code="invalid_value",
            )
        return await inst.backend.generate_images(req)

    pngs = await _on_instance(call, attempt)
    call.record("ok")
    return images_body(call.created, pngs)
