"""Deadlines for predictions (the request timeout, an API's SLO), kept by one sweeper task.

A timer per request (``asyncio.wait_for`` or ``asyncio.timeout``) cost this
server a quarter of its throughput at 64 connections: every request armed and
cancelled a timer handle, and ``wait_for`` wrapped the wait in a task of its
own. Here a deadline is an entry in a heap and one sweeper task sleeps until
the earliest one; when it passes, the sweeper sets the error on the request's
own future (the one :meth:`ModelManager.submit` handed out), which stops that
request's wait and never the prediction itself.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from modelcore.errors import GatewayTimeout

T = TypeVar("T")

_MAX_SLEEP = 0.5
"""The sweeper wakes at least this often to let go of answered requests' entries."""


class RequestTimeouts:
    """Waits for predictions; fails those past their deadline with ``error``."""

    def __init__(
        self,
        seconds: float,
        error: Callable[[str], BaseException] | None = None,
        message: str | None = None,
    ):
        self.seconds = seconds
        self.error = error or GatewayTimeout
        self.message = message or f"no answer within the server's request timeout of {seconds:g}s"
        self._pending: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def wait(self, work: asyncio.Future[T], deadline: float | None = None) -> T:
        """``work``'s result, or ``error`` once ``deadline`` (event-loop time) has passed.

        ``work`` must be the caller's own future (from ``submit``, or
        :meth:`follow`): the deadline is set on it as an exception. A task is
        followed through a future of its own, so the task runs on.
        """
        if work.done():  # an inline prediction: answered already
            return work.result()
        if isinstance(work, asyncio.Task):
            work = self.follow(work)
        loop = asyncio.get_running_loop()
        when = loop.time() + self.seconds if deadline is None else deadline
        heapq.heappush(self._pending, (when, next(self._order), work))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._sweep())
        return await work

    @staticmethod
    def follow(task: asyncio.Future[T]) -> asyncio.Future[T]:
        """A future that answers what ``task`` answers, and can be failed on its own."""
        mine: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def relay(done: asyncio.Future[T]) -> None:
            if mine.done():
                return
            if done.cancelled():
                mine.cancel()
            elif (exc := done.exception()) is not None:
                mine.set_exception(exc)
            else:
                mine.set_result(done.result())

        task.add_done_callback(relay)
        return mine

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending
        while pending:
            when, _, work = pending[0]
            if work.done():
                heapq.heappop(pending)
                continue
            now = loop.time()
            if when <= now:
                heapq.heappop(pending)
                work.set_exception(self.error(self.message))
                continue
            await asyncio.sleep(min(when - now, _MAX_SLEEP))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
