"""OpenAI request bodies → validated, typed parameters: each field checked by its row of the field table
(gateway/fields.py), then what depends on the model or on several fields at once. Every refusal is an InvalidRequest
naming the param."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelsvc.catalog import Model, Task

from .backends.base import SAMPLING_PARAMS, Sampling
from .errors import InvalidRequest, UnsupportedParameter
from .fields import EXTENSIONS, MODEL, validate
from .tooluse import NO_TOOLS, ToolUse, tool_use

# The chat fields a templating backend (an OpenAI-compatible upstream) gets as given: it renders, constrains and
# parses them itself.
FORWARDED = ("tools", "tool_choice", "parallel_tool_calls", "response_format")

ROLES = {"system", "developer", "user", "assistant", "tool"}
# No tokenizer in the gateway: a prompt longer than this many characters per allowed input token cannot fit any
# real tokenizer's budget, so it is refused here instead of being shipped to the engine.
MAX_CHARS_PER_TOKEN = 16


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
    tools: ToolUse = NO_TOOLS  # tools offered, tool_choice, the guide and how the output is read
    forward: dict[str, Any] | None = None  # FORWARDED fields as given (openai-backend upstreams)


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


def require_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return body


def model_name(body: Any) -> str:
    """The access name the request is for (checked first: the service decides everything else)."""
    name = require_object(body).get("model")
    if name is None:
        raise InvalidRequest("you must provide a 'model' parameter", param="model", code="missing_required_parameter")
    return MODEL.check(name)


def _sampling(
    v: dict[str, Any],
    model: Model,
    *,
    default_max: int,
    chat: bool,
    tools: ToolUse = NO_TOOLS,
    max_names: tuple[str, ...] | None = None,
) -> Sampling:
    max_tokens = None
    if max_names is None:
        max_names = ("max_completion_tokens", "max_tokens") if chat else ("max_tokens",)
    for name in max_names:
        value = v.get(name)
        if value is not None:
            if value > model.max_output_tokens:
                raise InvalidRequest(
                    f"'{name}' is {value}, but this model allows at most {model.max_output_tokens} output tokens",
                    param=name,
                    code="invalid_value",
                )
            max_tokens = max_tokens or value
    max_tokens = max_tokens or min(default_max, model.max_output_tokens)
    if chat:
        logprobs = v.get("logprobs", False)
        if "top_logprobs" in v and not logprobs:
            raise InvalidRequest(
                "'top_logprobs' requires 'logprobs' to be true", param="top_logprobs", code="invalid_value"
            )
    else:
        logprobs = "logprobs" in v  # 0: the chosen tokens' log probabilities (the table refuses more)
    seed = v.get("seed")
    if seed is not None and seed < 0:
        seed %= 2**64  # OpenAI accepts signed seeds; Triton's seed is UINT64
    given = {name: v[name] for name in SAMPLING_PARAMS if name in v}
    if "seed" in given:
        given["seed"] = seed
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if name in given:
            given[name] = float(given[name])
    return Sampling(
        max_tokens=max_tokens,
        stop=v.get("stop", ()),
        extensions=_extensions(v, max_tokens) if any(name in v for name in EXTENSIONS) else {},
        logprobs=logprobs,
        guide=tools.guide,
        n=v.get("n", 1),
        **given,
    )


def _extensions(v: dict[str, Any], max_tokens: int) -> dict:
    """vLLM's extension parameters, as the engine takes them (each validated by its row)."""
    out = {name: v[name] for name in EXTENSIONS if name in v}
    if "top_k" in out:
        out["top_k"] = max(out["top_k"], 0)  # vLLM: -1 and 0 both mean "all tokens"; TensorRT-LLM spells that 0
    for name in ("min_p", "repetition_penalty", "length_penalty"):
        if name in out:
            out[name] = float(out[name])
    if out.get("min_tokens", 0) > max_tokens:
        raise InvalidRequest(
            f"'min_tokens' must be between 0 and {max_tokens}, got {out['min_tokens']}",
            param="min_tokens",
            code="invalid_value",
        )
    if not out.get("ignore_eos", True):
        del out["ignore_eos"]  # only true asks for something
    if out.get("bad_words", None) == ():
        del out["bad_words"]
    return out


def _include_usage(v: dict[str, Any], stream: bool) -> bool:
    opts = v.get("stream_options")
    if opts is None:
        return False
    if not stream:
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options", code="invalid_value"
        )
    return opts.get("include_usage", False)


IMAGE_PLACEHOLDER = "<image>"  # the multimodal ensemble's (docs/triton-contract.md)


def _caller_text(text: str, model: Model) -> str:
    """On a vision model only the gateway places image placeholders: a caller's own spelling of one, in any content
    form, is broken with a zero-width space (prompt.py neutralises the special tokens)."""
    if model.task is Task.vision_chat and IMAGE_PLACEHOLDER in text:
        return text.replace(IMAGE_PLACEHOLDER, IMAGE_PLACEHOLDER[0] + "\u200b" + IMAGE_PLACEHOLDER[1:])
    return text


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's tool_calls, checked ({id, type: function, function: {name, arguments}})."""
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}' must be an array", param=where, code="invalid_type")
    out = []
    for j, call in enumerate(calls):
        cw = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise InvalidRequest(f"'{cw}' must be a function call", param=cw, code="invalid_value")
        call_id, name, arguments = call.get("id"), fn.get("name"), fn.get("arguments")
        for value, field in ((call_id, "id"), (name, "function.name"), (arguments, "function.arguments")):
            if not isinstance(value, str):
                raise InvalidRequest(
                    f"Missing required parameter: '{cw}.{field}'.",
                    param=f"{cw}.{field}",
                    code="missing_required_parameter",
                )
        out.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return out


