"""StandInServer: a stand-in for Triton + TensorRT-LLM speaking the real Triton gRPC protocol (grpc.aio).

It uses the servicer and protobufs that ``tritonclient`` ships, so the real ``tritonclient.grpc`` clients (sync and
aio) work against it unchanged. See ``engine.py`` for the text generation rule and ``models.py`` for the models.

Behaviour reproduced from Triton / TensorRT-LLM:

* every tensor is batched ([1,1] for dims [1], [1,N] for dims [-1]); outputs go in ``raw_output_contents``;
* unary ``ModelInfer`` on a decoupled model fails with UNIMPLEMENTED;
* ``ModelStreamInfer``: one response per token when the request sets ``stream=True`` (decoupled models only, else an
  in-stream error like TensorRT-LLM's); one response otherwise. Every streamed response carries the
  ``triton_final_response`` parameter; the server closes the stream once the client half-closed and all its requests
  are done. ``triton_enable_empty_final_response=True`` (request parameter) adds an empty final response;
* without ``exclude_input_in_output=True`` the prompt is echoed at the start of a non-streamed ``text_output``
  (streamed responses carry only new tokens, as TensorRT-LLM's do);
* ``num_input_tokens`` / ``num_output_tokens`` only when ``return_num_*_tokens=True``; in streaming
  ``num_output_tokens`` is per response (1), ``num_input_tokens`` is repeated in every response;
* a matched stop string stays in the output; generation ends at ``max_tokens`` or the natural length;
* request errors (unknown input, missing input, wrong type/shape) are INVALID_ARGUMENT with Triton's wording, unknown
  models NOT_FOUND; in a stream they arrive as the response's ``error_message``, as Triton sends them;
* guided decoding: the guide inputs are refused where the config does not declare them (as any undeclared input),
  and fail like TensorRT-LLM's executor where the engine has no guided decoder; a guide type the backend does not
  know is ignored (as both of NVIDIA's backends do); the answer satisfies the guide and tools offered in the prompt
  are called in the family's format (agents.py);
* ``num_return_sequences`` > 1 (decoupled models): that many sequences, each response carrying its
  ``sequence_index`` and its own counts; streamed token by token, interleaved.

``received``: the decoded inputs of the latest requests (name → list of values; BYTES as text), so tests can see
what the gateway sent (the inner schema, the stop words).

Failure injection (``server.mode``, or per request by a marker in the prompt such as ``[standin:hang]``):

* ``refuse``: every inference fails with UNAVAILABLE (a gRPC status, in streams too);
* ``hang``: never answers (until the client cancels or its deadline passes);
* ``die``: after ``die_after`` responses (marker ``[standin:die:K]`` for K) the RPC fails with INTERNAL;
* ``not_ready`` (server mode only): ServerReady / ModelReady answer false, inference fails with UNAVAILABLE.

Counters: ``requests_started``, ``requests_completed``, ``requests_cancelled`` (the client went away or its deadline
passed mid-request: generation stops at once and the event is logged), ``requests_failed``, ``tokens_generated``.

A prompt longer than ``max_input_len`` tokens (the engine's build limit; None by default: no limit) is refused with
TensorRT-LLM's message, as the request's error (INVALID_ARGUMENT; in a stream, the error message).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import struct
from collections import deque
from collections.abc import Awaitable, Callable

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from . import agents, engine
from .models import ModelDef, build_models

log = logging.getLogger("devtools.standin")

MODES = (None, "refuse", "hang", "die", "not_ready")
MARKER_RE = re.compile(r"\[standin:(refuse|hang|die)(?::(\d+))?\]")
SERVER_NAME = "triton-standin"
SERVER_VERSION = "0.1.0-standin"
MAX_MSG = 2**31 - 1

_NP = {
    "INT32": "<i4",
    "INT64": "<i8",
    "FP32": "<f4",
    "UINT64": "<u8",
    "UINT8": "u1",
    "BOOL": "?",
}
# bytes per element of outputs the stand-in fills with zeros (declared outputs it does not compute)
_ITEMSIZE = {
    "BOOL": 1,
    "UINT8": 1,
    "INT8": 1,
    "FP16": 2,
    "BF16": 2,
    "INT16": 2,
    "INT32": 4,
    "FP32": 4,
    "UINT32": 4,
    "INT64": 8,
    "UINT64": 8,
    "FP64": 8,
}


class StandInError(Exception):
    """An inference error. in_stream: in ModelStreamInfer it is sent as the response's error_message (request
    errors, as Triton does) rather than failing the whole RPC with a status (engine failures)."""

    def __init__(self, code: grpc.StatusCode, message: str, *, in_stream: bool = True):
        super().__init__(message)
        self.code = code
        self.message = message
        self.in_stream = in_stream


# -- tensor codec ------------------------------------------------------------------------------------------------------
def encode_bytes(items) -> bytes:
    out = bytearray()
    for it in items:
        b = it if isinstance(it, bytes) else str(it).encode()
        out += struct.pack("<I", len(b)) + b
    return bytes(out)


def decode_bytes(raw: bytes) -> list[bytes]:
    items, off = [], 0
    while off < len(raw):
        if off + 4 > len(raw):
            raise ValueError("truncated BYTES tensor")
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        if off + n > len(raw):
            raise ValueError("truncated BYTES tensor")
        items.append(bytes(raw[off : off + n]))
        off += n
    return items


def _from_contents(datatype: str, c) -> np.ndarray:
    if datatype == "BYTES":
        return np.array(list(c.bytes_contents), dtype=object)
    field = {
        "INT32": c.int_contents,
        "INT64": c.int64_contents,
        "FP32": c.fp32_contents,
        "UINT64": c.uint64_contents,
        "UINT8": c.uint_contents,
        "BOOL": c.bool_contents,
    }[datatype]
    return np.array(list(field), dtype=_NP[datatype])


def _rid(req) -> str:
    return req.id or "<id_unknown>"


def _fmt_shape(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def decode_inputs(model: ModelDef, req: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    rid = _rid(req)
    use_raw = len(req.raw_input_contents) > 0
    if use_raw and len(req.raw_input_contents) != len(req.inputs):
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] expected {len(req.inputs)} raw input contents, got {len(req.raw_input_contents)}",
        )
    got: dict[str, np.ndarray] = {}
    for i, t in enumerate(req.inputs):
        spec = model.input(t.name)
        if spec is None:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] unexpected inference input '{t.name}' for model '{model.name}'",
            )
        if t.name in got:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] input '{t.name}' is specified more than once"
            )
        if t.datatype != spec.wire_type:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] inference input '{t.name}' data-type is '{t.datatype}', but model "
                f"'{model.name}' expects '{spec.wire_type}'",
            )
        shape = list(t.shape)
        ok = len(shape) == len(spec.dims) + 1 and 1 <= shape[0] <= max(model.max_batch_size, 1)
        ok = ok and all(d == e or (e == -1 and d >= 0) for d, e in zip(shape[1:], spec.dims))
        if not ok:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] unexpected shape for input '{t.name}' for model '{model.name}'. "
                f"Expected {_fmt_shape([-1, *spec.dims])}, got {_fmt_shape(shape)}",
            )
        if shape[0] != 1:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] the stand-in engine only supports batch size 1, got {shape[0]} for '{t.name}'",
            )
        try:
            if use_raw:
                raw = req.raw_input_contents[i]
                if t.datatype == "BYTES":
                    arr = np.array(decode_bytes(raw), dtype=object)
                else:
                    arr = np.frombuffer(raw, dtype=_NP[t.datatype])
            else:
                arr = _from_contents(t.datatype, t.contents)
            arr = arr.reshape(shape)
        except (ValueError, KeyError) as e:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] input '{t.name}' data does not match its shape {_fmt_shape(shape)}: {e}",
            ) from None
        got[t.name] = arr
    missing = [s.name for s in model.inputs if not s.optional and s.name not in got]
    if missing:
        required = [s.name for s in model.inputs if not s.optional]
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] expected {len(required)} inputs but got {len(got)} inputs for model "
            f"'{model.name}'. Got input(s) {sorted(got)}, but missing required input(s) {missing}. "
            "Please provide all required input(s).",
        )
    for o in req.outputs:
        if model.output(o.name) is None:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] unexpected inference output '{o.name}' for model '{model.name}'",
            )
    return got


def _scalar(inputs: dict, name: str, default=None):
    a = inputs.get(name)
    if a is None or a.size == 0:
        return default
    return a.reshape(-1)[0]


def _text(v: bytes, what: str, rid: str) -> str:
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise StandInError(grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] {what} is not valid UTF-8") from None


def _fillers(model: ModelDef, produced: set[str]) -> list[tuple[str, str, list[int], bytes]]:
    """Zeros for the declared outputs the stand-in does not compute (log probs, logits, timings, ...), one element
    per variable dimension. The token counts are only sent when asked for, as TensorRT-LLM does."""
    out = []
    for t in model.outputs:
        if t.name in produced or t.name in ("num_input_tokens", "num_output_tokens"):
            continue
        shape = [1, *(d if d > 0 else 1 for d in t.dims)]
        n = 1
        for d in shape:
            n *= d
        raw = b"\0\0\0\0" * n if t.wire_type == "BYTES" else bytes(n * _ITEMSIZE.get(t.wire_type, 4))
        out.append((t.name, t.wire_type, shape, raw))
    return out


Sink = Callable[[pb.ModelInferResponse], Awaitable[None]]


# -- the servicer ------------------------------------------------------------------------------------------------------
class _Servicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, owner: StandInServer):
        self.s = owner

    # health and metadata
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.s.mode != "not_ready")

    async def ModelReady(self, request, context):
        ok = request.name in self.s.models and request.version in ("", "1") and self.s.mode != "not_ready"
        return pb.ModelReadyResponse(ready=ok)

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(
            name=SERVER_NAME,
            version=SERVER_VERSION,
            extensions=["classification", "sequence", "model_configuration", "binary_tensor_data", "parameters"],
        )

    async def _model_or_abort(self, name: str, version: str, context) -> ModelDef:
        model = self.s.models.get(name)
        if model is not None and version in ("", "1"):
            return model
        v = f" version {version}" if version else ""
        await context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}'{v} is not found")
        raise AssertionError("unreachable: grpc.aio's abort() raises")

    async def ModelMetadata(self, request, context):
        model = await self._model_or_abort(request.name, request.version, context)
        resp = pb.ModelMetadataResponse(name=model.name, versions=["1"], platform=model.platform)
        for t in model.inputs:
            resp.inputs.append(
                pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.wire_type, shape=[-1, *t.dims])
            )
        for t in model.outputs:
            resp.outputs.append(
                pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype=t.wire_type, shape=[-1, *t.dims])
            )
        return resp

    async def ModelConfig(self, request, context):
        model = await self._model_or_abort(request.name, request.version, context)
        return pb.ModelConfigResponse(config=model.config())

    # inference
    async def ModelInfer(self, request, context):
        model = self.s.models.get(request.model_name)
        if model is not None and model.cfg.model_transaction_policy.decoupled:
            # Triton refuses unary inference on decoupled models before looking at the request.
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "ModelInfer RPC doesn't support models with decoupled transaction policy",
            )
        responses: list[pb.ModelInferResponse] = []

        async def sink(r):
            responses.append(r)

        try:
            await self.s._run(request, sink, streaming_rpc=False)
        except StandInError as e:
            await context.abort(e.code, e.message)
        return responses[-1]

    async def ModelStreamInfer(self, request_iterator, context):
        queue: asyncio.Queue = asyncio.Queue()
        end = object()
        tasks: set[asyncio.Task] = set()

        async def one(req):
            async def sink(r):
                await queue.put(pb.ModelStreamInferResponse(infer_response=r))

            try:
                await self.s._run(req, sink, streaming_rpc=True)
            except StandInError as e:
                if e.in_stream:
                    await queue.put(pb.ModelStreamInferResponse(error_message=e.message))
                else:
                    await queue.put(e)

        async def reader():
            try:
                async for req in request_iterator:
                    t = asyncio.create_task(one(req))
                    tasks.add(t)
                if tasks:
                    await asyncio.gather(*tasks)
            except Exception as e:
                log.debug("stream reader ended: %r", e)
            finally:
                await queue.put(end)

        rtask = asyncio.create_task(reader())
        try:
            while True:
                item = await queue.get()
                if item is end:
                    break
                if isinstance(item, StandInError):
                    await context.abort(item.code, item.message)
                yield item
            await rtask
        finally:
            for t in [rtask, *tasks]:
                if not t.done():
                    t.cancel()


async def _unimplemented(self, request, context):
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented by the stand-in engine")


for _name in (
    "ModelStatistics",
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "SystemSharedMemoryStatus",
    "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister",
    "CudaSharedMemoryStatus",
    "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister",
    "TraceSetting",
    "LogSettings",
):
    setattr(_Servicer, _name, _unimplemented)


# -- the server object -------------------------------------------------------------------------------------------------
class StandInServer:
    """One stand-in "Triton pod" serving one profile (chat | vision | image): the model repository that
    ``infra.modelrepo`` builds for it on the pinned release's templates, or ``model_repo`` (a built repository).

    Runtime-settable attributes: ``mode`` (None | refuse | hang | die | not_ready), ``token_delay`` (seconds per
    generated token; per diffusion step for images), ``die_after`` (responses before ``die`` fails the stream).
    """

    def __init__(
        self,
        profile: str = "chat",
        *,
        decoupled: bool = True,
        token_delay: float = 0.0,
        seed_name: str | None = "seed",
        omit_inputs: tuple[str, ...] = (),
        image_width: int = 64,
        image_height: int = 64,
        steps: int = 4,
        mode: str | None = None,
        die_after: int = 2,
        model_repo: str | None = None,
        max_input_len: int | None = None,
        family: str | None = None,
        guided: bool = True,
    ):
        self.profile = profile
        self.decoupled = decoupled
        self.models: dict[str, ModelDef] = build_models(
            profile,
            decoupled=decoupled,
            seed_name=seed_name,
            omit_inputs=tuple(omit_inputs),
            image_width=image_width,
            image_height=image_height,
            steps=steps,
            model_repo=model_repo,
            family=family,
            guided=guided,
        )
        self.token_delay = float(token_delay)
        self.max_input_len = max_input_len  # the engine's build limit on prompt tokens (None: no limit)
        self.image_width, self.image_height, self.steps = image_width, image_height, steps
        self.mode = mode
        self.die_after = die_after
        self.requests_started = 0
        self.requests_completed = 0
        self.requests_cancelled = 0
        self.requests_failed = 0
        self.tokens_generated = 0  # every token the engine produced, whoever was still listening
        self.received: deque[dict[str, list]] = deque(maxlen=64)  # the latest requests' inputs, decoded
        self.port: int | None = None
        self.host: str | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def mode(self) -> str | None:
        return self._mode

    @mode.setter
    def mode(self, value: str | None) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stats(self) -> dict[str, int]:
        return {
            "started": self.requests_started,
            "completed": self.requests_completed,
            "cancelled": self.requests_cancelled,
            "failed": self.requests_failed,
        }

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", MAX_MSG),
                ("grpc.max_receive_message_length", MAX_MSG),
                # Triton's defaults: pings without data no more often than every 5 minutes, 2 strikes.
                ("grpc.http2.min_ping_interval_without_data_ms", 300_000),
                ("grpc.http2.max_ping_strikes", 2),
                ("grpc.keepalive_permit_without_calls", 0),
            ]
        )
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(self), self._server)
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if not bound:
            raise OSError(f"could not bind {host}:{port}")
        await self._server.start()
        self.host, self.port = host, bound
        log.info("stand-in engine (profile %s) listening on %s:%d", self.profile, host, bound)
        return bound

    async def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    # -- one inference request -----------------------------------------------------------------------------------
    async def _run(self, req: pb.ModelInferRequest, sink: Sink, *, streaming_rpc: bool) -> None:
        self.requests_started += 1
        sent = 0

        async def counting_sink(r):
            nonlocal sent
            await sink(r)
            sent += 1

        try:
            await self._infer(req, counting_sink, streaming_rpc)
        except asyncio.CancelledError:
            self.requests_cancelled += 1
            log.info(
                "request %r for model %r cancelled by the client after %d response(s); generation stopped",
                req.id,
                req.model_name,
                sent,
            )
            raise
        except StandInError:
            self.requests_failed += 1
            raise
        except Exception as e:  # a bug: report it as Triton reports backend errors
            self.requests_failed += 1
            log.exception("stand-in internal error")
            raise StandInError(grpc.StatusCode.INTERNAL, f"stand-in internal error: {e}") from e
        self.requests_completed += 1

    async def _tick(self, seconds: float) -> None:
        await asyncio.sleep(seconds if seconds > 0 else 0)

    async def _infer(self, req: pb.ModelInferRequest, sink: Sink, streaming_rpc: bool) -> None:
        rid = _rid(req)
        model = self._servable(req)
        inputs = decode_inputs(model, req)
        self.received.append(_readable(inputs))
        text_name = "prompt" if model.kind == "diffusion" else "text_input"
        prompt = _text(_scalar(inputs, text_name, b""), text_name, rid)
        die_at = await self._injected_failure(req, prompt)
        reply = _Reply(req, model, streaming_rpc)
        if model.kind == "diffusion":
            negative = _text(_scalar(inputs, "negative_prompt", b""), "negative_prompt", rid)
            for _ in range(self.steps):
                await self._tick(self.token_delay)
            if die_at is not None:
                raise _died()
            img = engine.generate_image(prompt, negative, self.image_width, self.image_height)
            await sink(reply([("generated_image", "UINT8", [1, *img.shape], img.tobytes())], True))
            return
        await self._llm(req, model, inputs, prompt, die_at, reply, sink)

    def _servable(self, req: pb.ModelInferRequest) -> ModelDef:
        """The model the request names, if it exists, is ready and runs requests itself."""
        model = self.models.get(req.model_name)
        if model is None or req.model_version not in ("", "1"):
            v = f" version {req.model_version}" if req.model_version else ""
            raise StandInError(
                grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{req.model_name}'{v} is not found"
            )
        if self.mode == "not_ready":
            raise StandInError(
                grpc.StatusCode.UNAVAILABLE,
                f"Request for unknown model: '{model.name}' has no available versions (stand-in: not_ready)",
                in_stream=False,
            )
        if self.mode == "refuse":
            raise _refused()
        if model.kind == "step":
            raise StandInError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"stand-in engine: '{model.name}' is a composing model (config and metadata only); "
                f"call {', '.join(n for n, m in self.models.items() if m.kind != 'step')}",
            )
        return model

    async def _injected_failure(self, req: pb.ModelInferRequest, prompt: str) -> int | None:
        """The failure injection for this request (server mode, or a marker in the prompt): refuse raises, hang
        never returns, die returns the response index the request dies at (None: it does not)."""
        mode, die_after = self.mode, self.die_after
        m = MARKER_RE.search(prompt)
        if m:
            mode = m.group(1)
            if m.group(2) is not None:
                die_after = int(m.group(2))
        if mode == "refuse":
            raise _refused()
        if mode == "hang":
            log.info("request %r: hanging (failure injection)", req.id)
            await asyncio.Event().wait()
        return die_after if mode == "die" else None

    async def _llm(
        self,
        req: pb.ModelInferRequest,
        model: ModelDef,
        inputs: dict[str, np.ndarray],
        prompt: str,
        die_at: int | None,
        reply: _Reply,
        sink: Sink,
    ) -> None:
        """One LLM request: the inputs as TensorRT-LLM's ensemble reads them, then the sequences' responses."""
        rid = _rid(req)
        max_tokens = int(_scalar(inputs, "max_tokens", 0))
        if max_tokens <= 0:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] max_tokens must be > 0, got {max_tokens}"
            )
        seed = _scalar(inputs, "seed", None)
        if seed is None:
            seed = _scalar(inputs, "random_seed", None)
        seed = int(seed) if seed is not None else None
        stops = (
            [_text(s, "stop_words", rid) for s in inputs["stop_words"].reshape(-1)] if "stop_words" in inputs else []
        )
        stream = bool(_scalar(inputs, "stream", False))
        # absent input: tensorrt_llm's exclude_input_in_output parameter decides (the recipe fills it True)
        exclude = bool(_scalar(inputs, "exclude_input_in_output", model.exclude_input_default))
        hashes = _image_hashes(model, inputs, prompt, rid)
        if stream and not model.decoupled:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] Streaming is only supported if model is deployed using decoupled mode.",
            )
        n_in = engine.count_input_tokens(prompt)
        if self.max_input_len is not None and n_in > self.max_input_len:  # TensorRT-LLM's GenericLlmRequest::validate
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"[request id: {rid}] Prompt length ({n_in}) exceeds maximum input length ({self.max_input_len}).",
            )
        min_tokens = int(_scalar(inputs, "min_tokens", 0))
        ignore_eos = int(_scalar(inputs, "end_id", 0)) == -1  # TensorRT-LLM: end_id -1 = never stop at an end token
        guide = _guide(model, inputs, rid)
        n_seq = _sequences(model, inputs, rid)
        eos = model.parameters.get("eos_token")
        # sequence i > 0 continues a different sample of the same prompt (sequence 0 is the n = 1 answer)
        prompts = [prompt if i == 0 else f"{prompt}\x00seq{i}" for i in range(n_seq)]
        plans = [_plan(p, prompt, seed, hashes, guide, stops, eos, max_tokens, min_tokens, ignore_eos) for p in prompts]
        outputs = _llm_outputs(model, inputs, prompts, seed, hashes, n_in)

        if stream:
            empty_final = (
                "triton_enable_empty_final_response" in req.parameters
                and req.parameters["triton_enable_empty_final_response"].bool_param
            )
            await self._stream_sequences(plans, model.cumulative, outputs, die_at, reply, sink, empty_final)
            return

        for i in range(max(map(len, plans), default=0)):
            await self._tick(self.token_delay)
            if die_at is not None and i >= die_at:
                raise _died()
            self.tokens_generated += sum(1 for toks in plans if i < len(toks))
        for seq, tokens in enumerate(plans):
            text = "".join(tokens)
            if not exclude:  # the whole sequence decoded: prompt, a word boundary, the completion
                text = prompt + ("" if not prompt or prompt[-1].isspace() else " ") + text
            await sink(reply(outputs(text, len(tokens), 0, seq), seq == len(plans) - 1))

    async def _stream_sequences(
        self,
        plans: list[list[str]],
        cumulative: bool,
        outputs: Callable[..., list[Output]],
        die_at: int | None,
        reply: _Reply,
        sink: Sink,
        empty_final: bool,
    ) -> None:
        """Token by token, the sequences interleaved (as the executor's results arrive)."""
        steps = [
            (j, seq, toks[j])
            for j in range(max(map(len, plans), default=0))
            for seq, toks in enumerate(plans)
            if j < len(toks)
        ]
        acc = [""] * len(plans)
        for k, (j, seq, tok) in enumerate(steps):
            await self._tick(self.token_delay)
            if die_at is not None and k >= die_at:
                raise _died()
            self.tokens_generated += 1
            acc[seq] += tok
            last = k == len(steps) - 1
            text = acc[seq] if cumulative else tok
            await sink(reply(outputs(text, 1, j, seq), last and not empty_final))
        if empty_final:
            await sink(reply([], True))


Output = tuple[str, str, list[int], bytes]  # name, datatype, shape, raw contents


class _Reply:
    """Builds the responses of one request: the outputs it asked for (every one the model produced when it named
    none, as Triton does), and on a streaming RPC the ``triton_final_response`` parameter."""

    def __init__(self, req: pb.ModelInferRequest, model: ModelDef, streaming_rpc: bool):
        self.req, self.model, self.streaming_rpc = req, model, streaming_rpc

    def _wanted(self, name: str) -> bool:
        return not self.req.outputs or any(o.name == name for o in self.req.outputs)

    def __call__(self, outputs: list[Output], final: bool) -> pb.ModelInferResponse:
        r = pb.ModelInferResponse(model_name=self.model.name, model_version="1", id=self.req.id)
        if outputs and not self.req.outputs:  # none asked for: Triton returns every output the model produced
            outputs = outputs + _fillers(self.model, {o[0] for o in outputs})
        for name, dtype, shape, raw in outputs:
            if self._wanted(name):
                r.outputs.append(pb.ModelInferResponse.InferOutputTensor(name=name, datatype=dtype, shape=shape))
                r.raw_output_contents.append(raw)
        if self.streaming_rpc:
            r.parameters["triton_final_response"].bool_param = final
        return r


def _refused() -> StandInError:
    return StandInError(
        grpc.StatusCode.UNAVAILABLE, "stand-in: refusing requests (failure injection: refuse)", in_stream=False
    )


def _died() -> StandInError:
    return StandInError(grpc.StatusCode.INTERNAL, "stand-in: engine died (failure injection: die)", in_stream=False)


def _llm_outputs(
    model: ModelDef,
    inputs: dict[str, np.ndarray],
    prompts: list[str],
    seed: int | None,
    hashes: list[str],
    n_in: int,
) -> Callable[..., list[Output]]:
    """outputs(text, n_out, first=0, seq=0): the output tensors of one response of sequence seq carrying n_out
    tokens from index first."""
    ret_in = bool(_scalar(inputs, "return_num_input_tokens", False))
    ret_out = bool(_scalar(inputs, "return_num_output_tokens", False))
    want_lp = bool(_scalar(inputs, "return_log_probs", False)) and model.output("output_log_probs") is not None
    with_index = len(prompts) > 1 and model.output("sequence_index") is not None

    def outputs(text: str, n_out: int, first: int = 0, seq: int = 0) -> list[Output]:
        outs = [("text_output", "BYTES", [1, 1], encode_bytes([text.encode()]))]
        if want_lp:  # [batch, beam, tokens] of this response's tokens; cum_log_probs [batch, beam]
            lps = [engine.token_logprob(prompts[seq], seed, hashes, first + k) for k in range(n_out)]
            outs.append(("output_log_probs", "FP32", [1, 1, n_out], struct.pack(f"<{n_out}f", *lps)))
            outs.append(("cum_log_probs", "FP32", [1, 1], struct.pack("<f", sum(lps))))
        if ret_in and model.output("num_input_tokens"):
            outs.append(("num_input_tokens", "INT32", [1, 1], struct.pack("<i", n_in)))
        if ret_out and model.output("num_output_tokens"):
            outs.append(("num_output_tokens", "INT32", [1, 1], struct.pack("<i", n_out)))
        if with_index:
            outs.append(("sequence_index", "INT32", [1, 1], struct.pack("<i", seq)))
        return outs

    return outputs


def _image_hashes(model: ModelDef, inputs: dict[str, np.ndarray], prompt: str, rid: str) -> list[str]:
    hashes: list[str] = []
    if not (model.vision and "image_url_input" in inputs):
        return hashes
    for u in inputs["image_url_input"].reshape(-1):
        try:
            hashes.append(engine.image_hash(_text(u, "image_url_input", rid)))
        except ValueError as e:
            raise StandInError(grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] image_url_input: {e}") from None
    n_ph = prompt.count(engine.IMAGE_PLACEHOLDER)
    if n_ph != len(hashes):
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] {len(hashes)} image(s) given but text_input has {n_ph} "
            f"'{engine.IMAGE_PLACEHOLDER}' placeholder(s)",
        )
    return hashes


