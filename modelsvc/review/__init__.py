"""A pull request's review of services.yaml: what changes for callers, for capacity and for billing.

    from modelsvc.review import review, review_sources
    r = review(base_catalog, head_catalog, confirmed={"u-a/old"}, confirmed_changes={"u-a/test"})
    r.ok, r.markdown, r.unconfirmed

Every change a caller can notice (a removed or renamed access name, another model behind an access name, token
limits, chat template, task, `instances: 0`, a key revoked, rotated or given to another owner) fails the review until
it is confirmed, the GitOps form of "type the service name to confirm": `Confirm-Delete: <access name>` for a
removal, `Confirm-Change: <access name or key id>` for the rest.

The package: `sources` reads the two files (a path or git `REV:PATH`), `diff` turns two catalogs into typed changes
(`changes`; `scaling` for the autoscaling part), `markdown` renders them into the comment (all escaping there).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelsvc.catalog import Catalog, CatalogError, Problem, loads
from modelsvc.catalog.loader import parse_document_and_problems

from .changes import Change, Confirm, Diff, Kind, Section
from .diff import diff
from .markdown import MARKER, code, render, render_invalid
from .sources import SourceError, read_source

__all__ = [
    "MARKER",
    "Change",
    "Confirm",
    "Diff",
    "Kind",
    "Review",
    "Section",
    "SourceError",
    "code",
    "diff",
    "read_source",
    "review",
    "review_invalid",
    "review_sources",
]


@dataclass
class Review:
    ok: bool
    markdown: str
    breaking: list[str] = field(default_factory=list)  # subjects of every change callers will notice
    unconfirmed: list[str] = field(default_factory=list)  # subjects of those not confirmed


def is_confirmed(change: Change, confirmed: Iterable[str], confirmed_changes: Iterable[str]) -> bool:
    return change.subject in (confirmed if change.confirm is Confirm.delete else confirmed_changes)


def review(
    base: Catalog,
    head: Catalog,
    confirmed: Iterable[str] = frozenset(),
    confirmed_changes: Iterable[str] = frozenset(),
    head_problems: Iterable[Problem] = (),
) -> Review:
    """The review of base → head. confirmed: access names whose removal is confirmed (`Confirm-Delete`);
    confirmed_changes: access names or key ids whose other caller-visible changes are (`Confirm-Change`).
    head_problems: the head's validation problems when it parsed into a typed document but broke a whole-file rule
    (e.g. capacity): they are listed above the diff, never instead of it."""
    d = diff(base, head, head_problems)
    deletes, changes = set(confirmed), set(confirmed_changes)
    oks = [is_confirmed(c, deletes, changes) for c in d.confirmable]
    unconfirmed = [c.subject for c, ok in zip(d.confirmable, oks) if not ok]
    return Review(
        ok=not unconfirmed and not d.head_problems,
        markdown=render(d, oks),
        breaking=[c.subject for c in d.confirmable],
        unconfirmed=unconfirmed,
    )


def review_invalid(problems: list[Problem], which: str) -> Review:
    return Review(ok=False, markdown=render_invalid(problems, which))


def review_sources(
    base_spec: str, head_spec: str, confirmed: Iterable[str], confirmed_changes: Iterable[str] = frozenset()
) -> Review:
    """The review of two files (paths or git REV:PATH). An invalid head is reviewed as far as it parses; an invalid
    or unreadable base is reviewed like an empty catalog, so the head's content is still shown."""
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
        base = loads(_EMPTY.format(url=json.dumps(head.gateway.public_url)), base_name)
    return review(base, head, confirmed, confirmed_changes, head_problems)


_EMPTY = "version: 1\ngateway:\n  public_url: {url}\n"
