"""Deploy, Scale and Delete as pull requests, against the fake GitHub, in process.

Each action's services.yaml is compared with what the CLI writes (modelsvc create/scale/delete, run in process on
the same base file), and the pull request's confirmations are run through the review's own parser and check
(.github/scripts/confirmations.py → `modelsvc review`)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import re
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from modelsvc.catalog import loads
from modelsvc.cli import main as cli

from ..harness import DEMO_KEY, OTHER_KEY, ROOT
from ..inproc import InProcessGateway
from .conftest import gitops_settings, make_fake, wait_enabled

OWN, FOREIGN = "u-8105f7322477/test", "u-3f9a2c7e51d0/receipts"
AUTOSCALED = "u-8105f7322477/support-bot"


def H(key=DEMO_KEY):
    return {"authorization": f"Bearer {key}"}


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = cli(list(args))
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue() + err.getvalue()


def cli_result(tmp_path: Path, base: str, *args: str) -> str:
    f = tmp_path / "cli-services.yaml"
    f.write_text(base)
    rc, out = run_cli(*args, "--file", str(f))
    assert rc == 0, out
    return f.read_text()


def _confirmations_module():
    spec = importlib.util.spec_from_file_location("confirmations", ROOT / ".github" / "scripts" / "confirmations.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def review_passes(tmp_path: Path, base: str, head: str, body: str) -> str:
    """`modelsvc review` of base → head with the confirmations the description carries, as CI runs it."""
    args = [
        f"--confirm-{kind}={name}"
        for kind, names in _confirmations_module().confirmations({"pull_request": {"body": body}}).items()
        for name in names
    ]
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "head.yaml").write_text(head)
    rc, out = run_cli("review", str(tmp_path / "base.yaml"), str(tmp_path / "head.yaml"), *args)
    assert rc == 0, out
    return out


@pytest.fixture
async def gw(tmp_path, app_key, fake):
    async with InProcessGateway(tmp_path, github_transport=fake.transport(), **gitops_settings(tmp_path, app_key)) as g:
        assert (await wait_enabled(g, DEMO_KEY))["enabled"], fake.violations
        yield g
    assert fake.violations == []


def writes(fake) -> list:
    return [e for e in fake.exchanges if e.method != "GET" and "access_tokens" not in e.path]


async def test_off_unless_configured(tmp_path):
    async with InProcessGateway(tmp_path) as g:
        r = await g.client.get("/console/api/actions", headers=H())
        assert r.status_code == 200 and r.json()["enabled"] is False and "--github-repo" in r.json()["reason"]
        r = await g.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
        assert r.status_code == 503 and r.json()["error"]["code"] == "console_actions_unavailable"
        r = await g.client.post(f"/console/api/actions/scale/{FOREIGN}", json={"add": 1}, headers=H())
        assert r.status_code == 404  # another owner's service: a 404 whatever the feature's state
        r = await g.client.get("/console/api/pending", headers=H())
        assert r.json() == {"enabled": False, "data": []}
        r = await g.client.get(f"/console/api/services/{OWN}", headers=H())
        assert r.json()["actions"]["scale"]["command"].startswith("modelsvc scale")  # today's commands remain


async def test_scale_opens_one_pull_request_with_the_cli_edit(gw, fake, tmp_path):
    base = fake.file("main", "services.yaml")
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 2}, headers=H())
    assert r.status_code == 201, r.text
    pr = r.json()
    assert pr["number"] == 1 and pr["url"].endswith("/acme/models/pull/1") and pr["stage"] == "review"
    p = fake.pull(1)
    assert p.base == "main" and re.fullmatch(
        r"modelsvc-console/u-8105f7322477/ms-1d033c426254/scale-[0-9a-f]{8}", p.head
    )
    head_commit = fake.commits[fake.refs[p.head]]
    assert head_commit["parent"] == fake.refs["main"], "one commit on main's head"
    assert head_commit["files"]["services.yaml"] == cli_result(tmp_path, base, "scale", OWN, "--add", "2")
    assert p.login == "modelsvc-console-test[bot]" and p.title == f"Scale {OWN} to 3 instance(s) (console)"
    assert "`u-8105f7322477`" in p.body and "`k-local-demo`" in p.body and DEMO_KEY not in p.body
    assert DEMO_KEY not in json.dumps([e.body for e in fake.exchanges])
    review_passes(tmp_path, base, head_commit["files"]["services.yaml"], p.body)
    # the writes: a branch, one file commit, the pull request; nothing else
    assert [(e.method, e.path.split("/", 4)[-1]) for e in writes(fake)] == [
        ("POST", "git/refs"),
        ("PUT", "contents/services.yaml"),
        ("POST", "pulls"),
    ]


async def test_autoscaled_min_and_max(gw, fake, tmp_path):
    base = fake.file("main", "services.yaml")
    r = await gw.client.post(
        f"/console/api/actions/scale/{AUTOSCALED}", json={"to": 3, "max_instances": 6}, headers=H()
    )
    assert r.status_code == 201, r.text
    head = fake.file(fake.pull(1).head, "services.yaml")
    assert head == cli_result(tmp_path, base, "scale", AUTOSCALED, "--to", "3", "--max", "6")
    svc = loads(head).service(AUTOSCALED)
    assert (svc.instances, svc.autoscale.max_instances) == (3, 6)
    assert "2–4 → 3–6" in fake.pull(1).body


async def test_delete_carries_the_confirmation_its_review_needs(gw, fake, tmp_path):
    base = fake.file("main", "services.yaml")
    r = await gw.client.post(f"/console/api/actions/delete/{OWN}", json={"confirm": "u-8105f7322477/tes"}, headers=H())
    assert r.status_code == 400 and r.json()["error"]["param"] == "confirm" and writes(fake) == []
    r = await gw.client.post(f"/console/api/actions/delete/{OWN}", json={"confirm": OWN}, headers=H())
    assert r.status_code == 201, r.text
    assert r.json()["confirmations"] and all(c.startswith("Confirm-Delete: ") for c in r.json()["confirmations"])
    p = fake.pull(1)
    head = fake.file(p.head, "services.yaml")
    assert head == cli_result(tmp_path, base, "delete", OWN, "--confirm", OWN)
    for line in r.json()["confirmations"]:
        assert f"\n{line}\n" in p.body
    out = review_passes(tmp_path, base, head, p.body)
    assert "passes" in out
    # without the description's confirmation the same review blocks: the line is what makes it pass
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "head.yaml").write_text(head)
    rc, _ = run_cli("review", str(tmp_path / "base.yaml"), str(tmp_path / "head.yaml"))
    assert rc != 0


async def test_deploy_a_new_service(gw, fake, tmp_path):
    base = fake.file("main", "services.yaml")
    form = {"name": "Docs Bot", "model": "llama-3.1-8b-instruct", "instances": 1, "pool": "h100", "max_instances": 2}
    r = await gw.client.post("/console/api/actions/deploy", json=form, headers=H())
    assert r.status_code == 201, r.text
    p = fake.pull(1)
    head = fake.file(p.head, "services.yaml")
    new = loads(head).service("u-8105f7322477/docs-bot")
    assert new is not None and re.fullmatch(r"ms-[0-9a-f]{12}", new.id)
    cli_text = cli_result(
        tmp_path, base, "create", "--name", "Docs Bot", "--owner", "u-8105f7322477", "--model",
        "llama-3.1-8b-instruct", "--instances", "1", "--pool", "h100", "--max-instances", "2",
    )  # fmt: skip
    cli_id = re.findall(r"ms-[0-9a-f]{12}", cli_text.replace(base, ""))[0]
    assert head == cli_text.replace(cli_id, new.id), "the CLI's edit, but for the fresh service id"
    review_passes(tmp_path, base, head, p.body)
    # the owner comes from the key, never the form
    r = await gw.client.post("/console/api/actions/deploy", json={**form, "owner": "u-3f9a2c7e51d0"}, headers=H())
    assert r.status_code == 400 and r.json()["error"]["param"] == "owner"
    r = await gw.client.post(
        "/console/api/actions/deploy", json={**form, "access_name": "u-3f9a2c7e51d0/docs"}, headers=H()
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "access_name"
    assert len(fake.pulls) == 1


async def test_an_invalid_form_is_refused_with_located_problems(gw, fake):
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"to": 99}, headers=H())
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"]["code"] == "invalid_edit" and body["error"]["param"] == "instances"
    assert body["problems"] and any("h100" in p["message"] for p in body["problems"])
    assert all(re.match(r"services\.yaml:\d+:\d+: ", p["located"]) for p in body["problems"])
    r = await gw.client.post(
        "/console/api/actions/deploy", json={"name": "X", "model": "nope", "instances": 1, "pool": "h100"}, headers=H()
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model", r.text
    assert "model 'nope' is not defined" in r.json()["problems"][0]["message"]
    for bad in ({"to": 1, "add": 1}, {"to": "2"}, {"to": -1}, {}, {"to": 1, "x": 1}):
        r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json=bad, headers=H())
        assert r.status_code == 400, bad
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"to": 1}, headers=H())
    assert r.status_code == 400 and "nothing to change" in r.json()["error"]["message"]
    assert writes(fake) == [] and fake.pulls == []


async def test_another_owners_service_is_a_404_for_every_action(gw, fake):
    for key, name in ((OTHER_KEY, OWN), (DEMO_KEY, FOREIGN), (DEMO_KEY, "u-8105f7322477/nope")):
        for path, body in (
            (f"/console/api/actions/scale/{name}", {"add": 1}),
            (f"/console/api/actions/delete/{name}", {"confirm": name}),
        ):
            r = await gw.client.post(path, json=body, headers=H(key))
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
            assert r.json()["error"]["message"].endswith("does not exist or you do not have access to it")
        r = await gw.client.get(f"/console/api/pending/{name}", headers=H(key))
        assert r.status_code == 404
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H("sk-wrong-key-123456"))
    assert r.status_code == 401
    assert writes(fake) == [] and fake.pulls == []


async def test_follow_through_and_a_second_action(gw, fake):
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == 201
    r = await gw.client.post(f"/console/api/actions/delete/{OWN}", json={"confirm": OWN}, headers=H())
    assert r.status_code == 409 and "pull request #1" in r.json()["error"]["message"]
    pending = (await gw.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"]
    assert [(p["number"], p["stage"], p["gate"], p["review"]) for p in pending] == [(1, "review", None, None)]
    assert (await gw.client.get("/console/api/pending", headers=H(OTHER_KEY))).json()["data"] == []

    fake.review(1, "✅ passes", "success")
    p = (await gw.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"][0]
    assert p["gate"]["conclusion"] == "success" and p["review"] == "Result: ✅ passes" and p["gate_visible"]

    fake.merge(1)
    p = (await gw.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"][0]
    assert p["stage"] == "deploying" and p["merged_at"]
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == 409, "merged but not live yet: still pending"

    # the deploy lands: the gateway loads main's new catalog, and the pull request is no longer pending
    await gw.app.ctx.runtime.apply(loads(fake.file("main", "services.yaml")))
    assert (await gw.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"] == []
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == 201 and fake.file(fake.pull(2).head, "services.yaml").count("instances: 3") >= 1


async def test_a_closed_pull_request_no_longer_blocks(gw, fake):
    assert (await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())).status_code == 201
    fake.close(1)
    p = (await gw.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"][0]
    assert p["stage"] == "closed" and p["blocking"] is False
    assert (await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())).status_code == 201


async def test_tokens_ask_for_one_repository_and_the_least_permissions(gw, fake):
    assert (await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())).status_code == 201
    (token,) = fake.tokens.values()
    assert token.repositories == ["models"]
    assert token.permissions == {"contents": "write", "pull_requests": "write", "checks": "read"}


BASE_PERMISSIONS = {"contents": "write", "pull_requests": "write"}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"installation_permissions": {**BASE_PERMISSIONS, "administration": "write"}}, "Administration"),
        ({"installation_permissions": {**BASE_PERMISSIONS, "workflows": "write"}}, "Workflows"),
        ({"installation_permissions": {"contents": "read", "pull_requests": "write"}}, "needs Contents: write"),
        ({"installation_permissions": {**BASE_PERMISSIONS, "issues": "write"}}, "Issues: write"),
        ({"repository_selection": "all"}, "all repositories"),
    ],
)
async def test_an_over_or_under_privileged_installation_is_refused_at_start(tmp_path, app_key, kw, message):
    fake = make_fake(app_key, **kw)
    async with InProcessGateway(tmp_path, github_transport=fake.transport(), **gitops_settings(tmp_path, app_key)) as g:
        body = await wait_enabled(g, DEMO_KEY, want=False)
        assert body["enabled"] is False and message in body["reason"], body
        r = await g.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
        assert r.status_code == 503 and message in r.json()["error"]["message"]
        assert (await g.client.get("/v1/models", headers=H())).status_code == 200, "the API serves as usual"
    assert fake.tokens == {} and fake.pulls == []


async def test_without_checks_read_the_gate_is_not_read(tmp_path, app_key):
    fake = make_fake(app_key, installation_permissions={"contents": "write", "pull_requests": "write"})
    async with InProcessGateway(tmp_path, github_transport=fake.transport(), **gitops_settings(tmp_path, app_key)) as g:
        assert (await wait_enabled(g, DEMO_KEY))["enabled"]
        assert (
            await g.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
        ).status_code == 201
        fake.review(1, "✅ passes", "success")
        p = (await g.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"][0]
        assert p["gate"] is None and p["gate_visible"] is False and p["review"] == "Result: ✅ passes"
    assert not any("check-runs" in e.path for e in fake.exchanges) and fake.violations == []


async def test_actions_are_rate_limited_per_owner_and_metered(tmp_path, app_key, fake):
    settings = gitops_settings(tmp_path, app_key, console_actions_per_minute=2)
    async with InProcessGateway(tmp_path, github_transport=fake.transport(), **settings) as g:
        assert (await wait_enabled(g, DEMO_KEY))["enabled"]
        if time.time() % 60 > 50:  # fixed one-minute windows: a third action in the next minute would be allowed
            await asyncio.sleep(61 - time.time() % 60)
        codes = [
            (await g.client.post(f"/console/api/actions/scale/{OWN}", json={"to": n}, headers=H())).status_code
            for n in (2, 3, 4)
        ]
        assert codes[0] == 201 and codes[1] == 409 and codes[2] == 429
        r = await g.client.post(f"/console/api/actions/scale/{OWN}", json={"to": 5}, headers=H())
        assert r.status_code == 429 and int(r.headers["retry-after"]) <= 60
        registry = g.app.ctx.runtime.usage.metrics.registry
        assert (
            registry.get_sample_value("modelsvc_console_actions_total", {"action": "scale", "outcome": "opened"}) == 1
        )
        assert (
            registry.get_sample_value(
                "modelsvc_console_actions_total", {"action": "scale", "outcome": "rate_limit_exceeded"}
            )
            == 2
        )


@pytest.mark.parametrize("status, code", [(409, 409), (500, 502), (403, 502)])
async def test_a_failed_commit_leaves_no_branch_and_a_clean_error(gw, fake, status, code):
    fake.refuse[("PUT", "/repos/{owner}/{repo}/contents/{path}")] = status
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == code and set(r.json()["error"]) == {"message", "type", "param", "code"}, r.text
    assert "nothing" in r.json()["error"]["message"]
    assert list(fake.refs) == ["main"] and fake.pulls == []  # the branch was deleted again
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == 201  # and the next try works


async def test_github_unreachable_is_a_clean_502(gw, fake):
    fake.refuse[("GET", "/repos/{owner}/{repo}/git/ref/{ref}")] = 503
    r = await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
    assert r.status_code == 502 and r.json()["error"]["code"] == "github_error" and writes(fake) == []


async def test_fallback_a_fine_grained_token(tmp_path, app_key):
    pat = "github_pat_11TEST0000000000000000_abcdefghijklmnopqrstuvwxyz"
    fake = make_fake(app_key, pat=pat, pat_permissions={"contents": "write", "pull_requests": "write"})
    token_file = tmp_path / "token"
    token_file.write_text(pat + "\n")
    settings = {**gitops_settings(tmp_path, app_key), "github_app_id": None, "github_app_key_file": None}
    async with InProcessGateway(
        tmp_path, github_transport=fake.transport(), **settings, github_token_file=str(token_file)
    ) as g:
        assert (await wait_enabled(g, DEMO_KEY))["enabled"]
        assert (
            await g.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())
        ).status_code == 201
        assert fake.pull(1).login == "octocat"
        p = (await g.client.get(f"/console/api/pending/{OWN}", headers=H())).json()["data"][0]
        assert p["number"] == 1 and p["gate_visible"] is False
    assert fake.violations == []


async def test_a_classic_token_is_refused(tmp_path, app_key, fake):
    token_file = tmp_path / "token"
    token_file.write_text("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB")
    settings = {**gitops_settings(tmp_path, app_key), "github_app_id": None, "github_app_key_file": None}
    async with InProcessGateway(
        tmp_path, github_transport=fake.transport(), **settings, github_token_file=str(token_file)
    ) as g:
        body = await wait_enabled(g, DEMO_KEY, want=False)
        assert body["enabled"] is False and "fine-grained" in body["reason"]
    assert fake.exchanges == []


async def test_the_pending_panel_survives_github_failing_on_details(gw, fake):
    assert (await gw.client.post(f"/console/api/actions/scale/{OWN}", json={"add": 1}, headers=H())).status_code == 201
    fake.refuse[("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")] = 502
    r = await gw.client.get(f"/console/api/pending/{OWN}", headers=H())
    assert r.status_code == 200
    p = r.json()["data"][0]
    assert p["number"] == 1 and p["review"] is None and "HTTP 502" in p["details_error"]
