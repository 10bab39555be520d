"""Rules that need the whole document: references, uniqueness, capacity, plaintext secrets.

They run on the raw parsed data (not the typed objects) so that they still report when some other part of the file
is broken: the user sees every problem in one pass. Values of the wrong type are skipped here; the schema reports them.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Protocol

from . import chat_templates, secrets
from .capacity import nodes_needed
from .errors import Problem
from .model import ACCESS_NAME_RE, TARGET_RANGES, ScaleMetric
from .yamlpos import Positions

Raw = dict[str, Any]  # a mapping of the parsed file, before validation
Items = list[tuple[int, Raw]]  # (index, item) of a list section's mappings


class Report(Protocol):
    def __call__(self, loc: tuple[object, ...], message: str, hint: str, *, key: bool = False) -> None: ...


def plaintext_secrets(text: str, path: str) -> list[Problem]:
    """Scan every line, comments included: a secret in a comment is just as leaked once pushed."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        seen = set()
        for start, _, what in secrets.find(line):
            if what not in seen:  # one problem per kind and line, at its first spot (never quoting it)
                seen.add(what)
                found.append(
                    Problem(
                        path,
                        lineno,
                        start + 1,
                        f"this looks like a plaintext secret ({what})",
                        "remove it from the file (and rotate it if it was pushed); keys are stored only "
                        "as sha256 digests, made by `modelsvc keys new`",
                    )
                )
    return found


def _mapping(data: object, key: str) -> Raw:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _items(data: object, key: str) -> Items:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _str(item: Raw, field: str) -> str | None:
    value = item.get(field)
    return value if isinstance(value, str) else None


