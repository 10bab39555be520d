"""Chat messages → one prompt string, with the base model's chat template (HF tokenizer_config.json style).

Which template: the model's ``chat_template`` in services.yaml, else the checkpoint's own, which the
model-repository builder put in the served model's config (parameters ``chat_template``, ``bos_token``,
``eos_token``) and the Triton client read at start; ChatML only when neither exists (with a warning, once per model).

BOS: Triton's preprocessing tokenizes with ``add_special_tokens`` on (the recipe fills it True, so that raw
``/v1/completions`` prompts get their BOS too), so the BOS a template renders first is stripped here: one BOS,
added by the tokenizer. A BOS the template puts anywhere else (Llama-2 style, one per turn) stays.
"""

from __future__ import annotations

import logging
from functools import lru_cache

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

# transformers renders chat templates in this environment; templates come from files users edit and checkpoints.
_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_warned: set[str] = set()


def _raise_exception(message):
    raise TemplateError(message)


@lru_cache(maxsize=64)
def _compile(source: str):
    return _env.from_string(source)


def render_chat(messages, template: str | None, *, bos_token: str | None = None, eos_token: str | None = None,
                model: str = "") -> str:
    if template is None:
        if model and model not in _warned:
            _warned.add(model)
            log.warning("model %s has no chat template (neither in services.yaml nor in its checkpoint's "
                        "tokenizer_config.json): using ChatML, which may not be what it was trained on", model)
        template = DEFAULT_TEMPLATE
    try:
        text = _compile(template).render(
            messages=list(messages), add_generation_prompt=True, bos_token=bos_token or "",
            eos_token=eos_token or "", raise_exception=_raise_exception)
    except TemplateError as e:
        # A template's own raise_exception (e.g. "roles must alternate") is the caller's error to fix.
        raise InvalidRequest(f"the messages do not fit this model's chat template: {e}", param="messages",
                             code="invalid_messages") from e
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]  # the tokenizer adds it (add_special_tokens)
    return text
