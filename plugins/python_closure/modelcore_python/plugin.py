"""The ``python_closure`` backend: a cloudpickled function, optionally with a pickled model.

Without a model, ``func(inputs)`` predicts. With ``model=`` (any object
cloudpickle can save, e.g. a scikit-learn estimator), the model is pickled to
``model.pkl`` and ``func(model, inputs)`` predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from modelcore.closure import load_function, save_function
from modelcore.errors import StoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.types import BackendInfo, SaveResult

BACKEND = "python_closure"
MODEL_FILE = "model.pkl"


@dataclass
class ClosureModel:
    func: Callable[..., Any]
    model: Any = None
    has_model: bool = False

    def __call__(self, inputs: list[Any]) -> list[Any]:
        if self.has_model:
            return self.func(self.model, inputs)  # type: ignore[no-any-return]
        return self.func(inputs)  # type: ignore[no-any-return]


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    return [BackendInfo(BACKEND, "Python closures saved with cloudpickle", ("cloudpickle",))]


@hookimpl
def modelcore_save(
    backend: str,
    directory: Path,
    model: Any,
    func: Callable[..., Any] | None,
    options: dict[str, Any],
) -> SaveResult | None:
    if backend != BACKEND:
        return None
    if func is None:
        raise StoreError("the python_closure backend needs a predict function")
    save_function(func, directory)
    if model is None:
        return SaveResult(format="cloudpickle")
    try:
        (directory / MODEL_FILE).write_bytes(cloudpickle.dumps(model))
    except Exception as exc:
        raise StoreError(
            f"cannot pickle the model ({type(model).__name__}) with cloudpickle", cause=str(exc)
        ) from exc
    return SaveResult(format="cloudpickle", metadata={"model_class": _qualname(model)})


@hookimpl
def modelcore_load(backend: str, directory: Path, manifest: Manifest | None, device: str) -> Any:
    if backend != BACKEND:
        return None
    func = load_function(directory, manifest)
    model_path = directory / MODEL_FILE
    if not model_path.exists():
        return ClosureModel(func)
    try:
        model = cloudpickle.loads(model_path.read_bytes())
    except Exception as exc:
        raise StoreError(f"{model_path}: cannot unpickle the model", cause=str(exc)) from exc
    return ClosureModel(func, model, has_model=True)


@hookimpl
def modelcore_predict(backend: str, model: Any, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    return model(inputs)  # type: ignore[no-any-return]


@hookimpl
def modelcore_place(backend: str, model: Any, device: str) -> Any:
    if backend != BACKEND:
        return None
    return model  # closures run wherever the process runs


@hookimpl
def modelcore_unload(backend: str, model: Any) -> bool | None:
    if backend != BACKEND:
        return None
    model.func = None
    model.model = None
    return True


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
