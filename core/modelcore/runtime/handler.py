"""Cortex's Python handler API: ``load_model(path)`` and ``model_client.get_model(name, version)``.

A handler class is constructed once per API with the arguments its
``__init__`` names (``config``, ``model_client``, and any a plugin offers,
such as ``tensorflow_client``). When it defines ``load_model(path)``, that
method loads every version of the API's models, whatever files they hold; the
manager keeps them current like any other model. Handler methods run in worker
threads, where ``model_client.get_model`` may block.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import importlib
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.errors import BadRequest, ModelcoreError, NotFound, PluginError
from modelcore.runtime.loaded import LoadedVersion
from modelcore.runtime.manager import ModelManager
from modelcore.store.layout import parse_version
from modelcore.types import BackendInfo

_scope = threading.local()


def load_object(ref: str, what: str = "handler") -> Any:
    """Import ``path/to/file.py:name`` or ``package.module:name`` and return ``name``."""
    target, _, name = ref.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise PluginError(f"{what} file {target} does not exist")
            modname = "modelcore_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
            module = sys.modules.get(modname)
            if module is None:
                spec = importlib.util.spec_from_file_location(modname, path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                # User code imports its sibling modules, as in Cortex.
                if str(path.parent) not in sys.path:
                    sys.path.insert(0, str(path.parent))
                sys.modules[modname] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[modname]
                    raise
        else:
            module = importlib.import_module(target)
    except ModelcoreError:
        raise
    except Exception as exc:
        raise PluginError(f"cannot import {what} {ref}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, name):
        raise PluginError(f"{what} {ref}: {target} has no {name!r}")
    return getattr(module, name)


def load_handler_class(ref: str) -> type:
    """Import ``path/to/file.py:Class`` or ``package.module:Class``."""
    cls = load_object(ref, "handler")
    if not isinstance(cls, type):
        raise PluginError(f"handler {ref}: {ref.rpartition(':')[2]} is not a class")
    return cls


class HandlerLoader:
    """A backend-like loader that calls the handler's ``load_model(path)``."""

    info = BackendInfo("handler", "a Python handler's load_model(path)")
    name = "handler"
    plugin_name = "handler"

    def __init__(self, load_model: Callable[[str], Any]):
        self._load_model = load_model

    def load(self, directory: Path, manifest: Any, device: str) -> Any:
        model = self._load_model(str(directory))
        return _NONE if model is None else model

    def place(self, model: Any, device: str) -> Any:
        return model

    def predict(self, model: Any, inputs: list[Any]) -> list[Any]:
        raise BadRequest("this model is loaded by a handler; call the handler's route")

    def unload(self, model: Any) -> bool:
        # Cortex's contract: what load_model returned must be freeable by dropping it.
        del model
        gc.collect()
        return True


class _NoneModel:
    """Stands for ``None`` returned by ``load_model`` (a model slot cannot hold None)."""


_NONE = _NoneModel()


class ModelClient:
    """What a handler uses to reach its models: ``get_model(name=None, version="latest")``."""

    def __init__(
        self,
        manager: ModelManager,
        loop: asyncio.AbstractEventLoop,
        names: list[str],
        group: str | None = None,
    ):
        self._manager = manager
        self._loop = loop
        self._names = names
        self._group = group

    def models(self) -> list[str]:
        """The names of the models this API serves now."""
        if self._group is None:
            return list(self._names)
        return self._manager.group_members(self._group)

    def get_model(self, name: str | None = None, version: int | str = "latest") -> Any:
        """What ``load_model`` (or the backend) returned for ``name`` at ``version``, loading it first.

        The model stays loaded until the handler method that asked for it returns.
        """
        if _on_loop(self._loop):
            raise RuntimeError(
                "get_model blocks: call it from handler methods, not from the event loop"
            )
        name = self._pick(name)
        ref: int | str = version
        if isinstance(version, str) and version != "latest":
            if parse_version(version) is None:
                raise BadRequest(f"version must be an integer or 'latest', got {version!r}")
            ref = int(version)
        future = asyncio.run_coroutine_threadsafe(self._acquire(name, ref), self._loop)
        lv = future.result()
        held = getattr(_scope, "held", None)
        if held is not None:
            held.append(lv)
        else:
            self._loop.call_soon_threadsafe(self._manager.release, lv)
        return None if lv.model is _NONE else lv.model

    def _pick(self, name: str | None) -> str:
        names = self.models()
        if name is None:
            if len(names) == 1:
                return names[0]
            raise BadRequest(f"this API serves several models; name one of: {', '.join(names)}")
        if name not in names:
            raise NotFound(f"model {name!r} is not served by this API (models: {', '.join(names)})")
        return name

    async def _acquire(self, name: str, version: Any) -> LoadedVersion:
        lv = await self._manager.resolve(name, version)
        self._manager.acquire(lv)
        return lv

    def run_in_scope(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` (a handler method, in a worker thread); release the models it used after."""
        previous = getattr(_scope, "held", None)
        _scope.held = []
        try:
            return fn(*args, **kwargs)
        finally:
            for lv in _scope.held:
                self._loop.call_soon_threadsafe(self._manager.release, lv)
            _scope.held = previous


def construct_handler(
    cls: type, config: dict[str, Any], model_client: ModelClient, extra: dict[str, Any]
) -> Any:
    """Instantiate ``cls`` with the arguments its ``__init__`` names."""
    offered = {"config": config, "model_client": model_client, **extra}
    params = inspect.signature(cls).parameters
    kwargs = {}
    for pname, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if pname in offered:
            kwargs[pname] = offered[pname]
        elif param.default is param.empty:
            raise PluginError(
                f"handler {cls.__name__}.__init__ asks for {pname!r}, which nothing offers "
                f"(offered: {', '.join(sorted(offered))})"
            )
    return cls(**kwargs)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
