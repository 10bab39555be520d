"""An in-process engine for fast tests: implements the gateway's engine contract (gateway/backends/base.py) with no
process, socket or gRPC, so the gateway's own behaviour (validation, errors, auth, limits, metering, shapes) can be
tested in milliseconds with `create_app(..., backends=fake_backends())`.

It is NOT the stand-in: the stand-in (devtools/standin) speaks the real Triton protocol on the real model configs;
this one only honours the contract. Its text is deterministic: " w1 w2 ..." up to `natural_tokens` (a natural end)
or max_tokens; it goes through the same assembly as Triton's answers (stop strings cut, counts, finish_reason).
Markers in the prompt steer it, like the stand-in's: ``[fake:refuse]`` (unreachable: BackendUnavailable),
``[fake:error]`` (the engine refuses: BackendError), ``[fake:die:N]`` (fails after N tokens, partial),
``[fake:pairs]`` (streamed tokens handed over two at a time, ``Delta.more`` on the first: one upstream read each).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable

import numpy as np

from gateway.backends.assemble import Assembly
from gateway.backends.base import SAMPLING_PARAMS, Backend, Capabilities, Delta, GenRequest, GenResult, ImageRequest
from gateway.backends.images import encode_png
from gateway.errors import BackendError, BackendUnavailable, InvalidRequest, UnsupportedParameter
from modelsvc.catalog import Model, Task

TEXT = Capabilities(
    decoupled=True,
    sampling=frozenset(SAMPLING_PARAMS),
    extensions=frozenset({"top_k", "min_tokens", "ignore_eos"}),
    logprobs=True,
)
IMAGES = Capabilities(generates="images", image_size=(8, 8), negative_prompt=True)
VISION = Capabilities(decoupled=True, vision=True, max_images=1, sampling=frozenset(SAMPLING_PARAMS))
_DIE = re.compile(r"\[fake:die:(\d+)\]")


def _fail(cls: type[BackendError], message: str, partial: bool = False) -> BackendError:
    err = cls(message)
    err.partial = partial
    return err


class FakeBackend:
    def __init__(self, endpoint: str, capabilities: Capabilities = TEXT, *, natural_tokens: int = 20) -> None:
        self.endpoint = endpoint
        self._caps = capabilities
        self.natural_tokens = natural_tokens
        self.started = False
        self.outstanding = 0
        self.requests: list[GenRequest | ImageRequest] = []  # what reached this engine, in order
        self.gate: asyncio.Event | None = None  # when set: every generation waits for it (a busy engine)

    @property
    def capabilities(self) -> Capabilities | None:
        return self._caps if self.started else None

    async def start(self) -> None:
        self.started = True

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self.started = False

    def check(self, req: GenRequest) -> None:
        caps = self._caps
        for name in SAMPLING_PARAMS:
            if getattr(req.sampling, name) is not None and name not in caps.sampling:
                raise UnsupportedParameter(f"this model does not support '{name}'", param=name)
        for name in req.sampling.extensions:
            if caps.extensions is not None and name not in caps.extensions:
                raise UnsupportedParameter(f"this model does not support '{name}'", param=name)
        if req.sampling.logprobs and not caps.logprobs:
            raise UnsupportedParameter("this model does not return log probabilities", param="logprobs")
        guide = req.sampling.guide
        if guide is not None and not caps.guided_decoding:
            raise UnsupportedParameter(f"'{guide.param}' needs guided decoding", param=guide.param)
        if req.sampling.n > 1 and not caps.n:
            raise UnsupportedParameter("n > 1 is not supported by this model", param="n")
        if req.image_urls and not caps.vision:
            raise UnsupportedParameter("this model does not accept images", param="messages")
        if caps.max_images is not None and len(req.image_urls) > caps.max_images:
            raise InvalidRequest(f"this model takes at most {caps.max_images} image(s) per request", param="messages")

    def _tokens(self, req: GenRequest) -> list[str]:
        if "[fake:refuse]" in req.prompt:
            raise _fail(BackendUnavailable, f"{self.endpoint}: connection refused")
        if "[fake:error]" in req.prompt:
            raise _fail(BackendError, f"{self.endpoint}: engine error: refused")
        n = req.sampling.max_tokens if "ignore_eos" in req.sampling.extensions else self.natural_tokens
        return [f" w{i + 1}" for i in range(min(n, req.sampling.max_tokens))]

    def _die_after(self, req: GenRequest) -> int | None:
        m = _DIE.search(req.prompt)
        return int(m[1]) if m else None

    async def generate(self, req: GenRequest) -> GenResult:
        self.requests.append(req)
        self.check(req)
        if self.gate is not None:
            await self.gate.wait()
        tokens = self._tokens(req)
        die = self._die_after(req)
        if die is not None:
            req.work.completion_tokens = die
            raise _fail(BackendError, f"{self.endpoint}: the engine died", partial=True)
        assembly = Assembly(req, stream=False)
        assembly.add("".join(tokens), len(req.prompt.split()), len(tokens))
        return assembly.result()

    async def stream(self, req: GenRequest) -> AsyncGenerator[Delta | GenResult, None]:
        self.requests.append(req)
        self.check(req)
        tokens = self._tokens(req)
        die = self._die_after(req)
        pairs = "[fake:pairs]" in req.prompt
        assembly = Assembly(req)
        self.outstanding += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            for i, token in enumerate(tokens):
                if die is not None and i == die:
                    raise _fail(BackendError, f"{self.endpoint}: the engine died", partial=i > 0)
                n_in = len(req.prompt.split()) if i == 0 else None
                delta = assembly.add(token, n_in, 1, [-0.5] if req.sampling.logprobs else ())
                if delta is not None:
                    delta.more = pairs and i % 2 == 0 and i + 1 < len(tokens)
                    yield delta
                if assembly.stopped:
                    break
            if (delta := assembly.end()) is not None:
                yield delta
        finally:
            self.outstanding -= 1
        yield assembly.result(count_responses=True)

    async def generate_images(self, req: ImageRequest) -> list[bytes]:
        self.requests.append(req)
        w, h = self._caps.image_size or (8, 8)
        pixel = np.zeros((h, w, 3), dtype=np.uint8)
        req.work.images = req.n
        return [encode_png(pixel) for _ in range(req.n)]


def fake_backends(
    made: dict[str, FakeBackend] | None = None,
    capabilities: dict[Task, Capabilities] | None = None,
) -> Callable[[Model], Callable[[str], Backend]]:
    """`create_app(..., backends=...)`: a FakeBackend per endpoint with the model's task's capabilities (or those
    given per task); `made` collects them by endpoint (to look at the requests they received)."""
    by_task = {Task.image_generation: IMAGES, Task.vision_chat: VISION, **(capabilities or {})}

    def for_model(model: Model) -> Callable[[str], Backend]:
        caps = by_task.get(model.task, TEXT)

        def make(endpoint: str) -> Backend:
            backend = FakeBackend(endpoint, caps)
            if made is not None:
                made[endpoint] = backend
            return backend

        return make

    return for_model
