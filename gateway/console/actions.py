"""The console's Deploy, Scale and Delete: thin handlers over gateway/gitops (each action opens a reviewed pull
request), and the pending pull requests the list and the detail page show.

Same auth as the rest of the console's JSON API: the Bearer key; a key acts on its owner's services only (another
owner's service is a 404 exactly like an unknown one) and deploys for its own owner only (the body has no owner).
With the feature off (no --github-repo), /console/api/actions says so and the pages show the commands instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator
from sanic import Request

from modelsvc.catalog import Backend, Key

from ..api.common import json_response
from ..errors import ActionsUnavailable, InvalidRequest
from ..gitops import GitOps
from ..gitops.proposal import Who
from . import _no_store, _own_service, _rt, bp


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Count = Annotated[StrictInt, Field(ge=0, le=256)]


class DeployForm(_Form):
    name: StrictStr = Field(min_length=1, max_length=64)
    model: StrictStr = Field(min_length=1, max_length=128)
    instances: Count = 1
    pool: StrictStr | None = Field(None, max_length=63)
    access_name: StrictStr | None = Field(None, max_length=127)
    max_instances: Annotated[StrictInt, Field(ge=1, le=256)] | None = None


class ScaleForm(_Form):
    to: Count | None = None
    add: Annotated[StrictInt, Field(ge=-256, le=256)] | None = None
    max_instances: Annotated[StrictInt, Field(ge=1, le=256)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> ScaleForm:
        if self.to is not None and self.add is not None:
            raise ValueError("give either 'to' (a count) or 'add' (instances to add), not both")
        if self.to is None and self.add is None and self.max_instances is None:
            raise ValueError("give 'to' (a count), 'add' (instances to add) or 'max_instances'")
        return self


class DeleteForm(_Form):
    confirm: StrictStr = Field(max_length=127)


def _form(request: Request, cls: type[_Form]) -> dict[str, Any]:
    try:
        raw = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("the body must be a JSON object")
    try:
        return cls.model_validate(raw).model_dump()
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or None
        message = err["msg"] if err["type"] != "extra_forbidden" else f"unknown field '{where}'"
        raise InvalidRequest(message.removeprefix("Value error, "), param=where) from None


def _key(request: Request) -> Key:
    return _rt(request).keyring.authenticate(request.headers.get("authorization"))


def _gitops(request: Request) -> GitOps:
    g = request.app.ctx.gitops
    if g is None:
        raise ActionsUnavailable(
            "the console's actions are off on this gateway (no --github-repo): change services.yaml in a pull "
            "request with the commands the detail page shows"
        )
    return g


@bp.get("/console/api/actions")
async def api_actions(request: Request):
    """Whether the actions are on, and what the Deploy form offers (the catalog's models and pools)."""
    key = _key(request)
    g = request.app.ctx.gitops
    catalog = _rt(request).catalog
    body: dict[str, Any] = {"enabled": g is not None and g.repo is not None, "owner": key.owner}
    if g is None:
        body["reason"] = "off: this gateway has no --github-repo; the pages show the commands instead"
    elif g.repo is None:
        body["reason"] = f"unavailable: {g.problem}"
    else:
        body["repository"] = g.repo.full_name
        body["base"] = g.repo.base
    body["models"] = [
        {"name": n, "task": m.task.value, "gpus": m.gpus, "needs_pool": m.backend is Backend.triton}
        for n, m in catalog.models.items()
    ]
    body["pools"] = [{"name": n, "instance_type": p.instance_type} for n, p in catalog.pools.items()]
    return _no_store(json_response(body))


def _who(key: Key) -> Who:
    return Who(owner=key.owner, key_id=key.id)


@bp.post("/console/api/actions/deploy")
async def api_deploy(request: Request):
    key = _key(request)
    form = _form(request, DeployForm)
    g = _gitops(request)
    result = await g.act(_who(key), "deploy", _rt(request).catalog, None, form)
    return _no_store(json_response(result, status=201))


@bp.post("/console/api/actions/scale/<access_name:path>")
async def api_scale(request: Request, access_name: str):
    svc = _own_service(request, access_name)  # 404 before anything else for another owner's service
    form = _form(request, ScaleForm)
    result = await _gitops(request).act(_who(_key(request)), "scale", _rt(request).catalog, svc.access_name, form)
    return _no_store(json_response(result, status=201))


@bp.post("/console/api/actions/delete/<access_name:path>")
async def api_delete(request: Request, access_name: str):
    svc = _own_service(request, access_name)
    form = _form(request, DeleteForm)
    result = await _gitops(request).act(_who(_key(request)), "delete", _rt(request).catalog, svc.access_name, form)
    return _no_store(json_response(result, status=201))


def _public(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("number", "url", "title", "action", "access_name", "service_id", "state", "stage", "stage_text")
    return {k: e.get(k) for k in (*keys, "created_at", "merged_at", "closed_at", "blocking")}


@bp.get("/console/api/pending")
async def api_pending(request: Request):
    """The key owner's pending pull requests (the list page: new services not deployed yet among them)."""
    key = _key(request)
    g = request.app.ctx.gitops
    if g is None or g.repo is None:
        return _no_store(json_response({"enabled": False, "data": []}))
    items = [e for e in await g.pending(_rt(request).catalog) if e["owner"] == key.owner]
    return _no_store(json_response({"enabled": True, "data": [_public(e) for e in items]}))


@bp.get("/console/api/pending/<access_name:path>")
async def api_pending_service(request: Request, access_name: str):
    """One service's pending pull requests with their review result (the detail page's panel)."""
    svc = _own_service(request, access_name)
    g = request.app.ctx.gitops
    if g is None or g.repo is None:
        return _no_store(json_response({"enabled": False, "data": []}))
    out = []
    for e in await g.pending(_rt(request).catalog):
        if e["owner"] == svc.owner and e["service_id"] == svc.id:
            item = _public(e)
            if e["state"] == "open":
                item.update({k: v for k, v in (await g.details(e)).items() if k != "head_sha"})
            out.append(item)
    return _no_store(json_response({"enabled": True, "data": out}))
