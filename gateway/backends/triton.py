"""The gateway's client for one Triton (TensorRT-LLM / diffusion) endpoint and one model.

One ``TritonInstance`` = one Triton server (pod) + one model name, with one long-lived gRPC channel (``h2c``: one
HTTP/2 connection multiplexing every concurrent call; it replaced ``grpc.aio``, whose per-message cost was most of
this path's CPU) carrying tritonclient's own protobufs. The calls do not go through
``tritonclient.grpc.aio.InferenceServerClient`` either: its per-call
machinery (InferInput + numpy per tensor, a dict-validating request iterator, InferResult + numpy per response) cost
more CPU than everything else in the gateway. Requests are built and responses read by ``triton_wire``, which writes
and reads exactly the bytes tritonclient does (proved against InferInput / InferResult in the tests) and hands
anything unusual to tritonclient's own code.

How the Triton / TensorRT-LLM contract (docs/triton-contract.md) is honoured:

* ``start()`` reads ``ModelConfig`` once: the declared inputs (only those are ever sent) and outputs (only
  ``text_output`` and the token counts are asked for: the real ensemble declares about twenty), decoupled or not
  (an ensemble is decoupled when one of its steps is: their configs are read too), the seed input's name (``seed``,
  or ``random_seed`` in older releases), ``image_url_input`` (vision; dims ``[1]``: one image per request), the
  image size (parameters ``image_width`` / ``image_height``), BLS accumulation (see below), and the chat template
  the model-repository builder put in the parameters (``chat_template``, ``bos_token``, ``eos_token``, and
  ``special_tokens``: a JSON list of the tokens caller text is cleaned of).
* Always ``exclude_input_in_output=True`` and ``return_num_input_tokens`` / ``return_num_output_tokens`` when
  declared. Without the counts: completion tokens = responses received when streaming, words otherwise; prompt
  tokens = words in the prompt (approximations, used only when the model cannot tell).
* Streaming = ``ModelStreamInfer`` with ONE request per stream; the server closing the stream is the end signal. It
  works on decoupled models (``stream=True``: one response per token) and non-decoupled ones (``stream=False``: one
  response). ``generate`` collects the same token stream on decoupled models (unary ``ModelInfer`` is
  UNIMPLEMENTED there; and each response's count meters a request whose caller leaves mid-generation) and uses
  unary ``ModelInfer`` otherwise.
* Cumulative text (BLS with ``accumulate_tokens``): detected from the model config, not guessed from the text:
  the ``tensorrt_llm_bls`` model's config carries parameter ``accumulate_tokens`` and we diff when it is true
  ("true"/"1"/"yes", case-insensitive). The constructor's ``cumulative=`` overrides the detection.
* Stop strings, cumulative-text diffing, summed token counts and ``finish_reason``: ``assemble.Assembly`` turns the
  responses into what the caller sees. Once a stop string matched, the stream is cancelled.
* Deadlines: a non-streamed generation (unary, or the collected stream on a decoupled model) gets ``deadline_s +
  max_tokens / MIN_TOKENS_PER_S`` for the whole answer; other unary calls ``deadline_s``; a stream must deliver
  its first response within ``deadline_s`` and every further one within ``idle_timeout_s`` (default
  ``deadline_s``); the whole stream is capped at ``max_stream_s``. Errors: ``BackendTimeout`` (deadline / silent
  stream), ``BackendUnavailable`` (connection refused or UNAVAILABLE before any output; safe to retry elsewhere),
  ``BackendError`` otherwise. Every exception raised here has ``partial: bool`` = whether output had already been
  yielded to the caller (no retry when true).
* Guided decoding (structured outputs, forced tool calls): only where the served model declares the
  ``guided_decoding_guide_type`` / ``guided_decoding_guide`` inputs *and* its engine model (the ensemble's
  ``tensorrt_llm`` step, or the model named by the BLS's ``tensorrt_llm_model_name``) has a guided decoder:
  ``guided_decoding_backend`` xgrammar and, for the C++ backend, ``xgrammar_tokenizer_info_path`` (Python backend:
  ``tokenizer_dir``) — the conditions of tensorrtllm_backend's model_instance_state.cc
  getGuidedDecodingConfigFromParams and tensorrt_llm/1/model.py get_guided_decoding_config. Without one the executor
  fails every guided request ("GuidedDecoder is not setup"), so the gateway refuses them first (400). Both tensors
  go as BYTES [1, 1].
* n > 1: ``num_return_sequences`` (INT32 [1, 1]) on a decoupled model that declares it; every response carries its
  sequence's ``sequence_index`` and its own counts (``assemble.Choices`` keeps the sequences apart).
* The model's other end-of-turn tokens (``GenRequest.end_tokens``) go as stop words beside the caller's stop strings
  (TensorRT-LLM takes one ``end_id``) and are cut like them.
* Leaving the ``stream()`` generator early (``aclose()``, or the consuming task being cancelled) cancels the gRPC
  call at once, so the engine stops generating. Always close the generator (``async with contextlib.aclosing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import (
    InferResult,
    model_config_pb2,
    service_pb2,
)
from tritonclient.utils import InferenceServerException

from gateway.backends import h2c
from gateway.backends import triton_wire as wire
from gateway.backends.assemble import Assembly, Choices
from gateway.backends.base import (
    MIN_TOKENS_PER_S,
    SAMPLING_PARAMS,
    Capabilities,
    Delta,
    GenRequest,
    GenResult,
    ImageRequest,
)
from gateway.backends.deadline import ReadDeadline
from gateway.backends.images import encode_png
from gateway.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
    InvalidRequest,
    UnsupportedParameter,
    redact_addresses,
)

log = logging.getLogger("gateway.backends.triton")

MAX_MESSAGE_BYTES = 2**31 - 1
# Keepalive while calls are open: no more often than Triton allows by default (grpc-http2-min-recv-ping-interval-
# without-data = 5 min, 2 strikes), otherwise the server drops the connection with "too_many_pings".
KEEPALIVE_S, KEEPALIVE_TIMEOUT_S = 300.0, 20.0
_SERVICE = "/inference.GRPCInferenceService/"
_MODEL_CONFIG, _MODEL_READY, _SERVER_READY = (_SERVICE + m for m in ("ModelConfig", "ModelReady", "ServerReady"))
_MODEL_INFER, _MODEL_STREAM_INFER = _SERVICE + "ModelInfer", _SERVICE + "ModelStreamInfer"
_TRUE = {"true", "1", "yes", "on"}
# The INTERNAL status that means the transport lost the call (the engine said nothing): a reset HTTP/2 stream
# ("Received RST_STREAM with error code N", h2c's wording for the gRPC spec's INTERNAL codes, as grpc core's).
# Unavailability like UNAVAILABLE, so retried elsewhere before the first byte; an engine's own INTERNAL (its error
# message) stays its error. (A request that cannot be sent is UNAVAILABLE from h2c already.)
_TRANSPORT_LOST = ("Received RST_STREAM",)
# The engine refusing the request's input (the caller's to fix: 400, not retried, not billed): Triton's status for
# an invalid argument (TRITONSERVER_ERROR_INVALID_ARG), and TensorRT-LLM's refusal of a prompt longer than the
# engine was built for, which a decoupled model reports only as the stream's error message
# (NVIDIA/TensorRT-LLM cpp/include/tensorrt_llm/batch_manager/llmRequest.h, GenericLlmRequest::validate).
_PROMPT_TOO_LONG = re.compile(r"Prompt length \((\d+)\) exceeds maximum input length \((\d+)\)")


def _refused_input(details: str, status: str = "") -> InvalidRequest | None:
    if m := _PROMPT_TOO_LONG.search(details):
        return InvalidRequest(
            f"the prompt is {m[1]} tokens; this model's engine takes at most {m[2]}: shorten the input",
            param="messages",
            code="context_length_exceeded",
        )
    if status == "INVALID_ARGUMENT":
        return InvalidRequest(f"the model refused the request: {redact_addresses(details)[:300]}")
    return None


# API extension → the engine inputs that carry it, first declared wins (names from TensorRT-LLM's ensemble and BLS
# configs; older releases' spellings after). ignore_eos is TensorRT-LLM's own rule: end_id -1 means no end token.
EXTENSION_INPUTS = {
    "top_k": ("top_k",),
    "min_p": ("min_p",),
    "min_tokens": ("min_tokens", "min_length"),
    "repetition_penalty": ("repetition_penalty",),
    "length_penalty": ("length_penalty", "len_penalty"),
    "ignore_eos": ("end_id",),
    "beam_width": ("beam_width",),
    "bad_words": ("bad_words",),
}


@dataclass(frozen=True)
class _Declared:
    wire_type: str  # BYTES, INT32, FP32, ...
    dims: tuple[int, ...]
    optional: bool


def _wire_type(config_type: int) -> str:
    name = model_config_pb2.DataType.Name(config_type)[len("TYPE_") :]
    return "BYTES" if name == "STRING" else name


def has_guided_decoder(cfg: Any) -> bool:
    """Whether a TensorRT-LLM model config sets up xgrammar (see the module docstring)."""
    params = {k: v.string_value.strip() for k, v in cfg.parameters.items()}

    def filled(name: str) -> bool:
        value = params.get(name, "")
        return bool(value) and not value.startswith("${")

    if params.get("guided_decoding_backend") != "xgrammar":
        return False
    if cfg.backend == "python":
        return filled("tokenizer_dir")
    return filled("xgrammar_tokenizer_info_path")


class TritonInstance:
    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        deadline_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        idle_timeout_s: float | None = None,
        max_stream_s: float = 1800.0,
        cumulative: bool | None = None,
        collect: bool = True,
    ):
        """collect: read a non-streamed answer on a decoupled model from the token stream (a caller who leaves is
        billed what was generated; a gRPC message per token) instead of one answer at the end (--non-streamed)."""
        self.url = url
        self.collect = collect
        self.model_name = model_name
        self.deadline_s = deadline_s
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s if idle_timeout_s is not None else deadline_s
        self.max_stream_s = max_stream_s
        self._cumulative_override = cumulative
        self._channel: h2c.Channel | None = None
        self._started = False
        # filled by start()
        self.inputs: dict[str, _Declared] = {}
        self._flags: dict[tuple[str, bool], tuple[wire.Tensor, bytes]] = {}  # encoded once per model config
        self._layout = wire.Layout()  # where the outputs sit in this model's responses
        self.outputs: set[str] = set()
        self.decoupled = False
        self.seed_input: str | None = None
        self.cumulative = False
        self.vision = False
        self.is_image_model = False
        self.image_size: tuple[int, int] | None = None  # (width, height)
        self.max_images: int | None = None  # images per request (None: any number)
        self.chat_template: str | None = None  # from the model config's parameters (the checkpoint's template)
        self.bos_token: str | None = None
        self.eos_token: str | None = None
        self.special_tokens: frozenset[str] = frozenset()
        self._outputs: tuple[str, ...] = ()  # outputs asked for
        self.guided = False  # the engine model has a guided decoder (see the module docstring)
        self._capabilities: Capabilities | None = None
        self.outstanding = 0  # requests in flight through this instance (for least-outstanding balancing)

    def __repr__(self) -> str:
        return f"TritonInstance({self.url!r}, {self.model_name!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def _ensure_channel(self) -> h2c.Channel:
        if self._channel is None:
            try:
                self._channel = h2c.Channel(
                    self.url,
                    connect_timeout_s=self.connect_timeout_s,
                    max_message_bytes=MAX_MESSAGE_BYTES,
                    keepalive_s=KEEPALIVE_S,
                    keepalive_timeout_s=KEEPALIVE_TIMEOUT_S,
                )
            except ValueError as e:  # not host:port
                raise self._fail(BackendUnavailable, str(e)) from None
        return self._channel

    async def _model_config(self, name: str) -> Any:
        """ModelConfig of `name` within connect_timeout_s (raises h2c.RpcFailure or TimeoutError)."""
        t = self.connect_timeout_s
        async with asyncio.timeout(t + 1):  # belt and braces over the call's deadline
            request = service_pb2.ModelConfigRequest(name=name, version="")
            return await self._ensure_channel().unary(
                _MODEL_CONFIG, request, service_pb2.ModelConfigResponse.FromString, t
            )

    async def start(self) -> None:
        try:
            resp = await self._model_config(self.model_name)
        except h2c.RpcFailure as e:
            raise self._fail(BackendUnavailable, f"cannot read the model config: {e.details()}") from None
        except TimeoutError:
            raise self._fail(BackendUnavailable, "cannot read the model config: timed out") from None
        self._load_config(resp.config)
        if resp.config.platform == "ensemble" and not self.decoupled:
            self.decoupled = await self._ensemble_decoupled(resp.config)
        engine = await self._engine_config(resp.config)
        self.guided = engine is not None and has_guided_decoder(engine)
        self._capabilities = self._read_capabilities()
        self._started = True

    @property
    def capabilities(self) -> Capabilities | None:
        return self._capabilities

    def _read_capabilities(self) -> Capabilities:
        """What the model's config declares, in the engine contract's terms."""
        inputs = self.inputs
        sampling = {n for n in SAMPLING_PARAMS if n != "seed" and n in inputs} | (
            {"seed"} if self.seed_input else set()
        )
        return Capabilities(
            generates="images" if self.is_image_model else "text",
            chat_template=self.chat_template,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            special_tokens=self.special_tokens,
            decoupled=self.decoupled,
            vision=self.vision,
            max_images=self.max_images,
            image_size=self.image_size,
            negative_prompt="negative_prompt" in inputs,
            sampling=frozenset(sampling),
            extensions=frozenset(n for n in EXTENSION_INPUTS if self._extension_input(n) is not None),
            logprobs=self.decoupled and "return_log_probs" in inputs and "output_log_probs" in self.outputs,
            guided_decoding=self.guided
            and "guided_decoding_guide_type" in inputs
            and "guided_decoding_guide" in inputs,
            n=self.decoupled and "num_return_sequences" in inputs and "sequence_index" in self.outputs,
        )

    async def _engine_config(self, cfg: Any) -> Any | None:
        """The config of the TensorRT-LLM model behind the served one (None where it cannot be read): the
        ensemble's step whose parameters configure the engine, or the model the BLS names."""
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        if "guided_decoding_backend" in params or cfg.backend == "tensorrtllm":
            return cfg  # the engine model itself
        names = [s.model_name for s in cfg.ensemble_scheduling.step]
        if params.get("tensorrt_llm_model_name", "").strip():
            names = [params["tensorrt_llm_model_name"].strip()]
        for name in names:
            try:
                r = await self._model_config(name)
            except (h2c.RpcFailure, TimeoutError):
                continue
            step = r.config
            if step.backend == "tensorrtllm" or "guided_decoding_backend" in step.parameters:
                return step
        return None

    async def _ensemble_decoupled(self, cfg: Any) -> bool:
        """Whether a step of the ensemble is decoupled (then the ensemble streams, and Triton refuses unary calls
        to it), for servers that report the ensemble's own config unchanged."""
        for step in cfg.ensemble_scheduling.step:
            try:
                r = await self._model_config(step.model_name)
            except (h2c.RpcFailure, TimeoutError):
                raise self._fail(BackendUnavailable, f"cannot read the config of step '{step.model_name}'") from None
            if r.config.model_transaction_policy.decoupled:
                return True
        return False

    def _load_config(self, cfg: Any) -> None:
        self.inputs = {i.name: _Declared(_wire_type(i.data_type), tuple(i.dims), bool(i.optional)) for i in cfg.input}
        self._flags = {}
        self._layout = wire.Layout()
        self.outputs = {o.name for o in cfg.output}
        self.decoupled = bool(cfg.model_transaction_policy.decoupled)
        self.seed_input = "seed" if "seed" in self.inputs else ("random_seed" if "random_seed" in self.inputs else None)
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        if self._cumulative_override is not None:
            self.cumulative = self._cumulative_override
        else:
            self.cumulative = params.get("accumulate_tokens", "").strip().lower() in _TRUE
        self.vision = "image_url_input" in self.inputs
        self.max_images = 1 if self.vision and self.inputs["image_url_input"].dims == (1,) else None
        self.chat_template = params.get("chat_template") or None
        self.bos_token = params.get("bos_token") or None
        self.eos_token = params.get("eos_token") or None
        self.special_tokens = self._special_tokens(params.get("special_tokens"))
        self._outputs = tuple(n for n in ("text_output", "num_input_tokens", "num_output_tokens") if n in self.outputs)
        self.is_image_model = "generated_image" in self.outputs and "prompt" in self.inputs
        self.image_size = None
        if self.is_image_model:
            try:
                self.image_size = (int(params["image_width"]), int(params["image_height"]))
            except (KeyError, ValueError):
                self.image_size = None
        elif "text_input" not in self.inputs or "text_output" not in self.outputs:
            raise self._fail(BackendError, "model has neither text_input/text_output nor prompt/generated_image")

    def _special_tokens(self, raw: str | None) -> frozenset[str]:
        """The config parameter special_tokens: a JSON list of strings (infra/modelrepo/tokenizer.py writes it)."""
        if not raw:
            return frozenset()
        try:
            tokens = json.loads(raw)
        except ValueError:
            tokens = None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            log.warning("%s: parameter special_tokens is not a JSON list of strings; ignored", self)
            return frozenset()
        return frozenset(tokens)

    async def ready(self) -> bool:
        """ServerReady and ModelReady within connect_timeout_s. Never raises."""
        try:
            channel = self._ensure_channel()
            t = self.connect_timeout_s
            async with asyncio.timeout(2 * t + 1):
                server = await channel.unary(
                    _SERVER_READY, service_pb2.ServerReadyRequest(), service_pb2.ServerReadyResponse.FromString, t
                )
                if not server.ready:
                    return False
                model = await channel.unary(
                    _MODEL_READY,
                    service_pb2.ModelReadyRequest(name=self.model_name),
                    service_pb2.ModelReadyResponse.FromString,
                    t,
                )
                return bool(model.ready)
        except Exception:
            return False

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            with contextlib.suppress(Exception):
                await channel.close()

    # -- errors --------------------------------------------------------------------------------------------------------
    def _fail(self, cls: type[BackendError], message: str, *, partial: bool = False) -> BackendError:
        exc = cls(f"{self.model_name} at {self.url}: {message}")
        exc.partial = partial
        return exc

    def _from_status(self, code: Any, details: str, *, partial: bool) -> BackendError | InvalidRequest:
        name = getattr(code, "name", str(code)).rsplit(".", 1)[-1]
        if name == "DEADLINE_EXCEEDED":
            return self._fail(BackendTimeout, f"deadline exceeded ({details})", partial=partial)
        if not partial and (refused := _refused_input(details, name)) is not None:
            return refused
        lost = name == "INTERNAL" and details.startswith(_TRANSPORT_LOST)
        if (name == "UNAVAILABLE" or lost) and not partial:
            return self._fail(BackendUnavailable, f"unavailable: {details}", partial=False)
        return self._fail(BackendError, f"{name}: {details}", partial=partial)

    def _require(self, image: bool) -> None:
        if not self._started:
            raise RuntimeError(f"{self!r}: start() was not called")
        if image and not self.is_image_model:
            raise InvalidRequest(f"model '{self.model_name}' does not generate images")
        if not image and self.is_image_model:
            raise InvalidRequest(f"model '{self.model_name}' generates images, not text")

    # -- request building --------------------------------------------------------------------------------------------
    def check(self, req: GenRequest) -> None:
        """Refuse parameters the model cannot honour (400). Call before answering the client."""
        self._require(image=False)
        if req.sampling.max_tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            if getattr(req.sampling, name) is not None and name not in self.inputs:
                raise UnsupportedParameter(f"this model does not support '{name}'", param=name)
        if req.sampling.seed is not None and self.seed_input is None:
            raise UnsupportedParameter("this model does not support 'seed'", param="seed")
        for name in req.sampling.extensions:
            if self._extension_input(name) is None:
                raise UnsupportedParameter(
                    f"this model does not support '{name}' (its config has no "
                    f"{' / '.join(EXTENSION_INPUTS[name])} input)",
                    param=name,
                )
        self._check_features(req)
        if req.image_urls:
            if not self.vision:
                raise UnsupportedParameter("this model does not accept images", param="messages")
            if self.max_images is not None and len(req.image_urls) > self.max_images:
                raise InvalidRequest(
                    f"this model takes at most {self.max_images} image(s) per request, got {len(req.image_urls)}",
                    param="messages",
                )
            for u in req.image_urls:
                if not u.startswith(("http://", "https://", "data:")):
                    raise InvalidRequest("image URLs must be http(s):// or data: URLs", param="messages")
        # stop strings are always honoured: sent as stop_words when declared, and applied here in any case.

    def _check_features(self, req: GenRequest) -> None:
        """Log probabilities, guided decoding, n > 1: each only where the model's config provides it."""
        caps = self._capabilities
        if req.sampling.logprobs:
            if "return_log_probs" not in self.inputs or "output_log_probs" not in self.outputs:
                raise UnsupportedParameter("this model does not return log probabilities", param="logprobs")
            if not self.decoupled:  # one response for the whole answer: no token boundaries in the text
                raise UnsupportedParameter("log probabilities need a streaming (decoupled) model", param="logprobs")
        guide = req.sampling.guide
        if guide is not None and not (caps and caps.guided_decoding):
            raise UnsupportedParameter(
                f"'{guide.param}' needs guided decoding, which this model's deployment does not have (its Triton "
                "config declares no guided_decoding_guide_type input, or its TensorRT-LLM model no xgrammar "
                "guided_decoding_backend)",
                param=guide.param,
            )
        if req.sampling.n > 1 and not (caps and caps.n):
            raise UnsupportedParameter(
                "n > 1 is not supported by this model (it needs a streaming model whose config declares the "
                "num_return_sequences input and the sequence_index output); send several requests instead",
                param="n",
            )
        beams = req.sampling.extensions.get("beam_width", 1)
        if req.sampling.n > 1 and isinstance(beams, int) and 1 < beams < req.sampling.n:
            # TensorRT-LLM's rule (executor SamplingConfig::checkNumReturnSequences): with beam search the
            # sequences are beams, so at most beam_width of them
            raise InvalidRequest(f"n ({req.sampling.n}) cannot exceed beam_width ({beams})", param="n")

    def _extension_input(self, name: str) -> str | None:
        return next((i for i in EXTENSION_INPUTS.get(name, ()) if i in self.inputs), None)

    def _tensor(self, name: str, values: list[Any]) -> tuple[wire.Tensor, bytes]:
        """One batched [1, n] input of n values, as tritonclient's InferInput would send it. A single flag (the
        same few on every request) is encoded once: the request copies the tensor header in."""
        if len(values) == 1 and type(values[0]) is bool:
            got = self._flags.get((name, values[0]))
            if got is None:
                got = self._flags[(name, values[0])] = wire.encode_input(name, self.inputs[name].wire_type, values)
            return got
        return wire.encode_input(name, self.inputs[name].wire_type, values)

    def _llm_request(self, req: GenRequest, *, stream: bool) -> bytes:
        values: dict[str, list[Any]] = {
            "text_input": [req.prompt.encode("utf-8")],
            "max_tokens": [req.sampling.max_tokens],
            "exclude_input_in_output": [True],
            "return_num_input_tokens": [True],
            "return_num_output_tokens": [True],
            "stream": [stream],
        }
        for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            if getattr(req.sampling, name) is not None:
                values[name] = [getattr(req.sampling, name)]
        if req.sampling.seed is not None and self.seed_input:
            values[self.seed_input] = [req.sampling.seed % 2**64]
        stops = [s for s in req.sampling.stop if s]
        stops += [t for t in req.end_tokens if t and t not in stops]
        if stops:
            values["stop_words"] = [s.encode("utf-8") for s in stops]
        guide = req.sampling.guide
        if guide is not None:
            values["guided_decoding_guide_type"] = [guide.type.encode()]
            if guide.text:
                values["guided_decoding_guide"] = [guide.text.encode("utf-8")]
        if req.sampling.n > 1:
            values["num_return_sequences"] = [req.sampling.n]
        if req.image_urls:
            values["image_url_input"] = [u.encode("utf-8") for u in req.image_urls]
        for name, value in req.sampling.extensions.items():
            if name == "bad_words" and isinstance(value, tuple):
                values["bad_words"] = [w.encode("utf-8") for w in value]
                continue
            target = self._extension_input(name)
            if target is not None:  # check() refused the others
                values[target] = [-1 if name == "ignore_eos" else value]
        if req.sampling.logprobs:
            values["return_log_probs"] = [True]
        declared = self.inputs
        try:
            tensors = [self._tensor(k, v) for k, v in values.items() if k in declared]
        except (ValueError, OverflowError, InferenceServerException) as e:
            raise InvalidRequest(f"cannot encode the request for the model: {e}") from None
        outputs = self._outputs + ("output_log_probs",) if req.sampling.logprobs else self._outputs
        if req.sampling.n > 1:
            outputs += ("sequence_index",)
        return wire.infer_request(self.model_name, req.request_id, tensors, outputs)

    # -- text generation -------------------------------------------------------------------------------------------
    async def generate(self, req: GenRequest) -> GenResult:
        self._require(image=False)
        self.check(req)
        budget = self._whole_answer_timeout(req.sampling.max_tokens)
        if self.decoupled and (self.collect or "stream" not in self.inputs or req.sampling.logprobs):
            # The token stream, collected (logprobs need the token boundaries; and without collect=False each
            # response updates req.work, so a request whose caller leaves is billed what the engine generated until
            # the cancel). With one answer at the end, a cancelled request has no count (docs/reliability.md).
            return await self._collect(req, budget)
        request = self._llm_request(req, stream=False)
        self.outstanding += 1
        try:
            if self.decoupled:  # stream=False: the engine answers once, at the end (unary is UNIMPLEMENTED here)
                responses = await self._collect_responses(request, budget)
            else:
                responses = [await self._infer(request, budget)]
        finally:
            self.outstanding -= 1
        if req.sampling.n > 1:
            choices = Choices(req, stream=False)
            for response in responses:  # one per sequence (each final), or pieces of them
                choices.add(self._sequence(response), *self._decode(response))
            return choices.result()
        assembly = Assembly(req, stream=False)
        for response in responses:  # normally one; summed like a stream if the engine split it anyway
            assembly.add(*self._decode(response))
        return assembly.result()

    async def _collect(self, req: GenRequest, budget: float) -> GenResult:
        """The token stream read into one answer (no deltas: stop strings are cut at the end, like a unary answer),
        each response within what is left of the budget."""
        request = self._llm_request(req, stream=True)
        assembly = self._assembly(req, stream=False)
        logprobs = req.sampling.logprobs

        def take(message: service_pb2.ModelStreamInferResponse) -> None:  # in the connection's callback
            self._take(assembly, self._response(message, partial=False), logprobs)

        def take_plain(message: Any) -> None:  # the same, for a plain call: most responses arrive as (text, counts)
            if type(message) is tuple:
                add(*self._decode(message))
            else:
                take(message)

        plain = self._plain(req)
        if plain:
            assert isinstance(assembly, Assembly)  # one sequence
            add = assembly.add
        self.outstanding += 1
        call = self._open_stream(request, take_plain if plain else take, plain=plain)
        deadline = ReadDeadline()
        try:
            await self._next(call, deadline, False, False, budget)  # the end: every response went to take()
        finally:
            self.outstanding -= 1
            deadline.close()
            call.cancel()
        if assembly.responses == 0:
            raise self._fail(BackendError, "the engine closed the stream without output")
        return assembly.result(count_responses=True)

    async def _collect_responses(self, request: bytes, budget: float) -> list[service_pb2.ModelInferResponse]:
        """Every response of a one-request stream asked with stream=False (one, at the end)."""
        call = self._open_stream(request)
        deadline = ReadDeadline()
        responses = []
        try:
            while (response := await self._next(call, deadline, True, False, budget)) is not None:
                if response.raw_output_contents:  # not the empty final flag some releases send
                    responses.append(response)
        finally:
            deadline.close()
            call.cancel()
        if not responses:
            raise self._fail(BackendError, "the engine closed the stream without output")
        return responses

    def _sequence(self, response: service_pb2.ModelInferResponse) -> int:
        """The response's sequence_index (n > 1)."""
        index = wire.decode_int(response, "sequence_index")
        if index is None:
            raise self._fail(BackendError, "a response of an n > 1 request has no sequence_index")
        return index

    def _decode(self, response: service_pb2.ModelInferResponse) -> tuple[str, int | None, int | None]:
        fast = response if type(response) is tuple else wire.decode_llm(response, self._layout)
        # out of the ordinary: tritonclient's InferResult reads it
        raw, n_in, n_out = fast if fast is not None else wire.decode_llm_numpy(response)
        if raw is None:
            raise self._fail(BackendError, "response has no text_output")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return text, n_in, n_out

    async def _infer(self, request: bytes, timeout: float | None = None) -> service_pb2.ModelInferResponse:
        """Unary ModelInfer with the deadline (deadline_s unless given)."""
        channel = self._ensure_channel()
        timeout = self.deadline_s if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout + 1):  # belt and braces over the gRPC deadline
                return await channel.unary(_MODEL_INFER, request, service_pb2.ModelInferResponse.FromString, timeout)
        except h2c.RpcFailure as e:
            raise self._from_status(e.code(), e.details(), partial=False) from None
        except TimeoutError:
            raise self._fail(BackendTimeout, f"no answer within {timeout}s") from None

    async def stream(self, req: GenRequest) -> AsyncGenerator[Delta | GenResult, None]:
        """Deltas, then exactly one GenResult whose text is the whole (stop-stripped) output."""
        self._require(image=False)
        self.check(req)
        request = self._llm_request(req, stream=self.decoupled)  # built (and validated) before the stream opens
        assembly = self._assembly(req, stream=True)
        logprobs = req.sampling.logprobs
        self.outstanding += 1
        call = self._open_stream(request, plain=self._plain(req))
        deadline = ReadDeadline()
        yielded = False
        try:
            while not assembly.stopped:
                response = await self._next(call, deadline, assembly.responses == 0, yielded)
                if response is None:  # the server closed the stream: done
                    break
                delta = self._take(assembly, response, logprobs)
                try:  # responses that came in the same read: taken now, their deltas written together (Delta.more)
                    while not assembly.stopped and (message := call.queued()) is not None:
                        response = self._response(message, yielded or delta is not None)
                        if (after := self._take(assembly, response, logprobs)) is not None:
                            if delta is not None:
                                delta.more = yielded = True
                                yield delta
                            delta = after
                except GatewayError:  # what came before the failure still reaches the caller
                    if delta is not None:
                        yield delta
                    raise
                if delta is not None:
                    yielded = True
                    yield delta
            if isinstance(assembly, Choices):
                for delta in assembly.end():
                    yield delta
            elif (delta := assembly.end()) is not None:
                yield delta
        finally:
            self.outstanding -= 1
            deadline.close()
            call.cancel()  # no-op when the server already closed the stream; stops the engine otherwise
        yield assembly.result(count_responses=self.decoupled)

    def _assembly(self, req: GenRequest, *, stream: bool) -> Assembly | Choices:
        """One answer's assembly, or (n > 1) the sequences' told apart by sequence_index."""
        kind = Choices if req.sampling.n > 1 else Assembly
        return kind(req, stream=stream, cumulative=self.cumulative)

    def _take(
        self, assembly: Assembly | Choices, response: service_pb2.ModelInferResponse, logprobs: bool
    ) -> Delta | None:
        """One engine response into the assembly: what the caller gets now, if anything."""
        if isinstance(assembly, Choices):
            if not response.raw_output_contents:
                return None  # the empty final response some releases send
            lps = self._log_probs(response) if logprobs else ()
            return assembly.add(self._sequence(response), *self._decode(response), lps)
        return assembly.add(*self._decode(response), self._log_probs(response) if logprobs else ())

    def _log_probs(self, response: service_pb2.ModelInferResponse) -> list[float]:
        """output_log_probs of one response: FP32 [batch, beam, tokens]; the first beam's values."""
        arr = InferResult(response).as_numpy("output_log_probs")
        if arr is None:
            raise self._fail(BackendError, "the engine returned no output_log_probs")
        arr = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
        return [float(v) for v in arr[0]]

    def _whole_answer_timeout(self, max_tokens: int) -> float:
        return self.deadline_s + max_tokens / MIN_TOKENS_PER_S

    def _open_stream(
        self,
        request: bytes,
        sink: Callable[[service_pb2.ModelStreamInferResponse], None] | None = None,
        *,
        plain: bool = False,
    ) -> h2c.Call:
        """A ModelStreamInfer call carrying this one request (sent with END_STREAM on the first read); the server
        closes the stream when the request is done. `sink`: each response handed over as it arrives (h2c.Call).
        plain: the answer needs only text and counts, so its responses arrive as (text, counts), read from their
        bytes where they fit the call's template (wire.StreamTemplate); anything else arrives parsed."""
        parse = service_pb2.ModelStreamInferResponse.FromString
        if plain:
            parse = wire.StreamTemplate(parse, self._layout).parse
        return self._ensure_channel().call(_MODEL_STREAM_INFER, request, parse, self.max_stream_s, sink)

    @staticmethod
    def _plain(req: GenRequest) -> bool:
        """One sequence, no log probabilities: text and counts are all the answer reads of a response."""
        return req.sampling.n == 1 and not req.sampling.logprobs

    async def _next(
        self, call: h2c.Call, deadline: ReadDeadline, first: bool, partial: bool, timeout: float | None = None
    ) -> service_pb2.ModelInferResponse | None:
        """The next response of a one-request stream, None once the server closed it; every failure mapped to our
        errors (partial: whether output was already handed to the caller)."""
        if timeout is None:
            timeout = self.deadline_s if first else self.idle_timeout_s
        deadline.start(timeout)
        try:
            message = await call.read()
        except h2c.RpcFailure as e:
            raise self._from_status(e.code(), e.details(), partial=partial) from None
        except asyncio.CancelledError:
            if deadline.expired():  # the read was cancelled by our timer: the call is reset, the engine is told
                what = "first response" if first else "next response (stream went silent)"
                raise self._fail(BackendTimeout, f"no {what} within {timeout}s", partial=partial) from None
            raise  # we are being cancelled (caller went away): the read reset the call; propagate
        finally:
            deadline.stop()
        if message is None:
            return None
        return self._response(message, partial)

    def _response(self, message: service_pb2.ModelStreamInferResponse, partial: bool) -> service_pb2.ModelInferResponse:
        """The response a stream message carries, or the engine's error in it raised as ours (a plain call's
        response may arrive as its (text, counts) already)."""
        if type(message) is tuple:
            return message
        if message.error_message != "":
            if not partial and (refused := _refused_input(message.error_message)) is not None:
                raise refused
            raise self._fail(BackendError, f"engine error: {message.error_message}", partial=partial)
        return message.infer_response

    async def _responses(
        self, call: h2c.Call, *, partial: Callable[[], bool]
    ) -> AsyncGenerator[service_pb2.ModelInferResponse, None]:
        """The responses of a one-request stream until the server closes it; every failure mapped to our errors."""
        first = True
        deadline = ReadDeadline()
        try:
            while True:
                response = await self._next(call, deadline, first, partial())
                if response is None:
                    return
                first = False
                yield response
        finally:
            deadline.close()

    # -- images ------------------------------------------------------------------------------------------------------
    async def generate_images(self, req: ImageRequest) -> list[bytes]:
        """n images (n requests, concurrently) as PNG bytes; `req.work.images` counts those the engine finished."""
        prompt, n, negative_prompt, work = req.prompt, req.n, req.negative_prompt, req.work
        self._require(image=True)
        if n < 1:
            raise InvalidRequest("n must be at least 1", param="n")
        if negative_prompt and "negative_prompt" not in self.inputs:
            raise UnsupportedParameter("this model does not support 'negative_prompt'", param="negative_prompt")
        values = {"prompt": [prompt.encode("utf-8")]}
        if negative_prompt:
            values["negative_prompt"] = [negative_prompt.encode("utf-8")]
        request = wire.infer_request(
            self.model_name, "", [self._tensor(k, v) for k, v in values.items()], ("generated_image",)
        )

        async def one(i: int) -> bytes:
            if self.decoupled:
                call = self._open_stream(request)
                result = None
                try:
                    async for r in self._responses(call, partial=lambda: False):
                        r = InferResult(r)
                        if r.as_numpy("generated_image") is not None:
                            result = r
                finally:
                    call.cancel()
                if result is None:
                    raise self._fail(BackendError, "no generated_image in the response")
            else:
                result = InferResult(await self._infer(request))
            arr = result.as_numpy("generated_image")
            if arr is None:
                raise self._fail(BackendError, "no generated_image in the response")
            if arr.ndim == 4:
                arr = arr[0]
            if arr.ndim != 3 or arr.dtype != np.uint8:
                raise self._fail(BackendError, f"unexpected image tensor {arr.dtype} {arr.shape}")
            work.images += 1
            return encode_png(arr)

        self.outstanding += 1
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self.outstanding -= 1
