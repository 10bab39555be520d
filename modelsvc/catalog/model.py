"""The services.yaml contract as typed, immutable objects.

These classes are the single definition of the file's shape: the loader validates against them, the JSON Schema in
schema/services.schema.json is generated from them, and every other part (gateway, infra, CLI) reads them.
Cross-object rules (references, uniqueness, capacity) live in rules.py, which sees the whole document.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

# DNS-1123 label: what Kubernetes accepts as a name, so access names map onto object names without surprises.
LABEL_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ACCESS_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SERVICE_ID_RE = r"^ms-[0-9a-f]{12}$"
SHA256_RE = r"^[0-9a-f]{64}$"
MODEL_NAME_RE = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"


def _http_url(value: str) -> str:
    _no_control(value)
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("must be an http:// or https:// URL, e.g. https://models.example.com/v1")
    return value.rstrip("/")


# Shown in PR reviews (Markdown), workflow logs, annotations and the console: no control or invisible formatting
# characters (newlines, escape sequences, bidi overrides, zero-width characters) that could start a line, a workflow
# command, or make one value look like another.
_REFUSED_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Cs")
_REFUSED_MESSAGE = (
    "must not contain control characters or invisible formatting characters such as bidi overrides (it is shown in "
    "reviews, logs and the console)"
)


def refused_char(value: str, allow: str = "") -> str | None:
    """The first character of value that no services.yaml string may hold (allow: exceptions, e.g. newlines)."""
    for c in value:
        if unicodedata.category(c) in _REFUSED_CATEGORIES and c not in allow:
            return c
    return None


def _no_control(value: str) -> str:
    if refused_char(value) is not None:
        raise ValueError(_REFUSED_MESSAGE)
    return value


def _template_text(value: str) -> str:
    # A Jinja chat template is multi-line text: tabs and newlines are part of it, nothing else invisible is.
    if refused_char(value, allow="\t\n\r") is not None:
        raise ValueError(_REFUSED_MESSAGE.replace("control characters", "control characters other than newlines"))
    return value


def _display_name(value: str) -> str:
    if any(c in "<>" for c in value):
        raise ValueError(
            "must not contain control characters, invisible formatting characters, '<' or '>' "
            "(it is shown in reviews, logs and the console)"
        )
    return _no_control(value)


HttpUrl = Annotated[StrictStr, AfterValidator(_http_url)]
DisplayName = Annotated[StrictStr, AfterValidator(_display_name)]
DisplayText = Annotated[StrictStr, AfterValidator(_no_control)]  # descriptions: '<' '>' are escaped where shown
Text = Annotated[StrictStr, AfterValidator(_no_control)]  # every other free-text field
TemplateText = Annotated[StrictStr, AfterValidator(_template_text)]
Label = Annotated[StrictStr, Field(pattern=LABEL_RE, max_length=63)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(str, Enum):
    chat = "chat"
    vision_chat = "vision-chat"
    image_generation = "image-generation"


class ToolParser(str, Enum):
    """How the gateway reads tool calls in a model's output (gateway/tools; docs/agents.md)."""

    llama3_json = "llama3_json"  # Llama 3.1 / 3.2 / 3.3: {"name": ..., "parameters": {...}}
    hermes = "hermes"  # Qwen2.5, Qwen3, QwQ, Hermes: <tool_call>{...}</tool_call>, <think> split off
    mistral = "mistral"  # Mistral 7B v0.3, Nemo, Small: [TOOL_CALLS] [{...}]
    none = "none"  # no tool calls: tools are refused


class Backend(str, Enum):
    triton = "triton"  # infra deploys Triton + TensorRT-LLM for the model
    openai = "openai"  # an OpenAI-compatible server that already runs elsewhere; the gateway forwards


class Gateway(_Frozen):
    public_url: HttpUrl = Field(description="Base URL callers use, ending in /v1; shown in every API example.")
    replicas: StrictInt = Field(2, ge=1, le=100, description="Gateway pods.")
    max_body_bytes: StrictInt = Field(
        4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body accepted (413 above)."
    )


class Pool(_Frozen):
    instance_type: Text = Field(min_length=1, max_length=64, description="Cloud instance type, e.g. p5.48xlarge.")
    gpus_per_node: StrictInt = Field(ge=1, le=16)
    max_nodes: StrictInt = Field(ge=1, le=1000)
    gpu_type: Label | None = Field(
        None, description="GPU model, part of the engine cache key (defaults to the pool name)."
    )


class Model(_Frozen):
    task: Task = Task.chat
    backend: Backend = Backend.triton
    source: Text | None = Field(
        None, min_length=1, description="Checkpoint the engine is built from (triton backend), e.g. s3://bucket/path."
    )
    upstream: HttpUrl | None = Field(None, description="OpenAI-compatible base URL (openai backend), ending in /v1.")
    upstream_model: Text | None = Field(None, min_length=1, description="Model name at the upstream (openai backend).")
    triton_model: Text | None = Field(
        None, min_length=1, description="Triton model to call (default: ensemble; stable_diffusion for images)."
    )
    gpus: StrictInt = Field(1, ge=1, le=16, description="GPUs per instance (tensor parallel size).")
    dtype: Literal["float16", "bfloat16", "fp8", "int8", "int4"] = "bfloat16"
    max_input_tokens: StrictInt = Field(4096, ge=1, le=1_048_576)
    max_output_tokens: StrictInt = Field(1024, ge=1, le=1_048_576)
    chat_template: TemplateText | None = Field(
        None, min_length=1, description="Jinja2 chat template (HF tokenizer_config style); a default is used if unset."
    )
    tool_parser: ToolParser | None = Field(
        None,
        description="How tool calls are read from the model's output: llama3_json, hermes, mistral or none "
        "(default: from the model family in its name or source; triton backend only).",
    )

    @property
    def triton_model_name(self) -> str:
        if self.triton_model:
            return self.triton_model
        return "stable_diffusion" if self.task is Task.image_generation else "ensemble"


