"""Checks of a spec against the installed plugins and the store (beyond its own schema)."""

from __future__ import annotations

from modelcore.errors import SpecError
from modelcore.plugins import ModelcorePluginManager
from modelcore.runtime import ModelConfig
from modelcore.spec import LoadedSpec
from modelcore.store import ModelStore


def check_spec(loaded: LoadedSpec, pm: ModelcorePluginManager, store: ModelStore | None) -> None:
    """Raise :class:`SpecError` listing, by file and line, every problem the schema cannot see."""
    problems = []
    input_types = pm.input_types()
    backends = pm.backends()
    for i, api in enumerate(loaded.spec.apis):
        if api.input_type not in input_types:
            problems.append(
                loaded.error(
                    ("apis", i, "input_type"),
                    f"unknown input type {api.input_type!r} (known: {', '.join(sorted(input_types))})",
                )
            )
        if api.backend is not None and api.backend not in backends:
            problems.append(
                loaded.error(
                    ("apis", i, "backend"),
                    f"no backend {api.backend!r} is installed (installed: {', '.join(sorted(backends)) or 'none'})",
                )
            )
        if store is None:
            continue
        if not store.has_model(api.model):
            problems.append(
                loaded.error(
                    ("apis", i, "model"), f"model {api.model!r} is not in the store {store.url}"
                )
            )
        elif isinstance(api.version, int) and not store.fs.isdir(
            store.version_path(api.model, api.version)
        ):
            problems.append(
                loaded.error(
                    ("apis", i, "version"),
                    f"model {api.model!r} has no version {api.version} in the store",
                )
            )
    if problems:
        raise SpecError("\n".join(problems))


def model_configs(loaded: LoadedSpec) -> list[ModelConfig]:
    """One :class:`ModelConfig` per model the spec serves, merging the APIs that share it."""
    configs: dict[str, ModelConfig] = {}
    for api in loaded.spec.apis:
        config = configs.get(api.model)
        if config is None:
            configs[api.model] = ModelConfig(
                api.model,
                backend=api.backend,
                device=api.device,
                threads=api.threads,
                versions={api.version},
            )
        else:
            config.versions.add(api.version)
            config.threads = max(config.threads, api.threads)
            config.backend = config.backend or api.backend
    return list(configs.values())
