"""Adaptive batching per model version: concurrent requests become one call of the backend.

Requests queue; the batcher hands the backend as many queued inputs as the
current batch limit allows, as soon as an executor thread is free (and after
at most ``max_delay_ms`` of waiting for more). An inline version
(``isolation: inline``) runs its batch on the event loop, with everything
that arrived while the loop was busy. Results are split back to their
requests. A failed batch is retried one request at a time, so one bad input
fails only its own request. A request whose deadline (its API's SLO) passed
while it queued is dropped before it reaches the model: a late answer is never
computed behind other requests.

The limit adapts with AIMD, as in Clipper: after a batch that finished within
the latency target the limit grows (by a quarter, at least one), after one that
missed it the limit shrinks to three quarters. AIMD needs no model of the
latency curve, recovers from load changes within a few batches, and is what
Clipper measured; a fitted latency model would converge faster but misjudges
when the curve changes (a GPU shared with another model, a thermal throttle).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelcore.errors import GatewayTimeout, ModelUnavailable

if TYPE_CHECKING:
    from modelcore.runtime.loaded import LoadedVersion

log = logging.getLogger(__name__)


class DeadlinePassed(GatewayTimeout):
    """A queued request's deadline (its API's SLO) passed before its batch started."""


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 32
    max_delay_ms: float = 0.0
    adaptive: bool = False
    target_ms: float | None = None
    """Latency a batch should stay under (from the API's SLO); ``None``: grow to the maximum."""


class _Item:
    __slots__ = ("deadline", "enqueued", "future", "inputs")

    def __init__(
        self, inputs: list[Any], future: asyncio.Future[list[Any]], deadline: float | None
    ):
        self.inputs = inputs
        self.future = future
        self.deadline = deadline
        self.enqueued = time.perf_counter()


class Batcher:
    """The queue and dispatch loop of one loaded model version."""

    def __init__(
        self,
        lv: LoadedVersion,
        executor: Executor,
        config: BatchingConfig,
        concurrency: int,
        acquire: Any,
        release: Any,
    ):
        self.lv = lv
        self.executor = executor
        self.config = config
        self.concurrency = max(1, concurrency)
        self._acquire = acquire
        self._release = release
        self.limit = (
            1 if config.adaptive and config.target_ms is not None else config.max_batch_size
        )
        self.queue: deque[_Item] = deque()
        self.queued_inputs = 0
        self.running = 0
        self.batches = 0
        self.batched_inputs = 0
        self.dropped = 0
        self.last_batch_size = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_scheduled = False

    def enqueue(
        self, inputs: list[Any], deadline: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Queue ``inputs`` (one request); the future holds their outputs."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        item = _Item(inputs, future, deadline)
        if self.lv.inline and self.config.max_delay_ms <= 0:
            if self._flush_scheduled:  # one batch of what else arrives in this turn
                self.queue.append(item)
                self.queued_inputs += len(inputs)
                return future
            # The first request of a turn of the loop is answered at once, as without
            # batching; those that arrive after it in the same turn wait for the flush.
            self._flush_scheduled = True
            loop.call_soon(self._flush_inline)
            self._run_inline([item])
            return future
        self.queue.append(item)
        self.queued_inputs += len(inputs)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()
        return future

    def _flush_inline(self) -> None:
        """Run one batch on the event loop; what is left waits for the next turn of the loop."""
        self._flush_scheduled = False
        if not self.lv.inline:  # moved to threads since these were queued
            if self._task is None:
                self._task = asyncio.ensure_future(self._run())
            self._wake.set()
            return
        items = self._take(asyncio.get_running_loop().time())
        if items:
            self._run_inline(items)
        if self.queue:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_inline)

    def _run_inline(self, items: list[_Item]) -> None:
        """One batch on the event loop (the loop holds nothing else while it runs)."""
        started = time.perf_counter()
        results = self.lv.run_inline(_run_batch, self.lv, [i.inputs for i in items])
        self._answer(items, results, started)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for item in self.queue:
            if not item.future.done():
                item.future.cancel()
        self.queue.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue or self.running >= self.concurrency:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.queued_inputs < self.limit and self.config.max_delay_ms > 0:
                waited = await self._wait_for_more(self.config.max_delay_ms / 1000.0)
                if not waited:
                    continue
            items = self._take(loop.time())
            if not items:
                continue
            if self.lv.inline:  # isolation: inline with max_delay_ms
                self._run_inline(items)
                if self.queue:
                    await asyncio.sleep(0)  # answer these before the next batch
                continue
            self.running += 1
            self._acquire(self.lv)
            started = time.perf_counter()
            try:
                job = loop.run_in_executor(
                    self.executor, _run_batch, self.lv, [i.inputs for i in items]
                )
            except RuntimeError:  # the model was removed and its executor shut down
                self.running -= 1
                self._release(self.lv)
                gone = ModelUnavailable(f"model {self.lv.name!r} is no longer served")
                for item in [*items, *self.queue]:
                    if not item.future.done():
                        item.future.set_exception(gone)
                self.queue.clear()
                self.queued_inputs = 0
                return
            job.add_done_callback(functools.partial(self._done, items=items, started=started))

    async def _wait_for_more(self, delay: float) -> bool:
        """Wait up to ``delay`` for the queue to fill to the limit; False if it emptied."""
        deadline = asyncio.get_running_loop().time() + delay
        while self.queued_inputs < self.limit:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        return bool(self.queue)

    def _take(self, now: float) -> list[_Item]:
        items: list[_Item] = []
        size = 0
        while self.queue:
            item = self.queue[0]
            if item.future.done() or (item.deadline is not None and item.deadline <= now):
                self.queue.popleft()
                self.queued_inputs -= len(item.inputs)
                self.dropped += 1  # answered already (the SLO's default), never computed late
                if not item.future.done():
                    # Its owner stops waiting (and lets the version go): an error, not a
                    # cancellation, so the owner's own task is never mistaken for cancelled.
                    item.future.set_exception(
                        DeadlinePassed("the request's deadline passed in the queue")
                    )
                continue
            if items and size + len(item.inputs) > self.limit:
                break
            self.queue.popleft()
            self.queued_inputs -= len(item.inputs)
            items.append(item)
            size += len(item.inputs)
        started = time.perf_counter()
        for item in items:
            self.lv.observer.queued(self.lv.name, started - item.enqueued)
        return items

    def _done(self, job: asyncio.Future[list[Any]], *, items: list[_Item], started: float) -> None:
        """A batch in a thread ended (on the loop)."""
        self.running -= 1
        self._release(self.lv)
        try:
            results = job.result()
        except BaseException as exc:  # the executor refused (shutting down)
            results = [exc] * len(items)
        self._answer(items, results, started)

    def _answer(self, items: list[_Item], results: list[Any], started: float) -> None:
        """Split a batch's results back to its requests, count it, and adapt the limit."""
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        size = sum(len(i.inputs) for i in items)
        self.batches += 1
        self.batched_inputs += size
        self.last_batch_size = size
        for item, result in zip(items, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        self._adapt(size, elapsed_ms)
        self._wake.set()

    def _adapt(self, size: int, elapsed_ms: float) -> None:
        config = self.config
        if not config.adaptive or config.target_ms is None:
            return
        if elapsed_ms > config.target_ms:
            self.limit = max(1, int(self.limit * 0.75))
        elif size >= self.limit:
            self.limit = min(config.max_batch_size, self.limit + max(1, self.limit // 4))

    def stats(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "batches": self.batches,
            "mean_batch_size": self.batched_inputs / self.batches if self.batches else 0.0,
            "last_batch_size": self.last_batch_size,
            "queued": self.queued_inputs,
            "dropped_late": self.dropped,
        }


def _run_batch(lv: LoadedVersion, groups: list[list[Any]]) -> list[Any]:
    """Predict all groups at once; if that fails, each group alone (blocking, in the executor)."""
    flat = [x for group in groups for x in group]
    try:
        outputs = lv.predict(flat)
    except Exception as exc:  # lv.predict turns every model failure (SystemExit too) into one
        if len(groups) == 1:
            return [exc]
        results: list[Any] = []
        for group in groups:
            try:
                results.append(lv.predict(group))
            except Exception as single:
                results.append(single)
        return results
    out: list[Any] = []
    offset = 0
    for group in groups:
        out.append(outputs[offset : offset + len(group)])
        offset += len(group)
    return out
