"""Chat messages → one prompt string, with the base model's chat template (HF tokenizer_config.json style)."""

from __future__ import annotations

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

_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # templates come from a file users edit


def _raise_exception(message):
    raise TemplateError(message)


@lru_cache(maxsize=64)
def _compile(source: str):
    return _env.from_string(source)


def render_chat(messages, template: str | None) -> str:
    """Triton's preprocessing adds the tokenizer's special tokens itself, so bos_token renders empty here:
    templates that start with {{ bos_token }} would otherwise produce a double BOS."""
    try:
        return _compile(template or DEFAULT_TEMPLATE).render(
            messages=list(messages), add_generation_prompt=True, bos_token="", eos_token="",
            raise_exception=_raise_exception)
    except TemplateError as e:
        # A template's own raise_exception (e.g. "roles must alternate") is the caller's error to fix.
        raise InvalidRequest(f"the messages do not fit this model's chat template: {e}", param="messages",
                             code="invalid_messages") from e
