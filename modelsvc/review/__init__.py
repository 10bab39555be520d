"""A pull request's review of services.yaml: what changes for callers, for owners, for capacity and for billing.

    from modelsvc.review import review, review_sources, Confirmation
    r = review(base_catalog, head_catalog)
    r.ok, r.markdown, r.unconfirmed, r.needed      # needed: the confirmation lines the review asks for

Every change a caller or an owner can notice (a removed, renamed, recycled or look-alike access name, another model,
other weights or upstream behind a model, other GPUs under a pool, token limits, chat template, task, `instances:
0`, a key added, revoked, rotated, moved or given to another owner) fails the review until it is confirmed, the
GitOps form of "type the service name to confirm". A confirmation names the change's digest, shown in the review:
`Confirm-Delete: <access name>@<digest>` for a removal, `Confirm-Change: <subject>@<digest>` for the rest (or the
labels `confirm-delete:<digest>` / `confirm-change:<digest>`), so it confirms exactly that change: a later push that
changes it again needs a new one.

The package: `sources` reads the two files (a path or a git `REV:PATH`, regular files only, the one the stack's
`modelsvc:catalog` names, and the names' recent holders from git history), `diff` turns two catalogs into typed
changes (`changes`; `scaling` the autoscaling part, `lookalike` confusable names), `markdown` renders them into the
comment (all escaping there; a review too long for a comment is summarised).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelsvc.catalog import Catalog, CatalogError, Problem, loads
from modelsvc.catalog.loader import decode, parse_document_and_problems

from .changes import Change, Confirm, Confirmation, Diff, Kind, Section, token
from .diff import History, diff
from .markdown import COMMENT_LIMIT, MARKER, code, render, render_comment, render_invalid
from .sources import DEFAULT_CATALOG, SourceError, catalog_path, git_blob, name_history, read_source

__all__ = [
    "COMMENT_LIMIT",
    "MARKER",
    "Change",
    "Confirm",
    "Confirmation",
    "Diff",
    "Kind",
    "Review",
    "Section",
    "SourceError",
    "catalog_path",
    "code",
    "diff",
    "name_history",
    "read_source",
    "review",
    "review_git",
    "review_invalid",
    "review_sources",
    "token",
]


@dataclass
class Review:
    ok: bool
    markdown: str  # the whole review (job summary, artifact)
    breaking: list[str] = field(default_factory=list)  # subjects of every change callers or owners will notice
    unconfirmed: list[str] = field(default_factory=list)  # subjects of those not confirmed
    needed: list[str] = field(default_factory=list)  # the description lines that would confirm the unconfirmed ones
    comment: str = ""  # what the pull request comment shows: the whole review, or its summary when too long

    def __post_init__(self) -> None:
        self.comment = self.comment or self.markdown


def review(
    base: Catalog,
    head: Catalog,
    confirmations: Iterable[Confirmation] = (),
    head_problems: Iterable[Problem] = (),
    *,
    history: History | None = None,
    catalog_files: tuple[str, str] | None = None,
    where: str = "in the job summary of the review run",
) -> Review:
    """The review of base → head. confirmations: what the pull request confirms (each binds to a change by its
    digest). head_problems: the head's validation problems when it parsed into a typed document but broke a
    whole-file rule (e.g. capacity): they are listed above the diff, never instead of it. history: the access names'
    recent holders (sources.name_history); catalog_files: (base, head) file the stack's modelsvc:catalog names;
    where: where the whole review is when the comment only has room for a summary."""
    d = diff(base, head, head_problems, history=history, catalog_files=catalog_files)
    given = list(confirmations)
    digests = d.digests()
    oks = []
    for c in d.confirmable:
        assert c.confirm is not None
        digest = digests[(c.confirm, c.subject)]
        oks.append(any(g.confirms(c.confirm, c.subject, digest) for g in given))
    unconfirmed = [c.subject for c, ok in zip(d.confirmable, oks) if not ok]
    needed = [
        token(c.confirm, c.subject, digests[(c.confirm, c.subject)])[0]
        for c, ok in zip(d.confirmable, oks)
        if not ok and c.confirm is not None
    ]
    full = render(d, oks)
    return Review(
        ok=not unconfirmed and not d.head_problems,
        markdown=full,
        breaking=[c.subject for c in d.confirmable],
        unconfirmed=unconfirmed,
        needed=list(dict.fromkeys(needed)),
        comment=render_comment(d, oks, full, where),
    )


def review_invalid(problems: list[Problem], which: str) -> Review:
    return Review(ok=False, markdown=render_invalid(problems, which))


def _load_pair(
    head_text: str, head_name: str, base_text: str | None, base_name: str
) -> tuple[Catalog, Catalog, list[Problem]] | Review:
    """(base, head, head problems), or the Review of a head that does not even parse into a document."""
    head_problems: list[Problem] = []
    try:
        head = loads(head_text, head_name)
    except CatalogError as e:
        doc, _ = parse_document_and_problems(head_text, head_name)
        if doc is None:  # not even the shape is right: nothing to diff
            return review_invalid(e.problems, "the new services.yaml")
        head, head_problems = Catalog(doc=doc, path=head_name, text=head_text), e.problems
    try:
        base = loads(base_text or "", base_name)
    except CatalogError:
        # An invalid base cannot be diffed; review the head against an empty catalog so its content is still shown.
        base = loads(_EMPTY.format(url=json.dumps(head.gateway.public_url)), base_name)
    return base, head, head_problems


def review_sources(
    base_spec: str,
    head_spec: str,
    confirmations: Iterable[Confirmation] = (),
    *,
    history: History | None = None,
    where: str = "in the job summary of the review run",
) -> Review:
    """The review of two files (paths or git REV:PATH; regular files only). An invalid head is reviewed as far as it
    parses; an invalid or unreadable base is reviewed like an empty catalog, so the head's content is still shown."""
    try:
        head_text, head_name = read_source(head_spec)
    except CatalogError as e:  # not UTF-8: nothing to diff
        return review_invalid(e.problems, "the new services.yaml")
    try:
        base_text, base_name = read_source(base_spec)
    except CatalogError:
        base_text, base_name = "", base_spec  # an unreadable base is reviewed like an invalid one
    loaded = _load_pair(head_text, head_name, base_text, base_name)
    if isinstance(loaded, Review):
        return loaded
    base, head, head_problems = loaded
    return review(base, head, confirmations, head_problems, history=history, where=where)


