"""A console action → the pull request that carries it: the services.yaml edit (modelsvc.catalog.edit, the CLI's
own functions), the confirmations its review will ask for (modelsvc.review, never re-implemented here), the branch,
title and description. Pure: text in, a Proposal out; gitops/flow.py does the I/O.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from modelsvc.catalog import Catalog, CatalogError, Service, loads
from modelsvc.catalog.edit import EditError, create, default_access_name, delete, scale
from modelsvc.review import Confirmation, code, diff, review, token

from ..errors import Conflict, InvalidEdit, NotFound

BRANCH_PREFIX = "modelsvc-console/"
MARKER = "modelsvc-console"  # the description's machine-readable line: <!-- modelsvc-console {...} -->
_MARKER_RE = re.compile(r"<!-- " + MARKER + r" (\{[^\n]*\}) -->")
_FIELD_LINE = re.compile(r"^\s*(?:-\s+)?([a-z_]+):")


@dataclass(frozen=True)
class Who:
    """Who asked: the key's owner and key id (never the key)."""

    owner: str
    key_id: str


@dataclass(frozen=True)
class Proposal:
    action: str  # deploy | scale | delete
    owner: str
    access_name: str
    service_id: str
    text: str  # the new services.yaml
    title: str
    body: str
    branch: str
    confirmations: tuple[str, ...]  # the description lines the review needs
    expect: dict[str, Any] = field(default_factory=dict)  # what the catalog holds once it is live

    def marker(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "access_name": self.access_name,
            "service_id": self.service_id,
            "owner": self.owner,
            "expect": self.expect,
        }


def parse_marker(body: str | None) -> dict[str, Any] | None:
    m = _MARKER_RE.search(body or "")
    if not m:
        return None
    try:
        value = json.loads(m.group(1))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def branch_owner(ref: str) -> tuple[str, str] | None:
    """(owner, service id) of a branch this console opened: modelsvc-console/<owner>/<service id>/<action>-<nonce>."""
    if not ref.startswith(BRANCH_PREFIX):
        return None
    parts = ref[len(BRANCH_PREFIX) :].split("/")
    return (parts[0], parts[1]) if len(parts) == 3 else None


# -- the edit ---------------------------------------------------------------------------------------------------------


def _field_of(text: str, line: int, start: int, end: int) -> str | None:
    """The form field a located problem is about: the key on its line, when that line is in the edited entry."""
    lines = text.splitlines()
    if not start <= line <= end or line > len(lines):
        return None
    m = _FIELD_LINE.match(lines[line - 1])
    if not m:
        return None
    name = m.group(1)
    return {"max_instances": "max_instances"}.get(name, name)


def _entry_lines(text: str, access_name: str) -> tuple[int, int]:
    """First and last line (1-based) of the service entry with this access name in `text` (0, 0 if none)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*(?:-\s+)?access_name:\s*['\"]?" + re.escape(access_name) + r"['\"]?\s*(#.*)?$", line):
            start = i
            while start > 0 and not lines[start].lstrip().startswith("- "):
                start -= 1
            indent = len(lines[start]) - len(lines[start].lstrip())
            end = i
            while end + 1 < len(lines) and (
                not lines[end + 1].strip() or len(lines[end + 1]) - len(lines[end + 1].lstrip()) > indent
            ):
                end += 1
            return start + 1, end + 1
    return 0, 0


def _refused(e: EditError, attempted: str | None, access_name: str, default: str) -> InvalidEdit:
    """The edit's refusal as the form shows it: its message, and each located problem beside its field."""
    start, end = _entry_lines(attempted, access_name) if attempted else (0, 0)
    fields = [_field_of(attempted, p.line, start, end) if attempted else None for p in e.problems]
    problems: list[dict[str, object]] = [
        {
            "field": field,
            "line": p.line,
            "message": p.message,
            "hint": p.hint,
            "located": str(p),  # file:line:col: message — hint, as the CLI prints it
        }
        for p, field in zip(e.problems, fields)
    ]
    first = next((f for f in fields if f), None)
    # a whole-file problem (capacity: located at the pool) is about the count the form asked for
    return InvalidEdit(str(e), param=e.field or first or default, problems=problems)


