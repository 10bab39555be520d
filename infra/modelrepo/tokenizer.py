"""The chat template (and BOS/EOS text) a checkpoint ships in its ``tokenizer_config.json``.

``chat_template`` is a string, or a list of named templates (``[{"name": "default", "template": ...}, ...]``) of
which the one named ``default`` is used, as transformers does; newer checkpoints may keep it beside the file in
``chat_template.jinja``. ``bos_token`` / ``eos_token`` are a string or an AddedToken dict with ``content``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import RepoError


@dataclass(frozen=True)
class ChatTemplate:
    template: str | None
    bos_token: str | None = None
    eos_token: str | None = None


def _token(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def read(path: Path) -> ChatTemplate:
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RepoError(where, f"cannot read the tokenizer config: {e.strerror or e}") from None
    except ValueError as e:
        raise RepoError(where, f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RepoError(where, "not a JSON object")
    raw = data.get("chat_template")
    if isinstance(raw, list):
        named = {t.get("name"): t.get("template") for t in raw if isinstance(t, dict)}
        if "default" not in named:
            raise RepoError(
                where,
                f"key chat_template: {len(named)} named templates ({', '.join(map(str, named))}) "
                "and none named 'default'; set chat_template for the model in services.yaml",
            )
        raw = named["default"]
    if raw is not None and not isinstance(raw, str):
        raise RepoError(where, "key chat_template: expected a string or a list of named templates")
    if raw is None:
        sibling = path.parent / "chat_template.jinja"
        if sibling.is_file():
            raw = sibling.read_text(encoding="utf-8")
    return ChatTemplate(raw or None, _token(data.get("bos_token")), _token(data.get("eos_token")))
