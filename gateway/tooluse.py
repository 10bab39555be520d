"""What a request asks of tools and of the answer's format: the tools offered (checked), tool_choice,
parallel_tool_calls, the response format — and from them the one guide the engine decodes with and how its output
is read (gateway/tools' formats). Chat's nested tool shape and the Responses API's flat one both land here.

How the guide is chosen (gateway/structured.py builds each):

====================================  ==================================  ===========================================
tool_choice                           guide                               the output is read as
====================================  ==================================  ===========================================
none (or no tools)                    the response format's, if any       text (tools are left out of the prompt)
auto, no response format              none                                the model family's own call format
auto, with a response format          the format's schema *or* an array   an array of calls, else the answer
                                      of calls (anyOf)
required                              a non-empty array of calls          the array's calls
a named function                      that function's parameters          the arguments of that one call
====================================  ==================================  ===========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .backends.base import Guide
from .errors import InvalidRequest, UnsupportedParameter
from .structured import check_schema, format_guide, format_or_calls_guide, named_tool_guide, required_tool_guide

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EMPTY_PARAMETERS = '{"type":"object","properties":{}}'
# Tool kinds OpenAI runs itself (the Responses API's built-in tools, chat's custom tools): named in the refusal
BUILT_IN = {
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "mcp",
    "computer_use",
    "computer_use_preview",
    "computer",
    "image_generation",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
    "tool_search",
    "namespace",
}


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None
    parameters: str  # the checked JSON Schema text
    strict: bool

    def as_template_tool(self) -> dict[str, Any]:
        """The shape chat templates expect (transformers passes OpenAI's chat tool objects)."""
        fn: dict[str, Any] = {"name": self.name, "parameters": orjson.loads(self.parameters)}
        if self.description:
            fn = {"name": self.name, "description": self.description, "parameters": fn["parameters"]}
        return {"type": "function", "function": fn}


@dataclass(frozen=True, slots=True)
class ToolUse:
    tools: tuple[Tool, ...] = ()
    choice: str = "auto"  # "none" | "auto" | "required" | "function"
    forced: str | None = None  # choice "function": its name
    parallel: bool = True
    guide: Guide | None = None  # what the engine is constrained to (None: free text)
    # how the output is read: "family" (the model's own call format), "array", "named", or "text"
    reading: str = "text"

    @property
    def offered(self) -> bool:
        """Whether the prompt renders the tools (tool_choice none leaves them out)."""
        return bool(self.tools) and self.choice != "none"

    @property
    def names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tools)

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)


NO_TOOLS = ToolUse()


def _tool(item: Any, where: str, flat: bool) -> Tool:
    if not isinstance(item, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where, code="invalid_type")
    kind = item.get("type")
    if kind != "function":
        if isinstance(kind, str) and (kind in BUILT_IN or kind.startswith(("web_search", "computer_use"))):
            raise UnsupportedParameter(
                f"'{where}.type' {kind!r} is not supported: this gateway runs no built-in tools "
                "(web search, file search, code interpreter, MCP, computer use, ...); offer function tools",
                param=f"{where}.type",
            )
        raise InvalidRequest(f"'{where}.type' must be 'function'", param=f"{where}.type", code="invalid_value")
    fn: Any
    if flat:
        fn, fwhere = item, where
        allowed = {"type", "name", "description", "parameters", "strict", "defer_loading"}
    else:
        fn, fwhere = item.get("function"), f"{where}.function"
        allowed = {"type", "function"}
        if not isinstance(fn, dict):
            raise InvalidRequest(
                f"Missing required parameter: '{fwhere}'.", param=fwhere, code="missing_required_parameter"
            )
    unknown = [k for k in item if k not in allowed]
    if not flat:
        unknown += [f"function.{k}" for k in fn if k not in ("name", "description", "parameters", "strict")]
    if unknown:
        raise InvalidRequest(f"Unrecognized request argument supplied: {where}.{unknown[0]}", param=where)
    name = fn.get("name")
    if not isinstance(name, str):
        raise InvalidRequest(
            f"Missing required parameter: '{fwhere}.name'.", param=f"{fwhere}.name", code="missing_required_parameter"
        )
    if not _NAME.match(name):
        raise InvalidRequest(
            f"Invalid '{fwhere}.name': string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]+$' (1 to 64 characters).",
            param=f"{fwhere}.name",
            code="invalid_value",
        )
    description = fn.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"'{fwhere}.description' must be a string", param=f"{fwhere}.description")
    strict = fn.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{fwhere}.strict' must be a boolean", param=f"{fwhere}.strict", code="invalid_type")
    if item.get("defer_loading"):
        raise UnsupportedParameter(f"'{where}.defer_loading' is not supported", param=f"{where}.defer_loading")
    parameters = fn.get("parameters")
    if parameters is None:
        text = EMPTY_PARAMETERS
    else:
        text = check_schema(
            parameters,
            what=f"function '{name}'",
            strict=bool(strict),
            param=f"{fwhere}.parameters",
            root_object=True,
        )
    return Tool(name, description, text, bool(strict))


