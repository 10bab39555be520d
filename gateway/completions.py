"""The request flow as plain async functions (the HTTP handlers stay thin over these):
validated body → service the key may use → instance → backend → OpenAI-shaped result → usage record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from modelsvc.catalog import Backend, Key, Model, Service

from . import image_fetch
from . import params as P
from .auth import authorize
from .backends.base import Delta, GenRequest, GenResult, ImageRequest, Sampling, Work
from .balancer import Instance, InstancePool
from .errors import BackendError, BackendTimeout, BackendUnavailable, GatewayError, InvalidRequest, ShuttingDown
from .limits import Admission
from .prompt import render_chat
from .runtime import Runtime
from .usage import UsageRecord

log = logging.getLogger("gateway.completions")


def _retryable(e: BaseException) -> bool:
    """Failures that say nothing reached the caller and the instance itself is at fault."""
    return isinstance(e, (BackendUnavailable, BackendTimeout)) and not getattr(e, "partial", False)


def _retryable_unary(e: BaseException) -> bool:
    """For a non-streaming request the caller has seen nothing yet, so an engine that died mid-generation
    (partial output, then the connection dropped) is retried elsewhere too. Errors before any output that are
    not about reachability (a refused input) are the request's fault: not retried."""
    return _retryable(e) or (isinstance(e, BackendError) and getattr(e, "partial", False))


@dataclass
class Call:
    """One request's bookkeeping, from authentication to its one usage record."""

    runtime: Runtime
    key: Key
    service: Service
    model: Model
    pool: InstancePool
    endpoint: str
    stream: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    t0: float = field(default_factory=time.perf_counter)
    created: int = field(default_factory=lambda: int(time.time()))
    backend_s: float = 0.0
    instance: str = ""
    admission: Admission = field(default_factory=Admission)
    echo: str = ""  # completions with echo: the prompt, put before the answer
    work: Work = field(default_factory=Work)  # what the engine did so far (backends update it)
    req: GenRequest | None = None
    recorded: bool = False

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
        # No instance could be reached: nothing was sent, nothing to meter but the attempt.
        reached = not (isinstance(e, BackendUnavailable) and not getattr(e, "partial", False))
        self.record("error", error=e.code or type(e).__name__, reached=reached)

    def interrupted(self) -> GatewayError | None:
        """The request's task was cancelled: the caller went away (None: re-raise the cancellation), or the shutdown
        grace ended (the error to answer instead; the cancellation is withdrawn)."""
        if not self.runtime.cutting:
            self.record("cancelled")
            return None
        asyncio.current_task().uncancel()
        err = ShuttingDown("the gateway is shutting down and stopped this request; retry it")
        self.record("error", error=err.code)
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
            prompt, estimated = (self.req.estimated_prompt_tokens(), True) if reached else (0, False)
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


def begin(rt: Runtime, key: Key, body, endpoint: str) -> Call:
    name = P.model_name(body)
    service = authorize(key, rt.catalog.service(name), name)
    return Call(rt, key, service, rt.catalog.model_of(service), rt.pools[service.access_name], endpoint)


@contextlib.asynccontextmanager
async def admitted(call: Call, stream: bool):
    """The request's time inside the limits (429 with Retry-After when over): whatever way it ends (refused
    parameter, backend error, caller gone, success), its stream slots are given back. While inside, the request
    can be stopped at the end of the shutdown grace."""
    rt = call.runtime
    call.admission = await rt.limiter.admit(call.key, call.service, stream)
    task = asyncio.current_task()
    rt.requests.add(task)
    try:
        yield
    finally:
        rt.requests.discard(task)
        if call.admission.stream_keys:
            with contextlib.suppress(Exception):
                await asyncio.shield(rt.limiter.release(call.admission))


def _gen_request(call: Call, prompt: str, s: Sampling, images=(), messages=None) -> GenRequest:
    call.req = GenRequest(prompt, s, list(images), call.request_id, messages, call.work)
    return call.req


