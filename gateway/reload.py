"""A changed services.yaml is picked up without a restart: the file is watched (and SIGHUP reloads it); an invalid
one is refused and the old catalog keeps serving.

Only a file that is done changing is loaded. A writer that is still writing leaves a file that may parse — with
services missing (their callers get 404 until it finishes): a change is read once the file's (mtime, size, inode)
have stayed the same for `--reload-settle` seconds, and a read during which the file changed is thrown away. A
catalog that serves fewer services than the running one is applied but logged as an error naming them, since
that is what a truncated file looks like. In Kubernetes the file is a ConfigMap volume, which the kubelet updates
atomically (a new directory, then one rename of the `..data` symlink: kubernetes/kubernetes
pkg/volume/util/atomic_writer.go), so a half-written catalog cannot be seen there; editors that write in place
can. Write with a rename (write a temporary file beside it, then `mv`) to be safe everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from sanic import Sanic

from modelsvc.catalog import Catalog, CatalogError, loads
from modelsvc.catalog.errors import Problem
from modelsvc.catalog.loader import decode

from .lifecycle import response_timeout

log = logging.getLogger("gateway")
Stamp = tuple[int, int, int]  # (mtime_ns, size, inode)


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


def stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_whole(path: str) -> bytes | None:
    """The file's bytes, or None when it changed while being read (a writer is still at it)."""
    try:
        with open(path, "rb") as f:
            before = os.fstat(f.fileno())
            data = f.read()
            after = os.fstat(f.fileno())
    except OSError as e:
        raise CatalogError([Problem(path, 1, 1, f"cannot read the file: {e.strerror}", "check the path")]) from e
    same = (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size) == (after.st_mtime_ns, len(data))
    return data if same and stamp(path) == (after.st_mtime_ns, after.st_size, after.st_ino) else None


class Settle:
    """When a watched file may be read: a change counts once the file has stayed the same for `settle_s`."""

    def __init__(self, current: Stamp | None, settle_s: float):
        self.loaded = current  # the stamp last read (or refused)
        self.seen = current  # the stamp seen at the last look
        self.since = 0.0  # when `seen` was first seen
        self.settle_s = settle_s

    def observe(self, now_stamp: Stamp | None, now: float) -> bool:
        """True when the file changed and has been unchanged for settle_s: read it now."""
        if now_stamp != self.seen:
            self.seen, self.since = now_stamp, now
            return False
        if now_stamp is None or now_stamp == self.loaded or now - self.since < self.settle_s:
            return False
        self.loaded = now_stamp
        return True


def _dropped(old: Catalog, new: Catalog) -> list[str]:
    kept = {s.access_name for s in new.services}
    return [s.access_name for s in old.services if s.access_name not in kept]


async def reload_catalog(app: Sanic) -> bool:
    """Load and validate the file again; an invalid one is refused and the old catalog keeps serving."""
    path = app.ctx.catalog_path
    try:
        data = await asyncio.to_thread(read_whole, path)
        if data is None:
            log.warning("catalog %s changed while it was read; reading it again once it is stable", path)
            return False
        catalog = loads(decode(data, path), path)
    except CatalogError as e:
        log.error("catalog reload refused, still serving the previous version:\n%s", e)
        return False
    except Exception:
        log.exception("catalog reload failed, still serving the previous version")
        return False
    runtime = app.ctx.runtime
    if dropped := _dropped(runtime.catalog, catalog):
        log.error(
            "catalog reload removes %d service(s) the running catalog serves: %s; their callers now get 404. If "
            "this is not intended, %s may have been written partially: write it whole (to a temporary file, then "
            "rename it over the catalog)",
            len(dropped),
            ", ".join(dropped),
            path,
        )
    await runtime.apply(catalog)
    app.config.RESPONSE_TIMEOUT = response_timeout(app.ctx.settings, catalog)
    log.info("catalog reloaded from %s", path)
    return True


async def _watch_catalog(app: Sanic) -> None:
    settings = app.ctx.settings
    poll = settings.reload_poll_s
    if not poll:
        return
    path = app.ctx.catalog_path
    settle = Settle(stamp(path), settings.reload_settle_s)
    while True:
        await asyncio.sleep(poll)
        if settle.observe(stamp(path), time.monotonic()):
            try:  # refused or torn: a torn read means the file changed, so its new stamp is read once stable
                await reload_catalog(app)
            except Exception:
                log.exception("catalog reload failed; still watching %s", path)
