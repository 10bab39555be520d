"""The chat template (and BOS/EOS text) a checkpoint ships in its ``tokenizer_config.json``, and its own tokens.

``chat_template`` is a string, or a list of named templates (``[{"name": "default", "template": ...}, ...]``) of
which the one named ``default`` is used, as transformers does; newer checkpoints may keep it beside the file in
``chat_template.jinja``. ``bos_token`` / ``eos_token`` are a string or an AddedToken dict with ``content``.

Special tokens (the gateway cleans caller text of them, so a caller cannot write a role marker): wherever the
checkpoint declares them, since families differ — ``added_tokens_decoder`` (id → AddedToken, Llama 3, Qwen, GLM,
Gemma 3), ``additional_special_tokens`` (Qwen, GLM), the ``*_token`` keys (bos/eos/pad/unk; Gemma 3's boi/eoi/image
tokens, its ``extra_special_tokens``), and the sibling ``tokenizer.json``'s ``added_tokens`` (DeepSeek-R1's
tokenizer_config.json lists none: its <｜User｜> and <｜Assistant｜> are there). Every token marked special counts;
an added token that is not (DeepSeek-R1-Distill's <｜User｜>, Qwen's <tool_call>) counts when the chat template
writes it — a tokenizer still reads it as one token, and the template uses it as structure; other added tokens
(Gemma's <table>) are ordinary text.
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
    special: tuple[str, ...] = ()  # tokens marked special or listed as special, sorted
    added: tuple[str, ...] = ()  # added tokens not marked special (they count where the template writes them)

    def special_tokens(self, template: str | None) -> tuple[str, ...]:
        """What caller text must not spell, for the template actually used."""
        used = {t for t in self.added if template and t in template}
        return tuple(sorted(set(self.special) | used))


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
    special, added = _declared_tokens(data, path.parent / "tokenizer.json")
    return ChatTemplate(raw or None, _token(data.get("bos_token")), _token(data.get("eos_token")), special, added)


def _declared_tokens(config: dict, tokenizer_json: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    special: set[str] = set()
    added: set[str] = set()

    def entry(value, marked: bool | None = None) -> None:
        content = _token(value)
        if content:
            is_special = marked if marked is not None else not isinstance(value, dict) or value.get("special", True)
            (special if is_special else added).add(content)

    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for value in decoder.values():
            entry(value, bool(value.get("special")) if isinstance(value, dict) else None)
    listed = config.get("additional_special_tokens")
    for value in listed if isinstance(listed, list) else ():
        entry(value, True)
    extra = config.get("extra_special_tokens")
    for value in extra.values() if isinstance(extra, dict) else ():
        entry(value, True)
    for key, value in config.items():
        if key.endswith("_token") and key != "chat_template":
            entry(value, True)
    if tokenizer_json.is_file():
        try:
            tokens = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens")
        except (OSError, ValueError, AttributeError):
            tokens = None  # the tokenizer's own loader reports a broken file; here it only adds tokens
        for value in tokens if isinstance(tokens, list) else ():
            entry(value, bool(value.get("special")) if isinstance(value, dict) else None)
    return tuple(sorted(special)), tuple(sorted(added - special))
