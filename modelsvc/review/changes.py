"""The typed changes a review is made of: what changed, for whom, and which confirmation it needs. No Markdown here.

Each `Change` says what kind of change it is, its subject (the access name callers use today, a key id, a pool or a
model), the access names it touches, whether it needs a confirmation (and which: `Delete` for a removed service,
`Change` for everything else callers notice) and the values before and after. `diff.py` finds them, `markdown.py`
renders them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from modelsvc.catalog import Limits, Problem

# A value as the review shows it: enums by their value, a chat template by its digest.
Value = str | int | float | None
Values = Mapping[str, Value]

# Model fields a caller sees in its answers or limits (everything else of a model changes only the engine).
CALLER_VISIBLE_MODEL_FIELDS = ("task", "max_input_tokens", "max_output_tokens", "chat_template")
ENGINE_FIELDS = ("backend", "source", "upstream", "upstream_model", "triton_model", "gpus", "dtype")
POOL_FIELDS = ("instance_type", "gpus_per_node", "max_nodes", "gpu_type")


class Confirm(str, Enum):
    """The confirmation a change needs: the GitOps form of "type the service name to confirm"."""

    delete = "Delete"  # a removed service
    change = "Change"  # every other change callers notice


class Section(str, Enum):
    services = "Services"
    models = "Models"
    gateway = "Gateway"
    capacity = "Capacity"
    autoscaling = "Autoscaling"
    keys = "API keys"


class Kind(str, Enum):
    # services
    service_added = "service-added"
    name_reused = "name-reused"  # an access name now served by a new service id
    service_removed = "service-removed"
    renamed = "renamed"
    model_swapped = "model-swapped"
    model_visible = "model-visible"  # caller-visible fields of the service's model
    engine_changed = "engine-changed"
    instances = "instances"
    stopped = "stopped"  # instances → 0
    gpus = "gpus"
    pool_moved = "pool-moved"
    display_name = "display-name"
    description = "description"
    service_limits = "service-limits"
    # models
    model_added = "model-added"
    model_removed = "model-removed"
    model_changed = "model-changed"
    # gateway
    public_url = "public-url"
    replicas = "replicas"
    max_body_bytes = "max-body-bytes"
    # capacity
    pool_added = "pool-added"
    pool_changed = "pool-changed"
    pool_removed = "pool-removed"
    pool_usage = "pool-usage"  # a row of the capacity table
    # autoscaling
    scaling = "scaling"
    pool_peak = "pool-peak"  # a row of the autoscaling table
    # keys
    key_added = "key-added"
    key_revoked = "key-revoked"
    key_owner = "key-owner"
    key_rotated = "key-rotated"
    key_limits = "key-limits"
    key_description = "key-description"
    # what callers or owners feel that the kinds above do not say
    model_source = "model-source"  # other weights or another upstream behind the same model name
    pool_hardware = "pool-hardware"  # another instance type or GPU type under the services of a pool
    key_moved = "key-moved"  # a key's digest (the secret) now under another key id, maybe another owner
    name_recycled = "name-recycled"  # an access name freed recently (git history) and now given to another service id
    lookalike = "lookalike"  # a new owner or access name that reads like an existing one
    catalog_file = "catalog-file"  # the stack's modelsvc:catalog names another file


@dataclass(frozen=True)
class Change:
    kind: Kind
    section: Section
    subject: str
    services: tuple[str, ...] = ()  # access names it touches; the first one is the name the review shows
    confirm: Confirm | None = None
    before: Values = field(default_factory=dict)
    after: Values = field(default_factory=dict)


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]
    same_deployment: bool  # both files parse to the same catalog: nothing rolls or rebuilds
    autoscaled: bool  # either side autoscales a service: the review has an Autoscaling section
    head_problems: tuple[Problem, ...] = ()  # the head's problems, when it broke a whole-file rule

    @property
    def confirmable(self) -> list[Change]:
        return [c for c in self.changes if c.confirm is not None]

    def groups(self) -> dict[tuple[Confirm, str], list[Change]]:
        """(confirmation, subject) → the changes one confirmation line covers, in review order."""
        out: dict[tuple[Confirm, str], list[Change]] = {}
        for c in self.confirmable:
            assert c.confirm is not None
            out.setdefault((c.confirm, c.subject), []).append(c)
        return out

    def digests(self) -> dict[tuple[Confirm, str], str]:
        return {key: change_digest(changes) for key, changes in self.groups().items()}

    def section(self, section: Section) -> list[Change]:
        return [c for c in self.changes if c.section is section and c.confirm is None]


def digest(text: str | None) -> str:
    return "none" if text is None else "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


def shown(obj: object, name: str) -> Value:
    """A field's value as the review shows and compares it."""
    value = getattr(obj, name)
    if name == "chat_template":
        return digest(value)
    if isinstance(value, Enum):
        return str(value.value)
    assert value is None or isinstance(value, (str, int, float)), (name, value)
    return value


def field_changes(old: object, new: object, fields: Iterable[str]) -> tuple[dict[str, Value], dict[str, Value]]:
    """(before, after) of the fields that differ, in the order given."""
    before: dict[str, Value] = {}
    after: dict[str, Value] = {}
    for name in fields:
        if getattr(old, name) != getattr(new, name):
            before[name], after[name] = shown(old, name), shown(new, name)
    return before, after


def limits_text(limits: Limits | None) -> str:
    if limits is None:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in limits.model_dump(exclude_none=True).items()) or "none"


DIGEST_LEN = 10  # hex digits: what a person copies into the description


def change_digest(changes: Sequence[Change]) -> str:
    """A short digest of exactly these changes (kind, subject, services touched, values before and after): a
    confirmation names it, so it confirms this change and no later one on the same subject."""
    facts = [
        [
            c.kind.value,
            c.subject,
            c.confirm.value if c.confirm else None,
            list(c.services),
            dict(c.before),
            dict(c.after),
        ]
        for c in changes
    ]
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LEN]


CONFIRMATION_RE = re.compile(
    r"^(?P<subject>[A-Za-z0-9][A-Za-z0-9._/-]*)?@(?P<digest>[0-9a-f]{" + str(DIGEST_LEN) + "})$"
)


@dataclass(frozen=True)
class Confirmation:
    """`Confirm-<kind>: <subject>@<digest>` (a description line) or `confirm-<kind>:<digest>` (a label, which has
    room for no access name: GitHub labels are at most 50 characters)."""

    kind: Confirm
    digest: str
    subject: str | None = None

    @classmethod
    def parse(cls, kind: Confirm, token: str) -> Confirmation:
        """`subject@digest` or `@digest`; ValueError otherwise."""
        m = CONFIRMATION_RE.match(token.strip())
        if not m:
            raise ValueError(f"a confirmation is '<subject>@<{DIGEST_LEN} hex digits>' as the review shows it")
        return cls(kind, m.group("digest"), m.group("subject"))

    def confirms(self, kind: Confirm, subject: str, digest: str) -> bool:
        return self.kind is kind and self.digest == digest and self.subject in (None, subject)


def token(kind: Confirm, subject: str, digest: str) -> tuple[str, str]:
    """(description line, label) that confirm the (kind, subject) group whose digest is given."""
    return f"Confirm-{kind.value}: {subject}@{digest}", f"confirm-{kind.value.lower()}:{digest}"