def _int(item: Raw, field: str, default: int | None = None) -> int | None:
    value = item.get(field, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check(data: object, pos: Positions, path: str) -> list[Problem]:
    problems: list[Problem] = []

    def report(loc: tuple[object, ...], message: str, hint: str, *, key: bool = False) -> None:
        line, col = pos.of(loc, key=key)
        problems.append(Problem(path, line, col, message, hint))

    pools = _mapping(data, "pools")
    models = _mapping(data, "models")
    keys = _items(data, "keys")
    services = _items(data, "services")

    for name, m in models.items():
        if isinstance(m, dict):
            _templates_and_tools(name, m, report)
            _model_backend(name, m, report)
    owners_with_keys = _keys(keys, report, pos)
    _unique(
        services,
        "access_name",
        "access name",
        "services",
        report,
        "access names are what callers put in 'model': each must be unique",
        pos,
    )
    _unique(
        services,
        "id",
        "service id",
        "services",
        report,
        "service ids are used for billing and are never reused: make a new one with `modelsvc new-id`",
        pos,
    )
    for i, s in services:
        _service_references(i, s, models, pools, owners_with_keys, report)
    for i, s in services:
        _autoscale(i, s, report)
    _capacity(pools, models, services, report)
    return problems


def _templates_and_tools(name: str, m: Raw, report: Report) -> None:
    """chat_template must be Jinja2; tool_parser only where the gateway reads the model's raw output and its
    template (when services.yaml gives it) renders tools."""
    template = m.get("chat_template")
    if isinstance(template, str):
        problem = chat_templates.syntax_error(template)
        if problem:
            report(
                ("models", name, "chat_template"),
                f"chat_template of model '{name}' is not valid Jinja2 ({problem})",
                "fix the template (it is the model's tokenizer_config.json chat_template) or remove it to use the "
                "checkpoint's own",
            )
    parser = m.get("tool_parser")
    if not isinstance(parser, str) or parser == "none":
        return
    loc = ("models", name, "tool_parser")
    if m.get("backend", "triton") == "openai":
        report(
            loc,
            f"tool_parser has no effect on model '{name}': with backend openai the upstream renders and reads its "
            "own tool calls",
            "remove tool_parser (set the tool-call parser on the upstream server, e.g. vLLM's --tool-call-parser)",
            key=True,
        )
    elif m.get("task", "chat") == "image-generation":
        report(loc, f"model '{name}' generates images: it takes no tools", "remove tool_parser", key=True)
    elif (
        isinstance(template, str)
        and not chat_templates.syntax_error(template)
        and not chat_templates.takes_tools(template)
    ):
        report(
            loc,
            f"model '{name}' sets tool_parser: {parser}, but its chat_template never renders `tools`, so the model "
            "would never see the tools it is offered",
            "use a chat template that renders tools (the checkpoint's own, if it has one: remove chat_template), "
            "or set tool_parser: none",
        )


def _model_backend(name: str, m: Raw, report: Report) -> None:
    """Backend-specific fields: a triton model needs a source, an openai one an upstream; neither takes the other's."""
    backend = m.get("backend", "triton")
    if backend == "triton":
        if "source" not in m:
            report(
                ("models", name),
                f"model '{name}' has no 'source'",
                "add 'source: s3://…' (the checkpoint the engine is built from) or set 'backend: openai'",
            )
        for field in ("upstream", "upstream_model"):
            if field in m:
                report(
                    ("models", name, field),
                    f"'{field}' is only used with 'backend: openai'",
                    "remove it, or set 'backend: openai'",
                    key=True,
                )
    elif backend == "openai":
        if "upstream" not in m:
            report(
                ("models", name),
                f"model '{name}' uses backend openai but has no 'upstream'",
                "add 'upstream: http://host:port/v1' (the OpenAI-compatible server to forward to)",
            )
        for field in ("source", "triton_model"):
            if field in m:
                report(
                    ("models", name, field),
                    f"'{field}' is only used with 'backend: triton'",
                    "remove it: the upstream server already runs the model",
                    key=True,
                )


def _keys(keys: Items, report: Report, pos: Positions) -> set[str]:
    """Unique ids and digests; returns the owners that have a key."""
    _unique(keys, "id", "key id", "keys", report, "give each key its own id", pos)
    _unique(keys, "sha256", "key digest", "keys", report, "a key must not be listed twice; make a new one", pos)
    return {k["owner"] for _, k in keys if _str(k, "owner")}


def _service_references(i: int, s: Raw, models: Raw, pools: Raw, owners_with_keys: set[str], report: Report) -> None:
    """The model and pool a service names exist and fit its backend; its owner has a key."""
    loc = ("services", i)
    model_name = _str(s, "model")
    model = models.get(model_name) if model_name else None
    if model_name and model is None:
        guess = difflib.get_close_matches(model_name, list(models), n=1)
        report(
            loc + ("model",),
            f"model '{model_name}' is not defined under 'models'",
            f"did you mean '{guess[0]}'?" if guess else "define it under 'models' or fix the name",
        )
    backend = model.get("backend", "triton") if isinstance(model, dict) else None
    pool_name = _str(s, "pool")
    if pool_name is not None and pool_name not in pools:
        guess = difflib.get_close_matches(pool_name, list(pools), n=1)
        report(
            loc + ("pool",),
            f"pool '{pool_name}' is not defined under 'pools'",
            f"did you mean '{guess[0]}'?" if guess else f"use one of: {', '.join(pools) or '(none defined)'}",
        )
    if s.get("pool") is None and backend == "triton":  # missing or `pool: null`: nothing would be deployed
        report(
            loc + ("pool",) if "pool" in s else loc,
            f"service '{s.get('access_name', i)}' runs a triton model but names no 'pool' (infra would deploy "
            "nothing and callers would get 503)",
            f"set 'pool:' to one of: {', '.join(pools) or '(define a pool first)'}",
        )
    if s.get("pool") is not None and backend == "openai":
        report(
            loc + ("pool",),
            "'pool' has no effect: the model uses backend openai, so nothing is deployed",
            "remove 'pool'",
            key=True,
        )
    access = _str(s, "access_name")
    if access and re.match(ACCESS_NAME_RE, access):  # a malformed one is already reported by the schema
        owner = access.split("/", 1)[0]
        if owner not in owners_with_keys:
            report(
                loc + ("access_name",),
                f"owner '{owner}' has no API key, so nobody could call this service",
                f"add one: `modelsvc keys new --owner {owner}`",
            )


def peak_instances(service: Raw) -> int | None:
    """Most instances a (raw) service can run: autoscale.max_instances, else instances. Capacity is checked at it."""
    auto = service.get("autoscale")
    if isinstance(auto, dict) and "max_instances" in auto:
        return _int(auto, "max_instances")
    return _int(service, "instances", 1)


def _autoscale(i: int, s: Raw, report: Report) -> None:
    auto = s.get("autoscale")
    if not isinstance(auto, dict):
        return
    loc = ("services", i, "autoscale")
    low, high = _int(s, "instances", 1), _int(auto, "max_instances")
    if low is not None and high is not None and 1 <= high < low:  # below 1: the schema reports it
        report(
            loc + ("max_instances",),
            f"max_instances is {high}, below the service's instances ({low})",
            f"raise max_instances to at least {low}: instances is the minimum the autoscaler keeps",
        )
    if low == 0:
        report(
            ("services", i, "instances"),
            "an autoscaled service needs instances >= 1 (the HPA's minimum)",
            "set instances to 1 or more, or remove 'autoscale' to stop the service with instances: 0",
        )
    try:
        metric = ScaleMetric(auto.get("metric", ScaleMetric.queue_ratio.value))
    except ValueError:
        return  # the schema reports it
    target = auto.get("target")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        lo, hi = TARGET_RANGES[metric]
        if not lo <= target <= hi:
            report(
                loc + ("target",),
                f"target {target} is outside {lo:g}–{hi:g} for metric {metric.value}",
                f"use a value between {lo:g} and {hi:g}"
                + (
                    " (queue time / compute time per instance; 1 means requests wait as long as they run)"
                    if metric is ScaleMetric.queue_ratio
                    else " (requests waiting per instance)"
                ),
            )


def _unique(items: Items, field: str, what: str, section: str, report: Report, hint: str, pos: Positions) -> None:
    seen: dict[str, int] = {}
    for i, item in items:
        value = _str(item, field)
        if value is None:
            continue
        if value in seen:
            first_line = pos.of((section, seen[value], field))[0]
            report((section, i, field), f"duplicate {what} '{value}' (first used on line {first_line})", hint)
        else:
            seen[value] = i


def _capacity(pools: Raw, models: Raw, services: Items, report: Report) -> None:
    """Each pool must hold its services at their peak (autoscale.max_instances, else instances; one instance on one
    node, all on max_nodes nodes) plus room to build its largest engine beside them: a rebuild must never wait for
    GPUs that the running pods hold."""
    demand: dict[str, list[tuple[int, int]]] = {}  # pool → [(gpus per instance, service index)]
    build: dict[str, int] = {}  # pool → GPUs of its largest engine build (services with 0 instances build too)
    for i, s in services:
        pool, model = pools.get(_str(s, "pool") or ""), models.get(_str(s, "model") or "")
        if not isinstance(pool, dict) or not isinstance(model, dict):
            continue
        gpus, per_node, instances = _int(model, "gpus", 1), _int(pool, "gpus_per_node"), peak_instances(s)
        if gpus is None or per_node is None or instances is None:
            continue
        if gpus > per_node:
            report(
                ("services", i, "pool"),
                f"one instance of model '{s['model']}' needs {gpus} GPUs but nodes in pool '{s['pool']}' have "
                f"{per_node}",
                "choose a pool with bigger nodes or a model with fewer GPUs",
            )
            continue
        demand.setdefault(s["pool"], []).extend([(gpus, i)] * instances)
        if model.get("backend", "triton") == "triton":
            build[s["pool"]] = max(build.get(s["pool"], 0), gpus)
    for name, wanted in demand.items():
        pool = pools[name]
        per_node, max_nodes = _int(pool, "gpus_per_node"), _int(pool, "max_nodes")
        if max_nodes is None or per_node is None:  # (per_node is known: the pool has demand)
            continue
        needed = nodes_needed([g for g, _ in wanted], per_node, build.get(name, 0))
        if needed > max_nodes:
            total = sum(g for g, _ in wanted)
            report(
                ("pools", name, "max_nodes"),
                f"pool '{name}' needs {needed} nodes for {len(wanted)} instances ({total} GPUs) and room to build "
                f"a {build.get(name, 0)}-GPU engine beside them, but max_nodes is {max_nodes}",
                f"raise max_nodes to {needed} or lower the instances of the services using it",
            )
