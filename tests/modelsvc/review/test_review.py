"""The review of a services.yaml change: one pull request per signal a reviewer needs, and hostile values.

Each case is a PR (base → head) with the lines the review must show, the confirmations it must ask for (the
subjects of `Confirm-Delete:` / `Confirm-Change:` lines) and whether it passes once they are given.
"""

from __future__ import annotations

import json
import re

import pytest
from markdown_it import MarkdownIt

from modelsvc.catalog import Catalog, loads
from modelsvc.review import MARKER, Confirm, Confirmation, code, diff, review, review_sources
from tests.modelsvc.catalog.samples import DIGEST_B, KEY_A, VALID, replace

BASE = replace(
    VALID, "pools:\n", "pools:\n  l4:\n    instance_type: g6.12xlarge\n    gpus_per_node: 4\n    max_nodes: 2\n"
)
BASE = replace(
    BASE,
    "    max_output_tokens: 256\n",
    '    max_output_tokens: 256\n    chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}"\n',
)
BASE = replace(
    BASE, "    pool: h100\n  - name: Big", "    pool: h100\n    limits:\n      requests_per_minute: 60\n  - name: Big"
)
BASE = replace(BASE, "    owner: u-b\n", "    owner: u-b\n    limits:\n      tokens_per_minute: 1000\n")


def confirm_all(base: Catalog, head: Catalog) -> list[Confirmation]:
    """The confirmations the review asks for, as the pull request would give them (subject@digest)."""
    return [Confirmation(kind, digest, subject) for (kind, subject), digest in diff(base, head).digests().items()]


