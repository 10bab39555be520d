"""Confirmations that bind to the change they confirm, and the changes callers or owners feel that need one."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from modelsvc.catalog import loads
from modelsvc.review import Confirm, Confirmation, Kind, SourceError, diff, review, review_git, review_sources
from modelsvc.review.lookalike import skeleton
from modelsvc.review.markdown import COMMENT_LIMIT
from tests.modelsvc.catalog.samples import DIGEST_A, DIGEST_B, VALID, replace
from tests.modelsvc.review.test_review import BASE, confirm_all, edits


def _only(base: str, head: str) -> tuple[Confirm, str, str]:
    [(kind, subject, digest)] = [(k, s, d) for (k, s), d in diff(loads(base), loads(head)).digests().items()]
    return kind, subject, digest


def test_a_confirmation_confirms_that_change_and_no_later_one():
    to_70b = edits(("    model: chat-8b\n", "    model: chat-70b\n"))
    kind, subject, digest = _only(BASE, to_70b)
    given = [Confirmation(kind, digest, subject)]
    assert review(loads(BASE), loads(to_70b), given).ok
    # A later push changes the same service again: the old confirmation no longer counts.
    other = edits(("    model: chat-8b\n", "    model: chat-70b\n"), ("    instances: 1\n", "    instances: 0\n"))
    r = review(loads(BASE), loads(other), given)
    assert not r.ok and r.unconfirmed == ["u-a/test", "u-a/test"]
    assert r.needed and r.needed[0].startswith("Confirm-Change: u-a/test@") and digest not in r.needed[0]


def test_a_label_names_the_digest_alone_and_a_wrong_subject_confirms_nothing():
    head = edits(("    model: chat-8b\n", "    model: chat-70b\n"))
    _, _, digest = _only(BASE, head)
    md = review(loads(BASE), loads(head)).markdown
    assert f"`Confirm-Change: u-a/test@{digest}`" in md and f"the label `confirm-change:{digest}`" in md
    assert review(loads(BASE), loads(head), [Confirmation.parse(Confirm.change, f"@{digest}")]).ok
    assert not review(loads(BASE), loads(head), [Confirmation.parse(Confirm.change, f"u-b/big@{digest}")]).ok
    assert not review(loads(BASE), loads(head), [Confirmation.parse(Confirm.change, "u-a/test@" + "0" * 10)]).ok
    with pytest.raises(ValueError):
        Confirmation.parse(Confirm.change, "u-a/test")  # a bare name, as before: not a confirmation any more


def test_a_source_swap_names_every_service_on_the_model():
    head = edits(("source: s3://models/chat-70b", "source: s3://other-bucket/chat-70b"))
    r = review(loads(BASE), loads(head))
    assert not r.ok and r.unconfirmed == ["chat-70b"]
    assert (
        "❌ model `chat-70b`: `source` `s3://models/chat-70b` → `s3://other-bucket/chat-70b`: other weights or another "
        "server behind the same model name; every caller of `u-b/big` gets answers from it"
    ) in r.markdown


def test_an_upstream_swap_needs_a_confirmation():
    openai = (
        "  chat-70b:\n    source: s3://models/chat-70b\n    gpus: 4\n",
        "  chat-70b:\n    backend: openai\n    upstream: http://a.example/v1\n    upstream_model: big\n",
    )
    base = edits(openai, ("    instances: 2\n    pool: h100\n", "    instances: 2\n"))
    head = replace(base, "upstream: http://a.example/v1", "upstream: http://b.example/v1")
    head = replace(head, "upstream_model: big", "upstream_model: bigger")
    [c] = diff(loads(base), loads(head)).confirmable
    assert c.kind is Kind.model_source and c.services == ("u-b/big",)
    assert c.after == {"upstream": "http://b.example/v1", "upstream_model": "bigger"}


def test_a_new_key_names_its_reach():
    head = replace(BASE, "keys:\n", f"keys:\n  - id: k-a2\n    owner: u-a\n    sha256: {'e' * 64}\n")
    [c] = diff(loads(BASE), loads(head)).confirmable
    assert (c.kind, c.subject, c.services) == (Kind.key_added, "k-a2", ("u-a/test",))
    assert "❌ new key `k-a2` for `u-a`: it can call `u-a/test`" in review(loads(BASE), loads(head)).markdown


def test_a_digest_moving_to_another_owner_is_named_as_such_not_as_a_revocation():
    """The same secret, removed as k-a (u-a) and added as k-x (u-b): it still works, and calls u-b's services."""
    head = replace(BASE, f"  - id: k-a\n    owner: u-a\n    sha256: {DIGEST_A}\n", "")
    head = replace(head, "keys:\n", f"keys:\n  - id: k-a\n    owner: u-a\n    sha256: {'f' * 64}\n")
    head = replace(head, "keys:\n", f"keys:\n  - id: k-x\n    owner: u-b\n    sha256: {DIGEST_A}\n")
    d = diff(loads(BASE), loads(head))
    kinds = {(c.kind, c.subject) for c in d.confirmable}
    assert (Kind.key_moved, "k-a") in kinds and (Kind.key_added, "k-x") not in kinds
    md = review(loads(BASE), loads(head)).markdown
    assert "the secret of key `k-a` (owner `u-a`) moves to owner `u-b` as key `k-x`: it is not revoked" in md
    assert "callers using it get 401" not in md.split("### Services")[0].replace("rotated", "")


