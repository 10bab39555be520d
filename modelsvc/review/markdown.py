"""The review comment: typed changes (changes.py) → Markdown that services.yaml values cannot break out of.

All escaping happens here. Every value from services.yaml is printed through `code()`: a code span whose fence is
longer than any backtick run inside, with non-printable characters spelled out, so no value can end the span, start a
line, or inject Markdown, HTML or a `::` workflow command into the comment, the job summary or the log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from modelsvc.catalog import Problem

from .changes import Change, Diff, Kind, Section, Value, token

MARKER = "<!-- modelsvc-review -->"
TITLE = "## services.yaml review"
COMMENT_LIMIT = 65_536  # characters GitHub accepts in a comment body
COMMENT_BUDGET = COMMENT_LIMIT - 4_096  # room for the sticky comment's own lines
LISTED = 10  # access names listed per change before "and N more"


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


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(code(n) for n in names[:LISTED])
    return shown + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "") if names else "none"


def _model_source(c: Change) -> str:
    return (
        f"model {code(c.subject)}: {_fields(c)}: other weights or another server behind the same model name; "
        f"every caller of {_names(c.services)} gets answers from it"
    )


def _pool_hardware(c: Change) -> str:
    fields = [f for f in c.after if not f.startswith("gpus:")]
    moved = ", ".join(f"`{f}` {code(c.before.get(f))} → {code(c.after[f])}" for f in fields)
    per = [f"{code(n)} {c.before.get('gpus:' + n)} → {c.after.get('gpus:' + n)} GPU(s)" for n in c.services[:LISTED]]
    more = f" and {len(c.services) - LISTED} more" if len(c.services) > LISTED else ""
    return f"pool {code(c.subject)}: {moved}: other GPUs under {', '.join(per)}{more} (engine rebuilds)"


def _key_added(c: Change) -> str:
    return f"new key {code(c.subject)} for {code(c.after['owner'])}: it can call {_names(c.services)}"


def _key_owner(c: Change) -> str:
    b, a = c.before, c.after
    return (
        f"key {code(c.subject)} changes owner {code(b['owner'])} → {code(a['owner'])}: it calls the services of "
        f"{code(a['owner'])} now, no longer those of {code(b['owner'])} (now reaches: {_names(c.services)})"
    )


def _key_moved(c: Change) -> str:
    b, a = c.before, c.after
    if b["owner"] == a["owner"]:
        return (
            f"key {code(b['id'])} is now key {code(a['id'])} (the same secret, same owner {code(a['owner'])}): its "
            "callers keep working, their usage is recorded under the new key id"
        )
    return (
        f"the secret of key {code(b['id'])} (owner {code(b['owner'])}) moves to owner {code(a['owner'])} as key "
        f"{code(a['id'])}: it is not revoked, the same secret now calls the services of {code(a['owner'])} "
        f"and no longer those of {code(b['owner'])} (reaches: {_names(c.services)})"
    )


def _recycled(c: Change) -> str:
    b = c.before
    return (
        f"{code(c.subject)} was the access name of service {code(b['id'])} until commit {code(str(b['commit'])[:12])} "
        f"({code(b['date'])}) and is now given to another service id {code(c.after['id'])}: callers of the old "
        "service reach the new one, and their usage is billed to it"
    )


def _lookalike(c: Change) -> str:
    a = c.after
    like = _names(str(a["like"]).split(", "))
    return f"new {a['what']} {code(a['name'])} reads like {like}: a caller or owner can take one for the other"


def _catalog_file(c: Change) -> str:
    return (
        f"the stack's `modelsvc:catalog` changes {code(c.before['file'])} → {code(c.after['file'])}: the deploy "
        "reads another file (the review compares the two)"
    )


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
    Kind.key_owner: _key_owner,
    Kind.key_rotated: lambda c: f"key {code(c.subject)} rotated (new digest): callers using the old key get 401",
    Kind.key_added: _key_added,
    Kind.key_moved: _key_moved,
    Kind.model_source: _model_source,
    Kind.pool_hardware: _pool_hardware,
    Kind.name_recycled: _recycled,
    Kind.lookalike: _lookalike,
    Kind.catalog_file: _catalog_file,
}


def confirmation_line(c: Change, confirmed: bool, digest: str) -> str:
    assert c.confirm is not None
    what = CONFIRMABLE[c.kind](c)
    if confirmed:
        return f"- ✅ {what} — confirmed ({code(digest)})"
    line, label = token(c.confirm, c.subject, digest)
    return (
        f"- ❌ {what} — **not confirmed**: add the line {code(line)} to the pull request's description (or the "
        f"label {code(label)})"
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


def _head(diff: Diff) -> list[str]:
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
    return lines


def _result(diff: Diff, confirmed: Sequence[bool]) -> str:
    problems = diff.head_problems
    unconfirmed = [c.subject for c, ok in zip(diff.confirmable, confirmed) if not ok]
    if problems:
        return f"**Result: ❌ the new services.yaml is invalid** ({len(problems)} problem(s), listed above)"
    if unconfirmed:
        subjects = list(dict.fromkeys(unconfirmed))
        more = f" and {len(subjects) - 20} more" if len(subjects) > 20 else ""
        return (
            f"**Result: ❌ blocked** — {len(unconfirmed)} unconfirmed change(s) callers will notice, on "
            + ", ".join(code(n) for n in subjects[:20])
            + more
        )
    if diff.confirmable:
        return "**Result: ⚠️ passes with confirmed changes callers will notice** — tell them before merging."
    return "**Result: ✅ passes**"


def _confirm_lines(diff: Diff, confirmed: Sequence[bool]) -> list[str]:
    digests = diff.digests()
    return [
        confirmation_line(c, ok, digests[(c.confirm, c.subject)])
        for c, ok in zip(diff.confirmable, confirmed)
        if c.confirm is not None
    ]


CONFIRM_TITLE = "### Changes callers will notice (each needs a confirmation)"


def render(diff: Diff, confirmed: Sequence[bool]) -> str:
    """The whole review; confirmed[i]: whether the i-th change of diff.confirmable is confirmed."""
    lines = _head(diff)
    lines += [CONFIRM_TITLE, *(_confirm_lines(diff, confirmed) or ["- none"]), ""]
    for section in Section:
        if section is Section.autoscaling and not diff.autoscaled:
            continue
        lines += [f"### {section.value}", *(section_lines(diff, section) or ["- no change"]), ""]
    lines += [_result(diff, confirmed)]
    return "\n".join(lines) + "\n"


def render_comment(diff: Diff, confirmed: Sequence[bool], full: str, where: str, limit: int = COMMENT_BUDGET) -> str:
    """The pull request comment: the whole review when it fits GitHub's limit, else a summary that does (counts per
    change kind, the unconfirmed changes first, as many of the rest as fit) pointing at `where` for the rest."""
    if len(full) <= limit:
        return full
    lines = _head(diff)
    counts: dict[str, int] = {}
    for c in diff.changes:
        if c.kind not in (Kind.pool_usage, Kind.pool_peak):
            counts[c.kind.value] = counts.get(c.kind.value, 0) + 1
    lines += [
        f"**This review is too long for a comment** ({len(full):,} characters): the whole review is {where}.",
        "",
        "| change | count |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])),
        "",
        CONFIRM_TITLE,
    ]
    result = ["", _result(diff, confirmed)]
    order = sorted(zip(_confirm_lines(diff, confirmed), confirmed), key=lambda lo: lo[1])  # unconfirmed first
    budget = limit - sum(len(x) + 1 for x in lines + result) - 200
    shown = 0
    for line, _ in order:
        if budget - len(line) - 1 < 0:
            break
        lines.append(line)
        budget -= len(line) + 1
        shown += 1
    if shown < len(order):
        lines.append(f"- … and {len(order) - shown} more (in the whole review, {where})")
    if not order:
        lines.append("- none")
    return "\n".join(lines + result) + "\n"


def render_invalid(problems: Sequence[Problem], which: str) -> str:
    listed = "\n".join(_problems(problems))
    return f"{MARKER}\n{TITLE}\n\n**Result: ❌ {which} is invalid** ({len(problems)} problem(s))\n\n{listed}\n"
