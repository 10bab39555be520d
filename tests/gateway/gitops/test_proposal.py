"""The pure parts of the actions: least privilege, the description, the branch and the marker it carries."""

from __future__ import annotations

import pytest

from gateway.errors import Conflict, InvalidEdit, NotFound
from gateway.gitops import permissions
from gateway.gitops.proposal import (
    Who,
    branch_owner,
    is_live,
    parse_marker,
    propose_delete,
    propose_deploy,
    propose_scale,
)
from modelsvc.catalog import loads

from ..harness import example_catalog

WHO = Who("u-8105f7322477", "k-8105f7322477-default")
TEXT = example_catalog()


def test_least_privilege_installation():
    ok = {"contents": "write", "pull_requests": "write", "metadata": "read"}
    assert permissions.check_installation(ok, "selected") == ([], {"contents": "write", "pull_requests": "write"})
    problems, token = permissions.check_installation({**ok, "checks": "read"}, "selected")
    assert problems == [] and token == {"contents": "write", "pull_requests": "write", "checks": "read"}
    problems, _ = permissions.check_installation({**ok, "checks": "write", "actions": "read"}, "all")
    assert len(problems) == 3 and any("Checks: write" in p for p in problems)
    assert any("Actions: read" in p for p in problems) and any("all repositories" in p for p in problems)
    assert permissions.check_token("github_pat_11AAAA") == []
    assert "fine-grained" in permissions.check_token("ghp_abcdef")[0]


def test_the_description_says_who_asked_and_escapes_what_the_owner_typed():
    name = "Bot `x`"  # display names refuse < and >: backticks are what is left to escape
    p = propose_deploy(TEXT, "services.yaml", WHO, {"name": name, "model": "llama-3.1-8b-instruct", "instances": 1,
                                                     "pool": "h100"})  # fmt: skip
    assert "``Bot `x` ``" in p.body or "`` Bot `x` ``" in p.body
    assert "`u-8105f7322477`" in p.body and "`k-8105f7322477-default`" in p.body
    marker = parse_marker(p.body)
    assert marker == p.marker() and marker["owner"] == WHO.owner and marker["action"] == "deploy"
    assert branch_owner(p.branch) == (WHO.owner, p.service_id)
    assert p.confirmations == ()  # a new service: callers of existing ones notice nothing
    assert p.title == "Deploy u-8105f7322477/bot-x (console)"


def test_scale_to_zero_needs_a_confirmation_and_the_description_carries_it():
    p = propose_scale(TEXT, "services.yaml", WHO, "u-8105f7322477/test", {"to": 0})
    assert p.confirmations and all(c.startswith("Confirm-Change: u-8105f7322477/test") for c in p.confirmations)
    assert all(f"\n{c}\n" in p.body for c in p.confirmations)


def test_scope_and_refusals():
    with pytest.raises(NotFound):
        propose_scale(TEXT, "services.yaml", WHO, "u-3f9a2c7e51d0/receipts", {"add": 1})
    with pytest.raises(NotFound):
        propose_delete(TEXT, "services.yaml", WHO, "u-3f9a2c7e51d0/receipts", "u-3f9a2c7e51d0/receipts")
    with pytest.raises(InvalidEdit) as e:
        propose_scale(TEXT, "services.yaml", WHO, "u-8105f7322477/test", {"to": 1})
    assert "nothing to change" in e.value.message
    with pytest.raises(Conflict):
        propose_scale("version: 1\nbroken: [", "services.yaml", WHO, "u-8105f7322477/test", {"add": 1})


def test_liveness():
    cat = loads(TEXT)
    assert is_live({"action": "deploy", "service_id": "ms-1d033c426254", "expect": {"present": True}}, cat)
    assert not is_live({"action": "delete", "service_id": "ms-1d033c426254", "expect": {"present": False}}, cat)
    scaled = {"action": "scale", "service_id": "ms-1d033c426254", "expect": {"present": True, "instances": 1,
                                                                             "max_instances": 1}}  # fmt: skip
    assert is_live(scaled, cat) and not is_live({**scaled, "expect": {**scaled["expect"], "instances": 2}}, cat)
    assert parse_marker("no marker") is None and parse_marker("<!-- modelsvc-console {not json} -->") is None
    assert branch_owner("feature/x") is None and branch_owner("modelsvc-console/u-a/ms-1/x/y") is None
