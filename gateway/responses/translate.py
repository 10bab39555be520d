"""A Responses API request → the chat request the engine runs (the same flow, one usage record), and the items the
store keeps. What vLLM's first Responses implementation (PR #20504) and Triton-fronting gateways do: the Responses
API is a shape over chat completions; what the engine sees is the same.

* ``input: "text"`` → a user message; ``{type: message, role, content: [input_text, input_image, output_text]}`` →
  the message (images as image_url parts);
* ``{type: function_call, call_id, name, arguments}`` → an assistant message's tool_calls (consecutive ones in one
  message); ``{type: function_call_output, call_id, output}`` → a ``tool`` message; ``{type: reasoning}`` → dropped
  (the chat templates drop earlier reasoning too);
* ``instructions`` → a leading system message (not carried to follow-ups);
* ``tools: [{type: function, name, parameters, strict}]`` → chat's nested tools; ``text.format`` →
  ``response_format``; ``max_output_tokens``, ``temperature``, ``top_p`` → ``max_tokens``, the same.

Built-in tools and other item kinds (web search calls, computer calls, item references, files) are refused by name.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from modelsvc.catalog import Model

from ..errors import InvalidRequest, UnsupportedParameter
from ..fields import validate
from ..params import ChatParams, responses_chat_params
from ..tooluse import ToolUse, tool_use

ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")
# item kinds other APIs' tools produce: named in the refusal
_OTHER_ITEMS = (
    "file_search_call",
    "web_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "item_reference",
    "compaction",
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(20)}"


@dataclass(frozen=True)
class ResponsesRequest:
    chat: ChatParams  # what the engine is asked
    input_items: list[dict[str, Any]]  # this request's input, as stored and listed (ids given)
    settings: dict[str, Any]  # what the response object repeats of the request
    store: bool
    previous_response_id: str | None


def _text_of(content: Any, where: str) -> str:
    """A function_call_output's output: a string, or text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise UnsupportedParameter(
                    f"'{where}[{j}]': only text is supported in a function call's output", param=f"{where}[{j}]"
                )
        return "\n".join(texts)
    raise InvalidRequest(f"'{where}' must be a string or an array of text parts", param=where, code="invalid_type")


