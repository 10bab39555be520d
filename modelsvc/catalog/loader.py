"""services.yaml text → validated Document, or CatalogError with every problem located and a fix hint."""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from . import rules, secrets
from .errors import CatalogError, Problem
from .model import SHA256_RE, Autoscale, Document, Gateway, Key, Limits, Model, Pool, Service
from .yamlpos import Positions, parse_yaml

# Which class validates the mapping found at a path, to list the allowed fields for "did you mean".
_SECTION_CLASS: dict[object, type[BaseModel]] = {
    "gateway": Gateway,
    "pools": Pool,
    "models": Model,
    "keys": Key,
    "services": Service,
}
_NESTED_CLASS: dict[str, type[BaseModel]] = {"limits": Limits, "autoscale": Autoscale}

# Field names that mean someone pasted a secret into the file.
_SECRET_FIELDS = re.compile(r"^(api[_-]?key|key|secret|token|password|passwd|bearer|access[_-]?key)$", re.I)

_PATTERN_HINTS = {
    "access_name": "use '<owner>/<name>': lowercase letters, digits and '-', each part starting and ending with a "
    "letter or digit, e.g. u-8105f7322477/test",
    "id": "use lowercase letters, digits and '-' (service ids: 'ms-' and 12 hex digits, e.g. ms-1d033c426254)",
    "owner": "use lowercase letters, digits and '-', e.g. u-8105f7322477",
    "sha256": "paste the 64 lowercase hex digits printed by `modelsvc keys new`",
    "gpu_type": "use lowercase letters, digits and '-', e.g. h100",
    "[key]": "use lowercase letters, digits and '-' (and '.' or '_' in model names), e.g. h100 or llama-3.1-8b",
}


