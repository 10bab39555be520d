"""The web console: the signed-in owner's model services, their details, API examples and an online trial.

Auth design: the console has no session of its own. The API key is the sign-in; the browser keeps it in
sessionStorage (gone when the tab closes, never in a cookie, so no CSRF surface) and sends it as the Bearer header.

* HTML pages (`/console/`, `/console/services/<access name>`) are static shells served WITHOUT auth and carry no
  service data: nothing from services.yaml is rendered into them (only the access name taken from the URL, escaped).
* The data comes from a small JSON API under the same auth rules as /v1: `/console/api/services` lists the key
  owner's services only; `/console/api/services/<access name>` answers 404 for another owner's service exactly as
  for an unknown one. Errors use the OpenAI error shape (the app maps the exceptions).
* The one JS file renders the data with textContent only; the CSP forbids inline script.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from jinja2 import Environment, FileSystemLoader
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import redirect

from modelsvc.catalog import Catalog, Service, Task
from modelsvc.catalog.examples import KEY_ENV, examples

from ..api.common import json_response
from ..api.usage import usage_rows
from ..errors import NotFound
from . import usage as usage_view

bp = Blueprint("console")

_HERE = Path(__file__).resolve().parent
_env = Environment(
    loader=FileSystemLoader(str(_HERE / "templates")), autoescape=True, trim_blocks=True, lstrip_blocks=True
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
POLL_MS = 3000  # how often the pages refresh status from the JSON API


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    version: str


def _load_assets() -> dict[str, _Asset]:
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    out = {}
    for path in sorted((_HERE / "static").iterdir()):
        if path.suffix in types:
            body = path.read_bytes()
            out[path.name] = _Asset(body, types[path.suffix], hashlib.sha256(body).hexdigest()[:12])
    return out


_ASSETS = _load_assets()


def _asset_url(name: str) -> str:
    return f"/console/static/{name}?v={_ASSETS[name].version}"


def _secure(resp: HTTPResponse) -> HTTPResponse:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


@bp.on_response
async def _security_headers(request: Request, response: HTTPResponse):
    """Every console response (pages, assets, JSON, errors raised in console handlers) carries the headers."""
    _secure(response)


def render_page(template: str, **ctx) -> HTTPResponse:
    html = _env.get_template(template).render(
        css=_asset_url("console.css"),
        js=_asset_url("console.js"),
        actions_js=_asset_url("console-actions.js"),
        poll_ms=POLL_MS,
        **ctx,
    )
    return _secure(HTTPResponse(html, content_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"}))


# -- pages (shells, no auth, no service data) ---------------------------------------------------------------------
@bp.get("/console", strict_slashes=True)
async def console_root(request: Request):
    return _secure(redirect("/console/", status=308))


@bp.get("/console/", strict_slashes=True)
async def list_page(request: Request):
    return render_page("list.html", page="list")


@bp.get("/console/services/<access_name:path>")
async def detail_page(request: Request, access_name: str):
    return render_page("detail.html", page="detail", access_name=unquote(access_name))


@bp.get("/console/usage/<access_name:path>")
async def usage_page(request: Request, access_name: str):
    return render_page("usage.html", page="usage", access_name=unquote(access_name))


@bp.get("/console/static/<name>")
async def static(request: Request, name: str):
    asset = _ASSETS.get(name)
    if asset is None:
        raise NotFound("unknown console asset")
    immutable = request.args.get("v") == asset.version
    return _secure(
        HTTPResponse(
            asset.body,
            content_type=asset.content_type,
            headers={
                "cache-control": "public, max-age=31536000, immutable" if immutable else "no-cache",
                "etag": f'"{asset.version}"',
            },
        )
    )


@bp.route("/console/<rest:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def console_unknown(request: Request, rest: str):
    """Anything else under /console: the usual 404 body, with the console's security headers."""
    raise NotFound(f"unknown endpoint {request.method} /console/{rest}")


# -- JSON API (Bearer auth, the key owner's services only) -------------------------------------------------------
def _rt(request: Request):
    return request.app.ctx.runtime


def _owner(request: Request) -> str:
    return _rt(request).keyring.authenticate(request.headers.get("authorization")).owner


def _summary(rt, svc: Service) -> dict:
    model = rt.catalog.model_of(svc)
    pool = rt.pools.get(svc.access_name)
    ready, total = pool.counts() if pool else (0, 0)
    return {
        "name": svc.name,
        "access_name": svc.access_name,
        "id": svc.id,
        "model": svc.model,
        "task": model.task.value,
        "instances": svc.instances,
        "instances_ready": ready,
        "instances_total": total,
        "status": rt.status(svc) if pool else "unavailable",
        **_scaling(svc),
    }


def _scaling(svc: Service) -> dict:
    """The declared range: instances is the minimum, autoscale.max_instances the maximum (fixed without autoscale)."""
    auto = svc.autoscale
    return {
        "instances_min": svc.instances,
        "instances_max": svc.peak_instances,
        "autoscaled": auto is not None,
        "scale_metric": auto.metric.value if auto else None,
        "scale_target": auto.target if auto else None,
        "scale_down_delay": auto.scale_down_delay if auto else None,
    }


