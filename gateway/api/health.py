"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from sanic import Blueprint, HTTPResponse, Request

from ..metrics import exposition
from ..openapi import document
from .common import json_response

bp = Blueprint("health")


@bp.get("/healthz")
async def healthz(request: Request):
    return json_response({"status": "ok"})


@bp.get("/readyz")
async def readyz(request: Request):
    """False while draining (SIGTERM): Kubernetes stops sending traffic before the process stops."""
    rt = request.app.ctx.runtime
    services = {s.access_name: rt.status(s) for s in rt.catalog.services}
    ready = not request.app.ctx.draining
    return json_response({"ready": ready, "services": services}, status=200 if ready else 503)


@bp.get("/openapi.json")
async def openapi(request: Request):
    return json_response(document())


@bp.get("/metrics")
async def metrics(request: Request):
    return HTTPResponse(exposition(request.app.ctx.runtime.usage.metrics.registry),
                        content_type=CONTENT_TYPE_LATEST)
