"""Tools and tool_choice, checked (OpenAI's refusals, by name) and turned into the one guide and reading."""

import json

import pytest

from gateway.errors import InvalidRequest, UnsupportedParameter
from gateway.tooluse import tool_use

PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": PARAMS}}
FLAT = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": PARAMS}


def refused(v, flat=False) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as e:
        tool_use(v, flat=flat)
    return e.value


def test_the_guide_and_reading_for_each_tool_choice():
    auto = tool_use({"tools": [TOOL]})
    assert (auto.choice, auto.guide, auto.reading, auto.offered) == ("auto", None, "family", True)
    none = tool_use({"tools": [TOOL], "tool_choice": "none"})
    assert (none.reading, none.offered, none.guide) == ("text", False, None)
    required = tool_use({"tools": [TOOL], "tool_choice": "required"})
    assert required.reading == "array" and required.guide.param == "tool_choice"
    named = tool_use({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert (named.reading, named.forced) == ("named", "get_weather") and json.loads(named.guide.text) == PARAMS
    both = tool_use({"tools": [TOOL], "response_format": {"type": "json_object"}})
    assert both.reading == "array" and len(json.loads(both.guide.text)["anyOf"]) == 2
    plain = tool_use({"response_format": {"type": "json_object"}})
    assert plain.reading == "text" and plain.guide.param == "response_format"


def test_the_responses_api_flat_shape():
    named = tool_use({"tools": [FLAT], "tool_choice": {"type": "function", "name": "get_weather"}}, flat=True)
    assert named.forced == "get_weather" and named.tools[0].description == "Weather"


@pytest.mark.parametrize(
    "v,param,code",
    [
        ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name", "invalid_value"),
        ({"tools": [TOOL, TOOL]}, "tools", "invalid_value"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type", "unsupported_parameter"),
        ({"tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "tool_choice.function.name",
            "invalid_value",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": PARAMS}}]},
            "tools[0].function.parameters",
            "invalid_json_schema",
        ),
        ({"tools": [TOOL], "tool_choice": {"type": "allowed_tools"}}, "tool_choice.type", "unsupported_parameter"),
    ],
)
def test_refusals_name_the_parameter(v, param, code):
    e = refused(v)
    assert (e.param, e.code) == (param, code), e.message


def test_builtin_tools_of_the_responses_api_are_named():
    for kind in ("web_search", "file_search", "code_interpreter", "mcp", "computer_use_preview"):
        e = refused({"tools": [{"type": kind}]}, flat=True)
        assert isinstance(e, UnsupportedParameter) and kind in e.message


def test_strict_functions_follow_openais_rules():
    e = refused({"tools": [{**FLAT, "strict": True}]}, flat=True)
    assert e.message.startswith("Invalid schema for function 'get_weather': In context=(), 'additionalProperties'")
    ok = {**PARAMS, "additionalProperties": False}
    assert tool_use({"tools": [{**FLAT, "parameters": ok, "strict": True}]}, flat=True).tools[0].strict