def example_response(catalog: Catalog, svc: Service) -> dict:
    """The OpenAI response shape for this service's task (what the examples print from)."""
    task = catalog.model_of(svc).task
    if task is Task.image_generation:
        return {"created": 1735689600, "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAA..."}]}
    text = (
        "The image shows a printed receipt."
        if task is Task.vision_chat
        else "Hello! I can answer questions, summarise and draft text."
    )
    return {
        "id": "chatcmpl-9f2c1e7a",
        "object": "chat.completion",
        "created": 1735689600,
        "model": svc.access_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26},
        "system_fingerprint": None,
    }


def _no_store(resp: HTTPResponse) -> HTTPResponse:
    resp.headers["cache-control"] = "no-store"
    return _secure(resp)


@bp.get("/console/api/services")
async def api_services(request: Request):
    owner = _owner(request)
    rt = _rt(request)
    return _no_store(
        json_response(
            {"owner": owner, "poll_ms": POLL_MS, "data": [_summary(rt, s) for s in rt.catalog.services_of(owner)]}
        )
    )


def _own_service(request: Request, access_name: str) -> Service:
    owner = _owner(request)
    access_name = unquote(access_name)
    svc = _rt(request).catalog.service(access_name)
    if svc is None or svc.owner != owner:  # another owner's service looks exactly like an unknown one
        raise NotFound(f"the service '{access_name}' does not exist or you do not have access to it", code="not_found")
    return svc


@bp.get("/console/api/services/<access_name:path>")
async def api_service(request: Request, access_name: str):
    svc = _own_service(request, access_name)
    rt = _rt(request)
    catalog = rt.catalog
    model = catalog.model_of(svc)
    pool = catalog.pools.get(svc.pool) if svc.pool else None
    return _no_store(
        json_response(
            {
                **_summary(rt, svc),
                "owner": svc.owner,
                "description": svc.description,
                "pool": svc.pool,
                "pool_instance_type": pool.instance_type if pool else None,
                "backend": model.backend.value,
                "max_output_tokens": model.max_output_tokens,
                "public_url": str(catalog.gateway.public_url),
                "key_env": KEY_ENV,
                "key_command": f"modelsvc keys new --owner {svc.owner}",
                "examples": [
                    {"language": e.language, "title": e.title, "code": e.code} for e in examples(catalog, svc)
                ],
                "example_response": json.dumps(example_response(catalog, svc), indent=2),
                "scaling_events": _events(rt, svc),
                "actions": gitops_actions(svc),
                "poll_ms": POLL_MS,
            }
        )
    )


# -- usage page (same auth; the charts are SVG documents the page shows as images) --------------------------------
async def _usage_summary(request: Request, access_name: str) -> tuple[Service, dict]:
    svc = _own_service(request, access_name)
    now = time.time()
    start, end = usage_view.window(now)
    key = _rt(request).keyring.authenticate(request.headers.get("authorization"))
    rows = await usage_rows(request, key, svc.owner, start, end)
    return svc, usage_view.summarize(svc.id, rows, now)


@bp.get("/console/api/usage/<access_name:path>")
async def api_usage(request: Request, access_name: str):
    svc, summary = await _usage_summary(request, access_name)
    return _no_store(
        json_response({"name": svc.name, "access_name": svc.access_name, **summary, "charts": list(usage_view.CHARTS)})
    )


@bp.get("/console/api/usage-chart/<chart>/<access_name:path>")
async def api_usage_chart(request: Request, chart: str, access_name: str):
    if chart not in usage_view.CHARTS:
        raise NotFound("unknown chart")
    _, summary = await _usage_summary(request, access_name)
    return _no_store(HTTPResponse(usage_view.chart(summary, chart), content_type="image/svg+xml; charset=utf-8"))


def _events(rt, svc: Service) -> list[dict]:
    pool = rt.pools.get(svc.access_name)
    return [dict(e) for e in reversed(pool.events)] if pool else []  # newest first


def gitops_actions(svc: Service) -> dict:
    """Scale and delete, the GitOps way: the console changes nothing itself. It shows the exact command that edits
    services.yaml and the pull-request steps; the merge deploys it. Access names are validated to
    [a-z0-9-/], so they are safe in a shell command as they are."""
    name = svc.access_name
    branch = name.replace("/", "-")
    scale_to = svc.instances + 1
    return {
        "confirm_name": name,
        "scale": {
            "command": f"modelsvc scale {name} --to {scale_to}",
            "note": (
                "changes the minimum; the autoscaler adds instances up to autoscale.max_instances "
                f"({svc.peak_instances}) on load"
                if svc.autoscale
                else "changes the fixed instance count; --add N (or --add -N) works too"
            ),
            "steps": [
                f"git switch -c scale-{branch}",
                f"modelsvc scale {name} --to {scale_to}",
                f'git commit -am "Scale {name} to {scale_to} instances"',
                "git push and open a pull request: its review comment shows the GPU change per pool",
                "merge after approval: the deploy applies it",
            ],
        },
        "delete": {
            "command": f"modelsvc delete {name} --confirm {name}",
            "steps": [
                f"git switch -c delete-{branch}",
                f"modelsvc delete {name} --confirm {name}",
                f'git commit -am "Delete {name}"',
                f"git push and open a pull request; add the line `Confirm-Delete: {name}@<digest>` its review "
                "comment names to the description (or the label `confirm-delete:<digest>`): without it the review "
                "blocks the merge",
                "merge after approval: the deploy removes the instances; the service id is never reused",
            ],
        },
    }


from . import actions  # noqa: E402,F401  (the actions' routes, on this blueprint)
