"""The review comment: typed changes (changes.py) → Markdown that services.yaml values cannot break out of.

All escaping happens here. Every value from services.yaml is printed through `code()`: a code span whose fence is
longer than any backtick run inside, with non-printable characters spelled out, so no value can end the span, start a
line, or inject Markdown, HTML or a `::` workflow command into the comment, the job summary or the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from modelsvc.catalog import Problem

from .changes import Change, Diff, Kind, Section, Value

MARKER = "<!-- modelsvc-review -->"
TITLE = "## services.yaml review"


def code(value: object, *, cell: bool = False) -> str:
    """`value` as a Markdown code span that nothing inside can break out of (cell=True: inside a table row)."""
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in str(value))
    if cell:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _int(value: Value) -> int:
    assert isinstance(value, int), value
    return value


def _fields(c: Change) -> str:
    """`field` `old` → `new`, … over the fields of `after` (a model's or a pool's changed fields)."""
    return ", ".join(f"`{f}` {code(c.before.get(f))} → {code(c.after[f])}" for f in c.after if f != "model")


# --- changes that need a confirmation: what they mean for callers -------------------------------------------------


def _renamed(c: Change) -> str:
    b, a = c.before, c.after
    what = (
        f"renamed {code(b['access_name'])} → {code(a['access_name'])} ({code(a['id'])}): "
        "callers of the old name get 404"
    )
    if b["owner"] != a["owner"]:
        what += (
            f"; **ownership transfer** {code(b['owner'])} → {code(a['owner'])}: the keys of "
            f"{code(a['owner'])} call it now, those of {code(b['owner'])} no longer can"
        )
    if "swapped_with" in a:
        what += (
            f"; **access names swapped** with {code(a['swapped_with'])}: traffic and billing of both names move to "
            "the other service id"
        )
    elif "old_name_reaches" in a:
        what += f"; {code(b['access_name'])} now reaches {code(a['old_name_reaches'])}: its callers move there"
    return what


def _name(c: Change) -> str:
    return code(c.services[0])


CONFIRMABLE: dict[Kind, Callable[[Change], str]] = {
    Kind.name_reused: lambda c: (
        f"{code(c.subject)} is now served by a new service id {code(c.after['id'])} "
        f"(was {code(c.before['id'])}): its usage is billed separately"
    ),
    Kind.service_removed: lambda c: f"removed {code(c.subject)} ({code(c.before['id'])}): callers get 404",
    Kind.renamed: _renamed,
    Kind.model_swapped: lambda c: (
        f"{_name(c)}: model {code(c.before['model'])} → {code(c.after['model'])}: "
        "every caller gets answers from another model (engine rebuild)"
    ),
    Kind.model_visible: lambda c: f"{_name(c)}: model {code(c.after['model'])} " + _fields(c),
    Kind.stopped: lambda c: (
        f"{_name(c)}: instances {c.before['instances']} → 0: the service answers 503 until it is scaled up again"
    ),
    Kind.key_revoked: lambda c: f"key {code(c.subject)} of {code(c.before['owner'])} revoked: callers using it get 401",
    Kind.key_owner: lambda c: (
        f"key {code(c.subject)} changes owner {code(c.before['owner'])} → "
        f"{code(c.after['owner'])}: it calls the services of {code(c.after['owner'])} now, "
        f"no longer those of {code(c.before['owner'])}"
    ),
    Kind.key_rotated: lambda c: f"key {code(c.subject)} rotated (new digest): callers using the old key get 401",
}


def confirmation_line(c: Change, confirmed: bool) -> str:
    assert c.confirm is not None
    what = CONFIRMABLE[c.kind](c)
    if confirmed:
        return f"- ✅ {what} — confirmed"
    kind = c.confirm.value
    return (
        f"- ❌ {what} — **not confirmed**: add the line "
        f"{code(f'Confirm-{kind}: {c.subject}')} to the pull request's description (or "
        f"the label {code(f'confirm-{kind.lower()}:{c.subject}')})"
    )


# --- the sections ---------------------------------------------------------------------------------------------------


def _added(c: Change) -> str:
    a = c.after
    where = f"on {code(a['pool'])}" if a["pool"] else "(no GPUs: forwarded upstream)"
    return (
        f"- ➕ new service {code(a['access_name'])} ({code(a['name'])}, {code(a['id'])}): {code(a['model'])}, "
        f"{a['instances']} instance(s) {where}, {_int(a['gpus']):+d} GPU(s)"
    )


def _instances(c: Change) -> str:
    b, a = c.before, c.after
    return (
        f"- {_name(c)}: instances {b['instances']} → {a['instances']} "
        f"({_int(a['instances']) - _int(b['instances']):+d} instance(s), {_int(a['gpus']) - _int(b['gpus']):+d} GPU(s))"
    )


def _max_body(c: Change) -> str:
    b, a = _int(c.before["max_body_bytes"]), _int(c.after["max_body_bytes"])
    warn = "⚠️ " if a < b else ""
    return f"- {warn}`max_body_bytes` {b} → {a}" + (": larger requests get 413" if warn else "")


def _range(values: dict[str, Value] | object) -> str:
    assert isinstance(values, dict)
    return f"{values['instances']}" if values["metric"] is None else f"{values['instances']}–{values['peak']}"


def _scaling(c: Change) -> str:
    b, a = dict(c.before), dict(c.after)
    before, after = _range(b), _range(a)
    what = f"instances {before} → {after}" if before != after else f"instances {after}"
    keys = ("metric", "target", "scale_down_delay")
    if b["metric"] is not None and a["metric"] is not None and any(b[k] != a[k] for k in keys):
        what += (
            f"; {b['metric']} target {b['target']:g} → {a['metric']} target {a['target']:g}, "
            f"scale down after {b['scale_down_delay']} → {a['scale_down_delay']}"
        )
    return f"- {_name(c)}: {what} ({_int(a['peak_gpus']) - _int(b['peak_gpus']):+d} GPU(s) at peak)"


LINE: dict[Kind, Callable[[Change], str]] = {
    Kind.service_added: _added,
    Kind.engine_changed: lambda c: (
        f"- {_name(c)}: model {code(c.after['model'])} definition changed (engine rebuild, rolling restart)"
    ),
    Kind.instances: _instances,
    Kind.gpus: lambda c: (
        f"- {_name(c)}: GPUs {c.before['gpus']} → {c.after['gpus']} "
        f"({_int(c.after['gpus']) - _int(c.before['gpus']):+d}; "
        f"{c.before['per_instance']} → {c.after['per_instance']} per instance)"
    ),
    Kind.pool_moved: lambda c: (
        f"- {_name(c)}: pool {code(c.before['pool'])} → {code(c.after['pool'])} (GPU type "
        f"{code(c.before['gpu_type'])} → {code(c.after['gpu_type'])}; pods move, engine rebuild)"
    ),
    Kind.display_name: lambda c: f"- {_name(c)}: display name {code(c.before['name'])} → {code(c.after['name'])}",
    Kind.description: lambda c: (
        f"- {_name(c)}: description {code(c.before['description'] or '')} → {code(c.after['description'] or '')}"
    ),
    Kind.service_limits: lambda c: f"- {_name(c)}: limits {code(c.before['limits'])} → {code(c.after['limits'])}",
    Kind.model_added: lambda c: (
        f"- ➕ model {code(c.subject)} ({code(c.after['task'])}, {c.after['gpus']} GPU(s) per instance)"
    ),
    Kind.model_removed: lambda c: f"- ➖ model {code(c.subject)} removed",
    Kind.model_changed: lambda c: f"- model {code(c.subject)}: " + _fields(c),
    Kind.public_url: lambda c: (
        f"- ⚠️ `public_url` {code(c.before['public_url'])} → {code(c.after['public_url'])}: callers must change "
        "their base URL; every API example changes"
    ),
    Kind.replicas: lambda c: f"- `replicas` {c.before['replicas']} → {c.after['replicas']}",
    Kind.max_body_bytes: _max_body,
    Kind.pool_added: lambda c: (
        f"- ➕ pool {code(c.subject)}: {code(c.after['instance_type'])}, {c.after['gpus_per_node']} GPU(s) per node, "
        f"max {c.after['max_nodes']} node(s)"
    ),
    Kind.pool_changed: lambda c: f"- pool {code(c.subject)}: " + _fields(c),
    Kind.pool_removed: lambda c: f"- ➖ pool {code(c.subject)} removed",
    Kind.scaling: _scaling,
    Kind.key_added: lambda c: f"- ➕ key {code(c.subject)} for {code(c.after['owner'])}",
    Kind.key_limits: lambda c: (
        f"- key {code(c.subject)}: limits {code(c.before['limits'])} → {code(c.after['limits'])}"
    ),
    Kind.key_description: lambda c: (
        f"- key {code(c.subject)}: description {code(c.before['description'] or '')} → "
        f"{code(c.after['description'] or '')}"
    ),
}


def _usage_row(c: Change) -> str:
    b, a = c.before, c.after
    max_nodes = "removed" if a["max_nodes"] is None else a["max_nodes"]
    return (
        f"| {code(c.subject, cell=True)} | {b['instances']} → {a['instances']} | {b['gpus']} → {a['gpus']} "
        f"({_int(a['gpus']) - _int(b['gpus']):+d}) | {b['nodes']} → {a['nodes']} | {max_nodes} |"
    )


def _peak_row(c: Change) -> str:
    b, a = c.before, c.after
    return (
        f"| {code(c.subject, cell=True)} | {b['min']} → {b['max']} | {a['min']} → {a['max']} | "
        f"{_int(a['max']) - _int(b['max']):+d} | {a['capacity']} |"
    )


def _table(lines: list[str], intro: Sequence[str], header: str, rows: list[str]) -> list[str]:
    if not rows:
        return lines
    columns = header.count("|") - 1
    return lines + [""] * bool(lines) + [*intro, header, "|" + "---|" * columns, *rows]


def section_lines(diff: Diff, section: Section) -> list[str]:
    changes = diff.section(section)
    lines = [LINE[c.kind](c) for c in changes if c.kind in LINE]
    if section is Section.capacity:
        rows = [_usage_row(c) for c in changes if c.kind is Kind.pool_usage]
        header = "| pool | instances | GPUs | nodes needed (with build room) | max nodes |"
        return _table(lines, (), header, rows)
    if section is Section.autoscaling:
        rows = [_peak_row(c) for c in changes if c.kind is Kind.pool_peak]
        if not rows:
            return lines + ["- GPUs per pool: no change"]
        intro = ("GPUs per pool, min → max (every autoscaled service at max_instances):", "")
        return _table(lines, intro, "| pool | before | after | worst-case change | pool GPUs at max_nodes |", rows)
    return lines


def _problems(problems: Iterable[Problem]) -> list[str]:
    return [f"- {code(p)}" for p in problems]


def render(diff: Diff, confirmed: Sequence[bool]) -> str:
    """The whole comment; confirmed[i]: whether the i-th change of diff.confirmable is confirmed."""
    lines: list[str] = [MARKER, TITLE, ""]
    problems = diff.head_problems
    if problems:
        lines += [
            f"**❌ the new services.yaml is invalid** ({len(problems)} problem(s)):",
            "",
            *_problems(problems),
            "",
        ]
    if diff.same_deployment:
        lines += [
            "**No deployed change**: both files parse to the same catalog (comments, order or spelling "
            "only); nothing is rolled or rebuilt.",
            "",
        ]
    confirmable = diff.confirmable
    confirm_lines = [confirmation_line(c, ok) for c, ok in zip(confirmable, confirmed)]
    lines += ["### Changes callers will notice (each needs a confirmation)", *(confirm_lines or ["- none"]), ""]
    for section in Section:
        if section is Section.autoscaling and not diff.autoscaled:
            continue
        lines += [f"### {section.value}", *(section_lines(diff, section) or ["- no change"]), ""]

    unconfirmed = [c.subject for c, ok in zip(confirmable, confirmed) if not ok]
    if problems:
        lines += [f"**Result: ❌ the new services.yaml is invalid** ({len(problems)} problem(s), listed above)"]
    elif unconfirmed:
        lines += [
            f"**Result: ❌ blocked** — {len(unconfirmed)} unconfirmed change(s) callers will notice, on "
            + ", ".join(code(n) for n in dict.fromkeys(unconfirmed))
        ]
    elif confirmable:
        lines += ["**Result: ⚠️ passes with confirmed changes callers will notice** — tell them before merging."]
    else:
        lines += ["**Result: ✅ passes**"]
    return "\n".join(lines) + "\n"


def render_invalid(problems: Sequence[Problem], which: str) -> str:
    listed = "\n".join(_problems(problems))
    return f"{MARKER}\n{TITLE}\n\n**Result: ❌ {which} is invalid** ({len(problems)} problem(s))\n\n{listed}\n"
