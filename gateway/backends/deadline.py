"""A read deadline that costs one timer per stream, not one per read (the Triton client's; the HTTP/1 client keeps
its own deadline from the last arrival, with the same timer slack)."""

from __future__ import annotations

import asyncio
from typing import Any

TIMER_SLACK = 0.001  # a deadline timer that fires this close to its time counts as on time


class ReadDeadline:
    """The deadline of the read in progress on one stream: ``asyncio.timeout`` around each read, but with one timer
    per stream (or HTTP response) that is moved lazily (a per-read ``asyncio.timeout`` cost as much CPU as decoding
    the response).

    ``start(timeout)`` before the read, ``stop()`` right after it (no await in between). The timer may fire early
    (then it re-arms for the current deadline); when it fires while a read is past its deadline it cancels the task
    doing the read, like ``asyncio.timeout``: ``expired()`` then says whether that CancelledError is ours (a timeout)
    or the caller's as well."""

    __slots__ = ("_armed", "_cancelling", "_deadline", "_fired", "_handle", "_loop", "_task")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._deadline: float | None = None  # None: no read in progress
        self._armed = 0.0  # when the timer fires
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    def start(self, timeout: float) -> None:
        self._task = task = asyncio.current_task(self._loop)
        self._cancelling = task.cancelling() if task is not None else 0
        self._deadline = deadline = self._loop.time() + timeout
        if self._handle is None or self._armed > deadline:
            if self._handle is not None:
                self._handle.cancel()
            self._arm(deadline)

    def stop(self) -> None:
        self._deadline = None

    def close(self) -> None:
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def expired(self) -> bool:
        """After a CancelledError in the read: True when our timer caused it and nobody else cancelled the task."""
        if not self._fired:
            return False
        self._fired = False
        return self._task is not None and self._task.uncancel() <= self._cancelling

    def _arm(self, when: float) -> None:
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:  # between reads: the next start() arms the timer again
            return
        if self._loop.time() + TIMER_SLACK < deadline:  # the deadline moved on since the timer was set
            self._arm(deadline)
            return
        self._deadline = None
        if self._task is not None and not self._task.done():
            self._fired = True
            self._task.cancel()
