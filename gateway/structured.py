"""Structured outputs and forced tool calls → the guide TensorRT-LLM decodes with, every schema checked first.

What goes to the engine (the ``guided_decoding_guide_type`` / ``guided_decoding_guide`` inputs, see
gateway/backends/triton.py):

* ``response_format: {type: json_schema, json_schema: {name, schema, strict}}`` (chat) and ``text.format: {type:
  json_schema, name, schema, strict}`` (Responses) → ``json_schema`` with the *inner* schema (the wrapper is not a
  schema: NVIDIA/TensorRT-LLM#4855 was exactly that mistake);
* ``{type: json_object}`` → ``json_schema`` ``{"type": "object"}``, not guide type ``json``: xgrammar's built-in JSON
  grammar admits any JSON value (tensorrtllm_backend docs/guided_decoding.md shows guide type ``json`` answering
  ``[2025]``), and OpenAI promises an object;
* ``tool_choice: {type: function, function: {name}}`` → ``json_schema`` with that function's parameters (the answer
  *is* the arguments, as Triton's own frontend does it: server/python/openai ``utils/triton.py``);
* ``tool_choice: "required"`` → ``json_schema`` of a non-empty array of ``{"name": <an offered name>, "arguments":
  <its parameters>}`` (one item at most when ``parallel_tool_calls`` is false), parsed by gateway/tools' "array".

Checks before any engine work, so that nothing pathological is compiled into a grammar and nothing the caller
asked for is silently dropped: every schema must be a valid JSON Schema (Draft 2020-12 meta-schema) with only local
``$ref``s, within size limits; with ``strict: true``, OpenAI's strict-mode rules ("Supported schemas" in OpenAI's
Structured Outputs guide), refused with OpenAI's wording ("Invalid schema for response_format 'x': In
context=(...), ...").
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as _MetaSchemaError

from .backends.base import Guide
from .errors import InvalidRequest

# Limits (OpenAI's strict-mode limits, applied to every schema: a grammar's compile time grows with them)
MAX_SCHEMA_BYTES = 128 * 1024  # the schema as sent
MAX_DEPTH = 10  # levels of nesting
MAX_PROPERTIES = 5000  # object properties, all objects together
MAX_ENUM_VALUES = 1000  # enum values, all enums together
MAX_NAME_CHARS = 120_000  # property names, definition names, enum and const values
MAX_REFS = 1000

STRICT_TYPES = {"string", "number", "boolean", "integer", "object", "array", "null"}
# keywords OpenAI's strict mode does not support (its Structured Outputs guide, "Some type-specific keywords are not
# yet supported"): refused by name, as OpenAI does
STRICT_UNSUPPORTED = (
    "allOf",
    "not",
    "dependentRequired",
    "dependentSchemas",
    "if",
    "then",
    "else",
    "minLength",
    "maxLength",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "oneOf",
    "prefixItems",
)
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")

JSON_OBJECT = Guide("json_schema", '{"type":"object"}')


class SchemaRefused(InvalidRequest):
    code = "invalid_json_schema"


def _fail(what: str, context: tuple[str, ...] | None, message: str, param: str) -> SchemaRefused:
    where = "" if context is None else f"In context={context!r}, "
    return SchemaRefused(f"Invalid schema for {what}: {where}{message}", param=param)


def _walk(schema: Any, context: tuple[str, ...], depth: int) -> Iterator[tuple[dict[str, Any], tuple[str, ...], int]]:
    """Every subschema with its context (the keys leading to it) and its nesting depth (objects and arrays)."""
    if not isinstance(schema, dict):
        return
    yield schema, context, depth
    inner = depth + (1 if schema.get("type") in ("object", "array") or "properties" in schema else 0)
    for key in _SUBSCHEMA_MAPS:
        members = schema.get(key)
        if isinstance(members, dict):
            for name, sub in members.items():
                yield from _walk(sub, (*context, key, str(name)), inner if key == "properties" else depth)
    for key in _SUBSCHEMA_LISTS:
        items = schema.get(key)
        if isinstance(items, list):
            for i, sub in enumerate(items):
                yield from _walk(sub, (*context, key, str(i)), depth)
    for key in _SUBSCHEMA_ONE:
        yield from _walk(schema.get(key), (*context, key), inner if key == "items" else depth)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    if ref == "#":
        return root
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check_ref(root: dict[str, Any], node: dict[str, Any], context: tuple[str, ...], what: str, param: str) -> None:
    ref = node.get("$ref")
    if ref is None:
        return
    if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
        raise _fail(what, context, f"only local references ('#/$defs/...') are supported, got {ref!r}", param)
    target = _resolve(root, ref)
    if not isinstance(target, dict):
        raise _fail(what, context, f"reference {ref!r} can not be resolved", param)
    if target is node or (set(target) == {"$ref"} and target.get("$ref") == ref):
        raise _fail(what, context, f"reference {ref!r} refers only to itself", param)


class _Sizes:
    """What the limits count, over the whole schema."""

    def __init__(self) -> None:
        self.properties = self.enums = self.chars = self.refs = 0

    def add(self, node: dict[str, Any]) -> None:
        props = node.get("properties")
        if isinstance(props, dict):
            self.properties += len(props)
            self.chars += sum(len(str(k)) for k in props)
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), dict):
                self.chars += sum(len(str(k)) for k in node[key])
        if isinstance(node.get("enum"), list):
            self.enums += len(node["enum"])
            self.chars += sum(len(v) for v in node["enum"] if isinstance(v, str))
        if isinstance(node.get("const"), str):
            self.chars += len(node["const"])
        self.refs += "$ref" in node

    def check(self, what: str, param: str) -> None:
        for count, limit, noun in (
            (self.properties, MAX_PROPERTIES, "properties"),
            (self.enums, MAX_ENUM_VALUES, "enum values"),
            (self.refs, MAX_REFS, "references"),
        ):
            if count > limit:
                raise _fail(what, None, f"the schema has {count} {noun}, more than the {limit} allowed", param)
        if self.chars > MAX_NAME_CHARS:
            raise _fail(
                what,
                None,
                f"the schema's property names, definition names, enum and const values total {self.chars} "
                f"characters, more than the {MAX_NAME_CHARS} allowed",
                param,
            )


@functools.lru_cache(maxsize=256)
def _checked(text: str, what: str, strict: bool, param: str, root_object: bool) -> None:
    """The checks of one schema (cached by its text: agents send the same tools on every turn)."""
    schema = orjson.loads(text)
    if not isinstance(schema, dict):
        raise _fail(what, None, "the schema must be a JSON object", param)
    try:
        Draft202012Validator.check_schema(schema)
    except _MetaSchemaError as e:
        context = tuple(str(p) for p in e.path)
        raise _fail(what, context, f"not a valid JSON Schema: {e.message}", param) from None
    sizes = _Sizes()
    for node, context, depth in _walk(schema, (), 1):
        if depth > MAX_DEPTH:
            raise _fail(what, context, f"the schema is nested more than {MAX_DEPTH} levels deep", param)
        sizes.add(node)
        _check_ref(schema, node, context, what, param)
        if strict:
            _strict_node(node, context, what, param)
    sizes.check(what, param)
    kind = schema.get("type")
    if (root_object or strict) and ("anyOf" in schema or kind != "object") and not (not strict and kind is None):
        got = f'type: "{kind}"' if isinstance(kind, str) else "anyOf" if "anyOf" in schema else "no type"
        raise _fail(what, None, f"schema must be a JSON Schema of 'type: \"object\"', got '{got}'.", param)


def _strict_node(node: dict[str, Any], context: tuple[str, ...], what: str, param: str) -> None:
    """OpenAI's strict-mode rules for one subschema."""
    for key in STRICT_UNSUPPORTED:
        if key in node:
            raise _fail(what, context, f"'{key}' is not permitted.", param)
    kind = node.get("type")
    if kind is None:
        if any(k in node for k in ("anyOf", "$ref", "enum", "const")):
            return
        raise _fail(what, context, "schema must have a 'type' key.", param)
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        if k not in STRICT_TYPES:
            raise _fail(what, context, f"type {k!r} is not supported.", param)
    if "object" not in kinds:
        return
    if node.get("additionalProperties", True) is not False:
        raise _fail(what, context, "'additionalProperties' is required to be supplied and to be false.", param)
    props = node.get("properties") or {}
    required = node.get("required", [])
    missing = [k for k in props if not isinstance(required, list) or k not in required]
    if missing:
        raise _fail(
            what,
            context,
            "'required' is required to be supplied and to be an array including every key in properties. "
            f"Missing '{missing[0]}'.",
            param,
        )
    extra = [k for k in required if k not in props]
    if extra:
        raise _fail(what, context, f"Extra required key '{extra[0]}' supplied.", param)


