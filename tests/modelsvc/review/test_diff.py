"""The typed diff: kinds, subjects, the services each change touches and the confirmation it needs, no Markdown."""

from __future__ import annotations

import ast
from pathlib import Path

from modelsvc.catalog import loads
from modelsvc.review import Confirm, Kind, Section, diff
from tests.modelsvc.review.test_review import BASE, NEW_SERVICE, edits

REVIEW = Path(__file__).resolve().parents[3] / "modelsvc" / "review"


def test_a_rename_to_another_owner_is_one_change_naming_both_access_names():
    d = diff(loads(BASE), loads(edits(("access_name: u-a/test\n", "access_name: u-b/test\n"))))
    [c] = d.confirmable
    assert (c.kind, c.section, c.subject, c.confirm) == (Kind.renamed, Section.services, "u-a/test", Confirm.change)
    assert c.services == ("u-b/test", "u-a/test")
    assert c.before == {"access_name": "u-a/test", "owner": "u-a"}
    assert c.after == {"access_name": "u-b/test", "owner": "u-b", "id": "ms-000000000001"}


def test_scaling_to_zero_is_a_capacity_line_and_a_confirmable_stop():
    d = diff(loads(BASE), loads(edits(("    instances: 1\n", "    instances: 0\n"))))
    kinds = [(c.kind, c.confirm) for c in d.changes if c.subject == "u-a/test"]
    assert kinds == [(Kind.instances, None), (Kind.stopped, Confirm.change)]
    inst = next(c for c in d.changes if c.kind is Kind.instances)
    assert (inst.before, inst.after) == ({"instances": 1, "gpus": 1}, {"instances": 0, "gpus": 0})
    [row] = [c for c in d.changes if c.kind is Kind.pool_usage]
    assert row.subject == "h100" and row.before["gpus"] == 9 and row.after["gpus"] == 8


def test_a_deletion_needs_confirm_delete_and_a_new_service_nothing():
    d = diff(loads(BASE), loads(edits(NEW_SERVICE)))
    assert d.confirmable == [] and not d.same_deployment
    [added] = [c for c in d.changes if c.kind is Kind.service_added]
    assert added.after["gpus"] == 4 and added.after["pool"] == "l4"
    d = diff(loads(BASE), loads(BASE[: BASE.index("  - name: Big")]))
    assert [(c.kind, c.subject, c.confirm) for c in d.confirmable] == [
        (Kind.service_removed, "u-b/big", Confirm.delete)
    ]


def test_chat_template_is_compared_by_digest():
    d = diff(loads(BASE), loads(edits(("{{ m.content }}", "{{ m.role }}"))))
    [c] = d.confirmable
    assert c.kind is Kind.model_visible and str(c.after["chat_template"]).startswith("sha256:")
    assert c.before["chat_template"] != c.after["chat_template"]


def test_autoscaling_peak_counts_deployed_gpus_on_both_sides():
    """A model swap under autoscaling: the peak change is counted with each side's own model (capacity module)."""
    auto = "    instances: 1\n    pool: h100\n    autoscale:\n      max_instances: 2\n"
    base = edits(
        ("    instances: 1\n    pool: h100\n", auto),
        ("    gpus_per_node: 8\n    max_nodes: 2\n", "    gpus_per_node: 8\n    max_nodes: 4\n"),
    )
    head = base.replace("    model: chat-8b\n", "    model: chat-70b\n").replace("max_instances: 2", "max_instances: 3")
    [c] = [c for c in diff(loads(base), loads(head)).changes if c.kind is Kind.scaling]
    assert (c.before["peak_gpus"], c.after["peak_gpus"]) == (2, 12)


def test_diff_modules_hold_no_markdown():
    """diff, changes, scaling, lookalike and sources never import the renderer nor build code spans."""
    for name in ("diff.py", "changes.py", "scaling.py", "lookalike.py", "sources.py"):
        tree = ast.parse((REVIEW / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "markdown" not in imported, name
        assert not {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & {"code", "render"}, name
