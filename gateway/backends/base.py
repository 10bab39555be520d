"""The engine contract: what the request flow hands a backend, what it gets back, and what every backend offers.

The flow (``gateway/flow.py``) and the balancer know backends only through this module: ``Backend`` is the complete
interface, ``Capabilities`` what a started backend can honour (read from the model's config for Triton, assumed for
an OpenAI-compatible upstream), and the request/result types are plain data. A new engine kind implements
``Backend``; a new engine feature is a field of ``Capabilities`` (what the model declares), of ``Sampling`` or
``GenRequest`` (what the caller asked) and of ``GenResult`` / ``Delta`` (what came back).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

# The slowest generation a non-streamed request waits for (tokens per second) on top of deadline_s, since its answer
# only arrives when generation is done.
MIN_TOKENS_PER_S = 5.0

# An engine extension's validated value (gateway/fields.py: top_k, min_p, ignore_eos, bad_words, ...).
ExtensionValue = int | float | bool | tuple[str, ...]
# TensorRT-LLM's guide types (guided_decoding_guide_type), as both its backends map them: tensorrtllm_backend
# all_models/inflight_batcher_llm/tensorrt_llm/1/model.py get_guided_decoding_params_from_request and the C++
# utils.cc; any other string is silently ignored there, so only these are ever sent.
GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar")
Message = dict[str, object]  # one chat message as the caller sent it (forwarded to upstreams that template)
TokenLogprob = tuple[str, float]  # (token text, log probability)


@dataclass(frozen=True, slots=True)
class Guide:
    """Guided decoding: the output is constrained to this guide (the guided_decoding_guide_type and
    guided_decoding_guide inputs). `text`: the JSON Schema, regex or EBNF grammar ("" for "json")."""

    type: str  # one of GUIDE_TYPES
    text: str = ""
    param: str = "response_format"  # the request field it comes from (named when the model cannot honour it)


@dataclass(frozen=True, slots=True)
class Sampling:
    """The validated sampling parameters of one request (gateway/params.py builds it; None: the engine's default)."""

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)  # only those given (ignore_eos when true)
    logprobs: bool = False  # the chosen tokens' log probabilities
    guide: Guide | None = None  # structured output / forced tool call (Capabilities.guided_decoding)
    n: int = 1  # choices (num_return_sequences; Capabilities.n)


# Sampling's optional OpenAI parameters a backend may or may not honour (Capabilities.sampling lists those it does).
SAMPLING_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed")


@dataclass(slots=True)
class Work:
    """What the engine has done for one request so far, updated as its responses arrive, so that a request cut short
    (caller gone, error, shutdown) is still metered with what was used."""

    prompt_tokens: int | None = None  # the engine's count, once a response carried it
    completion_tokens: int = 0
    images: int = 0


