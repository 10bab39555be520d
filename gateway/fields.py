"""Every request field the gateway accepts, per endpoint: ONE table, from which come the validation of each field,
the refusal of unknown ones ("Unrecognized request argument supplied: X", as OpenAI answers) and the request schemas
of the OpenAPI document (gateway/openapi.py).

A row says a field's name, JSON type(s), range, and how far it is supported:

* ``HONOURED``: validated and acted on (or, for labels like ``user`` and ``metadata``, accepted and recorded nowhere);
* ``NEUTRAL``: OpenAI documents it and no model here can honour it: accepted at its neutral values (those that ask
  for nothing, e.g. ``tools: []``), refused by name (400 ``unsupported_parameter``) otherwise — never silently dropped;
* ``REFUSED``: refused by name whatever its value (``null`` aside).

``validate(body, endpoint)`` checks each field of a body against its row (type, range, support; or the row's own
parser for the few fields whose shape is richer) and returns the values given; what needs the model or several
fields at once (max_tokens against the model's limit, images in messages, min_tokens against max_tokens) is done by
gateway/params.py on those values. A new field is one row here, plus the code that acts on it when it is honoured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from .errors import InvalidRequest, UnsupportedParameter

MAX_MESSAGES = 4096
MAX_STOP = 4
MAX_BAD_WORDS = 64
MAX_TOOLS = 128  # OpenAI's limit ("array too long. Expected an array with maximum length 128")
MAX_N = 128  # OpenAI's limit for n


class Support(str, Enum):
    HONOURED = "honoured"
    NEUTRAL = "neutral only"
    REFUSED = "refused"


HONOURED, NEUTRAL, REFUSED = Support.HONOURED, Support.NEUTRAL, Support.REFUSED

# JSON type → the Python types orjson decodes it to (a JSON integer is also a number; a bool is neither)
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_ARTICLE = {"integer": "an integer", "object": "an object", "array": "an array"}

Parser = Callable[[str, Any], Any]  # (name, value) → the validated value; raises InvalidRequest naming the field


@dataclass(frozen=True)
class Field:
    name: str
    types: tuple[str, ...]  # JSON types ("string", "integer", "number", "boolean", "object", "array")
    support: Support = HONOURED
    lo: float | None = None  # inclusive minimum (exclusive with lo_open)
    hi: float | None = None  # inclusive maximum
    lo_open: bool = False
    neutral: tuple[Any, ...] = ()  # NEUTRAL: the values accepted (null always is)
    required: bool = False
    doc: str = ""
    refusal: str = ""  # the message of the unsupported_parameter refusal (default: not supported by the models)
    out_of_range: str = ""  # the message when outside [lo, hi] (default: the range)
    parse: Parser | None = None  # a richer shape than type + range: the parser checks the type itself
    schema: dict[str, Any] = field(default_factory=dict)  # extra JSON Schema for the OpenAPI document (items, ...)
    group: str = ""  # "sampling", "extension": how gateway/params.py gathers the values
    _py: tuple[type, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_py", tuple(t for name in self.types for t in _PY_TYPES[name]))

    def check(self, value: Any) -> Any:
        """The value, validated (not null: null means "not given" and never reaches here)."""
        if self.parse is not None:
            value = self.parse(self.name, value)
        else:
            if type(value) not in self._py:
                wanted = " or ".join(_ARTICLE.get(t, "a " + t) for t in self.types)
                raise InvalidRequest(
                    f"'{self.name}' must be {wanted}, got {type(value).__name__}", param=self.name, code="invalid_type"
                )
            if (self.lo is not None or self.hi is not None) and type(value) is not str:
                self._range(value)
        if self.support is not HONOURED and value not in self.neutral:
            raise UnsupportedParameter(
                self.refusal or f"'{self.name}' is not supported by this gateway's models", param=self.name
            )
        return value

    def _range(self, v: float) -> None:
        lo, hi = self.lo, self.hi
        below = lo is not None and (v <= lo if self.lo_open else v < lo)
        if not below and (hi is None or v <= hi) and (type(v) is int or math.isfinite(v)):
            return
        if self.out_of_range:
            raise InvalidRequest(self.out_of_range, param=self.name, code="invalid_value")
        show = (lambda b: str(int(b))) if "number" not in self.types else (lambda b: f"{b:g}")
        if self.lo_open:
            where = f"in ({show(lo)}, {show(hi)}]"
        elif hi is None:
            where = f">= {show(lo)}"
        else:
            where = f"between {show(lo)} and {show(hi)}"
        raise InvalidRequest(f"'{self.name}' must be {where}, got {v}", param=self.name, code="invalid_value")

    def json_schema(self) -> dict[str, Any]:
        """This field in the OpenAPI document: what a client may send."""
        out: dict[str, Any]
        if self.support is REFUSED:
            out = {"type": "null"}
        elif self.support is NEUTRAL:
            out = {"enum": [None, *self.neutral]}
        else:
            types = list(self.types) if self.required else [*self.types, "null"]
            out = {"type": types[0] if len(types) == 1 else types}
            if self.lo is not None:
                out["exclusiveMinimum" if self.lo_open else "minimum"] = _json_number(self.lo)
            if self.hi is not None:
                out["maximum"] = _json_number(self.hi)
            out.update(self.schema)
        description = self.doc
        if self.support is not HONOURED:
            refused = "Not supported: refused unless null." if self.support is REFUSED else "Not supported beyond this."
            description = f"{description} {refused}".strip()
        if description:
            out["description"] = description
        return out


def _json_number(v: float) -> int | float:
    return int(v) if float(v).is_integer() and abs(v) < 2**63 else v


@dataclass(frozen=True)
class Endpoint:
    name: str  # "chat.completions", "completions", "images.generations"
    fields: dict[str, Field]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields.values() if f.required)

    def with_fields(self, *added: Field) -> Endpoint:
        return replace(self, fields={**self.fields, **{f.name: f for f in added}})


# -- the richer shapes -------------------------------------------------------------------------------------------------
def _stop(name: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,) if v else ()
    if isinstance(v, list) and len(v) <= MAX_STOP and all(isinstance(s, str) and s for s in v):
        return tuple(v)
    raise InvalidRequest(
        f"'{name}' must be a non-empty string or a list of up to {MAX_STOP} non-empty strings",
        param=name,
        code="invalid_value",
    )


def _bad_words(name: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or len(v) > MAX_BAD_WORDS or not all(isinstance(w, str) and w for w in v):
        raise InvalidRequest(
            f"'{name}' must be a list of up to {MAX_BAD_WORDS} non-empty strings", param=name, code="invalid_value"
        )
    return tuple(v)


def _messages(name: str, v: Any) -> list[Any]:
    if not isinstance(v, list) or not v:
        raise InvalidRequest(f"'{name}' must be a non-empty array", param=name, code="invalid_value")
    if len(v) > MAX_MESSAGES:
        raise InvalidRequest(
            f"'{name}' has {len(v)} entries; at most {MAX_MESSAGES} are accepted", param=name, code="invalid_value"
        )
    return v  # each message: gateway/params.py (it depends on the model: images, placeholders)


def _prompt(name: str, v: Any) -> str:
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
        v = v[0]
    if not isinstance(v, str):
        raise InvalidRequest(
            f"'{name}' must be a string (a batch of prompts is not supported)", param=name, code="invalid_type"
        )
    return v


def _tools(name: str, v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise InvalidRequest(f"'{name}' must be an array", param=name, code="invalid_type")
    if len(v) > MAX_TOOLS:
        raise InvalidRequest(
            f"Invalid '{name}': array too long. Expected an array with maximum length {MAX_TOOLS}, but got an "
            f"array with length {len(v)} instead.",
            param=name,
            code="array_above_max_length",
        )
    return v  # each tool: gateway/params.py (names, schemas, the kinds this gateway runs)


def _stream_options(name: str, v: Any) -> dict[str, bool]:
    if not isinstance(v, dict):
        raise InvalidRequest(f"'{name}' must be an object", param=name, code="invalid_type")
    out = {}
    for key, value in v.items():
        if key not in ("include_usage", "include_obfuscation"):
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}.{key}", param=f"{name}.{key}")
        if value is not None and not isinstance(value, bool):
            raise InvalidRequest(
                f"'{key}' must be a boolean, got {type(value).__name__}", param=key, code="invalid_type"
            )
        out[key] = bool(value)
    return out  # include_obfuscation: padding against length side channels, no use on a self-hosted gateway


# -- the table ---------------------------------------------------------------------------------------------------------
def _number(name: str, lo: float, hi: float, doc: str, **kw: Any) -> Field:
    return Field(name, ("number",), lo=lo, hi=hi, doc=doc, **kw)


def _flag(name: str, doc: str, **kw: Any) -> Field:
    return Field(name, ("boolean",), doc=doc, **kw)


def _text(name: str, doc: str, **kw: Any) -> Field:
    return Field(name, ("string",), doc=doc, **kw)


MODEL = _text(
    "model", "The service's access name, <owner>/<name>.", required=True, schema={"examples": ["u-8105f7322477/test"]}
)
_SAMPLING = (
    _number("temperature", 0, 2, "Sampling temperature.", group="sampling"),
    _number("top_p", 0, 1, "Nucleus sampling.", group="sampling"),
    _number("presence_penalty", -2, 2, "", group="sampling"),
    _number("frequency_penalty", -2, 2, "", group="sampling"),
    Field("seed", ("integer",), lo=-(2**63), hi=2**64 - 1, doc="Signed or unsigned 64-bit.", group="sampling"),
)
# Engine extensions vLLM and TensorRT-LLM users send (vLLM's names and ranges). Each reaches the engine only through
# an input the model's config declares: the backend's check() refuses it otherwise, naming it.
_EXTENSIONS = (
    Field("top_k", ("integer",), lo=-1, hi=2**31 - 1, doc="-1 or 0: all tokens.", group="extension"),
    _number("min_p", 0, 1, "", group="extension"),
    Field("min_tokens", ("integer",), lo=0, doc="At most max_tokens.", group="extension"),
    _number("repetition_penalty", 0, 2, "", lo_open=True, group="extension"),
    _number("length_penalty", -10, 10, "", group="extension"),
    _flag("ignore_eos", "Generate until max_tokens.", group="extension"),
    Field("beam_width", ("integer",), lo=1, hi=64, group="extension"),
    Field(
        "bad_words",
        ("array",),
        parse=_bad_words,
        schema={"maxItems": MAX_BAD_WORDS, "items": {"type": "string", "minLength": 1}},
        group="extension",
    ),
)
_TEXT_COMMON = (
    MODEL,
    Field("max_tokens", ("integer",), lo=1, doc="At most the model's max_output_tokens."),
    *_SAMPLING,
    Field(
        "n",
        ("integer",),
        lo=1,
        hi=MAX_N,
        doc="Choices (the engine's num_return_sequences: only where the model's config declares it).",
    ),
    _flag("stream", "Server-sent events, ending with data: [DONE]."),
    Field(
        "stream_options",
        ("object",),
        parse=_stream_options,
        doc="Only with stream: true.",
        schema={
            "properties": {"include_usage": {"type": "boolean"}, "include_obfuscation": {"type": "boolean"}},
            "additionalProperties": False,
        },
    ),
    Field(
        "stop",
        ("string", "array"),
        parse=_stop,
        schema={"maxItems": MAX_STOP, "items": {"type": "string", "minLength": 1}},
        doc="Cut before the first match (excluded from the output).",
    ),
    _text("user", "A label for the caller's end user (recorded nowhere)."),
    Field("logit_bias", ("object",), NEUTRAL, neutral=({},)),
    *_EXTENSIONS,
)
_NOT_STORED = (
    "'store' is not supported for chat completions: stored responses are the Responses API's (POST /v1/responses)"
)
_NO_BUILTIN_TOOLS = (
    "built-in tools (web search, file search, code interpreter, MCP, computer use) are not run by this gateway"
)
_NO_MODERATION = "'moderation' is not supported: this gateway runs no moderation model"
_NO_TRUNCATION = "only truncation 'disabled' is supported: an input longer than the model's context is refused"
_NO_CONVERSATIONS = "the Conversations API is not supported: chain responses with 'previous_response_id'"
_LOGPROBS_ALTERNATIVES = (
    "above 0 is not supported: the engine returns the log probability of each chosen token, not of alternatives"
)
CHAT = Endpoint(
    "chat.completions",
    {
        f.name: f
        for f in (
            *_TEXT_COMMON,
            Field(
                "messages",
                ("array",),
                required=True,
                parse=_messages,
                schema={"minItems": 1, "maxItems": MAX_MESSAGES, "items": {"$ref": "#/components/schemas/Message"}},
            ),
            Field("max_completion_tokens", ("integer",), lo=1, doc="max_tokens' newer name (wins over it)."),
            _flag("logprobs", "The chosen tokens' log probabilities."),
            Field(
                "top_logprobs",
                ("integer",),
                NEUTRAL,
                lo=0,
                hi=20,
                neutral=(0,),
                refusal=f"'top_logprobs' {_LOGPROBS_ALTERNATIVES}",
                doc="Only the chosen tokens' log probabilities are available.",
            ),
            Field(
                "response_format",
                ("object",),
                doc="text, json_object or json_schema: enforced with the engine's guided decoding (refused where the "
                "model has none).",
            ),
            Field(
                "tools",
                ("array",),
                parse=_tools,
                doc="Function tools, rendered with the model's chat template.",
                schema={"maxItems": MAX_TOOLS, "items": {"type": "object"}},
            ),
            Field("tool_choice", ("string", "object"), doc="none, auto, required or a named function."),
            _flag("parallel_tool_calls", "false: at most one call per answer."),
            Field(
                "functions",
                ("array",),
                NEUTRAL,
                neutral=([],),
                refusal="'functions' is deprecated and not supported: send 'tools'",
            ),
            Field(
                "function_call",
                ("string", "object"),
                NEUTRAL,
                neutral=("none",),
                refusal="'function_call' is deprecated and not supported: send 'tool_choice'",
            ),
            Field("audio", ("object",), REFUSED),
            Field("prediction", ("object",), REFUSED),
            Field("store", ("boolean",), NEUTRAL, neutral=(False,), refusal=_NOT_STORED),
            Field("modalities", ("array",), NEUTRAL, neutral=(["text"],)),
            Field("reasoning_effort", ("string",), REFUSED),
            Field("web_search_options", ("object",), REFUSED, refusal=_NO_BUILTIN_TOOLS),
            Field("service_tier", ("string",), NEUTRAL, neutral=("auto", "default")),
            Field("verbosity", ("string",), NEUTRAL, neutral=("medium",), doc="medium: the model's own."),
            Field("moderation", ("object",), REFUSED, refusal=_NO_MODERATION),
            # labels that change nothing in the answer
            Field("metadata", ("object",), doc="Accepted, recorded nowhere."),
            _text("prompt_cache_key", "Accepted (no prompt cache)."),
            _text("prompt_cache_retention", "Accepted (no prompt cache)."),
            Field("prompt_cache_options", ("object",), doc="Accepted (no prompt cache)."),
            _text("safety_identifier", "Accepted, recorded nowhere."),
        )
    },
)
COMPLETIONS = Endpoint(
    "completions",
    {
        f.name: f
        for f in (
            *_TEXT_COMMON,
            Field(
                "prompt",
                ("string", "array"),
                required=True,
                parse=_prompt,
                schema={"minItems": 1, "maxItems": 1, "items": {"type": "string"}},
                doc="One prompt (a batch of prompts is not supported).",
            ),
            _flag("echo", "Put the prompt before the answer."),
            Field(
                "logprobs",
                ("integer",),
                NEUTRAL,
                lo=0,
                hi=5,
                neutral=(0,),
                refusal=f"'logprobs' {_LOGPROBS_ALTERNATIVES} (send 0)",
                doc="0: the chosen tokens' log probabilities (no alternatives).",
            ),
            Field("best_of", ("integer",), NEUTRAL, neutral=(1,)),
            Field("suffix", ("string",), NEUTRAL, neutral=("",)),
        )
    },
)
IMAGES = Endpoint(
    "images.generations",
    {
        f.name: f
        for f in (
            MODEL,
            _text("prompt", "What to draw.", required=True, schema={"minLength": 1}),
            Field("n", ("integer",), lo=1, hi=10, doc="Images to generate (one engine request each)."),
            _text("size", "The size the model is deployed with (or auto).", schema={"examples": ["64x64"]}),
            Field(
                "response_format",
                ("string",),
                NEUTRAL,
                neutral=("b64_json",),
                refusal="only response_format 'b64_json' is supported (images are not stored)",
            ),
            # OpenAI's image options, at the values that describe what the engine makes: one opaque PNG
            Field("quality", ("string",), NEUTRAL, neutral=("auto", "standard"), doc="The deployed model's quality."),
            Field(
                "style", ("string",), NEUTRAL, neutral=("vivid",), doc="vivid (OpenAI's default): the prompt decides."
            ),
            Field("background", ("string",), NEUTRAL, neutral=("auto", "opaque"), doc="Images are opaque."),
            Field("output_format", ("string",), NEUTRAL, neutral=("png",), doc="Images are PNG."),
            Field("output_compression", ("integer",), NEUTRAL, neutral=(100,), doc="PNG: no lossy compression."),
            Field(
                "moderation",
                ("string",),
                NEUTRAL,
                neutral=("auto", "low"),
                doc="This gateway runs no image moderation.",
            ),
            Field("partial_images", ("integer",), NEUTRAL, neutral=(0,), doc="No streamed partial images."),
            _flag("stream", "false: images are not streamed.", support=NEUTRAL, neutral=(False,)),
            Field("complexity", ("string",), REFUSED),
            Field("svg", ("object",), REFUSED),
            Field("frame_count", ("integer",), REFUSED),
            Field("frame_duration_ms", ("integer",), REFUSED),
            _text("user", "A label for the caller's end user (recorded nowhere)."),
            _text("safety_identifier", "Accepted, recorded nowhere."),
            _text("negative_prompt", "What not to draw (where the model takes one)."),
        )
    },
)


def _input(name: str, v: Any) -> str | list[Any]:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        if len(v) > MAX_MESSAGES:
            raise InvalidRequest(
                f"'{name}' has {len(v)} items; at most {MAX_MESSAGES} are accepted", param=name, code="invalid_value"
            )
        return v  # each item: gateway/responses/translate.py
    raise InvalidRequest(f"'{name}' must be a string or an array of input items", param=name, code="invalid_type")


def _reasoning(name: str, v: Any) -> dict[str, Any]:
    """Accepted so that clients that always send it (with nothing asked) work; a setting is refused by name."""
    if not isinstance(v, dict):
        raise InvalidRequest(f"'{name}' must be an object", param=name, code="invalid_type")
    for key, value in v.items():
        if key not in ("effort", "summary", "generate_summary"):
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}.{key}", param=f"{name}.{key}")
        if value is not None:
            raise UnsupportedParameter(
                f"'{name}.{key}' is not supported: this gateway's models do not take reasoning settings "
                "(a model that reasons shows it as a reasoning item)",
                param=f"{name}.{key}",
            )
    return v


def _text_config(name: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidRequest(f"'{name}' must be an object", param=name, code="invalid_type")
    for key, value in v.items():
        if key not in ("format", "verbosity"):
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}.{key}", param=f"{name}.{key}")
        if key == "verbosity" and value not in (None, "medium"):
            raise UnsupportedParameter(
                f"'{name}.verbosity' other than 'medium' is not supported", param=f"{name}.verbosity"
            )
    return v  # text.format: gateway/structured.py


RESPONSES = Endpoint(
    "responses",
    {
        f.name: f
        for f in (
            MODEL,
            Field(
                "input",
                ("string", "array"),
                parse=_input,
                doc="Text, or input items: messages (text, images), function calls and their outputs.",
                schema={"maxItems": MAX_MESSAGES},
            ),
            _text("instructions", "A system message before the input (not carried to follow-ups)."),
            Field("tools", ("array",), parse=_tools, schema={"maxItems": MAX_TOOLS, "items": {"type": "object"}}),
            Field("tool_choice", ("string", "object"), doc="none, auto, required or a named function."),
            _flag("parallel_tool_calls", "false: at most one call per answer."),
            Field("text", ("object",), parse=_text_config, doc="format: text, json_object or json_schema."),
            Field("max_output_tokens", ("integer",), lo=16, doc="At most the model's max_output_tokens."),
            _number("temperature", 0, 2, "Sampling temperature."),
            _number("top_p", 0, 1, "Nucleus sampling."),
            Field("top_logprobs", ("integer",), NEUTRAL, lo=0, hi=20, neutral=(0,)),
            _flag("stream", "Typed server-sent events, ending with response.completed (no [DONE])."),
            Field(
                "stream_options",
                ("object",),
                parse=_stream_options,
                schema={"properties": {"include_obfuscation": {"type": "boolean"}}, "additionalProperties": False},
            ),
            _flag("store", "Keep the response for previous_response_id and GET /v1/responses/{id} (default true)."),
            _text("previous_response_id", "Continue from a stored response of the same owner."),
            Field("metadata", ("object",), doc="Stored with the response and returned with it."),
            Field("reasoning", ("object",), parse=_reasoning, doc="Accepted with no setting in it."),
            Field("include", ("array",), NEUTRAL, neutral=([],)),
            Field("truncation", ("string",), NEUTRAL, neutral=("disabled",), refusal=_NO_TRUNCATION),
            Field("service_tier", ("string",), NEUTRAL, neutral=("auto", "default")),
            _flag("background", "false: no background responses.", support=NEUTRAL, neutral=(False,)),
            Field("max_tool_calls", ("integer",), lo=1, doc="Built-in tool calls: this gateway runs none."),
            Field("conversation", ("string", "object"), REFUSED, refusal=_NO_CONVERSATIONS),
            Field("prompt", ("object",), REFUSED, refusal="stored prompt templates are not supported"),
            Field("moderation", ("object",), REFUSED, refusal=_NO_MODERATION),
            Field("context_management", ("array",), REFUSED),
            Field("background_options", ("object",), REFUSED),
            Field("access_programs", ("object",), REFUSED),
            Field("image", ("object",), REFUSED),
            _text("user", "A label for the caller's end user (recorded nowhere)."),
            _text("safety_identifier", "Accepted, recorded nowhere."),
            _text("prompt_cache_key", "Accepted (no prompt cache)."),
            _text("prompt_cache_retention", "Accepted (no prompt cache)."),
            Field("prompt_cache_options", ("object",), doc="Accepted (no prompt cache)."),
        )
    },
)
ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (CHAT, COMPLETIONS, IMAGES, RESPONSES)}


def fields_of(group: str, endpoint: str = "chat.completions") -> tuple[str, ...]:
    return tuple(f.name for f in ENDPOINTS[endpoint].fields.values() if f.group == group)


EXTENSIONS = fields_of("extension")


# -- validation --------------------------------------------------------------------------------------------------------
def refuse_unknown(names: Iterable[str], endpoint: Endpoint) -> None:
    """OpenAI's answer to a field it does not know: 400, "Unrecognized request argument supplied: X"."""
    known = endpoint.fields
    unknown = [k for k in names if k not in known]
    if not unknown:
        return
    shown = [k if len(k) <= 64 else k[:64] + "…" for k in unknown[:5]] + (["…"] if len(unknown) > 5 else [])
    if len(unknown) == 1:
        message = f"Unrecognized request argument supplied: {shown[0]}"
    else:
        message = f"Unrecognized request arguments supplied: {', '.join(shown)}"
    raise InvalidRequest(message, param=shown[0])


def validate(body: dict[str, Any], endpoint: str) -> dict[str, Any]:
    """The fields given (null: not given), each checked against its row; unknown fields refused first."""
    ep = ENDPOINTS[endpoint]
    fields = ep.fields
    refuse_unknown(body, ep)
    out = {name: fields[name].check(value) for name, value in body.items() if value is not None}
    for name in ep.required:
        if name not in out:
            raise InvalidRequest(
                f"you must provide a '{name}' parameter", param=name, code="missing_required_parameter"
            )
    return out