def test_lookalike_access_names():
    """`u-a/rnodel` next to `u-a/model` (rn/m): both new, each named with the other."""
    svc = "  - name: {}\n    access_name: u-a/{}\n    id: ms-{}\n    model: chat-8b\n    instances: 0\n    pool: h100\n"
    head = replace(
        BASE,
        "  - name: Big\n",
        svc.format("L", "rnodel", "00000000000c") + svc.format("M", "model", "00000000000d") + "  - name: Big\n",
    )
    lookalike = [c for c in diff(loads(BASE), loads(head)).confirmable if c.kind is Kind.lookalike]
    assert {c.subject for c in lookalike} == {"u-a/model", "u-a/rnodel"}
    assert "new access name `u-a/rnodel` reads like `u-a/model`" in review(loads(BASE), loads(head)).markdown


def test_a_lookalike_owner_is_related_to_the_existing_one():
    """`u-b0b` next to `u-bob` (0/o), with its own key so the file validates."""
    base = replace(BASE, "  - id: k-b\n", f"  - id: k-bob\n    owner: u-bob\n    sha256: {'ab' * 32}\n  - id: k-b\n")
    head = replace(base, "  - id: k-b\n", f"  - id: k-b0b\n    owner: u-b0b\n    sha256: {'cd' * 32}\n  - id: k-b\n")
    found = {(c.kind, c.subject) for c in diff(loads(base), loads(head)).confirmable}
    assert (Kind.lookalike, "u-b0b") in found and (Kind.key_added, "k-b0b") in found


@pytest.mark.parametrize(
    "a,b",
    [
        ("u-a/model", "u-a/rnodel"),
        ("u-bob", "u-b0b"),
        ("u-al1ce", "u-alice"),
        ("u-a/test", "u-а/tеst"),
        ("paypal", "ｐａｙｐａｌ"),
    ],
)
def test_skeletons_of_ascii_and_unicode_lookalikes_match(a, b):
    assert a != b and skeleton(a) == skeleton(b)


def test_different_names_keep_different_skeletons():
    assert skeleton("u-a/test") != skeleton("u-a/text") and skeleton("u-a/big") != skeleton("u-b/big")


