"""Chat messages → one prompt string, with the base model's chat template (HF tokenizer_config.json style).

Which template: the model's ``chat_template`` in services.yaml, else the checkpoint's own, which the
model-repository builder put in the served model's config (parameters ``chat_template``, ``bos_token``,
``eos_token``) and the Triton client read at start; ChatML only when neither exists (with a warning, once per model).

BOS: Triton's preprocessing tokenizes with ``add_special_tokens`` on (the recipe fills it True, so that raw
``/v1/completions`` prompts get their BOS too), so the BOS a template renders first is stripped here: one BOS,
added by the tokenizer. A BOS the template puts anywhere else (Llama-2 style, one per turn) stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InvalidRequest

log = logging.getLogger("gateway.prompt")

# Used when neither the catalog nor the model gives a template: a plain ChatML layout.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Control strings of the known model families. A caller who types one into a message must not be able to close
# their turn and open a system turn of their own ("prompt injection by role marker"): the tokenizer would read the
# string as the special token itself. The model's own list (tokenizer_config.json) can be passed instead.
DEFAULT_SPECIAL_TOKENS = (
    # ChatML (Qwen, many fine-tunes), GPT-style end of text
    "<|im_start|>",
    "<|im_end|>",
    "<|im_sep|>",
    "<|endoftext|>",
    # Llama 3.x
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|python_tag|>",
    "<|finetune_right_pad_id|>",
    # Llama 2 / Mistral
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<s>",
    "</s>",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
    "[TOOL_CALLS]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    # Gemma
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    # Phi-3
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
)
# Any "<|name|>" is reserved in the families above (Llama 3's <|reserved_special_token_N|>, Phi's <|placeholderN|>).
_RESERVED = re.compile(r"<\|[A-Za-z0-9_]{1,64}\|>")
# U+200B ZERO WIDTH SPACE after the first character: the text reads the same to the model and to a person, but no
# longer spells the special token, so the tokenizer encodes it as ordinary characters.
ZWSP = "\u200b"


@lru_cache(maxsize=64)
def _special_pattern(tokens: tuple[str, ...]) -> re.Pattern:
    alternatives = sorted({t for t in tokens if t}, key=len, reverse=True)
    return re.compile("|".join([_RESERVED.pattern] + [re.escape(t) for t in alternatives]))


def neutralise(text: str, special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS) -> str:
    """Caller text with every special-token spelling broken by a zero-width space (see ZWSP)."""
    if "<" not in text and "[" not in text and not any(t and t[0] in text for t in special_tokens):
        return text  # the common case: nothing that could start a token
    return _special_pattern(tuple(special_tokens)).sub(lambda m: m[0][0] + ZWSP + m[0][1:], text)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False) -> str:
    """transformers' tojson for chat templates (its environment replaces Jinja's, which HTML-escapes < > & ')."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)  # Llama 3.2's templates date the system prompt with it


# transformers renders chat templates in this environment; templates come from files users edit and checkpoints.
_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_env.filters["tojson"] = _tojson
_env.globals["strftime_now"] = _strftime_now
_warned: set[str] = set()
_ALNUM = string.ascii_letters + string.digits


def mistral_id(call_id: str) -> str:
    """A tool-call id as Mistral's templates demand it (9 letters or digits), the same for the call and its result;
    ids the gateway made for a Mistral model already are."""
    if len(call_id) == 9 and call_id.isalnum() and call_id.isascii():
        return call_id
    digest = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        digest, k = divmod(digest, len(_ALNUM))
        out.append(_ALNUM[k])
    return "".join(out)


def _neutral(value: Any, tokens: tuple[str, ...]) -> Any:
    """Every string of a JSON value (tool definitions, arguments) with special tokens neutralised."""
    if isinstance(value, str):
        return neutralise(value, tokens)
    if isinstance(value, dict):
        return {neutralise(str(k), tokens): _neutral(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, tokens) for v in value]
    return value


def _template_message(m: dict, tokens: tuple[str, ...], id_map: Callable[[str], str] | None) -> dict:
    """One checked message as chat templates read it: tool-call arguments as objects (transformers' convention;
    Llama's and Qwen2.5's templates tojson them), ids as the model's template wants them."""
    out = {**m, "content": neutralise(m["content"], tokens)} if isinstance(m.get("content"), str) else dict(m)
    if "tool_calls" in m:
        calls = []
        for call in m["tool_calls"]:
            fn = call["function"]
            try:
                arguments: Any = json.loads(fn["arguments"])
            except ValueError:
                arguments = fn["arguments"]  # not JSON: the template gets the text (Qwen3's takes strings too)
            call_id = id_map(call["id"]) if id_map else call["id"]
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": fn["name"], "arguments": _neutral(arguments, tokens)},
                }
            )
        out["tool_calls"] = calls
    if "tool_call_id" in m and id_map:
        out["tool_call_id"] = id_map(m["tool_call_id"])
    return out


def _raise_exception(message):
    raise TemplateError(message)


@lru_cache(maxsize=64)
def _compile(source: str):
    return _env.from_string(source)


def render_chat(
    messages,
    template: str | None,
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    model: str = "",
    special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS,
    tools: list[dict] | None = None,
    id_map: Callable[[str], str] | None = None,
) -> str:
    """Message contents are the caller's text: special tokens in them (the family defaults plus the model's own
    bos/eos) are neutralised, so only the template writes role markers. `tools` (chat tool objects) are rendered
    by the template, as transformers passes them (``tools=``); so are assistant tool calls and tool results."""
    tokens = tuple(special_tokens) + tuple(t for t in (bos_token, eos_token) if t)
    safe = [_template_message(m, tokens, id_map) for m in messages]
    context: dict[str, Any] = {}
    if tools:
        context["tools"] = _neutral(tools, tokens)
    if template is None:
        if model and model not in _warned:
            _warned.add(model)
            log.warning(
                "model %s has no chat template (neither in services.yaml nor in its checkpoint's "
                "tokenizer_config.json): using ChatML, which may not be what it was trained on",
                model,
            )
        template = DEFAULT_TEMPLATE
    try:
        text = _compile(template).render(
            messages=safe,
            add_generation_prompt=True,
            bos_token=bos_token or "",
            eos_token=eos_token or "",
            raise_exception=_raise_exception,
            **context,
        )
    except TemplateError as e:
        # A template's own raise_exception (e.g. "roles must alternate") is the caller's error to fix.
        raise InvalidRequest(
            f"the messages do not fit this model's chat template: {e}", param="messages", code="invalid_messages"
        ) from e
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token) :]  # the tokenizer adds it (add_special_tokens)
    return text
