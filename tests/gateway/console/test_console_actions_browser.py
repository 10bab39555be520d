"""The console's Deploy, Scale and Delete end to end in a real headless Chromium, against a gateway process whose
GitHub is the fake (tests/gateway/gitops/fake_github.py, over HTTP): an owner deploys a new service, scales it and
deletes it; each ends as a pull request whose services.yaml is what the CLI writes and whose review (CI's own
steps: .github/scripts/confirmations.py on the pull request's event, then `modelsvc review`) passes with the
confirmations its description carries. Also: a refused invalid form, the pending state, a second action refused.

Screenshots go to test-artifacts/; UPDATE_DOCS_SCREENSHOT=1 also writes docs/console-{deploy,scale,delete,pending}.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright import sync_api

from ..gitops.fake_github import FakeGitHub
from ..harness import DEMO_KEY, MODELSVC, ROOT, Gateway, example_catalog
from .test_console_browser import ARGS, ARTIFACTS, CHROMIUM

OWNER = "u-8105f7322477"
NEW = f"{OWNER}/docs-bot"
DOCS = ROOT / "docs"
expect = sync_api.expect


@pytest.fixture(scope="module")
def github(e2e, tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fake = FakeGitHub("acme", "models", {"services.yaml": example_catalog()}, public_key=public.decode())
    url, server = fake.serve()
    key_file = tmp_path_factory.mktemp("app") / "app.pem"
    key_file.write_bytes(pem)
    yield fake, url, key_file
    server.shutdown()
    assert fake.violations == []


@pytest.fixture(scope="module")
def gw(e2e, github, tmp_path_factory):
    fake, url, key_file = github
    args = ("--github-repo", "acme/models", "--github-app-id", str(fake.app_id), "--github-app-key-file",
            str(key_file), "--github-api-url", url, "--github-poll", "0")  # fmt: skip
    g = Gateway(tmp_path_factory.mktemp("actions-gw"), {}, catalog_text=example_catalog(), args=args).start()
    yield g
    g.stop()


@pytest.fixture
def page(e2e, gw):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
        pg = ctx.new_page()
        pg.set_default_timeout(15_000)
        problems: list[str] = []
        pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        yield pg
        assert problems == []
        browser.close()


def shot(page, name: str, locator=None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target = locator or page
    kw = {} if locator else {"full_page": True}
    target.screenshot(path=str(ARTIFACTS / name), **kw)
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(ARTIFACTS / name, DOCS / name)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODELSVC, *args], capture_output=True, text=True, timeout=60)


def cli_edit(tmp_path, base: str, *args: str) -> str:
    f = tmp_path / "cli.yaml"
    f.write_text(base)
    r = cli(*args, "--file", str(f))
    assert r.returncode == 0, r.stderr
    return f.read_text()


def ci_review(tmp_path, base: str, head: str, body: str) -> str:
    """The review as CI runs it: the confirmations from the pull request's event, then `modelsvc review`."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"body": body, "labels": []}}))
    conf = subprocess.run(
        [sys.executable, str(ROOT / ".github/scripts/confirmations.py"), str(event)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "head.yaml").write_text(head)
    r = cli("review", str(tmp_path / "base.yaml"), str(tmp_path / "head.yaml"), *conf.stdout.split())
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def deploy_live(fake: FakeGitHub, gw: Gateway, number: int) -> None:
    """Merge on GitHub, then what the deploy does for the gateway: the new catalog in its file."""
    fake.merge(number)
    gw.config.write_text(fake.file("main", "services.yaml"))


def sign_in(page, gw) -> None:
    page.goto(gw.url + "/console/")
    page.get_by_label("API key", exact=True).fill(DEMO_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-owner")).to_have_text(OWNER)


def test_deploy_scale_and_delete_as_reviewed_pull_requests(page, gw, github, tmp_path):
    fake, _, _ = github
    sign_in(page, gw)

    # -- Deploy: a refused invalid form first (over the pool's capacity), then the real one ------------------------
    page.get_by_role("button", name="Deploy a service").click()
    dialog = page.locator("#deploy-dialog")
    expect(dialog).to_be_visible()
    page.get_by_label("Service name").fill("Docs Bot")
    page.get_by_label("Base model").select_option("llama-3.1-70b-instruct")
    page.get_by_label("Instances", exact=True).fill("9")
    page.get_by_role("button", name="Open pull request").click()
    expect(page.locator("#deploy-instances-error")).to_have_text("Refused: see the problem above.")
    expect(page.locator("#deploy-problems li").first).to_contain_text("max_nodes")
    assert page.get_by_label("Instances", exact=True).get_attribute("aria-invalid") == "true"
    shot(page, "console-deploy-refused.png", dialog)
    assert fake.pulls == []

    page.get_by_label("Base model").select_option("llama-3.1-8b-instruct")
    page.get_by_label("Instances", exact=True).fill("1")
    page.get_by_label("GPU pool").select_option("h100")
    expect(page.locator("#deploy-access-default")).to_have_text(NEW)
    expect(page.locator("#deploy-problems li")).to_have_count(0)  # the changed form: the old refusal is gone
    shot(page, "console-deploy.png", dialog)
    base = fake.file("main", "services.yaml")
    page.get_by_role("button", name="Open pull request").click()
    expect(page.locator("#action-status")).to_contain_text("Pull request #1 opened")
    expect(dialog).to_be_hidden()
    expect(page.locator("#pending-items li")).to_have_count(1)
    expect(page.locator("#pending-items li").first).to_contain_text(NEW)

    p = fake.pull(1)
    head = fake.file(p.head, "services.yaml")
    new_id = re.findall(r"ms-[0-9a-f]{12}", head.replace(base, ""))[0]
    created = cli_edit(tmp_path, base, "create", "--name", "Docs Bot", "--owner", OWNER, "--model",
                       "llama-3.1-8b-instruct", "--instances", "1", "--pool", "h100")  # fmt: skip
    assert head == created.replace(re.findall(r"ms-[0-9a-f]{12}", created.replace(base, ""))[0], new_id)
    assert "passes" in ci_review(tmp_path, base, head, p.body)
    assert "k-local-demo" in p.body and DEMO_KEY not in p.body

    deploy_live(fake, gw, 1)
    expect(page.locator(f'tr[data-access-name="{NEW}"]')).to_have_count(1)  # live: in the list
    expect(page.locator("#pending-list")).to_be_hidden()

    # -- Scale: menu ┇ → Scale → how many to add → Confirm; the pending state; a second action refused ----------
    page.goto(gw.url + f"/console/services/{NEW}")
    expect(page.locator("#service-title")).to_have_text("Docs Bot")
    page.get_by_role("button", name="Actions").click()
    page.get_by_role("menuitem", name="Scale").click()
    scale = page.locator("#scale-dialog")
    expect(page.locator("#scale-now")).to_have_text("Now: 1 instance.")
    page.get_by_label("How many").fill("2")
    shot(page, "console-scale.png", scale)
    base = fake.file("main", "services.yaml")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#action-status")).to_contain_text("Pull request #2 opened")
    item = page.locator("#pending-service li[data-number='2']")
    expect(item).to_contain_text("in review")
    expect(item.locator('[data-field="review"]')).to_have_text("no review comment yet")
    expect(page.locator("#scale-open")).to_be_disabled()
    expect(page.locator("#changes-blocked")).to_contain_text("pull request #2")
    head = fake.file(fake.pull(2).head, "services.yaml")
    assert head == cli_edit(tmp_path, base, "scale", NEW, "--add", "2")
    ci_review(tmp_path, base, head, fake.pull(2).body)

    fake.review(2, "✅ passes", "success")
    expect(item.locator('[data-field="gate"]')).to_have_text("passed")
    expect(item.locator('[data-field="review"]')).to_have_text("Result: ✅ passes")
    shot(page, "console-pending.png", page.locator("#changes"))
    fake.merge(2)
    expect(item).to_contain_text("merged")
    gw.config.write_text(fake.file("main", "services.yaml"))
    expect(page.locator("#pending-service li")).to_have_text(re.compile("none"))
    expect(page.locator('.facts [data-field="instances_text"]')).to_contain_text("(3 declared)")

    # -- Delete: menu ┇ → Delete → type the service's name → Delete -------------------------------------------------
    page.get_by_role("button", name="Actions").click()
    page.get_by_role("menuitem", name="Delete").click()
    delete = page.locator("#delete-dialog")
    button = delete.get_by_role("button", name="Delete")
    page.get_by_label("Type the access name to confirm").fill(NEW[:-1])
    expect(button).to_be_disabled()
    page.get_by_label("Type the access name to confirm").fill(NEW)
    expect(button).to_be_enabled()
    shot(page, "console-delete.png", delete)
    base = fake.file("main", "services.yaml")
    button.click()
    expect(page.locator("#action-status")).to_contain_text("Pull request #3 opened")
    p = fake.pull(3)
    head = fake.file(p.head, "services.yaml")
    assert head == cli_edit(tmp_path, base, "delete", NEW, "--confirm", NEW)
    assert re.search(r"^Confirm-Delete: " + re.escape(NEW), p.body, re.M)
    ci_review(tmp_path, base, head, p.body)
    deploy_live(fake, gw, 3)
    expect(page.locator("#detail-error")).to_contain_text("does not exist")  # gone once live
