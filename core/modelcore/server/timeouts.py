"""The request timeout: 504 for a prediction past ``server.request_timeout_s``, with one timer.

A timer per request (``asyncio.wait_for`` or ``asyncio.timeout``) cost this
server a quarter of its throughput at 64 connections: every request armed and
cancelled a timer handle. The timeout is the same for every request, so
deadlines arrive in order; one sweeper task walks them from the front.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from modelcore.errors import GatewayTimeout

T = TypeVar("T")


class RequestTimeouts:
    """Waits for predictions; answers :class:`GatewayTimeout` for those past the deadline."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._pending: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def wait(self, work: asyncio.Future[T]) -> T:
        """``work``'s result; a request that goes away (or times out) leaves ``work`` running."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def relay(done: asyncio.Future[T]) -> None:
            if waiter.done():
                return
            if done.cancelled():
                waiter.cancel()
            elif (exc := done.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())

        work.add_done_callback(relay)
        self._pending.append((loop.time() + self.seconds, waiter))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._sweep())
        return await waiter

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            deadline, waiter = self._pending[0]
            if waiter.done():
                self._pending.popleft()
                continue
            now = loop.time()
            if deadline <= now:
                self._pending.popleft()
                waiter.set_exception(
                    GatewayTimeout(
                        f"no answer within the server's request timeout of {self.seconds:g}s"
                    )
                )
                continue
            await asyncio.sleep(min(deadline - now, 0.5))

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
