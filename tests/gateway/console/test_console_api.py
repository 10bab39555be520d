"""The console's pages and JSON API over a real gateway: escaping, security headers, owner isolation."""

from __future__ import annotations

import time

import httpx
import pytest
from jinja2 import Environment
from markupsafe import escape

from gateway import console
from gateway.console.usage import month_start

from ..harness import DEMO_KEY, OTHER_KEY
from .conftest import CHAT, EVIL, FOREIGN, HOSTILE, PAINTER, VISION

PAGES = [
    "/console/",
    f"/console/services/{CHAT}",
    f"/console/services/{EVIL}",
    f"/console/services/{FOREIGN}",
    f"/console/usage/{CHAT}",
    f"/console/usage/{FOREIGN}",
]


def get(gw, path, key=DEMO_KEY, **kw):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(gw.url + path, headers=headers, timeout=10, **kw)


def assert_security_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "path",
    PAGES
    + [
        "/console/static/console.js",
        "/console/static/console-actions.js",
        "/console/static/console.css",
        "/console/api/services",
        f"/console/api/services/{CHAT}",
        f"/console/usage/{CHAT}",
        f"/console/api/usage/{CHAT}",
        f"/console/api/usage-chart/daily-tokens/{CHAT}",
    ],
)
def test_security_headers_on_every_console_response(console_gw, path):
    r = get(console_gw, path)
    assert r.status_code == 200
    assert_security_headers(r)


@pytest.mark.parametrize(
    "path,key",
    [
        ("/console/api/services", None),
        ("/console/api/services", "sk-wrong-key-123"),
        (f"/console/api/services/{FOREIGN}", DEMO_KEY),
        (f"/console/api/usage/{FOREIGN}", DEMO_KEY),
        (f"/console/api/usage-chart/hourly-tokens/{FOREIGN}", DEMO_KEY),
        (f"/console/api/usage-chart/nope/{CHAT}", DEMO_KEY),
        (f"/console/api/usage/{CHAT}", None),
        ("/console/static/nope.js", None),
        ("/console/api/nope", DEMO_KEY),
        ("/console/services", None),
    ],
)
def test_error_responses_are_openai_shaped_and_secured(console_gw, path, key):
    r = get(console_gw, path, key)
    assert r.status_code in (401, 404)
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert_security_headers(r)


def test_console_redirects_to_the_list(console_gw):
    r = get(console_gw, "/console", follow_redirects=False)
    assert r.status_code in (301, 302, 307, 308) and r.headers["location"] == "/console/"
    assert get(console_gw, "/console", follow_redirects=True).status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_shells_without_service_data(console_gw, path):
    """Served without a key; nothing from services.yaml is in them (the data comes from the JSON API)."""
    r = get(console_gw, path, key=None)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    text = r.text
    for secret in (
        "Support Bot",
        "Secret Project",
        "ms-a2547eda8901",
        "ms-f058dd7a36b5",
        "alert(1)",
        "alert(3)",
        "models.test.example",
    ):
        assert secret not in text
    assert "<script>" not in text  # only <script src=...>: no inline script (the CSP would block it anyway)
    assert text.count("<script") == 2 and 'src="/console/static/console.js?v=' in text
    assert 'src="/console/static/console-actions.js?v=' in text
    assert "http://" not in text and "https://" not in text  # no assets from the internet


def test_hostile_access_name_in_the_url_is_escaped(console_gw):
    r = get(console_gw, "/console/services/x/%3Cscript%3Ealert(1)%3C%2Fscript%3E%22onmouseover=%22x", key=None)
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;onmouseover=&#34;x" in r.text


def test_templates_autoescape_a_hostile_display_name():
    """Should a template ever render catalog data, it is escaped: autoescape is on for every console template."""
    env: Environment = console._env
    assert env.autoescape is True
    out = console.render_page("detail.html", page="detail", access_name=HOSTILE).body.decode()
    assert HOSTILE not in out
    assert str(escape(HOSTILE)) in out and "&#34;&#39; onmouseover=alert(1) x=&amp;lt;img" in out


def test_list_api_returns_the_owners_services_only(console_gw):
    r = get(console_gw, "/console/api/services")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    data = r.json()
    assert data["owner"] == "u-8105f7322477"
    names = [s["access_name"] for s in data["data"]]
    assert names == [CHAT, EVIL, PAINTER, VISION]
    chat = data["data"][0]
    assert chat == {
        "name": "Support Bot",
        "access_name": CHAT,
        "id": "ms-a2547eda8901",
        "model": "llama-3.1-8b-instruct",
        "task": "chat",
        "instances": 2,
        "instances_ready": 2,
        "instances_total": 2,
        "status": "running",
        "instances_min": 2,
        "instances_max": 4,
        "autoscaled": True,
        "scale_metric": "queue_ratio",
        "scale_target": 0.5,
        "scale_down_delay": "10m",
    }
    fixed = data["data"][2]
    assert (fixed["instances_min"], fixed["instances_max"], fixed["autoscaled"]) == (1, 1, False)
    other = get(console_gw, "/console/api/services", key=OTHER_KEY).json()
    assert [s["access_name"] for s in other["data"]] == [FOREIGN]


def test_hostile_display_name_is_returned_as_data(console_gw):
    listed = {s["access_name"]: s for s in get(console_gw, "/console/api/services").json()["data"]}
    assert listed[EVIL]["name"] == HOSTILE
    detail = get(console_gw, f"/console/api/services/{EVIL}")
    assert detail.headers["content-type"] == "application/json"
    assert detail.json()["name"] == HOSTILE
    assert detail.json()["description"] == "</p><script>alert(3)</script>"