def review_git(
    base_rev: str,
    head_rev: str,
    confirmations: Iterable[Confirmation] = (),
    *,
    stack_file: str | None = None,
    history_days: int = 90,
    cwd: str | None = None,
    where: str = "in the job summary of the review run",
) -> Review:
    """The review of a pull request read from git: at each revision (a commit, or the tree of a merge) the file the
    stack's modelsvc:catalog names (stack_file, e.g. Pulumi.prod.yaml; services.yaml without one), read as a regular
    file blob, never checked out. A change of that setting is itself a confirmable change. Raises SourceError when
    the head's file is a symlink, not a regular file or missing."""
    base_path = catalog_path(base_rev, stack_file, cwd) if stack_file else DEFAULT_CATALOG
    head_path = catalog_path(head_rev, stack_file, cwd) if stack_file else DEFAULT_CATALOG
    head_raw = git_blob(head_rev, head_path, cwd)
    try:
        head_text = decode(head_raw, head_path)
    except CatalogError as e:
        return review_invalid(e.problems, "the new services.yaml")
    try:
        base_text: str | None = decode(git_blob(base_rev, base_path, cwd), base_path)
    except (SourceError, CatalogError):
        base_text = None  # no (readable) catalog on the base yet: everything in the head is new
    loaded = _load_pair(head_text, head_path, base_text, base_path)
    if isinstance(loaded, Review):
        return loaded
    base, head, head_problems = loaded
    history = name_history(base_rev, base_path, days=history_days, cwd=cwd) if history_days > 0 else None
    return review(
        base,
        head,
        confirmations,
        head_problems,
        history=history,
        catalog_files=(base_path, head_path),
        where=where,
    )


_EMPTY = "version: 1\ngateway:\n  public_url: {url}\n"
