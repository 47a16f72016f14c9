"""The model manager: which versions are loaded, loading them off the loop, and predicting.

Every mutation of the manager's state happens on the event loop; blocking work
(store I/O, backend load/unload, predictions) runs in executors. A version
that is replaced is retired, and unloaded once its last request finishes, so a
swap never fails a request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from modelcore.errors import LoadError, ModelcoreError, ModelUnavailable, NotFound, StoreError
from modelcore.plugins import ModelcorePluginManager
from modelcore.runtime.loaded import LoadedVersion, VersionState, VersionStatus
from modelcore.store import ModelStore

log = logging.getLogger(__name__)

VersionRef = int | Literal["latest"]


@dataclass
class ModelConfig:
    """How a model is served: what the spec's APIs ask of it."""

    name: str
    backend: str | None = None
    device: str = "cpu"
    threads: int = 2
    versions: set[VersionRef] = field(default_factory=lambda: {"latest"})


class ModelSlot:
    """A model name: its loaded versions, the one that answers ``latest``, and its executor."""

    def __init__(self, config: ModelConfig):
        self.config = config
        self.executor = ThreadPoolExecutor(
            max_workers=config.threads, thread_name_prefix=f"predict-{config.name}"
        )
        self.loaded: dict[int, LoadedVersion] = {}
        self.loading: dict[int, asyncio.Future[LoadedVersion]] = {}
        self.status: dict[int, VersionStatus] = {}
        self.latest: LoadedVersion | None = None
        self.latest_wanted: int | None = None
        self.error: str | None = None

    def status_of(self, version: int) -> VersionStatus:
        if version not in self.status:
            self.status[version] = VersionStatus(version)
        return self.status[version]