def test_detail_api(console_gw):
    d = get(console_gw, f"/console/api/services/{CHAT}").json()
    assert d["access_name"] == CHAT and d["id"] == "ms-a2547eda8901" and d["pool"] == "h100"
    assert d["status"] == "running" and (d["instances_ready"], d["instances_total"]) == (2, 2)
    assert d["key_command"] == "modelsvc keys new --owner u-8105f7322477"
    assert [e["language"] for e in d["examples"]] == ["curl", "python", "node", "python-agents"]
    for e in d["examples"]:
        assert "https://models.test.example/v1" in e["code"] and CHAT in e["code"]
    assert '"object": "chat.completion"' in d["example_response"]
    img = get(console_gw, f"/console/api/services/{PAINTER}").json()
    assert img["task"] == "image-generation" and "/images/generations" in img["examples"][0]["code"]
    assert "b64_json" in img["example_response"]


def test_other_owners_service_is_indistinguishable_from_an_unknown_one(console_gw):
    foreign = get(console_gw, f"/console/api/services/{FOREIGN}")
    unknown = get(console_gw, "/console/api/services/u-3f9a2c7e51d0/no-such-thing")
    assert foreign.status_code == unknown.status_code == 404
    fe, ue = foreign.json()["error"], unknown.json()["error"]
    assert fe["code"] == ue["code"] and fe["type"] == ue["type"]
    assert fe["message"].replace(FOREIGN, "X") == ue["message"].replace("u-3f9a2c7e51d0/no-such-thing", "X")
    assert get(console_gw, f"/console/api/services/{FOREIGN}", key=OTHER_KEY).status_code == 200


def test_api_requires_a_valid_key(console_gw):
    for key in (None, "sk-not-a-key-at-all-000"):
        r = get(console_gw, f"/console/api/services/{CHAT}", key=key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_static_assets_are_versioned_and_cacheable(console_gw):
    page = get(console_gw, "/console/", key=None).text
    hrefs = [part.split('"', 1)[0] for part in page.split('src="')[1:]]
    assert len(hrefs) == 2
    for href in hrefs:
        r = get(console_gw, href, key=None)
        assert r.headers["content-type"].startswith("text/javascript")
        assert "immutable" in r.headers["cache-control"]
        assert "innerHTML" not in r.text.replace("never innerHTML", "")  # data goes in with textContent only


def test_usage_api_and_charts_count_the_services_records(console_gw):
    body = {"model": CHAT, "max_tokens": 5, "messages": [{"role": "user", "content": "count me"}]}
    for _ in range(3):
        assert console_gw.post("/v1/chat/completions", body).status_code == 200
    now = time.time()
    u = get(console_gw, f"/console/api/usage/{CHAT}").json()
    records = [r for r in console_gw.usage() if r["service_id"] == "ms-a2547eda8901"]
    assert u["service_id"] == "ms-a2547eda8901" and len(u["hourly"]) == 24 and len(u["daily"]) == 30
    for series, width in (("hourly", 3600), ("daily", 86400)):
        first = u[series][0]["start"]
        assert first % width == 0 and u[series][-1]["start"] in (
            int(now) // width * width,
            int(time.time()) // width * width,
        )
        inside = [r for r in records if r["ts"] >= first]
        assert sum(p["requests"] for p in u[series]) == len(inside)
        assert sum(p["tokens"] for p in u[series]) == sum(r["prompt_tokens"] + r["completion_tokens"] for r in inside)
    month = [r for r in records if r["ts"] >= month_start(now)]
    assert u["invoice"]["requests"] == len(month) and u["invoice"]["images"] == 0
    assert u["invoice"]["total_tokens"] == sum(r["prompt_tokens"] + r["completion_tokens"] for r in month)
    this_hour = sum(1 for r in records if r["ts"] >= u["hourly"][-1]["start"])
    svg = get(console_gw, f"/console/api/usage-chart/hourly-requests/{CHAT}")
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.headers["cache-control"] == "no-store"
    assert svg.text.startswith("<svg") and "<script" not in svg.text and "http://www.w3.org/2000/svg" in svg.text
    assert svg.text.count("<rect x=") == 24 and f": {this_hour}</title></rect>" in svg.text
    # another owner's key cannot read this service's usage
    assert get(console_gw, f"/console/api/usage/{CHAT}", key=OTHER_KEY).status_code == 404


def test_detail_api_shows_scaling_events_and_gitops_actions(console_gw):
    d = get(console_gw, f"/console/api/services/{CHAT}").json()
    assert [(e["from"], e["to"], e["added"], e["removed"]) for e in d["scaling_events"]] == [(0, 2, 2, 0)]
    a = d["actions"]
    assert a["confirm_name"] == CHAT
    assert a["scale"]["command"] == f"modelsvc scale {CHAT} --to 3"
    assert a["delete"]["command"] == f"modelsvc delete {CHAT} --confirm {CHAT}"
    assert any(f"Confirm-Delete: {CHAT}" in step for step in a["delete"]["steps"])


def test_console_commands_are_the_real_cli(console_gw, tmp_path):
    """The commands the console shows run as they are against the catalog file and do what they say."""
    import shlex

    from modelsvc.catalog import load
    from modelsvc.cli import main

    from .conftest import CATALOG

    path = tmp_path / "services.yaml"
    path.write_text(CATALOG)
    a = get(console_gw, f"/console/api/services/{CHAT}").json()["actions"]
    assert main(shlex.split(a["scale"]["command"])[1:] + ["--file", str(path)]) == 0
    assert load(str(path)).service(CHAT).instances == 3
    assert main(shlex.split(a["delete"]["command"])[1:] + ["--file", str(path)]) == 0
    assert load(str(path)).service(CHAT) is None
