"""From a spec to what the runtime serves: model configs, groups, stores, and each API's models."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcore.errors import SpecError
from modelcore.pipeline import step_models
from modelcore.runtime import ModelConfig, ModelGroup, ModelManager
from modelcore.runtime.batching import BatchingConfig
from modelcore.spec import ApiSpec, LoadedSpec
from modelcore.store import ModelStore
from modelcore.units import parse_size


@dataclass
class ApiModels:
    """The models one API serves: fixed names, or a group whose members come and go."""

    names: list[str] = field(default_factory=list)
    group: str | None = None

    def current(self, manager: ModelManager) -> list[str]:
        """The models served now (a group's members come and go)."""
        return self.names if self.group is None else manager.group_members(self.group)

    def serves(self, manager: ModelManager, name: str) -> bool:
        if self.group is None:
            return name in self.names
        slot = manager.slots.get(name)
        return slot is not None and slot.config.group == self.group

    @property
    def single(self) -> str | None:
        return self.names[0] if self.group is None and len(self.names) == 1 else None


@dataclass
class Assembly:
    store: ModelStore
    configs: dict[str, ModelConfig] = field(default_factory=dict)
    groups: dict[str, ModelGroup] = field(default_factory=dict)
    apis: dict[str, ApiModels] = field(default_factory=dict)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    """model name -> (store url, folder), to refuse one name for two different folders."""


def assemble(loaded: LoadedSpec, store: ModelStore | None = None) -> Assembly:
    """Resolve every API's models to stores and folders; raise SpecError on conflicts."""
    spec = loaded.spec
    main = store or ModelStore(loaded.store_url, spec.storage_options)
    out = Assembly(store=main)
    problems: list[str] = []
    for i, api in enumerate(spec.apis):
        if api.model is not None:
            _add(out, problems, loaded, i, api, api.model, main, api.model, None)
            out.apis[api.name] = ApiModels([api.model])
            continue
        if api.pipeline is not None:
            names = []
            for name, version in step_models(api.pipeline):
                _add(
                    out,
                    problems,
                    loaded,
                    i,
                    api.model_copy(update={"version": version}),
                    name,
                    main,
                    name,
                    None,
                )
                names.append(name)
            out.apis[api.name] = ApiModels(list(dict.fromkeys(names)))
            continue
        if api.models is None:
            out.apis[api.name] = ApiModels([])
            continue
        models = api.models
        template = ModelConfig(
            name="",
            backend=api.backend,
            device=api.device,
            threads=api.threads,
            versions={api.version},
            group=api.name,
            **_isolation(api),
        )
        if models.dir is not None:
            group_store = _store_for(loaded, loaded.resolve_path(models.dir), api.name)
            _limit(group_store, models.disk_cache_size)
            out.groups[api.name] = ModelGroup(
                api.name, group_store, template, dir_mode=True, cache_size=models.cache_size
            )
            out.apis[api.name] = ApiModels(group=api.name)
            continue
        entries = (
            [(models.name or _basename(models.path), models.path)]
            if models.path is not None
            else [(p.name, p.path) for p in models.paths or []]
        )
        names = []
        for name, path in entries:
            full = loaded.resolve_path(path)
            parent, folder = _split(full)
            entry_store = _store_for(loaded, parent, api.name)
            _limit(entry_store, models.disk_cache_size)
            _add(out, problems, loaded, i, api, name, entry_store, folder, api.name)
            names.append(name)
        out.groups[api.name] = ModelGroup(
            api.name, main, template, dir_mode=False, cache_size=models.cache_size
        )
        out.apis[api.name] = ApiModels(names)
    if problems:
        raise SpecError("\n".join(problems))
    return out


def _add(
    out: Assembly,
    problems: list[str],
    loaded: LoadedSpec,
    index: int,
    api: ApiSpec,
    name: str,
    store: ModelStore,
    folder: str,
    group: str | None,
) -> None:
    source = (store.url, folder)
    known = out.sources.get(name)
    if known is not None and known != source:
        problems.append(
            loaded.error(
                ("apis", index, "models" if group else "model"),
                f"model name {name!r} is used for two folders ({known[0]}/{known[1]} and {store.url}/{folder})",
            )
        )
        return
    out.sources[name] = source
    config = out.configs.get(name)
    if config is None:
        out.configs[name] = ModelConfig(
            name,
            store=store,
            folder=folder,
            backend=api.backend,
            device=api.device,
            threads=api.threads,
            versions={api.version},
            group=group,
            **_isolation(api),
        )
    else:
        config.versions.add(api.version)
        config.threads = max(config.threads, api.threads)
        config.backend = config.backend or api.backend
        config.group = config.group or group


def _isolation(api: ApiSpec) -> dict[str, Any]:
    env = api.environment
    batching = None
    if api.batching is not None:
        batching = BatchingConfig(
            max_batch_size=api.batching.max_batch_size,
            max_delay_ms=api.batching.max_delay_ms,
            adaptive=api.batching.adaptive,
            # Half the SLO: a request may wait for the batch ahead of it, then run in its own.
            target_ms=api.slo_ms / 2 if api.slo_ms else None,
        )
    return {
        "max_queue": api.max_queue,
        "batching": batching,
        "isolation": "process" if env is not None else api.isolation,
        "replicas": api.replicas,
        "env_requirements": list(env.requirements) if env else [],
        "env_python": env.python if env else None,
        "timeout": api.timeout_s,
        "inline_budget_s": api.inline_budget_ms / 1000.0,
    }


def _store_for(loaded: LoadedSpec, url: str, api: str) -> ModelStore:
    return ModelStore(url, loaded.spec.storage_options, cache_scope=api)


def _limit(store: ModelStore, size: int | str | None) -> None:
    if size is not None:
        store.disk_cache.max_count, store.disk_cache.max_bytes = parse_size(size)


def _split(path: str) -> tuple[str, str]:
    if "://" in path:
        proto, _, rest = path.partition("://")
        parent, folder = posixpath.split(rest.rstrip("/"))
        return f"{proto}://{parent}", folder
    p = Path(path)
    return str(p.parent), p.name


def _basename(path: str) -> str:
    return _split(path)[1]
