"""Starting the gateway: `modelsvc serve` (and `modelsvc dev`, which first starts the local stand-in engines)."""

from __future__ import annotations

import logging
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from modelsvc.catalog import load

from .app import create_app
from .config import Settings, load_overlay


def build(config: str, overlay_path: str | None, settings: Settings) -> Sanic:
    catalog = load(config)
    overlay = load_overlay(overlay_path, catalog) if overlay_path else None
    return create_app(catalog, settings, overlay, name="modelsvc_gateway")


def serve(config: str, overlay_path: str | None, settings: Settings, *, host: str, port: int, workers: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Each Sanic worker process builds its own app (and its own gRPC channels) from the same factory.
    loader = AppLoader(factory=partial(build, config, overlay_path, settings))
    app = loader.load()
    app.prepare(host=host, port=port, workers=workers, single_process=workers == 1, motd=False, access_log=False)
    Sanic.serve(primary=app, app_loader=loader)