def prepare(call: Call, body: dict) -> tuple[GenRequest, bool, bool]:
    """(backend request, stream, include_usage) for chat.completions or completions."""
    if call.endpoint == "chat.completions":
        p = P.chat_params(body, call.model)
        if call.model.backend is Backend.openai:  # the upstream applies its own chat template
            return _gen_request(call, "", p.sampling, p.images, list(p.raw_messages)), p.stream, p.include_usage
        served = _served(call)
        prompt = render_chat(
            p.messages,
            call.model.chat_template or getattr(served, "chat_template", None),
            bos_token=getattr(served, "bos_token", None),
            eos_token=getattr(served, "eos_token", None),
            model=call.service.model if served is not None else "",
        )
        return _gen_request(call, prompt, p.sampling, p.images), p.stream, p.include_usage
    p = P.completion_params(body, call.model)
    call.echo = p.prompt if p.echo else ""
    return _gen_request(call, p.prompt, p.sampling), p.stream, p.include_usage


def _served(call: Call):
    """The backend of a started instance (it has read the model's config), or None."""
    return next((inst.backend for inst in call.pool.instances if inst.started), None)


async def inline_images(call: Call, req: GenRequest) -> None:
    """Triton engines get image bytes, never a URL to fetch (gateway/image_fetch.py); openai upstreams get the
    caller's messages as they are."""
    if req.image_urls and call.model.backend is Backend.triton:
        req.image_urls = await image_fetch.inline_images(req.image_urls, call.runtime.settings.images)


def _check(call: Call, req: GenRequest) -> None:
    """Refuse parameters the model cannot honour before anything is sent (any healthy instance knows the config)."""
    backend = _served(call)
    if backend is not None:
        backend.check(req)


def _usage(r: GenResult) -> dict:
    return {
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
    }


def _logprobs(chat: bool, tokens: list[tuple[str, float]] | None, offset: int = 0) -> dict | None:
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


def _response_body(call: Call, r: GenResult) -> dict:
    if call.endpoint == "chat.completions":
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": r.text, "refusal": None},
            "logprobs": _logprobs(True, r.logprobs),
            "finish_reason": r.finish_reason,
        }
        obj, prefix = "chat.completion", "chatcmpl-"
    else:
        choice = {
            "index": 0,
            "text": call.echo + r.text,
            "logprobs": _logprobs(False, r.logprobs, len(call.echo)),
            "finish_reason": r.finish_reason,
        }
        obj, prefix = "text_completion", "cmpl-"
    return {
        "id": prefix + call.request_id,
        "object": obj,
        "created": call.created,
        "model": call.service.access_name,
        "choices": [choice],
        "usage": _usage(r),
        "system_fingerprint": None,
    }


async def _on_instance(call: Call, run, *, record_invalid: bool = True):
    """pool.run for a one-answer request, metering every way it can end but success (the caller records that)."""
    t = time.perf_counter()
    try:
        return await call.pool.run(run, retryable=_retryable_unary)
    except GatewayError as e:
        if record_invalid or not isinstance(e, InvalidRequest):
            call.failed(e)
        raise
    except asyncio.CancelledError:
        if (err := call.interrupted()) is None:
            raise
        raise err from None
    finally:
        call.backend_s += time.perf_counter() - t


async def complete(call: Call, req: GenRequest) -> dict:
    """Non-streaming chat.completions / completions."""
    _check(call, req)

    async def run(inst: Instance):
        call.instance = inst.endpoint
        return await inst.backend.generate(req)

    result: GenResult = await _on_instance(call, run)
    call.record("ok")
    return _response_body(call, result)


# -- streaming ----------------------------------------------------------------------------------------------------------
@dataclass
class Stream:
    call: Call
    instance: Instance
    first: Delta | GenResult
    rest: AsyncIterator
    include_usage: bool
    status: str = "cancelled"  # until the stream ends one way or another
    error: str = ""
    closed: bool = False


async def open_stream(call: Call, req: GenRequest, include_usage: bool) -> Stream:
    """Start the backend stream and wait for its first piece, so that a failure before any byte reached the caller
    can still be retried elsewhere or answered with a plain JSON error."""
    call.stream = True
    _check(call, req)

    async def first_piece(inst: Instance):
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
    return Stream(call, inst, first, gen, include_usage)


