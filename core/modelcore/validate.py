"""Checks of a spec against the installed plugins, its handlers and the store (beyond its schema)."""

from __future__ import annotations

from modelcore.assemble import Assembly, assemble
from modelcore.errors import ModelcoreError, SpecError
from modelcore.plugins import ModelcorePluginManager
from modelcore.spec import LoadedSpec
from modelcore.store import ModelStore, is_model_name


def check_spec(
    loaded: LoadedSpec, pm: ModelcorePluginManager, store: ModelStore | None, *, look: bool = True
) -> Assembly:
    """Raise :class:`SpecError` listing, by file and line, every problem the schema cannot see.

    With ``look=False`` (``modelcore validate --no-store``) the store and handlers are not read.
    """
    from modelcore.runtime.handler import load_handler_class

    problems = []
    input_types = pm.input_types()
    backends = pm.backends()
    assembly = assemble(loaded, store)
    for i, api in enumerate(loaded.spec.apis):
        if api.input_type not in input_types:
            known = ", ".join(sorted(input_types))
            problems.append(
                loaded.error(
                    ("apis", i, "input_type"),
                    f"unknown input type {api.input_type!r} (known: {known})",
                )
            )
        if api.backend is not None and api.backend not in backends:
            known = ", ".join(sorted(backends)) or "none"
            problems.append(
                loaded.error(
                    ("apis", i, "backend"),
                    f"no backend {api.backend!r} is installed (installed: {known})",
                )
            )
        if not look:
            continue
        if api.handler is not None:
            try:
                load_handler_class(loaded.resolve_handler(api.handler))
            except ModelcoreError as exc:
                problems.append(loaded.error(("apis", i, "handler"), exc.message))
        if api.pipeline is not None:
            problems.extend(_check_pipeline(loaded, assembly, i))
        else:
            problems.extend(_check_models(loaded, assembly, i))
    if problems:
        raise SpecError("\n".join(problems))
    return assembly


def _check_pipeline(loaded: LoadedSpec, assembly: Assembly, index: int) -> list[str]:
    """Every step's models in the store (and pinned versions), every function importable."""
    from modelcore.pipeline import step_functions, step_models
    from modelcore.runtime.handler import load_object
    from modelcore.spec import EnsembleStep, ModelStep, SplitStep

    api = loaded.spec.apis[index]
    steps = api.pipeline or []
    problems = []
    for j, step in enumerate(steps):
        where: tuple[str | int, ...] = ("apis", index, "pipeline", j)
        if isinstance(step, ModelStep):
            locs = [(*where, "model")]
        elif isinstance(step, EnsembleStep):
            locs = [(*where, "ensemble", "models", k) for k in range(len(step.ensemble.models))]
        elif isinstance(step, SplitStep):
            locs = [(*where, "split", k, "model") for k in range(len(step.split))]
        else:
            continue
        for loc, (name, version) in zip(locs, step_models([step]), strict=True):
            if not assembly.store.has_model(name):
                problems.append(
                    loaded.error(loc, f"model {name!r} is not in the store {assembly.store.url}")
                )
            elif isinstance(version, int) and version not in assembly.store.list_versions(name):
                problems.append(
                    loaded.error(loc, f"model {name!r} has no version {version} in the store")
                )
    for j, ref in step_functions(steps):
        step = steps[j]
        loc = (
            "apis",
            index,
            "pipeline",
            j,
            "python" if not isinstance(step, EnsembleStep) else "ensemble",
        )
        try:
            fn = load_object(loaded.resolve_handler(ref), "pipeline function")
        except ModelcoreError as exc:
            problems.append(loaded.error(loc, exc.message))
            continue
        if not callable(fn):
            problems.append(loaded.error(loc, f"{ref} is not a function"))
    return problems


def _check_models(loaded: LoadedSpec, assembly: Assembly, index: int) -> list[str]:
    api = loaded.spec.apis[index]
    problems = []
    if api.models is not None and api.models.dir is not None:
        group = assembly.groups[api.name]
        if not group.store.fs.isdir(group.store.root):
            problems.append(
                loaded.error(("apis", index, "models", "dir"), f"no such folder {group.store.url}")
            )
        return problems
    names = assembly.apis[api.name].names
    for j, name in enumerate(names):
        config = assembly.configs[name]
        store = config.store or assembly.store
        folder = config.folder or name
        loc: tuple[str | int, ...] = ("apis", index, "model")
        if api.models is not None:
            loc = (
                ("apis", index, "models", "path")
                if api.models.path
                else ("apis", index, "models", "paths", j, "path")
            )
        if not is_model_name(folder):
            problems.append(
                loaded.error(loc, f"the model folder name {folder!r} is not a safe name")
            )
        elif not store.has_model(folder):
            where = store.url if api.models is None else f"{store.url}/{folder}"
            problems.append(loaded.error(loc, f"model {folder!r} is not in the store {where}"))
        elif isinstance(api.version, int) and api.version not in store.list_versions(
            folder, complete_only=config.needs_manifest and api.handler is None
        ):
            problems.append(
                loaded.error(
                    ("apis", index, "version"),
                    f"model {name!r} has no version {api.version} in the store",
                )
            )
    return problems