class ModelManager:
    """Loads model versions from a store through their backends and runs predictions."""

    def __init__(
        self,
        store: ModelStore,
        pm: ModelcorePluginManager,
        configs: Iterable[ModelConfig],
        *,
        load_threads: int = 2,
    ):
        self.store = store
        self.pm = pm
        self.slots = {c.name: ModelSlot(c) for c in configs}
        self._loader = ThreadPoolExecutor(max_workers=load_threads, thread_name_prefix="load")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- start and stop -------------------------------------------------------------
    async def start(self) -> None:
        """Load every version the spec asks for; failures are recorded, not raised."""
        await asyncio.gather(*(self.refresh(name) for name in self.slots))
        for slot in self.slots.values():
            for ref in slot.config.versions:
                if isinstance(ref, int):
                    self._spawn(self._load_quietly(slot, ref))

    async def close(self) -> None:
        """Unload every version and stop the executors."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        loop = asyncio.get_running_loop()
        for slot in self.slots.values():
            await asyncio.to_thread(slot.executor.shutdown, True, cancel_futures=True)
            for lv in list(slot.loaded.values()):
                await loop.run_in_executor(self._loader, lv.unload)
                slot.status_of(lv.version).set(VersionState.UNLOADED)
            slot.loaded.clear()
            slot.latest = None
        await asyncio.to_thread(self._loader.shutdown, True, cancel_futures=True)

    def ready(self) -> bool:
        """True when every model has a version that answers ``latest`` (or its pinned one)."""
        for slot in self.slots.values():
            for ref in slot.config.versions:
                if ref == "latest" and slot.latest is None:
                    return False
                if isinstance(ref, int) and ref not in slot.loaded:
                    return False
        return True

    # -- versions -------------------------------------------------------------
    async def refresh(self, name: str) -> None:
        """Rescan ``name``'s versions; load a new latest in the background of the serving one."""
        slot = self.slots[name]
        loop = asyncio.get_running_loop()
        try:
            # With a backend named in the spec, bare version folders (no manifest) count too.
            versions = await loop.run_in_executor(
                self._loader,
                functools.partial(
                    self.store.list_versions, name, complete_only=slot.config.backend is None
                ),
            )
        except (OSError, ModelcoreError) as exc:
            slot.error = f"cannot list versions: {exc}"
            log.error("model %s: %s", name, slot.error)
            return
        for v in versions:
            slot.status_of(v)
        if "latest" not in slot.config.versions:
            return
        if not versions:
            slot.error = f"model {name!r} has no versions in {self.store.url}"
            log.warning("%s", slot.error)
            return
        newest = versions[-1]
        if slot.latest is not None and slot.latest.version == newest:
            return
        slot.latest_wanted = newest
        try:
            lv = await self._load(slot, newest)
        except LoadError:
            return  # recorded in the status; whatever was serving keeps serving
        if slot.latest_wanted == newest:
            self._swap_latest(slot, lv)

    def _swap_latest(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        old, slot.latest = slot.latest, lv
        slot.error = None
        if old is not None and old is not lv:
            log.info(
                "model %s: v%s now serves latest (was v%s)",
                slot.config.name,
                lv.version,
                old.version,
            )
            if old.version not in slot.config.versions:
                self._retire(slot, old)

    def _retire(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        lv.retired = True
        slot.loaded.pop(lv.version, None)
        if lv.inflight == 0:
            self._spawn(self._unload(slot, lv))

    async def _unload(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        await asyncio.get_running_loop().run_in_executor(self._loader, lv.unload)
        if lv.version not in slot.loaded:
            slot.status_of(lv.version).set(VersionState.UNLOADED)

    async def _load(self, slot: ModelSlot, version: int) -> LoadedVersion:
        if version in slot.loaded:
            return slot.loaded[version]
        pending = slot.loading.get(version)
        if pending is None:
            pending = asyncio.ensure_future(self._do_load(slot, version))
            slot.loading[version] = pending
            pending.add_done_callback(lambda _f: slot.loading.pop(version, None))
        return await asyncio.shield(pending)

    async def _do_load(self, slot: ModelSlot, version: int) -> LoadedVersion:
        status = slot.status_of(version)
        status.set(VersionState.LOADING)
        started = time.perf_counter()
        try:
            lv = await asyncio.get_running_loop().run_in_executor(
                self._loader, self._load_sync, slot.config, version
            )
        except Exception as exc:
            message = (
                exc.message if isinstance(exc, ModelcoreError) else f"{type(exc).__name__}: {exc}"
            )
            status.set(VersionState.FAILED, message)
            log.error("model %s v%s failed to load: %s", slot.config.name, version, message)
            raise LoadError(
                f"model {slot.config.name} v{version} failed to load: {message}"
            ) from exc
        status.load_seconds = time.perf_counter() - started
        if self._closed:
            lv.unload()
            raise LoadError("the server is shutting down")
        slot.loaded[version] = lv
        status.set(VersionState.READY)
        log.info(
            "model %s v%s loaded in %.2fs (%s)",
            slot.config.name,
            version,
            status.load_seconds,
            lv.backend.name,
        )
        return lv

    def _load_sync(self, config: ModelConfig, version: int) -> LoadedVersion:
        manifest = (
            self.store.read_manifest(config.name, version)
            if self.store.has_manifest(config.name, version)
            else None
        )
        backend_name = manifest.backend if manifest else config.backend
        if backend_name is None:
            raise StoreError(
                f"version {version} has no modelcore.yaml manifest and the spec names "
                "no backend for it"
            )
        backend = self.pm.backend(backend_name)
        directory = self.store.local_dir(config.name, version)
        model = backend.load(directory, manifest, config.device)
        model = backend.place(model, config.device)
        return LoadedVersion(config.name, version, backend, model, manifest)

    async def _load_quietly(self, slot: ModelSlot, version: int) -> None:
        try:
            await self._load(slot, version)
        except LoadError:
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- predictions -------------------------------------------------------------
    async def resolve(self, name: str, version: VersionRef = "latest") -> LoadedVersion:
        """The loaded version that answers ``version`` of ``name``, loading a pinned one on demand."""
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        if version == "latest":
            if slot.latest is not None:
                return slot.latest
            wanted = slot.latest_wanted
            if wanted is not None and wanted in slot.loading:
                try:
                    await self._load(slot, wanted)
                except LoadError:
                    pass
                if slot.latest is not None:
                    return slot.latest
            raise ModelUnavailable(
                f"model {name!r} has no version that can answer now",
                cause=slot.error or self._last_failure(slot),
            )
        if version in slot.loaded:
            return slot.loaded[version]
        status = slot.status.get(version)
        if status is None:
            exists = await asyncio.get_running_loop().run_in_executor(
                self._loader, self.store.has_manifest, name, version
            )
            if not exists:
                raise NotFound(f"model {name!r} has no version {version}")
        return await self._load(slot, version)

    async def predict(self, lv: LoadedVersion, inputs: list[Any]) -> list[Any]:
        """Run ``inputs`` through ``lv`` in its model's executor; the version stays loaded until done."""
        slot = self.slots[lv.name]
        lv.inflight += 1
        future = asyncio.get_running_loop().run_in_executor(slot.executor, lv.predict, inputs)
        future.add_done_callback(lambda _f: self._release(slot, lv))
        # Shielded: a client that goes away does not cancel the running prediction, and
        # the version is released only when the executor is really done with it.
        return await asyncio.shield(future)

    def _release(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        lv.inflight -= 1
        if lv.retired and lv.inflight == 0 and not self._closed:
            self._spawn(self._unload(slot, lv))

    # -- status -------------------------------------------------------------
    def _last_failure(self, slot: ModelSlot) -> str | None:
        failed = [s for s in slot.status.values() if s.state is VersionState.FAILED]
        return max(failed, key=lambda s: s.since).error if failed else None

    def model_status(self, name: str) -> dict[str, Any]:
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        return {
            "name": name,
            "latest": slot.latest.version if slot.latest else None,
            "error": slot.error,
            "versions": [slot.status[v].to_json() for v in sorted(slot.status)],
        }