def _choice(value: Any, tools: tuple[Tool, ...], flat: bool) -> tuple[str, str | None]:
    if value is None:
        return ("auto" if tools else "none"), None
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise InvalidRequest(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a function",
                param="tool_choice",
                code="invalid_value",
            )
        if value != "none" and not tools:
            raise InvalidRequest(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
                code="invalid_value",
            )
        return value, None
    if not isinstance(value, dict):
        raise InvalidRequest("'tool_choice' must be a string or an object", param="tool_choice", code="invalid_type")
    kind = value.get("type")
    if kind != "function":
        if isinstance(kind, str) and (kind in BUILT_IN or kind in ("allowed_tools", "file_search")):
            raise UnsupportedParameter(
                f"'tool_choice.type' {kind!r} is not supported: choose 'none', 'auto', 'required' or a function",
                param="tool_choice.type",
            )
        raise InvalidRequest("'tool_choice.type' must be 'function'", param="tool_choice.type", code="invalid_value")
    fn = value if flat else value.get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    where = "tool_choice.name" if flat else "tool_choice.function.name"
    if not isinstance(name, str):
        raise InvalidRequest(f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter")
    if name not in {t.name for t in tools}:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': function '{name}' is not one of the tools offered",
            param=where,
            code="invalid_value",
        )
    return "function", name


def tool_use(v: dict[str, Any], *, flat: bool = False) -> ToolUse:
    """From the validated fields of a chat (flat=False) or Responses (flat=True) request."""
    tools: list[Tool] = []
    for i, item in enumerate(v.get("tools") or ()):
        tools.append(_tool(item, f"tools[{i}]", flat))
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidRequest(
            f"Invalid 'tools': function name '{dup}' is given more than once", param="tools", code="invalid_value"
        )
    choice, forced = _choice(v.get("tool_choice"), tuple(tools), flat)
    parallel = v.get("parallel_tool_calls", True)
    if flat:
        text = v.get("text") or {}
        fmt = text.get("format") if isinstance(text, dict) else None
        guide = format_guide(fmt, param="text.format", flat=True) if fmt is not None else None
    else:
        fmt = v.get("response_format")
        guide = format_guide(fmt, param="response_format", flat=False) if fmt is not None else None
    offered = tuple(tools)
    if choice == "none" or not offered:
        return ToolUse(offered, "none" if not offered else choice, None, parallel, guide, "text")
    if choice == "function":
        tool = next(t for t in offered if t.name == forced)
        return ToolUse(offered, choice, forced, parallel, named_tool_guide(tool.parameters), "named")
    params = {t.name: t.parameters for t in offered}
    if choice == "required":
        return ToolUse(offered, choice, None, parallel, required_tool_guide(params, parallel=parallel), "array")
    if guide is not None:  # auto with a response format: the answer in the format, or calls
        union = format_or_calls_guide(guide, params, parallel=parallel)
        return ToolUse(offered, choice, None, parallel, union, "array")
    return ToolUse(offered, choice, None, parallel, None, "family")
