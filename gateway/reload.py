"""A changed services.yaml is picked up without a restart: the file is watched (and SIGHUP reloads it); an invalid
one is refused and the old catalog keeps serving."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from sanic import Sanic

from modelsvc.catalog import CatalogError, load

from .lifecycle import response_timeout

log = logging.getLogger("gateway")


def setup_reload(app: Sanic) -> None:
    @app.before_server_start
    async def watch(app: Sanic) -> None:
        app.ctx.watcher = asyncio.create_task(_watch_catalog(app))
        if app.asgi:  # an ASGI server (or a test) owns the process's signals
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: _reload_soon(app))
        except (NotImplementedError, RuntimeError, ValueError) as e:
            log.warning("SIGHUP reload unavailable in this process (%s); file changes are still picked up", e)

    @app.after_server_stop
    async def unwatch(app: Sanic) -> None:
        app.ctx.watcher.cancel()


def _reload_soon(app: Sanic) -> None:
    app.ctx.reloading = asyncio.ensure_future(reload_catalog(app))  # held: a bare task may be garbage-collected


async def reload_catalog(app: Sanic) -> bool:
    """Load and validate the file again; an invalid one is refused and the old catalog keeps serving."""
    path = app.ctx.catalog_path
    try:
        catalog = await asyncio.to_thread(load, path)
    except CatalogError as e:
        log.error("catalog reload refused, still serving the previous version:\n%s", e)
        return False
    except Exception:
        log.exception("catalog reload failed, still serving the previous version")
        return False
    await app.ctx.runtime.apply(catalog)
    app.config.RESPONSE_TIMEOUT = response_timeout(app.ctx.settings, catalog)
    log.info("catalog reloaded from %s", path)
    return True


async def _watch_catalog(app: Sanic) -> None:
    poll = app.ctx.settings.reload_poll_s
    if not poll:
        return
    path = app.ctx.catalog_path

    def stamp() -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    last = stamp()
    while True:
        await asyncio.sleep(poll)
        now = stamp()
        if now is not None and now != last:
            last = now
            try:
                await reload_catalog(app)
            except Exception:
                log.exception("catalog reload failed; still watching %s", path)