def _text_parts(content: list, where: str, model: Model, images: list[str]) -> str:
    texts = []
    for j, part in enumerate(content):
        pwhere = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(_caller_text(part["text"], model))
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
            texts.append(IMAGE_PLACEHOLDER)
        else:
            raise InvalidRequest(
                f"'{pwhere}' must be a text or image_url content part", param=pwhere, code="invalid_value"
            )
    return "\n".join(texts)


def _messages(messages: list, model: Model) -> tuple[tuple[dict, ...], tuple[str, ...]]:
    """Each message checked; content parts flattened to text, image parts to the ensemble's placeholder; an
    assistant's tool_calls and a tool result's tool_call_id kept for the chat template."""
    out: list[dict[str, Any]] = []
    images: list[str] = []
    names: dict[str, str] = {}  # tool call id -> function name (tool results carry the name for some templates)
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
            text = _caller_text(content, model)
        elif isinstance(content, list):
            text = _text_parts(content, where, model, images)
        else:
            raise InvalidRequest(
                f"'{where}.content' must be a string or an array of content parts",
                param=f"{where}.content",
                code="invalid_type",
            )
        msg: dict[str, Any] = {"role": role, "content": text}
        if role == "assistant" and m.get("tool_calls") is not None:
            msg["tool_calls"] = _tool_calls(m["tool_calls"], f"{where}.tool_calls")
            names.update((c["id"], c["function"]["name"]) for c in msg["tool_calls"])
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    param=f"{where}.tool_call_id",
                    code="missing_required_parameter",
                )
            msg["tool_call_id"] = call_id
            if call_id in names:
                msg["name"] = names[call_id]
        out.append(msg)
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
    v = validate(body, "chat.completions")
    messages, images = _messages(v["messages"], model)
    check_prompt_size(sum(len(m["content"]) for m in messages), model, "messages")
    stream = v.get("stream", False)
    tools = tool_use(v) if any(k in v for k in FORWARDED) else NO_TOOLS
    return ChatParams(
        model=v["model"],
        messages=messages,
        images=images,
        raw_messages=tuple(v["messages"]),
        sampling=_sampling(v, model, default_max=model.max_output_tokens, chat=True, tools=tools),
        stream=stream,
        include_usage=_include_usage(v, stream),
        user=v.get("user"),
        tools=tools,
        forward={k: v[k] for k in FORWARDED if k in v} or None,
    )


def responses_chat_params(
    v: dict[str, Any], messages: list[dict], model: Model, tools: ToolUse, forward: dict[str, Any] | None = None
) -> ChatParams:
    """The chat parameters of a Responses request (gateway/responses/translate.py made its input into chat
    messages; `v`: its validated fields)."""
    if model.task is Task.image_generation:
        raise InvalidRequest(
            "this model generates images: use POST /v1/images/generations", param="model", code="wrong_endpoint"
        )
    checked, images = _messages(messages, model)
    check_prompt_size(sum(len(m["content"]) for m in checked), model, "input")
    sampling: dict[str, Any] = {k: v[k] for k in ("temperature", "top_p", "max_output_tokens") if k in v}
    return ChatParams(
        model=v["model"],
        messages=checked,
        images=images,
        raw_messages=tuple(messages),
        sampling=_sampling(
            sampling,
            model,
            default_max=model.max_output_tokens,
            chat=True,
            tools=tools,
            max_names=("max_output_tokens",),
        ),
        stream=v.get("stream", False),
        user=v.get("user"),
        tools=tools,
        forward=forward,
    )


def completion_params(body: dict, model: Model) -> CompletionParams:
    if model.task is not Task.chat:
        raise InvalidRequest(
            f"this model's task is {model.task.value}: use the matching endpoint", param="model", code="wrong_endpoint"
        )
    v = validate(body, "completions")
    prompt = v["prompt"]
    check_prompt_size(len(prompt), model, "prompt")
    stream = v.get("stream", False)
    sampling = _sampling(v, model, default_max=16, chat=False)
    echo = v.get("echo", False)
    if echo and sampling.logprobs:
        raise UnsupportedParameter(
            "'echo' with 'logprobs' is not supported: the engine returns no log probabilities for the prompt",
            param="echo",
        )
    return CompletionParams(
        model=v["model"],
        prompt=prompt,
        sampling=sampling,
        echo=echo,
        stream=stream,
        include_usage=_include_usage(v, stream),
        user=v.get("user"),
    )


def image_params(body: dict, model: Model) -> ImageParams:
    if model.task is not Task.image_generation:
        raise InvalidRequest(
            "this model does not generate images: use POST /v1/chat/completions", param="model", code="wrong_endpoint"
        )
    v = validate(body, "images.generations")
    prompt = v["prompt"]
    if not prompt.strip():
        raise InvalidRequest("'prompt' must not be empty", param="prompt", code="invalid_value")
    return ImageParams(
        model=v["model"],
        prompt=prompt,
        n=v.get("n", 1),
        size=v.get("size"),
        negative_prompt=v.get("negative_prompt"),
        response_format=v.get("response_format", "b64_json"),
    )