def estimate_tokens(text: str) -> int:
    """The gateway's own prompt-token estimate when the engine's count never arrived (whitespace words, at least a
    token per 4 characters): only ever recorded marked as an estimate."""
    return max(len(text.split()), -(-len(text) // 4))


@dataclass(slots=True)
class GenRequest:
    """One text generation: the prompt (rendered with the chat template unless the backend templates itself), the
    sampling parameters, and the bookkeeping the backend updates as it goes (`work`)."""

    prompt: str
    sampling: Sampling
    image_urls: list[str] = field(default_factory=list)  # vision models only (data: URLs once the gateway fetched)
    request_id: str = ""
    messages: list[Message] | None = None  # chat messages, for backends that template them themselves (openai)
    work: Work = field(default_factory=Work)
    # The model's end-of-turn tokens besides the engine's one end_id: they end generation too (sent as stop words)
    # and, like stop strings, never reach the caller.
    end_tokens: tuple[str, ...] = ()
    # OpenAI fields a templating backend forwards as given (tools, tool_choice, response_format, ...): it renders,
    # constrains and parses them itself (the openai backend); a Triton model gets them rendered and as a guide.
    forward: dict[str, object] = field(default_factory=dict)

    def settle(self, n_in: int | None, completion: int) -> int:
        """The finished answer's counts into `work`; returns the prompt tokens (the engine's, else the estimate)."""
        prompt = n_in if n_in is not None else self.estimated_prompt_tokens()
        self.work.prompt_tokens, self.work.completion_tokens = prompt, completion
        return prompt

    def estimated_prompt_tokens(self) -> int:
        if self.messages is None:
            return estimate_tokens(self.prompt)
        return estimate_tokens("\n".join(str(m.get("content") or "") for m in self.messages if isinstance(m, dict)))


@dataclass(slots=True)
class ImageRequest:
    """One images.generations call: n images of one prompt."""

    prompt: str
    n: int = 1
    negative_prompt: str | None = None
    request_id: str = ""
    work: Work = field(default_factory=Work)


@dataclass(slots=True)
class ToolCall:
    """A function call the model made: its id, the function's name and the arguments as JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call (OpenAI's tool_calls delta): the first piece of call `index` has the id and
    the name, later ones argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Delta:
    """One streamed piece of one choice: text (and, when asked, the tokens received since the previous piece);
    once parsed (gateway/tools, or an upstream that parses its own output) also reasoning and tool-call pieces."""

    text: str
    logprobs: list[TokenLogprob] | None = None
    index: int = 0  # the choice (num_return_sequences: the engine's sequence_index)
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] | None = None
    # the backend hands over its next piece without waiting (they came in one read): the gateway writes them together
    more: bool = False


@dataclass(slots=True)
class Choice:
    """One finished choice of a generation with n > 1 (the first is the GenResult itself)."""

    text: str
    finish_reason: str
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    reasoning: str = ""
    tool_calls: list[ToolCall] | None = None


@dataclass(slots=True)
class GenResult:
    """A finished generation: the whole (stop-stripped) text of the first choice, the engine's counts (completion
    tokens: of all choices), and the other choices when n > 1."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "tool_calls"
    logprobs: list[TokenLogprob] | None = None  # per generated token, when asked
    reasoning: str = ""  # the model's reasoning, split off the text (gateway/tools)
    tool_calls: list[ToolCall] | None = None  # the calls the model made (parsed from the text, or the upstream's)
    more: list[Choice] = field(default_factory=list)  # choices 1..n-1

    def choices(self) -> list[Choice]:
        tokens = self.completion_tokens - sum(c.completion_tokens for c in self.more)
        first = Choice(self.text, self.finish_reason, tokens, self.logprobs, self.reasoning, self.tool_calls)
        return [first, *self.more]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a started backend's model can honour: read from the model's config (Triton) or assumed for an
    OpenAI-compatible upstream, which validates its own requests. The flow refuses what is not here with a 400
    naming the parameter, before anything is sent."""

    generates: str = "text"  # "text" | "images"
    templates_itself: bool = False  # takes chat messages and applies its own chat template (GenRequest.messages)
    # the checkpoint's chat template and special tokens, as the model-repository builder put them in the config
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    # the model's own special tokens and the added tokens its chat template writes (the checkpoint's tokenizer files,
    # as the model-repository builder put them in the config: parameter special_tokens); caller text is cleaned of them
    special_tokens: frozenset[str] = frozenset()
    decoupled: bool = False  # streams token by token (a non-decoupled model answers in one response)
    vision: bool = False  # takes image URLs with the chat messages
    max_images: int | None = None  # images per request (None: any number)
    image_size: tuple[int, int] | None = None  # diffusion: the deployed (width, height), the only valid size
    negative_prompt: bool = False
    sampling: frozenset[str] = frozenset()  # which of SAMPLING_PARAMS it honours (stop strings: always)
    # which engine extensions (top_k, min_tokens, ...) it honours; None: all, forwarded as given (the upstream checks)
    extensions: frozenset[str] | None = frozenset()
    logprobs: bool = False  # the chosen tokens' log probabilities
    # TensorRT-LLM's guided decoding inputs (guided_decoding_guide_type / guided_decoding_guide): structured outputs
    guided_decoding: bool = False
    n: bool = False  # num_return_sequences: several choices per request
    # tools, tool_choice, response_format and n forwarded to an engine that renders, constrains and parses them
    # itself (an OpenAI-compatible upstream); False: the gateway renders tools and parses the output itself
    parses_tools: bool = False


class Backend(Protocol):
    """One instance of a service's engine (a Triton pod's model, or an OpenAI-compatible upstream). The balancer
    starts, probes and closes it; the flow checks, generates and streams through it."""

    outstanding: int  # requests in flight through this backend

    @property
    def capabilities(self) -> Capabilities | None:
        """What the model can honour; None until start() has read it."""
        ...

    async def start(self) -> None:
        """Connect and read the model (BackendUnavailable when it cannot)."""
        ...

    async def ready(self) -> bool:
        """Whether it can serve now (never raises)."""
        ...

    async def close(self) -> None: ...

    def check(self, req: GenRequest) -> None:
        """Refuse (UnsupportedParameter / InvalidRequest, naming the parameter) what the model cannot honour."""
        ...

    async def generate(self, req: GenRequest) -> GenResult: ...

    def stream(self, req: GenRequest) -> AsyncGenerator[Delta | GenResult, None]:
        """Deltas, then exactly one GenResult. Closing the iterator early stops the engine."""
        ...

    async def generate_images(self, req: ImageRequest) -> list[bytes]:
        """req.n PNG images; req.work.images counts those the engine finished."""
        ...
