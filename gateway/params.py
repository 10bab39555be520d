"""OpenAI request bodies → validated, typed parameters. Every refusal is an InvalidRequest naming the param."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from modelsvc.catalog import Model, Task

from .backends.base import Sampling
from .errors import InvalidRequest, UnsupportedParameter

ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_MESSAGES = 4096
# No tokenizer in the gateway: a prompt longer than this many characters per allowed input token cannot fit any
# real tokenizer's budget, so it is refused here instead of being shipped to the engine.
MAX_CHARS_PER_TOKEN = 16

# OpenAI parameters we know and cannot honour: refused unless left at their neutral value, never silently dropped.
_UNSUPPORTED = {
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "logit_bias": (None, {}),
    "audio": (None,),
    "prediction": (None,),
    "best_of": (None, 1),
    "suffix": (None, ""),
    "store": (None, False),
    "modalities": (None, ["text"]),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
    "service_tier": (None, "auto", "default"),
}
# Accepted and ignored: labels that change nothing in the answer (like `user`, recorded nowhere but accepted).
_IGNORED = {"metadata", "parallel_tool_calls", "prompt_cache_key", "safety_identifier"}
# Engine extensions that vLLM and TensorRT-LLM users send (vLLM's names). Each reaches the engine only through an
# input the model's config declares (the backend's check() refuses it otherwise, naming it).
EXTENSIONS = (
    "top_k",
    "min_p",
    "min_tokens",
    "repetition_penalty",
    "length_penalty",
    "ignore_eos",
    "beam_width",
    "bad_words",
)
_COMMON = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
    "logprobs",
    "logit_bias",
    *EXTENSIONS,
}
KNOWN_FIELDS = {  # what OpenAI's API reference lists per endpoint, plus the extensions
    "chat.completions": {
        *_COMMON,
        *_IGNORED,
        *(set(_UNSUPPORTED) - {"best_of", "suffix"}),
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "response_format",
    },
    "completions": {*_COMMON, "prompt", "echo", "best_of", "suffix"},
    "images.generations": {"model", "prompt", "n", "size", "response_format", "user", "negative_prompt"},
}


def refuse_unknown_fields(body: dict, endpoint: str) -> None:
    """OpenAI's answer to a field it does not know: 400, "Unrecognized request argument supplied: X"."""
    known = KNOWN_FIELDS[endpoint]
    unknown = [k for k in body if k not in known]
    if not unknown:
        return
    names = [k if len(k) <= 64 else k[:64] + "…" for k in unknown[:5]] + (["…"] if len(unknown) > 5 else [])
    if len(unknown) == 1:
        message = f"Unrecognized request argument supplied: {names[0]}"
    else:
        message = f"Unrecognized request arguments supplied: {', '.join(names)}"
    raise InvalidRequest(message, param=names[0])


@dataclass(frozen=True)
class ChatParams:
    model: str
    messages: tuple[dict, ...]  # validated, parts flattened to text with <image> placeholders
    images: tuple[str, ...]  # image URLs from image_url parts, in order
    raw_messages: tuple[dict, ...]  # as the caller sent them (forwarded to openai-backend upstreams)
    sampling: Sampling
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


@dataclass(frozen=True)
class CompletionParams:
    model: str
    prompt: str
    sampling: Sampling
    echo: bool = False
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


@dataclass(frozen=True)
class ImageParams:
    model: str
    prompt: str
    n: int = 1
    size: str | None = None
    negative_prompt: str | None = None
    response_format: str = "b64_json"
    extra: dict = field(default_factory=dict)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(body: dict, name: str, lo: float, hi: float, *, open_lo: bool = False) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if not _is_number(v):
        raise InvalidRequest(f"'{name}' must be a number, got {type(v).__name__}", param=name, code="invalid_type")
    if not (lo < v if open_lo else lo <= v) or not v <= hi or not math.isfinite(v):
        where = f"in ({lo:g}, {hi:g}]" if open_lo else f"between {lo:g} and {hi:g}"
        raise InvalidRequest(f"'{name}' must be {where}, got {v}", param=name, code="invalid_value")
    return float(v)


def _int(body: dict, name: str, lo: int, hi: int | None = None) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise InvalidRequest(f"'{name}' must be an integer, got {type(v).__name__}", param=name, code="invalid_type")
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise InvalidRequest(f"'{name}' must be {bound}, got {v}", param=name, code="invalid_value")
    return v


def _bool(body: dict, name: str) -> bool:
    v = body.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise InvalidRequest(f"'{name}' must be a boolean, got {type(v).__name__}", param=name, code="invalid_type")
    return v