def edits(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        text = replace(text, old, new)
    return text


NEW_SERVICE = (
    "  - name: Test\n",
    "  - name: Fresh\n    access_name: u-a/fresh\n    id: ms-00000000000f\n"
    "    model: chat-70b\n    instances: 1\n    pool: l4\n  - name: Test\n",
)

# (case, head, lines the review shows, subjects that need a confirmation, how they are confirmed)
CASES = [
    (
        "model swap",
        edits(("    model: chat-8b\n", "    model: chat-70b\n")),
        [
            "❌ `u-a/test`: model `chat-8b` → `chat-70b`: every caller gets answers from another model",
            "- `u-a/test`: GPUs 1 → 4 (+3; 1 → 4 per instance)",
        ],
        {"u-a/test"},
    ),
    (
        "model swap and scale to 0",
        edits(("    model: chat-70b\n    instances: 2\n", "    model: chat-8b\n    instances: 0\n")),
        [
            "`u-b/big`: instances 2 → 0 (-2 instance(s), -8 GPU(s))",
            "`u-b/big`: model `chat-70b` → `chat-8b`",
            "`u-b/big`: instances 2 → 0: the service answers 503",
        ],
        {"u-b/big"},
    ),
    (
        "max_input_tokens",
        edits(("max_input_tokens: 2048", "max_input_tokens: 1024")),
        ["`u-a/test`: model `chat-8b` `max_input_tokens` `2048` → `1024`", "- model `chat-8b`: `max_input_tokens`"],
        {"u-a/test"},
    ),
    (
        "max_output_tokens",
        edits(("max_output_tokens: 256", "max_output_tokens: 512")),
        ["`max_output_tokens` `256` → `512`"],
        {"u-a/test"},
    ),
    (
        "chat_template",
        edits(("{{ m.content }}", "{{ m.role }}: {{ m.content }}")),
        ["`u-a/test`: model `chat-8b` `chat_template` `sha256:"],
        {"u-a/test"},
    ),
    ("task", edits(("    task: chat\n", "    task: vision-chat\n")), ["`task` `chat` → `vision-chat`"], {"u-a/test"}),
    (
        "engine-only model change",
        edits(("    gpus: 4\n", "    gpus: 4\n    dtype: fp8\n")),
        [
            "- `u-b/big`: model `chat-70b` definition changed (engine rebuild, rolling restart)",
            "- model `chat-70b`: `dtype` `bfloat16` → `fp8`",
        ],
        set(),
    ),
    (
        "gateway public_url",
        edits(("http://127.0.0.1:8080/v1", "https://api.example.com/v1")),
        ["⚠️ `public_url` `http://127.0.0.1:8080/v1` → `https://api.example.com/v1`: callers must change"],
        set(),
    ),
    ("gateway replicas", edits(("  replicas: 1\n", "  replicas: 3\n")), ["- `replicas` 1 → 3"], set()),
    (
        "gateway body limit",
        edits(("  replicas: 1\n", "  replicas: 1\n  max_body_bytes: 2048\n")),
        ["⚠️ `max_body_bytes` 4194304 → 2048: larger requests get 413"],
        set(),
    ),
    (
        "service limits",
        edits(("      requests_per_minute: 60\n", "      requests_per_minute: 6\n")),
        ["- `u-a/test`: limits `requests_per_minute=60` → `requests_per_minute=6`"],
        set(),
    ),
    (
        "key limits",
        edits(("      tokens_per_minute: 1000\n", "      tokens_per_minute: 10\n")),
        ["- key `k-b`: limits `tokens_per_minute=1000` → `tokens_per_minute=10`"],
        set(),
    ),
    (
        "key changes owner",
        edits(
            ("  - id: k-a\n    owner: u-a\n", "  - id: k-a\n    owner: u-b\n"),
            ("    owner: u-b\n    limits:", "    owner: u-a\n    limits:"),
        ),
        [
            "key `k-a` changes owner `u-a` → `u-b`: it calls the services of `u-b` now",
            "key `k-b` changes owner `u-b` → `u-a`",
        ],
        {"k-a", "k-b"},
    ),
    (
        "key revoked",
        edits(("  - id: k-b\n    owner: u-b\n", "  - id: k-b2\n    owner: u-b\n"), (DIGEST_B, "d" * 64)),
        [
            "❌ key `k-b` of `u-b` revoked: callers using it get 401",
            "❌ new key `k-b2` for `u-b`: it can call `u-b/big`",
        ],
        {"k-b", "k-b2"},
    ),
    (
        "key renamed (same secret)",
        edits(("  - id: k-b\n    owner: u-b\n", "  - id: k-b2\n    owner: u-b\n")),
        ["key `k-b` is now key `k-b2` (the same secret, same owner `u-b`): its callers keep working"],
        {"k-b"},
    ),
    ("key rotated", edits((DIGEST_B, "c" * 64)), ["key `k-b` rotated (new digest)"], {"k-b"}),
    (
        "access names swapped",
        edits(
            ("access_name: u-a/test\n", "access_name: u-a/x\n"),
            ("access_name: u-b/big\n", "access_name: u-a/test\n"),
            ("access_name: u-a/x\n", "access_name: u-b/big\n"),
        ),
        [
            "renamed `u-a/test` → `u-b/big` (`ms-000000000001`)",
            "**access names swapped** with `ms-000000000002`",
            "**ownership transfer** `u-a` → `u-b`",
        ],
        {"u-a/test", "u-b/big"},
    ),
    (
        "rename",
        edits(("access_name: u-a/test\n", "access_name: u-a/test-v2\n")),
        ["renamed `u-a/test` → `u-a/test-v2` (`ms-000000000001`): callers of the old name get 404"],
        {"u-a/test"},
    ),
    (
        "rename to another owner",
        edits(("access_name: u-a/test\n", "access_name: u-b/test\n")),
        ["**ownership transfer** `u-a` → `u-b`: the keys of `u-b` call it now, those of `u-a` no longer can"],
        {"u-a/test"},
    ),
    (
        "instances 0",
        edits(("    instances: 1\n", "    instances: 0\n")),
        ["`u-a/test`: instances 1 → 0: the service answers 503", "instances 1 → 0 (-1 instance(s), -1 GPU(s))"],
        {"u-a/test"},
    ),
    (
        "pool move",
        edits(("    instances: 1\n    pool: h100\n", "    instances: 1\n    pool: l4\n")),
        [
            "- `u-a/test`: pool `h100` → `l4` (GPU type `h100` → `l4`; pods move, engine rebuild)",
            "| `l4` | 0 → 1 | 0 → 1 (+1) | 0 → 1 | 2 |",
        ],
        set(),
    ),
    (
        "instance_type",
        edits(("instance_type: p5.48xlarge", "instance_type: p5e.48xlarge")),
        [
            "- pool `h100`: `instance_type` `p5.48xlarge` → `p5e.48xlarge`",
            "❌ pool `h100`: `instance_type` `p5.48xlarge` → `p5e.48xlarge`: other GPUs under `u-a/test` 1 → 1 GPU(s), "
            "`u-b/big` 8 → 8 GPU(s) (engine rebuilds)",
        ],
        {"h100"},
    ),
    (
        "max_nodes",
        edits(("    gpus_per_node: 4\n    max_nodes: 2\n", "    gpus_per_node: 4\n    max_nodes: 5\n")),
        ["- pool `l4`: `max_nodes` `2` → `5`", "| `l4` | 0 → 0 | 0 → 0 (+0) | 0 → 0 | 5 |"],
        set(),
    ),
    (
        "new service with its GPUs",
        edits(NEW_SERVICE),
        [
            "- ➕ new service `u-a/fresh` (`Fresh`, `ms-00000000000f`): `chat-70b`, 1 instance(s) on `l4`, +4 GPU(s)",
            "| `l4` | 0 → 1 | 0 → 4 (+4) | 0 → 2 | 2 |",
        ],
        set(),
    ),
    (
        "deletion",
        BASE[: BASE.index("  - name: Big")],
        [
            "removed `u-b/big` (`ms-000000000002`): callers get 404",
            "`Confirm-Delete: u-b/big@",
            "the label `confirm-delete:",
        ],
        {"u-b/big"},
    ),
    (
        "access name reused by a new id",
        edits(("    id: ms-000000000002\n", "    id: ms-0000000000aa\n")),
        [
            "`u-b/big` is now served by a new service id `ms-0000000000aa` (was `ms-000000000002`)",
            "removed `u-b/big` (`ms-000000000002`)",
        ],
        {"u-b/big"},
    ),
    (
        "display name",
        edits(("  - name: Big\n", "  - name: Bigger\n")),
        ["- `u-b/big`: display name `Big` → `Bigger`"],
        set(),
    ),
    (
        "nested backticks in a name",
        edits(("  - name: Big\n", "  - name: 'a ``b`` `c`'\n")),
        ["display name `Big` → ``` a ``b`` `c` ```"],
        set(),
    ),
]


@pytest.mark.parametrize("case,head,shows,needs", CASES, ids=[c[0] for c in CASES])
def test_every_signal_shows_and_caller_visible_ones_need_a_confirmation(case, head, shows, needs):
    base_c, head_c = loads(BASE), loads(head)
    r = review(base_c, head_c)
    for line in shows:
        assert line in r.markdown, f"{case}: {line!r} missing in\n{r.markdown}"
    assert set(r.unconfirmed) == needs, r.markdown
    assert r.ok is (not needs)
    section = r.markdown.split("### Changes callers will notice (each needs a confirmation)\n")[1].split("###")[0]
    if needs:
        assert "**Result: ❌ blocked**" in r.markdown and section.count("**not confirmed**") >= len(needs)
        confirmed = review(base_c, head_c, confirm_all(base_c, head_c))
        assert confirmed.ok and not confirmed.unconfirmed, confirmed.markdown
        assert "passes with confirmed changes callers will notice" in confirmed.markdown
        assert "**not confirmed**" not in confirmed.markdown and "— confirmed" in confirmed.markdown
    else:
        assert section == "- none\n\n" and "✅ passes" in r.markdown
    assert "No deployed change" not in r.markdown


def test_a_deletion_needs_confirm_delete_not_confirm_change():
    base, head = loads(BASE), loads(BASE[: BASE.index("  - name: Big")])
    [(kind, subject, digest)] = [(k, s, d) for (k, s), d in diff(base, head).digests().items()]
    assert (kind, subject) == (Confirm.delete, "u-b/big")
    assert not review(base, head, [Confirmation(Confirm.change, digest, "u-b/big")]).ok
    assert review(base, head, [Confirmation(Confirm.delete, digest, "u-b/big")]).ok


def _reordered() -> str:
    """BASE with Big listed before Test, a model's fields swapped and a default written out."""
    start, big = BASE.index("services:\n") + len("services:\n"), BASE.index("  - name: Big")
    text = BASE[:start] + BASE[big:] + BASE[start:big]
    text = replace(
        text, "    task: chat\n    source: s3://models/chat-8b\n", "    source: s3://models/chat-8b\n    task: chat\n"
    )
    return replace(text, "    gpus: 4\n", "    gpus: 4\n    dtype: bfloat16\n")


@pytest.mark.parametrize(
    "head",
    ["# reviewed\n" + BASE.replace("    gpus: 1\n", "    gpus: 1  # one is enough\n"), _reordered()],
    ids=["comments", "reordered"],
)
def test_comment_only_or_reordered_edit_is_no_deployed_change(head):
    base_c, head_c = loads(BASE), loads(head)
    assert head_c.text != base_c.text
    r = review(base_c, head_c)
    assert "**No deployed change**" in r.markdown and "**Result: ✅ passes**" in r.markdown
    assert r.markdown.count("- no change") == 5


def test_a_capacity_error_lists_the_problem_above_the_whole_diff(tmp_path):
    head = edits(("    instances: 2\n    pool: h100\n", "    instances: 9\n    pool: h100\n"), NEW_SERVICE)
    (tmp_path / "b.yaml").write_text(BASE)
    (tmp_path / "h.yaml").write_text(head)
    r = review_sources(str(tmp_path / "b.yaml"), str(tmp_path / "h.yaml"), set())
    assert not r.ok
    md = r.markdown
    assert "**❌ the new services.yaml is invalid** (1 problem(s)):" in md
    assert (
        "pool 'h100' needs 6 nodes for 10 instances (37 GPUs) and room to build a 4-GPU engine beside them, "
        "but max_nodes is 2" in md
    )
    assert "- `u-b/big`: instances 2 → 9 (+7 instance(s), +28 GPU(s))" in md, "the diff is still there"
    assert "- ➕ new service `u-a/fresh`" in md
    assert "| `h100` | 3 → 10 | 9 → 37 (+28) | 2 → 6 | 2 |" in md
    assert md.rstrip().endswith("**Result: ❌ the new services.yaml is invalid** (1 problem(s), listed above)")


# --- hostile values -----------------------------------------------------------------------------------------------

HOSTILE_VALID_NAMES = [
    "Docs)  **Result: ✅ passes** [x](https://evil.example)",
    "![i](https://evil.example/i.png)",
    "::warning title=x::pwned ::add-mask::x",
    "a ``` b ```` c `",
    "`",
    "| pipe | table |",
    "&lt;!-- html entity --&gt; &amp;",
]


def _outside_code(markdown: str) -> str:
    """The rendered HTML with every <code> element removed: what a reader sees as formatting."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    return re.sub(r"<code>.*?</code>", "", html, flags=re.S)


@pytest.mark.parametrize("name", HOSTILE_VALID_NAMES)
def test_hostile_display_names_stay_inside_code_spans(name):
    quoted = json.dumps(name)  # a JSON string is a YAML double-quoted scalar
    head = edits(
        ("  - name: Big\n", f"  - name: {quoted}\n"),
        (NEW_SERVICE[0], NEW_SERVICE[1].replace("name: Fresh", f"name: {quoted}")),
        ("instance_type: p5.48xlarge", f"instance_type: {quoted}"),  # free text, in the capacity section
        (
            "    model: chat-70b\n    instances: 2\n",
            f"    model: chat-70b\n    description: {quoted}\n    instances: 2\n",
        ),
    )
    r = review(loads(BASE), loads(head), confirm_all(loads(BASE), loads(head)))  # the instance type is confirmed
    outside = _outside_code(r.markdown)
    assert outside.count("<strong>Result") == 1 and "passes" in outside and "❌" not in outside
    for fragment in ("evil.example", "::warning", "::add-mask", "pwned", "<a ", "<img", "&lt;!--", "| pipe"):
        assert fragment not in outside, (fragment, outside)
    assert not any(line.lstrip().startswith("::") for line in r.markdown.splitlines())
    assert r.markdown.count(code(name)) == 5, r.markdown  # the instance type twice: capacity and confirmation


@pytest.mark.parametrize(
    "value,expected",
    [
        ("plain", "`plain`"),
        ("a`b", "``a`b``"),
        ("``x", "``` ``x ```"),
        ("x`", "`` x` ``"),
        ("new\nline", "`new\\u000aline`"),
        ("\u202eevil", "`\\u202eevil`"),
        ("a|b", "`a|b`"),
    ],
)
def test_code_spans(value, expected):
    assert code(value) == expected
    assert code("a|b", cell=True) == "`a\\|b`"


def test_invalid_hostile_head_leaks_nothing(tmp_path):
    """Control characters, '<' and a pasted key: the head is refused, its problems listed, none of it echoed."""
    head = replace(BASE, "  - name: Big\n", '  - name: "Docs)\\n\\n**Result: ✅ passes**\\n<!--"\n')
    head = replace(head, "    sha256: " + head.split("    sha256: ")[1].split("\n")[0], f"    sha256: {KEY_A}")
    (tmp_path / "b.yaml").write_text(BASE)
    (tmp_path / "h.yaml").write_text(head)
    r = review_sources(str(tmp_path / "b.yaml"), str(tmp_path / "h.yaml"), set())
    assert not r.ok and KEY_A not in r.markdown and "<!--" not in r.markdown.replace(MARKER, "")
    outside = _outside_code(r.markdown)
    assert outside.count("<strong>Result") == 1 and "✅" not in outside


def test_a_head_that_is_not_utf8_is_a_located_problem_not_a_crash(tmp_path):
    (tmp_path / "b.yaml").write_text(BASE)
    (tmp_path / "h.yaml").write_bytes(BASE.replace("  - name: Big\n", "  - name: Caf\xe9\n").encode("latin-1"))
    r = review_sources(str(tmp_path / "b.yaml"), str(tmp_path / "h.yaml"), set())
    assert not r.ok
    assert "not UTF-8 (byte 0xe9)" in r.markdown and "h.yaml:" in r.markdown