def _sequences(model: ModelDef, inputs: dict[str, np.ndarray], rid: str) -> int:
    n_seq = int(_scalar(inputs, "num_return_sequences", 1))
    beams = int(_scalar(inputs, "beam_width", 1))
    # TensorRT-LLM's executor (SamplingConfig::checkNumReturnSequences): > 0, and at most beam_width with beams
    if n_seq < 1 or (beams != 1 and n_seq > beams):
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] Assertion failed: numReturnSequences ({n_seq}) > 0 and <= beamWidth ({beams})",
        )
    if n_seq > 1 and not model.decoupled:
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] stand-in: num_return_sequences > 1 needs a decoupled model (one response per "
            "sequence)",
        )
    return n_seq


def _readable(inputs: dict[str, np.ndarray]) -> dict[str, list]:
    """A request's inputs as plain values (BYTES decoded as UTF-8 text where they are)."""
    out: dict[str, list] = {}
    for name, arr in inputs.items():
        values = []
        for v in arr.reshape(-1).tolist():
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            values.append(v)
        out[name] = values
    return out


def _guide(model: ModelDef, inputs: dict[str, np.ndarray], rid: str) -> tuple[str, str] | None:
    """(guide type, guide) of the request, as TensorRT-LLM's backends read them; None: unconstrained."""
    if "guided_decoding_guide_type" not in inputs and "guided_decoding_guide" not in inputs:
        return None
    if not model.guided:
        # what the executor answers when its config set up no guided decoder (NVIDIA/TensorRT-LLM#2624)
        raise StandInError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"[request id: {rid}] Request is specified with GuidedDecodingParams, but GuidedDecoder is not setup. "
            "Please provide a valid GuidedDecodingConfig to setup GuidedDecoder.",
        )
    kind = _text(_scalar(inputs, "guided_decoding_guide_type", b""), "guided_decoding_guide_type", rid)
    text = _text(_scalar(inputs, "guided_decoding_guide", b""), "guided_decoding_guide", rid)
    if kind not in ("json", "json_schema", "regex", "ebnf_grammar"):
        return None  # unknown guide types are silently ignored by both backends: unconstrained output
    if kind != "json" and not text:
        raise StandInError(grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] guide type {kind} needs a guide")
    if kind == "json_schema":
        try:
            json.loads(text)
        except ValueError as e:
            raise StandInError(
                grpc.StatusCode.INVALID_ARGUMENT, f"[request id: {rid}] xgrammar: invalid JSON schema: {e}"
            ) from None
    return kind, text