def _str(body: dict, name: str, *, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise InvalidRequest(
                f"you must provide a '{name}' parameter", param=name, code="missing_required_parameter"
            )
        return None
    if not isinstance(v, str):
        raise InvalidRequest(f"'{name}' must be a string, got {type(v).__name__}", param=name, code="invalid_type")
    return v


def require_object(body) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return body


def model_name(body) -> str:
    name = _str(require_object(body), "model", required=True)
    return name


def _check_unsupported(body: dict) -> None:
    for name, neutral in _UNSUPPORTED.items():
        if name in body and body[name] not in neutral:
            raise UnsupportedParameter(f"'{name}' is not supported by this gateway's models", param=name)
    fmt = body.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise UnsupportedParameter(
            '\'response_format\' other than {"type": "text"} is not supported', param="response_format"
        )


def _sampling(body: dict, model: Model, *, default_max: int, chat: bool) -> Sampling:
    max_names = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
    logprobs = _logprobs(body, chat)
    max_tokens = None
    for name in max_names:
        value = _int(body, name, 1)
        if value is not None:
            if value > model.max_output_tokens:
                raise InvalidRequest(
                    f"'{name}' is {value}, but this model allows at most {model.max_output_tokens} output tokens",
                    param=name,
                    code="invalid_value",
                )
            max_tokens = max_tokens or value
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop):
        stops = tuple(stop)
    else:
        raise InvalidRequest(
            "'stop' must be a non-empty string or a list of up to 4 non-empty strings",
            param="stop",
            code="invalid_value",
        )
    n = _int(body, "n", 1)
    if n not in (None, 1):
        raise InvalidRequest(
            "only n=1 is supported; send several requests for several choices", param="n", code="invalid_value"
        )
    seed = _int(body, "seed", -(2**63), 2**64 - 1)
    if seed is not None and seed < 0:
        seed %= 2**64  # OpenAI accepts signed seeds; Triton's seed is UINT64
    max_tokens = max_tokens or min(default_max, model.max_output_tokens)
    return Sampling(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        presence_penalty=_number(body, "presence_penalty", -2, 2),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2),
        seed=seed,
        stop=stops,
        extensions=_extensions(body, max_tokens),
        logprobs=logprobs,
    )


def _extensions(body: dict, max_tokens: int) -> dict:
    """vLLM's extension parameters, with vLLM's documented types and ranges."""
    out: dict = {}
    top_k = _int(body, "top_k", -1, 2**31 - 1)
    if top_k is not None:
        out["top_k"] = max(top_k, 0)  # vLLM: -1 and 0 both mean "all tokens"; TensorRT-LLM spells that 0
    for name, lo, hi, open_lo in (
        ("min_p", 0, 1, False),
        ("repetition_penalty", 0, 2, True),
        ("length_penalty", -10, 10, False),
    ):
        value = _number(body, name, lo, hi, open_lo=open_lo)
        if value is not None:
            out[name] = value
    min_tokens = _int(body, "min_tokens", 0, max_tokens)
    if min_tokens is not None:
        out["min_tokens"] = min_tokens
    if _bool(body, "ignore_eos"):
        out["ignore_eos"] = True
    beam_width = _int(body, "beam_width", 1, 64)
    if beam_width is not None:
        out["beam_width"] = beam_width
    bad = body.get("bad_words")
    if bad is not None:
        if not isinstance(bad, list) or len(bad) > 64 or not all(isinstance(w, str) and w for w in bad):
            raise InvalidRequest(
                "'bad_words' must be a list of up to 64 non-empty strings", param="bad_words", code="invalid_value"
            )
        if bad:
            out["bad_words"] = tuple(bad)
    return out


def _logprobs(body: dict, chat: bool) -> bool:
    """The engine returns the chosen tokens' log probabilities (TensorRT-LLM's output_log_probs), no alternatives:
    chat `logprobs: true` with `top_logprobs` 0, completions `logprobs: 0`."""
    if chat:
        wanted = _bool(body, "logprobs")
        top = _int(body, "top_logprobs", 0, 20)
        if top is not None and not wanted:
            raise InvalidRequest(
                "'top_logprobs' requires 'logprobs' to be true", param="top_logprobs", code="invalid_value"
            )
        if top:
            raise UnsupportedParameter(
                "'top_logprobs' above 0 is not supported: the engine returns the log "
                "probability of each chosen token, not of alternatives",
                param="top_logprobs",
            )
        return wanted
    top = _int(body, "logprobs", 0, 5)
    if top:
        raise UnsupportedParameter(
            "'logprobs' above 0 is not supported: the engine returns the log probability of "
            "each chosen token, not of alternatives (send 0)",
            param="logprobs",
        )
    return top is not None


