"""Noticing store changes: filesystem events for local stores, polling for remote ones.

watchfiles does not report the contents of folders moved into place (an
atomic publish is exactly that), so a callback gets the changed paths only as
a hint of *which model* to rescan, never of what changed in it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

# Wait this long for a burst of events to end before rescanning (ms); a publish is one rename.
STEP_MS = 50
DEBOUNCE_MS = 400


def watchfiles_available() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


async def watch_local(
    paths: Iterable[str],
    on_change: Callable[[set[str]], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """Call ``on_change`` with the paths changed under ``paths`` (inotify), until ``stop`` is set."""
    from watchfiles import awatch

    existing = sorted({p for p in paths if os.path.isdir(p)})
    if not existing:
        return
    log.info("watching %s", ", ".join(existing))
    async for changes in awatch(
        *existing,
        stop_event=stop,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        recursive=True,
        ignore_permission_denied=True,
    ):
        try:
            await on_change({path for _change, path in changes})
        except Exception:
            log.exception("handling a store change failed; watching goes on")


async def poll(interval: float, tick: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Call ``tick`` every ``interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except asyncio.TimeoutError:
            pass
        try:
            await tick()
        except Exception:
            log.exception("polling the store failed; polling goes on")