def check_schema(schema: Any, *, what: str, strict: bool, param: str, root_object: bool = False) -> str:
    """The schema's JSON text as sent to the engine, once it passed every check (SchemaRefused otherwise)."""
    if not isinstance(schema, Mapping):
        raise _fail(what, None, "the schema must be a JSON object", param)
    try:
        text = orjson.dumps(schema).decode()
    except (TypeError, orjson.JSONEncodeError) as e:
        raise _fail(what, None, f"not JSON: {e}", param) from None
    if len(text) > MAX_SCHEMA_BYTES:
        raise _fail(what, None, f"the schema is {len(text)} bytes, more than the {MAX_SCHEMA_BYTES} allowed", param)
    _checked(text, what, strict, param, root_object)
    return text


# -- response_format / text.format ------------------------------------------------------------------------------------
def format_guide(fmt: Any, *, param: str, flat: bool) -> Guide | None:
    """The guide for chat's response_format (flat=False: {type, json_schema: {name, schema, strict}}) or the
    Responses API's text.format (flat=True: {type, name, schema, strict}); None for plain text."""
    if not isinstance(fmt, dict):
        raise InvalidRequest(f"'{param}' must be an object", param=param, code="invalid_type")
    kind = fmt.get("type")
    allowed = {"type"} | ({"name", "schema", "strict", "description"} if flat else {"json_schema"})
    if kind == "text" or kind == "json_object":
        allowed = {"type"}
    unknown = [k for k in fmt if k not in allowed]
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            f"'{param}.type' must be one of 'text', 'json_object', 'json_schema'", param=f"{param}.type"
        )
    if unknown:
        raise InvalidRequest(
            f"Unrecognized request argument supplied: {param}.{unknown[0]}", param=f"{param}.{unknown[0]}"
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return Guide(JSON_OBJECT.type, JSON_OBJECT.text, param)
    spec = fmt if flat else fmt.get("json_schema")
    where = param if flat else f"{param}.json_schema"
    if not isinstance(spec, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where, code="invalid_type")
    if not flat:
        extra = [k for k in spec if k not in ("name", "schema", "strict", "description")]
        if extra:
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {where}.{extra[0]}", param=f"{where}.{extra[0]}"
            )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(
            f"Missing required parameter: '{where}.name'.", param=f"{where}.name", code="missing_required_parameter"
        )
    if len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
        raise InvalidRequest(
            f"Invalid '{where}.name': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$' (at most 64 characters).",
            param=f"{where}.name",
            code="invalid_value",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{where}.strict' must be a boolean", param=f"{where}.strict", code="invalid_type")
    schema = spec.get("schema", {"type": "object"})
    text = check_schema(
        schema, what=f"response_format '{name}'", strict=bool(strict), param=f"{where}.schema" if flat else param
    )  # non-strict schemas may have any root (OpenAI refuses non-object roots in strict mode only)
    return Guide("json_schema", text, param)


# -- tool_choice -------------------------------------------------------------------------------------------------------
def named_tool_guide(parameters: str) -> Guide:
    """tool_choice naming a function: the answer is its arguments (parameters: the checked schema text)."""
    return Guide("json_schema", parameters, "tool_choice")


def _embedded(params: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameter schema as a definition of the combined schema: its own definitions move to the root
    (renamed with `prefix`) and its references follow them."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("$defs", "definitions") and isinstance(v, dict):
                    for name, sub in v.items():
                        defs[f"{prefix}__{name}"] = rewrite(sub)
                    continue
                if k == "$ref" and isinstance(v, str):
                    if v == "#":
                        v = f"#/$defs/{prefix}"
                    else:
                        for head in ("#/$defs/", "#/definitions/"):
                            if v.startswith(head):
                                v = f"#/$defs/{prefix}__{v[len(head) :]}"
                out[k] = rewrite(v)
            return out
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    defs[prefix] = rewrite(params)
    return {"$ref": f"#/$defs/{prefix}"}


def _calls_schema(tools: Mapping[str, str], parallel: bool, defs: dict[str, Any]) -> dict[str, Any]:
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "arguments": _embedded(orjson.loads(params), f"tool{i}", defs)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for i, (name, params) in enumerate(tools.items())
    ]
    schema: dict[str, Any] = {
        "type": "array",
        "items": variants[0] if len(variants) == 1 else {"anyOf": variants},
        "minItems": 1,
    }
    if not parallel:
        schema["maxItems"] = 1
    return schema


def required_tool_guide(tools: Mapping[str, str], *, parallel: bool) -> Guide:
    """tool_choice "required": at least one call of an offered function (tools: name -> parameters schema text)."""
    defs: dict[str, Any] = {}
    schema = _calls_schema(tools, parallel, defs)
    return Guide("json_schema", orjson.dumps({**schema, "$defs": defs}).decode(), "tool_choice")


def format_or_calls_guide(fmt: Guide, tools: Mapping[str, str], *, parallel: bool) -> Guide:
    """tool_choice "auto" with a response format: the answer in the format, or an array of calls."""
    defs: dict[str, Any] = {}
    answer = _embedded(orjson.loads(fmt.text), "format", defs)
    union = {"anyOf": [answer, _calls_schema(tools, parallel, defs)], "$defs": defs}
    return Guide("json_schema", orjson.dumps(union).decode(), fmt.param)
