"""End to end in a real headless Chromium (Debian's `chromium`, driven by Playwright; no browser is downloaded).

Sign in, see the owner's services only, open a detail page, copy an example, stream a trial answer with usage,
generate an image, attach an image to a vision model, and watch a killed instance turn the status to Degraded.
Screenshots go to test-artifacts/; with UPDATE_DOCS_SCREENSHOT=1 the detail page also goes to docs/console-detail.png.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright import sync_api

from gateway.console.usage import month_start

from ..harness import DEMO_KEY, ROOT
from .conftest import CHAT, EVIL, FOREIGN, HOSTILE, PAINTER, VISION

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
# 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def browser(e2e):
    # checked here, not at import: the fast set collects this module on machines without Chromium
    assert shutil.which(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install -y chromium (./dev test does)"
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, console_gw):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_gw.url)
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    pg.problems = []
    pg.on("dialog", lambda d: (pg.problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    # (network refusals the test provokes, like a wrong key's 401, are logged as "Failed to load resource")
    pg.on(
        "console",
        lambda m: (
            m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and pg.problems.append(f"console: {m.text}")
        ),
    )
    yield pg
    ctx.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, gw):
    page.goto(gw.url + "/console")  # redirects to /console/
    page.get_by_label("API key", exact=True).fill("sk-this-is-not-a-valid-key")
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#sign-in-error")).to_contain_text("not accepted")
    page.get_by_label("API key", exact=True).fill(DEMO_KEY)
    page.get_by_role("button", name="Sign in").click()
    sync_api.expect(page.locator("#account-owner")).to_have_text("u-8105f7322477")


def test_console_end_to_end(page, console_gw, console_engines):
    expect = sync_api.expect
    sign_in(page, console_gw)
    assert "sk-" not in page.url and DEMO_KEY not in page.content()  # the key is in sessionStorage only
    assert page.evaluate("sessionStorage.getItem('modelsvc.console.key')") == DEMO_KEY
    assert page.evaluate("document.cookie") == ""

    # the list: this owner's services only, live status; the hostile name is shown as text
    rows = page.locator("#services-body tr")
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-access-name") for i in range(4)] == [CHAT, EVIL, PAINTER, VISION]
    assert FOREIGN not in page.content() and "Secret Project" not in page.content()
    expect(page.get_by_role("link", name=HOSTILE)).to_have_text(HOSTILE)
    chat_row = page.locator(f'tr[data-access-name="{CHAT}"]')
    expect(chat_row.locator('[data-cell="status"]')).to_have_text("Running")
    expect(chat_row.locator('[data-cell="instances"]')).to_have_text("2 of 2 ready")
    shot(page, "console-list.png")

    # the detail page of the hostile one: still text, no dialog, no script ran
    page.get_by_role("link", name=HOSTILE).click()
    expect(page.locator("#service-title")).to_have_text(HOSTILE)
    expect(page.locator("#service-description")).to_have_text("</p><script>alert(3)</script>")

    # the detail page
    page.goto(console_gw.url + f"/console/services/{CHAT}")
    expect(page.locator("#service-title")).to_have_text("Support Bot")
    facts = {k: page.locator(f'.facts [data-field="{k}"]') for k in ("access_name", "id", "status_text", "pool_text")}
    expect(facts["access_name"]).to_have_text(CHAT)
    expect(facts["id"]).to_have_text("ms-a2547eda8901")
    expect(facts["status_text"]).to_have_text("Running")
    expect(facts["pool_text"]).to_have_text("h100 (p5.48xlarge)")
    expect(page.get_by_text("modelsvc keys new --owner u-8105f7322477")).to_be_visible()

    # instances and scaling: what the gateway sees, the declared range, the discovery events
    scaling = {
        k: page.locator(f'.facts [data-field="{k}"]')
        for k in ("instances_ready", "instances_total", "instances_range", "autoscale_text")
    }
    expect(scaling["instances_ready"]).to_have_text("2")
    expect(scaling["instances_total"]).to_have_text("2")
    expect(scaling["instances_range"]).to_have_text("2–4")
    expect(scaling["autoscale_text"]).to_have_text("on queue_ratio, target 0.5 per instance, scale down after 10m")
    expect(page.locator("#scaling-events li").first).to_contain_text("0 → 2 instances (+2)")
    # scale and delete, the GitOps way: exact commands, the access name to type, the pull-request steps
    expect(page.locator("#scale-command")).to_have_text(f"modelsvc scale {CHAT} --to 3")
    expect(page.locator("#scale-note")).to_contain_text("up to autoscale.max_instances (4)")
    expect(page.locator("#delete-command")).to_have_text(f"modelsvc delete {CHAT} --confirm {CHAT}")
    expect(page.locator("#confirm-name")).to_have_text(CHAT)
    expect(page.locator("#delete-steps li")).to_have_count(5)
    expect(page.locator("#delete-steps")).to_contain_text(f"Confirm-Delete: {CHAT}")
    expect(page.locator("#scale-steps li").nth(1)).to_have_text(f"modelsvc scale {CHAT} --to 3")

    # examples: one per language, copy puts the exact code on the clipboard
    api = httpx.get(console_gw.url + f"/console/api/services/{CHAT}", headers=console_gw.headers()).json()
    codes = {e["language"]: e["code"] for e in api["examples"]}
    page.get_by_role("tab", name="Python (openai >= 1.0)").click()
    python_panel = page.locator('[role="tabpanel"][data-language="python"]')
    expect(python_panel).to_be_visible()
    expect(python_panel.locator("code")).to_have_text(codes["python"])
    python_panel.get_by_role("button", name="Copy").click()
    expect(python_panel.locator("button.copy")).to_have_attribute("data-state", "copied")
    assert page.evaluate("navigator.clipboard.readText()") == codes["python"]
    page.get_by_role("tab", name="curl").click()
    page.locator('[role="tabpanel"][data-language="curl"] button.copy').click()
    assert page.evaluate("navigator.clipboard.readText()") == codes["curl"]
    assert "https://models.test.example/v1/chat/completions" in codes["curl"]
    expect(page.locator("#example-response")).to_contain_text('"object": "chat.completion"')

    # the trial: streamed token by token, usage shown after the answer
    page.evaluate("""() => {
        window.__mutations = 0;
        new MutationObserver(() => { window.__mutations++; })
            .observe(document.getElementById('chat-log'), {childList: true, subtree: true, characterData: true});
    }""")
    page.get_by_label("Temperature", exact=True).fill("0.2")
    page.get_by_label("Max tokens", exact=True).fill("24")
    page.get_by_label("Message", exact=True).fill("Hello! What can you do?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-usage")).to_contain_text("Usage:", timeout=15_000)
    usage = page.locator("#chat-usage").inner_text()
    assert "completion" in usage and "tokens" in usage
    answer = page.locator(".msg.assistant .text").last.inner_text()
    assert answer.strip()
    assert page.evaluate("window.__mutations") > 5  # many small appends, not one final render
    assert "completion = " in usage
    shot(page, "console-detail.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / "console-detail.png"), full_page=True)

    # an instance dies: the page turns Degraded by itself (it polls the JSON API; the gateway probes instances)
    console_engines["chat2"].kill()
    expect(page.locator("#service-status-badge")).to_have_text("Degraded", timeout=15_000)
    expect(facts["status_text"]).to_have_text("Degraded")
    expect(scaling["instances_ready"]).to_have_text("1")
    expect(scaling["instances_total"]).to_have_text("2")
    shot(page, "console-scaling.png")
    page.goto(console_gw.url + "/console/")
    expect(chat_row.locator('[data-cell="status"]')).to_have_text("Degraded")
    expect(chat_row.locator('[data-cell="instances"]')).to_have_text("1 of 2 ready")
    shot(page, "console-list-degraded.png")

    # usage: from the detail page to the service's usage page; the totals match the stored records and the
    # server-rendered SVG charts load (through blob: URLs, the key never in a URL)
    page.goto(console_gw.url + f"/console/services/{CHAT}")
    page.get_by_role("link", name="Usage and invoice totals").click()
    expect(page.locator("#usage-title")).to_have_text("Usage of Support Bot")
    expect(page.locator("#usage")).to_have_attribute("data-loaded", "true", timeout=15_000)
    month = month_start(time.time())
    records = [r for r in console_gw.usage() if r["service_id"] == "ms-a2547eda8901" and r["ts"] >= month]
    assert any(not r["request_id"].startswith("seed-") for r in records)  # the trial's own request is billed
    expect(page.locator('#invoice [data-field="requests"]')).to_have_text(f"{len(records):,}")
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in records)
    expect(page.locator('#invoice [data-field="total_tokens"]')).to_have_text(f"{tokens:,}")
    charts = page.locator("img[data-chart]")
    expect(charts).to_have_count(4)
    for i in range(4):
        assert charts.nth(i).get_attribute("src").startswith("blob:")
        assert page.evaluate("(i) => document.querySelectorAll('img[data-chart]')[i].naturalWidth", i) == 720
    shot(page, "console-usage.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        page.screenshot(path=str(ROOT / "docs" / "console-usage.png"), full_page=True)
    assert page.problems == []


def test_trial_with_a_json_schema_and_a_tool_round_trip(page, console_gw):
    expect = sync_api.expect
    sign_in(page, console_gw)
    page.goto(console_gw.url + f"/console/services/{CHAT}")
    expect(page.locator("#service-title")).to_have_text("Support Bot")
    api = httpx.get(console_gw.url + f"/console/api/services/{CHAT}", headers=console_gw.headers()).json()
    langs = [e["language"] for e in api["examples"]]
    assert langs == ["curl", "python", "node", "python-agents"]  # tool calls and structured outputs inside
    for e in api["examples"][:3]:
        assert "get_weather" in e["code"] and ("json_schema" in e["code"] or "parse(" in e["code"])
    assert "OpenAIChatCompletionsModel" in api["examples"][3]["code"]

    page.locator("#chat-structured summary").click()
    schema = json.dumps(
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
            "required": ["city", "temp"],
        }
    )
    page.get_by_label("JSON Schema (response_format)").fill(schema)
    page.get_by_label("Message", exact=True).fill("Weather in Paris as JSON")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-usage")).to_contain_text("Usage:", timeout=15_000)
    answer = json.loads(page.locator(".msg.assistant .text").last.inner_text())
    assert isinstance(answer["city"], str) and isinstance(answer["temp"], int)

    page.get_by_label("JSON Schema (response_format)").fill("")
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = json.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": parameters}}])
    page.get_by_label("Tools (a JSON array)").fill(tools)
    page.get_by_label("Message", exact=True).fill("What is the weather in Paris? Use get_weather.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-usage")).to_contain_text("finish: tool_calls", timeout=15_000)
    call = page.locator(".tool-call").last.inner_text()
    assert call.startswith("Tool call get_weather(") and json.loads(call[len("Tool call get_weather(") : -1])["city"]
    page.get_by_label("Message", exact=True).fill('{"temperature": 21}')  # the tool's result
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".msg.tool")).to_have_count(1)
    expect(page.locator("#chat-usage")).to_contain_text("finish: stop", timeout=15_000)
    assert page.locator(".msg.assistant .text").last.inner_text().strip()
    page.get_by_label("Tools (a JSON array)").fill("[not json")
    page.get_by_label("Message", exact=True).fill("x")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-usage")).to_contain_text("The tools are not JSON")
    assert page.problems == []


def test_image_and_vision_trials(page, console_gw):
    expect = sync_api.expect
    sign_in(page, console_gw)
    page.goto(console_gw.url + f"/console/services/{PAINTER}")
    expect(page.locator("#image-trial")).to_be_visible()
    expect(page.locator("#chat-trial")).to_be_hidden()
    page.get_by_label("Prompt", exact=True).fill("a red bicycle")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#image-status")).to_contain_text("Generated", timeout=15_000)
    img = page.locator("#image-output")
    expect(img).to_have_attribute("alt", "Generated image for: a red bicycle")
    assert page.evaluate("document.getElementById('image-output').naturalWidth") > 0
    shot(page, "console-image.png")

    page.goto(console_gw.url + f"/console/services/{VISION}")
    expect(page.locator("#image-attach")).to_be_visible()
    page.get_by_label("Attach an image").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}]
    )
    page.get_by_label("Message", exact=True).fill("What is in this image?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-usage")).to_contain_text("Usage:", timeout=15_000)
    expect(page.locator(".msg.user img.thumb")).to_have_count(1)
    assert page.locator(".msg.assistant .text").last.inner_text().strip()
    assert page.problems == []


def test_signed_out_and_foreign_pages_show_no_data(page, console_gw):
    expect = sync_api.expect
    page.goto(console_gw.url + f"/console/services/{FOREIGN}")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()
    page.get_by_label("API key", exact=True).fill(DEMO_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#detail-error")).to_contain_text("does not exist or you do not have access")
    expect(page.locator("#detail")).to_be_hidden()
    assert "Secret Project" not in page.content()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('modelsvc.console.key')") is None
