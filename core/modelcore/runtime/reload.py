"""Live reloading: watchers on every store a manager serves from, each change a rescan.

Local stores are watched for filesystem events (a change shows up within tens
of milliseconds); remote stores are polled every ``poll_interval`` seconds by
fingerprinting each version's objects. Either way the manager's ``refresh``
decides what changed: a version added, removed, restructured, or rewritten.
"""

from __future__ import annotations

import asyncio
import logging
import os

from modelcore.runtime.manager import ModelManager
from modelcore.store import ModelStore
from modelcore.store.watch import poll, watch_local, watchfiles_available

log = logging.getLogger(__name__)


class Reloader:
    """Keeps a manager's models current with their stores until stopped."""

    def __init__(self, manager: ModelManager, poll_interval: float = 10.0):
        self.manager = manager
        self.poll_interval = poll_interval
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        local_paths = self._local_paths()
        if local_paths and watchfiles_available():
            self._tasks.append(
                asyncio.create_task(watch_local(local_paths, self._on_local, self._stop))
            )
            poll_local = False
        else:
            poll_local = bool(local_paths)
        if poll_local or self._has_remote():
            self._tasks.append(
                asyncio.create_task(
                    poll(self.poll_interval, lambda: self._poll(poll_local), self._stop)
                )
            )

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- where to look -------------------------------------------------------------
    def _stores(self) -> list[tuple[ModelStore, str | None]]:
        """(store, model folder) for fixed models; (store, None) for directories of models."""
        out: list[tuple[ModelStore, str | None]] = []
        for slot in self.manager.slots.values():
            if slot.config.group is None or not self.manager.groups[slot.config.group].dir_mode:
                out.append((slot.store, slot.folder))
        for group in self.manager.groups.values():
            if group.dir_mode:
                out.append((group.store, None))
        return out

    def _local_paths(self) -> list[str]:
        paths = set()
        for store, folder in self._stores():
            if store.is_local:
                # The store root is watched (not the model folder) so a model folder that is
                # deleted and created again is still seen.
                paths.add(
                    store.root
                    if folder is None or store is self.manager.store
                    else store.model_path(folder)
                )
        return sorted(paths)

    def _has_remote(self) -> bool:
        return any(not store.is_local for store, _ in self._stores())

    # -- reacting -------------------------------------------------------------
    async def _on_local(self, changed: set[str]) -> None:
        names: set[str] = set()
        groups: set[str] = set()
        for name, slot in list(self.manager.slots.items()):
            if not slot.store.is_local:
                continue
            base = slot.store.model_path(slot.folder)
            if any(p == base or p.startswith(base + os.sep) for p in changed):
                names.add(name)
        for gname, group in self.manager.groups.items():
            if group.dir_mode and group.store.is_local:
                root = group.store.root
                if any(os.path.dirname(p) == root or p == root for p in changed):
                    groups.add(gname)
        await asyncio.gather(
            *(self.manager.sync_group(g) for g in groups),
            *(self.manager.refresh(n) for n in names),
        )

    async def _poll(self, include_local: bool) -> None:
        stores = {id(s): s for s, _ in self._stores() if include_local or not s.is_local}
        await asyncio.gather(*(asyncio.to_thread(s.invalidate) for s in stores.values()))
        for gname, group in self.manager.groups.items():
            if group.dir_mode and id(group.store) in stores:
                await self.manager.sync_group(gname)
        await asyncio.gather(
            *(
                self.manager.refresh(name)
                for name, slot in list(self.manager.slots.items())
                if id(slot.store) in stores
            )
        )
