"""Chat messages → one prompt string, with the base model's chat template (HF tokenizer_config.json style)."""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InvalidRequest

# Used when the catalog gives no template: a plain ChatML layout, which most instruction-tuned models understand.
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
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>",
    # Llama 3.x
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
    "<|python_tag|>", "<|finetune_right_pad_id|>",
    # Llama 2 / Mistral
    "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
    "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
    # Gemma
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>",
    # Phi-3
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
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


_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # templates come from a file users edit


def _raise_exception(message):
    raise TemplateError(message)


@lru_cache(maxsize=64)
def _compile(source: str):
    return _env.from_string(source)


def render_chat(messages, template: str | None, special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS) -> str:
    """Triton's preprocessing adds the tokenizer's special tokens itself, so bos_token renders empty here:
    templates that start with {{ bos_token }} would otherwise produce a double BOS. Message contents are the caller's
    text: special tokens in them are neutralised (only the template writes role markers)."""
    safe = [{**m, "content": neutralise(m["content"], special_tokens)} if isinstance(m.get("content"), str) else m
            for m in messages]
    try:
        return _compile(template or DEFAULT_TEMPLATE).render(
            messages=safe, add_generation_prompt=True, bos_token="", eos_token="",
            raise_exception=_raise_exception)
    except TemplateError as e:
        # A template's own raise_exception (e.g. "roles must alternate") is the caller's error to fix.
        raise InvalidRequest(f"the messages do not fit this model's chat template: {e}", param="messages",
                             code="invalid_messages") from e