async def relay(s: Stream, respond) -> None:
    """Send the stream to the caller (`respond()` starts the HTTP response). Whatever happens — caller gone,
    backend error, shutdown grace over — the backend stream is closed and the request metered once; a stream the
    gateway itself has to stop ends with an error event and [DONE], never a silent truncation."""
    response = None
    try:
        response = await respond()
        async with contextlib.aclosing(sse_events(s)) as events:
            async for event in events:
                await response.send(event)
        await response.eof()
    except asyncio.CancelledError:
        # before the response started there is nothing to end properly: the cancellation goes on, close_stream meters
        if response is None or (err := s.call.interrupted()) is None:
            raise
        s.status, s.error = "error", err.code
        with contextlib.suppress(Exception):
            await response.send(_sse(err.body()) + b"data: [DONE]\n\n")
            await response.eof()
    finally:
        close_stream(s)


def close_stream(s: Stream) -> None:
    """Free the instance, meter the request and cancel the backend stream (the GPU stops for nobody)."""
    if s.closed:
        return
    s.closed = True
    s.instance.outstanding -= 1
    s.call.record(s.status, s.error)
    task = asyncio.ensure_future(s.rest.aclose())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _sse(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def sse_events(s: Stream) -> AsyncIterator[bytes]:
    """The OpenAI SSE stream. Errors after the first byte become an error event and [DONE] (the status is
    already sent); `s.status` says how it ended."""
    call = s.call
    chat = call.endpoint == "chat.completions"
    base = {
        "id": ("chatcmpl-" if chat else "cmpl-") + call.request_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": call.created,
        "model": call.service.access_name,
    }
    if chat:
        base["system_fingerprint"] = None

    offset = len(call.echo)

    def chunk(text: str | None, finish: str | None = None, tokens=None) -> dict:
        if chat:
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": _logprobs(True, tokens), "finish_reason": finish}
        else:
            choice = {
                "index": 0,
                "text": text or "",
                "logprobs": _logprobs(False, tokens, offset),
                "finish_reason": finish,
            }
        out = {**base, "choices": [choice]}
        if s.include_usage:
            out["usage"] = None
        return out

    try:
        if chat:
            first = chunk("")
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield _sse(first)
        elif call.echo:
            yield _sse(chunk(call.echo))
        item = s.first
        while True:
            if isinstance(item, GenResult):
                result = item
                break
            if item.text:
                yield _sse(chunk(item.text, tokens=item.logprobs))
                offset += len(item.text)
            t = time.perf_counter()
            try:
                item = await s.rest.__anext__()
            except StopAsyncIteration:
                raise BackendError("the engine closed the stream before it finished") from None
            finally:
                call.backend_s += time.perf_counter() - t
        yield _sse(chunk(None, result.finish_reason))
        if s.include_usage:
            yield _sse({**base, "choices": [], "usage": _usage(result)})
        s.status = "ok"
        call.record(s.status)  # before the caller can see the end: an answered stream is always billed
        yield b"data: [DONE]\n\n"
    except Exception as e:
        if not isinstance(e, GatewayError):
            log.exception("stream %s (%s) broke", call.request_id, call.service.access_name)
            e = GatewayError("internal error")
        s.status, s.error = "error", e.code or type(e).__name__
        log.warning(
            "stream %s (%s) on %s failed after output: %s",
            call.request_id,
            call.service.access_name,
            call.instance,
            e.message,
        )
        if isinstance(e, (BackendUnavailable, BackendTimeout)) or getattr(e, "partial", False):
            call.pool.failed(s.instance)
        call.record(s.status, s.error)
        yield _sse(e.body())
        yield b"data: [DONE]\n\n"


# -- images -------------------------------------------------------------------------------------------------------------
async def generate_images(call: Call, body: dict) -> dict:
    p = P.image_params(body, call.model)

    async def run(inst: Instance):
        call.instance = inst.endpoint
        backend = inst.backend
        size = getattr(backend, "image_size", None)
        if p.size not in (None, "auto") and size and p.size != f"{size[0]}x{size[1]}":
            raise InvalidRequest(
                f"'size' must be {size[0]}x{size[1]}, the size this model is deployed with",
                param="size",
                code="invalid_value",
            )
        return await backend.generate_images(ImageRequest(p.prompt, p.n, p.negative_prompt, call.request_id, call.work))

    pngs = await _on_instance(call, run, record_invalid=False)
    call.record("ok")
    return {"created": call.created, "data": [{"b64_json": base64.b64encode(png).decode()} for png in pngs]}
