"""The plugin manager: built-in plugins, entry points, and a typed facade over backends.

Nothing happens at import time. :func:`get_plugin_manager` builds a fresh
manager (tests make their own, with throwaway plugins); :func:`plugin_manager`
returns the process-wide one, built on first use.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pluggy

from modelcore import hookspecs
from modelcore.errors import PluginError
from modelcore.types import BackendInfo, InputType, SaveResult

if TYPE_CHECKING:
    from modelcore.manifest import Manifest

log = logging.getLogger(__name__)

PROJECT = "modelcore"
ENTRY_POINT_GROUP = "modelcore"
DISABLE_ENV = "MODELCORE_DISABLE_PLUGINS"

BUILTIN_PLUGINS = ("modelcore.default_plugins.input_types",)


@dataclass
class PluginStatus:
    """One plugin as ``modelcore plugins`` shows it."""

    name: str
    distribution: str | None = None
    version: str | None = None
    backends: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | broken | disabled | builtin
    error: str | None = None


class ModelcorePluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers which plugins failed or were disabled."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.statuses: dict[str, PluginStatus] = {}
        self._backends: dict[str, Backend] | None = None
        self._lock = threading.Lock()

    # -- backends ---------------------------------------------------------
    def backends(self) -> dict[str, Backend]:
        """Every backend by name, each bound to the one plugin that owns it."""
        with self._lock:
            if self._backends is None:
                self._backends = self._resolve_backends()
            return self._backends

    def backend(self, name: str) -> Backend:
        backends = self.backends()
        try:
            return backends[name]
        except KeyError:
            known = ", ".join(sorted(backends)) or "none"
            hint = _INSTALL_HINTS.get(name)
            raise PluginError(
                f"no backend named {name!r} is installed (installed: {known})"
                + (f"; install it with `pip install {hint}`" if hint else ""),
            ) from None

    def claim(self, model: Any) -> str | None:
        return self.hook.modelcore_claim(model=model)

    def input_types(self) -> dict[str, InputType]:
        types: dict[str, InputType] = {}
        for batch in reversed(self.hook.modelcore_input_types()):
            for itype in batch:
                types[itype.name] = itype
        return types

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        with self._lock:
            self._backends = None
        return super().register(plugin, name)

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        with self._lock:
            self._backends = None
        return super().unregister(plugin, name)

    def _resolve_backends(self) -> dict[str, Backend]:
        owners: dict[str, tuple[Any, BackendInfo]] = {}
        # Registration order: a plugin registered later overrides a backend of the same name.
        for impl in self.hook.modelcore_backends.get_hookimpls():
            try:
                infos = cast("list[BackendInfo | str]", impl.function() or [])
            except Exception as exc:  # a broken plugin must not break the others
                log.error("plugin %s: modelcore_backends() failed: %s", impl.plugin_name, exc)
                continue
            for info in infos:
                if isinstance(info, str):
                    info = BackendInfo(name=info)
                if info.name in owners:
                    log.warning(
                        "backend %r of %s overrides the one of %s",
                        info.name,
                        impl.plugin_name,
                        self.get_name(owners[info.name][0]),
                    )
                owners[info.name] = (impl.plugin, info)
        backend_plugins = {id(p): p for p, _ in owners.values()}
        result = {}
        for name, (plugin, info) in owners.items():
            others = [p for pid, p in backend_plugins.items() if p is not plugin]
            result[name] = Backend(self, info, plugin, others)
        return result


class Backend:
    """A backend bound to its plugin, resolved once so calls do not fan out.

    Calls go through pluggy subset hook callers holding only the owning
    plugin (plus any non-backend plugins, so hook wrappers still apply).
    """

    def __init__(
        self,
        pm: ModelcorePluginManager,
        info: BackendInfo,
        plugin: Any,
        other_backend_plugins: Iterable[Any],
    ):
        self.info = info
        self.name = info.name
        self.plugin_name = pm.get_name(plugin) or repr(plugin)
        others = list(other_backend_plugins)
        self._save = pm.subset_hook_caller("modelcore_save", others)
        self._load = pm.subset_hook_caller("modelcore_load", others)
        self._predict = pm.subset_hook_caller("modelcore_predict", others)
        self._place = pm.subset_hook_caller("modelcore_place", others)
        self._unload = pm.subset_hook_caller("modelcore_unload", others)
        # predict runs on every request: with no hook wrapper around it, call the one
        # implementation directly, as pluggy would (its declared arguments, in order).
        impls = self._predict.get_hookimpls()
        self._direct_predict: Callable[[Any, list[Any]], list[Any]] | None = None
        if len(impls) == 1 and not (impls[0].hookwrapper or impls[0].wrapper):
            self._direct_predict = _positional(impls[0].function, impls[0].argnames, self.name)

    def __repr__(self) -> str:
        return f"<Backend {self.name} from {self.plugin_name}>"

    def save(
        self, directory: Path, model: Any, func: Callable[..., Any] | None, options: dict[str, Any]
    ) -> SaveResult:
        result = self._save(
            backend=self.name, directory=directory, model=model, func=func, options=options
        )
        if result is None:
            raise PluginError(f"backend {self.name!r} ({self.plugin_name}) does not implement save")
        if isinstance(result, dict):
            result = SaveResult(**result)
        return result

    def load(self, directory: Path, manifest: Manifest | None, device: str = "cpu") -> Any:
        model = self._load(backend=self.name, directory=directory, manifest=manifest, device=device)
        if model is None:
            raise PluginError(
                f"backend {self.name!r} ({self.plugin_name}) returned nothing from load"
            )
        return model

    def predict(self, model: Any, inputs: list[Any]) -> list[Any]:
        """Predict a batch; the caller checks that a list as long as ``inputs`` came back."""
        direct = self._direct_predict
        if direct is not None:
            return direct(model, inputs)
        return self._predict(backend=self.name, model=model, inputs=inputs)

    def place(self, model: Any, device: str) -> Any:
        placed = self._place(backend=self.name, model=model, device=device)
        return model if placed is None else placed

    def unload(self, model: Any) -> bool:
        return bool(self._unload(backend=self.name, model=model))


def _positional(
    function: Callable[..., Any], names: Sequence[str], backend: str
) -> Callable[[Any, list[Any]], list[Any]]:
    """``function`` as ``f(model, inputs)``, fed the arguments it declares in its order (as
    pluggy feeds a hook implementation), worked out once instead of on every call."""
    names = tuple(names)
    if names == ("model", "inputs"):
        return function
    if names == ("backend", "model", "inputs"):
        return functools.partial(function, backend)

    def call(model: Any, inputs: list[Any]) -> list[Any]:
        given = {"backend": backend, "model": model, "inputs": inputs}
        return function(*[given[n] for n in names])

    return call


_INSTALL_HINTS = {
    "python_closure": "modelcore-python",
    "pytorch": "modelcore-pytorch",
    "tensorflow": "modelcore-tensorflow",
    "onnx": "modelcore-onnx",
    "pyspark": "modelcore-pyspark",
    "mxnet": "modelcore-mxnet",
}


def disabled_plugins(env: dict[str, str] | None = None) -> set[str]:
    raw = (env if env is not None else os.environ).get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def get_plugin_manager(
    *,
    entry_points: bool = True,
    builtins: bool = True,
    extra: Iterable[Any] = (),
    disabled: Iterable[str] | None = None,
) -> ModelcorePluginManager:
    """Build a fresh plugin manager.

    Registers the built-in plugins, then every ``modelcore`` entry point (a
    plugin that fails to import is recorded as broken and skipped), then
    ``extra`` plugins; blocks names in ``MODELCORE_DISABLE_PLUGINS`` (or
    ``disabled``); and checks that every hook implemented is a known hook.
    """
    pm = ModelcorePluginManager()
    pm.add_hookspecs(hookspecs)
    blocked = set(disabled) if disabled is not None else disabled_plugins()
    for name in blocked:
        pm.set_blocked(name)
        pm.statuses[name] = PluginStatus(name=name, status="disabled")
    if builtins:
        for modname in BUILTIN_PLUGINS:
            short = modname.rsplit(".", 1)[-1]
            if short in blocked:
                continue
            pm.register(importlib.import_module(modname), name=short)
            pm.statuses[short] = PluginStatus(
                name=short,
                distribution="modelcore",
                version=_version("modelcore"),
                status="builtin",
            )
    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist else None
            status = PluginStatus(
                name=ep.name, distribution=dist, version=ep.dist.version if ep.dist else None
            )
            pm.statuses[ep.name] = status
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:
                status.status = "broken"
                status.error = f"{type(exc).__name__}: {exc}"
                log.error("plugin %s (%s) failed to load: %s", ep.name, dist, status.error)
    for plugin in extra:
        registered = pm.register(plugin)
        if registered:
            pm.statuses[registered] = PluginStatus(name=registered, status="ok")
    _check_pending(pm)
    for name, status in pm.statuses.items():
        plugin = pm.get_plugin(name)
        if plugin is None or status.status == "broken":
            continue
        status.backends = [
            b.name for b in pm.backends().values() if pm.get_name(plugin) == b.plugin_name
        ]
    return pm


_default: ModelcorePluginManager | None = None
_default_lock = threading.Lock()


def plugin_manager() -> ModelcorePluginManager:
    """The process-wide plugin manager, built on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = get_plugin_manager()
        return _default


def set_plugin_manager(pm: ModelcorePluginManager | None) -> None:
    """Replace (or with ``None`` reset) the process-wide plugin manager."""
    global _default
    with _default_lock:
        _default = pm


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _check_pending(pm: ModelcorePluginManager) -> None:
    """Unregister (and report as broken) each plugin that implements an unknown hook."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            pm.unregister(exc.plugin)
            status = pm.statuses.setdefault(name, PluginStatus(name=name))
            status.status = "broken"
            status.error = f"unknown hook: {exc}"
            log.error("plugin %s implements an unknown hook: %s", name, exc)
