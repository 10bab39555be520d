"""A pull request's review of services.yaml: what changes for callers, for capacity and for billing.

`review(base, head, confirmed, confirmed_changes)` compares two catalogs and returns a Markdown comment plus whether
the change may merge. Every change a caller can notice (a removed or renamed access name, another model behind an
access name, token limits, chat template, task, `instances: 0`, a key revoked, rotated or given to another owner)
fails the review until it is confirmed, the GitOps form of "type the service name to confirm":
`Confirm-Delete: <access name>` for a removal, `Confirm-Change: <access name or key id>` for the rest.

Every value from services.yaml is printed through `code()`: a code span whose fence is longer than any backtick run
inside, with non-printable characters spelled out, so no value can end the span, start a line, or inject Markdown,
HTML or a `::` workflow command into the comment, the job summary or the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field

from modelsvc.catalog import Catalog, CatalogError, Problem, loads
from modelsvc.catalog.capacity import gpus_per_instance, pool_usage
from modelsvc.catalog.loader import decode, parse_document_and_problems

from .markdown import code
from .scaling import autoscaling_section

MARKER = "<!-- modelsvc-review -->"
# Model fields a caller sees in its answers or limits (everything else of a model changes only the engine).
CALLER_VISIBLE_MODEL_FIELDS = ("task", "max_input_tokens", "max_output_tokens", "chat_template")
ENGINE_FIELDS = ("backend", "source", "upstream", "upstream_model", "triton_model", "gpus", "dtype")


class SourceError(Exception):
    pass


def read_source(spec: str) -> tuple[str, str]:
    """(text, display name) of a path, or of a git revision such as `HEAD^1:services.yaml`."""
    if os.path.exists(spec):
        with open(spec, "rb") as f:
            return decode(f.read(), spec), spec
    if ":" in spec:
        proc = subprocess.run(["git", "show", spec], capture_output=True)
        if proc.returncode == 0:
            name = spec.split(":", 1)[1] or spec
            return decode(proc.stdout, name), name
        raise SourceError(f"cannot read {spec} from git: {proc.stderr.decode('utf-8', 'replace').strip()}")
    raise SourceError(f"{spec}: no such file (use a path or a git revision like origin/main:services.yaml)")


def _digest(text: str | None) -> str:
    return "none" if text is None else "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Review:
    ok: bool
    markdown: str
    breaking: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)


@dataclass
class _Confirmable:
    """A change callers notice: passes only when `subject` is confirmed with the line `kind`."""

    kind: str  # "Delete" or "Change"
    subject: str  # access name (services) or key id (keys)
    what: str  # Markdown, values already escaped


def _field_changes(old, new, fields) -> list[str]:
    out = []
    for f in fields:
        a, b = getattr(old, f), getattr(new, f)
        if a != b:
            if f == "chat_template":
                a, b = _digest(a), _digest(b)
            a, b = (x.value if hasattr(x, "value") else x for x in (a, b))
            out.append(f"`{f}` {code(a)} → {code(b)}")
    return out


def _limits(limits) -> str:
    if limits is None:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in limits.model_dump(exclude_none=True).items()) or "none"


def _services(base: Catalog, head: Catalog, confirmable: list[_Confirmable]) -> list[str]:
    base_by_id = {s.id: s for s in base.services}
    head_by_id = {s.id: s for s in head.services}
    base_by_name = {s.access_name: s for s in base.services}
    lines: list[str] = []

    for s in head.services:
        if s.id in base_by_id:
            continue
        gpus = s.instances * gpus_per_instance(head, s)
        where = f"on {code(s.pool)}" if s.pool else "(no GPUs: forwarded upstream)"
        lines.append(
            f"- ➕ new service {code(s.access_name)} ({code(s.name)}, {code(s.id)}): {code(s.model)}, "
            f"{s.instances} instance(s) {where}, {gpus:+d} GPU(s)"
        )
        old = base_by_name.get(s.access_name)
        if old is not None and old.id not in head_by_id:
            confirmable.append(
                _Confirmable(
                    "Change",
                    s.access_name,
                    f"{code(s.access_name)} is now served by a new service id {code(s.id)} "
                    f"(was {code(old.id)}): its usage is billed separately",
                )
            )

    for s in base.services:
        if s.id not in head_by_id:
            confirmable.append(
                _Confirmable("Delete", s.access_name, f"removed {code(s.access_name)} ({code(s.id)}): callers get 404")
            )

    renamed = {
        sid: (base_by_id[sid], new)
        for sid, new in head_by_id.items()
        if sid in base_by_id and base_by_id[sid].access_name != new.access_name
    }
    new_names = {new.access_name: sid for sid, (_, new) in renamed.items()}
    for sid, (old, new) in renamed.items():
        what = (
            f"renamed {code(old.access_name)} → {code(new.access_name)} ({code(sid)}): callers of the old name get 404"
        )
        if old.owner != new.owner:
            what += (
                f"; **ownership transfer** {code(old.owner)} → {code(new.owner)}: the keys of "
                f"{code(new.owner)} call it now, those of {code(old.owner)} no longer can"
            )
        other = new_names.get(old.access_name)
        if other is not None and renamed[other][0].access_name == new.access_name:
            what += (
                f"; **access names swapped** with {code(other)}: traffic and billing of both names move to "
                "the other service id"
            )
        elif old.access_name in {s.access_name for s in head.services}:
            taker = next(s for s in head.services if s.access_name == old.access_name)
            what += f"; {code(old.access_name)} now reaches {code(taker.id)}: its callers move there"
        confirmable.append(_Confirmable("Change", old.access_name, what))

    for sid, new in head_by_id.items():
        old = base_by_id.get(sid)
        if old is None:
            continue
        name = code(new.access_name)
        subject = old.access_name
        if old.model != new.model:
            confirmable.append(
                _Confirmable(
                    "Change",
                    subject,
                    f"{name}: model {code(old.model)} → {code(new.model)}: "
                    "every caller gets answers from another model (engine rebuild)",
                )
            )
        elif old.model in base.models and new.model in head.models:
            bm, hm = base.models[old.model], head.models[new.model]
            visible = _field_changes(bm, hm, CALLER_VISIBLE_MODEL_FIELDS)
            if visible:
                confirmable.append(
                    _Confirmable("Change", subject, f"{name}: model {code(new.model)} " + ", ".join(visible))
                )
            if _field_changes(bm, hm, ENGINE_FIELDS):
                lines.append(f"- {name}: model {code(new.model)} definition changed (engine rebuild, rolling restart)")
        old_gpus, new_gpus = old.instances * gpus_per_instance(base, old), new.instances * gpus_per_instance(head, new)
        if old.instances != new.instances:
            delta = new.instances - old.instances
            lines.append(
                f"- {name}: instances {old.instances} → {new.instances} ({delta:+d} instance(s), "
                f"{new_gpus - old_gpus:+d} GPU(s))"
            )
            if new.instances == 0:
                confirmable.append(
                    _Confirmable(
                        "Change",
                        subject,
                        f"{name}: instances {old.instances} → 0: the service answers 503 until it is scaled up again",
                    )
                )
        elif old_gpus != new_gpus:
            lines.append(
                f"- {name}: GPUs {old_gpus} → {new_gpus} ({new_gpus - old_gpus:+d}; "
                f"{gpus_per_instance(base, old)} → {gpus_per_instance(head, new)} per instance)"
            )
        if old.pool != new.pool:
            bt = base.pools[old.pool].gpu_type or old.pool if old.pool in base.pools else old.pool
            ht = head.pools[new.pool].gpu_type or new.pool if new.pool in head.pools else new.pool
            lines.append(
                f"- {name}: pool {code(old.pool)} → {code(new.pool)} (GPU type {code(bt)} → {code(ht)}; "
                "pods move, engine rebuild)"
            )
        if old.name != new.name:
            lines.append(f"- {name}: display name {code(old.name)} → {code(new.name)}")
        if old.description != new.description:
            lines.append(f"- {name}: description {code(old.description or '')} → {code(new.description or '')}")
        if old.limits != new.limits:
            lines.append(f"- {name}: limits {code(_limits(old.limits))} → {code(_limits(new.limits))}")
    return lines


def _models(base: Catalog, head: Catalog) -> list[str]:
    lines = [
        f"- ➕ model {code(m)} ({code(head.models[m].task.value)}, {head.models[m].gpus} GPU(s) per instance)"
        for m in head.models
        if m not in base.models
    ]
    lines += [f"- ➖ model {code(m)} removed" for m in base.models if m not in head.models]
    for m in head.models:
        if m in base.models and base.models[m] != head.models[m]:
            changes = _field_changes(base.models[m], head.models[m], CALLER_VISIBLE_MODEL_FIELDS + ENGINE_FIELDS)
            lines.append(f"- model {code(m)}: " + ", ".join(changes))
    return lines


def _gateway(base: Catalog, head: Catalog) -> list[str]:
    bg, hg = base.gateway, head.gateway
    lines = []
    if bg.public_url != hg.public_url:
        lines.append(
            f"- ⚠️ `public_url` {code(bg.public_url)} → {code(hg.public_url)}: callers must change their "
            "base URL; every API example changes"
        )
    if bg.replicas != hg.replicas:
        lines.append(f"- `replicas` {bg.replicas} → {hg.replicas}")
    if bg.max_body_bytes != hg.max_body_bytes:
        warn = "⚠️ " if hg.max_body_bytes < bg.max_body_bytes else ""
        lines.append(
            f"- {warn}`max_body_bytes` {bg.max_body_bytes} → {hg.max_body_bytes}"
            + (": larger requests get 413" if warn else "")
        )
    return lines


def _capacity(base: Catalog, head: Catalog) -> list[str]:
    lines = []
    for p in head.pools:
        if p not in base.pools:
            hp = head.pools[p]
            lines.append(
                f"- ➕ pool {code(p)}: {code(hp.instance_type)}, {hp.gpus_per_node} GPU(s) per node, "
                f"max {hp.max_nodes} node(s)"
            )
        elif base.pools[p] != head.pools[p]:
            changes = _field_changes(
                base.pools[p], head.pools[p], ("instance_type", "gpus_per_node", "max_nodes", "gpu_type")
            )
            lines.append(f"- pool {code(p)}: " + ", ".join(changes))
    lines += [f"- ➖ pool {code(p)} removed" for p in base.pools if p not in head.pools]

    bu = {p: (u.instances, u.gpus, u.nodes) for p, u in pool_usage(base).items()}
    hu = {p: (u.instances, u.gpus, u.nodes) for p, u in pool_usage(head).items()}
    rows = []
    for pool in sorted(set(bu) | set(hu) | set(base.pools) | set(head.pools)):
        b, h = bu.get(pool, (0, 0, 0)), hu.get(pool, (0, 0, 0))
        if b == h and pool in base.pools and pool in head.pools and base.pools[pool] == head.pools[pool]:
            continue
        max_nodes = head.pools[pool].max_nodes if pool in head.pools else "removed"
        rows.append(
            f"| {code(pool, cell=True)} | {b[0]} → {h[0]} | {b[1]} → {h[1]} ({h[1] - b[1]:+d}) | "
            f"{b[2]} → {h[2]} | {max_nodes} |"
        )
    if rows:
        lines += [""] * bool(lines) + [
            "| pool | instances | GPUs | nodes needed (with build room) | max nodes |",
            "|---|---|---|---|---|",
            *rows,
        ]
    return lines


def _keys(base: Catalog, head: Catalog, confirmable: list[_Confirmable]) -> list[str]:
    bk, hk = {k.id: k for k in base.keys}, {k.id: k for k in head.keys}
    lines = [f"- ➕ key {code(k)} for {code(hk[k].owner)}" for k in hk if k not in bk]
    for k in bk:
        if k not in hk:
            confirmable.append(
                _Confirmable("Change", k, f"key {code(k)} of {code(bk[k].owner)} revoked: callers using it get 401")
            )
            continue
        old, new = bk[k], hk[k]
        if old.owner != new.owner:
            confirmable.append(
                _Confirmable(
                    "Change",
                    k,
                    f"key {code(k)} changes owner {code(old.owner)} → "
                    f"{code(new.owner)}: it calls the services of {code(new.owner)} now, "
                    f"no longer those of {code(old.owner)}",
                )
            )
        if old.sha256 != new.sha256:
            confirmable.append(
                _Confirmable("Change", k, f"key {code(k)} rotated (new digest): callers using the old key get 401")
            )
        if old.limits != new.limits:
            lines.append(f"- key {code(k)}: limits {code(_limits(old.limits))} → {code(_limits(new.limits))}")
        if old.description != new.description:
            lines.append(f"- key {code(k)}: description {code(old.description or '')} → {code(new.description or '')}")
    return lines


def _confirmations(items: list[_Confirmable], confirmed: set[str], confirmed_changes: set[str]) -> tuple[list, list]:
    lines, unconfirmed = [], []
    for item in items:
        ok = item.subject in (confirmed if item.kind == "Delete" else confirmed_changes)
        if ok:
            lines.append(f"- ✅ {item.what} — confirmed")
        else:
            unconfirmed.append(item.subject)
            lines.append(
                f"- ❌ {item.what} — **not confirmed**: add the line "
                f"{code(f'Confirm-{item.kind}: {item.subject}')} to the pull request's description (or "
                f"the label {code(f'confirm-{item.kind.lower()}:{item.subject}')})"
            )
    return lines, unconfirmed


def review(
    base: Catalog,
    head: Catalog,
    confirmed: set[str] = frozenset(),
    confirmed_changes: set[str] = frozenset(),
    head_problems: list[Problem] = (),
) -> Review:
    """The review of base → head. head_problems: the head's validation problems when it parsed into a typed
    document but broke a whole-file rule (e.g. capacity): they are listed above the diff, never instead of it."""
    lines: list[str] = [MARKER, "## services.yaml review", ""]
    if head_problems:
        lines += [
            f"**❌ the new services.yaml is invalid** ({len(head_problems)} problem(s)):",
            "",
            *(f"- {code(p)}" for p in head_problems),
            "",
        ]
    if base.canonical_json() == head.canonical_json():
        lines += [
            "**No deployed change**: both files parse to the same catalog (comments, order or spelling "
            "only); nothing is rolled or rebuilt.",
            "",
        ]

    confirmable: list[_Confirmable] = []
    sections = [
        ("Services", _services(base, head, confirmable)),
        ("Models", _models(base, head)),
        ("Gateway", _gateway(base, head)),
        ("Capacity", _capacity(base, head)),
        *autoscaling_section(base, head),
        ("API keys", _keys(base, head, confirmable)),
    ]
    confirm_lines, unconfirmed = _confirmations(confirmable, set(confirmed), set(confirmed_changes))
    lines += ["### Changes callers will notice (each needs a confirmation)", *(confirm_lines or ["- none"]), ""]
    for title, body in sections:
        lines += [f"### {title}", *(body or ["- no change"]), ""]

    breaking = [item.subject for item in confirmable]
    if head_problems:
        lines += [f"**Result: ❌ the new services.yaml is invalid** ({len(head_problems)} problem(s), listed above)"]
    elif unconfirmed:
        lines += [
            f"**Result: ❌ blocked** — {len(unconfirmed)} unconfirmed change(s) callers will notice, on "
            + ", ".join(code(n) for n in dict.fromkeys(unconfirmed))
        ]
    elif breaking:
        lines += ["**Result: ⚠️ passes with confirmed changes callers will notice** — tell them before merging."]
    else:
        lines += ["**Result: ✅ passes**"]
    return Review(
        ok=not unconfirmed and not head_problems,
        markdown="\n".join(lines) + "\n",
        breaking=breaking,
        unconfirmed=unconfirmed,
    )


def review_invalid(problems: list[Problem], which: str) -> Review:
    listed = "\n".join(f"- {code(p)}" for p in problems)
    md = f"{MARKER}\n## services.yaml review\n\n**Result: ❌ {which} is invalid** ({len(problems)} problem(s))\n\n{listed}\n"
    return Review(ok=False, markdown=md)


def review_sources(
    base_spec: str, head_spec: str, confirmed: set[str], confirmed_changes: set[str] = frozenset()
) -> Review:
    try:
        head_text, head_name = read_source(head_spec)
    except CatalogError as e:  # not UTF-8: nothing to diff
        return review_invalid(e.problems, "the new services.yaml")
    try:
        base_text, base_name = read_source(base_spec)
    except CatalogError:
        base_text, base_name = "", base_spec  # an unreadable base is reviewed like an invalid one
    head_problems: list[Problem] = []
    try:
        head = loads(head_text, head_name)
    except CatalogError as e:
        doc, _ = parse_document_and_problems(head_text, head_name)
        if doc is None:  # not even the shape is right: nothing to diff
            return review_invalid(e.problems, "the new services.yaml")
        head, head_problems = Catalog(doc=doc, path=head_name, text=head_text), e.problems
    try:
        base = loads(base_text, base_name)
    except CatalogError:
        # An invalid base cannot be diffed; review the head against an empty catalog so its content is still shown.
        base = loads(_EMPTY.format(url=json.dumps(head.gateway.public_url)), base_name)
    return review(base, head, confirmed, confirmed_changes, head_problems)


_EMPTY = "version: 1\ngateway:\n  public_url: {url}\n"
