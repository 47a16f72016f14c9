"""What the manager keeps per model (a slot) and per group of models (an LRU cache group)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from modelcore.runtime.batching import BatchingConfig
from modelcore.runtime.loaded import LoadedVersion, VersionStatus
from modelcore.store import ModelStore

VersionRef = int | Literal["latest"]


@dataclass
class ModelConfig:
    """How one model is served: where it lives and what the spec's APIs ask of it."""

    name: str
    store: ModelStore | None = None
    """The store holding it; ``None`` means the manager's store."""
    folder: str | None = None
    """Its folder in the store, when that differs from ``name``."""
    backend: str | None = None
    device: str = "cpu"
    threads: int = 2
    versions: set[VersionRef] = field(default_factory=lambda: {"latest"})
    group: str | None = None
    loader: Any = None
    """A backend-like object that loads every version (a Python handler's ``load_model``)."""
    isolation: str | None = None
    replicas: int = 1
    env_requirements: list[str] = field(default_factory=list)
    env_python: str | None = None
    timeout: float = 60.0
    batching: BatchingConfig | None = None
    max_queue: int | None = None
    inline_budget_s: float = 0.001
    """On the event loop: a call that takes longer is a strike (``loaded.INLINE_STRIKES``)."""

    @property
    def needs_manifest(self) -> bool:
        """Bare version folders count only when something other than a manifest says how to load."""
        return self.backend is None and self.loader is None

    def for_model(self, name: str, store: ModelStore) -> ModelConfig:
        """This configuration for a model of a directory group."""
        return replace(self, name=name, store=store, folder=None, versions=set(self.versions))


@dataclass
class ModelGroup:
    """Models served together by one API: a directory of models, and an optional memory cache."""

    name: str
    store: ModelStore
    template: ModelConfig
    dir_mode: bool = False
    cache_size: int | None = None
    lru: OrderedDict[tuple[str, int], LoadedVersion] = field(default_factory=OrderedDict)

    @property
    def lazy(self) -> bool:
        """With a cache, models load on first use (and reload on use after eviction)."""
        return self.cache_size is not None


class ModelSlot:
    """One model: its versions' fingerprints and states, what is loaded, and its executor."""

    def __init__(self, config: ModelConfig, store: ModelStore):
        self.config = config
        self.store = store
        self.folder = config.folder or config.name
        # Several replicas answer at once: keep each of them busy.
        self.concurrency = (
            config.threads if config.replicas == 1 else max(config.threads, 2 * config.replicas)
        )
        self.executor = ThreadPoolExecutor(
            max_workers=self.concurrency,
            thread_name_prefix=f"predict-{config.name}",
        )
        self.loaded: dict[int, LoadedVersion] = {}
        self.loading: dict[tuple[int, str], asyncio.Future[LoadedVersion]] = {}
        self.status: dict[int, VersionStatus] = {}
        self.snapshot: dict[int, str] | None = None
        self.latest: LoadedVersion | None = None
        self.error: str | None = None
        self.lock = asyncio.Lock()
        self.requested = 0
        self.done = 0
        self.removed = False
        self.disabled = False
        """Unloaded through the repository API: stays unloaded until loaded again."""
        self.failed: dict[int, str] = {}
        """Fingerprints of versions that failed to load, not retried until their files change."""
        self.on_demand: OrderedDict[int, None] = OrderedDict()
        """Versions loaded because requests pinned them, oldest first."""
        self.waiting = 0
        """Requests accepted and not yet answered (for the queue limit)."""

    def copy_of(self, version: int | None) -> LoadedVersion | None:
        """The loaded copy answering ``version`` (``None``: latest), if there is one."""
        if version is None:
            return self.latest
        lv = self.loaded.get(version)
        if lv is None and self.latest is not None and self.latest.version == version:
            return self.latest
        return lv

    def status_of(self, version: int) -> VersionStatus:
        if version not in self.status:
            self.status[version] = VersionStatus(version)
        return self.status[version]