def _parts(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    """A message's content as stored: a list of typed parts."""
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        return [{"type": kind, "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"'{where}' must be a string or an array of content parts", param=where, code="invalid_type"
        )
    out = []
    for j, part in enumerate(content):
        pw = f"{where}[{j}]"
        t = part.get("type") if isinstance(part, dict) else None
        if t in _TEXT_PARTS and isinstance(part.get("text"), str):
            out.append({"type": t if t in ("input_text", "output_text") else kind, "text": part["text"]})
        elif t == "refusal" and isinstance(part.get("refusal"), str):
            out.append({"type": "output_text", "text": part["refusal"]})
        elif t == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise UnsupportedParameter(
                    f"'{pw}': images are taken as image_url (an http(s) or data: URL); file_id is not supported",
                    param=pw,
                )
            out.append({"type": "input_image", "image_url": url, "detail": part.get("detail") or "auto"})
        elif t in ("input_file", "input_audio"):
            raise UnsupportedParameter(f"'{pw}.type' {t!r} is not supported: send text or images", param=f"{pw}.type")
        else:
            raise InvalidRequest(f"'{pw}' is not a supported content part", param=pw, code="invalid_value")
    return out


def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's input as items (as stored and listed by GET /v1/responses/{id}/input_items)."""
    if isinstance(value, str):
        return [
            {
                "id": new_id("msg"),
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_text", "text": value}],
            }
        ]
    out = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where, code="invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise InvalidRequest(
                    f"'{where}.role' must be one of {', '.join(ROLES)}", param=f"{where}.role", code="invalid_value"
                )
            parts = _parts(item.get("content"), f"{where}.content", role)
            out.append(
                {
                    "id": item.get("id") or new_id("msg"),
                    "type": "message",
                    "role": role,
                    "status": "completed",
                    "content": parts,
                }
            )
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise InvalidRequest(
                        f"Missing required parameter: '{where}.{key}'.",
                        param=f"{where}.{key}",
                        code="missing_required_parameter",
                    )
            out.append(
                {
                    "id": item.get("id") or new_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.call_id'.",
                    param=f"{where}.call_id",
                    code="missing_required_parameter",
                )
            output = _text_of(item.get("output"), f"{where}.output")
            out.append(
                {
                    "id": item.get("id") or new_id("fco"),
                    "type": "function_call_output",
                    "status": "completed",
                    "call_id": item["call_id"],
                    "output": output,
                }
            )
        elif kind == "reasoning":
            out.append({**item, "id": item.get("id") or new_id("rs")})
        elif kind in _OTHER_ITEMS:
            raise UnsupportedParameter(
                f"'{where}.type' {kind!r} is not supported: this gateway runs no built-in tools and keeps no "
                "conversations (send messages, function calls and their outputs)",
                param=f"{where}.type",
            )
        else:
            raise InvalidRequest(f"'{where}.type' {kind!r} is not an input item type", param=f"{where}.type")
    return out


def to_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items (stored history and this input) → chat messages."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            parts: list[dict[str, Any]] = []
            for p in item.get("content") or ():
                if p.get("type") == "input_image":
                    parts.append({"type": "image_url", "image_url": {"url": p["image_url"]}})
                else:
                    parts.append({"type": "text", "text": p.get("text", "")})
            role = item["role"]
            if all(p["type"] == "text" for p in parts):
                messages.append({"role": role, "content": "".join(p["text"] for p in parts)})
            else:
                messages.append({"role": role, "content": parts})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if (
                last is not None
                and last["role"] == "assistant"
                and ("tool_calls" in last or isinstance(last.get("content"), str))
            ):
                last.setdefault("tool_calls", []).append(call)  # a message and its calls, or parallel calls
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        # reasoning items: not replayed
    return messages


def _chat_forward(v: dict[str, Any]) -> dict[str, Any] | None:
    """The fields an OpenAI-compatible upstream gets, in chat's shape (it runs the chat request)."""
    out: dict[str, Any] = {}
    if v.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t},
            }
            for t in v["tools"]
        ]
    choice = v.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        out["tool_choice"] = choice
    if "parallel_tool_calls" in v:
        out["parallel_tool_calls"] = v["parallel_tool_calls"]
    fmt = (v.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif isinstance(fmt, dict):
        out["response_format"] = {"type": fmt.get("type")}
    return out or None


def _settings(v: dict[str, Any], tools: ToolUse, store: bool) -> dict[str, Any]:
    """What OpenAI's response object repeats of the request."""
    choice = v.get("tool_choice", "auto" if tools.tools else "none")
    fmt = (v.get("text") or {}).get("format") or {"type": "text"}
    return {
        "instructions": v.get("instructions"),
        "max_output_tokens": v.get("max_output_tokens"),
        "max_tool_calls": v.get("max_tool_calls"),
        "metadata": v.get("metadata") or {},
        "parallel_tool_calls": v.get("parallel_tool_calls", True),
        "previous_response_id": v.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": store,
        "temperature": v.get("temperature", 1.0),
        "text": {"format": fmt, "verbosity": "medium"},
        "tool_choice": choice,
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.as_template_tool()["function"]["parameters"],
                "strict": t.strict,
            }
            for t in tools.tools
        ],
        "top_logprobs": 0,
        "top_p": v.get("top_p", 1.0),
        "truncation": "disabled",
        "user": v.get("user"),
        "background": False,
    }


def validated(body: dict[str, Any]) -> dict[str, Any]:
    v = validate(body, "responses")
    if "input" not in v and "previous_response_id" not in v:
        raise InvalidRequest("you must provide an 'input' parameter", param="input", code="missing_required_parameter")
    if "stream_options" in v and not v.get("stream"):
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options", code="invalid_value"
        )
    return v


def responses_request(
    v: dict[str, Any], model: Model, history: list[dict[str, Any]], *, storing: bool
) -> ResponsesRequest:
    """`v`: the validated fields; `history`: the stored items before this input (previous_response_id)."""
    items = input_items(v.get("input", []))
    tools = tool_use(v, flat=True)
    messages = to_messages([*history, *items])
    if v.get("instructions"):
        messages.insert(0, {"role": "system", "content": v["instructions"]})
    if not messages:
        raise InvalidRequest("the input is empty", param="input", code="invalid_value")
    store = bool(v.get("store", True)) and storing
    chat = responses_chat_params(v, messages, model, tools, _chat_forward(v))
    return ResponsesRequest(chat, items, _settings(v, tools, store), store, v.get("previous_response_id"))
