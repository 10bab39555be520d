"""A pull request's review of services.yaml: what changes for callers, for capacity and for billing.

`review(base, head, confirmed)` compares two catalogs and returns a Markdown comment plus whether the change may
merge. Removing a service fails the review unless its access name is confirmed, the GitOps form of "type the service
name to confirm deletion".
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from .catalog import Catalog, CatalogError, loads
from .catalog.rules import nodes_needed

MARKER = "<!-- modelsvc-review -->"


class SourceError(Exception):
    pass


def read_source(spec: str) -> tuple[str, str]:
    """(text, display name) of a path, or of a git revision such as `origin/main:services.yaml`."""
    if os.path.exists(spec):
        with open(spec, encoding="utf-8") as f:
            return f.read(), spec
    if ":" in spec:
        proc = subprocess.run(["git", "show", spec], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout, spec.split(":", 1)[1] or spec
        raise SourceError(f"cannot read {spec} from git: {proc.stderr.strip()}")
    raise SourceError(f"{spec}: no such file (use a path or a git revision like origin/main:services.yaml)")


@dataclass
class Review:
    ok: bool
    markdown: str
    breaking: list[str] = field(default_factory=list)


def _pool_usage(c: Catalog) -> dict[str, tuple[int, int, int]]:
    """pool → (instances, GPUs, nodes needed, with room for the pool's largest engine build beside them)."""
    per_pool: dict[str, list[int]] = {}
    build: dict[str, int] = {}
    for s in c.services:
        if s.pool:
            per_pool.setdefault(s.pool, []).extend([c.model_of(s).gpus] * s.instances)
            build[s.pool] = max(build.get(s.pool, 0), c.model_of(s).gpus)
    return {p: (len(g), sum(g), nodes_needed(g, c.pools[p].gpus_per_node, build[p])) for p, g in per_pool.items()}


def _engine_key(c: Catalog, model_name: str) -> tuple:
    m = c.models[model_name]
    return (m.backend, m.source, m.upstream, m.upstream_model, m.gpus, m.dtype, m.triton_model_name)


def review(base: Catalog, head: Catalog, confirmed: set[str] = frozenset()) -> Review:
    lines: list[str] = [MARKER, "## services.yaml review", ""]
    failures: list[str] = []
    breaking: list[str] = []
    base_by_id = {s.id: s for s in base.services}
    head_by_id = {s.id: s for s in head.services}

    added = [s for s in head.services if s.id not in base_by_id]
    removed = [s for s in base.services if s.id not in head_by_id]
    renamed = [(base_by_id[s.id], s) for s in head.services
               if s.id in base_by_id and base_by_id[s.id].access_name != s.access_name]
    reused = [s for s in added if s.access_name in {b.access_name for b in removed}]

    section: list[str] = []
    for s in added:
        section.append(f"- ➕ added `{s.access_name}` ({s.name}, {s.id}): {s.model}, {s.instances} instance(s)")
    for old, new in renamed:
        msg = f"`{old.access_name}` → `{new.access_name}` ({new.id})"
        breaking.append(msg)
        section.append(f"- ⚠️ **renamed** {msg}: **breaking** — callers using `{old.access_name}` will get 404")
    for s in removed:
        if s.access_name in confirmed:
            section.append(f"- 🗑️ removed `{s.access_name}` ({s.id}): confirmed")
        else:
            failures.append(s.access_name)
            section.append(f"- ❌ removed `{s.access_name}` ({s.id}): **not confirmed** — add the label "
                           f"`confirm-delete:{s.access_name}` or the line `Confirm-Delete: {s.access_name}` to the "
                           "pull request to confirm the deletion")
        breaking.append(f"`{s.access_name}` removed")
    for s in reused:
        section.append(f"- ⚠️ `{s.access_name}` now points at a new service id {s.id}: usage is billed separately")
    lines += ["### Access names", *(section or ["- no change"]), ""]

    # Changes to existing services (same id).
    changes: list[str] = []
    for sid, new in head_by_id.items():
        old = base_by_id.get(sid)
        if old is None:
            continue
        if old.model != new.model:
            changes.append(f"- `{new.access_name}`: model `{old.model}` → `{new.model}` (engine rebuild, rolling restart)")
        elif _engine_key(base, old.model) != _engine_key(head, new.model):
            changes.append(f"- `{new.access_name}`: model `{new.model}` definition changed (engine rebuild)")
        if old.instances != new.instances:
            gpus = head.model_of(new).gpus
            delta = new.instances - old.instances
            changes.append(f"- `{new.access_name}`: instances {old.instances} → {new.instances} "
                           f"({delta:+d} instance(s), {delta * gpus:+d} GPU(s))")
        if old.pool != new.pool:
            changes.append(f"- `{new.access_name}`: pool `{old.pool}` → `{new.pool}` (pods move)")
        if old.name != new.name:
            changes.append(f"- `{new.access_name}`: display name {old.name!r} → {new.name!r}")
    lines += ["### Service changes", *(changes or ["- no change"]), ""]

    # Capacity per pool.
    bu, hu = _pool_usage(base), _pool_usage(head)
    rows = []
    for pool in sorted(set(bu) | set(hu) | set(base.pools) | set(head.pools)):
        b, h = bu.get(pool, (0, 0, 0)), hu.get(pool, (0, 0, 0))
        max_nodes = head.pools[pool].max_nodes if pool in head.pools else 0
        if b == h and pool in base.pools and pool in head.pools and base.pools[pool] == head.pools[pool]:
            continue
        rows.append(f"| `{pool}` | {b[0]} → {h[0]} | {b[1]} → {h[1]} ({h[1] - b[1]:+d}) | {b[2]} → {h[2]} | "
                    f"{max_nodes if pool in head.pools else 'removed'} |")
    lines += ["### Capacity", *(["| pool | instances | GPUs | nodes needed (with build room) | max nodes |",
                                 "|---|---|---|---|---|", *rows] if rows else ["- no change"]), ""]

    # Keys.
    base_keys = {k.id: k for k in base.keys}
    head_keys = {k.id: k for k in head.keys}
    key_lines = [f"- ➕ key `{k}` for `{head_keys[k].owner}`" for k in head_keys if k not in base_keys]
    key_lines += [f"- ➖ key `{k}` of `{base_keys[k].owner}` revoked: callers using it get 401"
                  for k in base_keys if k not in head_keys]
    key_lines += [f"- 🔁 key `{k}` rotated (new digest)" for k in head_keys
                  if k in base_keys and base_keys[k].sha256 != head_keys[k].sha256]
    lines += ["### API keys", *(key_lines or ["- no change"]), ""]

    if failures:
        lines += [f"**Result: ❌ blocked** — {len(failures)} unconfirmed deletion(s): "
                  + ", ".join(f"`{n}`" for n in failures)]
    elif breaking:
        lines += ["**Result: ⚠️ passes with breaking changes** — tell the callers before merging."]
    else:
        lines += ["**Result: ✅ passes**"]
    return Review(ok=not failures, markdown="\n".join(lines) + "\n", breaking=breaking)


def review_invalid(error: CatalogError, which: str) -> Review:
    problems = "\n".join(f"- `{p}`" for p in error.problems)
    md = f"{MARKER}\n## services.yaml review\n\n**Result: ❌ {which} is invalid** ({len(error.problems)} problem(s))\n\n{problems}\n"
    return Review(ok=False, markdown=md)


def review_sources(base_spec: str, head_spec: str, confirmed: set[str]) -> Review:
    base_text, base_name = read_source(base_spec)
    head_text, head_name = read_source(head_spec)
    try:
        head = loads(head_text, head_name)
    except CatalogError as e:
        return review_invalid(e, "the new services.yaml")
    try:
        base = loads(base_text, base_name)
    except CatalogError:
        # An invalid base cannot be diffed; review the head against an empty catalog so its content is still shown.
        base = loads(_EMPTY.format(url=head.gateway.public_url), base_name)
    return review(base, head, confirmed)


_EMPTY = "version: 1\ngateway:\n  public_url: {url}\n"