def _attempt(base_text: str, path: str, fn, *args, **kw) -> tuple[str, Catalog]:
    """Run one of modelsvc.catalog.edit's functions; a refusal becomes InvalidEdit with its problems located."""
    try:
        return fn(base_text, path, *args, **kw)
    except EditError as e:
        name = kw.get("access_name") or (args[0] if args else "")
        raise _refused(e, e.text or None, name, "confirm" if fn is delete else "instances") from None


# -- the review's confirmations ---------------------------------------------------------------------------------------


def confirmations(base: Catalog, head: Catalog) -> tuple[str, ...]:
    """The description lines the review of base → head asks for — one `Confirm-<Kind>: <subject>@<digest>` per
    group of changes that needs one, from modelsvc.review's own typed diff and digests — and a check that the
    review passes with exactly them."""
    d = diff(base, head)
    digests = d.digests()
    groups = list(dict.fromkeys((c.confirm, c.subject) for c in d.confirmable if c.confirm is not None))
    lines = tuple(token(kind, subject, digests[(kind, subject)])[0] for kind, subject in groups)
    given = [Confirmation(kind, digests[(kind, subject)], subject) for kind, subject in groups]
    if not review(base, head, given).ok:  # cannot happen for a valid head: the review says what it needs
        raise Conflict("the review of this change would not pass; change services.yaml in a pull request by hand")
    return lines


# -- scope: an owner's own service, nothing else ---------------------------------------------------------------------


def own_service(catalog: Catalog, access_name: str, owner: str) -> Service:
    svc = catalog.service(access_name)
    if svc is None or svc.owner != owner:  # another owner's service looks exactly like an unknown one
        raise NotFound(f"the service '{access_name}' does not exist or you do not have access to it", code="not_found")
    return svc


def _only_touches(base: Catalog, head: Catalog, service_id: str) -> None:
    """Defence in depth: the edit changed that one service and nothing else (no key, model, pool or gateway)."""
    same = (
        base.doc.keys == head.doc.keys
        and base.doc.models == head.doc.models
        and base.doc.pools == head.doc.pools
        and base.doc.gateway == head.doc.gateway
        and [s for s in base.services if s.id != service_id] == [s for s in head.services if s.id != service_id]
    )
    if not same:
        raise Conflict("refusing an edit that changes more than the one service")


def _nonce() -> str:
    return secrets.token_hex(4)


def _body(who: Who, what: str, lines: tuple[str, ...], marker: dict[str, Any]) -> str:
    confirm = (
        ["", "The review asks for these confirmations; the owner gave them in the console:", "", *lines]
        if lines
        else ["", "No confirmation needed: callers of existing services notice nothing."]
    )
    return "\n".join(
        [
            what,
            "",
            f"Requested in the modelsvc console by owner {code(who.owner)} with key {code(who.key_id)} (the key itself "
            "is never sent to GitHub). Nothing changes in production until this pull request passes its review, is "
            "approved and merged, and the deploy applies the reviewed plan.",
            *confirm,
            "",
            f"<!-- {MARKER} {json.dumps(marker, sort_keys=True)} -->",
            "",
        ]
    )


def _proposal(
    action: str, who: Who, svc: Service, base: Catalog, text: str, head: Catalog, title: str, what: str, expect: dict
) -> Proposal:
    _only_touches(base, head, svc.id)
    if base.canonical_json() == head.canonical_json():
        raise InvalidEdit("nothing to change: the service already looks like that", param="instances")
    lines = confirmations(base, head)
    p = Proposal(
        action=action,
        owner=who.owner,
        access_name=svc.access_name,
        service_id=svc.id,
        text=text,
        title=title,
        body="",
        branch=f"{BRANCH_PREFIX}{who.owner}/{svc.id}/{action}-{_nonce()}",
        confirmations=lines,
        expect=expect,
    )
    return Proposal(**{**p.__dict__, "body": _body(who, what, lines, p.marker())})


