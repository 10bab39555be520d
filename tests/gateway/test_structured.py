"""Schemas are checked before any engine work, as OpenAI's strict mode checks them and with its wording; the guides
sent to the engine are the inner schema, and what the gateway composes for tool_choice is itself valid."""

import json
from typing import Literal

import jsonschema
import pydantic
import pytest
from openai.lib._pydantic import to_strict_json_schema

from gateway.errors import InvalidRequest
from gateway.structured import (
    MAX_DEPTH,
    check_schema,
    format_guide,
    format_or_calls_guide,
    named_tool_guide,
    required_tool_guide,
)


class Step(pydantic.BaseModel):
    explanation: str
    output: int


class Math(pydantic.BaseModel):
    steps: list[Step]
    final_answer: str | None
    kind: Literal["proof", "calculation"]


def refusal(schema, strict=True) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as e:
        check_schema(schema, what="response_format 'x'", strict=strict, param="response_format")
    assert e.value.status == 400 and e.value.code == "invalid_json_schema" and e.value.param == "response_format"
    return e.value


def test_what_the_sdks_parse_helper_sends_is_accepted_and_sent_as_is():
    schema = to_strict_json_schema(Math)
    text = check_schema(schema, what="response_format 'Math'", strict=True, param="response_format")
    assert json.loads(text) == schema


def test_the_inner_schema_is_the_guide():
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "Math", "strict": True, "schema": to_strict_json_schema(Math)},
    }
    guide = format_guide(fmt, param="response_format", flat=False)
    assert guide.type == "json_schema" and json.loads(guide.text) == fmt["json_schema"]["schema"]
    flat = {"type": "json_schema", "name": "Math", "strict": True, "schema": to_strict_json_schema(Math)}
    assert format_guide(flat, param="text.format", flat=True).text == guide.text


def test_json_object_is_an_object_schema_not_any_json():
    guide = format_guide({"type": "json_object"}, param="response_format", flat=False)
    assert (guide.type, json.loads(guide.text)) == ("json_schema", {"type": "object"})
    assert format_guide({"type": "text"}, param="response_format", flat=False) is None


@pytest.mark.parametrize(
    "schema,message",
    [
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "Invalid schema for response_format 'x': In context=(), 'additionalProperties' is required to be supplied "
            "and to be false.",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
            "Invalid schema for response_format 'x': In context=(), 'required' is required to be supplied and to be "
            "an array including every key in properties. Missing 'a'.",
        ),
        (
            {"type": "array", "items": {"type": "string"}},
            "Invalid schema for response_format 'x': schema must be a JSON Schema of 'type: \"object\"', got 'type: "
            '"array"\'.',
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "minLength": 3}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "Invalid schema for response_format 'x': In context=('properties', 'a'), 'minLength' is not permitted.",
        ),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a"], "additionalProperties": False},
            "Invalid schema for response_format 'x': In context=('properties', 'a'), schema must have a 'type' key.",
        ),
    ],
)
def test_strict_mode_refusals_in_openais_words(schema, message):
    assert refusal(schema).message == message


def test_non_strict_schemas_skip_the_strict_rules_but_not_the_rest():
    check_schema(
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 3}}}, what="x", strict=False, param="p"
    )
    check_schema({"type": "array"}, what="x", strict=False, param="p")  # any root outside strict mode
    assert "not a valid JSON Schema" in refusal({"type": "strin"}, strict=False).message


def test_pathological_schemas_are_refused_not_sent():
    deep = node = {"type": "object"}
    for _ in range(MAX_DEPTH + 1):
        node["properties"] = {"a": {"type": "object"}}
        node = node["properties"]["a"]
    assert "nested more than" in refusal(deep, strict=False).message
    many = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5001)}}
    assert "5001 properties" in refusal(many, strict=False).message
    enums = {"type": "object", "properties": {"a": {"enum": list(range(1001))}}}
    assert "1001 enum values" in refusal(enums, strict=False).message
    huge = {"type": "object", "description": "x" * 200_000}
    assert "bytes" in refusal(huge, strict=False).message
    assert "local references" in refusal({"$ref": "https://evil.example/schema.json"}, strict=False).message
    assert "can not be resolved" in refusal({"$ref": "#/$defs/missing"}, strict=False).message
    loop = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    assert "refers only to itself" in refusal(loop, strict=False).message


def test_recursive_schemas_are_fine():
    tree = {
        "type": "object",
        "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["value", "children"],
        "additionalProperties": False,
    }
    check_schema(tree, what="x", strict=True, param="p")


TOOL_PARAMS = {
    "get_weather": json.dumps(
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
            "required": ["city", "unit"],
            "additionalProperties": False,
            "$defs": {"Unit": {"enum": ["c", "f"]}},
        }
    ),
    "get_time": '{"type":"object","properties":{}}',
}


def test_required_guide_is_a_valid_schema_of_offered_calls_only():
    schema = json.loads(required_tool_guide(TOOL_PARAMS, parallel=True).text)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate([{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}], schema)
    jsonschema.validate([{"name": "get_time", "arguments": {}}, {"name": "get_time", "arguments": {}}], schema)
    for bad in (
        [],
        [{"name": "rm", "arguments": {}}],
        [{"name": "get_weather", "arguments": {"city": "P", "unit": "k"}}],
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    single = json.loads(required_tool_guide(TOOL_PARAMS, parallel=False).text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "get_time", "arguments": {}}] * 2, single)


def test_named_guide_is_the_functions_parameters():
    assert named_tool_guide(TOOL_PARAMS["get_weather"]).text == TOOL_PARAMS["get_weather"]


def test_answer_or_calls_guide():
    fmt = format_guide(
        {"type": "json_schema", "json_schema": {"name": "Math", "strict": True, "schema": to_strict_json_schema(Math)}},
        param="response_format",
        flat=False,
    )
    schema = json.loads(format_or_calls_guide(fmt, TOOL_PARAMS, parallel=True).text)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"steps": [{"explanation": "e", "output": 1}], "final_answer": None, "kind": "proof"}, schema)
    jsonschema.validate([{"name": "get_time", "arguments": {}}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"steps": []}, schema)