def _stream_options(body: dict, stream: bool) -> bool:
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not stream:
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options", code="invalid_value"
        )
    if not isinstance(opts, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options", code="invalid_type")
    for name in opts:
        if name not in ("include_usage", "include_obfuscation"):
            raise InvalidRequest(
                f"Unrecognized request argument supplied: stream_options.{name}", param=f"stream_options.{name}"
            )
    _bool(opts, "include_obfuscation")  # padding against length side channels: no use on a self-hosted gateway
    return _bool(opts, "include_usage")


def _messages(body: dict, model: Model) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "you must provide a 'messages' parameter", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages", code="invalid_value")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(
            f"'messages' has {len(messages)} entries; at most {MAX_MESSAGES} are accepted",
            param="messages",
            code="invalid_value",
        )
    out, images = [], []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where, code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", param=f"{where}.role", code="invalid_value"
            )
        content = m.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InvalidRequest(
                f"'{where}.content' must be a string or an array of content parts",
                param=f"{where}.content",
                code="invalid_type",
            )
        texts = []
        for j, part in enumerate(content):
            pwhere = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                text = part["text"]
                if model.task is Task.vision_chat:  # only the gateway places image placeholders
                    text = text.replace("<image>", "<\u200bimage>")
                texts.append(text)
            elif kind == "image_url":
                if model.task is not Task.vision_chat:
                    raise InvalidRequest(
                        f"'{pwhere}': this model does not accept images (task {model.task.value}); "
                        "use a vision-chat service",
                        param=pwhere,
                        code="image_not_supported",
                    )
                url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
                if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
                    raise InvalidRequest(
                        f"'{pwhere}.image_url.url' must be an http(s) URL or a data:image/… URL",
                        param=f"{pwhere}.image_url.url",
                        code="invalid_value",
                    )
                images.append(url)
                texts.append("<image>")  # the multimodal ensemble's placeholder
            else:
                raise InvalidRequest(
                    f"'{pwhere}' must be a text or image_url content part", param=pwhere, code="invalid_value"
                )
        out.append({"role": role, "content": "\n".join(texts)})
    return tuple(out), tuple(images)


def check_prompt_size(chars: int, model: Model, param: str) -> None:
    if chars > model.max_input_tokens * MAX_CHARS_PER_TOKEN:
        raise InvalidRequest(
            f"the input is {chars} characters, far more than this model's context of "
            f"{model.max_input_tokens} tokens; shorten it",
            param=param,
            code="context_length_exceeded",
        )


def chat_params(body: dict, model: Model) -> ChatParams:
    if model.task is Task.image_generation:
        raise InvalidRequest(
            "this model generates images: use POST /v1/images/generations", param="model", code="wrong_endpoint"
        )
    refuse_unknown_fields(body, "chat.completions")
    _check_unsupported(body)
    messages, images = _messages(body, model)
    check_prompt_size(sum(len(m["content"]) for m in messages), model, "messages")
    stream = _bool(body, "stream")
    return ChatParams(
        model=body["model"],
        messages=messages,
        images=images,
        raw_messages=tuple(body["messages"]),
        sampling=_sampling(body, model, default_max=model.max_output_tokens, chat=True),
        stream=stream,
        include_usage=_stream_options(body, stream),
        user=_str(body, "user"),
    )


def completion_params(body: dict, model: Model) -> CompletionParams:
    if model.task is not Task.chat:
        raise InvalidRequest(
            f"this model's task is {model.task.value}: use the matching endpoint", param="model", code="wrong_endpoint"
        )
    refuse_unknown_fields(body, "completions")
    _check_unsupported(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest(
            "'prompt' must be a string (a batch of prompts is not supported)",
            param="prompt",
            code="invalid_type" if prompt is not None else "missing_required_parameter",
        )
    check_prompt_size(len(prompt), model, "prompt")
    stream = _bool(body, "stream")
    sampling = _sampling(body, model, default_max=16, chat=False)
    echo = _bool(body, "echo")
    if echo and sampling.logprobs:
        raise UnsupportedParameter(
            "'echo' with 'logprobs' is not supported: the engine returns no log probabilities for the prompt",
            param="echo",
        )
    return CompletionParams(
        model=body["model"],
        prompt=prompt,
        sampling=sampling,
        echo=echo,
        stream=stream,
        include_usage=_stream_options(body, stream),
        user=_str(body, "user"),
    )


def image_params(body: dict, model: Model) -> ImageParams:
    if model.task is not Task.image_generation:
        raise InvalidRequest(
            "this model does not generate images: use POST /v1/chat/completions", param="model", code="wrong_endpoint"
        )
    refuse_unknown_fields(body, "images.generations")
    prompt = _str(body, "prompt", required=True)
    if not prompt.strip():
        raise InvalidRequest("'prompt' must not be empty", param="prompt", code="invalid_value")
    fmt = _str(body, "response_format") or "b64_json"
    if fmt != "b64_json":
        raise UnsupportedParameter(
            "only response_format 'b64_json' is supported (images are not stored)", param="response_format"
        )
    _str(body, "user")
    return ImageParams(
        model=body["model"],
        prompt=prompt,
        n=_int(body, "n", 1, 10) or 1,
        size=_str(body, "size"),
        negative_prompt=_str(body, "negative_prompt"),
        response_format=fmt,
    )
