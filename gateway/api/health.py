"""Liveness and readiness on the API port (metrics and per-service readiness: gateway/internal.py)."""

from __future__ import annotations

from sanic import Blueprint, Request

from ..openapi import document
from .common import json_response

bp = Blueprint("health")


@bp.get("/healthz")
async def healthz(request: Request):
    return json_response({"status": "ok"})


@bp.get("/readyz")
async def readyz(request: Request):
    """False while draining (SIGTERM): Kubernetes stops sending traffic before the process stops. Ready or not, nothing
    more: which services exist is not the public's business (the internal port has the detail)."""
    ready = not request.app.ctx.draining
    return json_response({"ready": ready}, status=200 if ready else 503)


@bp.get("/openapi.json")
async def openapi(request: Request):
    return json_response(document())