class Limits(_Frozen):
    """Enforced by the gateway across all its replicas (shared through Redis when configured)."""

    requests_per_minute: StrictInt | None = Field(None, ge=1, le=10_000_000)
    tokens_per_minute: StrictInt | None = Field(
        None, ge=1, le=10_000_000_000, description="Prompt + completion tokens per minute."
    )
    max_concurrent_streams: StrictInt | None = Field(None, ge=1, le=1_000_000)


DURATION_RE = r"^(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"
MAX_SCALE_DOWN_DELAY_S = 3600  # the HPA's stabilizationWindowSeconds allows at most one hour


def duration_seconds(text: str) -> int:
    """'90s', '10m', '1h30m' → seconds (the Go/Kubernetes duration subset people write in YAML)."""
    m = re.match(DURATION_RE, text)
    if not m or not any(m.groups()):
        raise ValueError(f"is {text!r}, not a duration: write e.g. 300s, 5m or 1h")
    h, mins, secs = (int(g or 0) for g in m.groups())
    return h * 3600 + mins * 60 + secs


def _duration(value: str) -> str:
    if duration_seconds(value) > MAX_SCALE_DOWN_DELAY_S:
        raise ValueError(f"is {value!r}, longer than the 1h the Kubernetes HPA allows")
    return value


class ScaleMetric(str, Enum):
    # per pod; recorded by infra/observability/rules.py from TensorRT-LLM's executor statistics
    queue_ratio = "queue_ratio"  # time waiting / time being served (executor waiting / in flight, Little's law)
    pending_requests = "pending_requests"  # requests the pod holds: in flight + waiting


# Allowed target per metric: a ratio below 0.05 would scale on noise; 10 means requests wait 10x their compute time.
TARGET_RANGES = {ScaleMetric.queue_ratio: (0.05, 10.0), ScaleMetric.pending_requests: (1.0, 1000.0)}


class Autoscale(_Frozen):
    """Pods between the service's `instances` (the minimum) and `max_instances`, driven by an HPA on Triton's load."""

    max_instances: StrictInt = Field(ge=1, le=256, description="Most instances (>= the service's instances).")
    metric: ScaleMetric = Field(ScaleMetric.queue_ratio, description="Load signal the HPA follows, per pod.")
    target: StrictFloat = Field(
        1.0, gt=0, description="Per-pod target of the metric (queue_ratio: 0.05-10; pending_requests: 1-1000)."
    )
    scale_down_delay: Annotated[StrictStr, AfterValidator(_duration)] = Field(
        "5m", description="How long load must stay low before instances are removed (e.g. 300s, 10m; at most 1h)."
    )

    @property
    def scale_down_delay_s(self) -> int:
        return duration_seconds(self.scale_down_delay)


class Key(_Frozen):
    id: Label
    owner: Label
    sha256: StrictStr = Field(pattern=SHA256_RE, description="SHA-256 hex digest of the key; never the key itself.")
    description: DisplayText | None = Field(None, max_length=200)
    limits: Limits | None = Field(None, description="Limits for this key, over all services it calls.")


class Service(_Frozen):
    name: DisplayName = Field(min_length=1, max_length=64, description="Display name.")
    access_name: StrictStr = Field(
        pattern=ACCESS_NAME_RE, max_length=127, description='"<owner>/<name>": what callers put in "model".'
    )
    id: StrictStr = Field(pattern=SERVICE_ID_RE, description="Service id for billing and tracking; never reused.")
    model: Text
    instances: StrictInt = Field(1, ge=0, le=256)
    pool: Text | None = Field(None, description="GPU pool (required for triton-backed models).")
    description: DisplayText | None = Field(None, max_length=500)
    limits: Limits | None = Field(None, description="Limits for this service, over all keys calling it.")
    autoscale: Autoscale | None = Field(
        None, description="Scale between instances (minimum) and max_instances on Triton's load; none: fixed."
    )

    @property
    def peak_instances(self) -> int:
        """Most instances the service can run: what capacity is checked against."""
        return self.autoscale.max_instances if self.autoscale else self.instances

    @property
    def owner(self) -> str:
        return self.access_name.split("/", 1)[0]


class Document(_Frozen):
    """The whole file. Mappings keep file order (dicts are ordered)."""

    version: Literal[1]
    gateway: Gateway
    pools: dict[Annotated[str, Field(pattern=LABEL_RE)], Pool] = Field(default_factory=dict)
    models: dict[Annotated[str, Field(pattern=MODEL_NAME_RE)], Model] = Field(default_factory=dict)
    keys: tuple[Key, ...] = ()
    services: tuple[Service, ...] = ()
