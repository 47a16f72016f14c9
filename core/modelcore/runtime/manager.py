"""The model manager: which versions are loaded, swapping them as the store changes, predicting.

Every mutation of the manager's state happens on the event loop; blocking work
(store I/O, backend load/unload, predictions) runs in executors. A new or
changed version is loaded next to the serving one and swapped in atomically;
the replaced version is retired and unloaded once its last request finishes.
A version that fails to load never replaces the one that serves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from modelcore.errors import (
    LoadError,
    ModelcoreError,
    ModelUnavailable,
    NotFound,
    Overloaded,
    StoreError,
)
from modelcore.integrity import IntegrityPolicy
from modelcore.plugins import ModelcorePluginManager
from modelcore.runtime.batching import Batcher
from modelcore.runtime.loaded import LoadedVersion, VersionState
from modelcore.runtime.observer import NULL_OBSERVER, Observer
from modelcore.runtime.slots import ModelConfig, ModelGroup, ModelSlot, VersionRef
from modelcore.runtime.worker.envs import EnvBuilder, install_source
from modelcore.runtime.worker.pool import WorkerBackend, WorkerPool
from modelcore.store import ModelStore

if TYPE_CHECKING:
    from modelcore.manifest import Manifest
    from modelcore.plugins import Backend

log = logging.getLogger(__name__)

__all__ = ["ModelConfig", "ModelGroup", "ModelManager", "VersionRef"]

ON_DEMAND_VERSIONS = 2
"""Versions loaded because a request pinned them (not the spec) that stay loaded at once."""


class ModelManager:
    """Loads model versions through their backends, keeps them current, and runs predictions."""

    def __init__(
        self,
        store: ModelStore,
        pm: ModelcorePluginManager,
        configs: Iterable[ModelConfig] = (),
        groups: Iterable[ModelGroup] = (),
        *,
        load_threads: int = 2,
        integrity: IntegrityPolicy | None = None,
        observer: Observer | None = None,
    ):
        self.store = store
        self.integrity = integrity or IntegrityPolicy(
            verify_hashes=True, require_signed=False, key=None
        )
        self.pm = pm
        self.observer = observer or NULL_OBSERVER
        self.groups = {g.name: g for g in groups}
        self.slots: dict[str, ModelSlot] = {}
        for config in configs:
            self.add_model(config)
        self._loader = ThreadPoolExecutor(max_workers=load_threads, thread_name_prefix="load")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.envs = EnvBuilder()
        self._event_loop: asyncio.AbstractEventLoop | None = None

    # -- models come and go -------------------------------------------------------------
    def add_model(self, config: ModelConfig) -> ModelSlot:
        slot = ModelSlot(config, config.store or self.store)
        self.slots[config.name] = slot
        return slot

    async def sync_group(self, group_name: str) -> None:
        """For a directory of models: add slots for new sub-folders, retire removed ones."""
        group = self.groups[group_name]
        names = set(await self._io(group.store.list_models))
        current = set(self.group_members(group_name))
        for name in sorted(names - current):
            if name in self.slots:
                log.warning("model %s in %s shadows a model of another API", name, group.store.url)
                continue
            self.add_model(group.template.for_model(name, group.store))
            log.info("model %s appeared in %s", name, group.store.url)
            await self.refresh(name)
        for name in sorted(current - names):
            log.info("model %s was removed from %s", name, group.store.url)
            self._remove_slot(self.slots.pop(name))

    def group_members(self, group: str) -> list[str]:
        """The models of a group (a directory of models) served now, sorted."""
        return sorted(n for n, s in self.slots.items() if s.config.group == group)

    def _remove_slot(self, slot: ModelSlot) -> None:
        slot.removed = True
        for lv in list(slot.loaded.values()):
            self._retire(slot, lv)
        slot.latest = None
        self._spawn(asyncio.to_thread(slot.executor.shutdown, True))

    # -- start and stop -------------------------------------------------------------
    async def start(self) -> None:
        """Scan every model and load what the spec asks for; failures are recorded, not raised."""
        self._event_loop = asyncio.get_running_loop()
        for name, group in self.groups.items():
            if group.dir_mode:
                await self.sync_group(name)
        await asyncio.gather(*(self.refresh(name) for name in list(self.slots)))

    async def close(self) -> None:
        """Unload every version and stop the executors."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for slot in self.slots.values():
            for pending in list(slot.loading.values()):
                pending.cancel()
        for slot in self.slots.values():
            await asyncio.to_thread(slot.executor.shutdown, True, cancel_futures=True)
            for lv in list(slot.loaded.values()) + ([slot.latest] if slot.latest else []):
                if not lv.unloaded:
                    await asyncio.to_thread(self._unload_sync, slot, lv)
            slot.loaded.clear()
            slot.latest = None
        await asyncio.to_thread(self._loader.shutdown, True, cancel_futures=True)

    def ready(self) -> bool:
        """True when every model that loads eagerly has a version answering each ref it serves."""
        for slot in self.slots.values():
            if self._lazy(slot):
                continue
            for ref in slot.config.versions:
                if ref == "latest" and slot.latest is None:
                    return False
                if isinstance(ref, int) and ref not in slot.loaded:
                    return False
        return True

    # -- keeping versions current -------------------------------------------------------
    async def refresh(self, name: str) -> None:
        """Rescan ``name`` and apply what changed: added, removed, restructured, rewritten.

        Concurrent calls coalesce: a call returns once a rescan that started
        after it was made has finished.
        """
        slot = self.slots.get(name)
        if slot is None:
            return
        slot.requested += 1
        ticket = slot.requested
        async with slot.lock:
            if slot.done >= ticket or slot.removed:
                return
            target = slot.requested
            await self._refresh_locked(slot)
            slot.done = target

    async def _refresh_locked(self, slot: ModelSlot) -> None:
        try:
            snap = await self._io(
                functools.partial(
                    slot.store.snapshot, slot.folder, complete_only=slot.config.needs_manifest
                )
            )
        except (OSError, ModelcoreError) as exc:
            slot.error = f"cannot list versions: {exc}"
            log.error("model %s: %s", slot.config.name, slot.error)
            return
        old = slot.snapshot or {}
        slot.snapshot = snap
        for version in snap:
            slot.status_of(version)
        if slot.disabled:
            return  # unloaded through the repository API: new versions wait for a load
        for version in set(old) - set(snap):
            log.info("model %s v%s was removed from the store", slot.config.name, version)
            if version not in slot.loaded and (
                slot.latest is None or slot.latest.version != version
            ):
                slot.status.pop(version, None)
        # Versions loaded on demand or pinned: reload when rewritten, retire when removed.
        for version, lv in list(slot.loaded.items()):
            if lv is slot.latest:
                continue
            if version not in snap:
                self._retire(slot, lv)
            elif lv.fingerprint != snap[version]:
                if version in slot.config.versions:
                    await self._reload_pinned(slot, version, snap[version])
                else:
                    self._retire(slot, lv)  # reloads on its next request
        if "latest" in slot.config.versions and (not self._lazy(slot) or slot.latest is not None):
            await self._ensure_latest(slot)
        elif not snap:
            slot.error = f"model {slot.config.name!r} has no versions in {slot.store.url}"
        for ref in slot.config.versions:
            if (
                isinstance(ref, int)
                and ref in snap
                and ref not in slot.loaded
                and not self._lazy(slot)
            ):
                await self._load_quietly(slot, ref, snap[ref])

    async def _ensure_latest(self, slot: ModelSlot) -> None:
        """Serve the highest version that loads; keep the serving one until a successor is ready."""
        snap = slot.snapshot or {}
        current = slot.latest
        if not snap:
            slot.error = f"model {slot.config.name!r} has no versions left in {slot.store.url}"
            if current is not None:
                log.warning("model %s: %s; it stops serving", slot.config.name, slot.error)
                slot.latest = None
                self._retire(slot, current)
            return
        for version in sorted(snap, reverse=True):
            if current is not None and current.version == version:
                if current.fingerprint == snap[version]:
                    return  # the serving version is still the best one that loads
            elif current is not None and current.version > version and current.version in snap:
                return  # never step back below a serving version that is still there
            if slot.failed.get(version) == snap[version]:
                continue  # failed as it is now; tried again once its files change
            try:
                lv = await self._load(slot, version, snap[version])
            except LoadError:
                continue  # recorded in the status; try the next lower version
            self._swap_latest(slot, lv)
            return
        if current is not None and current.version not in snap:
            # Every remaining version fails to load: keep answering from memory rather than fail.
            slot.error = "no version in the store loads; still serving removed version " + str(
                current.version
            )

    async def _reload_pinned(self, slot: ModelSlot, version: int, fingerprint: str) -> None:
        try:
            lv = await self._load(slot, version, fingerprint)
        except LoadError:
            return
        self._install(slot, lv)

    def _install(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        """Make ``lv`` the loaded copy of its version; the copy it replaces is retired.

        Only installed versions enter the memory cache: a version still on its
        way to being served can never be evicted first.
        """
        previous = slot.loaded.get(lv.version)
        slot.loaded[lv.version] = lv
        self._cache_add(slot, lv)
        if previous is not None and previous is not lv and previous is not slot.latest:
            self._retire(slot, previous, keep_status=True)

    def _swap_latest(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        old, slot.latest = slot.latest, lv
        previous = slot.loaded.get(lv.version)
        slot.loaded[lv.version] = lv
        self._cache_add(slot, lv)
        if previous is not None and previous is not lv and previous is not old:
            self._retire(slot, previous, keep_status=True)
        slot.error = None
        if old is not None and old is not lv:
            self.observer.swapped(slot.config.name, lv.version)
            log.info(
                "model %s: v%s now serves (was v%s)", slot.config.name, lv.version, old.version
            )
            if old.version not in slot.config.versions or old.version == lv.version:
                self._retire(slot, old, keep_status=old.version == lv.version)

    def _retire(self, slot: ModelSlot, lv: LoadedVersion, keep_status: bool = False) -> None:
        """Take ``lv`` out of service; it unloads once its last request finishes."""
        lv.retired = True
        if slot.loaded.get(lv.version) is lv:
            del slot.loaded[lv.version]
        if slot.latest is lv:
            slot.latest = None
        group = self.groups.get(slot.config.group or "")
        if group is not None and group.lru.get((slot.config.name, lv.version)) is lv:
            del group.lru[(slot.config.name, lv.version)]
        lv.keep_status = keep_status
        if lv.inflight == 0:
            self._spawn(self._unload(slot, lv))

    async def _unload(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        await asyncio.to_thread(self._unload_sync, slot, lv)
        self.observer.unloaded(slot.config.name, lv.version)
        if not lv.keep_status and lv.version not in slot.loaded:
            status = slot.status.get(lv.version)
            if status is not None:
                if slot.snapshot is not None and lv.version not in slot.snapshot:
                    del slot.status[lv.version]
                else:
                    status.set(VersionState.UNLOADED)

    def _unload_sync(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        if lv.batcher is not None:
            self._loop_call(lv.batcher.close)
        lv.unload()
        if lv.local_dir is not None and not slot.store.is_local:
            slot.store.disk_cache.unpin(lv.local_dir)

    # -- loading --------------------------------------------------------------------
    async def _load(self, slot: ModelSlot, version: int, fingerprint: str) -> LoadedVersion:
        loaded = slot.loaded.get(version)
        if loaded is not None and loaded.fingerprint == fingerprint:
            return loaded
        key = (version, fingerprint)
        pending = slot.loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._do_load(slot, version, fingerprint))
            slot.loading[key] = pending
            pending.add_done_callback(lambda _f: slot.loading.pop(key, None))
        return await asyncio.shield(pending)

    async def _do_load(self, slot: ModelSlot, version: int, fingerprint: str) -> LoadedVersion:
        status = slot.status_of(version)
        status.set(VersionState.LOADING)
        started = time.perf_counter()
        try:
            lv = await self._io(self._load_sync, slot, version, fingerprint)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BaseException as exc:  # a model whose load calls sys.exit() fails, the server stays
            message = (
                exc.message if isinstance(exc, ModelcoreError) else f"{type(exc).__name__}: {exc}"
            )
            status.set(VersionState.FAILED, message)
            slot.failed[version] = fingerprint
            self.observer.load_failed(slot.config.name, version)
            log.error("model %s v%s failed to load: %s", slot.config.name, version, message)
            raise LoadError(
                f"model {slot.config.name} v{version} failed to load: {message}"
            ) from exc
        status.load_seconds = time.perf_counter() - started
        if self._closed or slot.removed:
            await asyncio.to_thread(self._unload_sync, slot, lv)
            raise LoadError(f"model {slot.config.name} is no longer served")
        slot.failed.pop(version, None)
        status.set(VersionState.READY)
        self.observer.loaded(slot.config.name, version, status.load_seconds)
        log.info(
            "model %s v%s loaded in %.2fs (%s)",
            slot.config.name,
            version,
            status.load_seconds,
            lv.backend.name,
        )
        return lv

    def _load_sync(self, slot: ModelSlot, version: int, fingerprint: str) -> LoadedVersion:
        config, store, folder = slot.config, slot.store, slot.folder
        manifest = (
            store.read_manifest(folder, version) if store.has_manifest(folder, version) else None
        )
        if config.loader is not None:
            backend = config.loader
        else:
            self.integrity.check_manifest(manifest)  # before the manifest can install anything
            backend_name = manifest.backend if manifest else config.backend
            if backend_name is None:
                raise StoreError(
                    f"version {version} has no modelcore.yaml manifest and the spec names no "
                    "backend (or handler) for it"
                )
            backend = self._isolate(config, self.pm.backend(backend_name), manifest, version)
        directory = store.local_dir(folder, version, fingerprint, pin=True)
        try:
            if config.loader is None:
                self.integrity.check(directory, manifest)
            if isinstance(backend, WorkerBackend):
                model = backend.load(
                    directory, manifest, config.device, name=config.name, version=version
                )
            else:
                model = backend.load(directory, manifest, config.device)
            model = backend.place(model, config.device)
            lv = LoadedVersion(
                config.name, version, backend, model, manifest, fingerprint, directory
            )
            lv.slot = slot
            lv.observer = self.observer
            in_process = not isinstance(backend, WorkerBackend)
            lv.inline = config.isolation == "inline" and in_process
            # Unset: threads, until the version proves it answers faster than a hand-off.
            lv.auto_inline = config.isolation is None and in_process and config.loader is None
            lv.inline_budget = config.inline_budget_s
            if config.loader is None:
                self._warm_up(lv)
        except BaseException:
            if not store.is_local:
                store.disk_cache.unpin(directory)
            raise
        return lv

    def _isolate(
        self, config: ModelConfig, backend: Backend, manifest: Manifest | None, version: int
    ) -> Backend | WorkerBackend:
        """The backend itself, or a worker pool's proxy when the model must run isolated."""
        info = backend.info
        pkgs = list(manifest.pkgs_to_install) if manifest else []
        wants_process = (
            config.isolation == "process"
            or info.isolation == "process"
            or bool(pkgs or config.env_requirements or config.env_python)
        )
        if not wants_process:
            return backend
        if config.isolation in ("thread", "inline"):
            raise StoreError(
                f"backend {info.name!r} must run in a worker process, and the spec says "
                f"isolation: {config.isolation}"
                if info.isolation == "process"
                else f"version {version} needs packages ({', '.join(pkgs)}) that only a worker "
                f"environment can have, and the spec says isolation: {config.isolation}"
            )
        python = config.env_python
        requirements = [*info.requirements, *pkgs, *config.env_requirements]
        if python is None and requirements:
            sources = [install_source("modelcore")]
            dist = self.pm.statuses.get(backend.plugin_name)
            if dist is not None and dist.distribution and dist.distribution != "modelcore":
                sources.append(install_source(dist.distribution))
            python = self.envs.ensure(
                sources, requirements, info.excluded, label=f"{config.name} v{version}"
            )
        return WorkerBackend(info, python, config.replicas, config.timeout)

    def _warm_up(self, lv: LoadedVersion) -> None:
        """Run the deployer's warm-up inputs once, so a broken model fails before it serves."""
        raw = lv.manifest.metadata.get("warmup_inputs") if lv.manifest else None
        if not raw or lv.manifest is None:
            return
        decode = self.pm.input_types()[lv.manifest.input_type].decode
        try:
            lv.predict([decode(x) for x in raw])
        except BaseException:
            lv.unload()
            raise

    async def _load_quietly(self, slot: ModelSlot, version: int, fingerprint: str) -> None:
        try:
            lv = await self._load(slot, version, fingerprint)
        except LoadError:
            return
        if slot.loaded.get(version) is not lv:
            self._install(slot, lv)

    # -- the memory cache ----------------------------------------------------------------
    def _lazy(self, slot: ModelSlot) -> bool:
        group = self.groups.get(slot.config.group or "")
        return group is not None and group.lazy

    def _cache_add(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        group = self.groups.get(slot.config.group or "")
        if group is None or group.cache_size is None:
            return
        group.lru[(slot.config.name, lv.version)] = lv
        group.lru.move_to_end((slot.config.name, lv.version))
        self._evict(group)

    def _touch(self, slot: ModelSlot, lv: LoadedVersion) -> None:
        group = self.groups.get(slot.config.group or "")
        if group is not None and group.cache_size is not None:
            key = (slot.config.name, lv.version)
            if group.lru.get(key) is lv:
                group.lru.move_to_end(key)

    def _evict(self, group: ModelGroup) -> None:
        assert group.cache_size is not None
        while len(group.lru) > group.cache_size:
            # Never the most recently used entry: it was just loaded or asked for.
            candidates = list(group.lru.items())[:-1]
            victim = next(((k, lv) for k, lv in candidates if lv.inflight == 0), None)
            if victim is None:
                return  # everything is busy; evict when a request finishes
            (name, version), lv = victim
            log.info("cache: unloading %s v%s (least recently used)", name, version)
            slot = self.slots.get(name)
            if slot is None:
                del group.lru[(name, version)]
                continue
            self._retire(slot, lv)

    # -- predictions -------------------------------------------------------------
    def current(self, name: str) -> LoadedVersion | None:
        """The version answering ``latest`` of ``name`` now, or ``None`` when :meth:`resolve`
        has work to do (loading, or an error to raise): the common case without a coroutine."""
        slot = self.slots.get(name)
        if slot is None or slot.disabled:
            return None
        lv = slot.latest
        if lv is not None:
            self._touch(slot, lv)
        return lv

    async def resolve(self, name: str, version: VersionRef = "latest") -> LoadedVersion:
        """The loaded version that answers ``version`` of ``name``, loading it when it must."""
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        if slot.disabled:
            raise ModelUnavailable(
                f"model {name!r} was unloaded through the repository API",
                cause=f"POST /v2/repository/models/{name}/load loads it again",
            )
        if version == "latest":
            lv = slot.latest
            if lv is None:
                async with slot.lock:
                    if slot.snapshot is None:
                        await self._refresh_locked(slot)
                    if slot.latest is None:
                        await self._ensure_latest(slot)
                lv = slot.latest
                if lv is None:
                    raise ModelUnavailable(
                        f"model {name!r} has no version that can answer now",
                        cause=slot.error or self._last_failure(slot),
                    )
            self._touch(slot, lv)
            return lv
        lv = slot.copy_of(version)
        if lv is not None:
            self._touch(slot, lv)
            if version in slot.on_demand:
                slot.on_demand.move_to_end(version)
            return lv
        snap = slot.snapshot
        if snap is None or version not in snap:
            async with slot.lock:
                await self._refresh_locked(slot)
            snap = slot.snapshot or {}
            if version not in snap:
                raise NotFound(f"model {name!r} has no version {version}")
        if slot.failed.get(version) == snap[version]:
            status = slot.status.get(version)
            raise ModelUnavailable(
                f"model {name!r} v{version} failed to load", cause=status.error if status else None
            )
        lv = await self._load(slot, version, snap[version])
        if lv.retired:
            raise ModelUnavailable(f"model {name!r} v{version} was just replaced; retry")
        if slot.loaded.get(version) is not lv:
            self._install(slot, lv)
            if version not in slot.config.versions and not self._lazy(slot):
                self._keep_on_demand(slot, version)
        return lv

    def _keep_on_demand(self, slot: ModelSlot, version: int) -> None:
        """Versions asked for by requests (not by the spec) stay loaded, a few at most."""
        slot.on_demand[version] = None
        slot.on_demand.move_to_end(version)
        while len(slot.on_demand) > ON_DEMAND_VERSIONS:
            oldest, _ = slot.on_demand.popitem(last=False)
            lv = slot.loaded.get(oldest)
            if lv is not None and lv is not slot.latest and oldest not in slot.config.versions:
                self._retire(slot, lv)

    async def unload_model(self, name: str) -> None:
        """Unload every version of ``name`` until :meth:`load_model` (the repository API)."""
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        async with slot.lock:
            slot.disabled = True
            for lv in {id(v): v for v in [*slot.loaded.values(), slot.latest] if v}.values():
                self._retire(slot, lv)
            slot.error = "unloaded through the repository API"

    async def load_model(self, name: str) -> LoadedVersion | None:
        """Load ``name`` again (and keep it current); raise when no version loads."""
        slot = self.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        slot.disabled = False
        slot.error = None
        slot.failed.clear()  # an explicit load tries every version again (a dependency was fixed)
        await self.refresh(name)
        if "latest" in slot.config.versions:
            return await self.resolve(name)
        return None

    def acquire(self, lv: LoadedVersion) -> None:
        """Keep ``lv`` loaded until :meth:`release` (for work outside :meth:`predict`)."""
        lv.inflight += 1

    def release(self, lv: LoadedVersion) -> None:
        lv.inflight -= 1
        if lv.inflight == 0 and not self._closed:
            slot: ModelSlot = lv.slot
            if lv.retired and not lv.unloaded:
                self._spawn(self._unload(slot, lv))
            else:
                group = self.groups.get(slot.config.group or "")
                if group is not None and group.cache_size is not None:
                    self._evict(group)

    def answer_now(self, lv: LoadedVersion, inputs: list[Any]) -> list[Any] | None:
        """The outputs at once when ``lv`` predicts on the event loop with no batch queue
        (nothing suspends, so no hold to keep); ``None`` otherwise: then :meth:`submit`."""
        return lv.predict(inputs, inline=True) if _runs_now(lv) else None

    def submit(
        self, lv: LoadedVersion, inputs: list[Any], deadline: float | None = None
    ) -> asyncio.Future[list[Any]]:
        """Start predicting ``inputs`` with ``lv`` now; the future holds the outputs.

        Everything that keeps ``lv`` loaded happens before this returns, so a
        caller that resolved ``lv`` and submits without awaiting in between can
        never see it unloaded. With batching, the inputs join the version's
        queue; a ``deadline`` (event-loop time) drops them from the queue once
        it passes. The future is the caller's own: cancelling it, or setting an
        exception on it (a timeout), ends the wait, never a prediction that
        already runs, and the version stays loaded until that prediction ends.
        """
        slot: ModelSlot = lv.slot
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]]
        if _runs_now(lv):
            future = loop.create_future()
            try:
                future.set_result(lv.predict(inputs, inline=True))
            except Exception as exc:
                future.set_exception(exc)
            return future
        limit = slot.config.max_queue
        if limit is not None and slot.waiting >= limit + slot.concurrency:
            raise Overloaded(
                f"model {lv.name!r} has {slot.waiting - slot.concurrency} requests queued "
                f"(its limit is {limit}); retry shortly"
            )
        slot.waiting += 1
        self.acquire(lv)
        if slot.config.batching is not None:
            if lv.batcher is None:
                lv.batcher = Batcher(
                    lv,
                    slot.executor,
                    slot.config.batching,
                    slot.concurrency,
                    self.acquire,
                    self.release,
                )
            # The batcher holds the version while a batch runs; this hold covers the queue.
            future = lv.batcher.enqueue(inputs, deadline)
            future.add_done_callback(functools.partial(self._answered, slot, lv))
            return future
        try:
            job = slot.executor.submit(lv.predict, inputs)
        except RuntimeError:  # the model was removed and its executor shut down
            self._answered(slot, lv, None)
            raise ModelUnavailable(f"model {lv.name!r} is no longer served") from None
        future = loop.create_future()

        def relay(done: concurrent.futures.Future[list[Any]]) -> None:  # in the thread
            try:
                loop.call_soon_threadsafe(self._finished, slot, lv, done, future)
            except RuntimeError:  # the loop closed: the server has stopped
                pass

        job.add_done_callback(relay)
        return future

    def _answered(
        self, slot: ModelSlot, lv: LoadedVersion, future: asyncio.Future[Any] | None
    ) -> None:
        slot.waiting -= 1
        self.release(lv)
        if future is not None and not future.cancelled():
            future.exception()  # retrieved here: an owner that stopped waiting never will

    def _finished(
        self,
        slot: ModelSlot,
        lv: LoadedVersion,
        job: concurrent.futures.Future[list[Any]],
        future: asyncio.Future[list[Any]],
    ) -> None:
        """A thread's prediction ended (on the loop): let the version go, answer if still asked."""
        self._answered(slot, lv, None)
        if future.done():  # timed out or its request went away
            return
        if job.cancelled():  # never started: the server is stopping
            future.set_exception(ModelUnavailable(f"model {lv.name!r} is no longer served"))
            future.exception()
            return
        exc = job.exception()
        if exc is not None:
            future.set_exception(exc)
            future.exception()  # retrieved here: an owner that stopped waiting never will
        else:
            future.set_result(job.result())

    async def predict(
        self, lv: LoadedVersion, inputs: list[Any], deadline: float | None = None
    ) -> list[Any]:
        """:meth:`submit` and wait; a client that goes away does not cancel the prediction."""
        return await asyncio.shield(self.submit(lv, inputs, deadline))

    # -- helpers -------------------------------------------------------------
    def _loop_call(self, fn: Any) -> None:
        """Run ``fn`` on the event loop (from a loader thread or the loop itself)."""
        loop = self._event_loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    async def _io(self, fn: Any, *args: Any) -> Any:
        """Blocking store or load work, in the loader threads (refused once closing)."""
        if self._closed:
            raise LoadError("the server is shutting down")
        return await asyncio.get_running_loop().run_in_executor(self._loader, fn, *args)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            "versions": [self._version_json(slot, v) for v in sorted(slot.status)],
        }

    def _version_json(self, slot: ModelSlot, version: int) -> dict[str, Any]:
        entry = slot.status[version].to_json()
        lv = slot.copy_of(version)
        if lv is not None and not isinstance(lv.backend, WorkerBackend):
            entry["inline"] = lv.inline  # whether it predicts on the event loop now
        if lv is not None and isinstance(lv.model, WorkerPool):
            entry["workers"] = lv.model.pids()
            entry["worker_restarts"] = lv.model.restarts
        return entry


def _runs_now(lv: LoadedVersion) -> bool:
    """``lv`` predicts on the event loop with no batch queue: nothing suspends, no hold to keep."""
    return lv.inline and lv.slot.config.batching is None
