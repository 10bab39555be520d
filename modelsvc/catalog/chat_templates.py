"""What a chat template (HF tokenizer_config.json style Jinja2) can render, read from its source without running it.

The gateway renders tools with the model's own template (transformers' convention: ``tools=`` beside the messages);
a template that never reads ``tools`` would drop them silently, so tools are refused for it — by ``validate`` when the
template is in services.yaml, by the gateway when it comes from the checkpoint.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, TemplateSyntaxError, meta


@lru_cache(maxsize=64)
def variables(source: str) -> frozenset[str] | None:
    """The variables the template reads from its context (None: not valid Jinja2)."""
    try:
        return frozenset(meta.find_undeclared_variables(Environment().parse(source)))
    except TemplateSyntaxError:
        return None


def takes_tools(source: str) -> bool:
    found = variables(source)
    return found is not None and "tools" in found


def syntax_error(source: str) -> str | None:
    try:
        Environment().parse(source)
    except TemplateSyntaxError as e:
        return f"line {e.lineno}: {e.message}"
    return None
