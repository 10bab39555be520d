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
# string as the special token itself. The model's own tokens (its checkpoint's tokenizer files: every special token,
# and every added token its chat template writes; infra/modelrepo/tokenizer.py) are added to these.
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
    # Gemma (3: images too)
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
    # Phi-3
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    # GLM-4
    "[gMASK]",
    "[sMASK]",
    "[MASK]",
    "<sop>",
    "<eop>",
    # Qwen 2.5 tool calls, DeepSeek-R1 reasoning
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
)
# Always reserved, whatever the list: any "<|name|>" (Llama 3's <|reserved_special_token_N|>, Phi's <|placeholderN|>,
# Qwen's <|vision_start|> ...) and DeepSeek's full-width "<｜name｜>" (<｜User｜>, <｜tool▁calls▁begin｜> ...).
_RESERVED = (r"<\|[A-Za-z0-9_]{1,64}\|>", r"<\uff5c[^\uff5c\s]{1,64}\uff5c>")
# Where the listed tokens are looked for: the shapes nearly all of them have (one regex scan finds candidates, a set
# lookup decides), then the few of other shapes spelled out.
_SHAPES = (r"<[^<>\s]{1,64}>", r"\[[^\[\]\s]{1,64}\]")
# U+200B ZERO WIDTH SPACE after the first character: the text reads the same to the model and to a person, but no
# longer spells the special token, so the tokenizer encodes it as ordinary characters.
ZWSP = "\u200b"


class _Tokens:
    """One token list, compiled: the regex that finds candidates and the set that decides."""

    def __init__(self, tokens: frozenset[str]):
        self.tokens = tokens
        shaped = re.compile("|".join(_SHAPES))
        others = sorted((t for t in tokens if not shaped.fullmatch(t)), key=len, reverse=True)
        self.pattern = re.compile("|".join([re.escape(t) for t in others] + list(_RESERVED) + list(_SHAPES)))
        self.starts = frozenset("<[\uff5c" + "".join(t[0] for t in others))
        self.reserved = re.compile("|".join(_RESERVED))

    def sub(self, m: re.Match) -> str:
        found = m[0]
        if found in self.tokens or self.reserved.fullmatch(found):
            return found[0] + ZWSP + found[1:]
        return found


@lru_cache(maxsize=64)
def _compiled(tokens: frozenset[str]) -> _Tokens:
    return _Tokens(tokens)


def neutralise(text: str, special_tokens: frozenset[str] | tuple[str, ...] = DEFAULT_SPECIAL_TOKENS) -> str:
    """Caller text with every special-token spelling broken by a zero-width space (see ZWSP)."""
    tokens = _compiled(special_tokens if isinstance(special_tokens, frozenset) else frozenset(special_tokens))
    if not any(c in text for c in tokens.starts):
        return text  # the common case: nothing that could start a token
    return tokens.pattern.sub(tokens.sub, text)


def usable_tokens(tokens) -> frozenset[str]:
    """The tokens worth neutralising: at least two characters, no whitespace, not only letters and digits (a
    special token that is a plain word or a newline would be broken everywhere it is written)."""
    return frozenset(
        t for t in tokens if isinstance(t, str) and len(t) >= 2 and not any(c.isspace() for c in t) and not t.isalnum()
    )


_DEFAULTS = usable_tokens(DEFAULT_SPECIAL_TOKENS)


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


def _neutral(value: Any, tokens: frozenset[str]) -> Any:
    """Every string of a JSON value (tool definitions, arguments) with special tokens neutralised."""
    if isinstance(value, str):
        return neutralise(value, tokens)
    if isinstance(value, dict):
        return {neutralise(str(k), tokens): _neutral(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, tokens) for v in value]
    return value


def _template_message(
    m: dict, tokens: frozenset[str], placeholder: str | None, id_map: Callable[[str], str] | None
) -> dict:
    """One checked message as chat templates read it: tool-call arguments as objects (transformers' convention;
    Llama's and Qwen2.5's templates tojson them), ids as the model's template wants them."""
    content = m.get("content")
    out = {**m, "content": _safe_content(content, tokens, placeholder)} if isinstance(content, str) else dict(m)
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
    template = _env.from_string(source)
    # jinja copies a template's globals into each render's context; as its ChainMap that copy runs key by key in
    # Python (~6 µs a render), as a dict in C. The environment's globals are set once, above.
    template.globals = dict(template.globals)
    return template


@lru_cache(maxsize=64)
def _token_set(own: frozenset[str], bos: str | None, eos: str | None, placeholder: str | None) -> frozenset[str]:
    """The tokens a model's messages are cleaned of (cached: a model's list can have thousands)."""
    if not own and not bos and not eos and placeholder is None:
        return _DEFAULTS
    return (_DEFAULTS | usable_tokens(own | {t for t in (bos, eos) if t})) - {placeholder}


def _safe_content(content: str, tokens: frozenset[str], placeholder: str | None) -> str:
    if placeholder is None:
        return neutralise(content, tokens)
    # the placeholders the gateway put where image parts were (caller text spelling one was broken before)
    return placeholder.join(neutralise(piece, tokens) for piece in content.split(placeholder))


def render_chat(
    messages,
    template: str | None,
    *,
    bos_token: str | None = None,
    eos_token: str | None = None,
    model: str = "",
    special_tokens=(),
    placeholder: str | None = None,
    tools: list[dict] | None = None,
    id_map: Callable[[str], str] | None = None,
) -> str:
    """Message contents are the caller's text: special tokens in them (the known families', the model's own
    `special_tokens` and bos/eos) are neutralised, so only the template writes role markers. `placeholder`: the
    vision placeholder the gateway itself put in the contents (params.py), kept as it is. `tools` (chat tool
    objects) are rendered by the template, as transformers passes them (``tools=``); so are assistant tool calls and
    tool results."""
    tokens = _token_set(frozenset(special_tokens), bos_token, eos_token, placeholder)
    safe = [_template_message(m, tokens, placeholder, id_map) for m in messages]
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
