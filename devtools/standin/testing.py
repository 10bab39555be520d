"""Helpers to run the stand-in engine in tests.

* ``StandInThread``: the server on its own event loop in a background thread (works with the sync tritonclient
  and with any test event loop). ``start()`` returns self; ``url`` is "127.0.0.1:<port>"; ``server`` is the
  ``StandInServer`` (set ``mode``/``token_delay`` and read the counters directly); ``stop()`` shuts down gracefully,
  ``kill()`` drops every open RPC at once (like a pod dying).
* ``running_standin(...)``: async context manager running it on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from .server import StandInServer


class StandInThread:
    def __init__(self, profile: str = "chat", *, host: str = "127.0.0.1", port: int = 0, **options):
        self.server = StandInServer(profile, **options)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> StandInThread:
        ready = threading.Event()
        error: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.port = loop.run_until_complete(self.server.start(self.host, self.port))
            except BaseException as e:
                error.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"standin-{self.server.profile}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("stand-in did not start")
        if error:
            raise error[0]
        return self

    def call(self, coro, timeout: float = 10.0):
        """Run a coroutine on the server's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self, grace: float | None = 1.0) -> None:
        if self._loop is None or self._thread is None:
            return
        try:
            self.call(self.server.stop(grace), timeout=(grace or 0) + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def kill(self) -> None:
        """Stop at once: open streams fail with UNAVAILABLE/CANCELLED, new connections are refused."""
        self.stop(grace=None)

    def wait_for(self, predicate: Callable[[StandInServer], bool], timeout: float = 5.0) -> bool:
        """Poll until predicate(server) is true (counters are updated on the server's thread)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self.server):
                return True
            time.sleep(0.01)
        return predicate(self.server)

    def __enter__(self) -> StandInThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def running_standin(profile: str = "chat", *, host: str = "127.0.0.1", port: int = 0, **options):
    server = StandInServer(profile, **options)
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.stop(None)