def load_base(text: str, path: str) -> Catalog:
    try:
        return loads(text, path)
    except CatalogError as e:
        raise Conflict(
            f"{path} on the base branch does not validate ({len(e.problems)} problem(s)); fix it there first"
        ) from None


def propose_deploy(base_text: str, path: str, who: Who, form: dict[str, Any]) -> Proposal:
    base = load_base(base_text, path)
    text, head = _attempt(
        base_text,
        path,
        create,
        name=form["name"],
        owner=who.owner,  # never from the form: a key deploys for its own owner only
        model=form["model"],
        instances=form["instances"],
        pool=form.get("pool"),
        access_name=form.get("access_name") or default_access_name(who.owner, form["name"]),
        max_instances=form.get("max_instances"),
    )
    svc = next(s for s in head.services if s.id not in {b.id for b in base.services})
    auto = f", autoscaled up to {svc.autoscale.max_instances}" if svc.autoscale else ""
    what = (
        f"**Deploy** a new service {code(svc.access_name)} ({code(svc.name)}, id {code(svc.id)}): model "
        f"{code(svc.model)}, {svc.instances} instance(s){' on pool ' + code(svc.pool) if svc.pool else ''}{auto}."
    )
    expect = {"present": True, "instances": svc.instances, "max_instances": svc.peak_instances}
    return _proposal("deploy", who, svc, base, text, head, f"Deploy {svc.access_name} (console)", what, expect)


def propose_scale(base_text: str, path: str, who: Who, access_name: str, form: dict[str, Any]) -> Proposal:
    base = load_base(base_text, path)
    svc = own_service(base, access_name, who.owner)
    text, head = _attempt(
        base_text,
        path,
        scale,
        access_name,
        to=form.get("to"),
        add=form.get("add"),
        max_instances=form.get("max_instances"),
    )
    new = head.service(access_name)
    assert new is not None
    if svc.autoscale:
        before, after = f"{svc.instances}–{svc.peak_instances}", f"{new.instances}–{new.peak_instances}"
        what = f"**Scale** {code(access_name)} ({code(svc.id)}): instances (min–max) {before} → {after}."
        title = f"Scale {access_name} to {after} instances (console)"
    else:
        what = f"**Scale** {code(access_name)} ({code(svc.id)}): {svc.instances} → {new.instances} instance(s)."
        title = f"Scale {access_name} to {new.instances} instance(s) (console)"
    expect = {"present": True, "instances": new.instances, "max_instances": new.peak_instances}
    return _proposal("scale", who, svc, base, text, head, title, what, expect)


def propose_delete(base_text: str, path: str, who: Who, access_name: str, confirm: str) -> Proposal:
    base = load_base(base_text, path)
    svc = own_service(base, access_name, who.owner)
    text, head = _attempt(base_text, path, delete, access_name, confirm)
    what = (
        f"**Delete** the service {code(access_name)} ({code(svc.name)}, id {code(svc.id)}): callers of this "
        "access name get 404 once it is deployed; the service id is never reused."
    )
    return _proposal("delete", who, svc, base, text, head, f"Delete {access_name} (console)", what, {"present": False})


def is_live(marker: dict[str, Any], catalog: Catalog) -> bool:
    """Whether the gateway's catalog already holds what the pull request asked for: a deployed service exists, a
    deleted one is gone, a scaled one has the counts asked for."""
    sid, expect = marker.get("service_id"), marker.get("expect") or {}
    svc = next((s for s in catalog.services if s.id == sid), None)
    if not expect.get("present"):
        return svc is None
    if marker.get("action") == "deploy":
        return svc is not None
    return (
        svc is not None
        and svc.instances == expect.get("instances")
        and svc.peak_instances == expect.get("max_instances")
    )