# --- read from git: regular files only, the stack's catalog, the names' history ----------------------------------


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2026-11-20T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-20T10:00:00Z"}
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(e2e, tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    _git(r, "config", "user.email", "t@example.com")
    _git(r, "config", "user.name", "t")
    return r


def _commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for path, text in files.items():
        (repo / path).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def test_a_symlinked_services_yaml_is_refused(repo, tmp_path):
    base = _commit(repo, {"services.yaml": VALID, "main-copy.yaml": VALID})
    (repo / "services.yaml").unlink()
    (repo / "services.yaml").symlink_to("main-copy.yaml")
    head = _commit(repo, {"main-copy.yaml": VALID[: VALID.index("  - name: Big")]})
    with pytest.raises(SourceError, match="is a symlink"):
        review_git(base, head, cwd=str(repo))
    with pytest.raises(SourceError, match="is a symlink"):
        review_sources(str(tmp_path / "x.yaml"), str(repo / "services.yaml"))


def test_an_executable_or_non_file_services_yaml_is_refused(repo):
    base = _commit(repo, {"services.yaml": VALID})
    (repo / "services.yaml").chmod(0o755)
    head = _commit(repo, {})
    with pytest.raises(SourceError, match="mode 100755"):
        review_git(base, head, cwd=str(repo))


def test_the_file_the_stack_names_is_reviewed_and_a_change_of_the_setting_is_confirmed(repo):
    stack = "config:\n  modelsvc:target: kubeconfig\n  modelsvc:catalog: {}\n"
    base = _commit(repo, {"services.yaml": VALID, "Pulumi.prod.yaml": stack.format("services.yaml")})
    smaller = VALID[: VALID.index("  - name: Big")]
    head = _commit(repo, {"other.yaml": smaller, "Pulumi.prod.yaml": stack.format("other.yaml")})
    r = review_git(base, head, stack_file="Pulumi.prod.yaml", cwd=str(repo))
    assert set(r.unconfirmed) == {"modelsvc-catalog", "u-b/big"}, r.markdown
    assert "the stack's `modelsvc:catalog` changes `services.yaml` → `other.yaml`" in r.markdown
    assert "removed `u-b/big`" in r.markdown, "the file the deploy will read is the one compared"


def test_a_name_freed_and_reused_in_two_pull_requests_is_one_change(repo):
    first = _commit(repo, {"services.yaml": BASE})
    freed = _commit(repo, {"services.yaml": BASE[: BASE.index("  - name: Big")]}, "remove big")
    reuse = BASE[: BASE.index("  - name: Big")] + (
        "  - name: Big again\n    access_name: u-b/big\n    id: ms-0000000000bb\n    model: chat-8b\n"
        "    instances: 1\n    pool: h100\n"
    )
    head = _commit(repo, {"services.yaml": reuse}, "reuse the name")
    r = review_git(freed, head, cwd=str(repo))
    assert r.unconfirmed == ["u-b/big"], r.markdown
    assert f"`u-b/big` was the access name of service `ms-000000000002` until commit `{first[:12]}`" in r.markdown
    assert "callers of the old service reach the new one" in r.markdown
    assert review_git(freed, head, cwd=str(repo), history_days=0).ok, "no history, no flag"


# --- large changes --------------------------------------------------------------------------------------------------


def _many(n: int, *, instances: int) -> str:
    services = "".join(
        f"  - name: S{i}\n    access_name: u-a/s{i}\n    id: ms-{i:012x}\n    model: chat-8b\n"
        f"    instances: {instances}\n    pool: big\n"
        for i in range(n)
    )
    head, _, _ = VALID.partition("services:\n")
    head = replace(
        head, "pools:\n", "pools:\n  big:\n    instance_type: p5.48xlarge\n    gpus_per_node: 8\n    max_nodes: 1000\n"
    )
    return head + "services:\n" + services


def test_a_3000_service_change_is_reviewed_within_60_s_into_a_comment_under_the_limit():
    base, head = loads(_many(3000, instances=1)), loads(_many(3000, instances=0))
    start = time.monotonic()
    r = review(base, head, where="in the job summary and the artifact `review`")
    elapsed = time.monotonic() - start
    assert elapsed < 60, elapsed
    assert len(r.markdown) > COMMENT_LIMIT, "the whole review does not fit a comment"
    assert len(r.comment) < COMMENT_LIMIT - 1000
    assert "**This review is too long for a comment**" in r.comment and "the artifact `review`" in r.comment
    assert "| stopped | 3000 |" in r.comment and "| instances | 3000 |" in r.comment
    assert "**Result: ❌ blocked** — 3000 unconfirmed change(s)" in r.comment
    assert "- … and " in r.comment and r.comment.count("- ❌") > 100
    ok = review(base, head, confirm_all(base, head))
    assert ok.ok and len(ok.comment) < COMMENT_LIMIT


def test_a_small_review_is_the_comment_itself():
    r = review(loads(BASE), loads(edits(("    instances: 1\n", "    instances: 2\n"))))
    assert r.comment == r.markdown


def test_unused_digest_of_b_still_valid():
    assert DIGEST_B in VALID