def _plan(
    prompt: str,
    rendered: str,
    seed: int | None,
    hashes: list[str],
    guide: tuple[str, str] | None,
    stops: list[str],
    eos: str | None,
    max_tokens: int,
    min_tokens: int,
    ignore_eos: bool,
) -> list[str]:
    """One sequence's tokens as the engine emits them (engine.py's rule, or agents.py's for guides and tools)."""
    material = engine.material(prompt, seed, hashes)
    think = (
        ["<think>\n", *engine.generate_tokens(prompt + "|think", seed, hashes, 4), "\n</think>\n\n"]
        if agents.THINK_MARKER in rendered
        else []
    )
    tokens = agents.guided_tokens(*guide, rendered, material) if guide else None
    if tokens is None:
        wanted = None if guide else agents.wanted_call(rendered)
        if wanted is None:
            if not think:
                return engine.complete(prompt, max_tokens, seed, stops, hashes, min_tokens, ignore_eos)
            tokens = engine.generate_tokens(prompt, seed, hashes)
        else:
            family, tool = wanted
            tokens = agents.call_tokens(family, tool, material)
            eom = agents.EOM.get(family)
            if eom is not None and eom != eos and eom not in stops:
                # not an end token the engine was told about: it writes on (NVIDIA's FIXME in its Llama parser)
                tokens = [*tokens, "assistant", "\n\n", *engine.generate_tokens(prompt + "|after", seed, hashes)]
    return engine.cut(think + tokens, max_tokens, stops)
