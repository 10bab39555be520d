"""What the stand-in "model" writes when it is guided or offered tools (deterministic, like the rest of engine.py).

* **A guide** (``guided_decoding_guide_type`` / ``guided_decoding_guide``, what xgrammar would constrain the real
  engine to): ``json_schema`` → an instance valid for the schema (``instance()``: every property, enum and anyOf
  choices and numbers picked from the prompt's hash; formats and lengths honoured; ``pattern`` only where one of the
  vocabulary's words matches); ``json`` → a JSON object. ``regex`` and ``ebnf_grammar`` are not emulated (plain
  text). The JSON text goes out in tokens of up to ``JSON_TOKEN_CHARS`` characters. For the gateway's "answer or
  calls" guide (an anyOf of the answer's schema and an array of calls) the calls are chosen when the request asks for
  a call (below).
* **Tools** in the rendered prompt, in the family's own layout (Llama 3.1's JSON function list, Hermes/Qwen's
  ``<tools>`` block, Mistral's ``[AVAILABLE_TOOLS]``): without a guide, the model calls one when *the request asks
  for a call* — the last user turn names an offered function — and never right after a tool result (it answers
  then). The call is written in the family's format, as Triton's postprocessing leaves it (special tokens dropped:
  ``<|python_tag|>`` and ``[TOOL_CALLS]`` do not appear; ``<tool_call>`` is not special in Qwen's tokenizer), its
  arguments an instance of the function's parameters.
* After a call the model ends its turn with the family's end-of-message token: Llama's is ``<|eom_id|>`` (its
  end_id is ``<|eot_id|>``), which ends generation only when it is among the stop words; otherwise the engine goes on
  ("assistant" and more words: the symptom NVIDIA's own llama_tool_call_parser.py has a FIXME for).
* ``[standin:think]`` in the prompt: the answer starts with a ``<think>…</think>`` block (Qwen3's reasoning).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

JSON_TOKEN_CHARS = 4
THINK_MARKER = "[standin:think]"
_FORMATS = {
    "date-time": "2024-07-26T12:00:00Z",
    "date": "2024-07-26",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "amber@example.com",
    "hostname": "amber.example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "uri": "https://example.com/amber",
}
# the end of a tool-calling turn, per family (Llama's built-in/ipython calls end with <|eom_id|>, Meta's prompt
# format; Qwen and Mistral end the turn with their eos)
EOM = {"llama3": "<|eom_id|>"}


def _h(material: str, path: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{material}|{path}".encode("utf-8", "surrogatepass")).digest()[:8], "big")


def _words(material: str, path: str, n: int = 1) -> str:
    from .engine import VOCAB

    return " ".join(VOCAB[_h(material, f"{path}/{i}") % len(VOCAB)] for i in range(n))


def _resolve(root: Any, ref: str) -> Any:
    node = root
    if ref == "#":
        return node
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _string(schema: dict, material: str, path: str) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    text = _words(material, path, 1 + _h(material, path + "#n") % 3)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        from .engine import VOCAB

        for candidate in (text, *VOCAB):
            try:
                if re.search(pattern, candidate):
                    text = candidate
                    break
            except re.error:
                break
    lo, hi = schema.get("minLength", 0), schema.get("maxLength")
    while len(text) < lo:
        text += " " + _words(material, f"{path}/pad{len(text)}")
    if isinstance(hi, int):
        text = text[:hi]
    return text


def _number(schema: dict, material: str, path: str, integer: bool) -> int | float:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    lo = 0 if lo is None else lo
    hi = lo + 100 if hi is None else hi
    if "exclusiveMinimum" in schema:
        lo = lo + 1 if integer else lo + 0.5
    if "exclusiveMaximum" in schema:
        hi = hi - 1 if integer else hi - 0.5
    span = max(hi - lo, 0)
    value: int | float = lo + (
        _h(material, path) % (int(span) + 1) if integer else (_h(material, path) % 1000) / 1000 * span
    )
    step = schema.get("multipleOf")
    if step:
        value = (int(value // step) + (1 if value % step and value // step * step < lo else 0)) * step
    return int(value) if integer else float(value)


def instance(schema: Any, material: str, *, root: Any = None, path: str = "$", depth: int = 0) -> Any:
    """A value valid for `schema` (a JSON Schema in what OpenAI's strict mode and xgrammar support)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return _words(material, path)
    if "$ref" in schema:
        return instance(_resolve(root, schema["$ref"]), material, root=root, path=path, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][_h(material, path) % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        variants = schema.get(key)
        if isinstance(variants, list) and variants:
            if depth > 4:  # recursion: prefer a variant that ends it
                variants = [v for v in variants if "$ref" not in json.dumps(v)] or variants
            pick = variants[_h(material, path + "#" + key) % len(variants)]
            return instance(pick, material, root=root, path=path, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[_h(material, path + "#type") % len(kinds)]
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return _typed(kind, schema, material, root, path, depth)


def _typed(kind: str, schema: dict, material: str, root: Any, path: str, depth: int) -> Any:
    if kind == "object":
        props = schema.get("properties") or {}
        if depth > 4:
            props = {k: v for k, v in props.items() if k in (schema.get("required") or [])}
        return {k: instance(v, material, root=root, path=f"{path}.{k}", depth=depth + 1) for k, v in props.items()}
    if kind == "array":
        lo = schema.get("minItems", 0)
        hi = schema.get("maxItems", lo + 2)
        n = max(lo, min(hi, 1 + _h(material, path + "#len") % 2)) if depth <= 4 else lo
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        return [
            instance(prefix[i] if i < len(prefix) else items, material, root=root, path=f"{path}[{i}]", depth=depth + 1)
            for i in range(n)
        ]
    if kind == "string":
        return _string(schema, material, path)
    if kind in ("integer", "number"):
        return _number(schema, material, path, kind == "integer")
    if kind == "boolean":
        return _h(material, path) % 2 == 0
    return None


def json_tokens(value: Any) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return [text[i : i + JSON_TOKEN_CHARS] for i in range(0, len(text), JSON_TOKEN_CHARS)]


# -- tools in the rendered prompt ----------------------------------------------------------------------------------
def _objects(text: str, start: int, end: int) -> tuple[list[dict], int]:
    """The JSON objects written one after the other in text[start:end], and where the last one ends."""
    decoder = json.JSONDecoder()
    out: list[dict] = []
    i = last = start
    while True:
        i = text.find("{", i, end)
        if i < 0:
            return out, last
        try:
            obj, i = decoder.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
            last = i


def _listing(prompt: str) -> tuple[str, int, int] | None:
    """(family, start, end) of the tool list in the rendered prompt, in the family's own layout."""
    if "<tools>\n" in prompt and "\n</tools>" in prompt:  # (the instructions mention "<tools></tools>" first)
        start = prompt.index("<tools>\n")
        return "hermes", start, prompt.index("\n</tools>", start)
    if "[AVAILABLE_TOOLS]" in prompt and "[/AVAILABLE_TOOLS]" in prompt:
        return "mistral", prompt.index("[AVAILABLE_TOOLS]"), prompt.index("[/AVAILABLE_TOOLS]")
    if "Environment: ipython" in prompt and "following functions" in prompt:
        start = prompt.index("following functions")
        end = prompt.find("<|eot_id|>", start)
        return "llama3", start, len(prompt) if end < 0 else end
    return None


def offered(prompt: str) -> tuple[str, list[dict]] | None:
    """(family, [{name, parameters}]) of the tools the rendered prompt offers."""
    found = _listing(prompt)
    if found is None:
        return None
    family, start, end = found
    tools = []
    for obj in _objects(prompt, start, end)[0]:
        fn = obj.get("function", obj)
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools.append({"name": fn["name"], "parameters": fn.get("parameters") or {"type": "object"}})
    return family, tools


def _last_turn(prompt: str, family: str) -> tuple[str, int]:
    """(role, where its text starts) of the last turn before the generation prompt."""
    if family == "llama3":
        body = prompt.rsplit("<|start_header_id|>assistant<|end_header_id|>", 1)[0]
        head = body.rfind("<|start_header_id|>")
        role_end = body.find("<|end_header_id|>", head)
        role = body[head + len("<|start_header_id|>") : role_end] if head >= 0 else ""
        return ("tool" if role == "ipython" else role), role_end
    if family == "hermes":
        body = prompt.rsplit("<|im_start|>assistant", 1)[0]
        start = body.rfind("<|im_start|>")
        return ("tool" if "<tool_response>" in body[start:] else "user"), start
    body = prompt.rstrip()
    if body.endswith("[/TOOL_RESULTS]"):
        return "tool", body.rfind("[TOOL_RESULTS]")
    return "user", body.rfind("[INST]")


def wanted_call(prompt: str) -> tuple[str, dict] | None:
    """(family, tool) when the request asks for a call: the last user turn (outside the tool list) names an
    offered function."""
    found = _listing(prompt)
    if found is None:
        return None
    family, start, end = found
    tools = offered(prompt)[1]  # type: ignore[index]
    role, turn = _last_turn(prompt, family)
    if role == "tool":
        return None
    listing_end = _objects(prompt, start, end)[1] if turn <= end else turn
    body = prompt.rsplit("<|start_header_id|>assistant<|end_header_id|>", 1)[0]
    text = body[max(turn, listing_end) :]
    for tool in tools:
        if re.search(rf"\b{re.escape(tool['name'])}\b", text):
            return family, tool
    return None


def call_tokens(family: str, tool: dict, material: str) -> list[str]:
    """One call in the family's format as the postprocessed text shows it, and the end of the turn."""
    arguments = instance(tool["parameters"], material, path="$args")
    key = "parameters" if family == "llama3" else "arguments"
    body = json.dumps({"name": tool["name"], key: arguments}, ensure_ascii=False)
    if family == "hermes":
        text = "<tool_call>\n" + body + "\n</tool_call>"
    elif family == "mistral":
        text = "[" + body + "]"
    else:
        text = body
    tokens = [text[i : i + JSON_TOKEN_CHARS] for i in range(0, len(text), JSON_TOKEN_CHARS)]
    if family in EOM:
        tokens.append(EOM[family])
    return tokens


def guided_tokens(guide_type: str, guide: str, prompt: str, material: str) -> list[str] | None:
    """What the guide constrains the answer to (None: a guide type the stand-in does not emulate)."""
    if guide_type == "json":
        return json_tokens({"answer": _words(material, "$json", 2)})
    if guide_type != "json_schema":
        return None
    schema = json.loads(guide)
    variants = schema.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and variants[1].get("type") == "array":
        # the gateway's "answer or calls" guide: calls when the request asks for one
        pick = variants[1] if wanted_call(prompt) else variants[0]
        return json_tokens(instance(pick, material, root=schema))
    return json_tokens(instance(schema, material))
