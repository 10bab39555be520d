"""The gateway app in this test's own event loop, through its ASGI interface: no process, no socket, no engine.

`InProcessGateway` runs the app's startup and shutdown (the ASGI lifespan, so the runtime, limits and usage log start
as in production) and gives an httpx.AsyncClient on httpx.ASGITransport; backends are devtools.fake_backend's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import httpx
from sanic import Sanic

from devtools.fake_backend import FakeBackend, fake_backends
from gateway.app import create_app
from gateway.config import DemoKey, LocalOverlay, Settings
from modelsvc.catalog import load, loads

from .harness import DEMO_KEYS, example_catalog

_ids = itertools.count()
# Sanic rewrites some of its own methods at each app's start (TouchUp); in test mode it keeps the originals, so that
# the apps one test process starts one after the other each start cleanly (what sanic-testing sets too).
Sanic.test_mode = True


class InProcessGateway:
    def __init__(
        self,
        tmp_path: Path,
        catalog_text: str | None = None,
        github_transport=None,
        *,
        demo_keys: list[dict] = DEMO_KEYS,
        capabilities: dict | None = None,
        catalog_file: bool = False,
        **settings,
    ):
        if catalog_file:  # a real file, for tests that watch it (settings reload_poll_s)
            path = tmp_path / "services.yaml"
            path.write_text(catalog_text or example_catalog())
            catalog = load(str(path))
        else:
            catalog = loads(catalog_text or example_catalog())
        self.usage_log = tmp_path / "usage.jsonl"
        self.settings = Settings(
            **{
                "usage_log": str(self.usage_log),
                "usage_spool": str(tmp_path / "spool"),
                "responses_store": str(tmp_path / "responses.sqlite3"),
                "metrics_port": 0,  # no internal port: nothing listens
                "reload_poll_s": 0,
                "health_interval_s": 0,
                **settings,
            }
        )
        overlay = LocalOverlay(
            endpoints={s.access_name: [f"fake-{s.access_name}"] for s in catalog.services},
            demo_keys=[DemoKey(**k) for k in demo_keys],
        )
        self.backends: dict[str, FakeBackend] = {}
        self.app = create_app(
            catalog,
            self.settings,
            overlay,
            name=f"inproc_{next(_ids)}",
            backends=fake_backends(self.backends, capabilities),
            github_transport=github_transport,
        )
        self._to_app: asyncio.Queue = asyncio.Queue()
        self._from_app: asyncio.Queue = asyncio.Queue()
        self.client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> InProcessGateway:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self._lifespan = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self._from_app.get(), 10)
        assert message["type"] == "lifespan.startup.complete", message
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gateway")
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.client is not None
        await self.client.aclose()
        await self._to_app.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self._lifespan, 10)

    def backend(self, access_name: str) -> FakeBackend:
        return self.backends[f"fake-{access_name}"]

    def usage(self) -> list[dict]:
        if not self.usage_log.exists():
            return []
        return [json.loads(line) for line in self.usage_log.read_text().splitlines()]
