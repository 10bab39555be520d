"""Run the stand-in OpenAI-compatible upstream on its own event loop in a background thread (for tests)."""

from __future__ import annotations

import asyncio
import threading

from .openai_upstream import OpenAIUpstream


class OpenAIUpstreamThread:
    def __init__(self, token_delay: float = 0.0, port: int = 0):
        self.upstream = OpenAIUpstream(token_delay)
        self._port = port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> OpenAIUpstreamThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.upstream.start("127.0.0.1", self._port), self.loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.upstream.port}/v1"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
