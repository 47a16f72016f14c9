"""The deadline sweeper behind the request timeout and the SLO."""

from __future__ import annotations

import asyncio

import pytest

from modelcore.errors import GatewayTimeout
from modelcore.runtime.batching import DeadlinePassed
from modelcore.server.timeouts import RequestTimeouts


async def test_each_wait_fails_at_its_own_deadline_in_any_order() -> None:
    waits = RequestTimeouts(10.0, DeadlinePassed, "too late")
    loop = asyncio.get_running_loop()
    now = loop.time()
    futures = [loop.create_future() for _ in range(3)]
    # Pushed out of order: the sweeper must still fail the 0.05 s one first.
    tasks = [
        asyncio.ensure_future(waits.wait(f, now + d))
        for f, d in zip(futures, (0.3, 0.05, 10.0), strict=True)
    ]
    await asyncio.sleep(0.15)
    assert [t.done() for t in tasks] == [False, True, False]
    with pytest.raises(DeadlinePassed, match="too late"):
        tasks[1].result()
    futures[2].set_result([42])
    assert await tasks[2] == [42]
    with pytest.raises(DeadlinePassed):
        await tasks[0]
    assert loop.time() - now < 1.0
    waits.close()


async def test_an_answered_future_returns_at_once_and_a_task_runs_on_after_its_timeout() -> None:
    waits = RequestTimeouts(0.05)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    done.set_result("inline")
    assert await waits.wait(done) == "inline"
    assert not waits._pending  # nothing to sweep for an answer that was already there

    async def work() -> str:
        await asyncio.sleep(0.2)
        return "finished"

    task = asyncio.ensure_future(work())
    with pytest.raises(GatewayTimeout, match=r"request timeout of 0\.05s"):
        await waits.wait(task)
    assert not task.done()  # the work itself is never cancelled by a timeout
    assert await task == "finished"
    waits.close()