def decode(data: bytes, path: str) -> str:
    """services.yaml bytes → text; anything but UTF-8 is a located problem, not a UnicodeDecodeError."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        col = len(data[line_start : e.start].decode("utf-8", "replace")) + 1
        raise CatalogError(
            [Problem(path, line, col, f"not UTF-8 (byte 0x{data[e.start]:02x})", "save the file as UTF-8 text")]
        ) from None


def parse_document(text: str, path: str) -> Document:
    doc, problems = parse_document_and_problems(text, path)
    if problems:
        raise CatalogError(problems)
    assert doc is not None
    return doc


def parse_document_and_problems(text: str, path: str) -> tuple[Document | None, list[Problem]]:
    """(typed document or None, every problem). The document is there whenever the shape is right, even when
    whole-file rules (capacity, references, secrets) fail: the review still shows the diff next to the problems."""
    data, positions, problems = parse_yaml(text, path)
    problems += rules.plaintext_secrets(text, path)
    if data is None and not problems:
        problems.append(Problem(path, 1, 1, "the file is empty", "start from the example services.yaml"))
    if data is not None and not isinstance(data, dict):
        problems.append(
            Problem(
                path,
                1,
                1,
                "the top level must be a mapping",
                "start the file with 'version: 1' followed by gateway, pools, models, keys, services",
            )
        )
    if problems and not isinstance(data, dict):
        return None, _redacted(problems, data)

    doc = None
    try:
        doc = Document.model_validate(data)
    except ValidationError as e:
        problems += [_located(err, data, positions, path) for err in e.errors(include_url=False)]
    problems += rules.check(data, positions, path)
    return doc, _redacted(problems, data)


def _redacted(problems: list[Problem], data: object) -> list[Problem]:
    """Problems that quote nothing secret-shaped: neither a known token shape nor whatever sits in a sha256 field
    (a key pasted there instead of its digest). Errors say which line, never what."""
    pasted = [
        k.get("sha256") for k in (data.get("keys") if isinstance(data, dict) else None) or [] if isinstance(k, dict)
    ]
    pasted = [str(v) for v in pasted if v is not None and not (isinstance(v, str) and re.match(SHA256_RE, v))]
    return [
        Problem(p.path, p.line, p.col, secrets.redact(p.message, pasted), secrets.redact(p.hint, pasted))
        for p in problems
    ]


def _located(err: ErrorDetails, data: object, positions: Positions, path: str) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    field = str(loc[-1]) if loc else "(top level)"
    value = err.get("input")
    if field == "sha256" and kind != "missing":  # whatever is there may be the key itself: say where, never what
        line, col = positions.of(loc)
        return Problem(
            path,
            line,
            col,
            "'sha256' must be the 64 lowercase hex digits of a key's SHA-256 digest "
            "(the value is not shown: it may be the key itself)",
            "if you pasted the key, remove it and rotate it; `modelsvc keys new` prints the digest line",
        )

    if kind == "extra_forbidden":
        line, col = positions.of(loc, key=True)
        cls = _class_for(loc[:-1])
        allowed = list(cls.model_fields) if cls else []
        if _SECRET_FIELDS.match(field):
            return Problem(
                path,
                line,
                col,
                f"'{field}' looks like a plaintext secret",
                "never put keys in git: run `modelsvc keys new --owner OWNER` and add only its sha256 digest",
            )
        guess = difflib.get_close_matches(field, allowed, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"allowed fields: {', '.join(allowed)}"
        return Problem(path, line, col, f"unknown field '{field}'", hint)

    if kind == "missing":  # point at the mapping that lacks it (its key), not at its first field
        line, col = positions.of(loc[:-1], key=True)
        return Problem(path, line, col, f"missing required field '{field}'", f"add '{field}:' here")
    line, col = positions.of(loc)
    if kind == "int_type":
        return Problem(
            path,
            line,
            col,
            f"'{field}' must be a whole number, not {_describe(value)}",
            "write a number without quotes, e.g. 2",
        )
    if kind == "float_type":
        return Problem(
            path,
            line,
            col,
            f"'{field}' must be a number, not {_describe(value)}",
            "write a number without quotes, e.g. 0.5",
        )
    if kind == "string_type":
        return Problem(path, line, col, f"'{field}' must be text, not {_describe(value)}", "put the value in quotes")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return Problem(path, line, col, f"'{field}' is {value}, must be {op} {bound}", f"use a value {op} {bound}")
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(field, "see schema/services.schema.json for the format")
        return Problem(path, line, col, f"'{value}' is not a valid {field.strip('[]')}", hint)
    if kind in ("string_too_long", "string_too_short"):
        return Problem(
            path, line, col, f"'{field}' {err['msg'].lower().removeprefix('string ')}", "shorten or fill in the value"
        )
    if kind in ("enum", "literal_error"):
        expected = ctx.get("expected", "")
        options = re.findall(r"'([^']*)'|(\d+)", expected)
        options = [a or b for a, b in options]
        guess = difflib.get_close_matches(str(value), options, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"use one of: {', '.join(options)}"
        return Problem(path, line, col, f"'{field}' is {value!r}, must be one of {', '.join(options)}", hint)
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return Problem(
            path,
            line,
            col,
            f"'{field}' must be a mapping (key: value lines), not {_describe(value)}",
            "indent its fields under it",
        )
    if kind in ("tuple_type", "list_type"):
        return Problem(
            path,
            line,
            col,
            f"'{field}' must be a list ('- ' items), not {_describe(value)}",
            "write each entry on its own line starting with '- '",
        )
    if kind == "value_error":
        return Problem(path, line, col, f"'{field}' {err['msg'].removeprefix('Value error, ')}", "fix the value")
    return Problem(path, line, col, f"'{field}': {err['msg']}", "see schema/services.schema.json")


def _class_for(loc: tuple[object, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at loc (e.g. ('services', 0) → Service)."""
    if not loc:
        return Document
    if isinstance(loc[-1], str) and loc[-1] in _NESTED_CLASS:
        return _NESTED_CLASS[loc[-1]]
    return _SECTION_CLASS.get(loc[0])


def _describe(value: object) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__
